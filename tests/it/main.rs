//! The integration tests, one binary: each module is one subject, told as the operator meets
//! it; `support` holds the real parts they run against (a fresh MariaDB database per test,
//! HTTP, Keystone, OAuth2 and SMTP servers on 127.0.0.1, the built `skypunch` binary).

mod support;

mod bench_smoke;
mod blind;
mod certificates;
mod checks;
mod cli;
mod cli_output;
mod client_certs;
mod cluster;
mod cluster_edges;
mod conditions;
mod confirm;
mod dependencies;
mod engine;
mod faults;
mod first_hour;
mod history;
mod hooks;
mod http;
mod http_hostile;
mod install;
mod ip_families;
mod keystone;
mod lifecycle;
mod loglevel;
mod maintenance;
mod man;
mod nodes;
mod notify;
mod oauth2;
mod package;
mod partitions;
mod phases;
mod poison_rows;
mod proxies;
mod push;
mod quickstart;
mod real_servers;
mod reliability_db;
mod reliability_security;
mod reliability_stop;
mod reliability_targets;
mod schema;
mod secrets;
mod setup_db;
mod sinks;
mod status_page;
mod storms;
mod systemd;
mod tls_sessions;
mod workers;
