//! Failures confirmed from a second node, as the on-call person meets them: two daemons on
//! one database, each checking from its own loopback address (`[settings] SourceAddress`
//! 127.0.0.1 and 127.0.0.2), and a target whose server answers 503 to one address only or to
//! both. A failure only its owner sees is recorded `unconfirmed` and pages nobody, its
//! recovery neither; one both see pages once, the mail holding both checks' traces and the
//! confirming node's name; a request nobody answers goes out after its bound, saying why;
//! one whose node was killed is settled once by the other.
//! Real SMTP (aiosmtpd) and HTTP servers on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::notify::{mail_notifier, SmtpOptions, SmtpServer};
use crate::support::{field, stdout, wait_for, Daemon, TestDb};

/// One daemon of two on the test's database, its checks connecting from `source`.
fn node(db: &TestDb, name: &str, source: &str) -> Daemon {
    crate::support::daemon::node(db, name, &format!("SourceAddress: {source}"), &[])
}

const WAIT: Duration = Duration::from_secs(60);
const NOTIFY: &str = "[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\nRetryMax: 1\n";

/// Who the test server answers 503: nobody, one source address, or everybody.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refuse {
    Nobody,
    From(IpAddr),
    Everybody,
}

/// An HTTP server on 127.0.0.1 that answers 200, or 503 to the peers it is told to refuse:
/// what a target behind a broken route looks like from one node and not from another.
struct PickyServer {
    port: u16,
    refuse: Arc<Mutex<Refuse>>,
    stop: Arc<AtomicBool>,
}

impl PickyServer {
    fn start() -> PickyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refuse = Arc::new(Mutex::new(Refuse::Nobody));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (refuse.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let refuse = *r.lock().unwrap();
                    std::thread::spawn(move || answer(conn, refuse));
                }
            }
        });
        PickyServer { port, refuse, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn refuse(&self, who: Refuse) {
        *self.refuse.lock().unwrap() = who;
    }
}

impl Drop for PickyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(mut conn: TcpStream, refuse: Refuse) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let peer = conn.peer_addr().map(|a| a.ip()).ok();
    let refused = match refuse {
        Refuse::Nobody => false,
        Refuse::From(ip) => peer == Some(ip),
        Refuse::Everybody => true,
    };
    let status = if refused {
        "503 Service Unavailable"
    } else {
        "200 OK"
    };
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    let _ = conn.write_all(response.as_bytes());
}

fn node_log(db: &TestDb, name: &str) -> String {
    std::fs::read_to_string(db.dir.join(format!("{name}.log"))).unwrap_or_default()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.one(sql)
}

fn wait_count(db: &TestDb, what: &str, sql: &str, want: impl Fn(i64) -> bool) {
    wait_for(WAIT, what, || want(count(db, sql)).then_some(()));
}

/// Two nodes sharing one target on a picky server, both active and the target up; the name
/// of the node that checks it, and of the other, with their source addresses.
struct Pair {
    db: TestDb,
    smtp: SmtpServer,
    web: PickyServer,
    id: u64,
    daemons: Vec<Daemon>,
    owner: (&'static str, IpAddr),
    other: &'static str,
}

impl Pair {
    fn start() -> Pair {
        let db = TestDb::new();
        let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
        mail_notifier(&db, "ops", smtp.port);
        let web = PickyServer::start();
        let id = db.add_watched("api", &web.url());
        db.write_config(&format!("StatsInterval: 0\n{NOTIFY}"));
        let daemons = vec![
            node(&db, "mon-1", "127.0.0.1"),
            node(&db, "mon-2", "127.0.0.2"),
        ];
        wait_count(
            &db,
            "both nodes active",
            "SELECT COUNT(*) FROM nodes WHERE state = 'active'",
            |n| n == 2,
        );
        wait_count(
            &db,
            "the target up",
            &format!("SELECT COUNT(*) FROM targets WHERE id = {id} AND status = 'PASS'"),
            |n| n == 1,
        );
        let shown = stdout(&db.cli(&["targets", &id.to_string()]));
        let by = field(&shown, "Checked By");
        let (owner, other) = if by.starts_with("mon-1 ") {
            (("mon-1", "127.0.0.1".parse().unwrap()), "mon-2")
        } else {
            assert!(by.starts_with("mon-2 "), "{by}");
            (("mon-2", "127.0.0.2".parse().unwrap()), "mon-1")
        };
        assert!(by.ends_with("(of 2 live nodes)"), "{by}");
        Pair {
            db,
            smtp,
            web,
            id,
            daemons,
            owner,
            other,
        }
    }

    fn stop(self) -> (TestDb, SmtpServer) {
        for d in self.daemons {
            d.terminate(WAIT);
        }
        (self.db, self.smtp)
    }
}

#[test]
fn a_failure_only_its_owner_sees_is_recorded_unconfirmed_and_pages_nobody() {
    let p = Pair::start();
    let (db, id) = (&p.db, p.id);
    let (owner, owner_ip) = p.owner;
    p.web.refuse(Refuse::From(owner_ip));
    let unconfirmed = format!(
        "SELECT COUNT(*) FROM incidents WHERE target_id = {id} AND ended IS NULL \
         AND unconfirmed = 1 AND alerted = 0"
    );
    wait_count(db, "the incident recorded unconfirmed", &unconfirmed, |n| {
        n == 1
    });
    // It is asked again at each failing check: the first of them was not a fluke.
    wait_count(
        db,
        "a second request answered",
        "SELECT COUNT(*) FROM confirmations WHERE state = 'UNCONFIRMED'",
        |n| n >= 2,
    );
    let answers: Vec<(String, String, String, String)> = db.query(
        "SELECT requested_by, claimed_by, answer, note FROM confirmations \
         WHERE state = 'UNCONFIRMED' ORDER BY id LIMIT 1",
    );
    assert_eq!(
        answers[0],
        (
            owner.to_string(),
            p.other.to_string(),
            "PASS".to_string(),
            format!("node {} found it up", p.other)
        )
    );
    let shown = stdout(&db.cli(&["targets", &id.to_string()]));
    assert!(field(&shown, "Alerts").contains("confirm"), "{shown}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(p.smtp.messages().is_empty(), "{:?}", p.smtp.messages());
    assert_eq!(count(db, "SELECT COUNT(*) FROM alerts"), 0);

    p.web.refuse(Refuse::Nobody);
    wait_count(
        db,
        "the incident closed",
        &format!("SELECT COUNT(*) FROM incidents WHERE target_id = {id} AND ended IS NULL"),
        |n| n == 0,
    );
    wait_count(
        db,
        "no request left pending",
        "SELECT COUNT(*) FROM confirmations WHERE state = 'PENDING'",
        |n| n == 0,
    );
    std::thread::sleep(Duration::from_secs(3));
    let history = stdout(&db.cli(&["targets", &id.to_string(), "history"]));
    assert!(history.contains("No (unconfirmed)"), "{history}");
    let (db, smtp) = p.stop();
    assert!(smtp.messages().is_empty(), "no recovery either");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM alerts"), 0);
    let closed = format!(
        "SELECT COUNT(*) FROM incidents WHERE target_id = {id} AND unconfirmed = 1 \
         AND alerted = 0 AND ended IS NOT NULL"
    );
    assert_eq!(count(&db, &closed), 1);
    let other = if owner == "mon-1" { "mon-2" } else { "mon-1" };
    let log = node_log(&db, owner);
    assert!(
        log.contains(&format!(
            "[{id}] FAILURE not confirmed: node {other} found it up; recorded as \
             unconfirmed, nobody paged"
        )),
        "{log}"
    );
    let log = node_log(&db, other);
    assert!(
        log.contains(&format!("confirm: for node {owner}: [{id}] api ")),
        "{log}"
    );
}

#[test]
fn a_failure_both_nodes_see_pages_once_with_both_checks_traces() {
    let p = Pair::start();
    let (db, id) = (&p.db, p.id);
    let (owner, _) = p.owner;
    p.web.refuse(Refuse::Everybody);
    let got = p.smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for api");
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("-- the check from node {owner} failed:")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "-- confirmed: the same check from node {} at once failed too:",
            p.other
        )),
        "{text}"
    );
    // Both checks' traces, each with the answer it got.
    let (first, second) = text.split_once("-- confirmed:").unwrap();
    let first = first.split_once("-- the check from node").unwrap().1;
    assert!(first.contains("503") && second.contains("503"), "{text}");
    let confirmed = "SELECT COUNT(*) FROM confirmations WHERE state = 'CONFIRMED'";
    assert_eq!(count(db, confirmed), 1);
    // The target keeps failing: no second page.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(p.smtp.messages().len(), 1);
    let paged = format!(
        "SELECT COUNT(*) FROM incidents WHERE target_id = {id} AND ended IS NULL \
         AND alerted = 1 AND unconfirmed = 0"
    );
    assert_eq!(count(db, &paged), 1);

    p.web.refuse(Refuse::Nobody);
    let got = p.smtp.wait_messages(2);
    assert_eq!(got[1]["subject"], "Skypunch SUCCESS detected for api");
    std::thread::sleep(Duration::from_secs(2));
    let (_db, smtp) = p.stop();
    assert_eq!(smtp.messages().len(), 2, "each once");
}

/// A node row the test keeps beating for a daemon that never answers.
struct Ghost {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ghost {
    fn start(db: &TestDb) -> Ghost {
        db.exec(
            "INSERT INTO nodes (name, epoch, host, pid, state) VALUES ('ghost', 1, 'nowhere', 1, \
             'active')",
        );
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let mut conn = db.conn();
        let thread = std::thread::spawn(move || {
            use mysql::prelude::Queryable;
            while !s.load(Ordering::SeqCst) {
                let _ = conn.query_drop("UPDATE nodes SET heartbeat = NOW(3) WHERE name = 'ghost'");
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Ghost {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ghost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_request_nobody_answers_goes_out_after_its_bound_saying_why() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let web = PickyServer::start();
    web.refuse(Refuse::Everybody);
    // A live peer that takes nothing: the failures this node asks it to confirm expire.
    let _ghost = Ghost::start(&db);
    for n in 1..=6 {
        db.add_watched(&format!("api-{n}"), &web.url());
    }
    db.write_config(&format!(
        "StatsInterval: 0\n{NOTIFY}[cluster]\nNodeName: mon-1"
    ));
    let daemon = Daemon::start(&db);
    wait_count(
        &db,
        "a request",
        "SELECT COUNT(*) FROM confirmations",
        |n| n >= 1,
    );
    let asked = Instant::now();
    let got = smtp.wait_messages(1);
    let waited = asked.elapsed();
    // 5 s plus the target's timeout of 2 s, and the others' looks.
    assert!(waited >= Duration::from_secs(5), "sent after {waited:?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.contains("-- not confirmed by a second node: no node took it within 7 s"),
        "{text}"
    );
    let log = db.log();
    assert!(
        log.contains("FAILURE sent without confirmation: no node took it within 7 s"),
        "{log}"
    );
    daemon.terminate(WAIT);
    let failing = count(&db, "SELECT COUNT(*) FROM targets WHERE status = 'FAIL'");
    assert!(failing >= 1);
    let sent = "SELECT COUNT(*) FROM confirmations WHERE state = 'NOT_CONFIRMED'";
    assert!(count(&db, sent) >= 1);
}

#[test]
fn a_lone_node_pages_at_once_without_asking() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let web = PickyServer::start();
    web.refuse(Refuse::Everybody);
    db.add_watched("api", &web.url());
    db.write_config(&format!("StatsInterval: 0\n{NOTIFY}"));
    let daemon = Daemon::start(&db);
    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for api");
    let text = got[0]["text"].as_str().unwrap();
    assert!(!text.contains("-- the check from node"), "as today: {text}");
    daemon.terminate(WAIT);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM confirmations"), 0);
}

#[test]
fn a_request_of_a_node_killed_meanwhile_is_settled_once_by_the_other() {
    let mut p = Pair::start();
    let id = p.id;
    let (owner, _) = p.owner;
    p.web.refuse(Refuse::Everybody);
    wait_count(
        &p.db,
        "a request",
        "SELECT COUNT(*) FROM confirmations",
        |n| n >= 1,
    );
    // The node that asked dies before it can settle its request (most likely: settling takes
    // the other's look, its check and the asker's look): the other settles it once it is past
    // its deadline by DeadAfter, and takes the target over knowing its FAILURE is owed.
    let at = if owner == "mon-1" { 0 } else { 1 };
    p.daemons.remove(at).kill();
    let got = p.smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for api");
    wait_count(
        &p.db,
        "the survivor checking the target",
        &format!("SELECT COUNT(*) FROM targets WHERE id = {id} AND status = 'FAIL'"),
        |n| n == 1,
    );
    // DeadAfter and more: the survivor has long taken the target over.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(p.smtp.messages().len(), 1, "paged once");
    let pending = "SELECT COUNT(*) FROM confirmations WHERE state = 'PENDING'";
    assert_eq!(count(&p.db, pending), 0, "settled");
    assert_eq!(
        count(&p.db, "SELECT COUNT(*) FROM confirmations"),
        1,
        "asked once"
    );
    let (db, _) = p.stop();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM alerts"), 1);
}
