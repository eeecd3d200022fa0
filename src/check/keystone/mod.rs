//! OpenStack Keystone tokens. A worker thread whose check needs a token fetches it over HTTP
//! (v2 or v3 password authentication); the [`TokenCache`], shared by every worker through the
//! `Arc<Checker>`, keeps one token per distinct [`KeystoneParams`] until shortly before it
//! expires, and holds a refusal for a few seconds (see [`crate::check::tokens`]). Reads target
//! auth parameters; writes only the cache.
//!
//! - [`protocol`]: the request for a token and the answer, per identity API version;
//! - [`error`]: why no token could be had.

mod error;
mod protocol;

pub use error::KeystoneError;
pub(crate) use protocol::fetch;
pub use protocol::token_url;

use std::time::{Duration, Instant};

use crate::base::authn::{KeystoneParams, Secret};
use crate::check::tokens::{refresh_at, Fresh, SharedTokens};

/// The tokens shared by every check: one per distinct Keystone credentials.
pub type TokenCache = SharedTokens<KeystoneParams, Token, KeystoneError>;

/// A token and when to stop using it. The value is a [`Secret`]: it never prints.
#[derive(Debug)]
pub struct Token {
    value: Secret,
    refresh_at: Instant,
    /// When it expires, for the trace: Keystone's own timestamp, or `in 3600s` when the answer
    /// had none and `token_lifetime` applies.
    expires: String,
}

impl Token {
    /// A token obtained at `obtained` that Keystone says is valid for `lifetime`.
    pub fn new(value: Secret, obtained: Instant, lifetime: Duration, expires: String) -> Token {
        Token {
            value,
            refresh_at: refresh_at(obtained, lifetime),
            expires,
        }
    }

    pub fn value(&self) -> &Secret {
        &self.value
    }

    pub fn expires(&self) -> &str {
        &self.expires
    }
}

impl Fresh for Token {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// The error a check gets when the worker fetching its token did not finish in time.
pub fn waited(params: &KeystoneParams) -> KeystoneError {
    KeystoneError::Waited {
        endpoint: params.endpoint.shown().to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::base::authn::{IdentityVersion, KeystoneParams};

    pub fn params(version: IdentityVersion, endpoint: &str) -> KeystoneParams {
        KeystoneParams {
            endpoint: crate::base::urls::WebUrl::parse(endpoint).unwrap(),
            version,
            user: "ops".into(),
            password: Secret::new("pw"),
            user_domain: "Default".into(),
            project_id: Some("t1".into()),
            project_name: None,
            project_domain: "Default".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(obtained: Instant, secs: u64) -> Token {
        let lifetime = Duration::from_secs(secs);
        Token::new(Secret::new("t"), obtained, lifetime, String::new())
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let t0 = Instant::now();
        let hour = token(t0, 3600);
        assert!(hour.is_fresh(t0 + Duration::from_secs(3539)));
        assert!(!hour.is_fresh(t0 + Duration::from_secs(3540)));
        let short = token(t0, 10);
        assert!(short.is_fresh(t0 + Duration::from_secs(8)));
        assert!(!short.is_fresh(t0 + Duration::from_secs(9)));
    }
}
