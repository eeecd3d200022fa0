//! The bottom layer: plain data and small utilities that every other layer may use and that
//! use nothing above them. No thread, no database, no network: the types that cross threads
//! (`model`), the pure logic with an injectable clock (`state`, `rollup`, `uptime`), text and
//! time helpers, and the process-wide plumbing (`stats`, `stop`, `threads`, `fault`, the
//! node's `sight` of its network).

pub mod authn;
pub mod ca;
pub mod client_cert;
pub mod conditions;
pub mod fault;
pub mod headers;
pub mod keyring;
pub mod model;
pub mod os;
pub mod phases;
pub mod proxy;
pub mod push;
pub mod redactor;
pub mod rollup;
#[cfg(test)]
pub mod scratch;
pub mod secrets;
pub mod sight;
pub mod source_address;
pub mod state;
pub mod stats;
pub mod stop;
pub mod text;
pub mod threads;
pub mod trace;
pub mod uptime;
pub mod urls;
pub mod version;
