//! `--crypto`: what one HTTPS check's cryptography costs with each crypto provider (ring and
//! aws-lc-rs, both built into every build), on the real CPU: the
//! client's share of a TLS 1.3 handshake (an X25519 key share made and agreed, an ECDSA P-256
//! or RSA-2048 signature verified). CPU time of this thread, providers alternating, the
//! fastest of several trials: on a shared machine the least disturbed trial is the closest to
//! the cost. Callgrind cannot settle this: valgrind's CPU has no ADX, SHA or AVX-512
//! instructions, and both libraries use them where the CPU has them.

use std::path::Path;
use std::process::Command;

use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::SignatureVerificationAlgorithm;
use rustls::{NamedGroup, SignatureScheme};
use serde_json::{json, Value};

use super::target::find_or_install;
use super::Error;

/// Operations timed per trial, and trials per operation and provider.
const OPS: u32 = 400;
const TRIALS: usize = 9;

/// A signed message and the key to verify it with.
struct Signed {
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn providers() -> Vec<(&'static str, CryptoProvider)> {
    vec![
        ("ring", rustls::crypto::ring::default_provider()),
        ("aws-lc-rs", rustls::crypto::aws_lc_rs::default_provider()),
    ]
}

/// This thread's CPU time, in seconds.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec this function owns.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// µs of CPU per call of `op`, the fastest trial.
fn per_op(mut op: impl FnMut()) -> f64 {
    (0..TRIALS)
        .map(|_| {
            let t0 = thread_cpu();
            for _ in 0..OPS {
                op();
            }
            (thread_cpu() - t0) * 1e6 / f64::from(OPS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn p256() -> Result<Signed, Error> {
    let rng = SystemRandom::new();
    let alg = &sig::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| e.to_string())?;
    let key =
        sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| e.to_string())?;
    let message = vec![7u8; 130];
    let signature = key.sign(&rng, &message).map_err(|e| e.to_string())?;
    Ok(Signed {
        public_key: key.public_key().as_ref().to_vec(),
        message,
        signature: signature.as_ref().to_vec(),
    })
}

/// ring cannot make RSA keys: openssl makes one in `dir`.
fn rsa2048(dir: &Path) -> Result<Signed, Error> {
    let openssl = find_or_install("openssl", &["openssl"])?;
    let der = dir.join("crypto-rsa.der");
    let out = Command::new(openssl)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-outform", "DER", "-out"])
        .arg(&der)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // openssl writes a DER RSA key as PKCS#1.
    let pkcs1 = std::fs::read(&der).map_err(|e| format!("{}: {e}", der.display()))?;
    let key = sig::RsaKeyPair::from_der(&pkcs1).map_err(|e| format!("the RSA key: {e}"))?;
    let message = vec![7u8; 130];
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &sig::RSA_PSS_SHA256,
        &SystemRandom::new(),
        &message,
        &mut signature,
    )
    .map_err(|e| e.to_string())?;
    Ok(Signed {
        public_key: key.public().as_ref().to_vec(),
        message,
        signature,
    })
}

/// The provider's verifier for `scheme` (the one TLS 1.3 uses).
fn verifier(
    p: &CryptoProvider,
    scheme: SignatureScheme,
) -> Result<&'static dyn SignatureVerificationAlgorithm, Error> {
    p.signature_verification_algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .and_then(|(_, algs)| algs.first().copied())
        .ok_or_else(|| format!("no verifier for {scheme:?}"))
}

/// One provider's figures: µs per operation.
fn measure(p: &CryptoProvider, ecdsa: &Signed, rsa: &Signed) -> Result<[f64; 4], Error> {
    let x25519 = p
        .kx_groups
        .iter()
        .find(|g| g.name() == NamedGroup::X25519)
        .ok_or("no X25519")?;
    let peer = x25519.start().map_err(|e| e.to_string())?;
    let peer_share = peer.pub_key().to_vec();
    let keygen = per_op(|| {
        let _ = x25519.start();
    });
    let keygen_and_agree = per_op(|| {
        if let Ok(kx) = x25519.start() {
            let _ = kx.complete(&peer_share);
        }
    });
    let verify = |s: &Signed, alg: &dyn SignatureVerificationAlgorithm| {
        let ok = alg
            .verify_signature(&s.public_key, &s.message, &s.signature)
            .is_ok();
        ok.then(|| {
            per_op(|| {
                let _ = alg.verify_signature(&s.public_key, &s.message, &s.signature);
            })
        })
        .ok_or("a signature made for the run did not verify")
    };
    let p256 = verify(ecdsa, verifier(p, SignatureScheme::ECDSA_NISTP256_SHA256)?)?;
    let rsa = verify(rsa, verifier(p, SignatureScheme::RSA_PSS_SHA256)?)?;
    Ok([keygen, keygen_and_agree - keygen, p256, rsa])
}

const NAMES: [&str; 4] = [
    "X25519 key share made",
    "X25519 agreement",
    "ECDSA P-256 verification",
    "RSA-2048 (PSS) verification",
];

/// Runs the comparison; the table and the JSON.
pub fn run(dir: &Path, rounds: usize) -> Result<(String, Value), Error> {
    let (ecdsa, rsa) = (p256()?, rsa2048(dir)?);
    let providers = providers();
    let mut best = vec![[f64::INFINITY; 4]; providers.len()];
    // Alternating, so that a disturbance of the machine falls on both alike.
    for _ in 0..rounds.max(1) {
        for (i, (_, p)) in providers.iter().enumerate() {
            let got = measure(p, &ecdsa, &rsa)?;
            for (b, g) in best[i].iter_mut().zip(got) {
                *b = b.min(g);
            }
        }
    }
    let mut table = String::from("| operation (µs of CPU, fastest trial) |");
    for (name, _) in &providers {
        table.push_str(&format!(" {name} |"));
    }
    table.push_str(&format!("\n|---|{}\n", "---|".repeat(providers.len())));
    for (k, op) in NAMES.iter().enumerate() {
        table.push_str(&format!("| {op} |"));
        for b in &best {
            table.push_str(&format!(" {:.1} |", b[k]));
        }
        table.push('\n');
    }
    let json = json!({
        "ops_per_trial": OPS, "trials": TRIALS, "rounds": rounds,
        "providers": providers.iter().zip(&best).map(|((name, _), b)| json!({
            "provider": name,
            "x25519_keygen_us": b[0], "x25519_agree_us": b[1],
            "p256_verify_us": b[2], "rsa2048_pss_verify_us": b[3],
        })).collect::<Vec<_>>(),
    });
    Ok((table, json))
}
