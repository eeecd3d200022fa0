//! A real three-node MariaDB Galera cluster for one test: each node its own data folder, SQL
//! port and group-communication ports, the first bootstrapping the cluster
//! (`--wsrep-new-cluster`), the others joining by rsync state transfer. Killed and removed
//! when dropped.
//!
//! Either on loopback ports ([`Galera::start`]), or each node in a network namespace of its
//! own ([`Galera::start_in`], on a [`Net`]), where a firewall rule can cut one off from the
//! others: there every node uses the standard ports on its own address, and root may log in
//! from the test's address.
//!
//! Needs Debian's `galera-4` (libgalera_smm.so) and rsync, which scripts/test installs. The
//! rsync state transfer does not run as root: the folders are made writable by everyone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::mariadb::{install, server_args};
use super::netns::Net;
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
    /// The address every port of the node is on.
    addr: String,
    ports: Ports,
    /// The network namespace it runs in, if not the test's.
    ns: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running Galera cluster.
pub struct Galera {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Galera {
    /// Starts `n` nodes on loopback ports and waits until every one is synced in a cluster
    /// of `n`.
    pub fn start(n: usize) -> Galera {
        let nodes = (0..n)
            .map(|_| {
                let ports = Ports {
                    sql: quiet_port(),
                    gcomm: quiet_port(),
                    ist: quiet_port(),
                    sst: quiet_port(),
                };
                ("127.0.0.1".to_string(), ports, None)
            })
            .collect();
        Galera::launch_all(nodes)
    }

    /// Starts one node in each of the first `n` namespaces of `net`, on the standard ports
    /// of the namespace's address (Galera's default timeouts); waits until every one is
    /// synced. Root may log in from the test (the bridge's address).
    pub fn start_in(net: &Net, n: usize) -> Galera {
        let ports = Ports {
            sql: 3306,
            gcomm: 4567,
            ist: 4568,
            sst: 4444,
        };
        let nodes = (0..n)
            .map(|i| (net.addr(i), ports, Some(net.ns(i).to_string())))
            .collect();
        Galera::launch_all(nodes)
    }

    fn launch_all(places: Vec<(String, Ports, Option<String>)>) -> Galera {
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
        let nodes: Vec<Node> = places
            .into_iter()
            .enumerate()
            .map(|(i, (addr, ports, ns))| {
                let node_dir = dir.join(format!("n{i}"));
                install(&node_dir.join("data"));
                Node {
                    addr,
                    ports,
                    ns,
                    dir: node_dir,
                    child: None,
                }
            })
            .collect();
        let n = nodes.len();
        open_to_all(&dir);
        let mut galera = Galera { dir, nodes };
        galera.launch(0, true);
        galera.wait_synced(0, 1);
        if galera.nodes[0].ns.is_some() {
            // Copied to the others by their state transfer.
            galera.sql(
                0,
                "CREATE USER IF NOT EXISTS 'root'@'%'; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION",
            );
        }
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
            host: self.nodes[i].addr.clone(),
            port: self.nodes[i].ports.sql,
            user: "root".into(),
            password: String::new(),
        }
    }

    /// `HOST:P,...`: every node's SQL address, node `first` first.
    pub fn location(&self, first: usize) -> String {
        let n = self.nodes.len();
        (0..n)
            .map(|k| {
                let node = &self.nodes[(first + k) % n];
                format!("{}:{}", node.addr, node.ports.sql)
            })
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
            .map(|n| format!("{}:{}", n.addr, n.ports.gcomm))
            .collect();
        format!("gcomm://{}", list.join(","))
    }

    fn launch(&mut self, i: usize, bootstrap: bool) {
        let address = self.gcomm_address();
        let node = &self.nodes[i];
        let (p, addr) = (node.ports, &node.addr);
        let mut cmd = match &node.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/mariadbd"]);
                c
            }
            None => Command::new("/usr/sbin/mariadbd"),
        };
        cmd.args(server_args(&node.dir, p.sql));
        if node.ns.is_some() {
            // The last one counts: the test and the other namespaces connect from outside.
            cmd.arg("--bind-address=0.0.0.0");
        }
        cmd.args([
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON",
            "--wsrep-cluster-name=skypunch_test",
            "--wsrep-sst-method=rsync",
        ])
        .arg(format!("--wsrep-provider={PROVIDER}"))
        .arg(format!("--wsrep-cluster-address={address}"))
        .arg(format!("--wsrep-node-address={addr}:{}", p.gcomm))
        .arg(format!("--wsrep-node-name=n{i}"))
        .arg(format!(
            "--wsrep-provider-options=gmcast.listen_addr=tcp://{addr}:{};\
             ist.recv_addr={addr}:{};gcache.size=16M",
            p.gcomm, p.ist
        ))
        .arg(format!("--wsrep-sst-receive-address={addr}:{}", p.sst));
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
    pub fn wait_synced(&mut self, i: usize, size: usize) {
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

    /// A root session on node `i` through its unix socket: it works whatever the network
    /// does (a node in a namespace that is cut off included).
    fn local(&self, i: usize) -> Option<mysql::Conn> {
        let opts = mysql::OptsBuilder::new()
            .socket(Some(self.nodes[i].dir.join("sock").display().to_string()))
            .user(Some("root"))
            .tcp_connect_timeout(Some(Duration::from_secs(1)))
            .read_timeout(Some(Duration::from_secs(5)));
        mysql::Conn::new(opts).ok()
    }

    fn sql(&self, i: usize, statements: &str) {
        let mut conn = self.local(i).expect("node answers on its socket");
        for statement in statements.split(';') {
            conn.query_drop(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }

    /// A status variable of node `i` (`wsrep_cluster_status`: `Primary`, `non-Primary`),
    /// when it answers.
    pub fn variable(&self, i: usize, name: &str) -> Option<String> {
        let mut conn = self.local(i)?;
        // SHOW takes no placeholders; the names are the tests' own.
        let row: (String, String) = conn
            .query_first(format!("SHOW STATUS LIKE '{name}'"))
            .ok()??;
        Some(row.1)
    }

    /// `(wsrep_cluster_size, wsrep_local_state_comment)` of node `i`, when it answers.
    fn status(&self, i: usize) -> Option<(usize, String)> {
        let size = self.variable(i, "wsrep_cluster_size")?;
        let state = self.variable(i, "wsrep_local_state_comment")?;
        Some((size.parse().ok()?, state))
    }

    pub fn error_log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// One Galera cluster at a time: each is three servers with state transfers, and two at
/// once (six servers) beside two CPU hogs starved the test MariaDB the other tests' daemons
/// write to past their 10 s read timeout. Held while a cluster runs.
pub struct Permit;

static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

impl Permit {
    pub fn take() -> Permit {
        let (count, freed) = &RUNNING;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= 1 {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Permit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
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
