//! The one shape of a `targets` row, whoever reads it (the loader thread, the writer's store
//! thread, the HTTP handler threads, the CLI): its column list, its decoder, the repairs and
//! the result state it holds, the figures the faces show, and the alert snapshot the writer
//! takes of it. Plain data and SQL text; the statements that run them are elsewhere.

use std::sync::OnceLock;

use mysql::Row;

use super::super::decode::{self, BadRow, Fields, Fix};
use crate::base::model::{Status, TargetId, TargetState};
use crate::base::state::Counts;

/// A `targets` row as stored, with its open incident, before validation. Values the operator
/// may have left NULL or out of range are kept as they are so that validation can name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRow {
    pub id: TargetId,
    pub name: String,
    pub tenantid: String,
    pub status: String,
    pub status_description: Option<String>,
    pub previous_status: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub last_updated: String,
    /// As written: it may hold a password or a token (see [`TargetRow::shown_url`]).
    pub url: String,
    pub method: String,
    pub authn: String,
    /// NULL unless the read asked for it ([`Leave`]).
    pub authn_parms: Option<String>,
    pub pass_result: i64,
    pub frequency: i64,
    pub timeout: i64,
    pub pass_count: i64,
    pub fail_count: i64,
    pub count200: i64,
    pub count300: i64,
    pub count400: i64,
    pub count500: i64,
    pub network_fails: i64,
    pub repeated_fails: i64,
    pub enabled: bool,
    pub request_body: Option<String>,
    pub content_type: Option<String>,
    pub expect_body: Option<String>,
    pub max_response_ms: Option<i64>,
    pub follow_redirects: bool,
    pub verify_tls: bool,
    pub fail_threshold: i64,
    pub alerted: bool,
    pub last_http_status: Option<i64>,
    pub last_response_ms: Option<i64>,
    /// NULL unless the read asked for it ([`Leave`]).
    pub last_trace: Option<String>,
    /// `config_changed` in microseconds since the epoch.
    pub revision: i64,
    /// Moved on by one with every result written; as stored (see [`TargetRow::fixes`]).
    pub state_seq: i64,
    pub success_threshold: i64,
    pub repeated_passes: i64,
    pub realert_minutes: i64,
    /// `last_alerted` in milliseconds since the epoch.
    pub last_alerted_ms: Option<i64>,
    pub ca_file: Option<String>,
    pub cert_warn_days: i64,
    /// `cert_expires_at`, `YYYY-MM-DD HH:MM:SS` UTC.
    pub cert_expires_at: Option<String>,
    pub cert_issuer: Option<String>,
    /// `cert_alerted_for` in seconds since the epoch.
    pub cert_alerted_for: Option<i64>,
    pub group_name: Option<String>,
    pub public: bool,
    /// The open incident's start, in milliseconds since the epoch, and its latest reason.
    pub incident_started_ms: Option<i64>,
    pub incident_reason: Option<String>,
    /// For the loader: the row does not decode, and why; it then holds only its id, revision
    /// and status. Its config error.
    pub undecodable: Option<BadRow>,
}

/// One column of a row: its name, which is also its key in an alert's snapshot, and the SQL
/// that reads it from [`FROM`].
struct Column {
    name: &'static str,
    sql: &'static str,
}

const fn column(name: &'static str, sql: &'static str) -> Column {
    Column { name, sql }
}

/// A target and its open incident (at most one: `incidents_open` is a unique key).
pub const FROM: &str = "targets t LEFT JOIN incidents i ON i.open_target = t.id";

/// The one column list of a row, in [`TargetRow::decode`]'s order.
const COLUMNS: [Column; 49] = [
    column("id", "t.id"),
    column("name", "t.name"),
    column("tenantid", "t.tenantid"),
    column("status", "t.status"),
    column("status_description", "t.status_description"),
    column("previous_status", "t.previous_status"),
    column(
        "last_updated",
        "DATE_FORMAT(t.last_updated, '%Y-%m-%d %H:%i:%s')",
    ),
    column("url", "t.url"),
    column("method", "t.method"),
    column("authn", "t.authn"),
    column("authn_parms", "t.authn_parms"),
    column("pass_result", "t.pass_result"),
    column("frequency", "t.frequency"),
    column("timeout", "t.timeout"),
    column("pass_count", "t.pass_count"),
    column("fail_count", "t.fail_count"),
    column("count200", "t.count200"),
    column("count300", "t.count300"),
    column("count400", "t.count400"),
    column("count500", "t.count500"),
    column("network_fails", "t.network_fails"),
    column("repeated_fails", "t.repeated_fails"),
    column("enabled", "t.enabled"),
    column("request_body", "t.request_body"),
    column("content_type", "t.content_type"),
    column("expect_body", "t.expect_body"),
    column("max_response_ms", "t.max_response_ms"),
    column("follow_redirects", "t.follow_redirects"),
    column("verify_tls", "t.verify_tls"),
    column("fail_threshold", "t.fail_threshold"),
    column("alerted", "t.alerted"),
    column("last_http_status", "t.last_http_status"),
    column("last_response_ms", "t.last_response_ms"),
    column("last_trace", "t.last_trace"),
    column(
        "config_changed",
        "CAST(UNIX_TIMESTAMP(t.config_changed) * 1000000 AS SIGNED)",
    ),
    column("state_seq", "t.state_seq"),
    column("success_threshold", "t.success_threshold"),
    column("repeated_passes", "t.repeated_passes"),
    column("realert_minutes", "t.realert_minutes"),
    column(
        "last_alerted",
        "CAST(UNIX_TIMESTAMP(t.last_alerted) * 1000 AS SIGNED)",
    ),
    column("ca_file", "t.ca_file"),
    column("cert_warn_days", "t.cert_warn_days"),
    column(
        "cert_expires_at",
        "DATE_FORMAT(t.cert_expires_at, '%Y-%m-%d %H:%i:%s')",
    ),
    column("cert_issuer", "t.cert_issuer"),
    column(
        "cert_alerted_for",
        "TIMESTAMPDIFF(SECOND, '1970-01-01', t.cert_alerted_for)",
    ),
    column("group_name", "t.group_name"),
    column("public", "t.public"),
    column(
        "incident_started",
        "CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED)",
    ),
    column("incident_reason", "i.last_reason"),
];

/// The place of column `name` in [`COLUMNS`]; evaluated at compile time by [`at!`], so a
/// name the list does not hold fails the build.
const fn position(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMNS.len() {
        if same(COLUMNS[i].name, name) {
            return i;
        }
        i += 1;
    }
    panic!("not a column of COLUMNS");
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Column `name` of the row, read with `Fields::$how`.
macro_rules! at {
    ($f:ident . $how:ident ($name:literal)) => {
        $f.$how(
            {
                const I: usize = position($name);
                I
            },
            $name,
        )
    };
}

/// What a read of whole rows leaves out (reads as NULL): columns its reader has no use for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Everything is read (the CLI's `targets ID` and `targets ID test`).
    Nothing,
    /// `last_trace`, which can be kilobytes a row (the loader).
    Trace,
    /// `last_trace`, and `authn_parms`, which only a check needs (the HTTP server, the
    /// writer's read of the result state).
    TraceAndParams,
}

impl Leave {
    fn leaves(self, name: &str) -> bool {
        match self {
            Leave::Nothing => false,
            Leave::Trace => name == "last_trace",
            Leave::TraceAndParams => name == "last_trace" || name == "authn_parms",
        }
    }
}

/// `SELECT <the columns> FROM <FROM>`, for a `WHERE` on `t` to follow.
pub fn select(leave: Leave) -> String {
    let columns: Vec<&str> = COLUMNS
        .iter()
        .map(|c| if leave.leaves(c.name) { "NULL" } else { c.sql })
        .collect();
    format!("SELECT {} FROM {FROM}", columns.join(", "))
}

/// The counters a check adds to, in [`Counts`] order.
pub const COUNTERS: [&str; 7] = [
    "pass_count",
    "fail_count",
    "count200",
    "count300",
    "count400",
    "count500",
    "network_fails",
];

/// The columns an alert's snapshot holds, as its JSON keys (which the notifier's messages
/// read), in the order it has always stored them; never `authn_parms`.
#[rustfmt::skip]
const SNAPSHOT: [&str; 31] = [
    "id", "name", "tenantid", "enabled", "status", "previous_status", "status_description",
    "last_updated", "url", "method", "authn", "frequency", "timeout", "pass_result",
    "pass_count", "fail_count", "count200", "count300", "count400", "count500",
    "repeated_fails", "network_fails", "fail_threshold", "success_threshold", "repeated_passes",
    "realert_minutes", "incident_started", "last_http_status", "last_response_ms",
    "cert_expires_at", "cert_issuer",
];

/// The `JSON_OBJECT(...)` of an alert's snapshot, over [`FROM`], each key read as the row
/// reads it but two: `url` is a parameter (the display form: the URL as written may hold a
/// secret), and `incident_started` is text, as `last_updated` is.
pub fn snapshot() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let pairs: Vec<String> = SNAPSHOT
            .iter()
            .map(|name| {
                let sql = match *name {
                    "url" => "?",
                    "incident_started" => "DATE_FORMAT(i.started, '%Y-%m-%d %H:%i:%s')",
                    _ => COLUMNS[COLUMNS.iter().position(|c| c.name == *name).unwrap()].sql,
                };
                format!("'{name}', {sql}")
            })
            .collect();
        format!("JSON_OBJECT({})", pairs.join(", "))
    })
}

impl TargetRow {
    /// Decodes a row read with [`select`]. Daemon-owned values out of range decode as they
    /// are: [`TargetRow::fixes`] says how to repair them.
    pub fn decode(f: &mut Fields) -> Result<TargetRow, BadRow> {
        Ok(TargetRow {
            id: at!(f.id("id"))?,
            name: at!(f.get("name"))?,
            tenantid: at!(f.get("tenantid"))?,
            status: at!(f.get("status"))?,
            status_description: at!(f.opt("status_description"))?,
            previous_status: at!(f.get("previous_status"))?,
            last_updated: at!(f.opt("last_updated"))?.unwrap_or_default(),
            url: at!(f.get("url"))?,
            method: at!(f.get("method"))?,
            authn: at!(f.get("authn"))?,
            authn_parms: at!(f.secret("authn_parms"))?,
            pass_result: at!(f.get("pass_result"))?,
            frequency: at!(f.get("frequency"))?,
            timeout: at!(f.get("timeout"))?,
            pass_count: at!(f.get("pass_count"))?,
            fail_count: at!(f.get("fail_count"))?,
            count200: at!(f.get("count200"))?,
            count300: at!(f.get("count300"))?,
            count400: at!(f.get("count400"))?,
            count500: at!(f.get("count500"))?,
            network_fails: at!(f.get("network_fails"))?,
            repeated_fails: at!(f.get("repeated_fails"))?,
            enabled: at!(f.flag("enabled"))?,
            request_body: at!(f.opt("request_body"))?,
            content_type: at!(f.opt("content_type"))?,
            expect_body: at!(f.opt("expect_body"))?,
            max_response_ms: at!(f.opt("max_response_ms"))?,
            follow_redirects: at!(f.flag("follow_redirects"))?,
            verify_tls: at!(f.flag("verify_tls"))?,
            fail_threshold: at!(f.get("fail_threshold"))?,
            alerted: at!(f.flag("alerted"))?,
            last_http_status: at!(f.opt("last_http_status"))?,
            last_response_ms: at!(f.opt("last_response_ms"))?,
            last_trace: at!(f.opt("last_trace"))?,
            revision: at!(f.opt("config_changed"))?.unwrap_or_default(),
            state_seq: at!(f.get("state_seq"))?,
            success_threshold: at!(f.get("success_threshold"))?,
            repeated_passes: at!(f.get("repeated_passes"))?,
            realert_minutes: at!(f.get("realert_minutes"))?,
            last_alerted_ms: at!(f.opt("last_alerted"))?,
            ca_file: at!(f.opt("ca_file"))?,
            cert_warn_days: at!(f.get("cert_warn_days"))?,
            cert_expires_at: at!(f.opt("cert_expires_at"))?,
            cert_issuer: at!(f.opt("cert_issuer"))?,
            cert_alerted_for: at!(f.opt("cert_alerted_for"))?,
            group_name: at!(f.opt("group_name"))?,
            public: at!(f.flag("public"))?,
            incident_started_ms: at!(f.opt("incident_started"))?,
            incident_reason: at!(f.opt("incident_reason"))?,
            undecodable: None,
        })
    }

    /// [`TargetRow::decode`] for the loader: a row with a usable id that does not decode
    /// comes back holding only its id, revision, status and what is wrong, to become a config
    /// error like any row that does not validate.
    pub fn load(f: &mut Fields) -> Result<TargetRow, BadRow> {
        let revision = f
            .peek::<i64>(position("config_changed"))
            .unwrap_or_default();
        let status = f.peek::<String>(position("status")).unwrap_or_default();
        let status_description = f.peek::<String>(position("status_description"));
        let bad = match TargetRow::decode(f) {
            Ok(row) => return Ok(row),
            Err(bad) => bad,
        };
        let Some(id) = bad.usable_id() else {
            return Err(bad);
        };
        Ok(TargetRow {
            id,
            revision,
            status,
            status_description,
            enabled: true,
            undecodable: Some(bad),
            ..TargetRow::default()
        })
    }

    /// The daemon-owned values a person edited out of range, and what they are repaired to.
    pub fn fixes(&self) -> Vec<Fix> {
        let counters = COUNTERS.into_iter().zip(self.counters()).chain([
            ("repeated_fails", self.repeated_fails),
            ("repeated_passes", self.repeated_passes),
        ]);
        decode::counter_fix("state_seq", self.state_seq)
            .into_iter()
            .chain(counters.filter_map(|(c, n)| decode::counter_fix(c, n)))
            .collect()
    }

    /// The counters as stored, in [`COUNTERS`] order.
    fn counters(&self) -> [i64; 7] {
        [
            self.pass_count,
            self.fail_count,
            self.count200,
            self.count300,
            self.count400,
            self.count500,
            self.network_fails,
        ]
    }

    /// The repairs of the result state alone: what the writer's read repairs, leaving the
    /// counters, which a write may add to meanwhile, to the loader.
    pub fn state_fixes(&self) -> Vec<Fix> {
        let state = ["state_seq", "repeated_fails", "repeated_passes"];
        let mut fixes = self.fixes();
        fixes.retain(|f| state.contains(&f.column));
        fixes
    }

    /// The result state the row holds: what the writer starts from the first time it writes
    /// the target. Values edited out of range are taken as their repairs (see
    /// [`TargetRow::fixes`]).
    pub fn state(&self) -> TargetState {
        let fixes = self.fixes();
        let now = |column: &str, was: i64| decode::repaired(&fixes, column, was) as u64;
        TargetState {
            status: Status::parse(&self.status),
            repeated_fails: now("repeated_fails", self.repeated_fails),
            alerted: self.alerted,
            repeated_passes: now("repeated_passes", self.repeated_passes),
            last_alerted_ms: self.last_alerted_ms,
            seq: now("state_seq", self.state_seq),
            cert_alerted_for: self.cert_alerted_for,
        }
    }

    /// `status_description`, empty when NULL.
    pub fn description(&self) -> &str {
        self.status_description.as_deref().unwrap_or("")
    }

    /// Whether the description is a config error the loader wrote (the row is not checked).
    pub fn config_error(&self) -> bool {
        self.description().starts_with("config error:")
    }

    /// The URL's display form: no user info, secret parameters masked.
    pub fn shown_url(&self) -> String {
        crate::base::urls::shown(&self.url)
    }

    /// `group_name`, when it names one.
    pub fn group(&self) -> Option<&str> {
        self.group_name.as_deref().filter(|g| !g.is_empty())
    }

    /// When the last result was written, in milliseconds since the epoch.
    pub fn last_updated_ms(&self) -> Option<i64> {
        utc_seconds(&self.last_updated).map(|s| s * 1000)
    }

    /// When the certificate a check last saw expires, in seconds since the epoch.
    pub fn cert_expires_s(&self) -> Option<i64> {
        self.cert_expires_at.as_deref().and_then(utc_seconds)
    }

    /// The counters, a value below zero (a hand edit) taken as 0.
    pub fn counts(&self) -> Counts {
        let [pass, fail, c200, c300, c400, c500, network] =
            self.counters().map(|v| u64::try_from(v).unwrap_or(0));
        Counts {
            pass,
            fail,
            c200,
            c300,
            c400,
            c500,
            network,
        }
    }
}

/// Decodes a row read with [`select`]; one that does not decode is reported (see
/// [`decode::skip`]) and left out.
pub fn decoded(row: Row) -> Option<TargetRow> {
    TargetRow::decode(&mut Fields::new(super::TABLE, row))
        .map_err(|bad| decode::skip(&bad))
        .ok()
}

/// Seconds since the epoch of a `YYYY-MM-DD HH:MM:SS` UTC time as the columns read.
fn utc_seconds(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::Value;

    /// A row of [`COLUMNS`], all NULL but id, status and revision.
    fn fields(id: i64) -> Fields {
        let mut values = vec![Some(Value::NULL); COLUMNS.len()];
        values[position("id")] = Some(Value::Int(id));
        values[position("status")] = Some(Value::Bytes(b"PASS".to_vec()));
        values[position("config_changed")] = Some(Value::Int(1234));
        Fields::of(super::super::TABLE, values)
    }

    #[test]
    fn a_row_with_a_usable_id_that_does_not_decode_comes_back_as_its_config_error() {
        let row = TargetRow::load(&mut fields(5)).unwrap();
        assert_eq!(
            (row.id, row.revision, row.status.as_str()),
            (5, 1234, "PASS")
        );
        assert_eq!(
            row.undecodable.map(|bad| bad.problem()).as_deref(),
            Some("name: NULL is not UTF-8 text")
        );
        let bad = TargetRow::load(&mut fields(-1)).unwrap_err();
        assert_eq!(bad.to_string(), "targets row with id -1: ids are positive");
    }

    #[test]
    fn counters_and_state_seq_out_of_range_are_repaired_to_zero() {
        let row = TargetRow {
            state_seq: -1,
            pass_count: i64::MAX,
            fail_count: 3,
            repeated_passes: -2,
            ..TargetRow::default()
        };
        let fixes: Vec<String> = row.fixes().iter().map(Fix::to_string).collect();
        assert_eq!(
            fixes,
            [
                "state_seq -1 -> 0",
                "pass_count 9223372036854775807 -> 0",
                "repeated_passes -2 -> 0"
            ]
        );
    }

    #[test]
    fn a_state_edited_out_of_range_is_taken_as_its_repair() {
        let row = TargetRow {
            state_seq: -1,
            repeated_fails: i64::MAX,
            repeated_passes: 3,
            ..TargetRow::default()
        };
        let s = row.state();
        assert_eq!((s.seq, s.repeated_fails, s.repeated_passes), (0, 0, 3));
    }

    #[test]
    fn a_read_leaves_out_only_what_it_says_and_keeps_the_places() {
        let lean = select(Leave::TraceAndParams);
        assert!(!lean.contains("t.last_trace") && !lean.contains("t.authn_parms"));
        assert_eq!(
            lean.matches(", ").count(),
            select(Leave::Nothing).matches(", ").count()
        );
        assert!(select(Leave::Trace).contains("t.authn_parms"));
    }

    #[test]
    fn the_snapshot_keeps_its_keys_in_their_order_and_never_the_parameters() {
        let sql = snapshot();
        assert!(sql.starts_with("JSON_OBJECT('id', t.id, 'name', t.name, 'tenantid', "));
        assert!(sql.contains("'url', ?, 'method', t.method"));
        assert!(sql.contains(
            "'incident_started', DATE_FORMAT(i.started, '%Y-%m-%d %H:%i:%s'), \
             'last_http_status', t.last_http_status"
        ));
        assert!(sql.ends_with("'cert_issuer', t.cert_issuer)"));
        assert!(!sql.contains("authn_parms") && !sql.contains("last_trace"));
    }

    #[test]
    fn times_read_as_text_are_utc() {
        let row = TargetRow {
            last_updated: "2026-11-24 10:04:22".into(),
            cert_expires_at: Some("1970-01-02 00:00:00".into()),
            ..TargetRow::default()
        };
        assert_eq!(row.last_updated_ms(), Some(1_795_514_662_000));
        assert_eq!(row.cert_expires_s(), Some(86_400));
        assert_eq!(TargetRow::default().last_updated_ms(), None);
    }
}
