//! The cryptography of every check's TLS handshake, taken when an agent's TLS configurations
//! are built: aws-lc-rs's provider, or ring's when built with the `ring-checks` feature,
//! which exists to compare the two in one benchmark run (BENCHMARKS.md, "aws-lc-rs against
//! ring"; scripts/bench-crypto).
//!
//! Why aws-lc-rs: the client's share of a handshake (an X25519 key share made and agreed, a
//! signature verified) costs less with it than with ring on x86_64, and it builds with the C
//! compiler alone.

use rustls::crypto::CryptoProvider;

#[cfg(feature = "ring-checks")]
pub fn default_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(not(feature = "ring-checks"))]
pub fn default_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::kx_group;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // ring's groups in ring's order: the same handshake as before, and no post-quantum
    // hybrid share, which would make every ClientHello larger and every check dearer.
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    p
}
