//! The cryptography of every check's TLS handshake: ring's provider, or aws-lc-rs's when
//! built with the `aws-lc-rs` feature, which exists to compare the two in one benchmark
//! run (BENCHMARKS.md, "aws-lc-rs against ring"); operators' builds use ring.

use rustls::crypto::CryptoProvider;

#[cfg(not(feature = "aws-lc-rs"))]
pub fn default_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(feature = "aws-lc-rs")]
pub fn default_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::kx_group;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // ring's groups in ring's order, so that both builds make the same handshake (aws-lc-rs
    // would offer the post-quantum hybrid first, a larger and dearer key share).
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    p
}
