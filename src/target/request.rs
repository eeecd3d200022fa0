//! The columns of a target row that shape its request and judge its answer, validated on
//! the loader thread (or in the CLI): `conditions`, `request_headers` (against what `authn`
//! sets) and a PUSH target's stand-in URL and `push_token`. Pure.

use std::sync::Arc;

use super::Error;
use crate::base::authn::Auth;
use crate::base::conditions::Conditions;
use crate::base::headers::RequestHeaders;
use crate::base::push;
use crate::base::secrets::Secrets;
use crate::base::urls::WebUrl;
use crate::db::targets::TargetRow;

/// The `conditions` column parsed; `None` when it holds none (NULL, blank lines, comments).
pub(super) fn conditions(text: Option<&str>) -> Result<Option<Arc<Conditions>>, Error> {
    let Some(text) = text else {
        return Ok(None);
    };
    let parsed = Conditions::parse(text).map_err(|e| Error::Conditions(e.to_string()))?;
    Ok((!parsed.is_empty()).then(|| Arc::new(parsed)))
}

/// The `request_headers` column with its secrets filled in, parsed. A header the `authn` sets
/// itself is refused: which of the two would the target see?
pub(super) fn request_headers(
    text: Option<&str>,
    auth: &Auth,
    secrets: &Secrets,
) -> Result<RequestHeaders, Error> {
    let Some(text) = text else {
        return Ok(RequestHeaders::default());
    };
    let bad = |why: String| Error::RequestHeaders(why);
    let expanded = secrets
        .expand(text)
        .map_err(|e| bad(format!("request_headers: {e}")))?;
    let headers = RequestHeaders::parse(&expanded).map_err(|e| bad(e.to_string()))?;
    let set_by_authn = match auth {
        Auth::None => None,
        Auth::Basic { .. } | Auth::Bearer { .. } | Auth::OAuth2(_) => Some("Authorization"),
        Auth::OpenStack(_) => Some("X-Auth-Token"),
    };
    if let Some(name) = set_by_authn.filter(|name| headers.contains(name)) {
        return Err(bad(format!(
            "request_headers: {name} is set by authn {}",
            auth.kind()
        )));
    }
    Ok(headers)
}

/// What a PUSH target's `url` becomes: nothing is requested, so its `url` is not read (an
/// operator may note the job's address there); a reserved name that resolves nowhere stands
/// in. Its `push_token` must be usable, when set (the loader fills a NULL one).
pub(super) fn push_url(row: &TargetRow) -> Result<WebUrl, Error> {
    if let Some(problem) = row.push_token.as_deref().and_then(push::token_problem) {
        return Err(Error::PushToken(problem));
    }
    Ok(WebUrl::parse(PUSH_URL).expect("a valid URL"))
}

/// The URL a PUSH target holds in place of one (RFC 2606 keeps `.invalid` unresolvable).
pub const PUSH_URL: &str = "http://push.invalid/";
