//! Alert storms for tests/it/storms.rs: many targets on one HTTP server of the test's own on
//! 127.0.0.1 ([`Upstream`]), which the test kills (its port then refuses connections, as a
//! dead server's does) and brings back on the same port; and what each kind of notifier
//! received, read back as the alerts its messages carry ([`Heard`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver as Queue};

use super::TestDb;

/// Threads answering the accepted connections.
const ANSWERERS: usize = 4;

/// A plain HTTP server answering every request `200 ok` and closing the connection, so that
/// when it is killed no connection outlives it.
pub struct Upstream {
    pub port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::listen(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn listen(listener: TcpListener) -> Upstream {
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<TcpStream>(1024);
        for _ in 0..ANSWERERS {
            let rx = rx.clone();
            std::thread::spawn(move || answer_all(&rx));
        }
        let flag = stop.clone();
        let acceptor = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = tx.send(s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener is dropped here: the port refuses from now on.
        });
        Upstream {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    /// Stops listening: every check from now on is refused.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            a.join().unwrap();
        }
    }

    /// Listens again on the same port (std sets SO_REUSEADDR, so the port is free at once).
    pub fn revive(&mut self) {
        assert!(self.acceptor.is_none(), "revive a killed server only");
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("listening again on {}: {e}", self.port));
        *self = Upstream::listen(listener);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

fn answer_all(rx: &Queue<TcpStream>) {
    for mut s in rx {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16_384 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
}

/// Inserts `n` targets `api-1` .. `api-N` checking `url` every `frequency` seconds with a
/// 1 s timeout.
pub fn add_targets(db: &TestDb, n: u32, url: &str, frequency: u32) {
    db.exec(&format!(
        "INSERT INTO targets (name, url, frequency, timeout) \
         SELECT CONCAT('api-', seq), '{url}', {frequency}, 1 FROM seq_1_to_{n}"
    ));
}

/// What one notifier received: per message, the targets it lists (by name for the mail,
/// whose group lists only the first 100 by name, by id elsewhere) and how many it says it
/// carries.
#[derive(Debug, Default, Clone)]
pub struct Heard {
    /// Per message: the count it says it carries, and its headline.
    pub messages: Vec<(usize, String)>,
    /// Target id (or mail: name) → times listed.
    pub listed: BTreeMap<String, usize>,
}

impl Heard {
    /// Alerts the messages say they carry.
    pub fn total(&self) -> usize {
        self.messages.iter().map(|(n, _)| n).sum()
    }

    /// Messages whose headline contains `word` (`FAILED`, `recovered`), each counting the
    /// alerts it says `word` of (`3 FAILED, 2 recovered` has 3 FAILED).
    pub fn saying(&self, word: &str) -> Heard {
        Heard {
            messages: self
                .messages
                .iter()
                .filter(|(_, h)| h.contains(word))
                .map(|(_, h)| (count_in(h, word), h.clone()))
                .collect(),
            listed: BTreeMap::new(),
        }
    }
}

fn count_in(headline: &str, word: &str) -> usize {
    headline
        .split(", ")
        .find(|part| part.contains(word))
        .map_or(0, count_of)
}

/// The count a grouped headline gives (`Skypunch: 2000 targets FAILED`): its first number.
fn count_of(headline: &str) -> usize {
    headline
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// The e-mails: a grouped one by its subject's count, a single one as one alert.
pub fn heard_by_mail(messages: &[serde_json::Value]) -> Heard {
    let mut heard = Heard::default();
    for m in messages {
        let subject = m["subject"].as_str().unwrap_or("").to_string();
        if let Some(headline) = subject.strip_prefix("Skypunch: ") {
            heard
                .messages
                .push((count_of(headline), headline.to_string()));
            let text = m["text"].as_str().unwrap_or("");
            for line in text.lines().filter(|l| l.contains(" (target ")) {
                let name = line.split_whitespace().nth(1).unwrap_or("").to_string();
                *heard.listed.entry(name).or_default() += 1;
            }
        } else {
            let kind = if subject.contains("SUCCESS") {
                "1 target recovered"
            } else {
                "1 target FAILED"
            };
            heard.messages.push((1, kind.into()));
            let name = subject.rsplit(' ').next().unwrap_or("").to_string();
            *heard.listed.entry(name).or_default() += 1;
        }
    }
    heard
}

/// The webhook POSTs: a grouped body's `alerts`, or a single alert's body.
pub fn heard_by_webhook(bodies: &[serde_json::Value]) -> Heard {
    let mut heard = Heard::default();
    for b in bodies {
        let alerts: Vec<serde_json::Value> = if b["kind"] == "GROUP" {
            heard.messages.push((
                b["group"]["count"].as_u64().unwrap() as usize,
                b["summary"].as_str().unwrap().to_string(),
            ));
            b["alerts"].as_array().unwrap().clone()
        } else {
            let kind = if b["kind"] == "SUCCESS" {
                "1 target recovered"
            } else {
                "1 target FAILED"
            };
            heard.messages.push((1, kind.into()));
            vec![b.clone()]
        };
        for a in alerts {
            *heard
                .listed
                .entry(a["target"]["id"].to_string())
                .or_default() += 1;
        }
    }
    heard
}

/// The Slack messages: a grouped one by its first line's count, a single one as one alert.
pub fn heard_by_slack(bodies: &[serde_json::Value]) -> Heard {
    let mut heard = Heard::default();
    for b in bodies {
        let text = b["text"].as_str().unwrap_or("");
        let first = text.lines().next().unwrap_or("");
        match first.strip_prefix("Skypunch: ") {
            Some(headline) => {
                let headline = headline.split(" <").next().unwrap_or("").to_string();
                heard.messages.push((count_of(&headline), headline));
            }
            None if first.starts_with("RECOVERED") => {
                heard.messages.push((1, "1 target recovered".into()))
            }
            None => heard.messages.push((1, "1 target FAILED".into())),
        }
    }
    heard
}
