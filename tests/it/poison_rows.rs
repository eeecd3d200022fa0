//! Poison rows: while the daemon runs, a person writes with SQL the extreme values every
//! column's type allows (ids of 0 and below, the smallest and largest integers, timestamps and
//! doubles, empty and full texts up to 64 KiB, JSON that is not JSON, NULL where allowed) into
//! every table the daemon reads. The daemon goes on: every good target is checked on time,
//! each bad row is reported once (a `config error`, a skip, a repair or a node declared dead),
//! and every command still answers with the rows that decode.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use serde_json::json;

use crate::http::get;
use crate::support::http::HttpServer;
use crate::support::notify::add_notifier;
use crate::support::receiver::Receiver;
use crate::support::servers::ClosedPort;
use crate::support::{self as common, run, wait_for, Daemon, TestDb};

const BIG_MIN: &str = "-9223372036854775808";
const BIG_MAX: &str = "9223372036854775807";
const INT_MIN: &str = "-2147483648";
const INT_MAX: &str = "2147483647";
const TINY_MIN: &str = "-128";
const TINY_MAX: &str = "127";
const DOUBLE_MIN: &str = "-1.7976931348623157e308";
const DOUBLE_MAX: &str = "1.7976931348623157e308";
/// TIMESTAMP: the zero date (allowed without NO_ZERO_DATE), the first and the last second.
const TS_ZERO: &str = "'0000-00-00 00:00:00'";
const TS3_MIN: &str = "'1970-01-01 00:00:01.000'";
const TS_MAX: &str = "'2038-01-19 03:14:07'";
const TS3_MAX: &str = "'2038-01-19 03:14:07.999'";
const TS6_MAX: &str = "'2038-01-19 03:14:07.999999'";
const DT_MIN: &str = "'1000-01-01 00:00:00'";
const DT_MAX: &str = "'9999-12-31 23:59:59'";
/// A TEXT column's 65,535 bytes.
const TEXT_FULL: &str = "REPEAT('x', 65535)";
/// 2^53: past it (or below 0) the daemon starts a counter again at 0.
const COUNTER_MAX: i64 = 1 << 53;

/// `n` four-byte characters: a VARCHAR(n) full to its last byte.
fn emoji(n: usize) -> String {
    format!("REPEAT(CONVERT(X'F09F9880' USING utf8mb4), {n})")
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One row: columns and SQL expressions; later ones replace earlier ones of the same name.
#[derive(Clone, Default)]
struct Row(BTreeMap<&'static str, String>);

impl Row {
    fn set(mut self, column: &'static str, value: impl Into<String>) -> Row {
        self.0.insert(column, value.into());
        self
    }

    fn insert(&self, conn: &mut mysql::Conn, table: &str) {
        let columns: Vec<&str> = self.0.keys().copied().collect();
        let values: Vec<&str> = self.0.values().map(String::as_str).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        );
        conn.query_drop(&sql)
            .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(400)]));
    }
}

/// A `targets` row with every column at the top of its type.
fn target_high(id: &str) -> Row {
    let mut r = Row::default().set("id", id);
    for c in ["name", "tenantid", "status_description", "method", "authn"] {
        r = r.set(c, emoji(128));
    }
    for c in ["url", "authn_parms", "expect_body", "cert_issuer"] {
        r = r.set(c, emoji(256));
    }
    for c in ["status", "previous_status"] {
        r = r.set(c, emoji(50));
    }
    r = r
        .set("content_type", emoji(128))
        .set("group_name", emoji(128));
    r = r.set("ca_file", emoji(512));
    for c in ["request_body", "last_trace"] {
        r = r.set(c, TEXT_FULL);
    }
    for c in DAEMON_OWNED {
        r = r.set(c, BIG_MAX);
    }
    for c in INTS {
        r = r.set(c, INT_MAX);
    }
    for c in FLAGS {
        r = r.set(c, TINY_MAX);
    }
    r.set("last_updated", TS_MAX)
        .set("last_alerted", TS3_MAX)
        .set("config_changed", TS6_MAX)
        .set("cert_expires_at", DT_MAX)
        .set("cert_alerted_for", DT_MAX)
}

/// A `targets` row with every column at the bottom of its type: empty texts, NULL where
/// allowed, the zero date.
fn target_low(id: &str) -> Row {
    let mut r = Row::default().set("id", id);
    for c in [
        "name",
        "tenantid",
        "status",
        "previous_status",
        "url",
        "method",
        "authn",
    ] {
        r = r.set(c, "''");
    }
    for c in [
        "status_description",
        "authn_parms",
        "request_body",
        "content_type",
        "expect_body",
        "max_response_ms",
        "last_http_status",
        "last_response_ms",
        "last_trace",
        "last_alerted",
        "ca_file",
        "cert_expires_at",
        "cert_issuer",
        "cert_alerted_for",
        "group_name",
    ] {
        r = r.set(c, "NULL");
    }
    for c in DAEMON_OWNED {
        r = r.set(c, BIG_MIN);
    }
    for c in INTS.iter().filter(|c| **c != "max_response_ms") {
        r = r.set(c, INT_MIN);
    }
    for c in FLAGS {
        r = r.set(c, TINY_MIN);
    }
    r.set("last_updated", TS_ZERO)
        .set("config_changed", TS_ZERO)
}

/// The BIGINT columns the daemon keeps.
const DAEMON_OWNED: [&str; 10] = [
    "pass_count",
    "fail_count",
    "count200",
    "count300",
    "count400",
    "count500",
    "network_fails",
    "repeated_fails",
    "repeated_passes",
    // Not a counter, but daemon-owned and BIGINT: the same extremes.
    "state_seq",
];

const INTS: [&str; 10] = [
    "pass_result",
    "frequency",
    "timeout",
    "max_response_ms",
    "fail_threshold",
    "last_http_status",
    "last_response_ms",
    "success_threshold",
    "realert_minutes",
    "cert_warn_days",
];

const FLAGS: [&str; 5] = [
    "enabled",
    "follow_redirects",
    "verify_tls",
    "alerted",
    "public",
];

/// A row made valid again on top of extremes: a target checked every second, PASS, never
/// alerting; only the values the daemon keeps stay at the extremes.
fn checkable(row: Row, url: &str) -> Row {
    row.set("url", quoted(url))
        .set("method", "'GET'")
        .set("authn", "'NONE'")
        .set("authn_parms", "NULL")
        .set("pass_result", "200")
        .set("frequency", "1")
        .set("timeout", "2")
        .set("enabled", "1")
        .set("request_body", "NULL")
        .set("content_type", "NULL")
        .set("expect_body", "NULL")
        .set("follow_redirects", "0")
        .set("verify_tls", "1")
        .set("success_threshold", "1")
        .set("alerted", "0")
        .set("status", "'PASS'")
        .set("ca_file", "NULL")
        .set("cert_warn_days", "0")
}

/// Notifiers with ids of -1 and 0, counters at both ends of BIGINT, `enabled` at both ends
/// of TINYINT (true, as SQL reads it), all sending to `receiver`; and one disabled whose every
/// text is full.
fn poison_notifiers(conn: &mut mysql::Conn, receiver: &Receiver) {
    let hook = |id: &str, name: &str, low: bool| {
        let count = if low { BIG_MIN } else { BIG_MAX };
        Row::default()
            .set("id", id)
            .set("name", name.to_string())
            .set("type", "'WEBHOOK'")
            .set("address", quoted(&receiver.url("/hook")))
            .set("params", "''")
            .set("pass_count", count)
            .set("fail_count", count)
            .set("enabled", if low { TINY_MIN } else { TINY_MAX })
    };
    hook("-1", &emoji(128), false).insert(conn, "notifiers");
    hook("0", "''", true).insert(conn, "notifiers");
    hook("8000000", &emoji(128), false).insert(conn, "notifiers");
    hook("8000001", "'counters at the bottom'", true).insert(conn, "notifiers");
    // Never sent to (disabled), but read every pass: every text column full.
    Row::default()
        .set("id", "8000002")
        .set("name", emoji(128))
        .set("type", emoji(50))
        .set("address", emoji(128))
        .set("params", emoji(128))
        .set("enabled", "0")
        .insert(conn, "notifiers");
}

const V_HIGH: u64 = 7_000_001;
const V_LOW: u64 = 7_000_002;
const A_BAD_TARGET: u64 = 9_000_000;
const A_NOT_JSON: u64 = 9_000_001;
const A_ATTEMPTS: u64 = 9_000_002;

/// A connection that stores an id of 0 as 0, not as the next AUTO_INCREMENT value.
fn poisoner(db: &TestDb) -> mysql::Conn {
    let mut conn = db.conn();
    conn.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
        .unwrap();
    conn
}

/// targets: unusable ids (the largest BIGINT last: AUTO_INCREMENT is spent after it); rows
/// that do not validate; rows that validate but whose daemon-owned values are at both ends; a
/// good row's `state_seq` set below zero under the running daemon; routing rows whose ids
/// are at both ends (the high victim routed to notifier -1 only; no row for the smallest
/// BIGINT, whose alert goes to every notifier).
fn poison_targets(conn: &mut mysql::Conn, up: &HttpServer, good: u64) {
    target_high("-1").insert(conn, "targets");
    target_low("0").insert(conn, "targets");
    target_high(BIG_MIN).insert(conn, "targets");
    target_high("7000000").insert(conn, "targets");
    checkable(target_high(&V_HIGH.to_string()), &up.url("/victim")).insert(conn, "targets");
    checkable(target_low(&V_LOW.to_string()), &up.url("/victim"))
        .set("realert_minutes", "0")
        .set("fail_threshold", "1")
        .insert(conn, "targets");
    target_low(BIG_MAX).insert(conn, "targets");
    conn.query_drop(format!(
        "UPDATE targets SET state_seq = -1 WHERE id = {good}"
    ))
    .unwrap();
    let high = V_HIGH.to_string();
    for (t, n) in [
        ("-1", "-1"),
        ("0", "0"),
        (BIG_MAX, BIG_MIN),
        (&high[..], "-1"),
    ] {
        conn.query_drop(format!(
            "INSERT INTO target_notifiers (target_id, notifier_id) VALUES ({t}, {n})"
        ))
        .unwrap();
    }
}

/// alerts: ids of -1 and 0; one for a target id of the smallest BIGINT with a 64 KiB
/// snapshot that is not JSON; one for a good target whose snapshot is not JSON; one whose
/// deliveries are written by hand: `attempts` at both ends of INT, a state nobody knows, a
/// claim held until 2038 by a node that does not exist.
fn poison_outbox(conn: &mut mysql::Conn, good: u64, webhook: u64, down: u64) {
    let alert = |id: &str, target: &str, snapshot: &str, trace: &str| {
        Row::default()
            .set("id", id)
            .set("target_id", target)
            .set("kind", "'FAILURE'")
            .set("snapshot", snapshot)
            .set("trace", trace)
            .set("expanded", "0")
    };
    let good = good.to_string();
    alert("-1", &good, "'[]'", "''").insert(conn, "alerts");
    alert("0", &good, "'{}'", "''").insert(conn, "alerts");
    alert(&A_BAD_TARGET.to_string(), BIG_MIN, TEXT_FULL, TEXT_FULL)
        .set("kind", "''")
        .set("created_at", TS3_MAX)
        .insert(conn, "alerts");
    alert(
        &A_NOT_JSON.to_string(),
        &good,
        "'{\"name\": '",
        "'not-json-trace-marker'",
    )
    .insert(conn, "alerts");
    alert(
        &A_ATTEMPTS.to_string(),
        &good,
        "'{\"name\":\"attempts\"}'",
        "'attempts-trace-marker'",
    )
    .set("expanded", "1")
    .set("created_at", TS3_MIN)
    .insert(conn, "alerts");
    let delivery = |notifier: u64, attempts: &str| {
        Row::default()
            .set("alert_id", A_ATTEMPTS.to_string())
            .set("notifier_id", notifier.to_string())
            .set("attempts", attempts)
            .set("next_attempt", TS3_MIN)
            .set("last_error", emoji(512))
    };
    delivery(webhook, INT_MIN).insert(conn, "alert_deliveries");
    delivery(down, INT_MAX).insert(conn, "alert_deliveries");
    delivery(8_000_000, "0")
        .set("state", "'BOGUS'")
        .insert(conn, "alert_deliveries");
    delivery(8_000_001, "0")
        .set("claimed_by", "'ghost'")
        .set("claim_until", TS3_MAX)
        .insert(conn, "alert_deliveries");
}

/// maintenance: ids of -1 and 0 and a target id of 0, open from the first second to the last
/// (not for the smallest BIGINT: it would hold that target's alert); a window for every
/// target (NULL) in 2038.
fn poison_maintenance(conn: &mut mysql::Conn) {
    let window = |id: &str, target: &str, starts: &str| {
        Row::default()
            .set("id", id)
            .set("target_id", target)
            .set("starts", starts)
            .set("ends", TS3_MAX)
            .set("reason", emoji(255))
    };
    let first = TS3_MIN;
    window("-1", "7000000", first).insert(conn, "maintenance");
    window("0", "7000000", first).insert(conn, "maintenance");
    window("6000000", "0", first).insert(conn, "maintenance");
    window("6000001", "NULL", "'2038-01-19 03:14:07.000'")
        .set("reason", "''")
        .insert(conn, "maintenance");
}

/// nodes: a heartbeat at the first second and at the last, and a live-looking row whose pid
/// does not fit.
fn poison_nodes(conn: &mut mysql::Conn) {
    let node = |name: &str, heartbeat: &str, low: bool| {
        let (big, int, double, text) = if low {
            (BIG_MIN, INT_MIN, DOUBLE_MIN, "''".to_string())
        } else {
            (BIG_MAX, INT_MAX, DOUBLE_MAX, emoji(32))
        };
        Row::default()
            .set("name", name.to_string())
            .set("epoch", big)
            .set("host", text.clone())
            .set("pid", int)
            .set("version", text)
            .set("started", heartbeat.to_string())
            .set("heartbeat", heartbeat.to_string())
            .set("state", "'active'")
            .set("targets_owned", int)
            .set("checks_per_s", double)
    };
    node("''", TS3_MIN, true).insert(conn, "nodes");
    node(&emoji(64), TS3_MAX, false).insert(conn, "nodes");
    node("'poison-pid'", "NOW(3)", false)
        .set("pid", "-1")
        .insert(conn, "nodes");
}

/// incidents: ids of -1 and 0, target ids of -1 and the smallest BIGINT, an open one on the
/// high victim with `failed_checks` at the top.
fn poison_incidents(conn: &mut mysql::Conn) {
    let incident = |id: &str, target: &str, ended: &str, low: bool| {
        let (big, int, tiny, text) = if low {
            (BIG_MIN, INT_MIN, TINY_MIN, "''".to_string())
        } else {
            (BIG_MAX, INT_MAX, TINY_MAX, emoji(128))
        };
        Row::default()
            .set("id", id)
            .set("target_id", target)
            .set("started", TS3_MIN)
            .set("ended", ended)
            .set("first_reason", text.clone())
            .set("last_reason", text)
            .set("failed_checks", big)
            .set("alerted", tiny)
            .set("http_status", int)
    };
    incident("-1", "7000000", "NULL", true).insert(conn, "incidents");
    incident("0", "-1", TS3_MAX, false).insert(conn, "incidents");
    incident("9100000", BIG_MIN, TS3_MAX, true).insert(conn, "incidents");
    incident("9100001", &V_HIGH.to_string(), "NULL", false).insert(conn, "incidents");
}

/// Rollups: the victims' current hour and day full (or at the bottom), so that their next
/// minute's sums meet the ends of every column; rows at the ends of DATETIME and DATE.
fn poison_rollups(conn: &mut mysql::Conn) {
    let hours = (
        "target_hours",
        "hour",
        "DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:00:00')",
        DT_MIN,
        "'9999-12-31 23:00:00'",
    );
    let days = (
        "target_days",
        "day",
        "UTC_DATE()",
        "'1000-01-01'",
        "'9999-12-31'",
    );
    for (table, column, now, first, last) in [hours, days] {
        for (target, at, low) in [
            (V_HIGH.to_string(), now, false),
            (V_LOW.to_string(), now, true),
            ("-1".to_string(), first, false),
            (BIG_MIN.to_string(), last, true),
        ] {
            let (big, int, double) = if low {
                (BIG_MIN, INT_MIN, DOUBLE_MIN)
            } else {
                (BIG_MAX, INT_MAX, DOUBLE_MAX)
            };
            let mut r = Row::default()
                .set("target_id", target)
                .set(column, at)
                .set("checks", big)
                .set("failures", big)
                .set("fail_seconds", double)
                .set("response_ms_sum", big)
                .set("response_ms_max", int);
            for b in BUCKETS {
                r = r.set(b, int);
            }
            r.insert(conn, table);
        }
    }
}

const BUCKETS: [&str; 11] = [
    "b10", "b25", "b50", "b100", "b250", "b500", "b1000", "b2500", "b5000", "b10000", "b_over",
];

/// Starts the daemon with the HTTP server on a free port, a stats line every second; the port.
fn start(db: &TestDb) -> (Daemon, u16) {
    db.write_config("StatsInterval: 1\n[http]\nListen: 127.0.0.1:0");
    let daemon = Daemon::start(db);
    let port = wait_for(Duration::from_secs(10), "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    (daemon, port)
}

/// The reports of bad rows in a log, without their time stamps: skips, repairs, config
/// errors, nodes declared dead.
fn reports(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            [
                " skipped: ",
                " repaired: ",
                " config error: ",
                "declared dead",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .map(|l| l.get(24..).unwrap_or(l).to_string())
        .collect()
}

/// Seconds between a target's consecutive check lines in `log`, the longest.
fn longest_gap(log: &str, id: u64) -> f64 {
    let at = |l: &String| {
        let stamp = l.get(..23).unwrap_or("");
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f")
            .unwrap_or_else(|e| panic!("{e}: {l}"))
    };
    let times: Vec<_> = common::check_lines(log, id).iter().map(at).collect();
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds() as f64 / 1000.0)
        .fold(0.0, f64::max)
}

/// The pages and API answers that read the poisoned tables: each answers 200.
fn read_every_page(port: u16) {
    for path in [
        "/healthz",
        "/",
        "/api/v1/targets",
        "/api/v1/incidents",
        "/metrics",
        &format!("/target/{V_HIGH}"),
        &format!("/api/v1/targets/{V_HIGH}"),
        "/target/7000000",
    ] {
        let r = get(port, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

/// `skypunch args...` against the poisoned database: an answer, never a panic (exit 101).
fn cli(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = db.cli(args);
    let code = out.status.code().unwrap_or(-1);
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert_ne!(code, 101, "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (code, stdout, stderr)
}

/// The lines every bad row gives, each to be logged exactly once.
fn expected_reports(good: u64, webhook: u64) -> Vec<String> {
    let skipped = |table: &str, key: &str, problem: &str| {
        format!("{table} row with {key} skipped: {problem}")
    };
    let ids = "ids are positive";
    let bad_target = format!("alerts.target_id: {BIG_MIN} is not an id ({ids})");
    let mut lines = vec![
        skipped("targets", "id -1", ids),
        skipped("targets", "id 0", ids),
        skipped("targets", &format!("id {BIG_MIN}"), ids),
        format!("targets row with id {BIG_MAX} repaired: state_seq {BIG_MIN} -> 0"),
        format!("targets row with id 7000000 repaired: state_seq {BIG_MAX} -> 0"),
        format!("targets row with id {V_HIGH} repaired: state_seq {BIG_MAX} -> 0, pass_count {BIG_MAX} -> 0"),
        format!("targets row with id {V_LOW} repaired: state_seq {BIG_MIN} -> 0, pass_count {BIG_MIN} -> 0"),
        format!("targets row with id {good} repaired: state_seq -1 -> 0"),
        format!("[{BIG_MAX}]  config error: unknown method ``"),
        "[7000000] ".to_string(),
        skipped("notifiers", "id -1", ids),
        skipped("notifiers", "id 0", ids),
        format!("notifiers row with id 8000000 repaired: pass_count {BIG_MAX} -> 0, fail_count {BIG_MAX} -> 0"),
        format!("notifiers row with id 8000001 repaired: pass_count {BIG_MIN} -> 0, fail_count {BIG_MIN} -> 0"),
        skipped("alerts", "id -1", ids),
        skipped("alerts", "id 0", ids),
        skipped("alert_deliveries", &format!("alert_id {A_BAD_TARGET}, notifier_id {webhook}"), &bad_target),
        skipped("alert_deliveries", &format!("alert_id {A_BAD_TARGET}, notifier_id -1"), ids),
        skipped("alert_deliveries", &format!("alert_id {A_NOT_JSON}, notifier_id 0"), ids),
        format!("alert_deliveries row with alert_id {A_ATTEMPTS}, notifier_id {webhook} repaired: attempts {INT_MIN} -> 0"),
        skipped("nodes", "name 'poison-pid'", "pid: -1 is not a whole number from 0 to 4294967295"),
        "cluster: node  sent no heartbeat for 6 s: declared dead".to_string(),
        "s heartbeat is more than 6 s ahead of the database's clock".to_string(),
        skipped("maintenance", "id -1", ids),
        skipped("maintenance", "id 6000000", &format!("target_id: 0 is not an id ({ids})")),
    ];
    lines.sort();
    lines
}

#[test]
fn poison_in_every_table_is_reported_once_while_the_good_targets_keep_their_schedule() {
    let db = TestDb::new();
    let up = HttpServer::start(200);
    let failing = HttpServer::start(500);
    let receiver = Receiver::start(200);
    let closed = ClosedPort::new();
    let good: Vec<u64> = (0..3)
        .map(|n| db.add_watched(&format!("good {n}"), &up.url("/good")))
        .collect();
    let (mut daemon, port) = start(&db);
    wait_for(
        Duration::from_secs(20),
        "a check of every good target",
        || {
            good.iter()
                .all(|id| run::counted_checks(&db, *id) >= 1)
                .then_some(())
        },
    );

    // The poison, table by table, while the daemon runs.
    let checks_before: Vec<i64> = good
        .iter()
        .map(|id| run::counted_checks(&db, *id))
        .collect();
    let log_before = db.log().len();
    let poisoned = Instant::now();
    let mut conn = poisoner(&db);
    let webhook = add_notifier(&db, "webhook", "WEBHOOK", &receiver.url("/hook"), "", true);
    let down_url = format!("http://127.0.0.1:{}/hook", closed.port);
    let down = add_notifier(&db, "down", "WEBHOOK", &down_url, "", true);
    poison_notifiers(&mut conn, &receiver);
    poison_outbox(&mut conn, good[1], webhook, down);
    poison_maintenance(&mut conn);
    poison_nodes(&mut conn);
    poison_incidents(&mut conn);
    poison_rollups(&mut conn);
    poison_targets(&mut conn, &up, good[0]);
    // A target failing from its first check: its FAILURE alert wakes the notifier, which then
    // meets the poisoned outbox. (An explicit id: AUTO_INCREMENT is spent.)
    Row::default()
        .set("id", "7000003")
        .set("name", "'trigger'")
        .set("url", quoted(&failing.url("/")))
        .set("frequency", "1")
        .set("timeout", "2")
        .insert(&mut conn, "targets");
    read_every_page(port);

    let expected = expected_reports(good[0], webhook);
    let missing = || {
        let found = reports(&db.log());
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !found.iter().any(|l| l.contains(e.as_str())))
            .collect();
        format!("{missing:#?}")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while missing() != "[]" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(missing(), "[]", "bad rows not reported");
    // Three reload periods more, the pages read again: nothing is reported twice.
    std::thread::sleep(Duration::from_secs(3));
    read_every_page(port);
    let log = db.log();
    let found = reports(&log);
    for e in &expected {
        let n = found.iter().filter(|l| l.contains(e.as_str())).count();
        assert_eq!(n, 1, "`{e}` reported {n} times:\n{}", found.join("\n"));
    }
    let mut distinct = found.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        found.len(),
        "a report repeated:\n{}",
        found.join("\n")
    );

    // The daemon runs, every good target kept its schedule, the victims are checked again.
    assert!(daemon.is_running(), "the daemon stopped");
    let elapsed = poisoned.elapsed().as_secs_f64();
    let after = &log[log_before..];
    let mut gaps = Vec::new();
    for (id, before) in good.iter().zip(&checks_before) {
        let gained = run::counted_checks(&db, *id) - before;
        assert!(
            gained as f64 >= elapsed / 3.0,
            "good target {id}: {gained} checks written in {elapsed:.1} s"
        );
        gaps.push(longest_gap(after, *id));
    }
    let worst_gap = gaps.iter().copied().fold(0.0, f64::max);
    assert!(
        worst_gap <= 3.0,
        "a good target waited {worst_gap} s between checks"
    );
    let high: (i64, i64) = db.one(&format!(
        "SELECT pass_count, state_seq FROM targets WHERE id = {V_HIGH}"
    ));
    assert!(
        (1..COUNTER_MAX).contains(&high.0) && high.1 >= 1,
        "high victim: {high:?}"
    );
    let low: (i64, i64) = db.one(&format!(
        "SELECT pass_count, state_seq FROM targets WHERE id = {V_LOW}"
    ));
    assert!(low.0 >= 1 && low.1 >= 1, "low victim: {low:?}");

    // The outbox went on: the alert whose snapshot is not JSON and the one whose attempts
    // were below zero were delivered; the delivery past INT's top failed without wedging the
    // notifier; those that do not decode were dropped with the reason.
    wait_for(
        Duration::from_secs(10),
        "the deliveries that decode",
        || {
            let bodies: Vec<String> = receiver.requests().into_iter().map(|r| r.body).collect();
            ["not-json-trace-marker", "attempts-trace-marker"]
                .iter()
                .all(|m| bodies.iter().any(|b| b.contains(m)))
                .then_some(())
        },
    );
    let stuck: (String, i64) = db.one(&format!(
        "SELECT state, attempts FROM alert_deliveries WHERE alert_id = {A_ATTEMPTS} \
         AND notifier_id = {down}"
    ));
    assert_eq!(stuck, ("PENDING".to_string(), i64::from(i32::MAX)));
    let dropped: Vec<(String, String)> = db.query(&format!(
        "SELECT state, COALESCE(last_error, '') FROM alert_deliveries WHERE alert_id = {A_BAD_TARGET}"
    ));
    assert!(!dropped.is_empty());
    for (state, error) in &dropped {
        assert_eq!(state, "DROPPED");
        assert!(error.starts_with("the row does not decode: "), "{error}");
    }
    for wrong in ["panicked", "alerts stay queued", "the row refused them"] {
        assert!(!log.contains(wrong), "`{wrong}` in the log:\n{log}");
    }
    assert!(
        !run::stderr(&db).contains("panicked"),
        "{}",
        run::stderr(&db)
    );

    // /metrics counts each row left out once.
    let metrics = get(port, "/metrics").body;
    let skipped_metric: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skypunch_rows_skipped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("skypunch_rows_skipped_total");
    let skipped_lines = found.iter().filter(|l| l.contains(" skipped: ")).count() as u64;
    assert_eq!(skipped_metric, skipped_lines);

    // Every command answers with the rows that decode and names the others on stderr.
    let commands = cli_against_poison(&db, good[0], webhook);

    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    run::figures(
        "poison_rows",
        json!({
            "fault": "extreme values of every column type written with SQL into every table the daemon reads, while it runs",
            "tables": ["targets", "target_notifiers", "notifiers", "alerts", "alert_deliveries",
                       "maintenance", "nodes", "incidents", "target_hours", "target_days"],
            "reports_expected": expected.len(),
            "reports_logged": found.len(),
            "reports_repeated": found.len() - distinct.len(),
            "rows_skipped": skipped_metric,
            "rows_repaired": found.iter().filter(|l| l.contains(" repaired: ")).count(),
            "good_targets_longest_gap_s": worst_gap,
            "seconds_watched": elapsed,
            "commands_run": commands,
            "panics": 0,
        }),
    );
}

/// Runs the reading commands against the poisoned database; how many ran.
fn cli_against_poison(db: &TestDb, good: u64, webhook: u64) -> usize {
    let good = good.to_string();
    let webhook = webhook.to_string();
    let runs: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["targets"],
            "good 0",
            "targets row with id -1 skipped: ids are positive",
        ),
        (vec!["targets", &good], "good 0", ""),
        (
            vec!["targets", "7000001"],
            "State Seq",
            "notifiers row with id -1 skipped",
        ),
        (vec!["targets", BIG_MAX], "unknown method", ""),
        (
            vec!["notifiers"],
            "webhook",
            "notifiers row with id -1 skipped: ids are positive",
        ),
        (vec!["notifiers", &webhook], "webhook", ""),
        (vec!["notifiers", "8000000"], "Pass Count", ""),
        (vec!["report"], "good 0", "skipped"),
        (vec!["status"], "running", ""),
        (
            vec!["maintenance", "list"],
            "6000001",
            "maintenance row with id -1 skipped",
        ),
    ];
    for (args, out, err) in &runs {
        let (code, stdout, stderr) = cli(db, args);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        assert!(
            stdout.contains(out),
            "{args:?} should show {out}:\n{stdout}"
        );
        assert!(
            stderr.contains(err),
            "{args:?} should report {err}:\n{stderr}"
        );
    }
    runs.len()
}
