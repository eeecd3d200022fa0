//! `skypunch targets ID history [--since SPAN]`: a target's incidents, a day-by-day uptime
//! strip and its hourly p95 response time, drawn with block characters so the shape shows
//! at a glance.

use chrono::Utc;

use super::out::plural;
use super::report::{duration, local, window};
use super::table::Table;
use super::{Error, Invocation};
use crate::base::model::Incident;
use crate::base::rollup::Rollup;
use crate::base::uptime::{self, Span};
use crate::db::history;
use crate::db::{self, targets::TargetRow};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Eight heights, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The text of the history of `row` over the window the options ask for (7 days by default).
pub fn render(conn: &mut db::Conn, row: &TargetRow, inv: &Invocation) -> Result<String, Error> {
    let window = window(inv, 7)?;
    let now = Utc::now().timestamp_millis();
    let incidents = history::incidents(conn, &[row.id], window.0, window.1)?;
    let pauses: Vec<(i64, Option<i64>)> = history::pauses(conn, &[row.id], window.0, window.1)?
        .into_iter()
        .map(|p| (p.1, p.2))
        .collect();
    let windows = history::windows(conn, row.id, window.0, window.1)?;
    let first_hour = window.0 - window.0.rem_euclid(HOUR_MS);
    let hours = history::hourly(conn, row.id, first_hour, window.1)?;
    let created = history::created(conn, &[row.id])?
        .get(&row.id)
        .copied()
        .unwrap_or(window.0);
    let refs: Vec<&Incident> = incidents.iter().collect();
    let whole = uptime::availability(window, now, created, &refs, &pauses);
    let mut out = format!(
        "Target {} {}: from {} to {}, uptime {} ({}, {} down, {} disabled)\n",
        row.id,
        row.name,
        local(window.0),
        local(window.1),
        whole.uptime().map_or("-".into(), |u| format!("{u:.3} %")),
        plural(whole.incidents as u64, "incident"),
        duration(whole.down_ms),
        duration(whole.paused_ms),
    );
    out.push_str(&incident_table(conn, &incidents, &windows, now)?.to_string());
    out.push_str(&day_strip(window, now, created, &refs, &pauses));
    out.push_str(&p95_strip(first_hour, window.1, &hours));
    Ok(out)
}

/// The incidents; one that overlaps a maintenance window says so (its time inside the
/// window is left out of uptime, and its alerts were held).
fn incident_table(
    conn: &mut db::Conn,
    incidents: &[Incident],
    windows: &[(i64, i64)],
    now: i64,
) -> Result<Table, Error> {
    let mut t = Table::new(&[
        "Started",
        "Ended",
        "Duration",
        "Failed checks",
        "Alerted",
        "Maintenance",
        "Reason",
    ]);
    for i in incidents {
        let end = i.ended.unwrap_or(now);
        let in_window = windows.iter().any(|(s, e)| *s < end && *e > i.started);
        t.row(vec![
            local(i.started),
            i.ended.map_or("(open)".into(), local),
            duration(i.ended.unwrap_or(now) - i.started),
            i.failed_checks.to_string(),
            alerted(conn, i, in_window)?.into(),
            crate::base::text::yes_no(in_window).into(),
            i.first_reason.clone(),
        ]);
    }
    Ok(t)
}

/// `Yes` only when someone was (or is about to be) told: an alert went out, or is owed to a
/// notifier that is enabled.
fn alerted(conn: &mut db::Conn, i: &Incident, in_window: bool) -> Result<&'static str, Error> {
    if !i.alerted {
        return Ok(if i.unconfirmed {
            "No (unconfirmed)"
        } else {
            "No"
        });
    }
    let fate = db::notifiers::alerts_fate(conn, i.target_id, i.started, i.ended)?;
    Ok(match fate {
        f if f.delivered > 0 => "Yes",
        f if f.raised == 0 => "unknown (pruned)",
        f if f.waiting > 0 => "pending",
        _ if in_window => "No (maintenance)",
        _ => "No (no enabled notifier)",
    })
}

/// One character per UTC day: █ 100 %, ▇ ≥ 99.9, ▆ ≥ 99, ▅ ≥ 98, ▄ ≥ 95, ▃ ≥ 90, ▂ ≥ 50,
/// ▁ below, a space for a day without data (the target was disabled all along, or did not
/// exist yet: `created` is when it was).
fn day_strip(
    window: Span,
    now: i64,
    created: i64,
    incidents: &[&Incident],
    pauses: &[(i64, Option<i64>)],
) -> String {
    let mut strip = String::new();
    let mut worst: Option<f64> = None;
    let mut day = window.0 - window.0.rem_euclid(DAY_MS);
    while day < window.1 {
        let span = (day.max(window.0), (day + DAY_MS).min(window.1));
        let up = uptime::availability(span, now, created, incidents, pauses).uptime();
        strip.push(match up {
            None => ' ',
            Some(u) => {
                worst = Some(worst.map_or(u, |w: f64| w.min(u)));
                let steps = [50.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0];
                BARS[steps.iter().take_while(|s| u >= **s).count()]
            }
        });
        day += DAY_MS;
    }
    format!(
        "Uptime by day (UTC, oldest first; █ 100 %, ▇ 99.9, ▆ 99, ▅ 98, ▄ 95, ▃ 90, ▂ 50, \
         blank: no data):\n  {strip}\n  worst day {}\n",
        worst.map_or("-".into(), |w| format!("{w:.3} %"))
    )
}

/// One character per hour, scaled to the window's highest p95 (estimated within its bucket,
/// see [`Rollup::percentile`]); `·` for an hour without checks.
fn p95_strip(first_hour: i64, to: i64, hours: &[(i64, Rollup)]) -> String {
    let p95 = |r: &Rollup| r.percentile(0.95);
    let max = hours.iter().filter_map(|(_, r)| p95(r)).fold(0.0, f64::max);
    let mut strip = String::new();
    let mut hour = first_hour;
    while hour < to {
        let seen = hours
            .iter()
            .find(|(h, _)| *h * 1000 == hour)
            .and_then(|(_, r)| p95(r));
        strip.push(match seen {
            None => '·',
            Some(_) if max <= 0.0 => BARS[0],
            Some(v) => BARS[((v * 7.0 / max).round() as usize).min(7)],
        });
        hour += HOUR_MS;
    }
    format!("p95 response time by hour (UTC, oldest first; █ = {max:.1} ms):\n  {strip}\n")
}
