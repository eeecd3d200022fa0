//! Why no OAuth2 token could be had, for the check's description and trace.

use std::fmt;

use crate::check::describe;

/// Why no token could be had. Each names the token endpoint in its display form (user info
/// and secret parameters masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2Error {
    /// No HTTP answer: refused, unknown host, timeout, TLS.
    Unreachable { endpoint: String, reason: String },
    /// A non-2xx answer, with the RFC 6749 `error` code and `error_description` when the
    /// server gave them (shown escaped and cut short: they come from the server).
    Rejected {
        endpoint: String,
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    /// A 2xx answer without a usable bearer token.
    BadAnswer { endpoint: String, why: String },
    /// Another worker was fetching the same token and did not finish before our deadline.
    Waited { endpoint: String },
}

impl fmt::Display for OAuth2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuth2Error::Unreachable { endpoint, reason } => {
                write!(
                    f,
                    "oauth2 token endpoint unreachable at {endpoint}: {reason}"
                )
            }
            OAuth2Error::Rejected {
                endpoint,
                status,
                error,
                description,
            } => {
                match error {
                    Some(code) => write!(f, "oauth2 token request failed: {status} {code}")?,
                    None => write!(
                        f,
                        "oauth2 token request failed: {}",
                        describe::status_text(*status)
                    )?,
                }
                write!(f, " at {endpoint}")?;
                match description {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            OAuth2Error::BadAnswer { endpoint, why } => write!(
                f,
                "oauth2 token endpoint answered without a usable token at {endpoint}: {why}"
            ),
            OAuth2Error::Waited { endpoint } => write!(
                f,
                "timed out waiting for another check to obtain an oauth2 token from {endpoint}"
            ),
        }
    }
}

impl std::error::Error for OAuth2Error {}
