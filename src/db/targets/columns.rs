//! The one column list of a `targets` row: each column's name (also its key in an alert's
//! snapshot) and the SQL that reads it, what each reader's read takes of it ([`Read`]), and
//! the alert snapshot's `JSON_OBJECT`. SQL text only, built once per statement; no I/O.

use std::sync::OnceLock;

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

/// The one column list of a row, in `TargetRow::decode`'s order.
const COLUMNS: [Column; 59] = [
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
    column("client_cert", "t.client_cert"),
    column("client_key", "t.client_key"),
    column("proxy_url", "t.proxy_url"),
    column("ip_family", "t.ip_family"),
    column("conditions", "t.conditions"),
    column("request_headers", "t.request_headers"),
    column(
        "incident_started",
        "CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED)",
    ),
    column("incident_reason", "i.last_reason"),
    column("push_token", "t.push_token"),
    column("last_phases", "t.last_phases"),
    column("depends_on", "t.depends_on"),
    column("held", HELD),
];

/// Why the open incident's FAILURE alert is held, when it is: its parent (`depends_on`) was
/// in FAIL (the parent named from the incident that held it, so an edit of `depends_on`
/// since does not change what happened), or the node checking it could not reach its
/// network, or a second node is confirming the failure or found the target up (unconfirmed).
/// NULL otherwise, and once the FAILURE went out.
const HELD: &str = "CASE WHEN i.alerted = 0 AND i.suppressed_by IS NOT NULL THEN \
    (SELECT CONCAT('parent ', IF(p.name = '', CONCAT('target ', p.id), p.name), \
    IF(p.status = 'FAIL' AND p.enabled <> 0, ' is down', \
    ' was down; it alerts at its next check if it still fails')) \
    FROM incidents pi JOIN targets p ON p.id = pi.target_id WHERE pi.id = i.suppressed_by) \
    WHEN i.alerted = 0 AND i.monitor_blind <> 0 THEN 'the node checking it could not reach \
    its network; it alerts at its next check if it still fails' \
    WHEN EXISTS (SELECT 1 FROM confirmations c WHERE c.open_target = t.id) THEN 'a second \
    node is checking it to confirm the failure' \
    WHEN i.alerted = 0 AND i.unconfirmed <> 0 THEN 'unconfirmed: a second node found it up; \
    it is checked again from there at its next failing check' END";

/// The place of column `name` in [`COLUMNS`]; evaluated at compile time by the decoder's
/// `at!`, so a name the list does not hold fails the build.
pub(super) const fn position(name: &str) -> usize {
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

/// Where the column at `i` in [`COLUMNS`] stands in a read of `mask`, which selects only the
/// columns it takes.
pub(super) const fn place(mask: u64, i: usize) -> usize {
    (mask & ((1 << i) - 1)).count_ones() as usize
}

/// A bit per column of [`COLUMNS`] named.
const fn mask(names: &[&str]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < names.len() {
        m |= 1 << position(names[i]);
        i += 1;
    }
    m
}

const EVERY: u64 = (1 << COLUMNS.len()) - 1;
pub(super) const NO_TRACE: u64 =
    EVERY & !mask(&["last_trace", "incident_started", "incident_reason", "held"]);
const STATE: u64 = mask(&[
    "id",
    "status",
    "repeated_fails",
    "alerted",
    "state_seq",
    "repeated_passes",
    "last_alerted",
    "cert_alerted_for",
]);
/// What `/metrics` shows of a target.
const FIGURES: u64 = mask(&[
    "id",
    "name",
    "status",
    "status_description",
    "last_updated",
    "last_http_status",
    "last_response_ms",
    "incident_started",
    "cert_expires_at",
    "last_phases",
]) | mask(&COUNTERS);
/// What the status pages and the API show of a target.
const SHOWN: u64 = FIGURES
    | mask(&[
        "enabled",
        "url",
        "method",
        "frequency",
        "group_name",
        "public",
        "incident_reason",
        "push_token",
        "depends_on",
        "held",
    ]);
/// What the API's answer for one target shows: its conditions and request headers too.
const DETAIL: u64 = SHOWN | mask(&["conditions", "request_headers"]);
const INCIDENT: u64 = mask(&["incident_started", "incident_reason", "held"]);

/// Which columns a read takes: the others are not read and their fields keep their defaults
/// (empty, 0, false, `None`), so a reader uses only the fields its read takes. What a reader
/// has no use for costs neither the database nor the decoder anything: `/metrics` reads
/// 100,000 rows at every scrape, the writer every row once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Every column (`targets ID`, `targets ID test`).
    All,
    /// All but `last_trace`, which can be kilobytes a row, and the open incident (the loader,
    /// the CLI's lists).
    NoTrace,
    /// The result state, for [`TargetRow::state`](super::TargetRow::state) (the writer's
    /// first read of a target).
    State,
    /// What the status pages and the API show: never `authn_parms` or the trace (and
    /// `push_token` only to be shown masked).
    Shown,
    /// [`Read::Shown`] and the `conditions` and `request_headers` (the API's answer for one
    /// target): not a list's, since each can hold 64 KiB and a page has up to 5,000 rows.
    Detail,
    /// What `/metrics` shows ([`TargetRow::counts`](super::TargetRow::counts) and the last
    /// check's figures).
    Figures,
}

impl Read {
    pub(super) fn mask(self) -> u64 {
        match self {
            Read::All => EVERY,
            Read::NoTrace => NO_TRACE,
            Read::State => STATE,
            Read::Shown => SHOWN,
            Read::Detail => DETAIL,
            Read::Figures => FIGURES,
        }
    }
}

/// `SELECT <the columns read takes, in their order> FROM <the target, and its open incident
/// when the read takes it>`, for a `WHERE` on `t` to follow.
pub fn select(read: Read) -> String {
    let mask = read.mask();
    let columns: Vec<&str> = COLUMNS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| c.sql)
        .collect();
    let from = if mask & INCIDENT == 0 {
        "targets t"
    } else {
        FROM
    };
    format!("SELECT {} FROM {from}", columns.join(", "))
}

/// The counters a check adds to, in [`Counts`](crate::base::state::Counts) order.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_takes_only_its_columns_and_keeps_every_place() {
        assert!(select(Read::All).starts_with("SELECT t.id, t.name, t.tenantid, "));
        for read in [
            Read::NoTrace,
            Read::State,
            Read::Shown,
            Read::Detail,
            Read::Figures,
        ] {
            assert!(!select(read).contains("t.last_trace"), "{read:?}");
        }
        assert!(select(Read::State).starts_with("SELECT t.id, t.status, t.repeated_fails, "));
        assert!(select(Read::NoTrace).contains("t.authn_parms"));
        assert!(!select(Read::Shown).contains("t.authn_parms"));
        assert!(!select(Read::Detail).contains("t.authn_parms"));
        assert!(!select(Read::Shown).contains("t.conditions"));
        assert!(!select(Read::Shown).contains("t.request_headers"));
        assert!(select(Read::Detail).contains("t.conditions, t.request_headers, "));
        assert!(select(Read::Detail).ends_with(FROM));
        assert!(select(Read::State).ends_with("FROM targets t"));
        assert!(select(Read::NoTrace).ends_with("FROM targets t"));
        assert!(select(Read::Figures).ends_with(FROM));
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
}
