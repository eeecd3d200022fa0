//! A small HTTP server on 127.0.0.1 (or another address of this machine, such as a test
//! network's bridge: see `netns`) for the tests to point targets at. Its answer can be
//! changed while it runs, and it counts the requests it got.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct HttpServer {
    pub port: u16,
    host: String,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Starts a server answering `status` to every request.
    pub fn start(status: u16) -> HttpServer {
        HttpServer::start_on("127.0.0.1", status)
    }

    /// Starts a server on `host` (an address of this machine) answering `status`.
    pub fn start_on(host: &str, status: u16) -> HttpServer {
        let listener = TcpListener::bind((host, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = HttpServer {
            port,
            host: host.to_string(),
            status: Arc::new(AtomicU16::new(status)),
            requests: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (st, rq, stop) = (s.status.clone(), s.requests.clone(), s.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let (st, rq) = (st.clone(), rq.clone());
                    std::thread::spawn(move || answer(conn, &st, &rq));
                }
            }
        });
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.host, self.port, path)
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.host.as_str(), self.port));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn answer(mut conn: TcpStream, status: &AtomicU16, requests: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let status = status.load(Ordering::SeqCst);
    let body = format!("status {status}\n");
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
}
