//! A real three-node MariaDB Galera cluster on loopback ports for one test: each node its own
//! data folder, SQL port and group-communication ports, the first bootstrapping the cluster
//! (`--wsrep-new-cluster`), the others joining by rsync state transfer. Killed and removed
//! when dropped.
//!
//! Needs Debian's `galera-4` (libgalera_smm.so) and rsync, which scripts/test installs. The
//! rsync state transfer does not run as root: the folders are made writable by everyone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mariadb::{install, server_args};
use super::Server;

pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// One node's ports: SQL, group communication, incremental and full state transfer.
#[derive(Clone, Copy)]
struct Ports {
    sql: u16,
    gcomm: u16,
    ist: u16,
    sst: u16,
}

struct Node {
    ports: Ports,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running Galera cluster.
pub struct Galera {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Galera {
    /// Starts `n` nodes and waits until every one is synced in a cluster of `n`.
    pub fn start(n: usize) -> Galera {
        assert!(
            Path::new(PROVIDER).exists(),
            "{PROVIDER} is missing: scripts/test installs galera-4"
        );
        let dir = std::env::temp_dir().join(format!(
            "sp_galera_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let nodes = (0..n)
            .map(|i| {
                let node_dir = dir.join(format!("n{i}"));
                install(&node_dir.join("data"));
                Node {
                    ports: Ports {
                        sql: quiet_port(),
                        gcomm: quiet_port(),
                        ist: quiet_port(),
                        sst: quiet_port(),
                    },
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        open_to_all(&dir);
        let mut galera = Galera { dir, nodes };
        galera.launch(0, true);
        galera.wait_synced(0, 1);
        for i in 1..n {
            galera.launch(i, false);
        }
        for i in 0..n {
            galera.wait_synced(i, n);
        }
        galera
    }

    /// The address of node `i` for [`crate::support::TestDb::new_on`].
    pub fn server(&self, i: usize) -> Server {
        Server {
            host: "127.0.0.1".into(),
            port: self.nodes[i].ports.sql,
            user: "root".into(),
            password: String::new(),
        }
    }

    /// `127.0.0.1:P,...`: every node's SQL port, node `first` first.
    pub fn location(&self, first: usize) -> String {
        let n = self.nodes.len();
        (0..n)
            .map(|k| format!("127.0.0.1:{}", self.nodes[(first + k) % n].ports.sql))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL node `i` (a crashed database host).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn gcomm_address(&self) -> String {
        let list: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.ports.gcomm))
            .collect();
        format!("gcomm://{}", list.join(","))
    }

    fn launch(&mut self, i: usize, bootstrap: bool) {
        let address = self.gcomm_address();
        let node = &self.nodes[i];
        let p = node.ports;
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.args(server_args(&node.dir, p.sql))
            .args([
                "--binlog-format=ROW",
                "--default-storage-engine=InnoDB",
                "--innodb-autoinc-lock-mode=2",
                "--wsrep-on=ON",
                "--wsrep-cluster-name=skypunch_test",
                "--wsrep-sst-method=rsync",
            ])
            .arg(format!("--wsrep-provider={PROVIDER}"))
            .arg(format!("--wsrep-cluster-address={address}"))
            .arg(format!("--wsrep-node-address=127.0.0.1:{}", p.gcomm))
            .arg(format!("--wsrep-node-name=n{i}"))
            .arg(format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};\
                 ist.recv_addr=127.0.0.1:{};gcache.size=16M",
                p.gcomm, p.ist
            ))
            .arg(format!("--wsrep-sst-receive-address=127.0.0.1:{}", p.sst));
        if bootstrap {
            cmd.arg("--wsrep-new-cluster");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd runs");
        self.nodes[i].child = Some(child);
    }

    /// Waits until node `i` says it is synced in a cluster of `size`.
    fn wait_synced(&mut self, i: usize, size: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if self.status(i) == Some((size, "Synced".to_string())) {
                return;
            }
            let exited = self.nodes[i]
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(!exited, "Galera node {i} exited:\n{}", self.error_log(i));
            assert!(
                Instant::now() < deadline,
                "Galera node {i} not synced in a cluster of {size} within 90 s:\n{}",
                self.error_log(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `(wsrep_cluster_size, wsrep_local_state_comment)` of node `i`, when it answers.
    fn status(&self, i: usize) -> Option<(usize, String)> {
        use mysql::prelude::Queryable;
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.nodes[i].ports.sql)
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(1)));
        let mut conn = mysql::Conn::new(opts).ok()?;
        let size: (String, String) = conn
            .query_first("SHOW STATUS LIKE 'wsrep_cluster_size'")
            .ok()??;
        let state: (String, String) = conn
            .query_first("SHOW STATUS LIKE 'wsrep_local_state_comment'")
            .ok()??;
        Some((size.1.parse().ok()?, state.1))
    }

    pub fn error_log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A free port below the kernel's ephemeral range (32768 and up on Linux): a joining node
/// binds its SQL port only after its state transfer, seconds later, and a port from the
/// ephemeral range may meanwhile be taken by any test's outgoing connection.
fn quiet_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 97) * 100;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + n % 12_000) as u16;
        let port = if port >= 32_000 { port - 12_000 } else { port };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The rsync state transfer runs as another user: every folder and file open to it.
fn open_to_all(dir: &Path) {
    let mode = |p: &Path| {
        let meta = std::fs::metadata(p).unwrap();
        let extra = if meta.is_dir() { 0o777 } else { 0o666 };
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(extra));
    };
    mode(dir);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            mode(&path);
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

impl Drop for Galera {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
