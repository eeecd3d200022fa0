//! Tokens shared by every worker, whatever issues them (the Keystone and the OAuth2 steps of a
//! check): one per distinct set of credentials (the key), fetched once however many checks
//! need it at the same moment, kept while it is fresh, and not asked for again for a few
//! seconds after the issuer refused; keys no check uses are let go past [`KEPT_KEYS`]. Runs
//! on the worker threads; no I/O of its own: the caller's `fetch` runs on the calling thread
//! with no lock held.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// After a failed fetch, the checks that need the same token get its error for this long
/// instead of asking again: a hundred targets behind one wrong secret make one token request
/// every few seconds, not a hundred (issuers lock out clients that fail too often: OAuth2
/// servers, and Keystone with `lockout_failure_attempts`).
pub const FAILURE_HOLD: Duration = Duration::from_secs(5);

/// A token is used until this long before it expires (less for short-lived tokens, see
/// [`refresh_at`]), so that none is sent in its last seconds.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Keys kept before a new one makes the cache let go of those no check uses: a key whose
/// token is stale and whose refusal is over costs nothing to fetch again, and rows edited to
/// new credentials would otherwise leave their old ones behind for good.
pub const KEPT_KEYS: usize = 64;

/// A token that knows until when it may be used.
pub trait Fresh {
    fn is_fresh(&self, now: Instant) -> bool;
}

/// When to stop using a token obtained at `obtained` that its issuer says is valid for
/// `lifetime`: [`REFRESH_MARGIN`] before it expires, or a tenth of the lifetime before for
/// tokens shorter than ten minutes, so that a short-lived token is still reused a little.
pub fn refresh_at(obtained: Instant, lifetime: Duration) -> Instant {
    obtained + lifetime - REFRESH_MARGIN.min(lifetime / 10)
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
    use std::sync::mpsc;

    /// A token good until the instant it holds.
    #[derive(Debug)]
    struct Tok(Instant);

    impl Fresh for Tok {
        fn is_fresh(&self, now: Instant) -> bool {
            now < self.0
        }
    }

    type Cache = SharedTokens<&'static str, Tok, String>;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn far() -> Instant {
        Instant::now() + secs(60)
    }

    /// The cache on a clock the test moves, counting the fetches.
    struct Clocked {
        cache: Cache,
        t0: Instant,
        clock: Cell<Instant>,
        fetches: Cell<usize>,
    }

    impl Clocked {
        fn new() -> Clocked {
            let t0 = Instant::now();
            Clocked {
                cache: Cache::new(),
                t0,
                clock: Cell::new(t0),
                fetches: Cell::new(0),
            }
        }

        /// Moves the clock to `after` past the start.
        fn at(&self, after: Duration) {
            self.clock.set(self.t0 + after);
        }

        /// Where the token for `"k"` came from; a fetch answers a token good for 100 s, or
        /// the refusal in `answer`.
        fn get(&self, answer: Result<(), &str>) -> Result<Source, String> {
            let fetch = || {
                self.fetches.set(self.fetches.get() + 1);
                let token = answer.map(|()| Tok(self.clock.get() + secs(100)));
                token.map_err(str::to_string)
            };
            let got =
                self.cache
                    .get_at(&"k", || self.clock.get(), far(), || "waited".into(), fetch);
            got.map(|(_, source)| source)
        }
    }

    /// Eight workers asking for `"k"` at once on the clock `now`, a fetch taking 200 ms to
    /// answer `answer`: where each got its token, or its error, and how many fetched.
    fn eight_at_once(
        now: impl Fn() -> Instant + Clone + Send + 'static,
        answer: impl Fn() -> Result<Tok, String> + Clone + Send + 'static,
    ) -> (Vec<Result<Source, String>>, usize) {
        let cache = Arc::new(Cache::new());
        let fetches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                let (now, answer) = (now.clone(), answer.clone());
                std::thread::spawn(move || {
                    let fetch = || {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        answer()
                    };
                    let got = cache.get_at(&"k", now, far(), || "waited".into(), fetch);
                    got.map(|(_, source)| source)
                })
            })
            .collect();
        let got = threads.into_iter().map(|t| t.join().unwrap()).collect();
        (got, fetches.load(Ordering::SeqCst))
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let t0 = Instant::now();
        assert_eq!(refresh_at(t0, secs(3600)), t0 + secs(3540));
        assert_eq!(refresh_at(t0, secs(10)), t0 + secs(9));
        assert_eq!(refresh_at(t0, Duration::ZERO), t0);
    }

    #[test]
    fn a_token_is_fetched_again_only_once_stale() {
        let c = Clocked::new();
        assert_eq!(c.get(Ok(())), Ok(Source::New));
        c.at(secs(99));
        assert_eq!(c.get(Ok(())), Ok(Source::Cached));
        c.at(secs(100));
        assert_eq!(c.get(Ok(())), Ok(Source::New));
        assert_eq!((c.fetches.get(), c.cache.keys()), (2, 1));
    }

    #[test]
    fn a_refusal_is_held_for_a_few_seconds_then_asked_again() {
        let c = Clocked::new();
        let refused = Err("401 invalid_client".to_string());
        assert_eq!(c.get(Err("401 invalid_client")), refused);
        c.at(FAILURE_HOLD - Duration::from_millis(1));
        assert_eq!(c.get(Ok(())), refused);
        assert_eq!(c.fetches.get(), 1);
        c.at(FAILURE_HOLD);
        assert_eq!(c.get(Ok(())), Ok(Source::New));
        assert_eq!(c.fetches.get(), 2);
    }

    #[test]
    fn concurrent_workers_share_one_fetch() {
        // The clock stands still: a worker that comes late finds the token, not a stale one.
        let t0 = Instant::now();
        let (got, fetches) = eight_at_once(move || t0, move || Ok(Tok(t0 + secs(60))));
        assert_eq!(fetches, 1);
        let new = got.iter().filter(|g| **g == Ok(Source::New)).count();
        let cached = got.iter().filter(|g| **g == Ok(Source::Cached)).count();
        assert_eq!((new, cached), (1, 7), "{got:?}");
    }

    #[test]
    fn concurrent_workers_share_one_failure() {
        // The clock stands still: a worker that comes late finds the refusal held.
        let t0 = Instant::now();
        let (got, fetches) = eight_at_once(move || t0, || Err("401 Unauthorized".into()));
        assert_eq!(fetches, 1);
        assert!(
            got.iter().all(|g| *g == Err("401 Unauthorized".into())),
            "{got:?}"
        );
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let cache = Arc::new(Cache::new());
        let (started, fetching) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let slow = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let fetch = || {
                    started.send(()).unwrap();
                    // Until the test has waited in vain (or failed: the sender is gone).
                    let _ = released.recv();
                    Ok(Tok(Instant::now() + secs(60)))
                };
                cache.get(&"k", far(), || "waited".into(), fetch)
            })
        };
        fetching.recv().unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        let got = cache.get(&"k", soon, || "waited".into(), || unreachable!());
        assert_eq!(got.unwrap_err(), "waited");
        release.send(()).unwrap();
        assert!(slow.join().unwrap().is_ok());
        let got = cache.get(&"k", far(), || "waited".into(), || unreachable!());
        assert_eq!(got.unwrap().1, Source::Cached);
    }

    #[test]
    fn invalidate_drops_only_the_refused_token() {
        let cache = Cache::new();
        let fresh = || Ok(Tok(Instant::now() + secs(60)));
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
        let fresh = || Ok(Tok(Instant::now() + secs(60)));
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
