//! Property tests of the parsers that read what operators type: `authn_parms`
//! ([`crate::base::authn`]) and the configuration file ([`crate::config`]). Whatever the input,
//! they return a value or an error, never panic, and never echo a password. Pure functions,
//! tested inside the crate (`cargo test --lib parsers_test`): no thread, no I/O.

use std::path::Path;

use crate::base::authn::{self, Auth};
use crate::config;
use proptest::prelude::*;

/// Text made of the characters that matter to these parsers, and anything else.
fn messy() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "[a-zA-Z=, :\\[\\]#;\\n\\t]{0,200}",
        proptest::collection::vec(
            prop_oneof![
                Just("user".to_string()),
                Just("password".to_string()),
                Just("osauthendpoint".to_string()),
                Just("tenantid".to_string()),
                Just("project".to_string()),
                Just("identityversion".to_string()),
                Just("=".to_string()),
                Just(",".to_string()),
                Just(" ".to_string()),
                Just("http://k:5000/v2.0".to_string()),
                Just("https://k/v3".to_string()),
                "[^,=]{0,12}",
            ],
            0..20,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("NONE".to_string()),
        Just("BASIC".to_string()),
        Just("basic".to_string()),
        Just("OPENSTACK".to_string()),
        Just(" keystone ".to_string()),
        Just(String::new()),
        ".{0,12}",
    ]
}

/// A password nobody else generates: it can be searched for in any output.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9=+/!@#$%^&*]{4,24}".prop_map(|s| format!("QX{s}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn authn_parse_never_panics(kind in kind(), parms in proptest::option::of(messy())) {
        let _ = authn::parse(&kind, parms.as_deref());
    }

    #[test]
    fn split_params_never_panics_and_keys_are_lowercase(parms in messy()) {
        if let Ok(pairs) = authn::split_params(&parms) {
            for (k, v) in &pairs {
                prop_assert_eq!(k, &k.trim().to_ascii_lowercase());
                prop_assert_eq!(v, &v.trim().to_string());
            }
            let mut keys: Vec<_> = pairs.iter().map(|(k, _)| k).collect();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), pairs.len(), "a key given twice is an error");
        }
    }

    #[test]
    fn well_formed_params_round_trip(
        pairs in proptest::collection::btree_map("[a-z]{1,10}", "[a-zA-Z0-9=./:]{0,16}", 0..8)
    ) {
        let text = pairs
            .iter()
            .map(|(k, v)| format!(" {} = {v} ", k.to_ascii_uppercase()))
            .collect::<Vec<_>>()
            .join(",");
        let mut parsed = authn::split_params(&text).unwrap();
        parsed.sort();
        let expected: Vec<(String, String)> = pairs.into_iter().collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn a_basic_password_is_never_shown(
        user in "[a-z]{1,10}",
        password in secret(),
        noise in "[a-z=]{0,20}",
    ) {
        let parms = format!("{noise},user={user},password={password}");
        let redacted = authn::redact_params(&parms);
        prop_assert!(!redacted.contains(&password), "{}", redacted);
        match authn::parse("BASIC", Some(&parms)) {
            Ok(auth) => {
                let is_basic = matches!(auth, Auth::Basic { .. });
                prop_assert!(is_basic);
                let shown = format!("{auth:?}");
                prop_assert!(!shown.contains(&password), "{}", shown);
            }
            // Noise without `=` makes the row a config error, which must not quote the password.
            Err(e) => prop_assert!(!e.contains(&password), "{}", e),
        }
    }

    #[test]
    fn a_keystone_password_is_never_shown(
        password in secret(),
        endpoint in prop_oneof![Just("http://k:5000/v2.0"), Just("https://k/v3"), Just("ftp://k/v3")],
        tenant in proptest::option::of("[a-f0-9]{1,8}"),
    ) {
        let mut parms = format!("user=ops,password={password},osauthendpoint={endpoint}");
        if let Some(t) = &tenant {
            parms.push_str(&format!(",tenantid={t}"));
        }
        let shown = match authn::parse("OPENSTACK", Some(&parms)) {
            Ok(auth) => format!("{auth:?}"),
            Err(e) => e,
        };
        prop_assert!(!shown.contains(&password), "{}", shown);
        prop_assert!(!authn::redact_params(&parms).contains(&password));
    }

    #[test]
    fn redact_params_never_panics_and_hides_every_secret_key(parms in messy(), password in secret()) {
        let _ = authn::redact_params(&parms);
        for key in ["password", "Password", "secret", "token", "pass", "os_password"] {
            let text = format!("{parms},{key}={password}");
            let redacted = authn::redact_params(&text);
            prop_assert!(!redacted.contains(&password), "{}", redacted);
        }
    }

    #[test]
    fn config_parse_never_panics_and_errors_name_the_file(text in messy()) {
        let path = Path::new("/etc/skypunch/test.conf");
        match config::parse(path, &text) {
            Ok(loaded) => {
                prop_assert!(loaded.config.workers >= 1);
                for w in &loaded.warnings {
                    prop_assert!(w.starts_with("/etc/skypunch/test.conf:"), "{}", w);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("/etc/skypunch/test.conf"), "{}", e),
        }
    }

    #[test]
    fn config_values_are_read_back_and_the_password_is_never_shown(
        workers in 1usize..=4096,
        port in 1u16..,
        reload in 1u64..=3600,
        password in secret(),
        separator in prop_oneof![Just(":"), Just(" = "), Just("=")],
        junk in proptest::collection::vec("(#|;)[^\\n]{0,30}", 0..4),
    ) {
        let text = format!(
            "{}\n[settings]\nWorkers{separator}{workers}\nReloadInterval{separator}{reload}\n\
             [database]\nport{separator}{port}\nPassword{separator}{password}\n",
            junk.join("\n")
        );
        let loaded = config::parse(Path::new("x.conf"), &text).unwrap();
        prop_assert_eq!(loaded.config.workers, workers);
        prop_assert_eq!(loaded.config.db.port, port);
        prop_assert_eq!(loaded.config.reload_interval.as_secs(), reload);
        prop_assert_eq!(&loaded.config.db.password, &password);
        let shown = format!("{:?}{}", loaded.config, loaded.config.db.describe());
        prop_assert!(!shown.contains(&password), "{}", shown);
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_line_and_key(
        line_before in 0usize..5,
        value in "[a-z-]{1,8}|-[0-9]{1,5}|99999999",
    ) {
        let text = format!("{}[settings]\nWorkers: {value}\n", "# c\n".repeat(line_before));
        let err = config::parse(Path::new("x.conf"), &text).unwrap_err().to_string();
        let line = line_before + 2;
        let expected = format!("x.conf:{line}: bad value `{value}` for [settings] Workers");
        prop_assert!(err.starts_with(&expected), "{}", err);
    }
}
