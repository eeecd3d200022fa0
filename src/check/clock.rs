//! A map bounded in entries that evicts with the clock algorithm (second chance), for what
//! the worker threads remember between TLS handshakes (verified chains, key-share hints).
//! Pure logic, no I/O; callers put it behind their own lock.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `bound` entries. A full map makes room by sweeping a hand over the entries: one
/// used since the hand last passed gets a second chance, the first one not used goes. So
/// an entry used on every round of checks stays, and a one-off one leaves first, at the
/// cost of one flag per entry (no list to reorder on every hit, as an LRU would need).
#[derive(Debug)]
pub struct ClockMap<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    hand: usize,
    bound: usize,
}

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    value: V,
    used: bool,
}

impl<K: Hash + Eq + Clone, V> ClockMap<K, V> {
    /// An empty map of at most `bound` entries (at least one).
    pub fn new(bound: usize) -> ClockMap<K, V> {
        ClockMap {
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
            bound: bound.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The value of `key`, marked as used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        let slot = &mut self.slots[i];
        slot.used = true;
        Some(&slot.value)
    }

    /// Sets `key` to `value`, evicting an entry when the map is full.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(&i) = self.index.get(&key) {
            let slot = &mut self.slots[i];
            slot.value = value;
            slot.used = true;
            return;
        }
        // A new entry starts unused: it earns its second chance by being read again.
        let slot = Slot {
            key: key.clone(),
            value,
            used: false,
        };
        if self.slots.len() < self.bound {
            self.index.insert(key, self.slots.len());
            self.slots.push(slot);
            return;
        }
        let i = self.victim();
        self.index.remove(&self.slots[i].key);
        self.index.insert(key, i);
        self.slots[i] = slot;
        self.hand = (i + 1) % self.slots.len();
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        let Some(i) = self.index.remove(key) else {
            return;
        };
        self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.key.clone(), i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// The slot the hand stops at: the first not used since the last sweep. Ends within two
    /// turns, since the first turn clears every flag it passes.
    fn victim(&mut self) -> usize {
        loop {
            let i = self.hand;
            let slot = &mut self.slots[i];
            if !slot.used {
                return i;
            }
            slot.used = false;
            self.hand = (i + 1) % self.slots.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let mut m = ClockMap::new(3);
        for k in 0..100 {
            m.insert(k, k * 10);
            assert!(m.len() <= 3);
            assert_eq!(m.get(&k), Some(&(k * 10)), "the newest entry is kept");
        }
    }

    #[test]
    fn an_entry_read_since_the_last_sweep_outlives_one_that_was_not() {
        let mut m = ClockMap::new(3);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("c", 3);
        m.get(&"a");
        m.get(&"c");
        m.insert("d", 4);
        assert_eq!(m.get(&"b"), None, "b was the one not read");
        for (k, v) in [("a", 1), ("c", 3), ("d", 4)] {
            assert_eq!(m.get(&k), Some(&v));
        }
    }

    #[test]
    fn removing_keeps_the_other_entries_reachable() {
        let mut m = ClockMap::new(4);
        for k in 0..4 {
            m.insert(k, k);
        }
        m.remove(&0);
        m.remove(&7);
        assert_eq!(m.len(), 3);
        for k in 1..4 {
            assert_eq!(m.get(&k), Some(&k));
        }
        m.insert(9, 9);
        m.insert(10, 10);
        assert_eq!(m.len(), 4);
        assert_eq!(m.get(&10), Some(&10));
    }

    #[test]
    fn setting_a_key_again_replaces_its_value() {
        let mut m = ClockMap::new(2);
        m.insert("x", 1);
        m.insert("x", 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(&"x"), Some(&2));
    }
}
