//! Tiny HTTP(S) servers on 127.0.0.1 for the check tests: each connection is handled on its
//! own thread by a closure that reads the parsed request and writes raw bytes back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use skypunch::Target;

/// A request as the server saw it; header names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub type Handler = dyn Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync;

/// A running server: its address and every request it received.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn last(&self) -> Request {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

/// Serves plain HTTP with `handler`.
pub fn serve(
    handler: impl Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
) -> Server {
    start(None, Arc::new(handler))
}

/// Serves plain HTTP with `handler` on `[::1]` only: a host with no IPv4 address.
pub fn serve_v6(
    handler: impl Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
) -> Server {
    start_on("[::1]:0", None, Arc::new(handler))
}

/// Serves HTTPS with a fresh self-signed certificate for `localhost` and 127.0.0.1.
pub fn serve_tls(
    handler: impl Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
) -> Server {
    start(Some(tls_config()), Arc::new(handler))
}

/// Serves HTTPS with a certificate for `localhost` signed by a fresh private CA; gives the
/// CA's certificate in PEM as well (what a target's `ca_file` holds).
pub fn serve_tls_private_ca(
    handler: impl Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
) -> (Server, String) {
    serve_tls_private_ca_until(None, handler)
}

/// As [`serve_tls_private_ca`], the certificate expiring at the start of the UTC day `days`
/// from today (rcgen's default, far off, when `None`).
pub fn serve_tls_private_ca_until(
    days: Option<i64>,
    handler: impl Fn(&Request, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
) -> (Server, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "skypunch test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    if let Some(days) = days {
        use chrono::Datelike;
        let day = chrono::Utc::now().date_naive() + chrono::Days::new(days as u64);
        leaf_params.not_after =
            rcgen::date_time_ymd(day.year(), day.month() as u8, day.day() as u8);
    }
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (start(Some(Arc::new(config)), Arc::new(handler)), ca.pem())
}

/// Answers every request with `status` and `body`.
pub fn respond(status: &'static str, body: &'static str) -> Server {
    serve(move |_, w| write_response(w, status, &[], body.as_bytes()))
}

pub fn write_response(
    w: &mut dyn Write,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Server {
    start_on("127.0.0.1:0", tls, handler)
}

fn start_on(bind: &str, tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Server {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (reqs, conns) = (requests.clone(), connections.clone());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            conns.fetch_add(1, Ordering::SeqCst);
            let (handler, reqs, tls) = (handler.clone(), reqs.clone(), tls.clone());
            thread::spawn(move || {
                let _ = handle(stream, tls, &*handler, &reqs);
            });
        }
    });
    Server {
        addr,
        requests,
        connections,
    }
}

fn handle(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    reqs: &Mutex<Vec<Request>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        None => {
            let mut reader = BufReader::new(stream.try_clone()?);
            let request = read_request(&mut reader)?;
            reqs.lock().unwrap().push(request.clone());
            let mut stream = stream;
            handler(&request, &mut stream)
        }
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let request = read_request(&mut BufReader::new(&mut tls))?;
            reqs.lock().unwrap().push(request.clone());
            handler(&request, &mut tls)?;
            tls.conn.send_close_notify();
            tls.flush()
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

/// A target with the defaults of a new row, checking `url` with a 2 s timeout.
pub fn target(url: &str) -> Target {
    Target {
        name: "test".into(),
        frequency: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
        ..Target::new(1, url)
    }
}

/// A port on 127.0.0.1 that refuses connections for as long as this lives: a socket bound to
/// it but not listening. Unlike a port taken from a listener and let go, no other test
/// running at the same time can be handed it.
pub struct ClosedPort {
    fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor this function owns; the address structs
        // are zeroed and sized as the calls expect.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let sa = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(libc::bind(raw, sa, len), 0, "bind");
            let mut got_len = len;
            assert_eq!(libc::getsockname(raw, sa, &mut got_len), 0, "getsockname");
            ClosedPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }
}

impl std::fmt::Debug for ClosedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClosedPort({}, {:?})", self.port, self.fd)
    }
}
