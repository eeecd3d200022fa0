//! The notifiers' far ends for `--storm`, threads of the bench tool on 127.0.0.1: a tiny
//! SMTP server that accepts every message ([`SmtpSink`]) and an HTTP receiver that answers
//! every POST 200 ([`HttpSink`], the webhook and Slack notifiers). Each records when every
//! message arrived and which alerts it carried, as the message itself says.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Error;

/// One message as a sink saw it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub at: Instant,
    /// The grouped headline (`2000 targets FAILED`, `3 FAILED, 2 recovered`), or for a
    /// single alert `1 target FAILED` or `1 target recovered`.
    pub headline: String,
    /// The target ids it lists (the webhook lists every one; the others list none here).
    pub targets: Vec<u64>,
    pub bytes: usize,
}

/// What a sink received so far, shared with its threads.
pub type Log = Arc<Mutex<Vec<Heard>>>;

/// Messages a connection may carry, and the largest one read: bounds for a bench tool.
const MAX_MESSAGE: usize = 64 << 20;

/// An SMTP server that says yes to everything (no TLS, no login).
pub struct SmtpSink {
    pub port: u16,
    pub log: Log,
}

impl SmtpSink {
    pub fn start() -> Result<SmtpSink, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("SMTP sink: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let log: Log = Arc::default();
        let shared = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = shared.clone();
                std::thread::spawn(move || {
                    let _ = smtp_session(conn, &log);
                });
            }
        });
        Ok(SmtpSink { port, log })
    }
}

fn smtp_session(conn: TcpStream, log: &Log) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    out.write_all(b"220 bench-sink ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-bench-sink\r\n250 8BITMIME\r\n")?,
            "DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut reader)?;
                log.lock().unwrap().push(mail(&data));
                out.write_all(b"250 accepted\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"250 ok\r\n")?,
        }
    }
}

/// The message up to the lone `.` line.
fn read_data(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line == b".\r\n" {
            return Ok(data);
        }
        if data.len() < MAX_MESSAGE {
            data.extend_from_slice(&line);
        }
    }
}

/// A mail's headline and count from its subject: `Skypunch: 2000 targets FAILED` (a group),
/// else one alert.
fn mail(data: &[u8]) -> Heard {
    let text = String::from_utf8_lossy(data);
    let subject = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .to_string();
    let headline = match subject.strip_prefix("Skypunch: ") {
        Some(h) => h.to_string(),
        None => single_kind(&subject).into(),
    };
    Heard {
        at: Instant::now(),
        headline,
        targets: Vec::new(),
        bytes: data.len(),
    }
}

fn single_kind(text: &str) -> &'static str {
    if text.contains("SUCCESS") || text.starts_with("RECOVERED") {
        "1 target recovered"
    } else {
        "1 target FAILED"
    }
}

/// An HTTP server answering every request 200 and closing the connection.
pub struct HttpSink {
    pub port: u16,
    /// Per path the messages that came.
    pub log: Arc<Mutex<Vec<(String, Heard)>>>,
}

impl HttpSink {
    pub fn start() -> Result<HttpSink, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("HTTP sink: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let log: Arc<Mutex<Vec<(String, Heard)>>> = Arc::default();
        let shared = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = shared.clone();
                std::thread::spawn(move || {
                    if let Ok((path, heard)) = http_request(conn) {
                        log.lock().unwrap().push((path, heard));
                    }
                });
            }
        });
        Ok(HttpSink { port, log })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The messages that came to `path`.
    pub fn at(&self, path: &str) -> Vec<Heard> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

fn http_request(conn: TcpStream) -> std::io::Result<(String, Heard)> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(MAX_MESSAGE)];
    reader.read_exact(&mut body)?;
    let at = Instant::now();
    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")?;
    Ok((path, hook(&body, at)))
}

/// A webhook or Slack body's headline and targets.
fn hook(body: &[u8], at: Instant) -> Heard {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let (headline, targets) = if v["kind"] == "GROUP" {
        let targets: BTreeSet<u64> = v["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["target"]["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        (
            v["summary"].as_str().unwrap_or("").to_string(),
            targets.into_iter().collect(),
        )
    } else if let Some(text) = v["text"].as_str() {
        let first = text.lines().next().unwrap_or("");
        match first.strip_prefix("Skypunch: ") {
            Some(h) => (h.split(" <").next().unwrap_or("").to_string(), Vec::new()),
            None => (single_kind(first).into(), Vec::new()),
        }
    } else {
        let kind = v["kind"].as_str().unwrap_or("");
        let targets = v["target"]["id"].as_u64().into_iter().collect();
        (single_kind(kind).into(), targets)
    };
    Heard {
        at,
        headline,
        targets,
        bytes: body.len(),
    }
}
