//! Client certificates for mutual TLS: the PEM files a target's `client_cert` and
//! `client_key` name, read by the loader thread (or the CLI) when it takes a row, shared by
//! every target naming the same files, and read again when they change: the loader looks at
//! each file's inode, size and modification time once per pass ([`ClientIdentities::refresh`])
//! and swaps the new certificate in, so the next handshake presents it. The worker threads
//! read the current certificate and key at each handshake that asks for one.
//!
//! The private key is parsed with aws-lc-rs, the provider of the checks' handshakes
//! (`check/crypto.rs`); rustls signs with the key object whatever provider the handshake runs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::base::model::TargetId;

/// Largest certificate or key file read: a PEM chain of a dozen certificates is 20 KiB; a
/// path that names something else (a log, a device) is refused rather than read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The files of one client identity: the certificate (chain), and the key, which may be the
/// same file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a client certificate cannot be used. Each names the file and the column; cloned
/// because [`ClientIdentities`] answers every row naming the files with the error it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertError {
    /// `client_key` is set but `client_cert` is not.
    KeyWithoutCert,
    /// The file cannot be read (missing, not readable by the daemon's user, a directory) or
    /// is larger than [`MAX_FILE_BYTES`].
    Unreadable {
        column: &'static str,
        path: PathBuf,
        why: String,
    },
    /// The file is not PEM, or holds no certificate (`client_cert`) or key (`client_key`).
    Content {
        column: &'static str,
        path: PathBuf,
        why: String,
    },
    /// The key is not one rustls can sign with, or not the certificate's.
    Key { path: PathBuf, why: String },
}

impl fmt::Display for ClientCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCertError::KeyWithoutCert => {
                f.write_str("client_key is set but client_cert is not: name the certificate too")
            }
            ClientCertError::Unreadable { column, path, why } => {
                write!(f, "{column} {}: cannot read it: {why}", path.display())
            }
            ClientCertError::Content { column, path, why } => {
                write!(f, "{column} {}: {why}", path.display())
            }
            ClientCertError::Key { path, why } => {
                write!(f, "client_key {}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for ClientCertError {}

/// A client certificate and its key as last read, with what the trace says of it.
#[derive(Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// The certificate's common name, or its whole subject.
    pub subject: String,
}

/// One client identity, shared by the targets naming its files and by the agent that
/// presents it (an `Arc`); what it holds is swapped in place when the files change.
pub struct ClientIdentity {
    /// Tells identities apart for the agents built for them: unique per identity, for the
    /// daemon's life, whatever its files hold.
    id: u64,
    files: IdentityFiles,
    current: RwLock<Arc<Loaded>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdentity({}, {:?})", self.id, self.files)
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ClientIdentity {
    /// Reads the files; the error names the file and what is wrong with it.
    pub fn load(files: IdentityFiles) -> Result<ClientIdentity, ClientCertError> {
        let loaded = read(&files)?;
        Ok(ClientIdentity::new(files, loaded))
    }

    fn new(files: IdentityFiles, loaded: Loaded) -> ClientIdentity {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ClientIdentity {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            files,
            current: RwLock::new(Arc::new(loaded)),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn files(&self) -> &IdentityFiles {
        &self.files
    }

    /// The certificate and key to present now.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
    }
}

/// What a file looked like when it was read: a change to any of these is a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// Reads at most [`MAX_FILE_BYTES`] of `path`.
fn read_file(column: &'static str, path: &Path) -> Result<Vec<u8>, ClientCertError> {
    let unreadable = |why: String| ClientCertError::Unreadable {
        column,
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e: io::Error| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "larger than {} KiB: not a PEM file",
            MAX_FILE_BYTES / 1024
        )));
    }
    Ok(bytes)
}

/// Reads the certificate chain and the key, and checks that they belong together.
fn read(files: &IdentityFiles) -> Result<Loaded, ClientCertError> {
    let content = |column, path: &Path, why: String| ClientCertError::Content {
        column,
        path: path.to_path_buf(),
        why,
    };
    let pem = read_file("client_cert", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content("client_cert", &files.cert, format!("not PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        let why = "no certificate in it (a PEM `BEGIN CERTIFICATE` section)".to_string();
        return Err(content("client_cert", &files.cert, why));
    };
    let subject = subject(leaf.as_ref());
    let key_pem = if files.key == files.cert {
        pem
    } else {
        read_file("client_key", &files.key)?
    };
    let key = private_key(&key_pem, &files.key)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("not the key of the client_cert certificate ({subject})")
            }
            other => format!("not a key rustls can sign with: {other}"),
        };
        ClientCertError::Key {
            path: files.key.clone(),
            why,
        }
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        subject,
    })
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, ClientCertError> {
    let content = |why: &str| ClientCertError::Content {
        column: "client_key",
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let encrypted = pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY");
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(_) if encrypted => Err(content(
            "the key is encrypted: give skypunch a key without a passphrase \
             (openssl pkey -in KEY -out PLAIN), readable only by its user",
        )),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(content(
            "no private key in it (a PEM `BEGIN PRIVATE KEY` section)",
        )),
        Err(e) => Err(content(&format!("not PEM: {e}"))),
    }
}

/// The common name of a DER certificate, or its whole subject, for the trace.
fn subject(der: &[u8]) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return "a certificate x509-parser cannot read".to_string();
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(str::to_string));
    let subject = cn
        .map(|cn| format!("CN={cn}"))
        .unwrap_or_else(|| cert.subject().to_string());
    crate::base::text::clip(&subject, 200).to_string()
}

/// The client identities rows name, each pair of files read once and shared; kept between
/// the loader's passes, with the rows that name each pair, so that a file that changes is
/// read again ([`ClientIdentities::refresh`]) and its rows validated again when it became
/// usable or unusable. Owned by the loader thread (or a CLI command).
#[derive(Debug, Default)]
pub struct ClientIdentities {
    entries: HashMap<IdentityFiles, Entry>,
    /// The files each row named at its last validation.
    rows: HashMap<TargetId, IdentityFiles>,
}

#[derive(Debug)]
struct Entry {
    identity: Result<Arc<ClientIdentity>, ClientCertError>,
    /// The certificate's and the key's, when read (`None`: missing then).
    stamps: (Option<Stamp>, Option<Stamp>),
    rows: HashSet<TargetId>,
}

/// What [`ClientIdentities::refresh`] found: the files that changed, and what became of
/// them, for the loader's log; and the rows to validate again.
#[derive(Debug, Default)]
pub struct Refreshed {
    pub reloaded: Vec<Reloaded>,
    /// Rows whose identity became usable or unusable: their config error changes.
    pub rows: Vec<TargetId>,
}

/// Files read again because they changed.
#[derive(Debug)]
pub struct Reloaded {
    pub files: IdentityFiles,
    /// Why they cannot be used now, if they cannot.
    pub error: Option<ClientCertError>,
    /// The rows naming them.
    pub rows: usize,
}

impl ClientIdentities {
    /// The identity of row `id`, whose `client_cert` and `client_key` are `cert` and `key`
    /// (empty as NULL; the key in the certificate's file when `key` is NULL).
    pub fn get(
        &mut self,
        id: TargetId,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<Arc<ClientIdentity>>, ClientCertError> {
        let path = |p: Option<&str>| {
            p.map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let files = match (path(cert), path(key)) {
            (None, None) => {
                self.release(id);
                return Ok(None);
            }
            (None, Some(_)) => {
                self.release(id);
                return Err(ClientCertError::KeyWithoutCert);
            }
            (Some(cert), key) => IdentityFiles {
                key: key.unwrap_or_else(|| cert.clone()),
                cert,
            },
        };
        if self.rows.get(&id) != Some(&files) {
            self.release(id);
            self.rows.insert(id, files.clone());
        }
        let entry = self.entries.entry(files).or_insert_with_key(|files| {
            let stamps = (stamp(&files.cert), stamp(&files.key));
            Entry {
                identity: ClientIdentity::load(files.clone()).map(Arc::new),
                stamps,
                rows: HashSet::new(),
            }
        });
        entry.rows.insert(id);
        entry.identity.clone().map(Some)
    }

    /// Row `id` no longer names any files (disabled, deleted, or its columns emptied).
    pub fn release(&mut self, id: TargetId) {
        let Some(files) = self.rows.remove(&id) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(&files) {
            entry.rows.remove(&id);
            if entry.rows.is_empty() {
                self.entries.remove(&files);
            }
        }
    }

    /// Looks at every file known (two `stat`s per identity) and reads again those that
    /// changed: a usable identity still usable is swapped in place (the next handshake
    /// presents it); one that became usable or unusable names its rows, for the loader to
    /// validate them again.
    pub fn refresh(&mut self) -> Refreshed {
        let mut out = Refreshed::default();
        for (files, entry) in &mut self.entries {
            let now = (stamp(&files.cert), stamp(&files.key));
            if now == entry.stamps {
                continue;
            }
            entry.stamps = now;
            let result = read(files);
            out.reloaded.push(Reloaded {
                files: files.clone(),
                error: result.as_ref().err().cloned(),
                rows: entry.rows.len(),
            });
            match (&entry.identity, result) {
                (Ok(identity), Ok(loaded)) => identity.replace(loaded),
                (_, Ok(loaded)) => {
                    entry.identity = Ok(Arc::new(ClientIdentity::new(files.clone(), loaded)));
                    out.rows.extend(entry.rows.iter().copied());
                }
                (Err(old), Err(new)) if *old == new => {}
                (_, Err(e)) => {
                    entry.identity = Err(e);
                    out.rows.extend(entry.rows.iter().copied());
                }
            }
        }
        out.rows.sort_unstable();
        out
    }

    /// How many pairs of files are known.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests;
