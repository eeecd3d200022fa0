//! Reading target rows (loader thread, CLI) and the few writes that are not check results:
//! enable/disable and config errors.

use mysql::prelude::Queryable;
use mysql::{params, Row};

use super::decode::{self, BadRow, Fields, Fix};
use super::{Conn, Error};
use crate::base::model::TargetId;

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
    /// For the loader: the row does not decode, and why (`column: reason`); it then holds
    /// only its id, revision and status. Its config error.
    pub undecodable: Option<String>,
}

const TABLE: &str = "targets";

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
    /// Decodes a row selected with [`COLUMNS`]. Daemon-owned values out of range decode as
    /// they are: [`TargetRow::fixes`] says how to repair them.
    fn decode(f: &mut Fields) -> Result<TargetRow, BadRow> {
        Ok(TargetRow {
            id: f.id(0, "id")?,
            name: f.get(1, "name")?,
            tenantid: f.get(2, "tenantid")?,
            status: f.get(3, "status")?,
            status_description: f.opt(4, "status_description")?,
            previous_status: f.get(5, "previous_status")?,
            last_updated: f.opt(6, "last_updated")?.unwrap_or_default(),
            url: f.get(7, "url")?,
            method: f.get(8, "method")?,
            authn: f.get(9, "authn")?,
            authn_parms: f.secret(10, "authn_parms")?,
            pass_result: f.get(11, "pass_result")?,
            frequency: f.get(12, "frequency")?,
            timeout: f.get(13, "timeout")?,
            pass_count: f.get(14, "pass_count")?,
            fail_count: f.get(15, "fail_count")?,
            count200: f.get(16, "count200")?,
            count300: f.get(17, "count300")?,
            count400: f.get(18, "count400")?,
            count500: f.get(19, "count500")?,
            network_fails: f.get(20, "network_fails")?,
            repeated_fails: f.get(21, "repeated_fails")?,
            enabled: f.flag(22, "enabled")?,
            request_body: f.opt(23, "request_body")?,
            content_type: f.opt(24, "content_type")?,
            expect_body: f.opt(25, "expect_body")?,
            max_response_ms: f.opt(26, "max_response_ms")?,
            follow_redirects: f.flag(27, "follow_redirects")?,
            verify_tls: f.flag(28, "verify_tls")?,
            fail_threshold: f.get(29, "fail_threshold")?,
            alerted: f.flag(30, "alerted")?,
            last_http_status: f.opt(31, "last_http_status")?,
            last_response_ms: f.opt(32, "last_response_ms")?,
            last_trace: f.opt(33, "last_trace")?,
            revision: f.opt(34, "config_changed")?.unwrap_or_default(),
            state_seq: f.get(35, "state_seq")?,
            success_threshold: f.get(36, "success_threshold")?,
            repeated_passes: f.get(37, "repeated_passes")?,
            realert_minutes: f.get(38, "realert_minutes")?,
            last_alerted_ms: f.opt(39, "last_alerted")?,
            ca_file: f.opt(40, "ca_file")?,
            cert_warn_days: f.get(41, "cert_warn_days")?,
            cert_expires_at: f.opt(42, "cert_expires_at")?,
            cert_issuer: f.opt(43, "cert_issuer")?,
            cert_alerted_for: f.opt(44, "cert_alerted_for")?,
            undecodable: None,
        })
    }

    /// [`TargetRow::decode`] for the loader: a row with a usable id that does not decode
    /// comes back holding only its id, revision, status and what is wrong, to become a config
    /// error like any row that does not validate.
    fn load(f: &mut Fields) -> Result<TargetRow, BadRow> {
        let revision = f.peek::<i64>(34).unwrap_or_default();
        let status = f.peek::<String>(3).unwrap_or_default();
        let status_description = f.peek::<String>(4);
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
            undecodable: Some(bad.problem()),
            ..TargetRow::default()
        })
    }

    /// The daemon-owned values a person edited out of range, and what they are repaired to.
    pub fn fixes(&self) -> Vec<Fix> {
        let counters = [
            ("pass_count", self.pass_count),
            ("fail_count", self.fail_count),
            ("count200", self.count200),
            ("count300", self.count300),
            ("count400", self.count400),
            ("count500", self.count500),
            ("network_fails", self.network_fails),
            ("repeated_fails", self.repeated_fails),
            ("repeated_passes", self.repeated_passes),
        ];
        decode::counter_fix("state_seq", self.state_seq)
            .into_iter()
            .chain(
                counters
                    .iter()
                    .filter_map(|(c, n)| decode::counter_fix(c, *n)),
            )
            .collect()
    }
}

/// Writes (and logs) the repairs of a row's daemon-owned values, keeping its revision; true
/// when this call repaired the row (see [`super::repair_row`]).
pub fn repair(conn: &mut Conn, id: TargetId, fixes: &[Fix]) -> Result<bool, Error> {
    let shown = format!("id {id}");
    let key = ("id = ?", vec![id.into()]);
    let keep = ", config_changed = config_changed";
    super::repair_row(conn, (TABLE, &shown), key, fixes, keep)
}

/// Every target that decodes, for the CLI's list; the others are reported (see
/// [`decode::skip`]).
pub fn all(conn: &mut Conn) -> Result<Vec<TargetRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM targets ORDER BY id");
    let rows: Vec<Row> = conn.query(sql).map_err(Error::query("listing targets"))?;
    Ok(decode::good_rows(TABLE, rows, TargetRow::decode))
}

/// One target by id; a row that does not decode is an [`Error::Row`] saying why.
pub fn get(conn: &mut Conn, id: TargetId) -> Result<Option<TargetRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM targets WHERE id = ?");
    let row: Option<Row> = conn
        .exec_first(sql, (id,))
        .map_err(Error::query("reading a target"))?;
    row.map(|r| TargetRow::decode(&mut Fields::new(TABLE, r)).map_err(Error::Row))
        .transpose()
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
    Ok(decode::good_rows(TABLE, rows, TargetRow::load))
}

/// The database server's clock, in microseconds since the epoch: change scans are measured
/// against it, not against this host's clock.
pub fn db_clock(conn: &mut Conn) -> Result<i64, Error> {
    let row: Option<Row> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .map_err(Error::query("reading the database clock"))?;
    Ok(decode::first("NOW()", row, |f| f.get(0, "NOW(6)")).unwrap_or(0))
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
        out.extend(decode::good_rows(TABLE, rows, TargetRow::load));
    }
    Ok(out)
}

/// Ids and revisions of rows whose `config_changed` is at or after `since` (microseconds):
/// the reload scan reads these two columns through the index, not whole rows. A row whose id
/// is not usable (0 or negative) is reported (see [`decode::skip`]) and left out.
pub fn changed_since(conn: &mut Conn, since: i64) -> Result<Vec<(TargetId, i64)>, Error> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT id, CAST(UNIX_TIMESTAMP(config_changed) * 1000000 AS SIGNED) FROM targets \
             WHERE config_changed >= FROM_UNIXTIME(? / 1000000)",
            (since,),
        )
        .map_err(Error::query("scanning for changed targets"))?;
    Ok(decode::good_rows(TABLE, rows, |f| {
        Ok((f.id(0, "id")?, f.opt(1, "config_changed")?.unwrap_or(0)))
    }))
}

/// Reports the rows whose ids are 0 or negative (see [`decode::skip`]): never checked, since
/// no other table could name them. How many there are.
pub fn report_unusable(conn: &mut Conn) -> Result<usize, Error> {
    let rows: Vec<Row> = conn
        .query("SELECT id FROM targets WHERE id <= 0")
        .map_err(Error::query("looking for rows with unusable ids"))?;
    let n = rows.len();
    decode::good_rows(TABLE, rows, |f| f.id(0, "id"));
    Ok(n)
}

/// Count and id sum of enabled rows with usable ids: a cheap fingerprint that changes when a
/// row is deleted.
pub fn enabled_fingerprint(conn: &mut Conn) -> Result<(u64, u64), Error> {
    let row: Option<Row> = conn
        .query_first(
            "SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS UNSIGNED) FROM targets \
             WHERE enabled AND id > 0",
        )
        .map_err(Error::query("counting enabled targets"))?;
    let fingerprint = decode::first(TABLE, row, |f| Ok((f.get(0, "COUNT")?, f.get(1, "SUM")?)));
    Ok(fingerprint.unwrap_or((0, 0)))
}

/// Ids of every enabled row with a usable id.
pub fn enabled_ids(conn: &mut Conn) -> Result<Vec<TargetId>, Error> {
    let rows: Vec<Row> = conn
        .query("SELECT id FROM targets WHERE enabled AND id > 0")
        .map_err(Error::query("listing enabled ids"))?;
    Ok(decode::good_rows(TABLE, rows, |f| f.id(0, "id")))
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
        let found: Vec<Row> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("checking config errors"))?;
        out.extend(decode::good_rows(TABLE, found, |f| f.id(0, "id")));
    }
    Ok(out)
}

/// Marks a row that does not validate: FAIL with `config error: ...`, its revision kept so
/// that the write is not mistaken for an operator's edit.
pub fn mark_config_error(conn: &mut Conn, id: TargetId, description: &str) -> Result<(), Error> {
    let description = format!("config error: {description}");
    let description = crate::base::text::clip(&description, 128);
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
    let row: Option<Row> = conn
        .query_first(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(status = 'PASS'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'FAIL'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'NEW'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(NOT enabled), 0) AS UNSIGNED) FROM targets",
        )
        .map_err(Error::query("counting targets"))?;
    let summary = decode::first(TABLE, row, |f| {
        Ok(Summary {
            total: f.get(0, "COUNT")?,
            pass: f.get(1, "PASS")?,
            fail: f.get(2, "FAIL")?,
            new: f.get(3, "NEW")?,
            disabled: f.get(4, "disabled")?,
        })
    });
    Ok(summary.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::Value;

    /// A row of [`COLUMNS`], all NULL but id, status and revision.
    fn fields(id: i64) -> Fields {
        let mut values = vec![Some(Value::NULL); 45];
        values[0] = Some(Value::Int(id));
        values[3] = Some(Value::Bytes(b"PASS".to_vec()));
        values[34] = Some(Value::Int(1234));
        Fields::of(TABLE, values)
    }

    #[test]
    fn a_row_with_a_usable_id_that_does_not_decode_comes_back_as_its_config_error() {
        let row = TargetRow::load(&mut fields(5)).unwrap();
        assert_eq!(
            (row.id, row.revision, row.status.as_str()),
            (5, 1234, "PASS")
        );
        assert_eq!(
            row.undecodable.as_deref(),
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
}
