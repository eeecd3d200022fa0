//! The comparison: Prometheus blackbox_exporter (Debian's package, installed when absent)
//! with a private config, probing the same HTTP server, driven by a bounded load generator
//! (C threads, a fixed time, at most a fixed number of probes) at a given rate of probes or
//! as fast as it answers, its CPU read from /proc.
//!
//! Why a rate: the exporter's CPU per probe depends on how hard it is driven (it measured
//! 1,564 and 2,578-2,858 probes per CPU-second on the same box at different loads), so a
//! ratio to the daemon holds only when both run at the same rate of checks.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::target::{find_or_install, free_port, wait_for_port};
use super::{procfs, Error};

/// What the exporter did under load.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub seconds: f64,
    pub probes_ok: u64,
    pub probes_failed: u64,
    pub exporter_cpu: f64,
    pub server_cpu: Option<f64>,
    /// The URL probed.
    pub target: String,
    /// Sum over successful probes of `probe_http_duration_seconds{phase="tls"}`, seconds.
    pub tls_phase_sum_s: f64,
    /// Probes per second asked for (infinite: as many as it manages).
    pub rate_asked: f64,
}

impl Outcome {
    /// Probes per second made (successful or not).
    pub fn rate(&self) -> f64 {
        (self.probes_ok + self.probes_failed) as f64 / self.seconds.max(1e-9)
    }

    pub fn probes_per_cpu_second(&self) -> f64 {
        self.probes_ok as f64 / self.exporter_cpu.max(1e-9)
    }

    /// The mean TLS phase of a probe in ms, for HTTPS targets.
    pub fn tls_phase_ms(&self) -> Option<f64> {
        (self.target.starts_with("https:") && self.probes_ok > 0)
            .then(|| self.tls_phase_sum_s * 1000.0 / self.probes_ok as f64)
    }
}

/// At most this many probes per run, whatever the duration.
const MAX_PROBES: u64 = 2_000_000;

/// How hard the exporter is driven.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub duration: Duration,
    pub concurrency: usize,
    /// Probes per second; infinite for as many as the threads get answered.
    pub rate: f64,
}

/// Probes `target` (with `ca_file` trusted, for HTTPS) as `load` says.
pub fn run(
    dir: &Path,
    target: &str,
    ca_file: Option<&Path>,
    load: Load,
    server_cpu: impl Fn() -> Option<f64>,
) -> Result<Outcome, Error> {
    let exe = find_or_install(
        "prometheus-blackbox-exporter",
        &["prometheus-blackbox-exporter"],
    )?;
    let config = dir.join("blackbox.yml");
    // Go's TLS client keeps no session cache unless told to, so each probe is a full
    // handshake, as each of the daemon's checks is.
    let tls = ca_file.map_or(String::new(), |ca| {
        format!(
            "      fail_if_not_ssl: true\n      tls_config:\n        ca_file: {}\n",
            ca.display()
        )
    });
    std::fs::write(
        &config,
        format!(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      \
             valid_status_codes: [200]\n      preferred_ip_protocol: ip4\n      \
             ip_protocol_fallback: false\n      headers:\n        Connection: close\n{tls}"
        ),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("blackbox.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(&exe)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let result = drive(&child, port, target, load, server_cpu);
    // SAFETY: kill with the pid of a child we started and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    result
}

fn drive(
    child: &Child,
    port: u16,
    target: &str,
    load: Load,
    server_cpu: impl Fn() -> Option<f64>,
) -> Result<Outcome, Error> {
    wait_for_port(port, Duration::from_secs(10), "blackbox_exporter")?;
    let request = format!(
        "GET /probe?target={target}&module=http_2xx HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\r\n"
    );
    // One probe first, so that a broken setup fails loudly instead of measuring errors.
    let mut probe = Prober::connect(port)?;
    if probe.probe(&request)?.is_none() {
        return Err(format!(
            "blackbox_exporter's first probe of {target} failed (see blackbox.log)"
        ));
    }
    let pid = child.id();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tls_ns = Arc::new(AtomicU64::new(0));
    let cpu0 = procfs::cpu_seconds(pid).ok_or("blackbox_exporter exited")?;
    let server0 = server_cpu();
    let started = Instant::now();
    let schedule = Arc::new(Schedule {
        started,
        deadline: started + load.duration,
        rate: load.rate,
        next: AtomicU64::new(0),
    });
    let threads: Vec<_> = (0..load.concurrency)
        .map(|_| {
            let (ok, failed, request) = (ok.clone(), failed.clone(), request.clone());
            let (tls_ns, schedule) = (tls_ns.clone(), schedule.clone());
            std::thread::spawn(move || {
                probe_loop(port, &request, &schedule, [&ok, &failed, &tls_ns])
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_seconds(pid).ok_or("blackbox_exporter exited under load")?;
    let server_cpu = match (server0, server_cpu()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(Outcome {
        seconds,
        probes_ok: ok.load(Ordering::SeqCst),
        probes_failed: failed.load(Ordering::SeqCst),
        exporter_cpu: cpu1 - cpu0,
        server_cpu,
        target: target.to_string(),
        tls_phase_sum_s: tls_ns.load(Ordering::SeqCst) as f64 / 1e9,
        rate_asked: load.rate,
    })
}

/// When each probe is due: probe k at `started + k / rate`, handed to whichever thread is
/// free. Threads that fall behind take the next due probe at once, so a rate the exporter
/// cannot keep up with becomes its maximum.
struct Schedule {
    started: Instant,
    deadline: Instant,
    rate: f64,
    next: AtomicU64,
}

impl Schedule {
    /// Waits until the next probe is due; false when the run is over.
    fn wait_turn(&self) -> bool {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        if k >= MAX_PROBES {
            return false;
        }
        if self.rate.is_finite() {
            let due = self.started + Duration::from_secs_f64(k as f64 / self.rate);
            if due >= self.deadline {
                return false;
            }
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        Instant::now() < self.deadline
    }
}

/// One load thread: probes over a kept-alive connection (as Prometheus scrapes an
/// exporter) when the schedule says, reconnecting after an error. Counts successes,
/// failures and the TLS phase (ns) of successes.
fn probe_loop(port: u16, request: &str, schedule: &Schedule, counters: [&AtomicU64; 3]) {
    let [ok, failed, tls_ns] = counters;
    let mut conn: Option<Prober> = None;
    while schedule.wait_turn() {
        let p = match conn.as_mut() {
            Some(p) => p,
            None => match Prober::connect(port) {
                Ok(p) => conn.insert(p),
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match p.probe(request) {
            Ok(Some(tls_s)) => {
                ok.fetch_add(1, Ordering::Relaxed);
                tls_ns.fetch_add((tls_s * 1e9) as u64, Ordering::Relaxed);
            }
            Ok(None) => {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

/// A kept-alive HTTP/1.1 connection to the exporter.
struct Prober {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Prober {
    fn connect(port: u16) -> Result<Prober, Error> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
        let _ = s.set_nodelay(true);
        Ok(Prober {
            writer: s.try_clone().map_err(|e| e.to_string())?,
            reader: BufReader::new(s),
        })
    }

    /// One probe: when the exporter reports `probe_success 1`, its TLS phase in seconds
    /// (0 for plain HTTP); None when the probe failed.
    fn probe(&mut self, request: &str) -> Result<Option<f64>, Error> {
        self.writer
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let body = read_response(&mut self.reader)?;
        if !body.lines().any(|l| l.trim() == "probe_success 1") {
            return Ok(None);
        }
        let tls = body
            .lines()
            .find_map(|l| l.strip_prefix("probe_http_duration_seconds{phase=\"tls\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        Ok(Some(tls))
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, Error> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err("connection closed".into()),
        Ok(_) => Ok(line.trim_end().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads one response and returns its body (Content-Length or chunked).
fn read_response(r: &mut impl BufRead) -> Result<String, Error> {
    let status = read_line(r)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("blackbox_exporter answered `{status}`"));
    }
    let (mut length, mut chunked) = (None, false);
    loop {
        let h = read_line(r)?;
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = usize::from_str_radix(read_line(r)?.split(';').next().unwrap_or(""), 16)
                .map_err(|_| "bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let n = length.ok_or("response without Content-Length")?;
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
