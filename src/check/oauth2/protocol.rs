//! The client credentials grant (RFC 6749 section 4.4): the form-encoded token request, the
//! client's authentication (HTTP Basic or in the body), and reading the bearer token, its
//! lifetime or the refusal out of the answer.

use std::time::{Duration, Instant};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use ureq::http::Request;

use super::{OAuth2Error, Token};
use crate::base::authn::{ClientAuth, OAuth2Params, Secret};
use crate::base::text;
use crate::check::token_request;

/// Token answers are small (a JWT is a few kilobytes); this bounds a wrong endpoint.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// A lifetime beyond this is read as this: no token is trusted for longer than a year.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// RFC 3986's unreserved characters stay as they are, everything else is `%XX`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The token endpoint in its display form: what a trace, a log line or a message shows.
pub fn token_url(params: &OAuth2Params) -> &str {
    params.token_url.shown()
}

/// The form-encoded body: `grant_type=client_credentials`, the scope and audience when given,
/// and the client's id and secret when it authenticates in the body.
pub fn request_body(params: &OAuth2Params) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &params.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = &params.audience {
        form.append_pair("audience", audience);
    }
    if params.client_auth == ClientAuth::Post {
        form.append_pair("client_id", &params.client_id);
        form.append_pair("client_secret", params.client_secret.expose());
    }
    form.finish()
}

/// `Basic base64(id:secret)`, id and secret encoded first as RFC 6749 section 2.3.1 asks.
/// A space is `%20`, not `+`: form decoders read both, and servers that only percent-decode
/// (Authlib among them) read `%20` alone right.
pub fn basic_credentials(params: &OAuth2Params) -> String {
    let id = utf8_percent_encode(&params.client_id, UNRESERVED);
    let secret = utf8_percent_encode(params.client_secret.expose(), UNRESERVED);
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The token and its lifetime from a 2xx answer (RFC 6749 section 5.1), or why it holds
/// none. `expires_in` may be a number or a numeric string (some servers quote it); without
/// one, `default_lifetime` applies.
pub fn parse_answer(body: &[u8], default_lifetime: Duration) -> Result<(Secret, Duration), String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no access_token")?;
    // The token goes into a header: refuse anything that is not visible ASCII.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the access_token holds characters a header cannot carry".into());
    }
    match json["token_type"].as_str() {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(other) => {
            let other = text::clip_marked(&text::visible(other), 20);
            return Err(format!("token_type `{other}` is not Bearer"));
        }
    }
    let lifetime = match &json["expires_in"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let lifetime = match lifetime {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::from_secs_f64(secs.min(MAX_LIFETIME.as_secs_f64()))
        }
        Some(_) => return Err("expires_in is negative".into()),
        None => default_lifetime,
    };
    Ok((Secret::new(token), lifetime))
}

/// The `error` code and `error_description` of a refusal (RFC 6749 section 5.2), made safe to
/// show: hidden characters escaped, cut short, and the client's secret masked should the
/// server echo it.
pub fn parse_refusal(body: &[u8], params: &OAuth2Params) -> (Option<String>, Option<String>) {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let secret = params.client_secret.expose();
    let field = |name: &str, max: usize| {
        json[name].as_str().filter(|s| !s.is_empty()).map(|s| {
            let s = match secret.len() >= crate::base::redactor::MIN_LEN {
                true => s.replace(secret, crate::base::urls::MASK),
                false => s.to_string(),
            };
            text::clip_marked(&text::visible(&s), max)
        })
    };
    (field("error", 40), field("error_description", 80))
}

/// Asks the token endpoint for a token through `agent`, giving up after `timeout`.
pub fn fetch(
    agent: &ureq::Agent,
    params: &OAuth2Params,
    timeout: Duration,
    default_lifetime: Duration,
) -> Result<Token, OAuth2Error> {
    let endpoint = token_url(params).to_string();
    let unreachable = |err: ureq::Error| OAuth2Error::Unreachable {
        endpoint: endpoint.clone(),
        reason: token_request::no_answer(&err, params.token_url.host(), timeout),
    };
    let mut request = Request::post(params.token_url.as_str())
        .header("content-type", "application/x-www-form-urlencoded");
    if params.client_auth == ClientAuth::Basic {
        request = request.header("authorization", basic_credentials(params));
    }
    let mut response =
        token_request::post(agent, request, request_body(params), timeout).map_err(unreachable)?;
    let obtained = Instant::now();
    let status = response.status().as_u16();
    let body = token_request::read_answer(&mut response, MAX_ANSWER_BYTES);
    if !(200..300).contains(&status) {
        // The refusal's reason is a courtesy: a body that cannot be read leaves the status.
        let (error, description) = body
            .map(|b| parse_refusal(&b, params))
            .unwrap_or((None, None));
        return Err(OAuth2Error::Rejected {
            endpoint,
            status,
            error,
            description,
        });
    }
    let body = body.map_err(|e| match e {
        ureq::Error::BodyExceedsLimit(max) => OAuth2Error::BadAnswer {
            endpoint: endpoint.clone(),
            why: format!("the answer is larger than {max} bytes"),
        },
        other => unreachable(other),
    })?;
    let (value, lifetime) =
        parse_answer(&body, default_lifetime).map_err(|why| OAuth2Error::BadAnswer {
            endpoint: endpoint.clone(),
            why,
        })?;
    Ok(Token::new(value, obtained, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::authn::{oauth2_params, split_params};

    fn params(extra: &str) -> OAuth2Params {
        let text =
            format!("token_url=http://127.0.0.1:9/token,client_id=mon,client_secret=s3cr3t{extra}");
        oauth2_params(split_params(&text).unwrap()).unwrap()
    }

    #[test]
    fn the_request_is_form_encoded_with_the_credentials_where_asked() {
        let basic = params(",scope=read write,audience=https://api.example/");
        assert_eq!(
            request_body(&basic),
            "grant_type=client_credentials&scope=read+write&audience=https%3A%2F%2Fapi.example%2F"
        );
        let post = params(",auth=post");
        assert_eq!(
            request_body(&post),
            "grant_type=client_credentials&client_id=mon&client_secret=s3cr3t"
        );
    }

    #[test]
    fn basic_credentials_encode_id_and_secret_first() {
        let mut p = params("");
        p.client_id = "mon itor".into();
        p.client_secret = Secret::new("s:e/c r+t%");
        let header = basic_credentials(&p);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "mon%20itor:s%3Ae%2Fc%20r%2Bt%25"
        );
        assert_eq!(basic_credentials(&params("")), "Basic bW9uOnMzY3IzdA==");
    }

    #[test]
    fn answers_give_the_token_and_its_lifetime() {
        let hour = Duration::from_secs(3600);
        let ok = br#"{"access_token":"abc.def","token_type":"Bearer","expires_in":300}"#;
        let (t, life) = parse_answer(ok, hour).unwrap();
        assert_eq!((t.expose(), life), ("abc.def", Duration::from_secs(300)));
        let quoted = br#"{"access_token":"x","token_type":"bearer","expires_in":"60"}"#;
        assert_eq!(
            parse_answer(quoted, hour).unwrap().1,
            Duration::from_secs(60)
        );
        let bare = br#"{"access_token":"x"}"#;
        assert_eq!(parse_answer(bare, hour).unwrap().1, hour);
        let forever = br#"{"access_token":"x","expires_in":1e30}"#;
        assert_eq!(parse_answer(forever, hour).unwrap().1, MAX_LIFETIME);
    }

    #[test]
    fn answers_without_a_usable_token_say_why() {
        let hour = Duration::from_secs(3600);
        let why = |body: &[u8]| parse_answer(body, hour).unwrap_err();
        assert_eq!(why(b"<html>"), "the answer is not JSON");
        assert_eq!(
            why(br#"{"token_type":"Bearer"}"#),
            "the answer has no access_token"
        );
        assert_eq!(
            why(br#"{"access_token":""}"#),
            "the answer has no access_token"
        );
        assert_eq!(
            why(br#"{"access_token":"a b"}"#),
            "the access_token holds characters a header cannot carry"
        );
        assert_eq!(
            why(br#"{"access_token":"a","token_type":"mac"}"#),
            "token_type `mac` is not Bearer"
        );
        assert_eq!(
            why(br#"{"access_token":"a","expires_in":-5}"#),
            "expires_in is negative"
        );
    }

    #[test]
    fn refusals_are_read_safely() {
        let p = params("");
        let body =
            br#"{"error":"invalid_client","error_description":"bad secret s3cr3t\u001b[2J"}"#;
        assert_eq!(
            parse_refusal(body, &p),
            (
                Some("invalid_client".into()),
                Some("bad secret ***\\x1b[2J".into())
            )
        );
        assert_eq!(parse_refusal(b"Forbidden", &p), (None, None));
        let e = OAuth2Error::Rejected {
            endpoint: "http://127.0.0.1:9/token".into(),
            status: 403,
            error: None,
            description: None,
        };
        assert_eq!(
            e.to_string(),
            "oauth2 token request failed: 403 Forbidden at http://127.0.0.1:9/token"
        );
    }

    #[test]
    fn the_endpoint_is_shown_without_its_secrets() {
        let text = "token_url=https://u:pw@auth/t?api_key=K1,client_id=a,client_secret=b";
        let p = oauth2_params(split_params(text).unwrap()).unwrap();
        assert_eq!(token_url(&p), "https://***@auth/t?api_key=***");
    }
}
