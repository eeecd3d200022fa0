//! The program's version, as every face shows it: `skypunch --version`, the `nodes` row, the
//! start line, and the User-Agent of checks, Keystone and OAuth2 requests, webhooks and mail.

/// The version of this build (Cargo.toml's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The User-Agent of every HTTP request the daemon makes.
pub const USER_AGENT: &str = concat!("skypunch/", env!("CARGO_PKG_VERSION"));
