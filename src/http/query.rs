//! The HTTP server's database reads (handler threads), on the server's own small connection
//! pool, so a slow answer never takes a connection the pipeline needs. The API's lists are
//! read a page at a time and handed over row by row ([`each_target`], [`each_incident`]) to
//! be written as they come.

use std::io;

use mysql::prelude::Queryable;

use super::paging::Paging;
use crate::db::{self, Conn, Pool};

/// One target as the API and the status pages show it: its row and its open incident.
#[derive(Debug, Clone, Default)]
pub struct TargetNow {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub description: String,
    pub enabled: bool,
    /// The display form (no user info, secret parameters masked).
    pub url: String,
    pub method: String,
    pub frequency: i64,
    pub http_status: Option<i64>,
    pub response_ms: Option<i64>,
    /// When the last result was written, ms since the epoch.
    pub last_check_ms: Option<i64>,
    pub pass: u64,
    pub fail: u64,
    /// Responses by class: 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 4],
    pub network_fails: u64,
    pub group: Option<String>,
    pub public: bool,
    /// The open incident's start, ms since the epoch, and its latest reason.
    pub incident_ms: Option<i64>,
    pub incident_reason: Option<String>,
    /// The TLS certificate's expiry, seconds since the epoch, where a check saw one.
    pub cert_expires_s: Option<i64>,
}

impl TargetNow {
    /// Whether `description` is a config error the loader wrote (the row is not checked).
    pub fn config_error(&self) -> bool {
        self.description.starts_with("config error:")
    }
}

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

/// The columns of [`TargetNow`], as [`row`] reads them.
const TARGET_SELECT: &str = "SELECT t.id, t.name, t.status, t.enabled, t.method, t.frequency, \
     t.last_http_status, t.last_response_ms, \
     CAST(UNIX_TIMESTAMP(t.last_updated) * 1000 AS SIGNED), \
     t.pass_count, t.fail_count, t.count200, t.count300, t.count400, t.count500, \
     t.network_fails, t.group_name, t.public, \
     CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED), \
     t.url, IFNULL(t.status_description, ''), i.last_reason, \
     TIMESTAMPDIFF(SECOND, '1970-01-01', t.cert_expires_at) \
     FROM targets t LEFT JOIN incidents i ON i.open_target = t.id";

const READING_TARGETS: &str = "reading targets for the HTTP server";

/// The targets `which` selects, by id (the failing ones first under a limit).
pub fn targets(conn: &mut Conn, which: Which) -> Result<Vec<TargetNow>, db::Error> {
    let (filter, mut params) = conditions(which);
    let order = match which.limit {
        Some(n) => {
            params.push(mysql::Value::from(n));
            "t.status = 'FAIL' DESC, t.id LIMIT ?"
        }
        None => "t.id",
    };
    let sql = format!("{TARGET_SELECT} WHERE {filter} ORDER BY {order}");
    conn.exec_map(sql, params, |mut r: mysql::Row| row(&mut r))
        .map_err(db::Error::query(READING_TARGETS))
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
    mut f: impl FnMut(TargetNow) -> io::Result<()>,
) -> Result<(), Streamed> {
    let (mut filter, mut params) = conditions(which);
    if let Some(after) = paging.after {
        filter.push_str(" AND t.id > ?");
        params.push(after.into());
    }
    if let Some(last) = page.last {
        filter.push_str(" AND t.id <= ?");
        params.push(last.into());
    }
    params.push(paging.limit.into());
    let sql = format!("{TARGET_SELECT} WHERE {filter} ORDER BY t.id LIMIT ?");
    let failed = |e| Streamed::Db(db::Error::query(READING_TARGETS)(e));
    for r in conn.exec_iter(sql, params).map_err(failed)? {
        f(row(&mut r.map_err(failed)?)).map_err(Streamed::Write)?;
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

/// What `/metrics` shows of one enabled target, kept small: a scrape of 100,000 targets holds
/// all of them at once.
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
    pub pass: u64,
    pub fail: u64,
    /// Responses by class: 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 4],
    pub network_fails: u64,
}

/// Every enabled target's figures, by id.
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
    let rows = conn
        .query_iter(
            "SELECT t.id, t.name, t.status, t.status_description LIKE 'config error:%', \
         t.last_http_status, t.last_response_ms, \
         CAST(UNIX_TIMESTAMP(t.last_updated) * 1000 AS SIGNED), \
         CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED), \
         TIMESTAMPDIFF(SECOND, '1970-01-01', t.cert_expires_at), t.pass_count, t.fail_count, \
         t.count200, t.count300, t.count400, t.count500, t.network_fails \
         FROM targets t LEFT JOIN incidents i ON i.open_target = t.id \
         WHERE t.enabled = 1 ORDER BY t.id",
        )
        .map_err(db::Error::query(what))?;
    for row in rows {
        let mut r = row.map_err(db::Error::query(what))?;
        out.push(figures_row(&mut r));
    }
    Ok(out)
}

fn figures_row(r: &mut mysql::Row) -> TargetFigures {
    let n = |r: &mut mysql::Row, i| take::<u64>(r, i).unwrap_or(0);
    let status: String = take(r, 2).unwrap_or_default();
    TargetFigures {
        id: take(r, 0).unwrap_or(0),
        name: take::<String>(r, 1).unwrap_or_default().into_boxed_str(),
        up: match status.as_str() {
            "PASS" => Some(true),
            "FAIL" => Some(false),
            _ => None,
        },
        config_error: take(r, 3).unwrap_or(false),
        http_status: take(r, 4),
        response_ms: take(r, 5),
        last_check_ms: take(r, 6),
        incident_ms: take(r, 7),
        cert_expires_s: take(r, 8),
        pass: n(r, 9),
        fail: n(r, 10),
        classes: [n(r, 11), n(r, 12), n(r, 13), n(r, 14)],
        network_fails: n(r, 15),
    }
}

fn take<T: mysql::prelude::FromValue>(r: &mut mysql::Row, i: usize) -> Option<T> {
    r.take_opt::<Option<T>, usize>(i)
        .and_then(Result::ok)
        .flatten()
}

fn row(r: &mut mysql::Row) -> TargetNow {
    let n = |r: &mut mysql::Row, i| take::<u64>(r, i).unwrap_or(0);
    TargetNow {
        id: take(r, 0).unwrap_or(0),
        name: take(r, 1).unwrap_or_default(),
        status: take(r, 2).unwrap_or_default(),
        enabled: take(r, 3).unwrap_or(false),
        method: take(r, 4).unwrap_or_default(),
        frequency: take(r, 5).unwrap_or(0),
        http_status: take(r, 6),
        response_ms: take(r, 7),
        last_check_ms: take(r, 8),
        pass: n(r, 9),
        fail: n(r, 10),
        classes: [n(r, 11), n(r, 12), n(r, 13), n(r, 14)],
        network_fails: n(r, 15),
        group: take::<String>(r, 16).filter(|g| !g.is_empty()),
        public: take(r, 17).unwrap_or(false),
        incident_ms: take(r, 18),
        url: crate::base::urls::shown(&take::<String>(r, 19).unwrap_or_default()),
        description: take(r, 20).unwrap_or_default(),
        incident_reason: take(r, 21),
        cert_expires_s: take(r, 22),
    }
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

/// An incident as the API shows it; times in ms since the epoch.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: i64,
    pub target_id: i64,
    pub target_name: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub first_reason: String,
    pub last_reason: String,
    pub failed_checks: u64,
    pub http_status: Option<i64>,
}

/// The columns of [`IncidentRow`], as [`incident_row`] reads them.
const INCIDENT_SELECT: &str = "SELECT i.id, i.target_id, t.name, \
     CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED), \
     CAST(UNIX_TIMESTAMP(i.ended) * 1000 AS SIGNED), i.first_reason, i.last_reason, \
     i.failed_checks, i.http_status FROM incidents i JOIN targets t ON t.id = i.target_id";

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
) -> Result<Vec<IncidentRow>, db::Error> {
    let (mut filter, mut params) = incident_conditions(public_only, days);
    if let Some(id) = target {
        filter.push_str(" AND i.target_id = ?");
        params.push(mysql::Value::from(id));
    }
    params.push(mysql::Value::from(limit));
    let sql =
        format!("{INCIDENT_SELECT} WHERE {filter} ORDER BY i.started DESC, i.id DESC LIMIT ?");
    conn.exec_map(sql, params, |mut r: mysql::Row| incident_row(&mut r))
        .map_err(db::Error::query(READING_INCIDENTS))
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
    mut f: impl FnMut(IncidentRow) -> io::Result<()>,
) -> Result<(), Streamed> {
    let (mut filter, mut params) = incident_conditions(public_only, days);
    if let Some(after) = paging.after {
        filter.push_str(" AND i.id < ?");
        params.push(after.into());
    }
    if let Some(last) = page.last {
        filter.push_str(" AND i.id >= ?");
        params.push(last.into());
    }
    params.push(paging.limit.into());
    let sql = format!("{INCIDENT_SELECT} WHERE {filter} ORDER BY i.id DESC LIMIT ?");
    let failed = |e| Streamed::Db(db::Error::query(READING_INCIDENTS)(e));
    for r in conn.exec_iter(sql, params).map_err(failed)? {
        f(incident_row(&mut r.map_err(failed)?)).map_err(Streamed::Write)?;
    }
    Ok(())
}

fn incident_row(r: &mut mysql::Row) -> IncidentRow {
    IncidentRow {
        id: take(r, 0).unwrap_or(0),
        target_id: take(r, 1).unwrap_or(0),
        target_name: take(r, 2).unwrap_or_default(),
        started: take(r, 3).unwrap_or(0),
        ended: take(r, 4),
        first_reason: take(r, 5).unwrap_or_default(),
        last_reason: take(r, 6).unwrap_or_default(),
        failed_checks: take(r, 7).unwrap_or(0),
        http_status: take(r, 8),
    }
}
