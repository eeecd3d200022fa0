//! `skypunch report [--since SPAN | --from TIME --to TIME] [--format table|csv|json] [ID...]`
//! and `skypunch targets ID history [--since SPAN]`: uptime from incidents (time-based, from
//! each target's creation on, the disabled time left out), response times (estimated within
//! the rollups' buckets) and check counts from the rollups.

use std::collections::BTreeMap;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::json;

use super::out::{line, print};
use super::table::Table;
use super::{parse_id, Error, Invocation};
use crate::base::model::Incident;
use crate::base::model::TargetId;
use crate::base::rollup::Rollup;
use crate::base::uptime::{self, Availability, Span};
use crate::config::Config;
use crate::db::history;
use crate::db::{self, targets::TargetRow};

const DAY_MS: i64 = 86_400_000;
/// Windows up to this long read the hourly rollups; longer ones the daily ones.
const HOURLY_UP_TO_MS: i64 = 2 * DAY_MS;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The window `[from, to)` the options ask for, in ms; `default_days` without options.
pub fn window(inv: &Invocation, default_days: i64) -> Result<Span, Error> {
    let now = Utc::now().timestamp_millis();
    match (&inv.since, &inv.from, &inv.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err(Error::usage("give --since, or --from (and --to), not both"))
        }
        (Some(span), None, None) => Ok((now - span_ms("--since", span)?, now)),
        (None, Some(from), to) => {
            let from = time_ms(from)?;
            let to = to.as_deref().map(time_ms).transpose()?.unwrap_or(now);
            if from >= to {
                return Err(Error::usage("--from must be before --to"));
            }
            Ok((from, to))
        }
        (None, None, Some(_)) => Err(Error::usage("--to needs --from")),
        (None, None, None) => Ok((now - default_days * DAY_MS, now)),
    }
}

/// `30d`, `12h`, `90m`, `2w`, given with `flag`.
pub fn span_ms(flag: &str, text: &str) -> Result<i64, Error> {
    let bad = || {
        Error::usage(format!(
            "{flag} takes a span like 30d, 12h, 90m or 2w, not `{text}`"
        ))
    };
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return Err(bad()),
    };
    (n > 0 && n <= 36_500 * DAY_MS / unit_ms)
        .then(|| n * unit_ms)
        .ok_or_else(bad)
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` in local time, or the same ending in `Z` for UTC.
fn time_ms(text: &str) -> Result<i64, Error> {
    let (text, utc) = match text.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (text, false),
    };
    let text = text.replace('T', " ");
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap())
        })
        .map_err(|_| {
            Error::usage(format!(
                "`{text}` is not a time: use YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (local time; \
                 end it with Z for UTC)"
            ))
        })?;
    let at = if utc {
        Some(naive.and_utc())
    } else {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    at.map(|t| t.timestamp_millis())
        .ok_or_else(|| Error::usage(format!("`{text}` does not exist in the local time zone")))
}

pub fn format(inv: &Invocation) -> Result<Format, Error> {
    match inv.format.as_deref() {
        None | Some("table") => Ok(Format::Table),
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(Error::usage(format!(
            "--format is table, csv or json, not `{other}`"
        ))),
    }
}

/// One line of the report.
struct Line {
    id: Option<TargetId>,
    name: String,
    availability: Availability,
    rollup: Rollup,
}

/// `skypunch report ...`.
pub fn run(config: &Config, inv: &Invocation, words: &[&str]) -> Result<(), Error> {
    let window = window(inv, 30)?;
    let format = format(inv)?;
    let ids = words
        .iter()
        .map(|w| parse_id(w))
        .collect::<Result<Vec<_>, _>>()?;
    let (_pool, mut conn) = db::open(&config.db)?;
    let targets: Vec<TargetRow> = db::targets::all(&mut conn)?
        .into_iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.id))
        .collect();
    if let Some(missing) = ids.iter().find(|id| !targets.iter().any(|t| t.id == **id)) {
        return Err(Error::failed(format!("id: {missing} does not exist")));
    }
    let lines = lines(&mut conn, &targets, &ids, window)?;
    match format {
        Format::Table => print(table(&lines, window)),
        Format::Csv => print(csv(&lines)),
        Format::Json => line(json_report(&lines, window)),
    }
}

fn lines(
    conn: &mut db::Conn,
    targets: &[TargetRow],
    ids: &[TargetId],
    window: Span,
) -> Result<Vec<Line>, Error> {
    let now = Utc::now().timestamp_millis();
    let incidents = history::incidents(conn, ids, window.0, window.1)?;
    let pauses = history::pauses(conn, ids, window.0, window.1)?;
    let created = history::created(conn, ids)?;
    let hourly = window.1 - window.0 <= HOURLY_UP_TO_MS;
    let (from, to) = if hourly {
        (window.0 - window.0.rem_euclid(3_600_000), window.1)
    } else {
        (window.0 - window.0.rem_euclid(DAY_MS), window.1)
    };
    let rollups = history::rollup_sums(conn, ids, from, to, hourly)?;
    let mut total = Line {
        id: None,
        name: "all".into(),
        availability: Availability::default(),
        rollup: Rollup::default(),
    };
    let mut out = Vec::with_capacity(targets.len() + 1);
    for t in targets {
        let mine: Vec<&Incident> = incidents.iter().filter(|i| i.target_id == t.id).collect();
        let paused: Vec<(i64, Option<i64>)> = pauses
            .iter()
            .filter(|p| p.0 == t.id)
            .map(|p| (p.1, p.2))
            .collect();
        let since = created.get(&t.id).copied().unwrap_or(window.0);
        let availability = uptime::availability(window, now, since, &mine, &paused);
        let rollup = rollups.get(&t.id).copied().unwrap_or_default();
        total.availability.add(&availability);
        total.rollup.add(&rollup);
        out.push(Line {
            id: Some(t.id),
            name: t.name.clone(),
            availability,
            rollup,
        });
    }
    out.push(total);
    Ok(out)
}

/// `99.931`, or `-` when the target was not monitored at all.
fn percent(a: &Availability) -> String {
    a.uptime().map_or("-".into(), |u| format!("{u:.3}"))
}

/// `45.2s`, `12m05s`, `3h07m`, `2d04h`.
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A response time estimated from the buckets (see [`Rollup::percentile`]), to 0.1 ms; empty
/// without checks.
fn estimate(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.1}"))
}

/// The same for the table, `-` without checks.
fn ms_or_dash(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The same in JSON: a number rounded to 0.1 ms, or null.
fn estimate_json(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 10.0).round() / 10.0)
}

fn table(lines: &[Line], window: Span) -> String {
    let mut t = Table::new(&[
        "ID",
        "Name",
        "Uptime %",
        "Downtime",
        "Disabled",
        "Incidents",
        "Longest",
        "MTTR",
        "p50 ms",
        "p95 ms",
        "Checks",
    ]);
    for l in lines {
        let a = &l.availability;
        t.row(vec![
            l.id.map_or("".into(), |id| id.to_string()),
            l.name.clone(),
            percent(a),
            duration(a.down_ms),
            duration(a.paused_ms),
            a.incidents.to_string(),
            duration(a.longest_ms),
            a.mttr_ms().map_or("-".into(), duration),
            ms_or_dash(l.rollup.percentile(0.5)),
            ms_or_dash(l.rollup.percentile(0.95)),
            l.rollup.checks.to_string(),
        ]);
    }
    format!("From {} to {}\n{t}", local(window.0), local(window.1))
}

/// A time in ms as this host's local time with its offset.
pub fn local(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(lines: &[Line]) -> String {
    let mut out = String::from(
        "id,name,uptime_percent,downtime_s,disabled_s,incidents,longest_s,mttr_s,p50_ms,p95_ms,checks\n",
    );
    for l in lines {
        let a = &l.availability;
        out.push_str(&format!(
            "{},{},{},{:.3},{:.3},{},{:.3},{},{},{},{}\n",
            l.id.map_or("".into(), |id| id.to_string()),
            csv_field(&l.name),
            a.uptime().map_or(String::new(), |u| format!("{u:.6}")),
            a.down_ms as f64 / 1000.0,
            a.paused_ms as f64 / 1000.0,
            a.incidents,
            a.longest_ms as f64 / 1000.0,
            a.mttr_ms()
                .map_or(String::new(), |m| format!("{:.3}", m as f64 / 1000.0)),
            estimate(l.rollup.percentile(0.5)),
            estimate(l.rollup.percentile(0.95)),
            l.rollup.checks,
        ));
    }
    out
}

fn json_line(l: &Line) -> serde_json::Value {
    let a = &l.availability;
    json!({
        "id": l.id,
        "name": l.name,
        "uptime_percent": a.uptime(),
        "monitored_s": a.monitored_ms as f64 / 1000.0,
        "downtime_s": a.down_ms as f64 / 1000.0,
        "disabled_s": a.paused_ms as f64 / 1000.0,
        "incidents": a.incidents,
        "longest_s": a.longest_ms as f64 / 1000.0,
        "mttr_s": a.mttr_ms().map(|m| m as f64 / 1000.0),
        "p50_ms": estimate_json(l.rollup.percentile(0.5)),
        "p95_ms": estimate_json(l.rollup.percentile(0.95)),
        "checks": l.rollup.checks,
    })
}

fn json_report(lines: &[Line], window: Span) -> String {
    let (targets, total) = lines.split_at(lines.len() - 1);
    let iso = |ms: i64| DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339());
    json!({
        "from": iso(window.0),
        "to": iso(window.1),
        "targets": targets.iter().map(json_line).collect::<Vec<_>>(),
        "total": json_line(&total[0]),
    })
    .to_string()
}

/// A disabled period: its start and end (none while it lasts), in ms.
type Pause = (i64, Option<i64>);

/// Uptime over the last 30 days (from its creation, when later) per target, for `skypunch
/// targets`.
pub fn uptime_30d(conn: &mut db::Conn) -> Result<BTreeMap<TargetId, Option<f64>>, db::Error> {
    let now = Utc::now().timestamp_millis();
    let window = (now - 30 * DAY_MS, now);
    let incidents = history::incidents(conn, &[], window.0, window.1)?;
    let pauses = history::pauses(conn, &[], window.0, window.1)?;
    let created = history::created(conn, &[])?;
    let mut by_target: BTreeMap<TargetId, (Vec<&Incident>, Vec<Pause>)> =
        created.keys().map(|id| (*id, Default::default())).collect();
    for i in &incidents {
        by_target.entry(i.target_id).or_default().0.push(i);
    }
    for p in &pauses {
        by_target.entry(p.0).or_default().1.push((p.1, p.2));
    }
    Ok(by_target
        .into_iter()
        .map(|(id, (i, p))| {
            let since = created.get(&id).copied().unwrap_or(window.0);
            (
                id,
                uptime::availability(window, now, since, &i, &p).uptime(),
            )
        })
        .collect())
}
