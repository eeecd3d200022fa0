//! The graph of the enabled rows' `depends_on`, checked whole by the loader thread: a
//! missing parent and every row of a cycle are config errors. Pure.

use std::collections::{BTreeMap, HashMap};

use super::Error;
use crate::base::model::TargetId;

/// The dependency errors of the enabled rows, as the loader checks the whole graph (at every
/// change and every minute): `edges` maps each enabled row with a `depends_on` to that value
/// and whether a row of that id exists. A missing parent is an error of its child; a cycle
/// (`a -> b -> a`) is an error of every row on it, naming them all. A row that only leads
/// into a cycle is not in error: its parent is, and is not checked. Pure; linear in the
/// number of edges.
pub fn dependency_errors(edges: &BTreeMap<TargetId, (i64, bool)>) -> BTreeMap<TargetId, Error> {
    let mut errors = BTreeMap::new();
    // 1: on the path being walked, 2: done.
    let mut seen: HashMap<TargetId, u8> = HashMap::with_capacity(edges.len());
    for (&start, &(parent, exists)) in edges {
        if !exists || parent < 1 {
            errors.insert(start, Error::NoParent(parent));
        }
        let mut path = Vec::new();
        let mut at = start;
        let back_at = loop {
            match seen.get(&at) {
                Some(1) => break Some(at),
                Some(_) => break None,
                None => {}
            }
            seen.insert(at, 1);
            path.push(at);
            match edges.get(&at) {
                Some(&(next, true)) if next > 0 => at = next as TargetId,
                _ => break None,
            }
        };
        if let Some(from) = back_at.and_then(|at| path.iter().position(|id| *id == at)) {
            let cycle = smallest_first(&path[from..]);
            for id in &cycle {
                errors.insert(*id, Error::Cycle(cycle.clone()));
            }
        }
        for id in path {
            seen.insert(id, 2);
        }
    }
    errors
}

/// A cycle's ids turned to start at the smallest, so each of its rows names it alike.
fn smallest_first(cycle: &[TargetId]) -> Vec<TargetId> {
    let low = (0..cycle.len()).min_by_key(|i| cycle[*i]).unwrap_or(0);
    cycle[low..].iter().chain(&cycle[..low]).copied().collect()
}
