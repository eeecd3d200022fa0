//! The HTTP(S) server the targets point at: nginx with a private config (installed from
//! Debian's packages when absent), or small built-in server threads for the smoke runs.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::tls::Pki;
use super::{procfs, Error};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until something accepts connections on the port.
pub fn wait_for_port(port: u16, limit: Duration, what: &str) -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not listen on 127.0.0.1:{port} within {limit:?}"
    ))
}

/// Finds a program on PATH or in the sbin folders, installing the Debian package when absent.
pub fn find_or_install(program: &str, packages: &[&str]) -> Result<PathBuf, Error> {
    let find = || {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/bin"])
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file());
        found
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .map_err(|e| format!("cannot run apt-get: {e}"))
    };
    // A fresh machine has no package lists yet: the first failed install reads them once.
    let mut updated = false;
    for package in packages {
        eprintln!("skypunch-bench: {program} is absent: installing Debian package {package}");
        let install = ["install", "-y", "--no-install-recommends", package];
        let mut installed = apt(&install)?;
        if !installed && !updated {
            updated = true;
            installed = apt(&["update", "-qq"])? && apt(&install)?;
        }
        if installed {
            if let Some(p) = find() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "{program} is not installed and apt-get could not install {}: install it and run again",
        packages.join(" or ")
    ))
}

/// A running HTTP target: plain HTTP on `port` (`/` answers 200, `/500` answers 500) and,
/// with `--tls`, HTTPS on `tls_port` with the run's certificate.
pub enum Server {
    Nginx {
        child: Child,
        port: u16,
        tls_port: Option<u16>,
    },
    Builtin {
        plain: Builtin,
        tls: Option<Builtin>,
    },
}

impl Server {
    pub fn port(&self) -> u16 {
        match self {
            Server::Nginx { port, .. } => *port,
            Server::Builtin { plain, .. } => plain.port,
        }
    }

    pub fn tls_port(&self) -> Option<u16> {
        match self {
            Server::Nginx { tls_port, .. } => *tls_port,
            Server::Builtin { tls, .. } => tls.as_ref().map(|b| b.port),
        }
    }

    /// The nginx master's pid (its workers are its children); None for the built-in server,
    /// whose CPU is the bench tool's own.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Server::Nginx { child, .. } => Some(child.id()),
            Server::Builtin { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Server::Nginx {
                tls_port: Some(_), ..
            } => "nginx (2 workers, private config, HTTPS without session cache or tickets)".into(),
            Server::Nginx { .. } => "nginx (2 workers, private config)".into(),
            Server::Builtin { tls: Some(_), .. } => {
                "built-in HTTP and HTTPS servers (rustls, no resumption; 8 threads each)".into()
            }
            Server::Builtin { .. } => "built-in HTTP server (8 threads)".into(),
        }
    }

    /// Starts nginx in the foreground (`daemon off`) with a config of its own in `dir`; with
    /// `pki`, a second server block serves HTTPS with its certificate, without a session
    /// cache or tickets, so that every connection is a full handshake.
    pub fn nginx(dir: &Path, pki: Option<&Pki>) -> Result<Server, Error> {
        Server::nginx_on(dir, pki, free_port()?)
    }

    /// [`Server::nginx`] with its plain HTTP on `port`.
    fn nginx_on(dir: &Path, pki: Option<&Pki>, port: u16) -> Result<Server, Error> {
        let nginx = find_or_install("nginx", &["nginx-light", "nginx"])?;
        let tls_port = pki.map(|_| free_port()).transpose()?;
        let d = dir.display();
        let locations = "location / { default_type text/plain; return 200 \"ok\"; }\n    \
                         location = /500 { default_type text/plain; return 500 \"failing\"; }";
        let tls_block = match (pki, tls_port) {
            (Some(pki), Some(tls)) => format!(
                "  server {{\n    listen 127.0.0.1:{tls} ssl backlog=4096;\n    \
                 ssl_certificate {};\n    ssl_certificate_key {};\n    \
                 ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache off;\n    \
                 ssl_session_tickets off;\n    {locations}\n  }}\n",
                pki.cert_pem.display(),
                pki.key_pem.display()
            ),
            _ => String::new(),
        };
        let conf = format!(
            "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n  client_body_temp_path {d}/nginx-body;\n\
               server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    {locations}\n  }}\n{tls_block}}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let child = Command::new(&nginx)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", nginx.display()))?;
        let server = Server::Nginx {
            child,
            port,
            tls_port,
        };
        wait_for_port(port, Duration::from_secs(10), "nginx")?;
        if let Some(tls) = tls_port {
            wait_for_port(tls, Duration::from_secs(10), "nginx (HTTPS)")?;
        }
        Ok(server)
    }

    pub fn builtin(pki: Option<&Pki>) -> Result<Server, Error> {
        let tls = match pki {
            Some(p) => Some(Builtin::start(Some(p.server_config()?))?),
            None => None,
        };
        Ok(Server::Builtin {
            plain: Builtin::start(None)?,
            tls,
        })
    }

    /// Stops the server and waits for it.
    pub fn stop(self) {
        match self {
            Server::Nginx { mut child, .. } => {
                // SIGQUIT: nginx's graceful stop.
                // SAFETY: kill with a pid we started and a valid signal number.
                unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
                let _ = child.wait();
            }
            Server::Builtin { plain, tls } => {
                plain.stop();
                if let Some(t) = tls {
                    t.stop();
                }
            }
        }
    }

    /// Kills the plain HTTP server as a crash would: SIGKILL to nginx's master and workers at
    /// once (a worker outliving its master would go on serving), or the built-in threads
    /// stopped. Returns once its port refuses connections; the port, for [`Server::revive`].
    pub fn kill(self) -> Result<u16, Error> {
        let port = self.port();
        match self {
            Server::Nginx { mut child, .. } => {
                let workers = procfs::children(child.id());
                for pid in std::iter::once(child.id()).chain(workers) {
                    // SAFETY: kill with pids of our nginx and a valid signal number.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                let _ = child.wait();
            }
            Server::Builtin { plain, tls } => {
                plain.stop();
                if let Some(t) = tls {
                    t.stop();
                }
            }
        }
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "127.0.0.1:{port} still accepts 10 s after the kill"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(port)
    }

    /// The same kind of plain HTTP server, started again on `port`.
    pub fn revive(kind: super::args::ServerKind, dir: &Path, port: u16) -> Result<Server, Error> {
        match kind {
            super::args::ServerKind::Nginx => Server::nginx_on(dir, None, port),
            super::args::ServerKind::Builtin => Ok(Server::Builtin {
                plain: Builtin::start_on(None, port)?,
                tls: None,
            }),
        }
    }

    /// CPU seconds of the server (nginx master and workers); None for the built-in one.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid().and_then(procfs::tree_cpu_seconds)
    }
}

/// Threads answering every request (`/500`: 500, else 200) and closing the connection;
/// over TLS when given a configuration.
pub struct Builtin {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Each thread serves one connection at a time and, over TLS, waits for the client's next
/// flight: on a loaded CI machine two threads made handshakes queue for seconds.
const BUILTIN_THREADS: usize = 8;

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const FAILING: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
    Content-Length: 7\r\nConnection: close\r\n\r\nfailing";

impl Builtin {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Result<Builtin, Error> {
        Builtin::start_on(tls, 0)
    }

    /// Listens on `port` (0: any free one).
    fn start_on(tls: Option<Arc<rustls::ServerConfig>>, port: u16) -> Result<Builtin, Error> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("built-in server on port {port}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..BUILTIN_THREADS {
            let l = listener.try_clone().map_err(|e| e.to_string())?;
            let (stop, tls) = (stop.clone(), tls.clone());
            let t = std::thread::Builder::new()
                .name(format!("bench-http-{n}"))
                .spawn(move || serve(l, &stop, tls))
                .map_err(|e| e.to_string())?;
            threads.push(t);
        }
        Ok(Builtin {
            port,
            stop,
            threads,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake each thread blocked in accept.
        for _ in &self.threads {
            let _ = TcpStream::connect(("127.0.0.1", self.port));
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, tls: Option<Arc<rustls::ServerConfig>>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        match &tls {
            None => {
                let mut conn = conn;
                answer(&mut conn);
                let _ = conn.shutdown(Shutdown::Write);
            }
            Some(config) => {
                let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut stream = rustls::StreamOwned::new(session, conn);
                answer(&mut stream);
                stream.conn.send_close_notify();
                let _ = stream.flush();
                let _ = stream.sock.shutdown(Shutdown::Write);
            }
        }
    }
}

/// Reads the request head (the targets send GET without a body) and answers it.
pub fn answer(conn: &mut (impl Read + Write)) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let response = if seen.starts_with(b"GET /500 ") {
        FAILING
    } else {
        OK
    };
    let _ = conn.write_all(response);
}
