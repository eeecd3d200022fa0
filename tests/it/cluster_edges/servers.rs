//! The test servers of the cluster edges: an HTTP server whose first answer on each path
//! comes late, and an SMTP tarpit.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP server whose first request on each path hangs for `delay` and then fails (503);
/// every later one passes (200) at once: a check that hangs across a hand-over.
pub(super) struct SlowFirst {
    port: u16,
    pub(super) hanging: Arc<AtomicU64>,
    pub(super) answered_late: Arc<AtomicU64>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl SlowFirst {
    /// The first request of each path hangs until [`SlowFirst::release`], at most `delay`.
    pub(super) fn start(delay: Duration) -> SlowFirst {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hanging = Arc::new(AtomicU64::new(0));
        let answered_late = Arc::new(AtomicU64::new(0));
        let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, a, r) = (hanging.clone(), answered_late.clone(), released.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (h, a, seen, r) = (h.clone(), a.clone(), seen.clone(), r.clone());
                std::thread::spawn(move || {
                    let Some(path) = request_path(&conn) else {
                        return;
                    };
                    let first = seen.lock().unwrap().insert(path);
                    let status = if first {
                        h.fetch_add(1, Ordering::SeqCst);
                        let until = std::time::Instant::now() + delay;
                        while !r.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    let mut conn = conn;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    if first {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        SlowFirst {
            port,
            hanging,
            answered_late,
            released,
        }
    }

    /// The hanging requests answer now.
    pub(super) fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The path of the request on `conn`, once its head is read.
fn request_path(conn: &TcpStream) -> Option<String> {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let path = first.split(' ').nth(1)?.to_string();
    let mut line = String::new();
    while reader.read_line(&mut line).ok()? > 0 && line != "\r\n" {
        line.clear();
    }
    Some(path)
}

/// An SMTP server that answers every step after `step` (under `SmtpTimeout`), with an EHLO
/// answer of `lines` lines: a conversation of dozens of round trips, each in time. Counts
/// the connections and the messages it received.
pub(super) struct Tarpit {
    pub(super) port: u16,
    pub(super) connections: Arc<AtomicU64>,
    pub(super) messages: Arc<AtomicU64>,
}

impl Tarpit {
    pub(super) fn start(step: Duration, lines: usize) -> Tarpit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let (c, m) = (connections.clone(), messages.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let m = m.clone();
                std::thread::spawn(move || {
                    let _ = converse(conn, step, lines, &m);
                });
            }
        });
        Tarpit {
            port,
            connections,
            messages,
        }
    }
}

fn converse(conn: TcpStream, step: Duration, lines: usize, messages: &AtomicU64) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut out = conn.try_clone().ok()?;
    let mut reader = BufReader::new(conn);
    let mut reply = |text: &str| -> Option<()> {
        std::thread::sleep(step);
        out.write_all(format!("{text}\r\n").as_bytes()).ok()
    };
    reply("220 tarpit ESMTP")?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return Some(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                for n in 0..lines {
                    reply(&format!("250-PAD{n}"))?;
                }
                reply("250 OK")?;
            }
            "DATA" => {
                reply("354 go on")?;
                let mut body = String::new();
                while body != ".\r\n" {
                    body.clear();
                    if reader.read_line(&mut body).ok()? == 0 {
                        return Some(());
                    }
                }
                messages.fetch_add(1, Ordering::SeqCst);
                reply("250 queued")?;
            }
            "QUIT" => return reply("221 bye"),
            _ => reply("250 OK")?,
        }
    }
}
