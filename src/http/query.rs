//! The HTTP server's database reads (handler threads), on the server's own small connection
//! pool, so a slow answer never takes a connection the pipeline needs. Targets are read as the
//! one [`TargetRow`] every reader shares, taking only the columns shown ([`Read::Shown`],
//! [`Read::Detail`], [`Read::Figures`]: never `authn_parms` or the trace), incidents as the
//! history's [`Incident`] with what held them. The API's lists are read a page at a time and
//! handed over row by row ([`each_target`], [`each_incident`]) to be written as they come.

use std::io;

use mysql::prelude::Queryable;

use super::paging::Paging;
use crate::base::model::Incident;
use crate::base::phases::Phases;
use crate::base::state::Counts;
use crate::db::history::{self, INCIDENT_COLUMNS};
use crate::db::targets::{self, Read, TargetRow};
use crate::db::{self, Conn, Pool};

/// Which targets a read takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Which {
    /// Only `public = 1` ones (`[http] PublicOnly`).
    pub public_only: bool,
    /// Only enabled ones.
    pub enabled_only: bool,
    /// Only this one.
    pub id: Option<i64>,
    /// At most this many: the failing ones first, then by id (the status page).
    pub limit: Option<u32>,
}

pub fn checkout(pool: &Pool) -> Result<Conn, db::Error> {
    db::checkout(pool)
}

/// `which`'s conditions on `targets t`, and their parameters.
fn conditions(which: Which) -> (String, Vec<mysql::Value>) {
    let mut filter = vec!["1 = 1"];
    let mut params = Vec::new();
    if which.public_only {
        filter.push("t.public = 1");
    }
    if which.enabled_only {
        filter.push("t.enabled = 1");
    }
    if let Some(id) = which.id {
        filter.push("t.id = ?");
        params.push(mysql::Value::from(id));
    }
    (filter.join(" AND "), params)
}

/// Rows as the pages and the API show them ([`Read::Shown`]).
fn select() -> String {
    targets::select(Read::Shown)
}

fn shown(row: mysql::Row) -> Option<TargetRow> {
    targets::decoded(Read::Shown, row)
}

const READING_TARGETS: &str = "reading targets for the HTTP server";

/// The targets `which` selects, by id (the failing ones first under a limit).
pub fn targets(conn: &mut Conn, which: Which) -> Result<Vec<TargetRow>, db::Error> {
    read_targets(conn, which, Read::Shown)
}

/// Target `id` as the API's answer for it shows it ([`Read::Detail`]: with its conditions
/// and request headers); of the public ones only when `public_only`.
pub fn detail(conn: &mut Conn, id: i64, public_only: bool) -> Result<Option<TargetRow>, db::Error> {
    let which = Which {
        public_only,
        id: Some(id),
        ..Which::default()
    };
    Ok(read_targets(conn, which, Read::Detail)?.pop())
}

fn read_targets(conn: &mut Conn, which: Which, read: Read) -> Result<Vec<TargetRow>, db::Error> {
    let (filter, mut params) = conditions(which);
    let order = match which.limit {
        Some(n) => {
            params.push(mysql::Value::from(n));
            "t.status = 'FAIL' DESC, t.id LIMIT ?"
        }
        None => "t.id",
    };
    let sql = format!("{} WHERE {filter} ORDER BY {order}", targets::select(read));
    let rows: Vec<mysql::Row> = conn
        .exec(sql, params)
        .map_err(db::Error::query(READING_TARGETS))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| targets::decoded(read, row))
        .collect())
}

/// Where a page of a list ends, read before the page so that its `next` link can lead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// The page's last id, when the page is full (`None`: the rest of the list fits).
    pub last: Option<i64>,
    /// Whether items follow the page.
    pub more: bool,
}

/// Why a list stopped half-way.
#[derive(Debug)]
pub enum Streamed {
    Db(db::Error),
    Write(io::Error),
}

/// The bounds of a page of the targets `which` selects, by id: the page holds the ids after
/// `paging.after`, up to [`Bounds::last`]. Reads ids only, from the primary key.
pub fn target_bounds(conn: &mut Conn, which: Which, paging: Paging) -> Result<Bounds, db::Error> {
    let (mut filter, mut params) = conditions(which);
    if let Some(after) = paging.after {
        filter.push_str(" AND t.id > ?");
        params.push(after.into());
    }
    params.push((paging.limit - 1).into());
    let sql = format!("SELECT t.id FROM targets t WHERE {filter} ORDER BY t.id LIMIT ?, 2");
    bounds(conn, sql, params, READING_TARGETS)
}

/// Hands the targets of a page (as [`target_bounds`] gave it) to `f` one at a time, as they
/// are read.
pub fn each_target(
    conn: &mut Conn,
    which: Which,
    paging: Paging,
    page: Bounds,
    f: impl FnMut(TargetRow) -> io::Result<()>,
) -> Result<(), Streamed> {
    let (mut filter, mut params) = conditions(which);
    narrow(&mut filter, &mut params, ("t.id", true), paging, page);
    let sql = format!("{} WHERE {filter} ORDER BY t.id LIMIT ?", select());
    stream(conn, (sql, params), READING_TARGETS, shown, f)
}

/// Narrows a list's `filter` to one page: the keys past `paging.after` in the list's order
/// (ascending or not), up to the page's last, at most `paging.limit` of them.
fn narrow(
    filter: &mut String,
    params: &mut Vec<mysql::Value>,
    (key, ascending): (&str, bool),
    paging: Paging,
    page: Bounds,
) {
    let (past, up_to) = if ascending { (">", "<=") } else { ("<", ">=") };
    if let Some(after) = paging.after {
        filter.push_str(&format!(" AND {key} {past} ?"));
        params.push(after.into());
    }
    if let Some(last) = page.last {
        filter.push_str(&format!(" AND {key} {up_to} ?"));
        params.push(last.into());
    }
    params.push(paging.limit.into());
}

/// Runs a list's statement and hands each row that decodes to `f` as it is read.
fn stream<T>(
    conn: &mut Conn,
    (sql, params): (String, Vec<mysql::Value>),
    what: &str,
    decode: fn(mysql::Row) -> Option<T>,
    mut f: impl FnMut(T) -> io::Result<()>,
) -> Result<(), Streamed> {
    let failed = |e| Streamed::Db(db::Error::query(what)(e));
    for r in conn.exec_iter(sql, params).map_err(failed)? {
        if let Some(item) = decode(r.map_err(failed)?) {
            f(item).map_err(Streamed::Write)?;
        }
    }
    Ok(())
}

/// The first id of a bounds query's answer, and whether a second came.
fn bounds(
    conn: &mut Conn,
    sql: String,
    params: Vec<mysql::Value>,
    what: &str,
) -> Result<Bounds, db::Error> {
    let ids: Vec<Option<i64>> = conn
        .exec_map(sql, params, |mut r: mysql::Row| take::<i64>(&mut r, 0))
        .map_err(db::Error::query(what))?;
    Ok(Bounds {
        last: ids.first().copied().flatten(),
        more: ids.len() > 1,
    })
}

/// How many targets `which` selects, its limit aside.
pub fn count(conn: &mut Conn, which: Which) -> Result<usize, db::Error> {
    let (filter, params) = conditions(which);
    let row: Option<mysql::Row> = conn
        .exec_first(
            format!("SELECT COUNT(*) FROM targets t WHERE {filter}"),
            params,
        )
        .map_err(db::Error::query("counting targets for the HTTP server"))?;
    let n: Option<u64> = db::decode::first("targets", row, |f| f.get(0, "COUNT"));
    Ok(n.unwrap_or(0) as usize)
}

/// What `/metrics` shows of one enabled target: a projection of its [`TargetRow`], kept
/// small, since a scrape of 100,000 targets holds all of them at once.
#[derive(Debug, Clone)]
pub struct TargetFigures {
    pub id: i64,
    pub name: Box<str>,
    /// `Some(true)`: PASS, `Some(false)`: FAIL, `None`: NEW.
    pub up: Option<bool>,
    pub config_error: bool,
    pub http_status: Option<u16>,
    pub response_ms: Option<u32>,
    pub last_check_ms: Option<i64>,
    pub incident_ms: Option<i64>,
    pub cert_expires_s: Option<i64>,
    pub counts: Counts,
    /// The last check's phases (24 bytes inline: no allocation per target).
    pub phases: Option<Phases>,
}

impl From<TargetRow> for TargetFigures {
    fn from(t: TargetRow) -> TargetFigures {
        TargetFigures {
            id: t.id as i64,
            up: match t.status.as_str() {
                "PASS" => Some(true),
                "FAIL" => Some(false),
                _ => None,
            },
            config_error: t.config_error(),
            http_status: t.last_http_status.and_then(|s| u16::try_from(s).ok()),
            response_ms: t.last_response_ms.and_then(|ms| u32::try_from(ms).ok()),
            last_check_ms: t.last_updated_ms(),
            incident_ms: t.incident_started_ms,
            cert_expires_s: t.cert_expires_s(),
            counts: t.counts(),
            phases: t.last_phases,
            name: t.name.into_boxed_str(),
        }
    }
}

/// Every enabled target's figures, by id, each row projected as it is read.
pub fn figures(conn: &mut Conn) -> Result<Vec<TargetFigures>, db::Error> {
    let n = count(
        conn,
        Which {
            enabled_only: true,
            ..Which::default()
        },
    )?;
    let mut out = Vec::with_capacity(n + n / 16);
    let what = "reading targets for the metrics";
    let sql = format!(
        "{} WHERE t.enabled = 1 ORDER BY t.id",
        targets::select(Read::Figures)
    );
    for row in conn.query_iter(sql).map_err(db::Error::query(what))? {
        if let Some(t) = targets::decoded(Read::Figures, row.map_err(db::Error::query(what))?) {
            out.push(TargetFigures::from(t));
        }
    }
    Ok(out)
}

fn take<T: mysql::prelude::FromValue>(r: &mut mysql::Row, i: usize) -> Option<T> {
    r.take_opt::<Option<T>, usize>(i)
        .and_then(Result::ok)
        .flatten()
}

/// A notifier's deliveries: pending now, sent and failed since it was made (its row's
/// counters, shared by every node).
#[derive(Debug, Clone)]
pub struct NotifierNow {
    pub id: i64,
    pub name: String,
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
}

pub fn notifiers(conn: &mut Conn) -> Result<Vec<NotifierNow>, db::Error> {
    let rows: Vec<mysql::Row> = conn
        .query(
            "SELECT n.id, n.name, n.pass_count, n.fail_count, \
             (SELECT COUNT(*) FROM alert_deliveries d WHERE d.notifier_id = n.id \
              AND d.state = 'PENDING') FROM notifiers n ORDER BY n.id",
        )
        .map_err(db::Error::query("reading notifiers for the HTTP server"))?;
    let count =
        |f: &mut db::decode::Fields, i, column| f.get::<i64>(i, column).map(|n| n.max(0) as u64);
    Ok(db::decode::good_rows("notifiers", rows, |f| {
        Ok(NotifierNow {
            id: f.id(0, "id")? as i64,
            name: f.get(1, "name")?,
            sent: count(f, 2, "pass_count")?,
            failed: count(f, 3, "fail_count")?,
            pending: count(f, 4, "pending")?,
        })
    }))
}

/// An incident and its target's name, as the API and the pages list them.
#[derive(Debug, Clone)]
pub struct Listed {
    pub incident: Incident,
    pub target_name: String,
    /// The parent's incident (`depends_on`) that held its FAILURE alert, if one did.
    pub suppressed_by: Option<u64>,
    /// Whether its FAILURE alert was held because the node checking it could not reach its
    /// network.
    pub monitor_blind: bool,
}

/// The history's incident columns, the target's name and what held the incident, as
/// [`listed`] decodes them.
fn incident_select() -> String {
    format!(
        "SELECT {INCIDENT_COLUMNS}, t.name, i.suppressed_by, i.monitor_blind \
         FROM incidents i JOIN targets t ON t.id = i.target_id"
    )
}

const READING_INCIDENTS: &str = "reading incidents for the HTTP server";

/// The open incidents and those that ended in the last `days`; of public targets only when
/// `public_only`.
fn incident_conditions(public_only: bool, days: u32) -> (String, Vec<mysql::Value>) {
    let mut filter = "(i.ended IS NULL OR i.ended > UTC_TIMESTAMP() - INTERVAL ? DAY)".to_string();
    if public_only {
        filter.push_str(" AND t.public = 1");
    }
    (filter, vec![mysql::Value::from(days)])
}

/// The open incidents and those that ended in the last `days`, newest first, at most
/// `limit`; of one target when `target` is given, of public targets only when `public_only`.
pub fn incidents(
    conn: &mut Conn,
    target: Option<i64>,
    public_only: bool,
    days: u32,
    limit: u32,
) -> Result<Vec<Listed>, db::Error> {
    let (mut filter, mut params) = incident_conditions(public_only, days);
    if let Some(id) = target {
        filter.push_str(" AND i.target_id = ?");
        params.push(mysql::Value::from(id));
    }
    params.push(mysql::Value::from(limit));
    let sql = format!(
        "{} WHERE {filter} ORDER BY i.started DESC, i.id DESC LIMIT ?",
        incident_select()
    );
    let rows: Vec<mysql::Row> = conn
        .exec(sql, params)
        .map_err(db::Error::query(READING_INCIDENTS))?;
    Ok(rows.into_iter().filter_map(listed).collect())
}

/// The bounds of a page of the incidents [`incident_conditions`] selects, newest (highest
/// id) first: the page holds the ids below `paging.after`, down to [`Bounds::last`].
pub fn incident_bounds(
    conn: &mut Conn,
    public_only: bool,
    days: u32,
    paging: Paging,
) -> Result<Bounds, db::Error> {
    let (mut filter, mut params) = incident_conditions(public_only, days);
    if let Some(after) = paging.after {
        filter.push_str(" AND i.id < ?");
        params.push(after.into());
    }
    params.push((paging.limit - 1).into());
    let sql = format!(
        "SELECT i.id FROM incidents i JOIN targets t ON t.id = i.target_id WHERE {filter} \
         ORDER BY i.id DESC LIMIT ?, 2"
    );
    bounds(conn, sql, params, READING_INCIDENTS)
}

/// Hands the incidents of a page (as [`incident_bounds`] gave it) to `f` one at a time.
pub fn each_incident(
    conn: &mut Conn,
    public_only: bool,
    days: u32,
    paging: Paging,
    page: Bounds,
    f: impl FnMut(Listed) -> io::Result<()>,
) -> Result<(), Streamed> {
    let (mut filter, mut params) = incident_conditions(public_only, days);
    narrow(&mut filter, &mut params, ("i.id", false), paging, page);
    let sql = format!(
        "{} WHERE {filter} ORDER BY i.id DESC LIMIT ?",
        incident_select()
    );
    stream(conn, (sql, params), READING_INCIDENTS, listed, f)
}

/// Decodes a row of [`incident_select`]; one that does not decode is reported (see
/// [`db::decode::skip`]) and left out.
fn listed(row: mysql::Row) -> Option<Listed> {
    let mut f = db::decode::Fields::new("incidents", row);
    let decoded = history::incident(&mut f).and_then(|incident| {
        Ok(Listed {
            incident,
            target_name: f.get(10, "name")?,
            suppressed_by: f.opt_ref(11, "suppressed_by")?,
            monitor_blind: f.flag(12, "monitor_blind")?,
        })
    });
    decoded.map_err(|bad| db::decode::skip(&bad)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape of 100,000 targets holds this many bytes per target (plus its name): the
    /// phases sit inline, with no allocation of their own.
    #[test]
    fn a_target_s_figures_stay_compact() {
        assert_eq!(std::mem::size_of::<TargetFigures>(), 168);
    }
}
