//! Unit tests of the configuration: the file as the original wrote it, every key, the
//! errors' words, and that no password shows.

use super::*;

#[test]
fn location_takes_a_list_of_hosts_each_with_an_optional_port() {
    let text = "[database]\nLocation: db1, db2:3307,[::1]:3308, [fe80::1]\nport: 3310\n";
    let c = parse_str(text).unwrap().config;
    let list: Vec<String> = c.db.endpoints().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        list,
        ["db1:3310", "db2:3307", "[::1]:3308", "[fe80::1]:3310"]
    );
    let shown = c.db.describe();
    assert!(
        shown.contains("@db1:3310,db2:3307,[::1]:3308,[fe80::1]:3310/"),
        "{shown}"
    );
    for bad in ["db1,,db2", "db1:x", "db1:0", "db 1", "[::1"] {
        let text = format!("[database]\nLocation: {bad}\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("a host, host:port, or a comma-separated list"),
            "{bad}: {err}"
        );
    }
}

fn parse_str(text: &str) -> Result<Loaded, Error> {
    parse(Path::new("test.conf"), text)
}

#[test]
fn the_original_file_is_read_as_it_is() {
    let text = "[settings]\nMainLoopTov: 1\nLogFilePath: ./skypunch.log\n\n[database]\n\
                Location: db.example\nport: 3307\nUser: root\nPassword: root\nDBName: skypunch\n";
    let loaded = parse_str(text).unwrap();
    let c = loaded.config;
    assert_eq!(c.log_file, PathBuf::from("./skypunch.log"));
    assert_eq!((c.db.host.as_str(), c.db.port), ("db.example", 3307));
    assert_eq!(
        (c.db.user.as_str(), c.db.password.as_str()),
        ("root", "root")
    );
    assert_eq!(
        loaded.warnings.len(),
        1,
        "MainLoopTov is accepted with a note"
    );
}

#[test]
fn keys_are_case_insensitive_and_equals_works() {
    let c = parse_str("[SETTINGS]\nworkers = 8\n[Database]\nDBNAME=mon_1\n")
        .unwrap()
        .config;
    assert_eq!(c.workers, 8);
    assert_eq!(c.db.name, "mon_1");
}

#[test]
fn a_bad_value_names_file_line_key_and_what_is_allowed() {
    let err = parse_str("[settings]\n\nWorkers: many\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "test.conf:3: bad value `many` for [settings] Workers: a whole number from 1 to 4096"
    );
}

#[test]
fn the_stop_grace_ends_before_the_stop_timeout_wherever_either_is_set() {
    let c = parse_str("[settings]\nStopGrace: 0\n").unwrap().config;
    assert_eq!(c.stop_grace, Duration::ZERO, "0: abandon at once");
    assert_eq!(Config::default().stop_grace, Duration::from_secs(2));
    let err = parse_str("[settings]\nStopGrace: 10\nStopTimeout: 10\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "test.conf:2: bad value `10` for [settings] StopGrace: a whole number of seconds \
         below StopTimeout (10): the last writes need time after it"
    );
    let err = parse_str("[settings]\nStopGrace: 2s\n").unwrap_err();
    assert!(
        err.to_string().contains("a whole number from 0 to 3599"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_is_a_warning() {
    let loaded = parse_str("[settings]\nColour: blue\n").unwrap();
    assert!(loaded.warnings[0].contains("test.conf:2: unknown key `Colour`"));
}

#[test]
fn a_line_without_separator_is_a_syntax_error() {
    let err = parse_str("[settings]\nworkers\n").unwrap_err();
    assert!(matches!(err, Error::Syntax { line: 2, .. }), "{err}");
}

#[test]
fn the_database_may_be_a_url() {
    let text = "[database]\nurl = mysql://mon%40x:p%3Ass@10.1.2.3:3310/skymon\n";
    let db = parse_str(text).unwrap().config.db;
    assert_eq!((db.user.as_str(), db.password.as_str()), ("mon@x", "p:ss"));
    assert_eq!(
        (db.host.as_str(), db.port, db.name.as_str()),
        ("10.1.2.3", 3310, "skymon")
    );
}

#[test]
fn a_bad_url_error_does_not_show_the_password() {
    let err = parse_str("[database]\nurl = postgres://u:secret@h/db\n").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn the_default_proxy_and_its_exceptions_are_read_and_its_password_never_shown() {
    let loaded = parse_str(
        "[settings]\nProxy: http://ops:hunter2@proxy.example:3128\n\
         NoProxy: localhost, .corp.example, 10.0.0.0/8\n",
    )
    .unwrap();
    let proxy = loaded.config.proxy.clone().unwrap();
    assert_eq!(proxy.shown(), "http://***@proxy.example:3128");
    assert!(loaded.config.no_proxy.matches("db.corp.example"));
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    let err = parse_str("[settings]\nProxy: http://ops:hunter2@proxy.example\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no port"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = parse_str("[settings]\nNoProxy: 10.0.0.0/40\n").unwrap_err();
    assert!(err.to_string().contains("`10.0.0.0/40` is not"), "{err}");
}

#[test]
fn every_listed_key_and_alias_is_accepted() {
    for (section, name) in known_keys() {
        let example = KEYS
            .iter()
            .find(|k| k.name == name || k.aliases.contains(&name))
            .unwrap()
            .example;
        // Basic authentication takes both or neither: the other of the pair is given.
        let pair = if section == "http" {
            "User: u\nPassword: p\n"
        } else {
            ""
        };
        let loaded = parse_str(&format!("[{section}]\n{pair}{name}: {example}\n"))
            .unwrap_or_else(|e| panic!("[{section}] {name}: {e}"));
        assert!(
            loaded.warnings.iter().all(|w| !w.contains("unknown key")),
            "[{section}] {name} is listed but not parsed: {:?}",
            loaded.warnings
        );
    }
}

#[test]
fn secrets_are_free_names_whose_values_never_show() {
    let text = "[secrets]\nAPI_KEY: k-123:456=x\ndb.pass-2 = hunter22\n";
    let c = parse_str(text).unwrap().config;
    assert_eq!(c.secrets.len(), 2);
    assert_eq!(c.secrets.get("API_KEY").unwrap().expose(), "k-123:456=x");
    assert_eq!(c.secrets.get("db.pass-2").unwrap().expose(), "hunter22");
    assert!(
        c.secrets.get("api_key").is_none(),
        "names are case-sensitive"
    );
    assert!(!format!("{c:?}").contains("hunter22"));
    for (bad, allowed) in [
        (
            "[secrets]\nbad name: hunter22\n",
            "a name of letters, digits",
        ),
        ("[secrets]\nA: hunter22\nA: hunter23\n", "each name once"),
        ("[secrets]\nA:\n", "a non-empty value"),
    ] {
        let err = parse_str(bad).unwrap_err().to_string();
        assert!(err.contains(allowed), "{bad}: {err}");
        assert!(err.contains("bad value `(hidden)` for [secrets]"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let err = parse_str("[secrets]\nhunter22\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "test.conf:2: cannot parse `(a line of [secrets], hidden)`: expected `[section]` or \
         `key: value`"
    );
}

#[test]
fn a_secret_too_short_to_redact_is_a_warning() {
    let loaded = parse_str("[secrets]\nPIN: 123\nTOKEN: long-enough\n").unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("[secrets] PIN is shorter than 4 characters"));
    assert!(!loaded.warnings[0].contains("123"));
}

#[test]
fn paths_are_resolved_against_the_start_folder() {
    let mut c = parse_str("[settings]\nLogFilePath: ./x.log\nPidFile: /run/x.pid\n")
        .unwrap()
        .config;
    c.resolve_paths(Path::new("/srv/mon"));
    assert_eq!(c.log_file, PathBuf::from("/srv/mon/x.log"));
    assert_eq!(c.pid_file, PathBuf::from("/run/x.pid"));
    assert_eq!(c.source, Some(PathBuf::from("/srv/mon/test.conf")));
}

#[test]
fn debug_output_hides_the_password() {
    let c = parse_str("[database]\npassword = hunter2\n[http]\nUser: u\nPassword: swordfish\n")
        .unwrap()
        .config;
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:?}").contains("swordfish"));
}

#[test]
fn http_listen_takes_a_list_or_nothing() {
    let c = parse_str("[http]\nListen: 0.0.0.0:80, [::1], localhost\n")
        .unwrap()
        .config;
    let list: Vec<String> = c.http.listen.iter().map(|e| e.to_string()).collect();
    assert_eq!(list, ["0.0.0.0:80", "[::1]:9470", "localhost:9470"]);
    let off = parse_str("[http]\nListen:\n").unwrap().config;
    assert!(off.http.listen.is_empty());
    let err = parse_str("[http]\nListen: a:b\n").unwrap_err().to_string();
    assert!(err.contains("[http] Listen"), "{err}");
    let err = parse_str("[http]\nPassword: x\n").unwrap_err().to_string();
    assert!(err.contains("[http] Password needs [http] User"), "{err}");
}

#[test]
fn http_max_connections_is_bounded() {
    let c = parse_str("[http]\nMaxConnections: 2000\n").unwrap().config;
    assert_eq!(c.http.max_connections, 2000);
    assert_eq!(Config::default().http.max_connections, 256);
    let err = parse_str("[http]\nMaxConnections: 4\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("MaxConnections"), "{err}");
    assert!(err.contains("a whole number from 8 to 1000000"), "{err}");
}

#[test]
fn alerts_link_to_the_public_url_else_the_first_listen_address() {
    let c =
        parse_str("[http]\nListen: 127.0.0.1:9470\nPublicUrl: https://s.example.com/x/\n").unwrap();
    assert_eq!(
        c.config.http.page_base().as_deref(),
        Some("https://s.example.com/x")
    );
    let c = parse_str("[http]\nListen: 10.0.0.5:8080, 127.0.0.1\n").unwrap();
    assert_eq!(
        c.config.http.page_base().as_deref(),
        Some("http://10.0.0.5:8080")
    );
    let c = parse_str("[http]\nListen: 127.0.0.1:0\n").unwrap();
    assert_eq!(
        c.config.http.page_base(),
        None,
        "a port chosen at start is not known here"
    );
    let c = parse_str("[http]\nListen:\n").unwrap();
    assert_eq!(c.config.http.page_base(), None);
    for bad in [
        "ftp://x",
        "status.example.com",
        "https://u:p@x",
        "https://x/?a=1",
    ] {
        let e = parse_str(&format!("[http]\nPublicUrl: {bad}\n")).unwrap_err();
        assert!(e.to_string().contains("[http] PublicUrl"), "{bad}: {e}");
    }
}
