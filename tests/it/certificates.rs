//! TLS certificate expiry: an HTTPS service of a private CA whose certificate expires in five
//! days raises one CERTIFICATE alert (e-mail and webhook) however often it is checked; its
//! renewal with another short-lived certificate raises one more; a long-lived one none. The
//! row, `targets ID` and the trace show the expiry and the issuer.

use std::time::Duration;

use crate::support::notify::{add_notifier, mail_notifier, SmtpOptions, SmtpServer};
use crate::support::receiver::Receiver;
use crate::support::servers::{serve_tls_private_ca_until, write_response, Server};
use crate::support::{stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// An HTTPS health endpoint whose certificate expires `days` from today; the CA's PEM is
/// written to `ca_file`.
fn service(db: &TestDb, days: i64, ca_file: &str) -> Server {
    let (server, ca) =
        serve_tls_private_ca_until(Some(days), |_, w| write_response(w, "200 OK", &[], b"ok"));
    std::fs::write(db.dir.join(ca_file), ca).unwrap();
    server
}

fn certificate_alerts(db: &TestDb, id: u64) -> u64 {
    db.one(&format!(
        "SELECT COUNT(*) FROM alerts WHERE target_id = {id} AND kind = 'CERTIFICATE'"
    ))
}

fn pass_count(db: &TestDb, id: u64) -> u64 {
    db.one(&format!("SELECT pass_count FROM targets WHERE id = {id}"))
}

/// Moves the target to another server (and its CA): what a renewal looks like to a check.
fn point_at(db: &TestDb, id: u64, server: &Server, ca_file: &str) {
    db.exec(&format!(
        "UPDATE targets SET url = '{}', ca_file = '{}' WHERE id = {id}",
        server.https_url("/health"),
        db.dir.join(ca_file).display()
    ));
}

#[test]
fn a_certificate_near_expiry_alerts_once_per_certificate() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let receiver = Receiver::start(200);
    add_notifier(&db, "hook", "WEBHOOK", &receiver.url("/hook"), "", true);
    let soon = service(&db, 5, "ca-soon.pem");
    let id = db.add_target(
        "name, url, frequency, timeout, ca_file",
        &format!(
            "'payments', '{}', 1, 2, '{}'",
            soon.https_url("/health"),
            db.dir.join("ca-soon.pem").display()
        ),
    );
    let _daemon = Daemon::start(&db);

    let mail = smtp.wait_messages(1);
    let subject = mail[0]["subject"].as_str().unwrap().to_string();
    assert!(
        subject.starts_with("Skypunch CERTIFICATE of payments expires in "),
        "{subject}"
    );
    let body = mail[0]["text"].as_str().unwrap_or_default().to_string();
    assert!(body.contains("Certificate Issuer"), "{body}");
    assert!(body.contains("CN=skypunch test CA"), "{body}");
    let hook = wait_for(WAIT, "the webhook", || receiver.to("/hook").pop());
    let json = hook.json();
    assert_eq!(json["kind"], "CERTIFICATE");
    assert_eq!(json["certificate"]["issuer"], "CN=skypunch test CA");
    assert!(json["certificate"]["expires"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // More checks of the same certificate: no second alert.
    let checks = pass_count(&db, id);
    wait_for(WAIT, "three more checks", || {
        (pass_count(&db, id) >= checks + 3).then_some(())
    });
    assert_eq!(certificate_alerts(&db, id), 1);
    let (expires, issuer): (String, String) = db.one(&format!(
        "SELECT CAST(cert_expires_at AS CHAR), cert_issuer FROM targets WHERE id = {id}"
    ));
    assert_eq!(issuer, "CN=skypunch test CA");
    let shown = stdout(&db.cli(&["targets", &id.to_string()]));
    assert!(shown.contains(&expires), "{shown}");
    assert!(shown.contains("CN=skypunch test CA"), "{shown}");
    let trace: String = db.one(&format!("SELECT last_trace FROM targets WHERE id = {id}"));
    assert!(
        trace
            .contains("TLS handshake done; certificate of localhost issued by CN=skypunch test CA"),
        "{trace}"
    );

    // Renewed, but with another short-lived certificate: one more alert.
    let renewed = service(&db, 6, "ca-renewed.pem");
    point_at(&db, id, &renewed, "ca-renewed.pem");
    wait_for(WAIT, "the alert for the renewed certificate", || {
        (certificate_alerts(&db, id) == 2).then_some(())
    });
    smtp.wait_messages(2);

    // Renewed for a year: the row follows, and nobody is told.
    let good = service(&db, 365, "ca-good.pem");
    point_at(&db, id, &good, "ca-good.pem");
    wait_for(WAIT, "the long-lived certificate in the row", || {
        let days: i64 = db.one(&format!(
            "SELECT DATEDIFF(cert_expires_at, UTC_TIMESTAMP()) FROM targets WHERE id = {id}"
        ));
        (days > 300).then_some(())
    });
    let checks = pass_count(&db, id);
    wait_for(WAIT, "two more checks", || {
        (pass_count(&db, id) >= checks + 2).then_some(())
    });
    assert_eq!(certificate_alerts(&db, id), 2);
    assert_eq!(receiver.to("/hook").len(), 2);
}

/// The body of `GET /metrics` from the daemon's HTTP server (on the port it logged).
fn scrape(db: &TestDb) -> String {
    use std::io::{Read, Write};
    let port = wait_for(WAIT, "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn cert_warn_days_zero_never_alerts_and_plain_http_clears_the_columns() {
    let db = TestDb::new();
    let soon = service(&db, 3, "ca.pem");
    let id = db.add_target(
        "name, url, frequency, timeout, ca_file, cert_warn_days",
        &format!(
            "'quiet', '{}', 1, 2, '{}', 0",
            soon.https_url("/health"),
            db.dir.join("ca.pem").display()
        ),
    );
    db.write_config("StatsInterval: 0\n[http]\nListen: 127.0.0.1:0");
    let _daemon = Daemon::start(&db);
    wait_for(WAIT, "the certificate in the row", || {
        let issuer: Option<String> =
            db.one(&format!("SELECT cert_issuer FROM targets WHERE id = {id}"));
        issuer
    });
    // The metrics give the expiry, as the row has it.
    let expires: i64 = db.one(&format!(
        "SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', cert_expires_at) FROM targets WHERE id = {id}"
    ));
    let metrics = scrape(&db);
    let series = format!("skypunch_target_cert_expiry_timestamp_seconds{{id=\"{id}\"");
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series}:\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value as i64, expires, "{line}");
    let checks = pass_count(&db, id);
    wait_for(WAIT, "two more checks", || {
        (pass_count(&db, id) >= checks + 2).then_some(())
    });
    assert_eq!(certificate_alerts(&db, id), 0);

    db.exec(&format!(
        "UPDATE targets SET url = '{}' WHERE id = {id}",
        soon.url("/health")
    ));
    wait_for(WAIT, "the columns cleared by a plain HTTP check", || {
        let cleared: u64 = db.one(&format!(
            "SELECT COUNT(*) FROM targets WHERE id = {id} AND cert_expires_at IS NULL \
             AND cert_issuer IS NULL"
        ));
        (cleared == 1).then_some(())
    });
}

#[test]
fn an_smtp_server_of_a_private_ca_is_trusted_through_ca_file() {
    let db = TestDb::new();
    let dir = db.dir.join("mail");
    let smtp = SmtpServer::start(
        &dir,
        &SmtpOptions {
            starttls: true,
            ..SmtpOptions::default()
        },
    );
    // smtp_server.py's certificate is signed by a CA it made (ca.pem).
    let ca = dir.join("ca.pem");
    let base = format!("server=localhost,port={},tls=starttls", smtp.port);
    let trusted = add_notifier(
        &db,
        "private",
        "SMTP",
        "ops@example.com",
        &format!("{base},ca_file={}", ca.display()),
        true,
    );
    let untrusted = add_notifier(&db, "public-only", "SMTP", "ops@example.com", &base, true);
    let lost = add_notifier(
        &db,
        "lost",
        "SMTP",
        "ops@example.com",
        &format!("{base},ca_file=/nonexistent/ca.pem"),
        true,
    );

    let ok = db.cli(&["notifiers", &trusted.to_string(), "test"]);
    assert_eq!(ok.status.code(), Some(0), "{}", crate::support::stderr(&ok));
    let mail = smtp.wait_messages(1);
    assert_eq!(mail[0]["tls"], true);

    let bad = db.cli(&["notifiers", &untrusted.to_string(), "test"]);
    assert_ne!(bad.status.code(), Some(0));
    let why = format!("{}{}", stdout(&bad), crate::support::stderr(&bad));
    assert!(why.to_lowercase().contains("certificate"), "{why}");

    let missing = db.cli(&["notifiers", &lost.to_string(), "test"]);
    assert_ne!(missing.status.code(), Some(0));
    let why = format!("{}{}", stdout(&missing), crate::support::stderr(&missing));
    assert!(
        why.contains("ca_file /nonexistent/ca.pem: cannot read it"),
        "{why}"
    );
    assert_eq!(smtp.messages().len(), 1);
}
