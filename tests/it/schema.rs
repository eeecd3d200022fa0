//! The database schema: loading it, the defaults a minimal INSERT gets, and upgrading a
//! database made by the original Python skypunch.

use mysql::prelude::Queryable;
use serde_json::Value;

use crate::support::http::HttpServer;
use crate::support::{field, stderr, stdout, TestDb};

#[test]
fn the_schema_loads_twice_without_harm() {
    let db = TestDb::new();
    db.add_target("name, url", "'kept', 'http://127.0.0.1:1/'");
    db.load_schema();
    let versions: Vec<(i32, i32)> = db.query("SELECT major, minor FROM versions");
    assert_eq!(versions, vec![(2, 3)]);
    let names: Vec<String> = db.query("SELECT name FROM targets");
    assert_eq!(names, vec!["kept"]);
}

#[test]
fn the_schema_file_creates_its_database_only_when_absent() {
    let sql = skypunch::schema::SCHEMA_SQL;
    assert!(sql.contains("CREATE DATABASE IF NOT EXISTS skypunch"));
    assert!(
        !sql.to_ascii_uppercase().contains("DROP "),
        "the schema never drops anything"
    );
    for statement in skypunch::schema::split_script(&skypunch::schema::tables_sql()) {
        let s = statement.to_ascii_uppercase();
        assert!(
            !s.starts_with("CREATE TABLE") || s.starts_with("CREATE TABLE IF NOT EXISTS"),
            "{statement}"
        );
    }
}

#[test]
fn a_target_inserted_with_name_and_url_only_is_a_working_target() {
    let db = TestDb::new();
    let web = HttpServer::start(200);
    let id = db.add_target("name, url", &format!("'Example', '{}'", web.url("/")));
    let shown = stdout(&db.cli(&["targets", &id.to_string()]));
    for (name, value) in [
        ("Status", "NEW"),
        ("Enabled", "Yes"),
        ("Target Method", "GET"),
        ("Authentication", "NONE"),
        ("Expected Value", "200"),
        ("Frequency (sec)", "60"),
        ("Timeout (sec)", "10"),
    ] {
        assert_eq!(field(&shown, name), value, "{name}:\n{shown}");
    }
    // It reads as a valid target (no config error) and passes against a server answering 200.
    let test = db.cli(&["targets", &id.to_string(), "test"]);
    assert!(test.status.success(), "{}{}", stdout(&test), stderr(&test));
    assert!(stdout(&test).contains(" PASS ("), "{}", stdout(&test));
}

#[test]
fn the_original_columns_keep_their_names_and_order() {
    let db = TestDb::new();
    let columns: Vec<String> = db.query(&format!(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = '{}' \
         AND table_name = 'targets' ORDER BY ordinal_position",
        db.name
    ));
    let original = "id name tenantid status status_description previous_status last_updated url \
        method authn authn_parms pass_result frequency timeout pass_count fail_count count200 \
        count300 count400 count500 network_fails repeated_fails enabled";
    let original: Vec<&str> = original.split_whitespace().collect();
    assert_eq!(&columns[..original.len()], &original[..]);
}

/// The 1.0 schema as the original's skypunch.sql made it (shared/legacy.md).
const SCHEMA_1_0: &str = "
CREATE TABLE versions (major INT, minor INT, PRIMARY KEY(major)) DEFAULT CHARSET utf8;
INSERT INTO versions VALUES (1, 0);
CREATE TABLE targets (
    id BIGINT NOT NULL AUTO_INCREMENT, name VARCHAR(128) NOT NULL, tenantid VARCHAR(128) NOT NULL,
    status VARCHAR(50) NOT NULL, status_description VARCHAR(128) NULL,
    previous_status VARCHAR(50) NOT NULL, last_updated TIMESTAMP NOT NULL,
    url VARCHAR(256) NOT NULL, method VARCHAR(128) NOT NULL, authn VARCHAR(128) NOT NULL,
    authn_parms VARCHAR(256) NULL, pass_result INT NOT NULL, frequency INT NOT NULL,
    timeout INT NOT NULL, pass_count BIGINT NOT NULL, fail_count BIGINT NOT NULL,
    count200 BIGINT NOT NULL, count300 BIGINT NOT NULL, count400 BIGINT NOT NULL,
    count500 BIGINT NOT NULL, network_fails BIGINT NOT NULL, repeated_fails BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL, PRIMARY KEY (id)
) DEFAULT CHARSET utf8 DEFAULT COLLATE utf8_general_ci;
CREATE TABLE notifiers (
    id BIGINT NOT NULL AUTO_INCREMENT, name VARCHAR(128) NOT NULL, type VARCHAR(50) NOT NULL,
    address VARCHAR(128) NOT NULL, params VARCHAR(128) NOT NULL, pass_count BIGINT NOT NULL,
    fail_count BIGINT NOT NULL, enabled BOOLEAN NOT NULL, PRIMARY KEY (id)
) DEFAULT CHARSET utf8 DEFAULT COLLATE utf8_general_ci;
INSERT INTO targets VALUES (0,'HP Cloud Dot COM','0','PASS','OK','PASS','2013-07-11 06:10:57',
    'https://www.hpcloud.com','GET','NONE','',200,10,10,1234,5,1230,4,3,2,1,0,1);
INSERT INTO targets VALUES (0,'Keystone','t1','FAIL','target status:503 != 200','PASS',
    '2013-07-12 08:00:00','https://api.example.com/v2.0/tenants','GET','OPENSTACK',
    'user=ops,password=s3cret,osauthendpoint=https://id.example.com/v2.0/tokens,tenantid=t1',
    200,60,5,10,20,10,0,0,20,0,3,0);
INSERT INTO notifiers VALUES (0,'Ops','SMTP','ops@example.com',
    'user=ops,password=mailpw,server=smtp.example.com',7,1,1);
";

const COUNTERS: &str = "SELECT id, name, tenantid, status, status_description, previous_status, \
    DATE_FORMAT(last_updated, '%Y-%m-%d %H:%i:%s'), url, method, authn, authn_parms, \
    CONCAT_WS(',', pass_result, frequency, timeout, pass_count, fail_count, count200, count300, \
    count400, count500, network_fails, repeated_fails, enabled) FROM targets ORDER BY id";

type NotifierRow1 = (u64, String, String, String, String, i64, i64, bool);

type Row1 = (
    u64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

#[test]
fn a_database_of_the_original_program_is_upgraded_in_place_keeping_every_value() {
    let db = TestDb::empty();
    for statement in skypunch::schema::split_script(SCHEMA_1_0) {
        db.exec(&statement);
    }
    let before: Vec<Row1> = db.query(COUNTERS);
    let notifiers_before: Vec<NotifierRow1> = db.query("SELECT * FROM notifiers");

    let refused = db.cli(&["targets"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("schema 1.0, older than the 2.3"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("skypunch upgrade-db"));

    let upgraded = db.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert!(
        stdout(&upgraded).contains("from schema 1.0 to 2.3"),
        "{}",
        stdout(&upgraded)
    );

    let after: Vec<Row1> = db.query(COUNTERS);
    assert_eq!(before, after);
    let notifiers_after: Vec<NotifierRow1> = db.query(
        "SELECT id, name, type, address, params, pass_count, fail_count, enabled FROM notifiers",
    );
    assert_eq!(notifiers_before, notifiers_after);
    let versions: Vec<(i32, i32)> = db.query("SELECT major, minor FROM versions");
    assert_eq!(versions, vec![(2, 3)]);

    // The upgraded database works: the CLI reads it, and a named INSERT gets every default.
    let listed = db.cli(&["targets"]);
    assert!(
        stdout(&listed).contains("HP Cloud Dot COM"),
        "{}",
        stderr(&listed)
    );
    db.add_target("name, url", "'new', 'http://127.0.0.1/'");
    let again = db.cli(&["upgrade-db"]);
    assert!(stdout(&again).contains("already has skypunch schema 2.3"));
}

#[test]
fn an_empty_database_is_refused_with_what_to_run() {
    let db = TestDb::empty();
    let out = db.cli(&["targets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no skypunch tables: run `skypunch init-db`"),
        "{}",
        stderr(&out)
    );
    let init = db.cli(&["init-db"]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(db.cli(&["targets"]).status.success());
}

#[test]
fn a_newer_schema_is_refused() {
    let db = TestDb::new();
    db.exec("INSERT INTO versions VALUES (3, 1)");
    let out = db.cli(&["targets"]);
    assert!(
        stderr(&out).contains("schema 3.1, newer than the 2.3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_2_0_database_gets_the_history_tables_keeping_every_value() {
    let db = TestDb::new();
    db.add_target("name, url", "'kept', 'http://127.0.0.1:9/'");
    db.exec("UPDATE targets SET pass_count = 41, fail_count = 2, status = 'PASS'");
    // What a 2.0 database looks like: no history or cluster tables and columns, version 2.0.
    as_2_1(&db);
    for table in ["incidents", "target_pauses", "target_hours", "target_days"] {
        db.exec(&format!("DROP TABLE {table}"));
    }
    db.exec("UPDATE versions SET minor = 0");
    let before: Vec<Row1> = db.query(COUNTERS);

    let refused = db.cli(&["targets"]);
    assert!(
        stderr(&refused).contains("schema 2.0, older than the 2.3"),
        "{}",
        stderr(&refused)
    );
    let upgraded = db.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert!(stdout(&upgraded).contains("from schema 2.0 to 2.3"));
    assert_eq!(before, db.query::<Row1>(COUNTERS));
    let versions: Vec<(i32, i32)> = db.query("SELECT major, minor FROM versions");
    assert_eq!(versions, vec![(2, 3)]);
    let tables: Vec<String> = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND table_name IN ('incidents', 'target_pauses', 'target_hours', 'target_days') \
         ORDER BY table_name",
    );
    assert_eq!(
        tables,
        ["incidents", "target_days", "target_hours", "target_pauses"]
    );
    assert!(
        db.cli(&["upgrade-db"]).status.success(),
        "twice is harmless"
    );
}

/// Takes the 2.2 and 2.3 additions out of a current database: what a 2.1 database looks
/// like.
fn as_2_1(db: &TestDb) {
    as_2_2(db);
    db.exec("DROP TABLE nodes");
    db.exec("DROP TABLE node_fences");
    db.exec("DROP TABLE target_notifiers");
    db.exec("DROP TABLE maintenance");
    db.exec(
        "ALTER TABLE targets DROP COLUMN state_seq, DROP COLUMN success_threshold, \
         DROP COLUMN repeated_passes, DROP COLUMN realert_minutes, DROP COLUMN last_alerted, \
         DROP COLUMN ca_file",
    );
    db.exec("ALTER TABLE alert_deliveries DROP COLUMN claimed_by, DROP COLUMN claim_until");
    db.exec("UPDATE versions SET minor = 1");
}

#[test]
fn a_2_1_database_gets_the_cluster_table_and_columns_keeping_every_value() {
    let db = TestDb::new();
    db.add_target("name, url", "'kept', 'http://127.0.0.1:9/'");
    db.exec("UPDATE targets SET pass_count = 41, fail_count = 2, status = 'PASS'");
    as_2_1(&db);
    let before: Vec<Row1> = db.query(COUNTERS);

    let refused = db.cli(&["targets"]);
    assert!(
        stderr(&refused).contains("schema 2.1, older than the 2.3"),
        "{}",
        stderr(&refused)
    );
    let upgraded = db.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert!(stdout(&upgraded).contains("from schema 2.1 to 2.3"));
    assert_eq!(before, db.query::<Row1>(COUNTERS));
    assert_eq!(db.one::<u64>("SELECT state_seq FROM targets"), 0);
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM nodes"), 0);
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM node_fences"), 0);
    let claim: Vec<(Option<String>, Option<String>)> =
        db.query("SELECT claimed_by, CAST(claim_until AS CHAR) FROM alert_deliveries");
    assert!(claim.is_empty());
    let versions: Vec<(i32, i32)> = db.query("SELECT major, minor FROM versions");
    assert_eq!(versions, vec![(2, 3)]);
    assert!(
        db.cli(&["upgrade-db"]).status.success(),
        "twice is harmless"
    );
}

/// Takes the 2.3 additions out of a current database: what a 2.2 database looks like.
fn as_2_2(db: &TestDb) {
    db.exec(
        "ALTER TABLE targets DROP COLUMN created_at, DROP COLUMN conditions, \
         DROP COLUMN request_headers, DROP COLUMN client_cert, DROP COLUMN client_key, \
         DROP COLUMN proxy_url, DROP COLUMN ip_family, DROP COLUMN push_token, \
         DROP COLUMN last_phases, DROP COLUMN last_push_at, DROP COLUMN last_push_status, \
         DROP COLUMN last_push_msg, DROP COLUMN push_count, DROP COLUMN depends_on",
    );
    db.exec("ALTER TABLE alerts DROP INDEX alerts_target");
    db.exec(
        "ALTER TABLE incidents DROP COLUMN suppressed_by, DROP COLUMN monitor_blind, \
         DROP COLUMN unconfirmed",
    );
    db.exec("DROP TABLE confirmations");
    db.exec(
        "ALTER TABLE nodes MODIFY COLUMN state VARCHAR(16) NOT NULL DEFAULT 'active' \
         COMMENT 'active, or stopping (its targets already handed over)'",
    );
    db.exec(
        "ALTER TABLE alert_deliveries DROP INDEX deliveries_notifier, DROP INDEX deliveries_group, \
         DROP COLUMN group_id",
    );
    db.exec("UPDATE versions SET minor = 2");
}

/// Every column and index of `db`'s tables as a fresh database has them: name, type,
/// nullability, default and comment; indexes by name, columns and uniqueness. Sorted by name,
/// since an upgrade appends columns in its own order.
fn definitions(db: &TestDb) -> Vec<String> {
    let columns: Vec<(String, String, String, String, Option<String>, String)> =
        db.query(&format!(
            "SELECT table_name, column_name, column_type, is_nullable, column_default, \
         column_comment FROM information_schema.columns WHERE table_schema = '{}'",
            db.name
        ));
    let indexes: Vec<(String, String, String, i64)> = db.query(&format!(
        "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index), \
         MIN(non_unique) FROM information_schema.statistics WHERE table_schema = '{}' \
         GROUP BY table_name, index_name",
        db.name
    ));
    let mut all: Vec<String> = columns
        .iter()
        .map(|c| format!("{c:?}"))
        .chain(indexes.iter().map(|i| format!("{i:?}")))
        .collect();
    all.sort();
    all
}

#[test]
fn every_upgrade_ends_with_the_tables_of_a_fresh_database() {
    let fresh = definitions(&TestDb::new());
    assert!(
        fresh.iter().any(|d| d.contains("\"push_token\"")),
        "{fresh:?}"
    );
    let from_2_2 = TestDb::new();
    as_2_2(&from_2_2);
    let upgraded = from_2_2.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert_eq!(definitions(&from_2_2), fresh, "from 2.2");
    let from_1_0 = TestDb::empty();
    for statement in skypunch::schema::split_script(SCHEMA_1_0) {
        from_1_0.exec(&statement);
    }
    let upgraded = from_1_0.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    let old: Vec<String> = definitions(&from_1_0);
    // The original's versions.minor may be NULL (nothing writes one): the upgrade leaves it.
    let missing: Vec<&String> = fresh
        .iter()
        .filter(|d| !old.contains(d) && !d.starts_with("(\"versions\", \"minor\""))
        .collect();
    assert!(missing.is_empty(), "from 1.0, not as fresh: {missing:#?}");
}

/// `created_at` of a target, in ms since the epoch.
fn created_ms(db: &TestDb, id: u64) -> i64 {
    db.one(&format!(
        "SELECT CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) FROM targets WHERE id = {id}"
    ))
}

#[test]
fn a_target_inserted_with_name_and_url_only_is_created_now() {
    let db = TestDb::new();
    let id = db.add_target("name, url", "'new', 'http://127.0.0.1:9/'");
    let now: i64 = db.one("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)");
    let created = created_ms(&db, id);
    assert!((0..5000).contains(&(now - created)), "{created} vs {now}");
}

#[test]
fn a_2_2_database_gets_created_at_from_each_targets_oldest_history() {
    use mysql::prelude::Queryable;
    let db = TestDb::new();
    let kept = |name: &str| db.add_target("name, url", &format!("'{name}', 'http://127.0.0.1:9/'"));
    let (failed, paused, rolled, daily, fresh) = (
        kept("failed"),
        kept("paused"),
        kept("rolled"),
        kept("daily"),
        kept("fresh"),
    );
    as_2_2(&db);
    // Each target's oldest history is of another kind; the later rows are not the oldest.
    // The upgrade compares in UTC: this session's zone must not matter, so it is not UTC.
    let mut conn = db.conn();
    conn.query_drop("SET time_zone = '+05:00'").unwrap();
    for sql in [
        format!(
            "INSERT INTO incidents (target_id, started, ended) VALUES \
             ({failed}, '2026-01-10 08:00:00.250', '2026-01-10 09:00:00'), \
             ({failed}, '2026-02-01 00:00:00', NULL), ({daily}, '2026-02-01 00:00:00', NULL)"
        ),
        format!(
            "INSERT INTO target_pauses (target_id, started, ended) VALUES \
             ({paused}, '2025-12-24 18:30:00', '2025-12-25 00:00:00')"
        ),
        // Rollup times are UTC DATETIMEs, whatever the session's zone.
        format!(
            "INSERT INTO target_hours (target_id, hour, checks) VALUES \
             ({rolled}, '2025-11-02 13:00:00', 60), ({failed}, '2026-01-20 10:00:00', 60)"
        ),
        format!(
            "INSERT INTO target_days (target_id, day, checks) VALUES \
             ({daily}, '2025-10-31', 1440), ({rolled}, '2025-11-02', 1440)"
        ),
    ] {
        conn.query_drop(sql).unwrap();
    }
    let before: Vec<Row1> = db.query(COUNTERS);
    let revisions = "SELECT CAST(config_changed AS CHAR) FROM targets ORDER BY id";
    let revisions_before: Vec<String> = db.query(revisions);

    let upgraded = db.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert!(
        stdout(&upgraded).contains("from schema 2.2 to 2.3"),
        "{}",
        stdout(&upgraded)
    );
    let utc_ms = |t: &str| {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    };
    // The incident was written at 08:00:00.250 in +05:00: 03:00:00.250 UTC.
    assert_eq!(created_ms(&db, failed), utc_ms("2026-01-10 03:00:00.250"));
    assert_eq!(created_ms(&db, paused), utc_ms("2025-12-24 13:30:00"));
    assert_eq!(
        created_ms(&db, rolled),
        utc_ms("2025-11-02 00:00:00"),
        "the day's start"
    );
    assert_eq!(created_ms(&db, daily), utc_ms("2025-10-31 00:00:00"));
    let now: i64 = db.one("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)");
    let fresh_at = created_ms(&db, fresh);
    assert!(
        (0..60_000).contains(&(now - fresh_at)),
        "no history: now ({fresh_at} vs {now})"
    );
    assert_eq!(before, db.query::<Row1>(COUNTERS), "every value kept");
    assert_eq!(
        revisions_before,
        db.query::<String>(revisions),
        "no row looks edited"
    );

    // Twice is harmless: an interrupted upgrade runs again and moves nothing.
    db.exec("UPDATE versions SET minor = 2");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = db.cli(&["upgrade-db"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(created_ms(&db, failed), utc_ms("2026-01-10 03:00:00.250"));
    assert_eq!(
        created_ms(&db, fresh),
        fresh_at,
        "now stays the first upgrade's now"
    );
    let versions: Vec<(i32, i32)> = db.query("SELECT major, minor FROM versions");
    assert_eq!(versions, vec![(2, 3)]);
    // Alert storms: the outbox's lookups are indexed, grouped messages have their column.
    let mut storm: Vec<String> = db.query(
        "SELECT CONCAT(table_name, '.', index_name) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND index_name IN ('alerts_target', \
         'deliveries_notifier', 'deliveries_group') AND seq_in_index = 1",
    );
    storm.sort();
    assert_eq!(
        storm,
        [
            "alert_deliveries.deliveries_group",
            "alert_deliveries.deliveries_notifier",
            "alerts.alerts_target"
        ]
    );
    assert_eq!(
        db.one::<u64>("SELECT COUNT(group_id) FROM alert_deliveries"),
        0
    );
}

/// An alert as a release before 2.3 stored it: the URL as typed in its snapshot, and the
/// Keystone endpoint as written in its trace.
const OLD_SNAPSHOT: &str = r#"{"id": 1, "name": "shop", "url": "https://user:PW@h/?token=abc&x=1", "pass_count": 5, "status_description": "target status:500 != 200"}"#;
const OLD_TRACE: &str = "2026-01-02 03:04:05.000 +     1.0ms keystone: POST https://ks:KSPW@ks/v3/auth/tokens?nocatalog sent\n\
    2026-01-02 03:04:05.002 +     2.0ms GET https://user:PW@h/?token=abc&x=1 sent\n";

#[test]
fn a_2_2_database_keeps_its_alerts_but_not_the_secrets_in_their_urls() {
    let db = TestDb::new();
    let id = db.add_target("name, url", "'shop', 'https://user:PW@h/?token=abc&x=1'");
    let mut conn = db.conn();
    // More than one batch of them, one damaged by hand, one with nothing to hide.
    conn.exec_drop(
        "INSERT INTO alerts (target_id, kind, snapshot, trace) \
         SELECT ?, 'FAILURE', ?, ? FROM seq_1_to_1200",
        (id, OLD_SNAPSHOT, OLD_TRACE),
    )
    .unwrap();
    conn.exec_drop(
        "INSERT INTO alerts (target_id, kind, snapshot, trace) VALUES (?, 'FAILURE', ?, '')",
        (id, "not json: see https://user:PW@h/?token=abc"),
    )
    .unwrap();
    let clean = r#"{"id": 1, "url": "http://127.0.0.1:9/"}"#;
    conn.exec_drop(
        "INSERT INTO alerts (target_id, kind, snapshot, trace) VALUES (?, 'SUCCESS', ?, 'ok')",
        (id, clean),
    )
    .unwrap();
    conn.exec_drop(
        "UPDATE targets SET last_trace = ?, config_changed = '2026-01-01 00:00:00' WHERE id = ?",
        (OLD_TRACE, id),
    )
    .unwrap();
    db.exec("UPDATE versions SET minor = 2");
    let edited: String = db.one("SELECT CAST(config_changed AS CHAR) FROM targets");

    let upgraded = db.cli(&["upgrade-db"]);
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    assert!(stdout(&upgraded).contains("from schema 2.2 to 2.3"));

    let leaks = "SELECT COUNT(*) FROM alerts WHERE CONCAT_WS('|', kind, snapshot, trace) \
                 LIKE BINARY '%PW%' OR CONCAT_WS('|', snapshot, trace) LIKE BINARY '%abc%'";
    assert_eq!(
        db.one::<i64>(leaks),
        0,
        "no password or token left in alerts"
    );
    assert_eq!(db.one::<i64>("SELECT COUNT(*) FROM alerts"), 1202);
    let (snapshot, trace): (String, String) =
        db.one("SELECT snapshot, trace FROM alerts ORDER BY id LIMIT 1");
    let snapshot: Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(snapshot["url"], "https://***@h/?token=***&x=1");
    let kept = ["id", "name", "pass_count", "status_description"];
    let old: Value = serde_json::from_str(OLD_SNAPSHOT).unwrap();
    for key in kept {
        assert_eq!(snapshot[key], old[key], "{key} is kept");
    }
    assert!(trace.contains("POST https://***@ks/v3/auth/tokens?nocatalog sent\n"));
    assert!(trace.contains("GET https://***@h/?token=***&x=1 sent\n"));
    let damaged: String =
        db.one("SELECT snapshot FROM alerts WHERE kind = 'FAILURE' AND trace = ''");
    assert_eq!(damaged, "not json: see https://***@h/?token=***");
    let untouched: String = db.one("SELECT snapshot FROM alerts WHERE kind = 'SUCCESS'");
    assert_eq!(
        untouched, clean,
        "a snapshot with nothing to hide is left as it was"
    );

    // The target's last trace too, without the row counting as edited; its URL is what the
    // checks use, and stays as written.
    let (trace, url, changed): (String, String, String) =
        db.one("SELECT last_trace, url, CAST(config_changed AS CHAR) FROM targets");
    assert!(!trace.contains("PW") && !trace.contains("abc"), "{trace}");
    assert_eq!(url, "https://user:PW@h/?token=abc&x=1");
    assert_eq!(changed, edited);

    let before: Vec<(i64, String, String)> = db.query("SELECT id, snapshot, trace FROM alerts");
    let again = db.cli(&["upgrade-db"]);
    assert!(stdout(&again).contains("already has skypunch schema 2.3"));
    let after: Vec<(i64, String, String)> = db.query("SELECT id, snapshot, trace FROM alerts");
    assert!(before == after, "running it again changes nothing");
}

#[test]
fn an_upgrade_cut_short_is_finished_by_running_upgrade_db_again() {
    // The 2.3 script loaded by hand (or an upgrade stopped after it): version 2.3, secrets
    // still stored.
    let db = TestDb::new();
    let id = db.add_target("name, url", "'shop', 'http://127.0.0.1:9/'");
    db.conn()
        .exec_drop(
            "INSERT INTO alerts (target_id, kind, snapshot, trace) VALUES (?, 'FAILURE', ?, ?)",
            (id, OLD_SNAPSHOT, OLD_TRACE),
        )
        .unwrap();
    let again = db.cli(&["upgrade-db"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let left: i64 = db.one(
        "SELECT COUNT(*) FROM alerts WHERE CONCAT(snapshot, trace) LIKE BINARY '%PW%' \
         OR CONCAT(snapshot, trace) LIKE BINARY '%abc%'",
    );
    assert_eq!(left, 0);
}
