//! The real servers issue 26's check tests run against, met as a client meets them: nginx
//! that asks for a client certificate and takes only its CA's, tinyproxy that carries a
//! request by CONNECT and asks for its credentials. Their helpers are in support/nginx.rs and
//! support/tinyproxy.rs.

use std::path::PathBuf;
use std::sync::Arc;

use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::support::nginx::MtlsServer;
use crate::support::servers::respond;
use crate::support::tinyproxy::Proxy;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skypunch-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The certificates and the key in a PEM file.
fn pem(path: &PathBuf) -> (Vec<Certificate<'static>>, Option<PrivateKey<'static>>) {
    let bytes = std::fs::read(path).unwrap();
    let (mut certs, mut key) = (Vec::new(), None);
    for item in parse_pem(&bytes) {
        match item.unwrap() {
            PemItem::Certificate(c) => certs.push(c),
            PemItem::PrivateKey(k) => key = Some(k),
            _ => {}
        }
    }
    (certs, key)
}

/// GET `url` trusting `ca`, presenting `client` (certificate file, key file) if any: the
/// status and body.
fn get(url: &str, ca: &PathBuf, client: Option<(&PathBuf, &PathBuf)>) -> (u16, String) {
    let client = client.map(|(cert, key)| {
        let (certs, _) = pem(cert);
        let (_, key) = pem(key);
        ClientCert::new_with_certs(&certs, key.unwrap())
    });
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(pem(ca).0)))
        .client_cert(client)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into();
    let mut answer = agent.get(url).call().unwrap();
    let status = answer.status().as_u16();
    (status, answer.body_mut().read_to_string().unwrap())
}

#[test]
fn nginx_asks_for_a_client_certificate_and_takes_only_its_cas() {
    let dir = folder("mtls");
    let nginx = MtlsServer::start(&dir);
    let url = nginx.url("/health");
    assert_eq!(get(&url, &nginx.ca, None).0, 400, "no certificate");
    let (status, body) = get(
        &url,
        &nginx.ca,
        Some((&nginx.client_cert, &nginx.client_key)),
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "mtls ok CN=skypunch-client\n")
    );
    let both = get(
        &url,
        &nginx.ca,
        Some((&nginx.client_both, &nginx.client_both)),
    );
    assert_eq!(both.0, 200, "certificate and key in one file");
    let stranger = get(
        &url,
        &nginx.ca,
        Some((&nginx.stranger_cert, &nginx.stranger_key)),
    );
    assert_eq!(stranger.0, 400, "a certificate of another CA");
    let log = nginx.access_log();
    assert!(
        log.contains("\"GET /health HTTP/1.1\" 200 \"CN=skypunch-client\""),
        "{log}"
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tinyproxy_carries_a_request_by_connect_and_asks_for_its_credentials() {
    let dir = folder("proxy");
    let target = respond("200 OK", "through the proxy");
    let proxy = Proxy::start(&dir, Some(("probe", "pr0xy-pw")));
    let through = |proxy_url: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(Some(ureq::Proxy::new(proxy_url).unwrap()))
            .http_status_as_error(false)
            .build()
            .into();
        agent.get(target.url("/x")).call()
    };
    let mut answer = through(&proxy.url(Some(("probe", "pr0xy-pw")))).unwrap();
    assert_eq!(
        answer.body_mut().read_to_string().unwrap(),
        "through the proxy"
    );
    let connect = format!("CONNECT {} HTTP/1.1", target.addr);
    assert_eq!(proxy.requests(), [connect], "its log shows the request");
    assert!(through(&proxy.url(None)).is_err(), "no credentials: 407");
    assert_eq!(target.hits(), 1);
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}
