//! Helpers for the notification tests: a real SMTP server (tests/it/support/smtp_server.py, on
//! aiosmtpd, installed with pip when missing), misbehaving fake SMTP peers, the real daemon
//! delivering alerts queued with plain SQL the way the writer queues them, and what
//! `skypunch notifiers ID` says a notifier is owed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use crate::support::{self as common, wait_for, Daemon, TestDb};

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
    /// The address to listen on; `None`: 127.0.0.1.
    pub host: Option<String>,
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
            .arg("--host")
            .arg(opts.host.as_deref().unwrap_or("127.0.0.1"))
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

/// The `[notifications]` section of the daemon a notification test runs: a short SMTP
/// timeout and retries a second apart, so that tests run quickly.
pub const NOTIFICATIONS: &str = "\n[notifications]\nFrom: SkyPunch <skypunch@localhost>\n\
    SmtpTimeout: 2\nRetryInitial: 1\nRetryMax: 1\n";

/// The real daemon, started on `db` with [`NOTIFICATIONS`], to deliver the alerts queued with
/// [`queue_alert`]. The targets of such a test are disabled, so it checks nothing and raises
/// no alert of its own: what it sends is what the test queued.
///
/// Its notifier expands and sends what is owed at start, then sleeps until the next retry is
/// due, 30 s at most: an alert queued after the start (as another node's writer queues one) is
/// seen that late. So a test queues its alerts first; and a stop's last pass tries everything
/// still owed at once.
pub fn notifying_daemon(db: &TestDb) -> Daemon {
    db.write_config(NOTIFICATIONS);
    Daemon::start(db)
}

/// The writer's statement that queues an alert, copied from `INSERT_ALERT` in
/// src/db/results.rs (keep the two alike): the snapshot is the target row as the database
/// holds it, its URL in the display form.
const INSERT_ALERT: &str = "INSERT INTO alerts (target_id, kind, snapshot, trace) \
    SELECT id, ?, JSON_OBJECT('id', id, 'name', name, 'tenantid', tenantid, 'enabled', enabled, \
    'status', status, 'previous_status', previous_status, 'status_description', status_description, \
    'last_updated', DATE_FORMAT(last_updated, '%Y-%m-%d %H:%i:%s'), 'url', ?, 'method', method, \
    'authn', authn, 'frequency', frequency, 'timeout', timeout, 'pass_result', pass_result, \
    'pass_count', pass_count, 'fail_count', fail_count, 'count200', count200, 'count300', count300, \
    'count400', count400, 'count500', count500, 'repeated_fails', repeated_fails, \
    'network_fails', network_fails, 'fail_threshold', fail_threshold, \
    'success_threshold', success_threshold, 'repeated_passes', repeated_passes, \
    'realert_minutes', realert_minutes, \
    'incident_started', (SELECT DATE_FORMAT(i.started, '%Y-%m-%d %H:%i:%s') FROM incidents i \
        WHERE i.open_target = targets.id), \
    'last_http_status', last_http_status, 'last_response_ms', last_response_ms, \
    'cert_expires_at', DATE_FORMAT(cert_expires_at, '%Y-%m-%d %H:%i:%s'), \
    'cert_issuer', cert_issuer), ? \
    FROM targets WHERE id = ?";

/// Queues an alert of `kind` (`FAILURE`, `SUCCESS`, ...) for `target` with plain SQL, as the
/// writer of any node does (the snapshot taken by the database).
pub fn queue_alert(db: &TestDb, target: u64, kind: &str, trace: &str) {
    use mysql::prelude::Queryable;
    let mut conn = db.conn();
    let url: String = conn
        .exec_first("SELECT url FROM targets WHERE id = ?", (target,))
        .unwrap()
        .expect("the alert's target");
    let shown = skypunch::urls::shown(&url);
    conn.exec_drop(INSERT_ALERT, (kind, shown, trace, target))
        .unwrap();
}

/// What `skypunch notifiers ID` says notifier `id` is owed: its `Pending Alerts`,
/// `Pending After Failed Tries` and `Last Error` fields.
pub fn owed_to(db: &TestDb, id: u64) -> (u64, u64, String) {
    let out = db.cli(&["notifiers", &id.to_string()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let field = |name: &str| common::field(&text, name);
    let number = |name: &str| field(name).parse().unwrap();
    (
        number("Pending Alerts"),
        number("Pending After Failed Tries"),
        field("Last Error"),
    )
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
