//! Checks through a real HTTP proxy (tinyproxy): https targets by CONNECT, http ones in
//! absolute form, both in the proxy's log; a proxy asking for credentials refuses the checks
//! without them (407, said as such) and carries those with them, whose password no output
//! shows, also when it comes from `[secrets]`; `[settings] Proxy` serves the targets without
//! a `proxy_url`, but not the hosts `[settings] NoProxy` names; a proxy that hangs (SIGSTOP)
//! fails checks within their timeout, and a stop abandons a check waiting on it. A proxied
//! check's phases count the connection to the proxy (and its tunnel) as `connect`.

use std::time::Duration;

use crate::support::servers::{respond, serve_tls_private_ca, write_response, ClosedPort, Server};
use crate::support::tinyproxy::Proxy;
use crate::support::{field, stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// An HTTPS service of a private CA, its CA written to `ca.pem` in the test's folder.
fn https_service(db: &TestDb) -> Server {
    let (server, ca) = serve_tls_private_ca(|_, w| write_response(w, "200 OK", &[], b"ok"));
    std::fs::write(db.dir.join("ca.pem"), ca).unwrap();
    server
}

/// A target checking `url` every second with a 5 s timeout, through `proxy` when given; an
/// https one trusts the CA of [`https_service`].
fn add(db: &TestDb, name: &str, url: &str, proxy: Option<&str>) -> u64 {
    add_timed(db, name, url, proxy, 5)
}

fn add_timed(db: &TestDb, name: &str, url: &str, proxy: Option<&str>, timeout: u32) -> u64 {
    let proxy = proxy.map_or("NULL".to_string(), |p| format!("'{p}'"));
    let ca = match url.starts_with("https:") {
        true => format!("'{}'", db.dir.join("ca.pem").display()),
        false => "NULL".to_string(),
    };
    db.add_target(
        "name, url, frequency, timeout, ca_file, proxy_url",
        &format!("'{name}', '{url}', 1, {timeout}, {ca}, {proxy}"),
    )
}

/// The row's status and description once it has been checked.
fn result(db: &TestDb, id: u64) -> (String, String) {
    wait_for(WAIT, &format!("target {id}'s result"), || {
        let (status, description): (String, Option<String>) = db.one(&format!(
            "SELECT status, status_description FROM targets WHERE id = {id}"
        ));
        (status != "NEW").then(|| (status, description.unwrap_or_default()))
    })
}

fn trace(db: &TestDb, id: u64) -> String {
    db.one(&format!("SELECT last_trace FROM targets WHERE id = {id}"))
}

/// The `dns`, `connect` and `tls` seconds of the row's last check.
fn phases(db: &TestDb, id: u64) -> [f64; 3] {
    let json: String = db.one(&format!("SELECT last_phases FROM targets WHERE id = {id}"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    ["dns", "connect", "tls"].map(|p| v[p].as_f64().unwrap_or_else(|| panic!("{p} in {json}")))
}

#[test]
fn https_goes_through_the_proxy_by_connect_and_http_in_absolute_form() {
    let db = TestDb::new();
    db.write_config("");
    let proxy = Proxy::start(&db.dir, None);
    let tls = https_service(&db);
    let plain = respond("200 OK", "ok");
    let secure = add(
        &db,
        "secure",
        &tls.https_url("/health"),
        Some(&proxy.url(None)),
    );
    let http = add(&db, "plain", &plain.url("/health"), Some(&proxy.url(None)));
    let closed = ClosedPort::new();
    let nowhere = format!("http://127.0.0.1:{}", closed.port);
    let refused = add(&db, "no proxy there", &plain.url("/"), Some(&nowhere));
    // Not a proxy: it takes the connection and closes it.
    let slammer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slam_url = format!("http://{}", slammer.local_addr().unwrap());
    std::thread::spawn(move || slammer.incoming().for_each(drop));
    let slammed = add(&db, "not a proxy", &tls.https_url("/"), Some(&slam_url));
    let _daemon = Daemon::start(&db);

    for id in [secure, http] {
        assert_eq!(result(&db, id), ("PASS".to_string(), "OK".to_string()));
    }
    assert_eq!(
        result(&db, refused),
        (
            "FAIL".to_string(),
            format!("cannot connect to proxy {nowhere}: connection refused")
        )
    );
    assert_eq!(
        result(&db, slammed).1,
        format!(
            "proxy closed the connection before answering CONNECT to localhost:{}",
            tls.addr.port()
        )
    );
    let requests = proxy.requests();
    let connect = format!("CONNECT localhost:{} HTTP/1.1", tls.addr.port());
    let absolute = format!("GET {} HTTP/1.1", plain.url("/health"));
    assert!(requests.contains(&connect), "{requests:?}");
    assert!(requests.contains(&absolute), "{requests:?}");
    let secure_trace = trace(&db, secure);
    for line in [
        format!("proxy http://127.0.0.1:{}", proxy.port),
        format!("connected to proxy 127.0.0.1:{}", proxy.port),
        format!("CONNECT localhost:{}: 200", tls.addr.port()),
        "TLS handshake done; certificate of localhost".to_string(),
    ] {
        assert!(
            secure_trace.contains(&line),
            "{line} not in\n{secure_trace}"
        );
    }
    let http_trace = trace(&db, http);
    assert!(
        http_trace.contains(&format!("connected to proxy 127.0.0.1:{}", proxy.port)),
        "{http_trace}"
    );
    // The proxy is an address and resolves the target's name itself: nothing looked up here;
    // the connection to the proxy (and the CONNECT tunnel) is the check's connect.
    let [dns, connect, tls_s] = phases(&db, secure);
    assert_eq!(dns, 0.0, "{secure_trace}");
    assert!(connect > 0.0 && tls_s > 0.0, "{connect} {tls_s}");
    let [dns, connect, tls_s] = phases(&db, http);
    assert_eq!((dns, tls_s), (0.0, 0.0), "{http_trace}");
    assert!(connect > 0.0, "{http_trace}");
    assert!(
        !http_trace.contains(&format!("connected to {}", plain.addr)),
        "{http_trace}"
    );
}

#[test]
fn a_proxy_asking_for_credentials_refuses_checks_without_them_and_no_output_shows_them() {
    let db = TestDb::new();
    db.write_config("\n[secrets]\nPROXY_PW: pr0xy-s3cret\n");
    let login = Some(("monitor", "pr0xy-s3cret"));
    let proxy = Proxy::start(&db.dir, login);
    let tls = https_service(&db);
    let plain = respond("200 OK", "ok");
    let refused_https = add(
        &db,
        "no login https",
        &tls.https_url("/"),
        Some(&proxy.url(None)),
    );
    let refused_http = add(
        &db,
        "no login http",
        &plain.url("/"),
        Some(&proxy.url(None)),
    );
    let with_login = add(
        &db,
        "login https",
        &tls.https_url("/"),
        Some(&proxy.url(login)),
    );
    // The password from [secrets].
    let from_secrets = proxy.url(Some(("monitor", "${secret:PROXY_PW}")));
    let http_login = add(&db, "login http", &plain.url("/"), Some(&from_secrets));
    let _daemon = Daemon::start(&db);

    assert_eq!(
        result(&db, refused_https),
        (
            "FAIL".to_string(),
            format!(
                "proxy refused CONNECT to localhost:{}: 407 Proxy Authentication Required",
                tls.addr.port()
            )
        )
    );
    assert_eq!(
        result(&db, refused_http),
        (
            "FAIL".to_string(),
            format!(
                "proxy refused the request to http://{}: 407 Proxy Authentication Required",
                plain.addr
            )
        )
    );
    for id in [with_login, http_login] {
        assert_eq!(result(&db, id), ("PASS".to_string(), "OK".to_string()));
        let trace = trace(&db, id);
        assert!(
            trace.contains(&format!("proxy http://***@127.0.0.1:{}", proxy.port)),
            "{trace}"
        );
    }
    let shown = stdout(&db.cli(&["targets", &with_login.to_string()]));
    assert_eq!(
        field(&shown, "Proxy"),
        format!("http://***@127.0.0.1:{}", proxy.port)
    );
    let shown_secret = stdout(&db.cli(&["targets", &http_login.to_string()]));
    assert_eq!(
        field(&shown_secret, "Proxy"),
        format!("http://***@127.0.0.1:{}", proxy.port)
    );
    let tested = stdout(&db.cli(&["targets", &http_login.to_string(), "test"]));
    assert!(tested.contains(" PASS (OK)"), "{tested}");
    assert!(tested.contains("proxy http://***@127.0.0.1:"), "{tested}");
    let traces: Vec<String> = db.query("SELECT last_trace FROM targets");
    let outputs = [db.log(), shown, shown_secret, tested, traces.join("\n")];
    for text in outputs {
        assert!(!text.contains("pr0xy-s3cret"), "{text}");
        // base64 of monitor:pr0xy-s3cret, the Proxy-Authorization value.
        assert!(!text.contains("bW9uaXRvcjpwcjB4eS1zM2NyZXQ="), "{text}");
    }
}

#[test]
fn the_default_proxy_serves_targets_without_their_own_but_not_the_no_proxy_hosts() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.dir, None);
    db.write_config(&format!(
        "Proxy: {}\nNoProxy: localhost, .internal.example",
        proxy.url(None)
    ));
    let through = respond("200 OK", "ok");
    let direct = respond("200 OK", "ok");
    let proxied = add(&db, "proxied", &through.url("/a"), None);
    let bypassed_url = format!("http://localhost:{}/b", direct.addr.port());
    let bypassed = add(&db, "bypassed", &bypassed_url, None);
    let _daemon = Daemon::start(&db);

    assert_eq!(result(&db, proxied).0, "PASS");
    assert_eq!(result(&db, bypassed).0, "PASS");
    let requests = proxy.requests();
    assert!(
        requests.contains(&format!("GET {} HTTP/1.1", through.url("/a"))),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|r| !r.contains("/b ")),
        "NoProxy's host went through the proxy: {requests:?}"
    );
    let trace = trace(&db, bypassed);
    assert!(
        trace.contains(&format!("connected to 127.0.0.1:{}", direct.addr.port())),
        "{trace}"
    );
    assert!(!trace.contains("proxy"), "{trace}");
}

#[test]
fn a_hung_proxy_fails_checks_within_their_timeout_and_a_stop_abandons_them() {
    let db = TestDb::new();
    db.write_config("StopGrace: 1");
    let proxy = Proxy::start(&db.dir, None);
    let tls = https_service(&db);
    let url = tls.https_url("/");
    let bounded = add_timed(&db, "bounded", &url, Some(&proxy.url(None)), 2);
    let patient = add_timed(&db, "patient", &url, Some(&proxy.url(None)), 60);
    let daemon = Daemon::start(&db);
    assert_eq!(result(&db, bounded).0, "PASS");
    assert_eq!(result(&db, patient).0, "PASS");

    // Hung: the kernel still completes connections to it, nothing answers CONNECT.
    proxy.signal(libc::SIGSTOP);
    let (description, took_ms): (String, u64) = wait_for(WAIT, "the timed-out check", || {
        let (status, description, ms): (String, Option<String>, Option<u64>) = db.one(&format!(
            "SELECT status, status_description, last_response_ms FROM targets WHERE id = {bounded}"
        ));
        (status == "FAIL").then(|| (description.unwrap_or_default(), ms.unwrap_or_default()))
    });
    assert_eq!(
        description,
        format!(
            "CONNECT to localhost:{} through proxy http://127.0.0.1:{} timed out after 2s",
            tls.addr.port(),
            proxy.port
        )
    );
    assert!(
        took_ms < 6000,
        "the check took {took_ms} ms with a 2 s timeout"
    );

    // The patient target's check waits on the hung proxy for up to 60 s: a stop abandons it
    // after StopGrace, its socket to the proxy shut down.
    let checks: u64 = db.one(&format!(
        "SELECT pass_count FROM targets WHERE id = {patient}"
    ));
    let bound = Duration::from_secs(3 * (1 + 2));
    let (code, took) = daemon.terminate(bound);
    assert_eq!(code, Some(0));
    assert!(took <= bound, "the stop took {took:?}");
    let log = db.log();
    assert!(
        log.contains("checks still in flight after StopGrace (1 s) abandoned"),
        "{log}"
    );
    let after: (u64, u64) = db.one(&format!(
        "SELECT pass_count, fail_count FROM targets WHERE id = {patient}"
    ));
    assert_eq!(after, (checks, 0), "the abandoned check recorded nothing");
}
