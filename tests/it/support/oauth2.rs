//! A real OAuth2 server for the OAUTH2 tests: tests/it/support/oauth2_server.py (Authlib's
//! AuthorizationServer with the client credentials grant, on Flask; installed by
//! scripts/test), on a free port of 127.0.0.1, with the counts and hooks the tests assert on.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

static AUTHLIB: Once = Once::new();

/// Fails at once, saying what to do, when python3 cannot import authlib and flask
/// (scripts/test installs them; a test never installs software).
pub fn ensure_authlib() {
    AUTHLIB.call_once(|| {
        let have = Command::new("python3")
            .args(["-c", "import authlib, flask"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            have,
            "python3 cannot import authlib and flask, the tests' OAuth2 server: run the tests \
             with scripts/test, which installs them"
        );
    });
}

/// A running oauth2_server.py; stopped when dropped, and when the test process ends (it
/// exits when its stdin closes).
pub struct OAuth2Server {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    dir: PathBuf,
}

impl OAuth2Server {
    /// Tokens valid `expires_in` seconds; `clients` as `(id, "basic" | "post", secret)`, each
    /// allowed that client authentication only. `dir`: a folder of the test's own.
    pub fn start(dir: &Path, expires_in: u64, clients: &[(&str, &str, &str)]) -> OAuth2Server {
        ensure_authlib();
        std::fs::create_dir_all(dir).unwrap();
        let ready = dir.join("oauth2-ready");
        let _ = std::fs::remove_file(&ready);
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/oauth2_server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--ready-file")
            .arg(&ready)
            .args([
                "--expires-in",
                &expires_in.to_string(),
                "--scopes",
                "read write",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (id, method, secret) in clients {
            cmd.arg("--client").arg(format!("{id}:{method}:{secret}"));
        }
        let mut child = cmd.spawn().expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let port = std::fs::read_to_string(&ready).ok();
            if let Some(port) = port.and_then(|s| s.parse().ok()) {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("oauth2_server.py exited early: {status}");
            }
            assert!(
                Instant::now() < until,
                "oauth2_server.py not listening after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        OAuth2Server {
            child,
            _stdin: stdin,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// `http://127.0.0.1:PORT/token`, the token endpoint.
    pub fn token_url(&self) -> String {
        self.url("/token")
    }

    /// `http://127.0.0.1:PORT/resource`: 200 with a valid token, 401 otherwise.
    pub fn resource_url(&self) -> String {
        self.url("/resource")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server counted for `client`: `token_requests`, `tokens_issued`, `auth`
    /// (basic or post), `last_form` (its client_secret as ***).
    pub fn stats(&self, client: &str) -> Value {
        let mut answer = ureq::get(self.url("/stats")).call().unwrap();
        let all: Value = answer.body_mut().read_json().unwrap();
        all[client].clone()
    }

    pub fn token_requests(&self, client: &str) -> u64 {
        self.stats(client)["token_requests"].as_u64().unwrap()
    }

    /// Revokes every token issued so far: the next use of one is refused with 401.
    pub fn revoke_all(&self) {
        ureq::post(self.url("/revoke-all")).send_empty().unwrap();
    }

    /// Token answers wait `ms` from now on.
    pub fn delay(&self, ms: u64) {
        ureq::post(self.url(&format!("/delay?ms={ms}")))
            .send_empty()
            .unwrap();
    }
}

impl Drop for OAuth2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.join("oauth2-ready"));
    }
}
