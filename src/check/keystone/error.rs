//! Why no Keystone token could be had, for the check's description and trace.

use std::fmt;

use crate::check::describe;

/// Why no token could be had. Each names the endpoint as configured (password redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoneError {
    /// No HTTP answer: refused, unknown host, timeout, TLS.
    Unreachable { endpoint: String, reason: String },
    /// Keystone answered with a non-2xx status (wrong password, unknown project...).
    Rejected { endpoint: String, status: u16 },
    /// A 2xx answer without a usable token (or not JSON).
    NoToken { endpoint: String },
    /// Another worker was fetching the same token and did not finish before our deadline.
    Waited { endpoint: String },
}

impl fmt::Display for KeystoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeystoneError::Unreachable { endpoint, reason } => {
                write!(f, "keystone unreachable at {endpoint}: {reason}")
            }
            KeystoneError::Rejected { endpoint, status } => write!(
                f,
                "keystone authentication failed: {} at {endpoint}",
                describe::status_text(*status)
            ),
            KeystoneError::NoToken { endpoint } => {
                write!(f, "keystone answered without a token at {endpoint}")
            }
            KeystoneError::Waited { endpoint } => write!(
                f,
                "timed out waiting for another check to obtain a keystone token from {endpoint}"
            ),
        }
    }
}
