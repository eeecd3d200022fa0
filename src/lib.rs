//! skypunch: a service-monitoring daemon.
//!
//! Pipeline (each stage a module owning its thread(s) and channel ends):
//! loader → cluster → wheel → workers → writer → notifier, with the CLI beside it. `daemon` starts the
//! threads and says in which order they stop.

mod backlog;
mod base;
mod check;
mod cli;
mod cluster;
mod config;
mod daemon;
mod db;
mod health;
mod http;
mod jobs;
mod lifecycle;
mod loader;
mod logging;
mod notifier;
mod report;
mod signals;
mod target;
mod watchdog;

#[cfg(test)]
mod secrets_test;
#[cfg(test)]
mod sinks_test;
mod wheel;
mod worker;
mod writer;

/// The command line, for `main.rs`.
pub use cli::main;

/// What the bench tool and the integration tests reach into. Everything else is private to
/// the crate, so rustc reports the code nothing uses.
pub mod facade {
    pub mod authn {
        pub use crate::base::authn::{
            bearer_token, expand_values, oauth2_params, parse, parse_with_secrets, redact_params,
            split_params, Auth, ClientAuth, OAuth2Params, Secret,
        };
    }
    pub mod check {
        pub use crate::check::timing::Phase;
        pub use crate::check::{CheckSettings, Checker};
        /// Issue 26's OAuth2 tokens, until the check fetches them (see WIRING.md of i26-parts).
        pub mod oauth2 {
            pub use crate::check::oauth2::{
                basic_credentials, fetch, parse_answer, request_body, token_url, waited,
                OAuth2Error, Token, TokenCache, MAX_ANSWER_BYTES,
            };
            pub use crate::check::tokens::{Fresh, SharedTokens, Source, FAILURE_HOLD};
        }
        /// Issue 26's conditions, until the check reads them (see WIRING.md of i26-parts).
        pub mod conditions {
            pub use crate::check::conditions::{
                Condition, Conditions, Failed, ParseError, ResponseView, DESCRIPTION_MAX,
                MAX_CONDITIONS,
            };
        }
    }
    /// Issue 26's request headers, `[secrets]` and the redactor that knows their values.
    pub mod headers {
        pub use crate::base::headers::{
            is_secret, shown, shown_line, HeaderError, RequestHeaders, MAX_HEADERS, MAX_LINE_BYTES,
        };
    }
    pub mod secrets {
        pub use crate::base::redactor::{too_short, Redactor, MIN_LEN};
        pub use crate::base::secrets::{
            has_references, references, valid_name, Reference, SecretError, Secrets,
        };
    }
    pub mod cli {
        pub use crate::cli::{option_names, COMMANDS};
    }
    pub mod config {
        pub use crate::config::{
            known_keys, load_file, parse, Config, DbConfig, NotifyConfig, KEYS, PLACEHOLDER,
            SEARCH_PATH,
        };
    }
    pub mod db {
        pub use crate::db::{checkout, connect, split_script, Conn};
        pub mod results {
            pub use crate::db::results::write;
        }
        pub mod schema {
            pub use crate::db::schema::{tables_sql, SCHEMA_SQL};
        }
        pub mod targets {
            pub use crate::db::targets::{changed_since, enabled_fingerprint, get};
        }
    }
    pub mod lifecycle {
        pub use crate::lifecycle::process_alive;
    }
    pub mod model {
        pub use crate::base::model::{
            AlertKind, CheckError, CheckOutcome, Method, NewAlert, Target, Verdict,
        };
    }
    pub mod notifier {
        pub use crate::notifier::run;
        pub mod outbox {
            pub use crate::notifier::outbox::owed_to;
        }
    }
    pub mod stop {
        pub use crate::base::stop::{request, StopTrigger};
    }
    pub mod target {
        pub use crate::base::ca::CaFiles;
        pub use crate::target::from_row;
    }
    pub mod urls {
        pub use crate::base::urls::shown;
    }
}
