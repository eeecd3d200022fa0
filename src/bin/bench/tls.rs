//! `--tls`: a private CA and a server certificate for 127.0.0.1 made at run time with the
//! `openssl` command (ECDSA P-256 or RSA-2048), and the rustls configuration of the built-in
//! HTTPS server. Resumption is off on every server the tool runs, so that each check pays a
//! full handshake, as a first check of a real target does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::target::find_or_install;
use super::Error;

/// The key type of the CA and the server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
}

impl KeyKind {
    pub fn parse(s: &str) -> Result<KeyKind, Error> {
        match s {
            "" | "ecdsa" => Ok(KeyKind::Ecdsa),
            "rsa" => Ok(KeyKind::Rsa),
            other => Err(format!("--tls {other}: expected ecdsa or rsa")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Ecdsa => "ECDSA P-256",
            KeyKind::Rsa => "RSA-2048",
        }
    }

    /// `openssl req -newkey` argument.
    fn newkey(self) -> Vec<&'static str> {
        match self {
            KeyKind::Ecdsa => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            KeyKind::Rsa => vec!["-newkey", "rsa:2048"],
        }
    }
}

/// The files one run's private PKI is made of.
#[derive(Debug, Clone)]
pub struct Pki {
    pub kind: KeyKind,
    /// The CA certificate: what the targets' `ca_file` and blackbox_exporter's `ca_file` name.
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

fn openssl(program: &Path, args: &[&str], dir: &Path) -> Result<(), Error> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

impl Pki {
    /// A CA valid for two days and a certificate for 127.0.0.1 and localhost signed by it,
    /// in `dir`.
    pub fn make(dir: &Path, kind: KeyKind) -> Result<Pki, Error> {
        let program = find_or_install("openssl", &["openssl"])?;
        let newkey = kind.newkey();
        let mut ca: Vec<&str> = vec!["req", "-x509", "-nodes", "-days", "2", "-sha256"];
        ca.extend(&newkey);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=skypunch-bench CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&program, &ca, dir)?;
        let mut csr: Vec<&str> = vec!["req", "-new", "-nodes"];
        csr.extend(&newkey);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&program, &csr, dir)?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| format!("writing server.ext: {e}"))?;
        openssl(
            &program,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-sha256",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
            dir,
        )?;
        Ok(Pki {
            kind,
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        })
    }

    /// The built-in server's configuration: this certificate, no session cache, no tickets.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
        let certs = CertificateDer::pem_slice_iter(&read(&self.cert_pem)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", self.cert_pem.display()))?;
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key_pem)?)
            .map_err(|e| format!("{}: {e}", self.key_pem.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("the bench certificate: {e}"))?;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

/// Handshake times (ms) from the daemon's stored traces: the `(  1.2ms) TLS handshake done`
/// step of each target's last check.
pub fn handshake_ms(traces: &[String]) -> Vec<f64> {
    let mut v: Vec<f64> = traces
        .iter()
        .filter_map(|t| {
            let line = t.lines().find(|l| l.contains("TLS handshake done"))?;
            let took = line.split('(').nth(1)?.split("ms)").next()?;
            took.trim().parse().ok()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_steps_are_read_from_traces() {
        let t = "2026-11-30 06:00:00.001 +     0.2ms (    0.2ms) connected to 127.0.0.1:443\n\
                 2026-11-30 06:00:00.003 +     2.1ms (    1.9ms) TLS handshake done; certificate x\n";
        assert_eq!(handshake_ms(&[t.to_string(), "no tls".into()]), vec![1.9]);
    }
}
