//! One check against real servers on 127.0.0.1: every outcome a target can produce.

use std::io::Write;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use skypunch::authn::{Auth, Secret};
use skypunch::{CheckError, CheckOutcome, CheckSettings, Checker, Method, Phase, Target, Verdict};

use crate::support::servers::{
    respond, serve, serve_tls, target, write_response, ClosedPort, Server,
};

fn check(t: &Target) -> CheckOutcome {
    Checker::new(CheckSettings::default()).check(t)
}

#[track_caller]
fn assert_fail(outcome: &CheckOutcome, description: &str) {
    assert_eq!(outcome.verdict, Verdict::Fail, "{}", outcome.trace);
    assert_eq!(outcome.description, description, "{}", outcome.trace);
    let last = outcome.trace.steps().last().unwrap();
    assert_eq!(last.text, format!("[Fail] reason: {description}"));
}

/// CheckResult by the timeout, with a generous margin for a loaded machine.
#[track_caller]
fn assert_bounded(outcome: &CheckOutcome, timeout: Duration) {
    assert!(
        outcome.elapsed >= timeout.mul_f32(0.9),
        "{:?}",
        outcome.elapsed
    );
    assert!(
        outcome.elapsed < timeout + Duration::from_millis(1500),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn a_matching_status_passes_with_the_reason_phrase_and_a_full_trace() {
    let server = respond("200 OK", "hello");
    let outcome = check(&target(&server.url("/health")));
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    assert_eq!(
        (outcome.description.as_str(), outcome.http_status),
        ("OK", Some(200))
    );
    let text = outcome.trace.to_string();
    for line in [
        "resolved host to 127.0.0.1",
        &format!("connected to {}", server.addr),
        &format!("GET {} sent", server.url("/health")),
        "first byte of the response",
        "response 200 OK",
        "read 5 bytes of body",
        "[Pass] OK",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    let request = server.last();
    assert_eq!(request.header("connection"), Some("close"));
}

#[test]
fn each_check_opens_a_new_connection() {
    let server = respond("200 OK", "");
    let checker = Checker::new(CheckSettings::default());
    let t = target(&server.url("/"));
    for _ in 0..3 {
        assert_eq!(checker.check(&t).verdict, Verdict::Pass);
    }
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[test]
fn a_status_mismatch_fails_naming_both() {
    let server = respond("503 Service Unavailable", "down");
    let outcome = check(&target(&server.url("/")));
    assert_fail(&outcome, "target status:503 != 200");
    assert_eq!(
        outcome.error,
        Some(CheckError::Status {
            expected: 200,
            got: 503
        })
    );
    assert_eq!(outcome.http_status, Some(503));
}

#[test]
fn a_closed_port_is_connection_refused() {
    let closed = ClosedPort::new();
    let port = closed.port;
    let outcome = check(&target(&format!("http://127.0.0.1:{port}/")));
    assert_fail(&outcome, &format!("connection refused (127.0.0.1:{port})"));
    assert!(
        matches!(
            outcome.error,
            Some(CheckError::NoResponse {
                phase: Phase::Connecting,
                ..
            })
        ),
        "{:?}",
        outcome.error
    );
    assert_eq!(outcome.http_status, None);
}

#[test]
fn an_unknown_host_is_named() {
    // `.invalid` names never exist (RFC 6761): the checker knows it without asking the
    // machine's resolver, so this holds on a machine with no DNS at all.
    let outcome = check(&target("http://nosuch.invalid/"));
    assert_fail(&outcome, "unknown host nosuch.invalid");
    assert!(
        matches!(
            outcome.error,
            Some(CheckError::NoResponse {
                phase: Phase::Resolving,
                ..
            })
        ),
        "{:?}",
        outcome.error
    );
}

#[test]
fn a_full_accept_queue_is_a_connect_timeout() {
    // A listening socket with a backlog of 0 whose queue we fill ourselves: further SYNs are
    // dropped by Linux, so connecting hangs as it does to a host that is down.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    unsafe {
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut got = addr;
        let mut got_len = len;
        libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut got_len);
        addr.sin_port = got.sin_port;
    }
    let port = u16::from_be(addr.sin_port);
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            let a = format!("127.0.0.1:{port}").parse().unwrap();
            std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).ok()
        })
        .collect();
    let mut t = target(&format!("http://127.0.0.1:{port}/"));
    t.timeout = Duration::from_secs(1);
    let outcome = check(&t);
    assert_fail(
        &outcome,
        &format!("connect timed out after 1s (127.0.0.1:{port})"),
    );
    assert_bounded(&outcome, t.timeout);
    drop(fillers);
    unsafe { libc::close(fd) };
}

#[test]
fn a_server_that_never_answers_times_out_waiting_for_the_response() {
    let server = serve(|_, _| {
        thread::sleep(Duration::from_secs(5));
        Ok(())
    });
    let mut t = target(&server.url("/"));
    t.timeout = Duration::from_secs(1);
    let outcome = check(&t);
    assert_fail(&outcome, "timed out after 1s waiting for the response");
    assert!(
        matches!(
            outcome.error,
            Some(CheckError::NoResponse {
                phase: Phase::Waiting | Phase::Receiving,
                ..
            })
        ),
        "{:?}",
        outcome.error
    );
    assert_bounded(&outcome, t.timeout);
    assert!(
        outcome.trace.to_string().contains("GET "),
        "{}",
        outcome.trace
    );
}

#[test]
fn a_dripping_body_times_out_while_reading_it() {
    let server = serve(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")?;
        for _ in 0..1000 {
            w.write_all(b"x")?;
            w.flush()?;
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    });
    let mut t = target(&server.url("/"));
    t.timeout = Duration::from_secs(1);
    let outcome = check(&t);
    assert_fail(
        &outcome,
        "timed out after 1s while reading the response body",
    );
    assert_eq!(outcome.http_status, Some(200));
    assert_bounded(&outcome, t.timeout);
}

#[test]
fn a_body_over_the_limit_fails_with_its_size() {
    let big = vec![b'a'; 2 << 20];
    let server = serve(move |_, w| write_response(w, "200 OK", &[], &big));
    let outcome = check(&target(&server.url("/")));
    assert_fail(&outcome, "response body larger than 1048576 bytes");
    assert_eq!(
        outcome.error,
        Some(CheckError::BodyTooLarge {
            status: 200,
            max: 1 << 20
        })
    );
}

#[test]
fn an_endless_body_is_cut_at_the_limit() {
    let server = serve(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
        let chunk = [b'z'; 64 * 1024];
        loop {
            w.write_all(&chunk)?;
        }
    });
    let settings = CheckSettings {
        max_body_bytes: 100_000,
        ..CheckSettings::default()
    };
    let outcome = Checker::new(settings).check(&target(&server.url("/")));
    assert_fail(&outcome, "response body larger than 100000 bytes");
    assert!(outcome.elapsed < Duration::from_secs(2));
}

#[test]
fn garbage_instead_of_http_is_an_invalid_response() {
    let server = serve(|_, w| w.write_all(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n"));
    let outcome = check(&target(&server.url("/")));
    assert_fail(
        &outcome,
        &format!("invalid HTTP response from server ({})", server.addr),
    );
    assert_eq!(outcome.http_status, None);
}

#[test]
fn a_huge_header_is_refused() {
    let server = serve(|_, w| {
        let big = "a".repeat(100 * 1024);
        w.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
    });
    let outcome = check(&target(&server.url("/")));
    assert_fail(
        &outcome,
        &format!(
            "response header too large (more than 65536 bytes) ({})",
            server.addr
        ),
    );
}

fn redirecting() -> Server {
    serve(|req, w| match req.path.as_str() {
        "/old" => write_response(w, "302 Found", &[("Location", "/new")], b""),
        "/loop" => write_response(w, "302 Found", &[("Location", "/loop")], b""),
        _ => write_response(w, "200 OK", &[], b"new"),
    })
}

#[test]
fn redirects_are_followed_only_when_asked() {
    let server = redirecting();
    let mut t = target(&server.url("/old"));
    let outcome = check(&t);
    assert_fail(&outcome, "target status:302 != 200");
    t.follow_redirects = true;
    let outcome = check(&t);
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    assert!(outcome
        .trace
        .to_string()
        .contains("request sent to the redirect location"));
    t.pass_result = 302;
    t.follow_redirects = false;
    assert_eq!(check(&t).verdict, Verdict::Pass);
}

#[test]
fn a_redirect_loop_fails_after_ten_hops() {
    let server = redirecting();
    let mut t = target(&server.url("/loop"));
    t.follow_redirects = true;
    assert_fail(&check(&t), "too many redirects (10)");
    assert_eq!(server.hits(), 11);
}

#[test]
fn head_and_options_send_no_body() {
    let server = respond("200 OK", "");
    let mut t = target(&server.url("/"));
    for method in [Method::Head, Method::Options, Method::Delete] {
        t.method = method;
        assert_eq!(check(&t).verdict, Verdict::Pass);
        assert_eq!(server.last().method, method.as_str());
    }
}

#[test]
fn a_request_body_is_sent_with_its_content_type() {
    let server = respond("201 Created", "");
    let mut t = target(&server.url("/items"));
    t.method = Method::Post;
    t.pass_result = 201;
    t.request_body = Some(r#"{"ping":1}"#.into());
    let outcome = check(&t);
    assert_eq!(
        (outcome.verdict, outcome.description.as_str()),
        (Verdict::Pass, "Created")
    );
    let request = server.last();
    assert_eq!(
        (request.method.as_str(), request.body.as_slice()),
        ("POST", &br#"{"ping":1}"#[..])
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    t.method = Method::Put;
    t.content_type = Some("text/plain".into());
    check(&t);
    assert_eq!(server.last().header("content-type"), Some("text/plain"));
}

#[test]
fn a_self_signed_certificate_fails_unless_verification_is_off() {
    let server = serve_tls(|_, w| write_response(w, "200 OK", &[], b"secure"));
    let mut t = target(&server.https_url("/"));
    let outcome = check(&t);
    let addr = format!("localhost:{}", server.addr.port());
    assert_fail(
        &outcome,
        &format!("TLS error: invalid peer certificate: UnknownIssuer ({addr})"),
    );
    t.verify_tls = false;
    let outcome = check(&t);
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    assert!(outcome.trace.to_string().contains("TLS handshake done"));
}

#[test]
fn plain_text_on_a_tls_port_is_a_tls_error() {
    // Like a plain HTTP server, it answers the ClientHello with a 400 at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            thread::sleep(Duration::from_millis(200));
        }
    });
    let mut t = target(&format!("https://127.0.0.1:{}/", addr.port()));
    t.verify_tls = false;
    let outcome = check(&t);
    assert_eq!(outcome.verdict, Verdict::Fail);
    assert!(
        outcome.description.starts_with("TLS error: "),
        "{}",
        outcome.description
    );
    assert!(outcome.description.ends_with(&format!("({addr})")));
}

#[test]
fn expect_body_must_be_in_the_body() {
    let server = respond("200 OK", r#"{"status":"healthy"}"#);
    let mut t = target(&server.url("/"));
    t.expect_body = Some("healthy".into());
    assert_eq!(check(&t).verdict, Verdict::Pass);
    t.expect_body = Some("xyz".into());
    let outcome = check(&t);
    assert_fail(&outcome, "response body does not contain \"xyz\"");
    assert_eq!(
        outcome.error,
        Some(CheckError::BodyLacks {
            status: 200,
            expected: "xyz".into()
        })
    );
}

#[test]
fn a_slow_answer_fails_max_response_ms() {
    let server = serve(|_, w| {
        thread::sleep(Duration::from_millis(300));
        write_response(w, "200 OK", &[], b"")
    });
    let mut t = target(&server.url("/"));
    t.max_response_ms = Some(100);
    let outcome = check(&t);
    assert_eq!(outcome.verdict, Verdict::Fail);
    assert!(
        matches!(
            outcome.error,
            Some(CheckError::TooSlow {
                status: 200,
                max_ms: 100,
                ..
            })
        ),
        "{:?}",
        outcome.error
    );
    assert!(
        outcome.description.starts_with("response took "),
        "{}",
        outcome.description
    );
    assert!(outcome
        .description
        .ends_with(" ms, more than max_response_ms 100"));
    t.max_response_ms = Some(5000);
    assert_eq!(check(&t).verdict, Verdict::Pass);
}

#[test]
fn basic_auth_is_sent_and_never_shown() {
    let server = respond("200 OK", "");
    let mut t = target(&server.url("/").replace("http://", "http://ops:urlpass@"));
    t.auth = Auth::Basic {
        user: "ops".into(),
        password: Secret::new("s3cr3t-pw"),
    };
    let outcome = check(&t);
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    // base64("ops:s3cr3t-pw")
    assert_eq!(
        server.last().header("authorization"),
        Some("Basic b3BzOnMzY3IzdC1wdw==")
    );
    let text = format!("{}{}", outcome.trace, outcome.description);
    assert!(text.contains("auth: BASIC as user ops"));
    for secret in ["s3cr3t-pw", "b3BzOnMzY3IzdC1wdw", "urlpass"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[test]
fn a_check_takes_no_longer_than_its_timeout_whatever_the_phase() {
    let server = serve(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\n")?;
        thread::sleep(Duration::from_secs(5));
        Ok(())
    });
    let mut t = target(&server.url("/"));
    t.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = check(&t);
    assert_fail(&outcome, "timed out after 1s waiting for the response");
    assert!(started.elapsed() < Duration::from_millis(2500));
}
