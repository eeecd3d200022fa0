//! What `skypunch setup-db` makes on the test server, for the tests that run it: the
//! administrator's flags, unique names, and a guard that drops the database and every
//! account of the user when the test ends, however it ends.

use std::sync::atomic::{AtomicU32, Ordering};

use mysql::prelude::Queryable;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `setup-db`'s administrator for the test server: its root over TCP (as SKYPUNCH_TEST_DB
/// names it), else (another account, which may not grant) root through the local socket.
pub fn admin_args() -> Vec<String> {
    let s = super::server();
    if s.user == "root" {
        let pass = s.password;
        vec![
            "--admin-user".into(),
            "root".into(),
            "--admin-password".into(),
            pass,
        ]
    } else {
        Vec::new()
    }
}

/// A database name and a user name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}_{n}_{}", std::process::id(), nanos % 10_000)
}

/// The test server as its administrator, with no database selected.
pub fn admin_conn() -> mysql::Conn {
    let s = super::server();
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(s.host))
        .tcp_port(s.port)
        .user(Some(s.user))
        .pass(Some(s.password))
        .prefer_socket(false);
    mysql::Conn::new(opts).expect("test MariaDB reachable (SKYPUNCH_TEST_DB)")
}

/// A database and a user that `setup-db` creates; both dropped when this is.
pub struct Made {
    pub db: String,
    pub user: String,
}

impl Made {
    pub fn new(prefix: &str) -> Made {
        let db = unique(&format!("{prefix}_db"));
        let user = unique(prefix);
        Made { db, user }
    }

    /// The host parts of the user's accounts.
    pub fn hosts(&self) -> Vec<String> {
        admin_conn()
            .exec(
                "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host",
                (&self.user,),
            )
            .unwrap()
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        let mut conn = admin_conn();
        for host in ["localhost", "127.0.0.1", "::1", "%"] {
            let _ = conn.query_drop(format!("DROP USER IF EXISTS '{}'@'{host}'", self.user));
        }
        let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.db));
    }
}
