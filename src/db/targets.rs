//! Reading target rows (loader thread, CLI) and the few writes that are not check results:
//! enable/disable and config errors.

use mysql::prelude::Queryable;
use mysql::{params, Row};

use super::{col, opt, Conn, Error};
use crate::model::TargetId;

/// A `targets` row as stored, before validation. Values the operator may have left NULL or
/// out of range are kept as they are so that validation can name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRow {
    pub id: TargetId,
    pub name: String,
    pub tenantid: String,
    pub status: String,
    pub status_description: Option<String>,
    pub previous_status: String,
    pub last_updated: String,
    pub url: String,
    pub method: String,
    pub authn: String,
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
    pub last_trace: Option<String>,
    /// `config_changed` in microseconds since the epoch.
    pub revision: i64,
    /// Moved on by one with every result written.
    pub state_seq: u64,
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
}

const COLUMNS: &str = "id, name, tenantid, status, status_description, previous_status, \
    DATE_FORMAT(last_updated, '%Y-%m-%d %H:%i:%s'), url, method, authn, authn_parms, \
    pass_result, frequency, timeout, pass_count, fail_count, count200, count300, count400, \
    count500, network_fails, repeated_fails, enabled, request_body, content_type, expect_body, \
    max_response_ms, follow_redirects, verify_tls, fail_threshold, alerted, last_http_status, \
    last_response_ms, last_trace, CAST(UNIX_TIMESTAMP(config_changed) * 1000000 AS SIGNED), \
    state_seq, success_threshold, repeated_passes, realert_minutes, \
    CAST(UNIX_TIMESTAMP(last_alerted) * 1000 AS SIGNED), ca_file, cert_warn_days, \
    DATE_FORMAT(cert_expires_at, '%Y-%m-%d %H:%i:%s'), cert_issuer, \
    TIMESTAMPDIFF(SECOND, '1970-01-01', cert_alerted_for)";

impl TargetRow {
    fn from_row(mut r: Row) -> TargetRow {
        TargetRow {
            id: col(&mut r, 0),
            name: col(&mut r, 1),
            tenantid: col(&mut r, 2),
            status: col(&mut r, 3),
            status_description: opt(&mut r, 4),
            previous_status: col(&mut r, 5),
            last_updated: col(&mut r, 6),
            url: col(&mut r, 7),
            method: col(&mut r, 8),
            authn: col(&mut r, 9),
            authn_parms: opt(&mut r, 10),
            pass_result: col(&mut r, 11),
            frequency: col(&mut r, 12),
            timeout: col(&mut r, 13),
            pass_count: col(&mut r, 14),
            fail_count: col(&mut r, 15),
            count200: col(&mut r, 16),
            count300: col(&mut r, 17),
            count400: col(&mut r, 18),
            count500: col(&mut r, 19),
            network_fails: col(&mut r, 20),
            repeated_fails: col(&mut r, 21),
            enabled: col(&mut r, 22),
            request_body: opt(&mut r, 23),
            content_type: opt(&mut r, 24),
            expect_body: opt(&mut r, 25),
            max_response_ms: opt(&mut r, 26),
            follow_redirects: col(&mut r, 27),
            verify_tls: col(&mut r, 28),
            fail_threshold: col(&mut r, 29),
            alerted: col(&mut r, 30),
            last_http_status: opt(&mut r, 31),
            last_response_ms: opt(&mut r, 32),
            last_trace: opt(&mut r, 33),
            revision: col(&mut r, 34),
            state_seq: col(&mut r, 35),
            success_threshold: col(&mut r, 36),
            repeated_passes: col(&mut r, 37),
            realert_minutes: col(&mut r, 38),
            last_alerted_ms: opt(&mut r, 39),
            ca_file: opt(&mut r, 40),
            cert_warn_days: col(&mut r, 41),
            cert_expires_at: opt(&mut r, 42),
            cert_issuer: opt(&mut r, 43),
            cert_alerted_for: opt(&mut r, 44),
        }
    }
}

/// Every target, for the CLI's list.
pub fn all(conn: &mut Conn) -> Result<Vec<TargetRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM targets ORDER BY id");
    let rows: Vec<Row> = conn.query(sql).map_err(Error::query("listing targets"))?;
    Ok(rows.into_iter().map(TargetRow::from_row).collect())
}

/// One target by id.
pub fn get(conn: &mut Conn, id: TargetId) -> Result<Option<TargetRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM targets WHERE id = ?");
    let row: Option<Row> = conn
        .exec_first(sql, (id,))
        .map_err(Error::query("reading a target"))?;
    Ok(row.map(TargetRow::from_row))
}

/// The columns the loader needs: all but `last_trace` (read as NULL), which can be kilobytes
/// a row and is only shown by the CLI.
fn loader_columns() -> String {
    COLUMNS.replace("last_trace,", "NULL,")
}

/// Up to `limit` enabled targets with ids above `after`, by id: the loader's first read, in
/// pages so that 100,000 rows are never all in memory at once.
pub fn enabled_page(
    conn: &mut Conn,
    after: TargetId,
    limit: usize,
) -> Result<Vec<TargetRow>, Error> {
    let sql = format!(
        "SELECT {} FROM targets WHERE enabled AND id > ? ORDER BY id LIMIT ?",
        loader_columns()
    );
    let rows: Vec<Row> = conn
        .exec(sql, (after, limit as u64))
        .map_err(Error::query("loading enabled targets"))?;
    Ok(rows.into_iter().map(TargetRow::from_row).collect())
}

/// The database server's clock, in microseconds since the epoch: change scans are measured
/// against it, not against this host's clock.
pub fn db_clock(conn: &mut Conn) -> Result<i64, Error> {
    let now: Option<i64> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .map_err(Error::query("reading the database clock"))?;
    Ok(now.unwrap_or(0))
}

/// The targets with these ids (enabled or not).
pub fn by_ids(conn: &mut Conn, ids: &[TargetId]) -> Result<Vec<TargetRow>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT {} FROM targets WHERE id IN ({marks})",
            loader_columns()
        );
        let rows: Vec<Row> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("reading changed targets"))?;
        out.extend(rows.into_iter().map(TargetRow::from_row));
    }
    Ok(out)
}

/// Ids and revisions of rows whose `config_changed` is at or after `since` (microseconds):
/// the reload scan reads these two columns through the index, not whole rows.
pub fn changed_since(conn: &mut Conn, since: i64) -> Result<Vec<(TargetId, i64)>, Error> {
    conn.exec(
        "SELECT id, CAST(UNIX_TIMESTAMP(config_changed) * 1000000 AS SIGNED) FROM targets \
         WHERE config_changed >= FROM_UNIXTIME(? / 1000000)",
        (since,),
    )
    .map_err(Error::query("scanning for changed targets"))
}

/// Count and id sum of enabled rows: a cheap fingerprint that changes when a row is deleted.
pub fn enabled_fingerprint(conn: &mut Conn) -> Result<(u64, u64), Error> {
    let row: Option<(u64, u64)> = conn
        .query_first(
            "SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS UNSIGNED) FROM targets WHERE enabled",
        )
        .map_err(Error::query("counting enabled targets"))?;
    Ok(row.unwrap_or((0, 0)))
}

/// Ids of every enabled row.
pub fn enabled_ids(conn: &mut Conn) -> Result<Vec<TargetId>, Error> {
    conn.query("SELECT id FROM targets WHERE enabled")
        .map_err(Error::query("listing enabled ids"))
}

/// Enables or disables a target; false when there is no such id.
pub fn set_enabled(conn: &mut Conn, id: TargetId, enabled: bool) -> Result<bool, Error> {
    conn.exec_drop("UPDATE targets SET enabled = ? WHERE id = ?", (enabled, id))
        .map_err(Error::query("enabling or disabling a target"))?;
    Ok(conn.affected_rows() > 0 || get(conn, id)?.is_some())
}

/// Of these rows, the ones (still enabled) whose status is not a `config error: ...` FAIL.
pub fn without_config_error(conn: &mut Conn, ids: &[TargetId]) -> Result<Vec<TargetId>, Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT id FROM targets WHERE id IN ({marks}) AND enabled AND NOT \
             (status = 'FAIL' AND status_description LIKE 'config error:%')"
        );
        let found: Vec<TargetId> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("checking config errors"))?;
        out.extend(found);
    }
    Ok(out)
}

/// Marks a row that does not validate: FAIL with `config error: ...`, its revision kept so
/// that the write is not mistaken for an operator's edit.
pub fn mark_config_error(conn: &mut Conn, id: TargetId, description: &str) -> Result<(), Error> {
    let description = format!("config error: {description}");
    let description = crate::text::clip(&description, 128);
    conn.exec_drop(
        "UPDATE targets SET previous_status = status, status = 'FAIL', \
         status_description = :d, last_updated = NOW(), config_changed = config_changed \
         WHERE id = :id",
        params! { "d" => description, "id" => id },
    )
    .map_err(Error::query("recording a target's config error"))
}

/// Counts for `skypunch status`: every row by status, and how many are disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: u64,
    pub pass: u64,
    pub fail: u64,
    pub new: u64,
    pub disabled: u64,
}

/// One pass over the table for [`Summary`].
pub fn summary(conn: &mut Conn) -> Result<Summary, Error> {
    let row: Option<(u64, u64, u64, u64, u64)> = conn
        .query_first(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(status = 'PASS'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'FAIL'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'NEW'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(NOT enabled), 0) AS UNSIGNED) FROM targets",
        )
        .map_err(Error::query("counting targets"))?;
    let (total, pass, fail, new, disabled) = row.unwrap_or_default();
    Ok(Summary {
        total,
        pass,
        fail,
        new,
        disabled,
    })
}
