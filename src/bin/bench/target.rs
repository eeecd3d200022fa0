//! The HTTP server the targets point at: nginx with a private config (installed from
//! Debian's packages when absent), or a small built-in server thread for the smoke run.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    for package in packages {
        eprintln!("skypunch-bench: {program} is absent: installing Debian package {package}");
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run apt-get to install {package}: {e}"))?;
        if status.success() {
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

/// A running HTTP target.
pub enum Server {
    Nginx { child: Child, port: u16 },
    Builtin(Builtin),
}

impl Server {
    pub fn port(&self) -> u16 {
        match self {
            Server::Nginx { port, .. } => *port,
            Server::Builtin(b) => b.port,
        }
    }

    /// The nginx master's pid (its workers are its children); None for the built-in server,
    /// whose CPU is the bench tool's own.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Server::Nginx { child, .. } => Some(child.id()),
            Server::Builtin(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Server::Nginx { .. } => "nginx (2 workers, private config)".into(),
            Server::Builtin(_) => "built-in HTTP server (2 threads)".into(),
        }
    }

    /// Starts nginx in the foreground (`daemon off`) with a config of its own in `dir`.
    pub fn nginx(dir: &Path) -> Result<Server, Error> {
        let nginx = find_or_install("nginx", &["nginx-light", "nginx"])?;
        let port = free_port()?;
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 0;\n  client_body_temp_path {d}/nginx-body;\n\
               server {{\n    listen 127.0.0.1:{port} backlog=4096;\n\
                 location / {{ default_type text/plain; return 200 \"ok\"; }}\n  }}\n}}\n"
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
        let server = Server::Nginx { child, port };
        wait_for_port(port, Duration::from_secs(10), "nginx")?;
        Ok(server)
    }

    pub fn builtin() -> Result<Server, Error> {
        Builtin::start().map(Server::Builtin)
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
            Server::Builtin(b) => b.stop(),
        }
    }

    /// CPU seconds of the server (nginx master and workers); None for the built-in one.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid().and_then(procfs::tree_cpu_seconds)
    }
}

/// Two threads answering every request with `200 ok` and closing the connection.
pub struct Builtin {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

impl Builtin {
    fn start() -> Result<Builtin, Error> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("built-in server: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..2 {
            let l = listener.try_clone().map_err(|e| e.to_string())?;
            let stop = stop.clone();
            let t = std::thread::Builder::new()
                .name(format!("bench-http-{n}"))
                .spawn(move || serve(l, &stop))
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

fn serve(listener: TcpListener, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        // Read the request head; the targets send GET without a body.
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(RESPONSE);
        let _ = conn.shutdown(Shutdown::Write);
    }
}
