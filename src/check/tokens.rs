//! Tokens shared by every worker, whatever issues them: one per distinct set of credentials
//! (the key), fetched once however many checks need it at the same moment, kept while it is
//! fresh, and not asked for again for a few seconds after the issuer refused; keys no check
//! uses are let go past [`KEPT_KEYS`]. Used by the OAuth2 step of a check (the Keystone step
//! has the same logic in `keystone/cache.rs`, which could become this). Runs on the worker threads; no I/O of its own: the caller's `fetch`
//! runs on the calling thread with no lock held.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// After a failed fetch, the checks that need the same token get its error for this long
/// instead of asking again: a hundred targets behind one wrong secret make one token request
/// every few seconds, not a hundred (issuers lock out clients that fail too often).
pub const FAILURE_HOLD: Duration = Duration::from_secs(5);

/// Keys kept before a new one makes the cache let go of those no check uses: a key whose
/// token is stale and whose refusal is over costs nothing to fetch again, and rows edited to
/// new credentials would otherwise leave their old ones behind for good.
pub const KEPT_KEYS: usize = 64;

/// A token that knows until when it may be used.
pub trait Fresh {
    fn is_fresh(&self, now: Instant) -> bool;
}

/// Whether a token came from the cache or was fetched for this check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    New,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cached => "cached",
            Source::New => "new",
        }
    }
}

/// One token per key, shared by all targets and worker threads (it lives in the
/// `Arc<Checker>`). The map's lock is held only to find an entry; each entry has its own lock
/// and condition variable, so workers needing the same token fetch it once while the others
/// wait, and no lock is held across the fetch.
pub struct SharedTokens<K, T, E> {
    entries: Mutex<HashMap<K, Arc<Entry<T, E>>>>,
}

impl<K, T, E> Default for SharedTokens<K, T, E> {
    fn default() -> Self {
        SharedTokens {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, T, E> fmt::Debug for SharedTokens<K, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedTokens({} keys)", lock(&self.entries).len())
    }
}

struct Entry<T, E> {
    slot: Mutex<Slot<T, E>>,
    done: Condvar,
}

impl<T, E> Default for Entry<T, E> {
    fn default() -> Self {
        Entry {
            slot: Mutex::new(Slot {
                token: None,
                fetching: false,
                generation: 0,
                failed: None,
            }),
            done: Condvar::new(),
        }
    }
}

impl<T: Fresh, E> Entry<T, E> {
    /// Whether it holds a fresh token, a fetch under way, or a refusal still held.
    fn in_use(&self, now: Instant) -> bool {
        let slot = lock(&self.slot);
        let fresh = slot.token.as_ref().is_some_and(|t| t.is_fresh(now));
        let held = slot
            .failed
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) < FAILURE_HOLD);
        fresh || held || slot.fetching
    }
}

struct Slot<T, E> {
    token: Option<Arc<T>>,
    fetching: bool,
    /// Bumped when a fetch ends, so waiters know theirs has.
    generation: u64,
    /// How and when the last fetch failed: handed to the workers that waited for it, and to
    /// those that come within [`FAILURE_HOLD`].
    failed: Option<(E, Instant)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data here: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Eq + Hash + Clone, T: Fresh, E: Clone> SharedTokens<K, T, E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct keys kept.
    pub fn keys(&self) -> usize {
        lock(&self.entries).len()
    }

    /// A fresh token for `key`: the cached one, the one another worker is fetching (waiting
    /// until `deadline` at most, then `waited()`), the error of a fetch that failed less than
    /// [`FAILURE_HOLD`] ago, or one from `fetch`, run on this thread without any lock held.
    pub fn get(
        &self,
        key: &K,
        deadline: Instant,
        waited: impl FnOnce() -> E,
        fetch: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Arc<T>, Source), E> {
        self.get_at(key, Instant::now, deadline, waited, fetch)
    }

    /// [`SharedTokens::get`] with the clock passed in, for tests of expiry.
    pub fn get_at(
        &self,
        key: &K,
        now: impl Fn() -> Instant,
        deadline: Instant,
        waited: impl FnOnce() -> E,
        fetch: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Arc<T>, Source), E> {
        let entry = self.entry(key);
        let mut slot = lock(&entry.slot);
        loop {
            if let Some(token) = slot.token.as_ref().filter(|t| t.is_fresh(now())) {
                return Ok((token.clone(), Source::Cached));
            }
            if let Some((err, at)) = &slot.failed {
                if now().saturating_duration_since(*at) < FAILURE_HOLD {
                    return Err(err.clone());
                }
            }
            if !slot.fetching {
                break;
            }
            let generation = slot.generation;
            while slot.fetching && slot.generation == generation {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(waited());
                }
                slot = entry
                    .done
                    .wait_timeout(slot, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        slot.fetching = true;
        drop(slot);
        let guard = Fetching(&entry);
        let result = fetch().map(Arc::new);
        let mut slot = lock(&entry.slot);
        match &result {
            Ok(token) => (slot.token, slot.failed) = (Some(token.clone()), None),
            Err(err) => (slot.token, slot.failed) = (None, Some((err.clone(), now()))),
        }
        drop(slot);
        drop(guard);
        result.map(|t| (t, Source::New))
    }

    /// Forgets `token` for `key` after a target refused it (401), unless another worker has
    /// already replaced it: however many checks were refused the same token, one fetches the
    /// next.
    pub fn invalidate(&self, key: &K, token: &Arc<T>) {
        let entry = self.entry(key);
        let mut slot = lock(&entry.slot);
        if slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            slot.token = None;
        }
    }

    fn entry(&self, key: &K) -> Arc<Entry<T, E>> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(key) {
            return entry.clone();
        }
        if entries.len() >= KEPT_KEYS {
            let now = Instant::now();
            // Lock order: the map, then an entry (no one takes them the other way round).
            entries.retain(|_, entry| Arc::strong_count(entry) > 1 || entry.in_use(now));
        }
        entries.entry(key.clone()).or_default().clone()
    }
}

/// Ends a fetch and wakes its waiters, also when the fetch panicked.
struct Fetching<'a, T, E>(&'a Entry<T, E>);

impl<T, E> Drop for Fetching<'_, T, E> {
    fn drop(&mut self) {
        let mut slot = lock(&self.0.slot);
        slot.fetching = false;
        slot.generation += 1;
        drop(slot);
        self.0.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A token good until the instant it holds.
    #[derive(Debug)]
    struct Tok(Instant);

    impl Fresh for Tok {
        fn is_fresh(&self, now: Instant) -> bool {
            now < self.0
        }
    }

    type Cache = SharedTokens<&'static str, Tok, String>;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_token_is_fetched_again_only_once_stale() {
        let cache = Cache::new();
        let t0 = Instant::now();
        let clock = Cell::new(t0);
        let fetches = Cell::new(0);
        let get = || {
            cache.get_at(
                &"k",
                || clock.get(),
                far(),
                || "waited".into(),
                || {
                    fetches.set(fetches.get() + 1);
                    Ok(Tok(clock.get() + Duration::from_secs(100)))
                },
            )
        };
        assert_eq!(get().unwrap().1, Source::New);
        clock.set(t0 + Duration::from_secs(99));
        assert_eq!(get().unwrap().1, Source::Cached);
        clock.set(t0 + Duration::from_secs(100));
        assert_eq!(get().unwrap().1, Source::New);
        assert_eq!((fetches.get(), cache.keys()), (2, 1));
    }

    #[test]
    fn a_refusal_is_held_for_a_few_seconds_then_asked_again() {
        let cache = Cache::new();
        let t0 = Instant::now();
        let clock = Cell::new(t0);
        let fetches = Cell::new(0);
        let get = |ok: bool| {
            cache.get_at(
                &"k",
                || clock.get(),
                far(),
                || "waited".into(),
                || {
                    fetches.set(fetches.get() + 1);
                    match ok {
                        true => Ok(Tok(clock.get() + Duration::from_secs(100))),
                        false => Err("401 invalid_client".to_string()),
                    }
                },
            )
        };
        assert_eq!(get(false).unwrap_err(), "401 invalid_client");
        clock.set(t0 + FAILURE_HOLD - Duration::from_millis(1));
        assert_eq!(get(true).unwrap_err(), "401 invalid_client");
        assert_eq!(fetches.get(), 1);
        clock.set(t0 + FAILURE_HOLD);
        assert_eq!(get(true).unwrap().1, Source::New);
        assert_eq!(fetches.get(), 2);
    }

    #[test]
    fn concurrent_workers_share_one_fetch() {
        let cache = Arc::new(Cache::new());
        let fetches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                std::thread::spawn(move || {
                    cache.get(
                        &"k",
                        far(),
                        || "waited".into(),
                        || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            Ok(Tok(Instant::now() + Duration::from_secs(60)))
                        },
                    )
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().is_ok());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let cache = Arc::new(Cache::new());
        let slow = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get(
                    &"k",
                    far(),
                    || "waited".into(),
                    || {
                        std::thread::sleep(Duration::from_millis(600));
                        Ok(Tok(Instant::now() + Duration::from_secs(60)))
                    },
                )
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let soon = Instant::now() + Duration::from_millis(50);
        let got = cache.get(&"k", soon, || "waited".into(), || unreachable!());
        assert_eq!(got.unwrap_err(), "waited");
        assert!(slow.join().unwrap().is_ok());
    }

    #[test]
    fn invalidate_drops_only_the_refused_token() {
        let cache = Cache::new();
        let fresh = || Ok(Tok(Instant::now() + Duration::from_secs(60)));
        let (first, _) = cache.get(&"k", far(), || "w".into(), fresh).unwrap();
        cache.invalidate(&"k", &first);
        let (second, source) = cache.get(&"k", far(), || "w".into(), fresh).unwrap();
        assert_eq!(source, Source::New);
        cache.invalidate(&"k", &first);
        let (third, source) = cache
            .get(&"k", far(), || "w".into(), || unreachable!())
            .unwrap();
        assert!(Arc::ptr_eq(&second, &third) && source == Source::Cached);
    }

    #[test]
    fn keys_no_check_uses_are_let_go_past_the_bound() {
        type Keyed = SharedTokens<usize, Tok, String>;
        let cache = Keyed::new();
        let stale = || Ok(Tok(Instant::now()));
        let fresh = || Ok(Tok(Instant::now() + Duration::from_secs(60)));
        for key in 0..KEPT_KEYS {
            let fetch = if key == 0 { fresh } else { stale };
            cache.get(&key, far(), || "w".into(), fetch).unwrap();
        }
        assert_eq!(cache.keys(), KEPT_KEYS);
        cache.get(&KEPT_KEYS, far(), || "w".into(), fresh).unwrap();
        assert_eq!(cache.keys(), 2, "the fresh token and the new one stay");
        let (_, source) = cache
            .get(&0, far(), || "w".into(), || unreachable!())
            .unwrap();
        assert_eq!(source, Source::Cached);
    }
}
