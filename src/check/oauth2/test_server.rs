//! A real OAuth2 server for the unit tests: tests/it/support/oauth2_server.py (Authlib's
//! AuthorizationServer, client credentials grant), started on a free port of 127.0.0.1 and
//! stopped when dropped (or when the test process ends: it exits when its stdin closes).

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running oauth2_server.py.
pub(super) struct AuthServer {
    child: Child,
    /// Held open: the server exits when it closes.
    _stdin: ChildStdin,
    pub port: u16,
    dir: PathBuf,
}

impl AuthServer {
    /// A server whose tokens live `expires_in` seconds, with `clients` as
    /// `(id, "basic" | "post", secret)`.
    pub fn start(expires_in: u64, clients: &[(&str, &str, &str)]) -> AuthServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("skypunch-oauth2-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ready = dir.join("ready");
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
            if let Some(port) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "oauth2_server.py exited ({status}): python3 needs authlib and flask, \
                     which scripts/test installs"
                );
            }
            assert!(
                Instant::now() < until,
                "oauth2_server.py not listening after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        AuthServer {
            child,
            _stdin: stdin,
            port,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server counted for `client`: `token_requests`, `tokens_issued`, `auth`,
    /// `last_form`.
    pub fn stats(&self, client: &str) -> Value {
        let mut answer = ureq::get(self.url("/stats")).call().unwrap();
        let all: Value = answer.body_mut().read_json().unwrap();
        all[client].clone()
    }

    pub fn token_requests(&self, client: &str) -> u64 {
        self.stats(client)["token_requests"].as_u64().unwrap()
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        ureq::post(self.url("/revoke-all")).send_empty().unwrap();
    }

    /// Token answers wait `ms` from now on.
    pub fn delay(&self, ms: u64) {
        ureq::post(self.url(&format!("/delay?ms={ms}")))
            .send_empty()
            .unwrap();
    }

    /// The status of the protected resource asked with `authorization`.
    pub fn resource(&self, authorization: &str) -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let answer = agent
            .get(self.url("/resource"))
            .header("authorization", authorization)
            .call()
            .unwrap();
        answer.status().as_u16()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
