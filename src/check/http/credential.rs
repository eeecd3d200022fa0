//! The authentication step of a check, on the worker thread: the header a target's `authn`
//! asks for, from its parameters (BASIC, BEARER) or from a token the shared caches hold or
//! fetch (OPENSTACK from Keystone, OAUTH2 from the OAuth2 server); and, when the target
//! answers 401 to a cached token, the one new token the check asks for.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ureq::Agent;

use super::{marks_to_trace, Run};
use crate::base::authn::{Auth, IdentityVersion, KeystoneParams, OAuth2Params};
use crate::base::model::CheckError;
use crate::check::tokens::{Fresh, SharedTokens, Source};
use crate::check::{keystone, oauth2, phase};

/// What a request of the check carries to prove who it is.
pub(super) enum Credential<'a> {
    None,
    /// An `Authorization` value: `Basic ...` or `Bearer ...`.
    Authorization(String),
    Keystone(&'a KeystoneParams, Arc<keystone::Token>, Source),
    OAuth2(&'a OAuth2Params, Arc<oauth2::Token>, Source),
}

impl<'a> Run<'a> {
    pub(super) fn credential(&mut self) -> Result<Credential<'a>, CheckError> {
        let target = self.target;
        match &target.auth {
            Auth::None => Ok(Credential::None),
            Auth::Basic { user, password } => {
                self.trace.step(format!("auth: BASIC as user {user}"));
                let pair = format!("{user}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                Ok(Credential::Authorization(format!("Basic {encoded}")))
            }
            Auth::Bearer { token } => {
                self.trace.step("auth: BEARER token from authn_parms");
                Ok(Credential::Authorization(format!(
                    "Bearer {}",
                    token.expose()
                )))
            }
            Auth::OpenStack(params) => self.keystone(params),
            Auth::OAuth2(params) => self.oauth2(params),
        }
    }

    /// After a 401 to a cached token: forgets it (unless another check already replaced it)
    /// and gets a new one, once; `None` when the credential was no cached token, and the 401
    /// is the answer.
    pub(super) fn renew(
        &mut self,
        credential: &Credential<'a>,
    ) -> Option<Result<Credential<'a>, CheckError>> {
        match credential {
            Credential::Keystone(params, token, Source::Cached) => {
                let params: &'a KeystoneParams = params;
                self.tools.keystone.invalidate(params, token);
                self.trace
                    .step("target refused the cached keystone token: authenticating again");
                Some(self.keystone(params))
            }
            Credential::OAuth2(params, token, Source::Cached) => {
                let params: &'a OAuth2Params = params;
                self.tools.oauth2.invalidate(params, token);
                self.trace
                    .step("target refused the cached oauth2 token: fetching a new one");
                Some(self.oauth2(params))
            }
            _ => None,
        }
    }

    /// A Keystone token for `params` from the shared cache, fetched on this thread if needed.
    fn keystone(&mut self, params: &'a KeystoneParams) -> Result<Credential<'a>, CheckError> {
        let url = keystone::token_url(params);
        let (cache, waited, fetch) = (self.tools.keystone, keystone::waited, keystone::fetch);
        let result = self.shared_token(cache, params, waited, fetch, ("keystone: ", &url));
        let version = match params.version {
            IdentityVersion::V2 => "v2",
            IdentityVersion::V3 => "v3",
        };
        let endpoint = params.endpoint.shown();
        match result {
            Ok((token, source)) => {
                let (source_text, expires) = (source.as_str(), token.expires());
                self.trace.step(format!(
                    "keystone {version} token obtained from {endpoint} ({source_text}), expires {expires}"
                ));
                Ok(Credential::Keystone(params, token, source))
            }
            Err(e) => Err(CheckError::Keystone(e.to_string())),
        }
    }

    /// An OAuth2 token for `params` from the shared cache, fetched on this thread if needed.
    fn oauth2(&mut self, params: &'a OAuth2Params) -> Result<Credential<'a>, CheckError> {
        let url = oauth2::token_url(params);
        let (cache, waited, fetch) = (self.tools.oauth2, oauth2::waited, oauth2::fetch);
        match self.shared_token(cache, params, waited, fetch, ("oauth2: ", url)) {
            Ok((token, source)) => {
                self.trace.step(format!(
                    "oauth2 token obtained from {url} ({}), {}",
                    source.as_str(),
                    token.expires()
                ));
                Ok(Credential::OAuth2(params, token, source))
            }
            Err(e) => Err(CheckError::OAuth2(e.to_string())),
        }
    }

    /// A token for `params` from `cache`, fetched on this thread by `fetch` if needed, within
    /// what is left of the check's time. The token request's steps go to the trace as
    /// `prefix` `POST` `url`; the certificate its handshake saw is let go: the row's
    /// certificate is the target's (the token server's is in the trace).
    fn shared_token<P: Eq + Hash + Clone, T: Fresh, E: Clone>(
        &mut self,
        cache: &SharedTokens<P, T, E>,
        params: &P,
        waited: fn(&P) -> E,
        fetch: fn(&Agent, &P, Duration, Duration) -> Result<T, E>,
        (prefix, url): (&str, &str),
    ) -> Result<(Arc<T>, Source), E> {
        let (agent, lifetime) = (self.tools.agent, self.tools.settings.token_lifetime);
        let timeout = self.remaining();
        let result = cache.get(
            params,
            self.deadline,
            || waited(params),
            || fetch(agent, params, timeout, lifetime),
        );
        marks_to_trace(&mut self.trace, prefix, "POST", url);
        let _ = phase::take_cert();
        result
    }
}
