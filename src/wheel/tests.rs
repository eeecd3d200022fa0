//! Unit tests of the schedule, and of dropping the waiting checks of a removed target.

use super::*;
use crate::base::model::Target;
use std::time::Duration;

fn target(id: TargetId, seconds: u64) -> Arc<Target> {
    let frequency = Duration::from_secs(seconds);
    Arc::new(Target {
        frequency,
        ..Target::new(id, "http://127.0.0.1/")
    })
}

fn due_ids(w: &mut Wheel, at: Instant) -> Vec<TargetId> {
    let mut out = Vec::new();
    w.advance(at, &mut out);
    let mut ids: Vec<_> = out.iter().map(|j| j.target.id).collect();
    ids.sort();
    ids
}

#[test]
fn a_target_added_later_is_checked_at_once_then_every_period() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 2), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    w.check_done(1, t0 + Duration::from_millis(30));
    assert_eq!(
        due_ids(&mut w, t0 + Duration::from_millis(1990)),
        Vec::<TargetId>::new()
    );
    assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(2010)), vec![1]);
}

#[test]
fn a_node_waking_from_a_freeze_checks_each_target_once_and_counts_the_rounds_missed() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 1), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    w.check_done(1, t0 + Duration::from_millis(20));
    // Frozen from 0.5 s to 30.5 s: one check on waking, the next a period on.
    let woke = t0 + Duration::from_millis(30_500);
    assert_eq!(due_ids(&mut w, woke), vec![1]);
    w.check_done(1, woke + Duration::from_millis(20));
    assert_eq!(w.take_missed(), 29, "the rounds due at 2 s .. 30 s");
    assert!(due_ids(&mut w, woke + Duration::from_millis(400)).is_empty());
    assert_eq!(due_ids(&mut w, woke + Duration::from_millis(510)), vec![1]);
    // A check that overran its period (no freeze) runs again at once, as before.
    let slow = woke + Duration::from_millis(2700);
    w.check_done(1, slow);
    assert_eq!(due_ids(&mut w, slow + TICK), vec![1]);
    assert_eq!(w.take_missed(), 0);
}

#[test]
fn a_running_target_is_not_dispatched_again() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 1), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    assert!(due_ids(&mut w, t0 + Duration::from_secs(5)).is_empty());
    w.check_done(1, t0 + Duration::from_secs(5));
    assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(5010)), vec![1]);
}

#[test]
fn first_checks_are_spread_over_the_period() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    for id in 1..=1000 {
        w.upsert(target(id, 10), true, t0);
    }
    let mut per_second = Vec::new();
    for s in 1..=10 {
        per_second.push(due_ids(&mut w, t0 + Duration::from_secs(s)).len());
    }
    assert_eq!(per_second.iter().sum::<usize>(), 1000);
    assert!(
        per_second.iter().all(|n| (80..=120).contains(n)),
        "{per_second:?}"
    );
}

#[test]
fn targets_due_beyond_one_turn_wait_for_their_turn() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 60), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    w.check_done(1, t0);
    for s in 1..60 {
        assert!(
            due_ids(&mut w, t0 + Duration::from_secs(s)).is_empty(),
            "fired early at {s}s"
        );
    }
    assert_eq!(due_ids(&mut w, t0 + Duration::from_secs(60)), vec![1]);
}

#[test]
fn removed_targets_never_fire_and_edits_take_effect() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 5), false, t0);
    w.upsert(target(2, 5), false, t0);
    w.remove(1);
    assert_eq!(due_ids(&mut w, t0), vec![2]);
    w.check_done(2, t0);
    w.upsert(target(2, 1), false, t0);
    assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(1010)), vec![2]);
}

#[test]
fn removed_and_added_back_while_running_is_never_dispatched_twice() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 1), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    w.remove(1);
    w.upsert(target(1, 1), false, t0 + Duration::from_millis(10));
    w.remove(1);
    w.upsert(target(1, 1), false, t0 + Duration::from_millis(20));
    assert!(
        due_ids(&mut w, t0 + Duration::from_secs(3)).is_empty(),
        "its first check still runs"
    );
    w.check_done(1, t0 + Duration::from_secs(3));
    assert_eq!(
        due_ids(&mut w, t0 + Duration::from_millis(3010)),
        vec![1],
        "checked again at once with the new definition"
    );
    assert!(due_ids(&mut w, t0 + Duration::from_millis(3500)).is_empty());
}

#[test]
fn removed_while_running_is_forgotten_when_the_check_ends() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(1, 1), false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![1]);
    w.remove(1);
    w.check_done(1, t0 + Duration::from_millis(100));
    assert!(w.entries.is_empty());
    assert!(due_ids(&mut w, t0 + Duration::from_secs(5)).is_empty());
}

#[test]
fn a_push_target_is_checked_when_pushed_and_when_its_window_closes() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    let push = Arc::new(Target {
        method: Method::Push,
        ..(*target(3, 60)).clone()
    });
    w.upsert(push, false, t0);
    assert_eq!(due_ids(&mut w, t0), vec![3]);
    // Pushed while its look runs: looked at again as soon as it ends.
    w.check_soon(3, t0 + TICK);
    w.check_done_with(3, t0 + 2 * TICK, || Some(t0 + Duration::from_secs(75)));
    assert_eq!(due_ids(&mut w, t0 + 3 * TICK), vec![3]);
    w.check_done_with(3, t0 + 4 * TICK, || Some(t0 + Duration::from_secs(75)));
    assert!(due_ids(&mut w, t0 + Duration::from_secs(74)).is_empty());
    // Pushed while it waits: now.
    w.check_soon(3, t0 + Duration::from_secs(74));
    assert_eq!(
        due_ids(&mut w, t0 + Duration::from_secs(74) + TICK),
        vec![3]
    );
    w.check_done_with(3, t0 + Duration::from_secs(75), || None);
    assert!(due_ids(&mut w, t0 + Duration::from_secs(133)).is_empty());
    assert_eq!(due_ids(&mut w, t0 + Duration::from_secs(135)), vec![3]);
    // A target of another node is not this wheel's to check.
    w.check_soon(99, t0);
    assert!(!w.entries.contains_key(&99));
}

#[test]
fn a_waiting_check_of_a_target_handed_over_is_dropped_and_it_can_come_back() {
    let t0 = Instant::now();
    let mut w = Wheel::new(t0);
    w.upsert(target(5, 1), false, t0);
    let mut ready: VecDeque<Job> = VecDeque::new();
    let mut out = Vec::new();
    w.advance(t0 + TICK, &mut out);
    ready.extend(out.drain(..));
    assert_eq!(ready.len(), 1, "due and waiting for a worker");

    w.remove(5);
    let mut removed: HashSet<TargetId> = [5].into_iter().collect();
    drop_removed(&mut ready, &mut removed, &mut w, t0 + TICK);
    assert!(ready.is_empty() && removed.is_empty());

    // Handed back later: checked again, not waiting for a check that never ran.
    let later = t0 + Duration::from_secs(3);
    w.upsert(target(5, 1), false, later);
    w.advance(later + TICK, &mut out);
    assert_eq!(out.len(), 1);
}
