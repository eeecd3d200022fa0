//! Which node checks which target: rendezvous hashing of the target id over the live nodes'
//! names. Pure functions, used by the cluster thread and by the CLI (`targets ID`'s owner).

use crate::base::model::TargetId;
use crate::db::nodes::NodeRow;

/// The node that owns `id` among `live`: rendezvous (highest random weight) hashing, so a
/// node joining or leaving moves only the targets it gains or had.
pub fn owner(id: TargetId, live: &[String]) -> Option<&str> {
    live.iter()
        .max_by_key(|name| (weight(name, id), name.as_str()))
        .map(String::as_str)
}

fn weight(name: &str, id: TargetId) -> u64 {
    // FNV-1a of the name, mixed with the id by SplitMix64's finalizer: stable across
    // releases and platforms, which the nodes of a cluster must agree on.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The names of the active nodes, sorted; when none is active but some are `blind` (they
/// cannot reach their network), those: a node that cannot see checks nothing while another
/// can, and the blind ones share the targets as usual when none can. Likewise, `skewed`
/// nodes (their clock past `MaxClockSkew`) check only when no other node is live: a monitor
/// that checks with a wrong clock beats one that checks nothing. A node whose heartbeat
/// is late still counts until a live node has deleted its row (and its fence): its targets
/// change hands only once it can no longer write.
pub fn live_names(rows: &[NodeRow]) -> Vec<String> {
    let names = |state: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.state == state)
            .map(|r| r.name.clone())
            .collect()
    };
    let mut live = names("active");
    if live.is_empty() {
        live = names("blind");
    }
    if live.is_empty() {
        live = names("skewed");
    }
    live.sort();
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_node_owns_everything() {
        let live = names(&["a"]);
        assert!((0..1000).all(|id| owner(id, &live) == Some("a")));
        assert_eq!(owner(1, &[]), None);
    }

    #[test]
    fn shares_are_even_and_a_leaving_node_moves_only_its_own_targets() {
        let three = names(&["node-a", "node-b", "node-c"]);
        let two = names(&["node-a", "node-c"]);
        let mut share: HashMap<&str, usize> = HashMap::new();
        for id in 0..30_000u64 {
            let before = owner(id, &three).unwrap();
            *share.entry(before).or_default() += 1;
            let after = owner(id, &two).unwrap();
            if before != "node-b" {
                assert_eq!(before, after, "target {id} moved between survivors");
            }
        }
        for (node, n) in share {
            assert!((9_000..=11_000).contains(&n), "{node} owns {n} of 30000");
        }
    }

    #[test]
    fn live_nodes_are_the_active_ones_until_their_row_is_deleted() {
        let row = |name: &str, state: &str, age: i64| NodeRow {
            name: name.into(),
            epoch: 1,
            host: String::new(),
            pid: 1,
            version: String::new(),
            state: state.into(),
            heartbeat_age_ms: age,
            targets_owned: 0,
            checks_per_s: 0.0,
            clock_offset_ms: None,
        };
        let rows = [
            row("c", "active", 100),
            row("a", "active", 5999),
            row("b", "stopping", 10),
            row("d", "active", 6001),
        ];
        assert_eq!(live_names(&rows), names(&["a", "c", "d"]));
        let blind = [row("a", "blind", 10), row("b", "active", 10)];
        assert_eq!(live_names(&blind), names(&["b"]), "the one that sees");
        let all_blind = [row("b", "blind", 10), row("a", "blind", 10)];
        assert_eq!(
            live_names(&all_blind),
            names(&["a", "b"]),
            "none sees: as usual"
        );
        let skewed = [row("a", "skewed", 10), row("b", "blind", 10)];
        assert_eq!(live_names(&skewed), names(&["b"]));
        let all_skewed = [row("a", "skewed", 10)];
        assert_eq!(live_names(&all_skewed), names(&["a"]), "alone: it checks");
    }
}
