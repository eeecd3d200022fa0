//! A private MariaDB server for one test: its own data folder and port, started with
//! `mariadbd`, killed with SIGKILL and started again on the same port and data, so a test can
//! take the database away from a running daemon for real.
//!
//! Needs `mariadb-install-db` and `mariadbd` (the Debian `mariadb-server` package, which
//! scripts/test installs) and must run as root or as a user that may run mariadbd.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `mariadbd` lives on Debian (it is not on a normal user's PATH).
const DAEMON_PATHS: &[&str] = &["/usr/sbin/mariadbd", "/usr/sbin/mysqld", "mariadbd"];

/// A private MariaDB server; killed and its data folder removed when dropped.
pub struct MariaDb {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More `mariadbd` options, e.g. a default time zone.
    extra: Vec<String>,
}

impl MariaDb {
    /// Creates a data folder with a root user that logs in without a password, starts the
    /// server on a free port and waits until it answers.
    pub fn start() -> MariaDb {
        MariaDb::start_with(&[])
    }

    /// Like [`MariaDb::start`], with more `mariadbd` options.
    pub fn start_with(extra: &[&str]) -> MariaDb {
        let dir = std::env::temp_dir().join(format!(
            "sp_mariadb_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        install(&dir.join("data"));
        let mut db = MariaDb {
            port: free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        db.restart();
        db
    }

    /// The server's address for [`crate::support::TestDb::new_on`].
    pub fn server(&self) -> crate::support::Server {
        crate::support::Server {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            password: String::new(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the server with SIGKILL (no shutdown, no flush: a crash) and waits until it is
    /// gone and its port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} still open", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP: the server hangs (its port still accepts connections, nothing answers).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`MariaDb::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("the server runs").id() as i32;
        // SAFETY: kill with the pid of a child we spawned and a valid signal number.
        unsafe { libc::kill(pid, signal) };
    }

    /// Starts the server (again) on the same port and data folder; waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let daemon = DAEMON_PATHS
            .iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap();
        let child = Command::new(daemon)
            .args(server_args(&self.dir, self.port))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ping() {
                return;
            }
            if !self.is_running() {
                panic!("mariadbd exited at start:\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within 60 s:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True when a root login works.
    pub fn ping(&self) -> bool {
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(1)));
        mysql::Conn::new(opts).is_ok()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates the system tables. The bootstrap has been seen to fail now and then when several
/// servers start at once on this 2-core machine (a temporary table it could not create); a
/// fresh try in an empty folder, a moment later, then works.
pub fn install(data: &Path) {
    let mut failures = String::new();
    // Its own folder for temporary tables, beside the data.
    let tmp = data.with_file_name("tmp");
    for attempt in 0..5 {
        let _ = std::fs::remove_dir_all(data);
        std::fs::create_dir_all(&tmp).unwrap();
        std::thread::sleep(Duration::from_millis(300 * attempt));
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .arg(format!("--user={}", current_user()))
            .args(server_tuning())
            .output()
            .expect("mariadb-install-db is installed (apt-get install mariadb-server)");
        if out.status.success() {
            return;
        }
        failures.push_str(&String::from_utf8_lossy(&out.stdout));
        failures.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    panic!("mariadb-install-db failed five times:\n{failures}");
}

/// A private server's options: everything under `dir` (data, socket, pid, temporary tables,
/// error log), TCP on 127.0.0.1:`port`, no option files read.
pub fn server_args(dir: &Path, port: u16) -> Vec<String> {
    let at = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", at("data")),
        format!("--port={port}"),
        format!("--socket={}", at("sock")),
        format!("--pid-file={}", at("pid")),
        format!("--tmpdir={}", at("tmp")),
        format!("--log-error={}", at("error.log")),
        format!("--user={}", current_user()),
        "--bind-address=127.0.0.1".to_string(),
        "--skip-name-resolve".to_string(),
    ];
    args.extend(server_tuning().map(String::from));
    args
}

/// Small buffers and logs: a test server holds a few rows, and several may run at once.
pub fn server_tuning() -> [&'static str; 4] {
    [
        "--innodb-buffer-pool-size=16M",
        "--innodb-log-file-size=8M",
        "--skip-log-bin",
        "--max-connections=200",
    ]
}

pub fn current_user() -> String {
    // SAFETY: geteuid cannot fail; getpwuid returns a pointer into static storage or null.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// A port nobody listens on now (the kernel's choice, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
