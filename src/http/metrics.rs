//! `/metrics`: the Prometheus text exposition (format 0.0.4), encoded by `prometheus-client`.
//! Daemon figures come from [`Stats`] (atomics); per-target figures from one read of the
//! `targets` rows (their counters, last result and open incident), which every node shares,
//! so every node of a cluster shows the same per-target series. The text is written to the
//! socket as it is encoded (4 KiB at a time): only the rows read are held, not the text.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::answer::{Answer, Body};
use super::query::{self, NotifierNow, TargetFigures};
use super::Shared;
use crate::base::stats::Exported;
use crate::base::text::label_value;

/// Targets from which a scrape gives the memory it freed back to the system at once (glibc
/// would keep the peak of each handler thread's arena otherwise).
const LARGE: usize = 10_000;

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything one scrape shows, read before the answer starts.
#[derive(Debug)]
struct Scrape {
    daemon: Daemon,
    targets: Vec<TargetFigures>,
    notifiers: Vec<NotifierNow>,
}

#[derive(Debug)]
struct Daemon {
    checks: u64,
    fails_by_kind: Vec<(&'static str, u64)>,
    lag: Histo,
    duration: Histo,
    write: Histo,
    queue_depth: u64,
    held_checks: u64,
    held_alerts: u64,
    written: u64,
    dropped: u64,
    alerts_queued: u64,
    alerts_dropped: u64,
    database_up: bool,
    db_ok_s: f64,
    targets_known: u64,
    targets_owned: u64,
    live_nodes: u64,
    blind: u64,
    workers: u64,
    workers_busy: u64,
    oldest_wait_s: f64,
    late_starts: u64,
    rows_skipped: u64,
    stale_results: u64,
    missed_rounds: u64,
    clock_offset_s: f64,
    skewed: u64,
    /// Whether the per-target read worked (`skypunch_scrape_database_ok`).
    read_ok: bool,
}

/// A histogram's exported figures (a newtype, for `Debug`).
struct Histo(Exported);

impl fmt::Debug for Histo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Histo(count {})", self.0.count)
    }
}

pub fn answer(shared: &Shared) -> Answer {
    let (targets, notifiers, read_ok) = match read(shared) {
        Ok((t, n)) => (t, n, true),
        Err(e) => {
            log::warn!("http: /metrics without per-target series: {e}");
            (Vec::new(), Vec::new(), false)
        }
    };
    let scrape = Scrape {
        daemon: daemon(shared, read_ok),
        targets,
        notifiers,
    };
    let large = scrape.targets.len() >= LARGE;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        headers: Vec::new(),
        body: Body::Stream(Box::new(move |out| {
            let mut sink = FmtToIo { out, error: None };
            let encoded =
                prometheus_client::encoding::prometheus_text::encode(&mut sink, &registry);
            drop(registry);
            if large {
                crate::base::os::release_free_memory();
            }
            match encoded {
                Ok(()) => Ok(()),
                Err(_) => Err(sink
                    .error
                    .unwrap_or_else(|| std::io::Error::other("encoding"))),
            }
        })),
    }
}

fn read(shared: &Shared) -> Result<(Vec<TargetFigures>, Vec<NotifierNow>), crate::db::Error> {
    let mut conn = query::checkout(&shared.pool)?;
    let targets = query::figures(&mut conn)?;
    let notifiers = query::notifiers(&mut conn)?;
    Ok((targets, notifiers))
}

fn daemon(shared: &Shared, read_ok: bool) -> Daemon {
    let s = &shared.stats;
    let facts = super::health::facts(shared);
    Daemon {
        checks: s.checks(),
        fails_by_kind: s.fails_by_kind().collect(),
        lag: Histo(s.lag().exported()),
        duration: Histo(s.duration().exported()),
        write: Histo(s.write_latency().exported()),
        queue_depth: s.queue_depth(),
        held_checks: s.unwritten(),
        held_alerts: s.held_alerts(),
        written: s.results_written(),
        dropped: s.results_dropped(),
        alerts_queued: s.alerts_queued(),
        alerts_dropped: s.alerts_dropped(),
        database_up: facts.database_up(),
        db_ok_s: s.db_ok_ms() as f64 / 1000.0,
        targets_known: s.targets_known(),
        targets_owned: s.targets_owned(),
        live_nodes: s.live_nodes(),
        blind: s.blind(),
        workers: shared.config.workers as u64,
        workers_busy: s.workers_busy(),
        oldest_wait_s: s.oldest_wait_ms() as f64 / 1000.0,
        late_starts: s.late_starts(),
        rows_skipped: crate::db::decode::skipped(),
        stale_results: s.stale_results(),
        missed_rounds: s.missed_rounds(),
        clock_offset_s: s.clock_offset_ms() as f64 / 1000.0,
        skewed: s.skewed(),
        read_ok,
    }
}

/// `fmt::Write` onto the socket, keeping the I/O error that `fmt::Error` cannot carry.
struct FmtToIo<'a> {
    out: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl fmt::Write for FmtToIo<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}

/// A series' labels, borrowed from the rows: no allocation per series but for a name with
/// hidden characters, which [`crate::base::text::label_value`] shows escaped.
type Id<'a> = ([(&'static str, i64); 1], [(&'static str, Cow<'a, str>); 1]);
type IdAnd<'a> = (Id<'a>, [(&'static str, &'a str); 1]);

fn target_labels(t: &TargetFigures) -> Id<'_> {
    ([("id", t.id)], [("name", label_value(&t.name))])
}

fn notifier_labels(n: &NotifierNow) -> Id<'_> {
    ([("id", n.id)], [("name", label_value(&n.name))])
}

fn with<'a>(t: &'a TargetFigures, key: &'static str, value: &'a str) -> IdAnd<'a> {
    (target_labels(t), [(key, value)])
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &Histo) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let h = &h.0;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_s, h.count, &h.buckets, None,
    )
}

/// A family with the series `series` gives for each item.
fn family<'a, T, L: EncodeLabelSet, I: IntoIterator<Item = (L, f64)>>(
    e: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    items: &'a [T],
    series: impl Fn(&'a T) -> I,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for item in items {
        for (labels, v) in series(item) {
            let inner = m.encode_family(&labels)?;
            if matches!(kind, MetricType::Counter) {
                ConstCounter::new(v as u64).encode(inner)?;
            } else {
                ConstGauge::new(v).encode(inner)?;
            }
        }
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        self.encode_daemon(&mut e)?;
        self.encode_notifiers(&mut e)?;
        self.encode_targets(&mut e)
    }
}

impl Scrape {
    fn encode_daemon(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let d = &self.daemon;
        family(
            e,
            (
                "skypunch_check_failures",
                "Failed checks by kind since start.",
                MetricType::Counter,
            ),
            &d.fails_by_kind,
            |(kind, n)| [([("kind", *kind)], *n as f64)],
        )?;
        let histograms = [
            (
                "skypunch_dispatch_lag_seconds",
                "How late checks started.",
                &d.lag,
            ),
            (
                "skypunch_check_duration_seconds",
                "How long checks took.",
                &d.duration,
            ),
            (
                "skypunch_write_duration_seconds",
                "How long writing a batch of results took.",
                &d.write,
            ),
        ];
        for (name, help, h) in histograms {
            histogram(e, name, help, h)?;
        }
        let counters = [
            (
                "skypunch_checks",
                "Checks made by this daemon since it started.",
                d.checks,
            ),
            (
                "skypunch_results_written",
                "Check results written.",
                d.written,
            ),
            (
                "skypunch_results_dropped",
                "Check results never to be written.",
                d.dropped,
            ),
            (
                "skypunch_alerts_queued",
                "Alerts put in the outbox.",
                d.alerts_queued,
            ),
            (
                "skypunch_alerts_dropped",
                "Alerts given up past MaxPendingAlerts during an outage.",
                d.alerts_dropped,
            ),
            (
                "skypunch_checks_started_late",
                "Checks started more than 1 s after they were due (no free worker).",
                d.late_starts,
            ),
            (
                "skypunch_rows_skipped",
                "Database rows left out because they do not decode (each counted once).",
                d.rows_skipped,
            ),
            (
                "skypunch_results_stale",
                "Results of checks started before their target was handed to another node: dropped.",
                d.stale_results,
            ),
            (
                "skypunch_rounds_missed",
                "Rounds of checks skipped because the node was frozen or stalled past them.",
                d.missed_rounds,
            ),
        ];
        for (name, help, v) in counters {
            counter(e, name, help, v)?;
        }
        for (name, help, v) in self.daemon_gauges() {
            gauge(e, name, help, v)?;
        }
        Ok(())
    }

    /// The daemon's gauges: name, help, value.
    fn daemon_gauges(&self) -> Vec<(&'static str, &'static str, f64)> {
        let d = &self.daemon;
        let errors = self.targets.iter().filter(|t| t.config_error).count();
        let share = if d.targets_known == 0 {
            0.0
        } else {
            d.targets_owned as f64 / d.targets_known as f64
        };
        let flag = |b: bool| f64::from(u8::from(b));
        vec![
            (
                "skypunch_queue_depth",
                "Due checks waiting for a worker.",
                d.queue_depth as f64,
            ),
            (
                "skypunch_results_held",
                "Checks made but not yet written to the database (a database outage holds them).",
                d.held_checks as f64,
            ),
            (
                "skypunch_alerts_held",
                "Alerts not yet in the outbox.",
                d.held_alerts as f64,
            ),
            (
                "skypunch_database_up",
                "1 when the last database write succeeded within DeadAfter.",
                flag(d.database_up),
            ),
            (
                "skypunch_database_last_write_timestamp_seconds",
                "When a database write last succeeded.",
                d.db_ok_s,
            ),
            (
                "skypunch_scrape_database_ok",
                "1 when this scrape could read the targets (else no per-target series).",
                flag(d.read_ok),
            ),
            (
                "skypunch_config_errors",
                "Enabled targets not checked for a config error in their row.",
                errors as f64,
            ),
            (
                "skypunch_targets",
                "Enabled targets this node knows.",
                d.targets_known as f64,
            ),
            (
                "skypunch_targets_owned",
                "Targets this node checks.",
                d.targets_owned as f64,
            ),
            (
                "skypunch_node_share_ratio",
                "This node's share of the targets.",
                share,
            ),
            (
                "skypunch_cluster_nodes",
                "Live nodes sharing the database.",
                d.live_nodes as f64,
            ),
            (
                "skypunch_node_blind",
                "1 while this node cannot reach its network (its alerts of network errors held).",
                d.blind as f64,
            ),
            (
                "skypunch_clock_offset_seconds",
                "This node's clock minus the database's, at the last heartbeat.",
                d.clock_offset_s,
            ),
            (
                "skypunch_node_skewed",
                "1 while this node's clock is past MaxClockSkew (it checks nothing).",
                d.skewed as f64,
            ),
            ("skypunch_workers", "[settings] Workers.", d.workers as f64),
            (
                "skypunch_workers_busy",
                "Workers running a check now.",
                d.workers_busy as f64,
            ),
            (
                "skypunch_check_wait_oldest_seconds",
                "How long the oldest due check has waited for a free worker.",
                d.oldest_wait_s,
            ),
        ]
    }

    fn encode_notifiers(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let labels = notifier_labels;
        family(
            e,
            (
                "skypunch_notifier_alerts_pending",
                "Deliveries not yet sent.",
                MetricType::Gauge,
            ),
            &self.notifiers,
            |n| [(labels(n), n.pending as f64)],
        )?;
        family(
            e,
            (
                "skypunch_notifier_alerts_sent",
                "Alerts sent (all nodes).",
                MetricType::Counter,
            ),
            &self.notifiers,
            |n| [(labels(n), n.sent as f64)],
        )?;
        family(
            e,
            (
                "skypunch_notifier_alerts_failed",
                "Failed sends (all nodes).",
                MetricType::Counter,
            ),
            &self.notifiers,
            |n| [(labels(n), n.failed as f64)],
        )
    }

    /// Per target: its state now (gauges), then its counters.
    fn encode_targets(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        self.encode_target_state(e)?;
        self.encode_target_phases(e)?;
        self.encode_target_counts(e)
    }

    /// The phases of each target's last check, as blackbox_exporter's
    /// `probe_http_duration_seconds`: six series per target whose last check sent a request.
    fn encode_target_phases(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        family(
            e,
            (
                "skypunch_target_phase_seconds",
                "Duration of each phase of the last check (dns, connect, tls, request, \
                 first_byte, body); 0 for a phase it did not go through.",
                MetricType::Gauge,
            ),
            &self.targets,
            |t| {
                t.phases
                    .iter()
                    .flat_map(|p| p.seconds())
                    .map(move |(phase, s)| (with(t, "phase", phase), s))
            },
        )
    }

    /// One gauge family per figure, a series for each target that has a value.
    fn encode_target_state(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        type Figure = fn(&TargetFigures) -> Option<f64>;
        let gauges: [(&str, &str, Figure); 6] = [
            (
                "skypunch_target_up",
                "1: PASS, 0: FAIL (no series while NEW).",
                |t| t.up.map(|up| f64::from(u8::from(up))),
            ),
            (
                "skypunch_target_response_seconds",
                "Duration of the last check.",
                |t| t.response_ms.map(|ms| f64::from(ms) / 1000.0),
            ),
            (
                "skypunch_target_http_status",
                "HTTP status of the last check.",
                |t| t.http_status.map(f64::from),
            ),
            (
                "skypunch_target_last_check_timestamp_seconds",
                "When the last result was written.",
                |t| {
                    let ms = t.last_check_ms.filter(|_| t.up.is_some());
                    ms.map(|ms| ms as f64 / 1000.0)
                },
            ),
            (
                "skypunch_target_incident_start_timestamp_seconds",
                "Start of the open incident.",
                |t| t.incident_ms.map(|ms| ms as f64 / 1000.0),
            ),
            (
                "skypunch_target_cert_expiry_timestamp_seconds",
                "Expiry of the TLS certificate the last handshake saw.",
                |t| t.cert_expires_s.map(|s| s as f64),
            ),
        ];
        for (name, help, figure) in gauges {
            family(e, (name, help, MetricType::Gauge), &self.targets, |t| {
                figure(t).map(|v| (target_labels(t), v))
            })?;
        }
        Ok(())
    }

    fn encode_target_counts(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let t = &self.targets;
        let c = MetricType::Counter;
        family(
            e,
            ("skypunch_target_checks", "Checks by result.", c),
            t,
            |t| {
                [
                    (with(t, "result", "pass"), t.counts.pass as f64),
                    (with(t, "result", "fail"), t.counts.fail as f64),
                ]
            },
        )?;
        family(
            e,
            ("skypunch_target_responses", "Responses by status class.", c),
            t,
            |t| {
                ["2xx", "3xx", "4xx", "5xx"]
                    .into_iter()
                    .zip([t.counts.c200, t.counts.c300, t.counts.c400, t.counts.c500])
                    .map(move |(class, n)| (with(t, "class", class), n as f64))
            },
        )?;
        family(
            e,
            (
                "skypunch_target_network_failures",
                "Checks that got no response.",
                c,
            ),
            t,
            |t| [(target_labels(t), t.counts.network as f64)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks_test::hostile;
    use proptest::prelude::*;

    /// The per-target and per-notifier series of these rows, as a scrape gets them.
    #[derive(Debug)]
    struct Named(Vec<TargetFigures>, Vec<NotifierNow>);

    impl Collector for Named {
        fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
            let up = ("skypunch_target_up", "up", MetricType::Gauge);
            family(&mut e, up, &self.0, |t| [(target_labels(t), 1.0)])?;
            let checks = ("skypunch_target_checks", "checks", MetricType::Counter);
            family(&mut e, checks, &self.0, |t| {
                [(with(t, "result", "pass"), 2.0)]
            })?;
            let sent = ("skypunch_notifier_alerts_sent", "sent", MetricType::Counter);
            family(&mut e, sent, &self.1, |n| [(notifier_labels(n), 3.0)])
        }
    }

    fn figures(id: i64, name: &str) -> TargetFigures {
        TargetFigures {
            id,
            name: name.into(),
            up: Some(true),
            config_error: false,
            http_status: None,
            response_ms: None,
            last_check_ms: None,
            incident_ms: None,
            cert_expires_s: None,
            phases: None,
            counts: crate::base::state::Counts {
                pass: 2,
                ..Default::default()
            },
        }
    }

    /// The labels of a sample line, read as the exposition format says (the reader
    /// prometheus-parse is not: it splits at every `,` and `=`): `\\`, `\"` and `\n` are the
    /// only escapes; anything else after a backslash is an error.
    fn labels_of(line: &str) -> Vec<(String, String)> {
        let mut rest = line.split_once('{').expect("a sample with labels").1;
        let mut labels = Vec::new();
        while let Some((key, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("a closing quote") {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().expect("an escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("\\{c} is no escape of the format: {line}"),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = after[end + 1..].trim_start_matches(',');
        }
        labels
    }

    /// The exposition of the target and notifier series of rows named `names`.
    fn exposition(names: &[String]) -> String {
        let targets = names
            .iter()
            .enumerate()
            .map(|(i, n)| figures(i as i64 + 1, n));
        let notifiers = names.iter().enumerate().map(|(i, n)| NotifierNow {
            id: i as i64 + 1,
            name: n.clone(),
            pending: 0,
            sent: 3,
            failed: 0,
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Named(targets.collect(), notifiers.collect())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// Names of C0 controls, DEL, backslashes and letters: what prometheus-parse, which splits
    /// labels at every `,`, `=`, `}` and `"`, can read once shown escaped.
    fn control_names() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            prop::char::range('\0', '\x1f'),
            Just('\x7f'),
            Just('\\'),
            Just('x')
        ];
        prop::collection::vec(c, 0..30).prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A name with anything in it is a label value that reads back, as the format says,
        /// as the name with its hidden characters shown escaped; no raw control reaches the
        /// exposition.
        #[test]
        fn names_are_label_values_read_back_shown_escaped(names in prop::collection::vec(hostile(), 1..4)) {
            let text = exposition(&names);
            let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            prop_assert_eq!(samples.len(), 3 * names.len(), "{}", text);
            for line in text.lines() {
                prop_assert!(!line.chars().any(crate::base::text::is_hidden), "{:?}", line);
            }
            for line in samples {
                let labels = labels_of(line);
                let id: usize = labels[0].1.parse().unwrap();
                let want = ("name".to_string(), label_value(&names[id - 1]).into_owned());
                prop_assert_eq!(&labels[1], &want);
            }
        }

        /// prometheus-parse reads a name of controls as the escaped value between the quotes.
        #[test]
        fn a_scraper_reads_names_of_controls(names in prop::collection::vec(control_names(), 1..4)) {
            let text = exposition(&names);
            let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())));
            let scrape = scrape.unwrap();
            prop_assert_eq!(scrape.samples.len(), 3 * names.len());
            for sample in &scrape.samples {
                let id: usize = sample.labels.get("id").unwrap().parse().unwrap();
                let written = label_value(&names[id - 1]).replace('\\', "\\\\");
                prop_assert!(!written.chars().any(crate::base::text::is_hidden));
                prop_assert_eq!(sample.labels.get("name"), Some(written.as_str()));
            }
        }
    }
}
