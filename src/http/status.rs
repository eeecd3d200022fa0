//! What the status pages show, read in a handful of statements on the server's own pool:
//! the targets, each one's last [`DAYS`] days (the daily rollups say which days it was
//! checked and how; its creation, incidents and pauses give the exact uptime, as `skypunch
//! report` computes it), the maintenance windows open now, the incidents, and for one target
//! its last 24 hours of hourly rollups.

use std::collections::{HashMap, HashSet};

use mysql::prelude::Queryable;

use super::query::{self, Listed, Which};
use crate::base::model::Incident;
use crate::base::model::TargetId;
use crate::base::rollup::Rollup;
use crate::base::uptime::{self, Availability};
use crate::db::history;
use crate::db::targets::TargetRow;
use crate::db::{self, Conn};

/// Days of uptime bars.
pub const DAYS: i64 = 90;
/// Targets the front page lists at most: every failing one, then the others by id; the rest
/// are counted, and the JSON API has them all.
pub const PAGE_TARGETS: usize = 500;
/// Ended incidents the front page lists: those of the last this many days, at most
/// [`RECENT_INCIDENTS`].
pub const RECENT_DAYS: u32 = 7;
pub const RECENT_INCIDENTS: u32 = 50;
/// A target's page lists the incidents of the history's days, at most this many.
pub const TARGET_INCIDENTS: u32 = 200;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// One day of one target: its rollup (checks, failures, response times) and its exact
/// availability that day.
#[derive(Debug, Clone)]
pub struct Day {
    /// The day's start (UTC midnight), ms since the epoch.
    pub start_ms: i64,
    pub rollup: Rollup,
    pub availability: Availability,
}

/// One target with what its line on a page shows.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub now: TargetRow,
    /// In a maintenance window now.
    pub maintenance: bool,
    /// One entry per day of the history, oldest first; `None` for a day it was not checked.
    pub days: Vec<Option<Day>>,
    /// Over the last 24 hours, 7, 30 and [`DAYS`] days, each from the target's creation at
    /// the earliest.
    pub recent: [(&'static str, Availability); 4],
}

impl TargetStatus {
    /// Over the whole history shown.
    pub fn availability(&self) -> &Availability {
        &self.recent[3].1
    }
}

/// The front page's content.
#[derive(Debug, Clone)]
pub struct Overview {
    pub now_ms: i64,
    pub targets: Vec<TargetStatus>,
    /// Enabled targets left out beyond [`PAGE_TARGETS`].
    pub left_out: usize,
    /// Open incidents and those that ended in the last [`RECENT_DAYS`] days, newest first.
    pub incidents: Vec<Listed>,
}

/// One target's page.
#[derive(Debug, Clone)]
pub struct Detail {
    pub now_ms: i64,
    pub target: TargetStatus,
    /// The last 24 hours, one entry per hour (its start, ms), oldest first.
    pub hours: Vec<(i64, Option<Rollup>)>,
    pub incidents: Vec<Listed>,
}

/// The first day of the history (UTC midnight, ms) for `now_ms`: today is the last.
pub fn first_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS - (DAYS - 1) * DAY_MS
}

pub fn overview(conn: &mut Conn, public_only: bool) -> Result<Overview, db::Error> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let which = Which {
        public_only,
        enabled_only: true,
        limit: Some(PAGE_TARGETS as u32),
        ..Which::default()
    };
    let total = query::count(conn, which)?;
    let all = query::targets(conn, which)?;
    let left_out = total.saturating_sub(all.len());
    let targets = with_history(conn, all, now_ms)?;
    let incidents = query::incidents(conn, None, public_only, RECENT_DAYS, RECENT_INCIDENTS)?;
    Ok(Overview {
        now_ms,
        targets,
        left_out,
        incidents,
    })
}

/// One target's page; `None` when there is no such target (or it is not public and only
/// public ones are shown).
pub fn detail(conn: &mut Conn, id: i64, public_only: bool) -> Result<Option<Detail>, db::Error> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let which = Which {
        public_only,
        id: Some(id),
        ..Which::default()
    };
    let Some(now) = query::targets(conn, which)?.pop() else {
        return Ok(None);
    };
    let target = with_history(conn, vec![now], now_ms)?.remove(0);
    let hours = last_day_hours(conn, id as TargetId, now_ms)?;
    let incidents = query::incidents(conn, Some(id), public_only, DAYS as u32, TARGET_INCIDENTS)?;
    Ok(Some(Detail {
        now_ms,
        target,
        hours,
        incidents,
    }))
}

/// The targets with their days, maintenance state and availability.
fn with_history(
    conn: &mut Conn,
    targets: Vec<TargetRow>,
    now_ms: i64,
) -> Result<Vec<TargetStatus>, db::Error> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let from = first_day(now_ms);
    let ids: Vec<TargetId> = targets.iter().map(|t| t.id).collect();
    let mut rollups: HashMap<TargetId, Vec<(i64, Rollup)>> = HashMap::new();
    for (id, day_s, r) in history::daily(conn, &ids, from, now_ms + 1)? {
        rollups.entry(id).or_default().push((day_s * 1000, r));
    }
    let mut incidents: HashMap<TargetId, Vec<Incident>> = HashMap::new();
    for i in history::incidents(conn, &ids, from, now_ms + 1)? {
        incidents.entry(i.target_id).or_default().push(i);
    }
    let mut pauses: HashMap<TargetId, Vec<(i64, Option<i64>)>> = HashMap::new();
    for (id, start, end) in history::pauses(conn, &ids, from, now_ms + 1)? {
        pauses.entry(id).or_default().push((start, end));
    }
    let created = history::created(conn, &ids)?;
    let in_maintenance = maintenance_now(conn)?;
    Ok(targets
        .into_iter()
        .map(|now| {
            let id = now.id;
            let facts = Facts {
                now_ms,
                created_ms: created.get(&id).copied().unwrap_or(from),
                rollups: rollups.remove(&id).unwrap_or_default(),
                incidents: incidents.remove(&id).unwrap_or_default(),
                pauses: pauses.remove(&id).unwrap_or_default(),
            };
            let maintenance = in_maintenance.all || in_maintenance.ids.contains(&id);
            facts.status(now, maintenance)
        })
        .collect())
}

/// One target's history rows, as read.
struct Facts {
    now_ms: i64,
    /// When the target was created: before, it has no uptime.
    created_ms: i64,
    rollups: Vec<(i64, Rollup)>,
    incidents: Vec<Incident>,
    pauses: Vec<(i64, Option<i64>)>,
}

impl Facts {
    fn status(&self, now: TargetRow, maintenance: bool) -> TargetStatus {
        let first = first_day(self.now_ms);
        let mut days: Vec<Option<Day>> = vec![None; DAYS as usize];
        for (start_ms, rollup) in &self.rollups {
            let index = (start_ms - first).div_euclid(DAY_MS);
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| days.get_mut(i)) {
                let end = (start_ms + DAY_MS).min(self.now_ms);
                *slot = Some(Day {
                    start_ms: *start_ms,
                    rollup: *rollup,
                    availability: self.availability((*start_ms, end)),
                });
            }
        }
        let back = |ms: i64| self.availability((self.now_ms - ms, self.now_ms));
        TargetStatus {
            recent: [
                ("24 hours", back(DAY_MS)),
                ("7 days", back(7 * DAY_MS)),
                ("30 days", back(30 * DAY_MS)),
                ("90 days", back(DAYS * DAY_MS)),
            ],
            now,
            maintenance,
            days,
        }
    }

    fn availability(&self, window: uptime::Span) -> Availability {
        let incidents: Vec<&Incident> = self.incidents.iter().collect();
        uptime::availability(
            window,
            self.now_ms,
            self.created_ms,
            &incidents,
            &self.pauses,
        )
    }
}

/// The maintenance windows open now: for every target, or the ids they name.
struct Maintenance {
    all: bool,
    ids: HashSet<TargetId>,
}

fn maintenance_now(conn: &mut Conn) -> Result<Maintenance, db::Error> {
    let rows: Vec<mysql::Row> = conn
        .query(
            "SELECT id, target_id FROM maintenance \
             WHERE starts <= UTC_TIMESTAMP(3) AND ends > UTC_TIMESTAMP(3)",
        )
        .map_err(db::Error::query("reading the maintenance windows open now"))?;
    let rows: Vec<Option<u64>> = db::decode::good_rows("maintenance", rows, |f| {
        f.id(0, "id")?;
        f.opt_ref(1, "target_id")
    });
    Ok(Maintenance {
        all: rows.iter().any(Option::is_none),
        ids: rows.into_iter().flatten().collect(),
    })
}

/// The 24 hours up to now, the current one last, with the rollup of each hour checked.
fn last_day_hours(
    conn: &mut Conn,
    id: TargetId,
    now_ms: i64,
) -> Result<Vec<(i64, Option<Rollup>)>, db::Error> {
    let current = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let from = current - 23 * HOUR_MS;
    let mut read: HashMap<i64, Rollup> = history::hourly(conn, id, from, now_ms + 1)?
        .into_iter()
        .map(|(hour_s, r)| (hour_s * 1000, r))
        .collect();
    Ok((0..24)
        .map(|i| {
            let start = from + i * HOUR_MS;
            (start, read.remove(&start))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup(checks: u64, failures: u64) -> Rollup {
        Rollup {
            checks,
            failures,
            ..Rollup::default()
        }
    }

    #[test]
    fn days_are_placed_by_date_and_uptime_is_exact() {
        let now_ms = 1_700_000_000_000;
        let first = first_day(now_ms);
        let yesterday = first + (DAYS - 2) * DAY_MS;
        let facts = Facts {
            now_ms,
            created_ms: first,
            rollups: vec![(yesterday, rollup(1440, 60))],
            // An hour down yesterday.
            incidents: vec![Incident {
                id: 1,
                target_id: 1,
                started: yesterday + 3 * HOUR_MS,
                ended: Some(yesterday + 4 * HOUR_MS),
                failed_checks: 60,
                alerted: true,
                ..Incident::default()
            }],
            pauses: Vec::new(),
        };
        let s = facts.status(TargetRow::default(), false);
        assert_eq!(s.days.len(), DAYS as usize);
        assert!(s.days[..DAYS as usize - 2].iter().all(Option::is_none));
        assert!(s.days[DAYS as usize - 1].is_none(), "no rollup today");
        let day = s.days[DAYS as usize - 2].as_ref().unwrap();
        assert_eq!(day.rollup.checks, 1440);
        let up = day.availability.uptime().unwrap();
        assert!((up - 100.0 * 23.0 / 24.0).abs() < 1e-9, "{up}");
        assert_eq!(s.availability().incidents, 1);
        assert_eq!(s.recent[0].1.incidents, 0, "not in the last 24 hours");
    }

    #[test]
    fn a_target_created_an_hour_ago_and_failing_since_is_not_up_for_90_days() {
        let now_ms = 1_700_000_000_000;
        let created_ms = now_ms - HOUR_MS;
        let facts = Facts {
            now_ms,
            created_ms,
            rollups: vec![(now_ms.div_euclid(DAY_MS) * DAY_MS, rollup(60, 60))],
            incidents: vec![Incident {
                id: 1,
                target_id: 1,
                started: created_ms + 1000,
                ended: None,
                failed_checks: 60,
                alerted: true,
                ..Incident::default()
            }],
            pauses: Vec::new(),
        };
        let s = facts.status(TargetRow::default(), false);
        for (label, a) in &s.recent {
            assert_eq!(a.monitored_ms, HOUR_MS, "{label}");
            assert!(a.uptime().unwrap() < 0.03, "{label}: {:?}", a.uptime());
        }
        let today = s.days.last().unwrap().as_ref().unwrap();
        assert_eq!(
            today.availability.monitored_ms, HOUR_MS,
            "today from its creation"
        );
    }

    #[test]
    fn the_first_day_is_a_utc_midnight_89_days_back() {
        let now_ms = 1_700_000_000_000;
        let first = first_day(now_ms);
        assert_eq!(first % DAY_MS, 0);
        assert_eq!((now_ms - first) / DAY_MS, DAYS - 1);
    }
}
