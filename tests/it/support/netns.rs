//! Private networks for one test, so that each node of a cluster has a network of its own
//! that a firewall rule can cut off: a bridge in the root namespace with the address
//! `10.231.S.1/24` (the test's own servers listen there), and `n` network namespaces, each
//! joined to the bridge by a veth pair and holding `10.231.S.(11+i)/24`. Traffic stays on
//! this machine.
//!
//! Needs root, `ip` (iproute2) and, to cut a node off, `nft` (nftables), which scripts/test
//! installs. Everything is removed when the [`Net`] is dropped, whatever happened to the
//! test; names carry the test process's pid, so the leftovers of a run that was killed are
//! removed by the next one, and runs side by side never collide.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prefixes of everything made here; a pid (hexadecimal for interfaces, whose names are
/// at most 15 bytes) follows.
const NS_PREFIX: &str = "spnet-";
const BRIDGE_PREFIX: &str = "spb";

/// The nftables table of a cut: everything in or out of the namespace but loopback dropped.
const CUT_TABLE: &str = "skypunch_cut";

/// A bridge and its namespaces; removed when dropped.
pub struct Net {
    subnet: u8,
    bridge: String,
    namespaces: Vec<String>,
}

impl Net {
    /// Makes `n` namespaces on a new bridge. `Err` says why network namespaces cannot be
    /// made here (not root, no `ip`): the one reason a test of them may skip.
    pub fn create(n: usize) -> Result<Net, String> {
        let probe = Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return Err("the `ip` command (iproute2) is missing or cannot list namespaces".into());
        }
        remove_leftovers();
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::SeqCst) % 256;
        let _lock = Lock::take();
        let subnet = free_subnet()?;
        let mut net = Net {
            subnet,
            bridge: format!("{BRIDGE_PREFIX}{pid:06x}{k:02x}"),
            namespaces: Vec::new(),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway()),
            "dev",
            &net.bridge,
        ])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{NS_PREFIX}{pid}-{k}-{i}");
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let host_end = format!("spv{pid:06x}{k:02x}{i:x}");
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &host_end, "master", &net.bridge, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["addr", "add", &format!("{}/24", net.addr(i)), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
            inside(&["link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Namespace `i`'s name.
    pub fn ns(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// Namespace `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, 11 + i)
    }

    /// The bridge's address in the root namespace: reachable from every namespace.
    pub fn gateway(&self) -> String {
        format!("10.231.{}.1", self.subnet)
    }

    /// `program` to be run in namespace `i` (`ip netns exec`, which then becomes it: the
    /// child's pid is the program's).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(i), program]);
        cmd
    }

    /// Cuts namespace `i` off: a firewall rule inside it drops every packet in or out but
    /// on loopback (its processes still reach each other).
    pub fn cut(&self, i: usize) {
        self.firewall(i, "iifname != \"lo\" drop;", "oifname != \"lo\" drop;");
    }

    /// Cuts the TCP traffic of namespace `i` to and from `port` only (a Galera node's group
    /// communication, while its SQL port stays reachable).
    pub fn cut_port(&self, i: usize, port: u16) {
        let rule = format!(
            "iifname != \"lo\" tcp dport {port} drop; iifname != \"lo\" tcp sport {port} drop;"
        );
        let out_rule = rule.replace("iifname", "oifname");
        self.firewall(i, &rule, &out_rule);
    }

    fn firewall(&self, i: usize, input: &str, output: &str) {
        let rules = format!(
            "table inet {CUT_TABLE} {{\n\
             chain input {{ type filter hook input priority 0; policy accept; {input} }}\n\
             chain output {{ type filter hook output priority 0; policy accept; {output} }}\n\
             }}\n"
        );
        let file = std::env::temp_dir().join(format!("{}.nft", self.ns(i)));
        std::fs::write(&file, rules).unwrap();
        let out = self
            .command(i, "nft")
            .arg("-f")
            .arg(&file)
            .output()
            .expect("nft (nftables) is installed: scripts/test installs it");
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Removes the cut of namespace `i` ([`Net::cut`] or [`Net::cut_port`]).
    pub fn heal(&self, i: usize) {
        let out = self
            .command(i, "nft")
            .args(["delete", "table", "inet", CUT_TABLE])
            .output()
            .expect("nft runs");
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair; processes still inside (a test that
        // failed before stopping them) keep it alive only as long as they run.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Runs `ip ARGS`; the error is its message.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and bridges of test processes that no longer run (killed before
/// their guard could).
fn remove_leftovers() {
    for line in ip_output(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let pid = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_output(&["-o", "link", "show", "type", "bridge"]).lines() {
        let Some(name) = line.split(':').nth(1).map(str::trim) else {
            continue;
        };
        let pid = name
            .strip_prefix(BRIDGE_PREFIX)
            .filter(|rest| rest.len() == 8)
            .and_then(|rest| u32::from_str_radix(&rest[..6], 16).ok());
        if pid.is_some_and(|p| !alive(p)) {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// A `10.231.S.0/24` no interface of this machine uses yet, starting from one the pid picks.
fn free_subnet() -> Result<u8, String> {
    let used = ip_output(&["-o", "-4", "addr", "show"]);
    let start = std::process::id() % 250;
    (0..250)
        .map(|k| ((start + k) % 250 + 2) as u8)
        .find(|s| !used.contains(&format!("10.231.{s}.")))
        .ok_or_else(|| "every 10.231.x.0/24 subnet is in use".into())
}

/// An exclusive lock across processes while a subnet is picked and taken.
struct Lock(std::fs::File);

impl Lock {
    fn take() -> Lock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("skypunch-netns.lock"))
            .unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this value owns.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        Lock(file)
    }
}
