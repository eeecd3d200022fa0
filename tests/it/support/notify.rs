//! Helpers for the notification tests: a real SMTP server (tests/it/support/smtp_server.py, on
//! aiosmtpd, installed with pip when missing), misbehaving fake SMTP peers, a notifier thread
//! run in-process against a test database (and the prune thread beside it), and queueing
//! alerts the way the writer does.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use skypunch::facade::config::{Config, DbConfig, NotifyConfig};
use skypunch::facade::model::AlertKind;
use skypunch::facade::model::NewAlert;

use crate::support::{self as common, wait_for, TestDb};

static AIOSMTPD: Once = Once::new();

/// Fails at once, saying what to do, when python3 cannot import aiosmtpd (scripts/test
/// installs it; a test never installs software).
pub fn ensure_aiosmtpd() {
    AIOSMTPD.call_once(|| {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            have,
            "python3 cannot import aiosmtpd, the tests' SMTP server: run the tests with \
             scripts/test, which installs it"
        );
    });
}

/// Options of a test SMTP server.
#[derive(Default, Clone)]
pub struct SmtpOptions {
    /// 0: any free port.
    pub port: u16,
    pub starttls: bool,
    pub login: Option<(String, String)>,
}

/// A running smtp_server.py; killed when dropped. Messages land in `dir`.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpServer {
    pub fn start(dir: &Path, opts: &SmtpOptions) -> SmtpServer {
        ensure_aiosmtpd();
        std::fs::create_dir_all(dir).unwrap();
        let ready = dir.join(format!("ready-{}", opts.port));
        let _ = std::fs::remove_file(&ready);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/smtp_server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--dir")
            .arg(dir)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--port")
            .arg(opts.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if opts.starttls {
            cmd.arg("--starttls");
        }
        if let Some((user, password)) = &opts.login {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd.spawn().expect("python3 runs");
        let port = wait_for(Duration::from_secs(30), "the SMTP server to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("smtp_server.py exited early: {status}");
            }
            std::fs::read_to_string(&ready)
                .ok()?
                .trim()
                .parse::<u16>()
                .ok()
        });
        SmtpServer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Every message received so far, in arrival order, as smtp_server.py decoded it.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        messages_in(&self.dir)
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_messages(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(Duration::from_secs(60), &format!("{n} messages"), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn messages_in(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|p| {
            let mut m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            // The decoded parts keep the wire's CRLF line ends.
            for part in ["text", "html"] {
                let text = m[part].as_str().unwrap_or("").replace("\r\n", "\n");
                m[part] = serde_json::Value::String(text);
            }
            m
        })
        .collect()
}

/// Recipients of the messages, one entry per message.
pub fn recipients(messages: &[serde_json::Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap_or("").to_string())
        .collect()
}

/// A fake SMTP peer that misbehaves on every connection; lives as long as the test process.
#[derive(Clone, Copy)]
pub enum Misbehaviour {
    /// Accepts and never says a word.
    Hang,
    /// Accepts and closes at once.
    Close,
    /// Greets, then closes after the client's first command.
    CloseAfterGreeting,
}

/// Starts a fake peer on a free port; returns the port.
pub fn fake_peer(how: Misbehaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            match how {
                Misbehaviour::Hang => held.push(s),
                Misbehaviour::Close => drop(s),
                Misbehaviour::CloseAfterGreeting => {
                    let _ = s.write_all(b"220 fake ESMTP\r\n");
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf);
                }
            }
        }
    });
    port
}

/// A configuration for the notifier thread run in-process against `db`: short SMTP timeout
/// and retries so that tests run quickly.
pub fn config(db: &TestDb) -> Config {
    let s = common::server();
    Config {
        db: DbConfig {
            host: s.host,
            port: s.port,
            user: s.user,
            password: s.password,
            name: db.name.clone(),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            ..DbConfig::default()
        },
        notify: NotifyConfig {
            from: "SkyPunch <skypunch@localhost>".into(),
            smtp_timeout: Duration::from_secs(2),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_millis(800),
            retention: Duration::from_secs(30 * 86400),
            // Each alert its own message, at once: grouping is tested in tests/it/storms.rs.
            group_wait: Duration::ZERO,
            ..NotifyConfig::default()
        },
        ..Config::default()
    }
}

/// The notifier thread and the writer's end of its wake channel.
pub struct Running {
    pub wake: Sender<()>,
    handle: JoinHandle<()>,
    /// Never pulled: the notifier ends when `wake` is disconnected, as after the writer.
    _stop: skypunch::facade::stop::StopTrigger,
}

impl Running {
    pub fn start(config: Config) -> Running {
        let pool = skypunch::facade::db::connect(&config.db).unwrap();
        let (wake, rx) = crossbeam_channel::bounded(1);
        let (trigger, stop) = skypunch::facade::stop::request();
        let handle =
            std::thread::spawn(move || skypunch::facade::notifier::run(&config, &pool, &rx, &stop));
        Running {
            wake,
            handle,
            _stop: trigger,
        }
    }

    /// What the writer does after a commit that queued alerts.
    pub fn poke(&self) {
        let _ = self.wake.try_send(());
    }

    /// Disconnects `wake` and waits for the thread to end.
    pub fn stop(self) {
        drop(self.wake);
        self.handle
            .join()
            .expect("the notifier thread does not panic");
    }
}

/// The prune thread run in-process against a test database, stopped by its own trigger.
pub struct Pruning {
    handle: JoinHandle<()>,
    trigger: skypunch::facade::stop::StopTrigger,
}

impl Pruning {
    pub fn start(config: Config) -> Pruning {
        let pool = skypunch::facade::db::connect(&config.db).unwrap();
        let (trigger, stop) = skypunch::facade::stop::request();
        let handle = std::thread::Builder::new()
            .name("skypunch-prune".into())
            .spawn(move || skypunch::facade::notifier::run_prune(&config, &pool, &stop))
            .unwrap();
        Pruning { handle, trigger }
    }

    /// Asks the thread to stop and waits for it to end.
    pub fn stop(mut self) {
        self.trigger.pull(Duration::from_secs(10));
        self.handle.join().expect("the prune thread does not panic");
    }
}

/// Queues an alert for `target` exactly as the writer does (snapshot taken by the database).
pub fn queue_alert(config: &Config, target: u64, kind: AlertKind, trace: &str) {
    let pool = skypunch::facade::db::connect(&config.db).unwrap();
    let mut conn = skypunch::facade::db::checkout(&pool).unwrap();
    let alert = NewAlert {
        target_id: target,
        kind,
        trace: trace.into(),
    };
    skypunch::facade::db::results::write(
        &mut conn,
        None,
        &BTreeMap::new(),
        &[alert],
        &BTreeMap::new(),
    )
    .unwrap();
}

/// Inserts a notifier; returns its id.
pub fn add_notifier(
    db: &TestDb,
    name: &str,
    kind: &str,
    address: &str,
    params: &str,
    enabled: bool,
) -> u64 {
    use mysql::prelude::Queryable;
    let mut conn = db.conn();
    conn.exec_drop(
        "INSERT INTO notifiers (name, type, address, params, enabled) VALUES (?, ?, ?, ?, ?)",
        (name, kind, address, params, enabled),
    )
    .unwrap();
    conn.last_insert_id()
}

/// An enabled SMTP notifier `name` that mails `name@example.com` through the plain-text
/// server on 127.0.0.1:`port`; its id.
pub fn mail_notifier(db: &TestDb, name: &str, port: u16) -> u64 {
    add_notifier(
        db,
        name,
        "SMTP",
        &format!("{name}@example.com"),
        &plain(port),
        true,
    )
}

/// `params` for a plain-text server on 127.0.0.1.
pub fn plain(port: u16) -> String {
    format!("server=127.0.0.1,port={port},tls=none")
}
