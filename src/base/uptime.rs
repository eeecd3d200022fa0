//! Time-based uptime, as SLAs are written: the share of a window a target was not in an
//! incident, counted from when the target was created (`targets.created_at`) and leaving out
//! the time it was disabled. Pure interval arithmetic over the history tables' rows; times in
//! ms since the epoch. Run by whichever thread asks (CLI, HTTP handlers).

use crate::base::model::Incident;

/// `[start, end)`, in ms.
pub type Span = (i64, i64);

/// What a window holds for one target.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Availability {
    /// The window from the target's creation on, less the time it was disabled.
    pub monitored_ms: i64,
    /// Time in an incident while monitored.
    pub down_ms: i64,
    pub paused_ms: i64,
    /// Incidents overlapping the window.
    pub incidents: usize,
    /// The longest incident's part in the window.
    pub longest_ms: i64,
    /// Incidents that ended in the window, and their whole durations: for the MTTR.
    pub resolved: usize,
    pub resolved_ms: i64,
}

impl Availability {
    /// Uptime in percent; `None` when the target was never monitored in the window.
    pub fn uptime(&self) -> Option<f64> {
        (self.monitored_ms > 0)
            .then(|| 100.0 * (self.monitored_ms - self.down_ms) as f64 / self.monitored_ms as f64)
    }

    /// Mean time to recovery of the incidents that ended in the window.
    pub fn mttr_ms(&self) -> Option<i64> {
        (self.resolved > 0).then(|| self.resolved_ms / self.resolved as i64)
    }

    /// Adds another target's figures, for a total line.
    pub fn add(&mut self, o: &Availability) {
        self.monitored_ms += o.monitored_ms;
        self.down_ms += o.down_ms;
        self.paused_ms += o.paused_ms;
        self.incidents += o.incidents;
        self.longest_ms = self.longest_ms.max(o.longest_ms);
        self.resolved += o.resolved;
        self.resolved_ms += o.resolved_ms;
    }
}

/// One target's availability over `window`, from its incidents and pauses (open ones end
/// at `now`). Only the part of the window from `created` on counts: before it the target did
/// not exist, so that time is neither up nor down (a window wholly before it has no uptime).
pub fn availability(
    window: Span,
    now: i64,
    created: i64,
    incidents: &[&Incident],
    pauses: &[(i64, Option<i64>)],
) -> Availability {
    let window = (window.0.max(created), window.1);
    if window.0 >= window.1 {
        return Availability::default();
    }
    let clip = |s: i64, e: Option<i64>| -> Option<Span> {
        let (a, b) = (s.max(window.0), e.unwrap_or(now).min(window.1));
        (a < b).then_some((a, b))
    };
    let paused = union(pauses.iter().filter_map(|(s, e)| clip(*s, *e)).collect());
    let down_spans: Vec<Span> = incidents
        .iter()
        .filter_map(|i| clip(i.started, i.ended))
        .collect();
    let down = subtract(&union(down_spans.clone()), &paused);
    let paused_ms = length(&paused);
    let resolved: Vec<i64> = incidents
        .iter()
        .filter_map(|i| {
            i.ended
                .filter(|e| *e > window.0 && *e <= window.1)
                .map(|e| e - i.started)
        })
        .collect();
    Availability {
        monitored_ms: (window.1 - window.0 - paused_ms).max(0),
        down_ms: length(&down),
        paused_ms,
        incidents: down_spans.len(),
        longest_ms: down_spans.iter().map(|(a, b)| b - a).max().unwrap_or(0),
        resolved: resolved.len(),
        resolved_ms: resolved.iter().sum(),
    }
}

/// Sorted, non-overlapping spans covering the same time.
fn union(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `spans` less `holes`; both sorted and non-overlapping.
fn subtract(spans: &[Span], holes: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(mut a, b) in spans {
        for &(h0, h1) in holes {
            if h1 <= a || h0 >= b {
                continue;
            }
            if h0 > a {
                out.push((a, h0));
            }
            a = a.max(h1);
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

fn length(spans: &[Span]) -> i64 {
    spans.iter().map(|(a, b)| b - a).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(started: i64, ended: Option<i64>) -> Incident {
        Incident {
            id: 1,
            target_id: 1,
            started,
            ended,
            failed_checks: 1,
            ..Incident::default()
        }
    }

    #[test]
    fn incidents_are_clipped_to_the_window() {
        let i = [incident(50, Some(150)), incident(180, None)];
        let refs: Vec<&Incident> = i.iter().collect();
        let a = availability((100, 200), 190, 0, &refs, &[]);
        assert_eq!((a.monitored_ms, a.down_ms, a.incidents), (100, 60, 2));
        assert_eq!(a.uptime(), Some(40.0));
        assert_eq!((a.longest_ms, a.mttr_ms()), (50, Some(100)));
    }

    #[test]
    fn paused_time_is_left_out_of_both_sides() {
        let i = [incident(100, Some(140))];
        let refs: Vec<&Incident> = i.iter().collect();
        let a = availability((100, 200), 300, 0, &refs, &[(120, Some(160)), (150, None)]);
        assert_eq!((a.paused_ms, a.monitored_ms, a.down_ms), (80, 20, 20));
        assert_eq!(a.uptime(), Some(0.0));
        let never = availability((100, 200), 300, 0, &[], &[(0, None)]);
        assert_eq!(never.uptime(), None);
    }

    #[test]
    fn time_before_the_target_was_created_is_no_data() {
        const DAY: i64 = 86_400_000;
        let now = 30 * DAY;
        // Created a minute ago, failing since its first check 5 s later: about 0 %, not the
        // 99.99 % that counting 30 days before it existed as up would give.
        let created = now - 60_000;
        let i = [incident(created + 5_000, None)];
        let refs: Vec<&Incident> = i.iter().collect();
        let a = availability((0, now), now, created, &refs, &[]);
        assert_eq!((a.monitored_ms, a.down_ms), (60_000, 55_000));
        assert!(a.uptime().unwrap() < 8.4, "{:?}", a.uptime());
        // A day wholly before it: no data; the day it was created counts from then.
        assert_eq!(
            availability((0, DAY), now, created, &[], &[]).uptime(),
            None
        );
        let that_day = availability((29 * DAY, now), now, created, &refs, &[]);
        assert_eq!(that_day.monitored_ms, 60_000);
    }

    #[test]
    fn overlapping_spans_count_once() {
        assert_eq!(union(vec![(5, 9), (1, 3), (2, 6)]), vec![(1, 9)]);
        assert_eq!(
            subtract(&[(0, 10)], &[(2, 3), (5, 20)]),
            vec![(0, 2), (3, 5)]
        );
    }
}
