//! Which series a scrape shows, in order: the daemon's own figures, then each notifier's,
//! then each target's (its state now, the phases of its last check, its counters); the name,
//! help and value of each.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::encode::{counter, family, gauge, histogram, notifier_labels, target_labels, with};
use super::Scrape;
use crate::http::query::TargetFigures;

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
                "skypunch_write_conflicts",
                "Result writes that met a passing conflict (lock wait, deadlock, Galera \
                 certification conflict) and were tried again.",
                d.write_conflicts,
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
