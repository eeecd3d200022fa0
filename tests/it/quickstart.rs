//! scripts/quickstart run from three checkouts of the project against one database: the first
//! creates the database user and its configuration, the second reuses that configuration
//! (the first one's still connects: no password was changed), and a third that finds no
//! configuration of the existing user stops and asks for another user name instead of
//! touching it. Each run sets up, starts the daemon, waits until it answers and stops it
//! (`--check`); the binary is the test build (SKYPUNCH_BINARY), so nothing is compiled.
//! The daemon's HTTP server listens on a free port (QUICKSTART_LISTEN); when that port is
//! taken, the quick start ends at once with the daemon's own reason.

use crate::support::mariadb::free_port;
use crate::support::TestDb;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A checkout: what the quick start reads (its scripts and schema files).
fn checkout(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for sub in ["scripts", "schema"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(sub))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "copying {sub}");
    }
    dir
}

/// The database user the quick start makes, dropped after the test.
struct DbUser<'a>(&'a TestDb, String);

impl Drop for DbUser<'_> {
    fn drop(&mut self) {
        self.0
            .exec(&format!("DROP USER IF EXISTS '{}'@'127.0.0.1'", self.1));
    }
}

struct QuickStart<'a> {
    home: PathBuf,
    db: &'a TestDb,
    user: String,
    /// QUICKSTART_LISTEN: the daemon's HTTP address.
    listen: String,
}

impl QuickStart<'_> {
    fn run(&self, checkout: &Path) -> Output {
        Command::new("bash")
            .arg(checkout.join("scripts/quickstart"))
            .arg("--check")
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env("QUICKSTART_DB", &self.db.name)
            .env("QUICKSTART_USER", &self.user)
            .env("QUICKSTART_LISTEN", &self.listen)
            .env("SKYPUNCH_BINARY", env!("CARGO_BIN_EXE_skypunch"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The configuration's database user and password still log in.
    fn connects(&self, config: &Path) -> bool {
        let text = std::fs::read_to_string(config).unwrap();
        let value = |key: &str| {
            let line = text.lines().rev().find(|l| l.starts_with(key)).unwrap();
            line[key.len()..].trim().to_string()
        };
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(crate::support::server().port)
            .user(Some(value("User:")))
            .pass(Some(value("Password:")))
            .db_name(Some(self.db.name.clone()));
        mysql::Conn::new(opts).is_ok()
    }
}

fn output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_second_checkout_reuses_the_database_user_and_never_changes_its_password() {
    let db = TestDb::empty();
    let root = db.dir.join("checkouts");
    let user = DbUser(&db, format!("spqs_{}", std::process::id()));
    let qs = QuickStart {
        home: root.join("home"),
        db: &db,
        user: user.1.clone(),
        listen: format!("127.0.0.1:{}", free_port()),
    };

    let first = checkout(&root, "first");
    let out = qs.run(&first);
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("creating database user {}@127.0.0.1", qs.user)),
        "{text}"
    );
    assert!(text.contains("loading the example targets"), "{text}");
    assert!(text.contains("skypunch runs (pid "), "{text}");
    assert!(text.contains("skypunch is running"), "{text}");
    assert!(
        text.contains(&format!("The status page is at http://{}/", qs.listen)),
        "{text}"
    );
    let first_conf = first.join("skypunch.conf");
    let written = std::fs::read_to_string(&first_conf).unwrap();
    assert!(
        written.contains(&format!("[http]\nListen: {}\n", qs.listen)),
        "{written}"
    );
    assert!(qs.connects(&first_conf));
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM targets"), 4);

    let second = checkout(&root, "second");
    let out = qs.run(&second);
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("reusing the configuration of database user"),
        "{text}"
    );
    assert!(!text.contains("creating database user"), "{text}");
    assert!(
        !text.contains("loading the example targets"),
        "loaded twice: {text}"
    );
    assert!(
        qs.connects(&first_conf),
        "the first checkout's config no longer connects"
    );
    assert!(qs.connects(&second.join("skypunch.conf")));

    // The first checkout again: its own configuration, nothing created.
    let out = qs.run(&first);
    assert!(out.status.success(), "{}", output(&out));
    assert!(output(&out).contains("using ./skypunch.conf"));

    // Another home: the user exists, its configuration is nowhere to be found.
    let third = checkout(&root, "third");
    let stranger = QuickStart {
        home: root.join("other-home"),
        db: &db,
        user: qs.user.clone(),
        listen: qs.listen.clone(),
    };
    let out = stranger.run(&third);
    let text = output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("its password is left as it is"), "{text}");
    assert!(
        text.contains(&format!("QUICKSTART_USER={}2 scripts/quickstart", qs.user)),
        "{text}"
    );
    assert!(!third.join("skypunch.conf").exists());
    assert!(
        qs.connects(&first_conf),
        "the first checkout's config no longer connects"
    );
}

#[test]
fn a_taken_port_ends_the_quick_start_at_once_with_the_daemons_reason() {
    let db = TestDb::empty();
    let root = db.dir.join("checkouts");
    let user = DbUser(&db, format!("spqp_{}", std::process::id()));
    // Something else holds the port the daemon is to listen on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let qs = QuickStart {
        home: root.join("home"),
        db: &db,
        user: user.1.clone(),
        listen: taken.local_addr().unwrap().to_string(),
    };
    let began = Instant::now();
    let out = qs.run(&checkout(&root, "busy"));
    let took = began.elapsed();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("skypunch exited during start-up (exit status 1):"),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot listen on {} ([http] Listen)", qs.listen)),
        "the daemon's own reason is missing:\n{text}"
    );
    assert!(!text.contains("did not"), "{text}");
    // The whole run (set-up included) ends long before the 30 s wait for a daemon that runs.
    assert!(took < Duration::from_secs(15), "took {took:?}: {text}");
}
