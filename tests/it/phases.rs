//! Where a check's time goes, as blackbox_exporter shows it: the phases of each target's
//! last check (dns, connect, tls, request, first_byte, body) in `/metrics`, read by a real
//! Prometheus parser, and in the JSON API, for an HTTP and an HTTPS target. They come from
//! the row, so any node shows them.

use std::time::Duration;

use crate::http::{sample, scrape, start};
use crate::support::http::HttpServer;
use crate::support::servers::{serve_tls_private_ca, write_response};
use crate::support::{wait_for, TestDb};

const PHASES: [&str; 6] = ["dns", "connect", "tls", "request", "first_byte", "body"];

/// Each phase's seconds in a scrape for target `id`; `None` when a series is missing.
fn phases_of(s: &prometheus_parse::Scrape, id: u64, name: &str) -> Option<Vec<f64>> {
    PHASES
        .iter()
        .map(|phase| {
            let labels = [("id", id.to_string()), ("name", name.to_string())];
            let mut labels: Vec<(&str, &str)> =
                labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            labels.push(("phase", phase));
            sample(s, "skypunch_target_phase_seconds", &labels)
        })
        .collect()
}

#[test]
fn the_last_check_s_phases_are_in_the_metrics_and_the_api() {
    let db = TestDb::new();
    let plain = HttpServer::start(200);
    let (tls, ca) = serve_tls_private_ca(|_, w| write_response(w, "200 OK", &[], b"ok"));
    std::fs::write(db.dir.join("ca.pem"), ca).unwrap();
    let http = db.add_watched("Plain API", &plain.url("/ok"));
    let https = db.add_target(
        "name, url, frequency, timeout, ca_file",
        &format!(
            "'Secure API', '{}', 1, 2, '{}'",
            tls.https_url("/ok"),
            db.dir.join("ca.pem").display()
        ),
    );
    let (_daemon, port) = start(&db, "");
    wait_for(Duration::from_secs(20), "both targets PASS", || {
        let n: u64 = db.one(&format!(
            "SELECT COUNT(*) FROM targets WHERE id IN ({http}, {https}) AND status = 'PASS' \
             AND last_phases IS NOT NULL"
        ));
        (n == 2).then_some(())
    });

    let s = scrape(port);
    let plain_phases = phases_of(&s, http, "Plain API").expect("six series for the HTTP target");
    let [dns, connect, tls_s, _request, first_byte, _body] = plain_phases[..] else {
        unreachable!()
    };
    assert_eq!(tls_s, 0.0, "no handshake on http://");
    assert!(dns < 0.001, "an IP address is not looked up: {dns}");
    assert!(connect > 0.0 && first_byte > 0.0, "{plain_phases:?}");
    let response = sample(
        &s,
        "skypunch_target_response_seconds",
        &[("id", &http.to_string())],
    )
    .expect("the response time");
    let sum: f64 = plain_phases.iter().sum();
    assert!(
        sum <= response + 0.001,
        "the phases ({sum} s) fit in the check ({response} s)"
    );
    let secure = phases_of(&s, https, "Secure API").expect("six series for the HTTPS target");
    assert!(secure[0] > 0.0, "localhost is looked up: {secure:?}");
    assert!(secure[2] > 0.0, "the TLS handshake is timed: {secure:?}");

    for (id, handshake) in [(http, false), (https, true)] {
        let api = crate::http::get(port, &format!("/api/v1/targets/{id}"));
        assert_eq!(api.status, 200, "{}", api.body);
        let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        let phases = v["phases"].as_object().expect("a phases object");
        let keys: Vec<&str> = phases.keys().map(String::as_str).collect();
        let mut want = PHASES.to_vec();
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        let tls_s = phases["tls"].as_f64().unwrap();
        assert_eq!(tls_s > 0.0, handshake, "{}", api.body);
        assert!(phases
            .values()
            .all(|p| p.as_f64().is_some_and(|s| s >= 0.0)));
    }
}
