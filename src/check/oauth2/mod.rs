//! OAuth2 bearer tokens by the client credentials grant. A worker thread whose check needs a
//! token fetches it over HTTP from the token endpoint; the [`TokenCache`], shared by every
//! worker through the `Arc<Checker>`, keeps one token per distinct [`OAuth2Params`] until
//! shortly before it expires, and holds a refusal for a few seconds (see
//! [`crate::check::tokens`]). Reads target auth parameters; writes only the cache.
//!
//! - [`protocol`]: the token request and the answer;
//! - [`error`]: why no token could be had.
//!
//! The target then gets `Authorization: Bearer <token>` ([`Token::authorization`]); when it
//! answers 401 to a cached token, the check calls [`TokenCache::invalidate`] and asks once
//! more, which fetches one new token however many targets were refused the old one.

mod error;
mod protocol;

pub use error::OAuth2Error;
pub use protocol::{fetch, token_url};

use std::time::{Duration, Instant};

use crate::base::authn::{OAuth2Params, Secret};
use crate::check::describe;
use crate::check::tokens::{refresh_at, Fresh, SharedTokens};

/// The tokens shared by every check: one per distinct client credentials.
pub type TokenCache = SharedTokens<OAuth2Params, Token, OAuth2Error>;

/// A bearer token and when to stop using it. The value is a [`Secret`]: it never prints.
#[derive(Debug)]
pub struct Token {
    value: Secret,
    refresh_at: Instant,
    lifetime: Duration,
}

impl Token {
    /// A token obtained at `obtained` that the server says is valid for `lifetime`.
    pub fn new(value: Secret, obtained: Instant, lifetime: Duration) -> Token {
        Token {
            value,
            refresh_at: refresh_at(obtained, lifetime),
            lifetime,
        }
    }

    /// The `Authorization` header's value: for the request only, never shown.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.value.expose())
    }

    /// `expires in 3600s`, for the trace.
    pub fn expires(&self) -> String {
        format!("expires in {}", describe::human(self.lifetime))
    }
}

impl Fresh for Token {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// The error a check gets when the worker fetching its token did not finish in time.
pub fn waited(params: &OAuth2Params) -> OAuth2Error {
    OAuth2Error::Waited {
        endpoint: token_url(params).to_string(),
    }
}

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
