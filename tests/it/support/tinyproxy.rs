//! tinyproxy (Debian's `tinyproxy`), for the proxy tests: a real HTTP proxy on a free port of
//! 127.0.0.1, optionally asking for Basic credentials, whose log shows every request it
//! carried. ureq, and so the check, goes through a proxy by CONNECT, for http:// targets too.
//! Runs in the foreground, its files in the test's folder; stopped when dropped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tinyproxy.
pub struct Proxy {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Proxy {
    /// Starts tinyproxy with its files in `dir` (a folder of the test's own); with `login`,
    /// requests without those Basic credentials get 407.
    pub fn start(dir: &Path, login: Option<(&str, &str)>) -> Proxy {
        let dir = dir.join("tinyproxy");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tinyproxy.log");
        // tinyproxy takes a port number: one free a moment ago, tried again if another
        // process took it in between.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(child) = run(&dir, &log, port, login) {
                return Proxy { child, port, log };
            }
        }
        panic!("tinyproxy did not start: see {}", log.display());
    }

    /// `http://127.0.0.1:PORT`, or with the user info given.
    pub fn url(&self, login: Option<(&str, &str)>) -> String {
        match login {
            Some((user, password)) => format!("http://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Sends `signal` to the proxy: SIGSTOP hangs it (connections still complete in the
    /// kernel, no request is answered), SIGCONT resumes it.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with the pid of our own child and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// The requests it carried, as its log has them: `CONNECT 127.0.0.1:8443 HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once("Request (file descriptor "))
            .filter_map(|(_, rest)| rest.split_once("): "))
            .map(|(_, request)| request.to_string())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tinyproxy on `port`, or `None` when it exited (the port was taken).
fn run(dir: &Path, log: &Path, port: u16, login: Option<(&str, &str)>) -> Option<Child> {
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
         PidFile \"{}\"\nMaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
        log.display(),
        dir.join("tinyproxy.pid").display()
    );
    if let Some((user, password)) = login {
        conf.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    let path = dir.join("tinyproxy.conf");
    std::fs::write(&path, conf).unwrap();
    let mut child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("no tinyproxy, the proxy tests' server: run the tests with scripts/test, which installs it");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        assert!(Instant::now() < until, "tinyproxy not listening after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
