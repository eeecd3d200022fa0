//! nginx asking for client certificates (`ssl_verify_client on`), for the mutual TLS tests:
//! a private CA, the server's certificate for 127.0.0.1 and localhost, a client certificate
//! and key it accepts (also in one file), and one from another CA it refuses, all as PEM files
//! a target's `ca_file`, `client_cert` and `client_key` can name. Runs in the foreground on a
//! free port of 127.0.0.1, its files in the test's folder; stopped when dropped.

#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx that answers `200 mtls ok CN=<client>` to a request with a client
/// certificate its CA signed, and 400 to any other.
pub struct MtlsServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// The CA that signed the server's and the client's certificates: a target's `ca_file`.
    pub ca: PathBuf,
    /// The client's certificate and key, in two files and in one.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_both: PathBuf,
    /// A client certificate and key from a CA nginx does not trust.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

/// The nginx binary: on the PATH, or where Debian puts it (not on a user's PATH).
fn nginx() -> PathBuf {
    let on_path = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if on_path {
        return PathBuf::from("nginx");
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    assert!(
        debian.exists(),
        "no nginx, the mutual TLS tests' server: run the tests with scripts/test, which \
         installs it"
    );
    debian
}

struct Issued {
    cert: String,
    key: String,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn issue(names: &[&str], cn: &str, by: &(rcgen::Certificate, rcgen::KeyPair)) -> Issued {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &by.0, &by.1).unwrap();
    Issued {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

impl MtlsServer {
    /// Starts nginx with its files in `dir` (a folder of the test's own).
    pub fn start(dir: &Path) -> MtlsServer {
        let dir = dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let authority = ca("skypunch test mTLS CA");
        let server = issue(&["127.0.0.1", "localhost"], "localhost", &authority);
        let client = issue(&[], "skypunch-client", &authority);
        let stranger = issue(&[], "stranger", &ca("another CA"));
        let ca_path = write("ca.pem", &authority.0.pem());
        write("server.pem", &server.cert);
        write("server-key.pem", &server.key);
        // nginx takes a port number: one free a moment ago, tried again if another process
        // took it in between.
        let (child, port) = (0..5)
            .find_map(|_| {
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                run(&dir, port).map(|child| (child, port))
            })
            .unwrap_or_else(|| panic!("nginx did not start: see {}/error.log", dir.display()));
        MtlsServer {
            child,
            port,
            ca: ca_path,
            client_cert: write("client.pem", &client.cert),
            client_key: write("client-key.pem", &client.key),
            client_both: write("client-both.pem", &format!("{}{}", client.cert, client.key)),
            stranger_cert: write("stranger.pem", &stranger.cert),
            stranger_key: write("stranger-key.pem", &stranger.key),
            dir,
        }
    }

    /// `https://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The access log: one line per request, `ADDR "REQUEST" STATUS "CLIENT DN"`.
    pub fn access_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("access.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for MtlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving from `dir` on `port`, or `None` when it exited (the port was taken).
fn run(dir: &Path, port: u16) -> Option<Child> {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         log_format mtls '$remote_addr \"$request\" $status \"$ssl_client_s_dn\"';\n\
         access_log {d}/access.log mtls;\n\
         client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {d}/server.pem;\n\
         ssl_certificate_key {d}/server-key.pem;\n ssl_client_certificate {d}/ca.pem;\n\
         ssl_verify_client on;\n location / {{ default_type text/plain;\n\
         return 200 \"mtls ok $ssl_client_s_dn\\n\"; }}\n}}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(nginx())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        assert!(Instant::now() < until, "nginx not listening after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
