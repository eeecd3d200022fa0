//! This node's clock against the database's, measured by the cluster thread at each
//! heartbeat. Check times, incidents, rollup buckets and `last_alerted` are the node's clock;
//! leases, claims and the outbox's schedule are the database's. A node whose clock is more
//! than a second off is told (WARN, once per excursion); one past `[cluster] MaxClockSkew`
//! checks nothing (it beats as `skewed`, the others take its targets) until it is back
//! within it. [`Watch`] is the decision, pure; [`measure`] the round trip.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::db::{self, nodes, Pool};

/// Above this offset the node is warned, once per excursion.
const WARN_ABOVE_MS: i64 = 1000;
/// Below this the warning is re-armed: an offset hovering at the threshold warns once.
const REARM_BELOW_MS: i64 = 500;

/// What a measurement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Above a second (and within `MaxClockSkew`): a WARN, once.
    Warn,
    /// Past `MaxClockSkew`: the node stops checking.
    Skewed,
    /// Back within `MaxClockSkew`: it checks again.
    Back,
}

/// The decisions on the offsets measured so far.
#[derive(Debug)]
pub struct Watch {
    /// `[cluster] MaxClockSkew` in ms; 0: no limit.
    max_ms: i64,
    warned: bool,
    skewed: bool,
    /// The last offset measured (node minus database), ms.
    offset_ms: Option<i64>,
}

impl Watch {
    pub fn new(max: Duration) -> Watch {
        Watch {
            max_ms: i64::try_from(max.as_millis()).unwrap_or(i64::MAX),
            warned: false,
            skewed: false,
            offset_ms: None,
        }
    }

    /// Takes a measurement: the node's clock minus the database's, in ms.
    pub fn observe(&mut self, offset_ms: i64) -> Option<Change> {
        self.offset_ms = Some(offset_ms);
        let off = offset_ms.saturating_abs();
        if self.max_ms > 0 && off > self.max_ms {
            self.warned = true;
            return (!std::mem::replace(&mut self.skewed, true)).then_some(Change::Skewed);
        }
        if std::mem::take(&mut self.skewed) {
            return Some(Change::Back);
        }
        if off < REARM_BELOW_MS {
            self.warned = false;
        }
        if off > WARN_ABOVE_MS && !std::mem::replace(&mut self.warned, true) {
            return Some(Change::Warn);
        }
        None
    }

    /// Past `MaxClockSkew` at the last measurement.
    pub fn skewed(&self) -> bool {
        self.skewed
    }

    pub fn offset_ms(&self) -> Option<i64> {
        self.offset_ms
    }
}

/// The log line of a change: the figure, and what the node does about it.
pub fn log(change: Change, offset_ms: i64, max: Duration) {
    let shown = shown(offset_ms);
    let max = max.as_secs();
    match change {
        Change::Warn => log::warn!(
            "cluster: this node's clock is {shown} the database's: check times, incidents \
             and rollups use it, leases the database's; keep the clocks in sync (NTP)"
        ),
        Change::Skewed => log::error!(
            "cluster: this node's clock is {shown} the database's, past [cluster] \
             MaxClockSkew ({max} s): it hands its targets to the nodes whose clocks agree \
             with the database's (it checks only while none is live) until its clock is \
             back within it"
        ),
        Change::Back => log::warn!(
            "cluster: this node's clock is back within [cluster] MaxClockSkew ({shown} \
             the database's): it checks again"
        ),
    }
}

/// `2.3 s ahead of` / `0.8 s behind`: an offset as the log lines say it.
pub fn shown(offset_ms: i64) -> String {
    let way = if offset_ms >= 0 { "ahead of" } else { "behind" };
    format!("{:.1} s {way}", offset_ms.unsigned_abs() as f64 / 1000.0)
}

/// The node's clock minus the database's, in ms: the database's `NOW(6)` against the middle
/// of the round trip that read it; `None` when the round trip took longer than
/// [`MAX_ROUND_TRIP_MS`] (the last measurement stands).
pub fn measure(pool: &Pool) -> Result<Option<i64>, db::Error> {
    db::with_conn(pool, |conn| {
        let before = local_ms();
        let database = nodes::clock_ms(conn)?;
        let after = local_ms();
        // The database read its clock somewhere within the round trip: a slow one (a busy
        // machine, a database holding writes up) could be off by half of it, and would
        // read as skew that is not there. Left out, as NTP leaves out its slow samples.
        if after - before > MAX_ROUND_TRIP_MS {
            return Ok(None);
        }
        Ok(Some(before + (after - before) / 2 - database))
    })
}

/// The longest round trip a clock reading is taken from: its error is at most half of it.
pub const MAX_ROUND_TRIP_MS: i64 = 1000;

/// The node's clock in ms since the epoch; a test build shifts it by the `clock-shift`
/// fault (see `base::fault`).
fn local_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX) + crate::base::fault::clock_shift_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_once_per_excursion_and_a_stop_past_the_limit_until_back() {
        let mut w = Watch::new(Duration::from_secs(5));
        assert_eq!(w.observe(200), None);
        assert_eq!(w.observe(-1500), Some(Change::Warn));
        assert_eq!(w.observe(1200), None, "once");
        assert_eq!(w.observe(900), None, "not yet re-armed");
        assert_eq!(w.observe(1100), None);
        assert_eq!(w.observe(100), None);
        assert_eq!(w.observe(1100), Some(Change::Warn), "a new excursion");
        assert_eq!(w.observe(7000), Some(Change::Skewed));
        assert!(w.skewed());
        assert_eq!(w.observe(-6000), None, "still past it");
        assert_eq!(w.observe(3000), Some(Change::Back));
        assert!(!w.skewed());
        assert_eq!(w.observe(3000), None, "warned with the stop already");
        assert_eq!(w.offset_ms(), Some(3000));
    }

    #[test]
    fn no_limit_at_zero_and_offsets_read_as_said() {
        let mut w = Watch::new(Duration::ZERO);
        assert_eq!(w.observe(100_000), Some(Change::Warn));
        assert!(!w.skewed());
        assert_eq!(shown(2340), "2.3 s ahead of");
        assert_eq!(shown(-800), "0.8 s behind");
    }
}
