//! The unit tests of [`super`]: `authn` and `authn_parms` parsed, secrets filled in and never
//! shown.

use super::*;

#[test]
fn basic_is_parsed_robustly() {
    let auth = parse("basic", Some(" password = a=b , user=ops ")).unwrap();
    assert_eq!(
        auth,
        Auth::Basic {
            user: "ops".into(),
            password: Secret::new("a=b")
        }
    );
}

#[test]
fn basic_without_password_is_a_config_error() {
    assert_eq!(
        parse("BASIC", Some("user=ops")).unwrap_err(),
        "BASIC needs user and password"
    );
    assert_eq!(
        parse("BASIC", None).unwrap_err(),
        "BASIC needs user and password"
    );
    assert_eq!(
        parse("BASIC", Some("user=,password=x")).unwrap_err(),
        "BASIC needs user and password"
    );
}

#[test]
fn keystone_version_follows_the_endpoint_path() {
    let v2 = "user=u,password=p,osauthendpoint=http://k:5000/v2.0/tokens,tenantid=t";
    let Auth::OpenStack(k) = parse("OPENSTACK", Some(v2)).unwrap() else {
        panic!()
    };
    assert_eq!(k.version, IdentityVersion::V2);
    let v3 = "user=u,password=p,osauthendpoint=https://k/identity/v3,tenantid=t";
    let Auth::OpenStack(k) = parse("OPENSTACK", Some(v3)).unwrap() else {
        panic!()
    };
    assert_eq!(
        (k.version, k.user_domain.as_str()),
        (IdentityVersion::V3, "Default")
    );
}

#[test]
fn keystone_errors_are_config_errors() {
    assert!(parse("OPENSTACK", Some("user=u,password=p"))
        .unwrap_err()
        .starts_with("OPENSTACK needs"));
    let ftp = "user=u,password=p,osauthendpoint=ftp://k/v3,tenantid=t";
    assert!(parse("OPENSTACK", Some(ftp))
        .unwrap_err()
        .contains("osauthendpoint: url `ftp://k/v3` is not an absolute http:// or https://"));
    assert!(parse("LDAP", None)
        .unwrap_err()
        .starts_with("unknown authn `LDAP`"));
}

fn oauth2(parms: &str) -> Result<OAuth2Params, ParamError> {
    oauth2_params(split_params(parms)?)
}

#[test]
fn oauth2_takes_the_client_credentials_and_optional_scope_audience_and_auth() {
    let p = oauth2("token_url=https://auth.example/oauth/token, client_id=mon, client_secret=s=1")
        .unwrap();
    assert_eq!(p.token_url.as_str(), "https://auth.example/oauth/token");
    assert_eq!(
        (p.client_id.as_str(), p.client_secret.expose()),
        ("mon", "s=1")
    );
    assert_eq!(
        (p.scope, p.audience, p.client_auth),
        (None, None, ClientAuth::Basic)
    );
    let p = oauth2(
        "token_url=http://127.0.0.1:9/t,client_id=a,client_secret=b,scope=read write,\
             audience=https://api.example,auth=POST",
    )
    .unwrap();
    assert_eq!(p.scope.as_deref(), Some("read write"));
    assert_eq!(p.audience.as_deref(), Some("https://api.example"));
    assert_eq!(p.client_auth, ClientAuth::Post);
}

#[test]
fn oauth2_errors_are_config_errors_naming_the_parameter() {
    let needs = "OAUTH2 needs token_url, client_id and client_secret";
    assert_eq!(
        oauth2("token_url=http://a/t,client_id=x").unwrap_err(),
        needs
    );
    assert_eq!(
        oauth2("token_url=http://a/t,client_id=x,client_secret=").unwrap_err(),
        needs
    );
    assert!(oauth2("token_url=ftp://a/t,client_id=x,client_secret=y")
        .unwrap_err()
        .starts_with("token_url: url `ftp://a/t` is not an absolute"));
    assert_eq!(
        oauth2("token_url=http://a/t,client_id=x,client_secret=y,auth=jwt").unwrap_err(),
        "auth `jwt` is not basic or post"
    );
    assert_eq!(
        oauth2("token_url=http://a/t,client_id=x,client_secret=y,scopes=read").unwrap_err(),
        "unknown parameter `scopes`: OAUTH2 takes token_url, client_id, client_secret, \
             scope, audience and auth"
    );
}

#[test]
fn bearer_takes_one_token_fit_for_a_header() {
    let token = bearer_token(split_params("token=eyJ.abc-_~+/=").unwrap()).unwrap();
    assert_eq!(token.expose(), "eyJ.abc-_~+/=");
    let err = |p: &str| bearer_token(split_params(p).unwrap()).unwrap_err();
    assert_eq!(err(""), "BEARER needs token");
    assert_eq!(
        err("token=a b"),
        "BEARER token holds a space or a character a header cannot carry"
    );
    assert_eq!(
        err("token=a,user=b"),
        "unknown parameter `user`: BEARER takes token only"
    );
}

#[test]
fn bearer_and_oauth2_are_authn_kinds() {
    let bearer = parse("bearer", Some("token=eyJ.abc")).unwrap();
    assert_eq!(
        (bearer.kind(), &bearer),
        (
            "BEARER",
            &Auth::Bearer {
                token: Secret::new("eyJ.abc")
            }
        )
    );
    let parms = "token_url=http://127.0.0.1:9/token,client_id=mon,client_secret=s";
    let Auth::OAuth2(p) = parse("OAUTH2", Some(parms)).unwrap() else {
        panic!("not OAUTH2")
    };
    assert_eq!(p.client_id, "mon");
    assert_eq!(
        parse("OAUTH2", Some("client_id=mon")).unwrap_err(),
        "OAUTH2 needs token_url, client_id and client_secret"
    );
    assert_eq!(parse("BEARER", None).unwrap_err(), "BEARER needs token");
    assert_eq!(
        parse("KERBEROS", None).unwrap_err(),
        "unknown authn `KERBEROS`: use NONE, BASIC, BEARER, OAUTH2 or OPENSTACK"
    );
}

#[test]
fn secret_references_are_expanded_after_the_split() {
    let mut secrets = Secrets::new();
    secrets.insert("CS", "with,comma=and more");
    let pairs = split_params("client_id=a,client_secret=${secret:CS}").unwrap();
    let pairs = expand_values(pairs, &secrets).unwrap();
    assert_eq!(pairs[1].1, "with,comma=and more");
    let missing = split_params("token=${secret:NOPE}").unwrap();
    assert!(expand_values(missing, &secrets)
        .unwrap_err()
        .starts_with("authn_parms token: unknown secret `NOPE`"));
}

#[test]
fn a_row_may_name_its_password_in_the_secrets() {
    let mut secrets = Secrets::new();
    secrets.insert("OPS_PW", "pa,ss=word");
    let auth = parse_with_secrets(
        "BASIC",
        Some("user=ops,password=${secret:OPS_PW}"),
        &secrets,
    );
    assert_eq!(
        auth.unwrap(),
        Auth::Basic {
            user: "ops".into(),
            password: Secret::new("pa,ss=word")
        }
    );
    let unknown = parse_with_secrets("BASIC", Some("user=ops,password=${secret:X}"), &secrets);
    assert!(unknown
        .unwrap_err()
        .starts_with("authn_parms password: unknown secret `X`"));
    let broken = parse_with_secrets("BASIC", Some("user"), &secrets).unwrap_err();
    assert_eq!(
        broken,
        "BASIC needs user and password: parameter `user` has no `=value`"
    );
    assert_eq!(
        parse("BASIC", Some("user=ops,password=${secret:X}")).unwrap(),
        Auth::Basic {
            user: "ops".into(),
            password: Secret::new("${secret:X}")
        },
        "parse alone takes the text as written"
    );
}

#[test]
fn oauth2_and_bearer_secrets_are_redacted_but_not_the_token_url() {
    assert_eq!(
        redact_params("token_url=https://u:p@auth/t?x=1,client_id=mon,client_secret=s3"),
        "token_url=https://***@auth/t?x=1,client_id=mon,client_secret=***"
    );
    assert_eq!(redact_params("token=eyJabc"), "token=***");
    let p = oauth2("token_url=http://a/t,client_id=x,client_secret=hunter2").unwrap();
    assert!(!format!("{p:?}").contains("hunter2"));
}

#[test]
fn secrets_are_redacted() {
    assert_eq!(redact_params("user=a, password=b=c"), "user=a,password=***");
    assert_eq!(
        redact_params("osauthendpoint=https://u:pw@ks/v3?api_key=k,tenantid=t"),
        "osauthendpoint=https://***@ks/v3?api_key=***,tenantid=t"
    );
    assert_eq!(format!("{:?}", Secret::new("x")), "(redacted)");
}
