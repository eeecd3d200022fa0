//! The command line an operator types: the original's words and messages, exit codes, and
//! no secret ever printed.

use crate::support as common;
use crate::support::{skypunch_cmd, stderr, stdout, TestDb};

fn with_targets() -> TestDb {
    let db = TestDb::new();
    db.add_target(
        "name, url, authn, authn_parms",
        "'Billing API', 'https://billing.example.com/health', 'BASIC', 'user=ops,password=Sup3rSecret'",
    );
    db.add_target(
        "name, url, authn, authn_parms, enabled",
        "'Cloud', 'https://cloud.example.com/', 'OPENSTACK', \
         'user=ops,password=KeyStonePw,osauthendpoint=https://id.example.com/v3,tenantid=t1', 0",
    );
    db.exec(
        "INSERT INTO notifiers (name, type, address, params) VALUES \
         ('Ops', 'SMTP', 'ops@example.com', 'user=ops,password=MailPw99,server=mail.example.com')",
    );
    db
}

#[test]
fn targets_lists_every_target_in_a_table() {
    let db = with_targets();
    let out = db.cli(&["targets"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let header = text.lines().nth(1).unwrap();
    for column in [
        "ID",
        "Name",
        "Status",
        "LastUpdated",
        "Enabled",
        "Pass Count",
        "Fail Count",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(text.contains("| 1  | Billing API | NEW"), "{text}");
    assert!(
        text.contains("| No "),
        "the disabled target shows Enabled No: {text}"
    );
}

#[test]
fn targets_id_shows_every_field_without_the_password() {
    let db = with_targets();
    let out = db.cli(&["targets", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for field in [
        "Status Description",
        "Last Updated",
        "Target URL",
        "Target Method",
        "Authentication",
        "Expected Value",
        "Frequency (sec)",
        "Timeout (sec)",
        "200 Status Count",
        "500 Status Count",
        "Network Fail Count",
        "Repeated Fail Count",
        "Request Body",
        "Content Type",
        "Expected Body",
        "Max Response (ms)",
        "Follow Redirects",
        "Verify TLS",
        "Fail Threshold",
        "Alert Sent",
        "Last HTTP Status",
        "Last Response (ms)",
        "Config Changed",
    ] {
        assert!(text.contains(field), "{field} missing: {text}");
    }
    assert!(text.contains("https://billing.example.com/health"));
    assert!(text.contains("user=ops,password=***"), "{text}");
    assert!(!text.contains("Sup3rSecret"));
}

#[test]
fn enabling_and_disabling_a_target_says_so_and_changes_the_row() {
    let db = with_targets();
    let out = db.cli(&["targets", "2", "enable"]);
    assert_eq!(stdout(&out).trim(), "Target: Cloud has been Enabled");
    assert!(db.one::<bool>("SELECT enabled FROM targets WHERE id = 2"));
    let out = db.cli(&["targets", "2", "disable"]);
    assert_eq!(stdout(&out).trim(), "Target: Cloud has been Disabled");
    assert!(!db.one::<bool>("SELECT enabled FROM targets WHERE id = 2"));
}

#[test]
fn bad_and_unknown_ids_get_the_original_messages() {
    let db = with_targets();
    for words in [
        &["targets", "abc"][..],
        &["notifiers", "x1"],
        &["targets", "abc", "enable"],
    ] {
        let out = db.cli(words);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!("{} is not a valid id", words[1])),
            "{}",
            stderr(&out)
        );
    }
    for words in [
        &["targets", "99"][..],
        &["notifiers", "99", "disable"],
        &["targets", "99", "test"],
    ] {
        let out = db.cli(words);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("id: 99 does not exist"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn notifiers_list_show_enable_and_disable() {
    let db = with_targets();
    let list = stdout(&db.cli(&["notifiers"]));
    assert!(
        list.contains("| 1  | Ops  | SMTP | ops@example.com |"),
        "{list}"
    );
    let one = stdout(&db.cli(&["notifiers", "1"]));
    assert!(one.contains("server=mail.example.com"), "{one}");
    assert!(one.contains("Pending Alerts"), "{one}");
    assert!(!one.contains("MailPw99"), "{one}");
    assert_eq!(
        stdout(&db.cli(&["notifiers", "1", "disable"])).trim(),
        "Notifier: Ops has been Disabled"
    );
    assert!(!db.one::<bool>("SELECT enabled FROM notifiers WHERE id = 1"));
    assert_eq!(
        stdout(&db.cli(&["notifiers", "1", "enable"])).trim(),
        "Notifier: Ops has been Enabled"
    );
}

#[test]
fn no_secret_appears_in_any_cli_output() {
    let db = with_targets();
    let mut all = String::new();
    for words in [
        &["targets"][..],
        &["targets", "1"],
        &["targets", "2"],
        &["notifiers"],
        &["notifiers", "1"],
    ] {
        let out = db.cli(words);
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
    }
    for secret in ["Sup3rSecret", "KeyStonePw", "MailPw99"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
}

#[test]
fn no_command_prints_version_and_usage() {
    let out = common::skypunch_cmd(std::path::Path::new("/nonexistent"), &[])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.starts_with("version: "), "{text}");
    assert!(text.contains("usage: skypunch start | stop"), "{text}");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_words_are_usage_errors() {
    let db = with_targets();
    for words in [
        &["launch"][..],
        &["targets", "1", "explode"],
        &["notifiers", "1", "frobnicate"],
    ] {
        let out = db.cli(words);
        assert_eq!(out.status.code(), Some(2), "{words:?}");
        assert!(stderr(&out).contains("usage: skypunch"), "{}", stderr(&out));
    }
    let out = db.cli(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_and_version() {
    let out = common::skypunch_cmd(std::path::Path::new("/nonexistent"), &["--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for word in ["targets ID test", "--config", "--foreground", "upgrade-db"] {
        assert!(stdout(&out).contains(word), "{word}");
    }
    let out = common::skypunch_cmd(std::path::Path::new("/nonexistent"), &["-V"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        format!("skypunch {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_config_value_is_an_error_naming_file_line_and_key() {
    let db = with_targets();
    db.write_config("Workers: lots");
    let out = db.cli(&["targets"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let path = db.config_path().display().to_string();
    assert!(
        err.contains(&format!(
            "{path}:6: bad value `lots` for [settings] Workers"
        )),
        "{err}"
    );
}

#[test]
fn an_unknown_config_key_is_a_warning_and_the_command_still_runs() {
    let db = with_targets();
    db.write_config("Colour: blue");
    let out = db.cli(&["targets"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("warning:") && stderr(&out).contains("unknown key `Colour`"));
}

#[test]
fn the_original_config_file_is_read_as_it_is() {
    let db = with_targets();
    let s = common::server();
    let original = format!(
        "[settings]\nMainLoopTov: 1\nLogFilePath: ./skypunch.log\n\n[database]\nLocation: {}\n\
         port: {}\nUser: {}\nPassword: {}\nDBName: {}\n",
        s.host, s.port, s.user, s.password, db.name
    );
    let path = db.dir.join("skypunch.config");
    std::fs::write(&path, original).unwrap();
    let out = common::skypunch_cmd(&path, &["targets"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Billing API"));
}

#[test]
fn an_unreachable_database_is_named_in_the_error() {
    let db = with_targets();
    db.write_config("\n[database]\nport: 1\nLocation: 127.0.0.1");
    let out = db.cli(&["targets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to database"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("@127.0.0.1:1/"), "{}", stderr(&out));
}

#[test]
fn check_config_passes_a_good_setup_and_names_every_problem_of_a_broken_one() {
    let db = TestDb::new();
    db.write_config("");
    // Judged as the user running the tests, whatever service user this host has.
    let defaults = db.dir.join("defaults");
    std::fs::write(&defaults, "SKYPUNCH_USER=root\n").unwrap();
    let check = |config: &std::path::Path| {
        skypunch_cmd(config, &["check-config"])
            .env("SKYPUNCH_DEFAULTS", &defaults)
            .output()
            .unwrap()
    };
    let good = check(&db.config_path());
    assert_eq!(good.status.code(), Some(0), "{}", stdout(&good));
    let text = stdout(&good);
    assert!(
        text.contains(": ok") && text.contains("reachable, schema 2.3"),
        "{text}"
    );
    assert!(text.ends_with("all checks passed\n"), "{text}");

    // Two bad values, a line without a separator, a missing log folder, a wrong port.
    let broken = db.dir.join("broken.conf");
    std::fs::write(
        &broken,
        "[settings]\nWorkers: many\nLogFilePath: /nonexistent/dir/skypunch.log\n\
         this line has no separator\nStopTimeout: 0\n[database]\nLocation: 127.0.0.1\nport: 1\nConnectTimeout: 1\n",
    )
    .unwrap();
    let out = check(&broken);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let file = broken.display().to_string();
    for expected in [
        format!("{file}:2"),
        format!("{file}:4"),
        format!("{file}:5"),
        "LogFilePath /nonexistent/dir/skypunch.log: the folder /nonexistent/dir does not exist"
            .to_string(),
        "cannot connect to database".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected} missing:\n{text}");
    }
    assert!(
        stderr(&out).contains("5 problems found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_https_target_of_a_private_ca_passes_with_its_ca_file_and_fails_clearly_without() {
    use crate::support::servers::{serve_tls_private_ca, write_response};
    let db = TestDb::new();
    let (server, ca_pem) = serve_tls_private_ca(|_, w| write_response(w, "200 OK", &[], b"ok"));
    let ca_file = db.dir.join("private-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let url = server.https_url("/health");
    let with = db.add_target(
        "name, url, ca_file",
        &format!("'internal', '{url}', '{}'", ca_file.display()),
    );
    let without = db.add_target("name, url", &format!("'internal-untrusted', '{url}'"));
    let missing = db.add_target(
        "name, url, ca_file",
        &format!("'internal-lost', '{url}', '/nonexistent/ca.pem'"),
    );

    let ok = db.cli(&["targets", &with.to_string(), "test"]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains(" PASS (OK)"), "{}", stdout(&ok));

    let bad = db.cli(&["targets", &without.to_string(), "test"]);
    assert_eq!(bad.status.code(), Some(1));
    let line = stdout(&bad);
    assert!(
        line.contains(" FAIL (") && line.contains("certificate"),
        "{line}"
    );

    let lost = db.cli(&["targets", &missing.to_string(), "test"]);
    assert_eq!(lost.status.code(), Some(1));
    assert!(
        stderr(&lost).contains("ca_file /nonexistent/ca.pem: cannot read it"),
        "{}",
        stderr(&lost)
    );

    // [settings] CaFile: the bundle of every target without a ca_file of its own.
    db.write_config(&format!("CaFile: {}", ca_file.display()));
    let ok = db.cli(&["targets", &without.to_string(), "test"]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
}
