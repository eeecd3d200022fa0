//! Parses a target's `authn` and `authn_parms` columns into an [`Auth`]. Runs on the loader
//! thread (and in the CLI); pure, no I/O. Fetching Keystone tokens is `check/keystone/`,
//! OAuth2 tokens `check/oauth2/`.

use std::fmt;

use crate::base::secrets::Secrets;
use crate::base::urls::WebUrl;

/// A password or token. Its `Debug` and `Display` never show the value, so a secret cannot
/// reach a log line or a trace by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// How a target authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    // Boxed: the parameters are large, and most targets have no authentication.
    OpenStack(Box<KeystoneParams>),
    /// `Authorization: Bearer <token>`, the token as given.
    Bearer {
        token: Secret,
    },
    /// A token from an OAuth2 server by the client credentials grant.
    OAuth2(Box<OAuth2Params>),
}

impl Auth {
    /// The `authn` column's word for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "NONE",
            Auth::Basic { .. } => "BASIC",
            Auth::OpenStack(_) => "OPENSTACK",
            Auth::Bearer { .. } => "BEARER",
            Auth::OAuth2(_) => "OAUTH2",
        }
    }
}

/// Which Keystone API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityVersion {
    V2,
    V3,
}

/// Everything needed to obtain a Keystone token. Equal parameters share one cached token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeystoneParams {
    /// The identity endpoint as given, e.g. `http://keystone:5000/v3`.
    pub endpoint: WebUrl,
    pub version: IdentityVersion,
    pub user: String,
    pub password: Secret,
    /// v3: the user's domain name (default `Default`).
    pub user_domain: String,
    /// The project (v2: tenant) id to scope to.
    pub project_id: Option<String>,
    /// v3: the project name to scope to, with `project_domain`, when no id is given.
    pub project_name: Option<String>,
    pub project_domain: String,
}

/// How an OAuth2 client proves who it is to the token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`), the default:
    /// every server must accept it.
    Basic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    Post,
}

/// Everything needed to obtain an OAuth2 token by the client credentials grant. Equal
/// parameters share one cached token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OAuth2Params {
    /// The token endpoint, e.g. `https://auth.example.com/oauth/token`.
    pub token_url: WebUrl,
    pub client_id: String,
    pub client_secret: Secret,
    /// Space-separated scopes to ask for; none: the server's default.
    pub scope: Option<String>,
    /// The API the token is for, as Auth0 and others ask (`audience=`).
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
}

/// A target definition error, shown as `config error: <this>`.
pub type ParamError = String;

/// Parses `authn` and `authn_parms` as stored in a target row.
pub fn parse(authn: &str, parms: Option<&str>) -> Result<Auth, ParamError> {
    parse_expanding(authn, parms.unwrap_or(""), Ok)
}

/// [`parse`] with the `${secret:NAME}` references in each value replaced from `secrets`
/// (see [`expand_values`]); an unknown name is an error naming the parameter.
pub fn parse_with_secrets(
    authn: &str,
    parms: Option<&str>,
    secrets: &Secrets,
) -> Result<Auth, ParamError> {
    parse_expanding(authn, parms.unwrap_or(""), |pairs| {
        expand_values(pairs, secrets)
    })
}

type Pairs = Vec<(String, String)>;

fn parse_expanding(
    authn: &str,
    parms: &str,
    expand: impl Fn(Pairs) -> Result<Pairs, ParamError>,
) -> Result<Auth, ParamError> {
    // The kind's needs head a split error: `BASIC needs user and password: ...`.
    let pairs = |needs: &str| {
        let pairs = split_params(parms).map_err(|e| format!("{needs}: {e}"))?;
        expand(pairs)
    };
    match authn.trim().to_ascii_uppercase().as_str() {
        "NONE" | "" => Ok(Auth::None),
        "BASIC" => parse_basic(pairs(BASIC_NEEDS)?),
        "OPENSTACK" | "KEYSTONE" => {
            parse_keystone(pairs(KEYSTONE_NEEDS)?).map(|p| Auth::OpenStack(Box::new(p)))
        }
        "BEARER" => bearer_token(pairs(BEARER_NEEDS)?).map(|token| Auth::Bearer { token }),
        "OAUTH2" => oauth2_params(pairs(OAUTH2_NEEDS)?).map(|p| Auth::OAuth2(Box::new(p))),
        other => Err(format!(
            "unknown authn `{}`: use NONE, BASIC, BEARER, OAUTH2 or OPENSTACK",
            crate::base::text::clip_marked(&crate::base::text::visible(other), 40)
        )),
    }
}

/// Splits `key=value,key=value`: keys trimmed and lower-cased, values trimmed, a value may
/// contain `=`. An item without `=` is an error, and so is a key given twice.
pub fn split_params(parms: &str) -> Result<Vec<(String, String)>, ParamError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in parms.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            let key = crate::base::text::clip(item, 40);
            return Err(format!("parameter `{key}` has no `=value`"));
        };
        let key = key.trim().to_ascii_lowercase();
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("parameter `{key}` is given twice"));
        }
        pairs.push((key, value.trim().to_string()));
    }
    Ok(pairs)
}

/// `pairs` with the `${secret:NAME}` references in each value replaced from `secrets`: after
/// the split, so that a value may hold a `,` once expanded. An error names the parameter.
pub fn expand_values(
    pairs: Vec<(String, String)>,
    secrets: &Secrets,
) -> Result<Vec<(String, String)>, ParamError> {
    pairs
        .into_iter()
        .map(|(key, value)| match secrets.expand(&value) {
            Ok(expanded) => Ok((key, expanded.into_owned())),
            Err(e) => Err(format!("authn_parms {key}: {e}")),
        })
        .collect()
}

/// `OAUTH2` parameters: `token_url`, `client_id` and `client_secret`, optional `scope`,
/// `audience` and `auth` (`basic`, the default, or `post`). Any other key is an error: a
/// misspelt optional one would otherwise be dropped without a word.
pub fn oauth2_params(mut pairs: Vec<(String, String)>) -> Result<OAuth2Params, ParamError> {
    const TAKES: &str = "token_url, client_id, client_secret, scope, audience and auth";
    let token_url = take(&mut pairs, "token_url");
    let client_id = take(&mut pairs, "client_id");
    let client_secret = take(&mut pairs, "client_secret");
    let (Some(token_url), Some(client_id), Some(client_secret)) =
        (token_url, client_id, client_secret)
    else {
        return Err(OAUTH2_NEEDS.to_string());
    };
    let token_url = WebUrl::parse(&token_url).map_err(|e| format!("token_url: {e}"))?;
    let client_auth = match take(&mut pairs, "auth").map(|a| a.to_ascii_lowercase()) {
        None => ClientAuth::Basic,
        Some(a) if a == "basic" => ClientAuth::Basic,
        Some(a) if a == "post" => ClientAuth::Post,
        Some(other) => {
            let other = crate::base::text::clip_marked(&other, 20);
            return Err(format!("auth `{other}` is not basic or post"));
        }
    };
    let params = OAuth2Params {
        token_url,
        client_id,
        client_secret: Secret(client_secret),
        scope: take(&mut pairs, "scope"),
        audience: take(&mut pairs, "audience"),
        client_auth,
    };
    match pairs.first() {
        Some((key, _)) => Err(format!("unknown parameter `{key}`: OAUTH2 takes {TAKES}")),
        None => Ok(params),
    }
}

/// `BEARER` parameters: `token`, sent as `Authorization: Bearer <token>`.
pub fn bearer_token(mut pairs: Vec<(String, String)>) -> Result<Secret, ParamError> {
    let token = take(&mut pairs, "token").ok_or_else(|| BEARER_NEEDS.to_string())?;
    if let Some((key, _)) = pairs.first() {
        return Err(format!(
            "unknown parameter `{key}`: BEARER takes token only"
        ));
    }
    // It goes into a header as it is (RFC 6750's b64token is narrower still).
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("BEARER token holds a space or a character a header cannot carry".into());
    }
    Ok(Secret(token))
}

fn take(pairs: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let at = pairs.iter().position(|(k, _)| k == key)?;
    let value = pairs.remove(at).1;
    (!value.is_empty()).then_some(value)
}

const BASIC_NEEDS: &str = "BASIC needs user and password";
const BEARER_NEEDS: &str = "BEARER needs token";
const OAUTH2_NEEDS: &str = "OAUTH2 needs token_url, client_id and client_secret";

fn parse_basic(mut pairs: Pairs) -> Result<Auth, ParamError> {
    match (take(&mut pairs, "user"), take(&mut pairs, "password")) {
        (Some(user), Some(password)) => Ok(Auth::Basic {
            user,
            password: Secret(password),
        }),
        _ => Err(BASIC_NEEDS.to_string()),
    }
}

const KEYSTONE_NEEDS: &str =
    "OPENSTACK needs user, password, osauthendpoint and tenantid (or project)";

fn parse_keystone(mut pairs: Pairs) -> Result<KeystoneParams, ParamError> {
    let user = take(&mut pairs, "user");
    let password = take(&mut pairs, "password");
    let endpoint = take(&mut pairs, "osauthendpoint");
    let project_id = take(&mut pairs, "tenantid").or_else(|| take(&mut pairs, "projectid"));
    let project_name = take(&mut pairs, "project");
    let (Some(user), Some(password), Some(endpoint)) = (user, password, endpoint) else {
        return Err(KEYSTONE_NEEDS.to_string());
    };
    if project_id.is_none() && project_name.is_none() {
        return Err(KEYSTONE_NEEDS.to_string());
    }
    let endpoint = WebUrl::parse(&endpoint).map_err(|e| format!("osauthendpoint: {e}"))?;
    let version = match take(&mut pairs, "identityversion").as_deref() {
        Some("2") | Some("2.0") | Some("v2") | Some("v2.0") => IdentityVersion::V2,
        Some("3") | Some("v3") => IdentityVersion::V3,
        Some(other) => return Err(format!("identityversion `{other}` is not 2 or 3")),
        None => version_from_path(endpoint.path()),
    };
    if version == IdentityVersion::V2 && project_id.is_none() {
        return Err("OPENSTACK with Keystone v2 needs tenantid".to_string());
    }
    Ok(KeystoneParams {
        endpoint,
        version,
        user,
        password: Secret(password),
        user_domain: take(&mut pairs, "userdomain").unwrap_or_else(|| "Default".into()),
        project_id,
        project_name,
        project_domain: take(&mut pairs, "projectdomain").unwrap_or_else(|| "Default".into()),
    })
}

/// `/v2.0` in the endpoint path means v2, as the original spoke; anything else v3, which every
/// current cloud speaks.
fn version_from_path(path: &str) -> IdentityVersion {
    if path
        .split('/')
        .any(|seg| seg.eq_ignore_ascii_case("v2.0") || seg.eq_ignore_ascii_case("v2"))
    {
        IdentityVersion::V2
    } else {
        IdentityVersion::V3
    }
}

/// `authn_parms` with every password, secret and token replaced and every URL
/// (`osauthendpoint`, `token_url`) in its display form, for the CLI and e-mails.
pub fn redact_params(parms: &str) -> String {
    parms
        .split(',')
        .map(|item| match item.split_once('=') {
            // A URL, not a token, though its name holds `token`.
            Some((key, value)) if key.trim().eq_ignore_ascii_case("token_url") => {
                format!("{}={}", key.trim(), crate::base::urls::shown(value.trim()))
            }
            Some((key, _)) if crate::base::urls::is_secret_param(key) => {
                format!("{}=***", key.trim())
            }
            Some((key, value)) if value.contains("://") => {
                format!("{}={}", key.trim(), crate::base::urls::shown(value.trim()))
            }
            _ => item.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
