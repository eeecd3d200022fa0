//! The CA bundles targets (`ca_file`, `[settings] CaFile`) and mail servers trust besides the
//! public roots: PEM files read once when the loader (or the CLI, or the notifier) takes a
//! row, and shared by every check of the targets naming them. Used on the loader thread and
//! read by the workers; no thread of its own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
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

impl CaBundle {
    /// Reads a PEM bundle; the error names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let shown = path.display();
        let pem =
            std::fs::read(path).map_err(|e| format!("ca_file {shown}: cannot read it: {e}"))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file {shown}: not a PEM bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!("ca_file {shown}: no certificate in it"));
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
}

/// The CA bundles rows name, each file read once until [`CaFiles::forget`]: 100,000 rows
/// using `[settings] CaFile` read it once, not 100,000 times.
#[derive(Debug, Default)]
pub struct CaFiles {
    /// `[settings] CaFile`: for rows without a `ca_file`.
    default: Option<PathBuf>,
    read: HashMap<PathBuf, Result<Arc<CaBundle>, String>>,
}

impl CaFiles {
    pub fn new(default: Option<PathBuf>) -> CaFiles {
        CaFiles {
            default,
            read: HashMap::new(),
        }
    }

    /// The bundle of a row whose `ca_file` is `own`: its own file, else the default, if any.
    pub fn get(&mut self, own: Option<&str>) -> Result<Option<Arc<CaBundle>>, String> {
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

impl CaBundle {
    /// The certificates, for a TLS configuration that trusts them.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// Tells bundles apart by content: two files with the same certificates share a key.
    pub fn key(&self) -> u64 {
        self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_is_read_once_per_pass() {
        let dir = std::env::temp_dir().join(format!("sp-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        std::fs::write(&path, cert.cert.pem()).unwrap();
        let mut cas = CaFiles::new(Some(path.clone()));
        let first = cas.get(None).unwrap().unwrap();
        let again = cas.get(Some("  ")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the default read once");
        std::fs::remove_file(&path).unwrap();
        assert!(cas.get(None).is_ok(), "not read again within a pass");
        cas.forget();
        let err = cas.get(None).unwrap_err();
        assert!(err.contains("cannot read it"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
