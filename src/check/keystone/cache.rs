//! The tokens shared by every worker: one per distinct [`KeystoneParams`], fetched once
//! however many checks need it at the same moment, and kept until shortly before it expires.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::{KeystoneError, Token};
use crate::base::authn::KeystoneParams;

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

/// One token per distinct [`KeystoneParams`], shared by all targets and worker threads (it
/// lives in the `Arc<Checker>`). The map's lock is held only to find an entry; each entry has
/// its own lock and condition variable, so workers needing the same token fetch it once while
/// the others wait, and no lock is held across the HTTP call.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<KeystoneParams, Arc<Entry>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenCache({} entries)", lock(&self.entries).len())
    }
}

#[derive(Default)]
struct Entry {
    slot: Mutex<Slot>,
    done: Condvar,
}

#[derive(Default)]
struct Slot {
    token: Option<Arc<Token>>,
    fetching: bool,
    /// Bumped when a fetch ends, so waiters know theirs has.
    generation: u64,
    /// How the last fetch failed, handed to the workers that waited for it.
    error: Option<KeystoneError>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data here: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// Distinct credentials seen so far.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh token for `params`: the cached one, the one another worker is fetching (waiting
    /// until `deadline` at most), or one from `fetch`, run on this thread without any lock held.
    pub fn get(
        &self,
        params: &KeystoneParams,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Token, KeystoneError>,
    ) -> Result<(Arc<Token>, Source), KeystoneError> {
        self.get_at(params, Instant::now, deadline, fetch)
    }

    /// [`TokenCache::get`] with the clock passed in, for tests of expiry.
    pub fn get_at(
        &self,
        params: &KeystoneParams,
        now: impl Fn() -> Instant,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Token, KeystoneError>,
    ) -> Result<(Arc<Token>, Source), KeystoneError> {
        let entry = self.entry(params);
        let mut slot = lock(&entry.slot);
        loop {
            if let Some(token) = slot.token.as_ref().filter(|t| t.is_fresh(now())) {
                return Ok((token.clone(), Source::Cached));
            }
            if !slot.fetching {
                break;
            }
            let generation = slot.generation;
            while slot.fetching && slot.generation == generation {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let endpoint = params.endpoint.shown().to_string();
                    return Err(KeystoneError::Waited { endpoint });
                }
                slot = entry
                    .done
                    .wait_timeout(slot, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let fresh = slot.token.as_ref().is_some_and(|t| t.is_fresh(now()));
            if let (false, Some(err)) = (fresh, &slot.error) {
                return Err(err.clone());
            }
        }
        slot.fetching = true;
        drop(slot);
        let guard = Fetching(&entry);
        let result = fetch().map(Arc::new);
        let mut slot = lock(&entry.slot);
        match &result {
            Ok(token) => (slot.token, slot.error) = (Some(token.clone()), None),
            Err(err) => (slot.token, slot.error) = (None, Some(err.clone())),
        }
        drop(slot);
        drop(guard);
        result.map(|t| (t, Source::New))
    }

    /// Forgets `token` for `params` after a target refused it, unless another worker has
    /// already replaced it.
    pub fn invalidate(&self, params: &KeystoneParams, token: &Arc<Token>) {
        let entry = self.entry(params);
        let mut slot = lock(&entry.slot);
        if slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            slot.token = None;
        }
    }

    fn entry(&self, params: &KeystoneParams) -> Arc<Entry> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(params) {
            return entry.clone();
        }
        entries.entry(params.clone()).or_default().clone()
    }
}

/// Ends a fetch and wakes its waiters, also when the fetch panicked.
struct Fetching<'a>(&'a Entry);

impl Drop for Fetching<'_> {
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
    use super::super::test_support::{params, token};
    use super::*;
    use crate::base::authn::IdentityVersion;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn the_cache_fetches_again_only_after_expiry() {
        let cache = TokenCache::new();
        let p = params(IdentityVersion::V3, "http://k/v3");
        let t0 = Instant::now();
        let clock = std::cell::Cell::new(t0);
        let fetches = AtomicUsize::new(0);
        let get = || {
            cache.get_at(
                &p,
                || clock.get(),
                t0 + Duration::from_secs(9999),
                || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(token(clock.get(), 3600))
                },
            )
        };
        assert_eq!(get().unwrap().1, Source::New);
        clock.set(t0 + Duration::from_secs(3000));
        assert_eq!(get().unwrap().1, Source::Cached);
        clock.set(t0 + Duration::from_secs(3550));
        assert_eq!(get().unwrap().1, Source::New);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn concurrent_workers_share_one_fetch_and_its_failure() {
        let cache = Arc::new(TokenCache::new());
        let p = params(IdentityVersion::V3, "http://k/v3");
        let fetches = Arc::new(AtomicUsize::new(0));
        let run = |ok: bool| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, p, fetches) = (cache.clone(), p.clone(), fetches.clone());
                    std::thread::spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs(10);
                        cache.get(&p, deadline, || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            match ok {
                                true => Ok(token(Instant::now(), 3600)),
                                false => Err(KeystoneError::NoToken {
                                    endpoint: "e".into(),
                                }),
                            }
                        })
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        };
        let failed = run(false);
        assert!(failed.iter().all(|r| r.is_err()));
        assert_eq!(fetches.swap(0, Ordering::SeqCst), 1);
        let ok = run(true);
        assert!(ok.iter().all(|r| r.is_ok()));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn invalidate_drops_only_the_refused_token() {
        let cache = TokenCache::new();
        let p = params(IdentityVersion::V2, "http://k/v2.0");
        let far = Instant::now() + Duration::from_secs(10);
        let (first, _) = cache
            .get(&p, far, || Ok(token(Instant::now(), 3600)))
            .unwrap();
        cache.invalidate(&p, &first);
        let (second, source) = cache
            .get(&p, far, || Ok(token(Instant::now(), 3600)))
            .unwrap();
        assert_eq!(source, Source::New);
        cache.invalidate(&p, &first);
        let (third, source) = cache.get(&p, far, || unreachable!()).unwrap();
        assert!(Arc::ptr_eq(&second, &third) && source == Source::Cached);
    }
}
