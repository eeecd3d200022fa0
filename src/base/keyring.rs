//! The `[secrets]` in force and the redactor that masks their values, shared by the loader
//! thread (which expands a row's `${secret:NAME}` references), the workers (which redact each
//! check's description and trace with it) and the log formatter (which redacts every line);
//! replaced whole by the main thread on SIGHUP. No I/O.
//!
//! A value once in `[secrets]` stays masked until the daemon restarts, also after a SIGHUP
//! took it out: a check of a row the loader has not validated again yet still sends it, and a
//! retired credential is still one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::base::authn::Secret;
use crate::base::redactor::Redactor;
use crate::base::secrets::Secrets;

/// One state of the secrets: what a row's references expand to, and what is masked.
#[derive(Debug, Default)]
pub struct Vault {
    pub secrets: Secrets,
    pub redactor: Redactor,
    /// Every value the daemon has held since it started, the current ones included.
    known: Vec<Secret>,
}

/// The secrets in force; clones share them (an `Arc` inside). Readers take a snapshot
/// ([`Keyring::now`], one read lock held for the time of an `Arc` clone) and use it without
/// any lock: a check keeps the one it started with. [`Keyring::replace`] swaps in a new one.
#[derive(Clone, Default)]
pub struct Keyring {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    now: RwLock<Arc<Vault>>,
    /// Moved on by every replacement: the loader validates its rows again when it moves.
    generation: AtomicU64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({:?})", self.now().secrets)
    }
}

impl Keyring {
    pub fn new(secrets: &Secrets) -> Keyring {
        let keyring = Keyring::default();
        keyring.replace(secrets);
        keyring.inner.generation.store(0, Ordering::Release);
        keyring
    }

    /// The secrets in force now.
    pub fn now(&self) -> Arc<Vault> {
        self.inner
            .now
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times the secrets were replaced since the start.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Puts `secrets` in force; the values of the previous ones stay masked.
    pub fn replace(&self, secrets: &Secrets) {
        let mut slot = self
            .inner
            .now
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut known = slot.known.clone();
        for (_, value) in secrets.iter() {
            if !known.contains(value) {
                known.push(value.clone());
            }
        }
        let redactor = Redactor::new(known.iter().map(Secret::expose));
        *slot = Arc::new(Vault {
            secrets: secrets.clone(),
            redactor,
            known,
        });
        drop(slot);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        let mut s = Secrets::new();
        for (name, value) in pairs {
            assert!(s.insert(name, *value));
        }
        s
    }

    #[test]
    fn a_replaced_value_stays_masked_and_readers_keep_their_snapshot() {
        let keyring = Keyring::new(&secrets(&[("API_KEY", "old-key-1234")]));
        assert_eq!(keyring.generation(), 0);
        let before = keyring.now();
        keyring.replace(&secrets(&[("API_KEY", "new-key-5678")]));
        assert_eq!(keyring.generation(), 1);
        let after = keyring.now();
        assert_eq!(
            before.secrets.get("API_KEY").unwrap().expose(),
            "old-key-1234"
        );
        assert_eq!(
            after.secrets.get("API_KEY").unwrap().expose(),
            "new-key-5678"
        );
        assert_eq!(
            after.redactor.redact("old-key-1234 new-key-5678"),
            "*** ***"
        );
        assert!(!format!("{keyring:?}").contains("key-"), "{keyring:?}");
    }

    #[test]
    fn no_secrets_no_redaction() {
        let keyring = Keyring::default();
        assert!(keyring.now().redactor.is_empty());
        assert!(keyring.now().secrets.is_empty());
    }
}
