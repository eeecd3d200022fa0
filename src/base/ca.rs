//! The CA bundles targets (`ca_file`, `[settings] CaFile`) and mail servers trust besides the
//! public roots: PEM files read once when the loader (or the CLI, or the notifier) takes a
//! row, and shared by every check of the targets naming them. Used on the loader thread and
//! read by the workers; no thread of its own.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;

/// CA certificates a target trusts besides the public roots: a PEM bundle (`ca_file`, or
/// `[settings] CaFile`), read when the loader takes the row.
#[derive(Debug, Clone, PartialEq)]
pub struct CaBundle {
    pub path: PathBuf,
    certs: Vec<CertificateDer<'static>>,
    /// Tells bundles apart by content, for the agents built from them.
    key: u64,
}

/// Why a CA bundle cannot be used. Each names the file; the cause is kept as the source.
/// Cloned (the cause behind an `Arc`) because [`CaFiles`] answers every row naming the file
/// with the one error it read.
#[derive(Debug, Clone)]
pub enum CaError {
    /// The file cannot be read: missing, not readable by the daemon's user, a directory.
    Unreadable {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// The file is not PEM (or a PEM section is broken).
    NotPem {
        path: PathBuf,
        source: Arc<pem::Error>,
    },
    /// The file is PEM but holds no certificate.
    NoCertificate { path: PathBuf },
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Unreadable { path, source } => {
                write!(f, "ca_file {}: cannot read it: {source}", path.display())
            }
            CaError::NotPem { path, source } => {
                write!(f, "ca_file {}: not a PEM bundle: {source}", path.display())
            }
            CaError::NoCertificate { path } => {
                write!(f, "ca_file {}: no certificate in it", path.display())
            }
        }
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaError::Unreadable { source, .. } => Some(source.as_ref()),
            CaError::NotPem { source, .. } => Some(source.as_ref()),
            CaError::NoCertificate { .. } => None,
        }
    }
}

impl CaBundle {
    /// Reads a PEM bundle; the error names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<CaBundle, CaError> {
        let pem = std::fs::read(path).map_err(|e| CaError::Unreadable {
            path: path.to_path_buf(),
            source: Arc::new(e),
        })?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaError::NotPem {
                path: path.to_path_buf(),
                source: Arc::new(e),
            })?;
        if certs.is_empty() {
            return Err(CaError::NoCertificate {
                path: path.to_path_buf(),
            });
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for c in &certs {
            c.as_ref().hash(&mut hasher);
        }
        Ok(CaBundle {
            path: path.to_path_buf(),
            certs,
            key: hasher.finish(),
        })
    }

    /// The certificates, for a TLS configuration that trusts them.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// Tells bundles apart by content: two files with the same certificates share a key.
    pub fn key(&self) -> u64 {
        self.key
    }
}

/// The CA bundles rows name, each file read once until [`CaFiles::forget`]: 100,000 rows
/// using `[settings] CaFile` read it once, not 100,000 times.
#[derive(Debug, Default)]
pub struct CaFiles {
    /// `[settings] CaFile`: for rows without a `ca_file`.
    default: Option<PathBuf>,
    read: HashMap<PathBuf, Result<Arc<CaBundle>, CaError>>,
}

impl CaFiles {
    pub fn new(default: Option<PathBuf>) -> CaFiles {
        CaFiles {
            default,
            read: HashMap::new(),
        }
    }

    /// The bundle of a row whose `ca_file` is `own`: its own file, else the default, if any.
    pub fn get(&mut self, own: Option<&str>) -> Result<Option<Arc<CaBundle>>, CaError> {
        let own = own
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let Some(path) = own.or_else(|| self.default.clone()) else {
            return Ok(None);
        };
        let bundle = self
            .read
            .entry(path)
            .or_insert_with_key(|p| CaBundle::load(p).map(Arc::new));
        bundle.clone().map(Some)
    }

    /// Files are read again from now on (an operator may have replaced one).
    pub fn forget(&mut self) {
        self.read.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::scratch::Dir;
    use std::error::Error as _;

    fn ca_pem() -> String {
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        cert.cert.pem()
    }

    #[test]
    fn a_ca_file_is_read_once_per_pass() {
        let dir = Dir::new("ca-once");
        let path = dir.file("ca.pem", &ca_pem());
        let mut cas = CaFiles::new(Some(path.clone()));
        let first = cas.get(None).unwrap().unwrap();
        let again = cas.get(Some("  ")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the default read once");
        std::fs::remove_file(&path).unwrap();
        assert!(cas.get(None).is_ok(), "not read again within a pass");
        cas.forget();
        let err = cas.get(None).unwrap_err();
        assert!(matches!(err, CaError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot read it"), "{err}");
    }

    #[test]
    fn the_operator_is_told_which_file_and_what_is_wrong_with_it() {
        let dir = Dir::new("ca-errors");
        let missing = dir.path().join("missing.pem");
        let err = CaBundle::load(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "ca_file {}: cannot read it: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let source = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(source.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));

        let broken = dir.file(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        );
        let err = CaBundle::load(&broken).unwrap_err();
        let text = err.to_string();
        let prefix = format!("ca_file {}: not a PEM bundle: ", broken.display());
        assert!(text.starts_with(&prefix), "{text}");
        assert!(err.source().is_some_and(|s| s.is::<pem::Error>()));

        let empty = dir.file("empty.pem", "no PEM section here\n");
        let err = CaBundle::load(&empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("ca_file {}: no certificate in it", empty.display())
        );
        assert!(err.source().is_none());
    }
}
