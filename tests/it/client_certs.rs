//! Mutual TLS against nginx with `ssl_verify_client on`: a target presents the client
//! certificate its `client_cert` and `client_key` name (or one file holding both) and passes;
//! without one, or with a stranger's, nginx answers 400 and the check says why; a file that
//! cannot be read is the row's config error; a file replaced on disk is presented at the
//! next check, without an edit of the row.

use std::path::Path;
use std::time::Duration;

use crate::support::nginx::MtlsServer;
use crate::support::{field, stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// A target checking `server` every second, trusting its CA, with these client files.
fn add(
    db: &TestDb,
    name: &str,
    server: &MtlsServer,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> u64 {
    let sql = |p: Option<&Path>| p.map_or("NULL".to_string(), |p| format!("'{}'", p.display()));
    db.add_target(
        "name, url, frequency, timeout, ca_file, client_cert, client_key",
        &format!(
            "'{name}', '{}', 1, 5, '{}', {}, {}",
            server.url("/api"),
            server.ca.display(),
            sql(cert),
            sql(key)
        ),
    )
}

/// The row's status and description once it has one that `done` accepts.
fn wait_row(db: &TestDb, id: u64, done: impl Fn(&str, &str) -> bool) -> (String, String) {
    wait_for(WAIT, &format!("target {id}'s result"), || {
        let (status, description): (String, Option<String>) = db.one(&format!(
            "SELECT status, status_description FROM targets WHERE id = {id}"
        ));
        let description = description.unwrap_or_default();
        done(&status, &description).then_some((status, description))
    })
}

fn trace(db: &TestDb, id: u64) -> String {
    db.one(&format!("SELECT last_trace FROM targets WHERE id = {id}"))
}

#[test]
fn mutual_tls_passes_with_the_client_certificate_and_says_why_it_fails_without() {
    let db = TestDb::new();
    db.write_config("");
    let nginx = MtlsServer::start(&db.dir);
    let two_files = add(
        &db,
        "two files",
        &nginx,
        Some(&nginx.client_cert),
        Some(&nginx.client_key),
    );
    let one_file = add(&db, "one file", &nginx, Some(&nginx.client_both), None);
    let none = add(&db, "no certificate", &nginx, None, None);
    let stranger = add(
        &db,
        "stranger",
        &nginx,
        Some(&nginx.stranger_cert),
        Some(&nginx.stranger_key),
    );
    let missing_path = db.dir.join("no-such-client.pem");
    let missing = add(&db, "missing file", &nginx, Some(&missing_path), None);
    let wrong_key = add(
        &db,
        "wrong key",
        &nginx,
        Some(&nginx.client_cert),
        Some(&nginx.stranger_key),
    );
    let _daemon = Daemon::start(&db);

    for id in [two_files, one_file] {
        let (status, description) = wait_row(&db, id, |s, _| s != "NEW");
        assert_eq!((status.as_str(), description.as_str()), ("PASS", "OK"));
        let trace = trace(&db, id);
        assert!(
            trace
                .contains("server asked for a client certificate: presenting CN=skypunch-client ("),
            "{trace}"
        );
    }
    assert!(
        nginx
            .access_log()
            .contains("\"GET /api HTTP/1.1\" 200 \"CN=skypunch-client\""),
        "{}",
        nginx.access_log()
    );

    let (status, description) = wait_row(&db, none, |s, _| s != "NEW");
    assert_eq!(status, "FAIL");
    assert_eq!(
        description,
        "target status:400 != 200; the server asked for a client certificate and the target \
         has none (client_cert)"
    );
    assert!(trace(&db, none).contains("server asked for a client certificate: the target has none"));

    let (status, description) = wait_row(&db, stranger, |s, _| s != "NEW");
    assert_eq!(status, "FAIL");
    assert_eq!(
        description,
        "target status:400 != 200; the server may have refused client certificate CN=stranger"
    );
    assert!(
        trace(&db, stranger).contains(&format!(
            "presenting CN=stranger ({})",
            nginx.stranger_cert.display()
        )),
        "the trace names the file"
    );

    let (_, description) = wait_row(&db, missing, |_, d| d.starts_with("config error"));
    assert_eq!(
        description,
        format!(
            "config error: client_cert {}: cannot read it: No such file or directory (os error 2)",
            missing_path.display()
        )
    );
    // Cut at the column's 128 characters; the log has it all.
    let (_, description) = wait_row(&db, wrong_key, |_, d| d.starts_with("config error"));
    let reason = format!(
        "client_key {}: not the key of the client_cert certificate (CN=skypunch-client)",
        nginx.stranger_key.display(),
    );
    assert!(
        format!("config error: {reason}").starts_with(&description),
        "{description}"
    );
    assert!(db.log().contains(&reason), "{}", db.log());
    let shown = stdout(&db.cli(&["targets", &two_files.to_string()]));
    assert_eq!(
        field(&shown, "Client Cert"),
        nginx.client_cert.display().to_string()
    );
    assert_eq!(
        field(&shown, "Client Key"),
        nginx.client_key.display().to_string()
    );
}

#[test]
fn a_client_certificate_replaced_on_disk_is_presented_at_the_next_check() {
    let db = TestDb::new();
    db.write_config("");
    let nginx = MtlsServer::start(&db.dir);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let stranger = format!(
        "{}{}",
        read(&nginx.stranger_cert),
        read(&nginx.stranger_key)
    );
    let ours = read(&nginx.client_both);
    let file = db.dir.join("identity.pem");
    // Replaced as tools renewing certificates do: a new file renamed over the old one.
    let replace = |text: &str| {
        let next = db.dir.join("identity.pem.new");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &file).unwrap();
    };
    replace(&stranger);
    let id = add(&db, "renewed", &nginx, Some(&file), None);
    let _daemon = Daemon::start(&db);
    let (status, _) = wait_row(&db, id, |s, _| s != "NEW");
    assert_eq!(status, "FAIL", "a stranger's certificate is refused");

    replace(&ours);
    wait_row(&db, id, |s, _| s == "PASS");
    assert!(trace(&db, id).contains("presenting CN=skypunch-client"));
    let log = db.log();
    assert!(
        log.contains(&format!(
            "client certificate {} changed: read again (1 targets)",
            file.display()
        )),
        "{log}"
    );

    // Broken on disk: a config error until it is usable again, with no edit of the row.
    replace("not a certificate\n");
    let (_, description) = wait_row(&db, id, |_, d| d.starts_with("config error"));
    assert!(
        description.contains("no certificate in it"),
        "{description}"
    );
    replace(&ours);
    wait_row(&db, id, |s, d| s == "PASS" && d == "OK");
}
