//! The unit tests of [`super`]: how figures read on the status pages, and that no value of
//! `[secrets]` reaches one.

use super::days::{percent, uptime_class};
use super::tables::span;
use super::{detail, overview, Sanitizer};
use crate::base::model::Incident;
use crate::base::redactor::Redactor;
use crate::db::targets::TargetRow;
use crate::http::query::Listed;
use crate::http::status::{Detail, Overview, TargetStatus, DAYS};

#[test]
fn percentages_never_round_up_to_100() {
    assert_eq!(percent(100.0), "100%");
    assert_eq!(percent(99.999), "99.99%");
    assert_eq!(percent(95.5), "95.50%");
}

#[test]
fn spans_read_naturally() {
    assert_eq!(span(45_000), "45 s");
    assert_eq!(span(12 * 60_000), "12 min");
    assert_eq!(span(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
    assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
}

#[test]
fn uptime_colours() {
    assert_eq!(uptime_class(Some(100.0)), "u4");
    assert_eq!(uptime_class(Some(99.95)), "u3");
    assert_eq!(uptime_class(Some(99.5)), "u2");
    assert_eq!(uptime_class(Some(97.0)), "u1");
    assert_eq!(uptime_class(Some(50.0)), "u0");
    assert_eq!(uptime_class(None), "none");
}

/// A secret holding `&` and `<`: escaped first, it would no longer be found.
const SECRET: &str = "k3y&<9f2-x";

/// A failing target with the secret written out in every text a page shows of it, and its
/// incident.
fn leaky() -> (TargetStatus, Listed) {
    let now = TargetRow {
        id: 7,
        name: format!("shop {SECRET}"),
        url: format!("https://127.0.0.1/v1/{SECRET}/status"),
        method: "GET".into(),
        group_name: Some(format!("team {SECRET}")),
        status: "FAIL".into(),
        status_description: Some(format!("[BODY] == ok: got \"{SECRET}\"")),
        held: Some(format!("parent {SECRET} is down")),
        enabled: true,
        ..TargetRow::default()
    };
    let incident = Listed {
        incident: Incident {
            id: 1,
            target_id: 7,
            started: 1_700_000_000_000,
            first_reason: format!("first {SECRET}"),
            last_reason: format!("last {SECRET}"),
            ..Incident::default()
        },
        target_name: now.name.clone(),
        suppressed_by: None,
        monitor_blind: false,
    };
    let status = TargetStatus {
        now,
        maintenance: false,
        days: vec![None; DAYS as usize],
        recent: [("24 hours", Default::default()); 4],
    };
    (status, incident)
}

#[test]
fn no_value_of_the_secrets_reaches_a_page_and_the_rest_is_escaped() {
    let (target, incident) = leaky();
    let front = overview(
        &Overview {
            now_ms: 1_700_000_100_000,
            targets: vec![target.clone()],
            left_out: 0,
            incidents: vec![incident.clone()],
        },
        Sanitizer(&Redactor::new([SECRET])),
    );
    let own = detail(
        &Detail {
            now_ms: 1_700_000_100_000,
            target,
            hours: Vec::new(),
            incidents: vec![incident],
        },
        Sanitizer(&Redactor::new([SECRET])),
    );
    for (page, html) in [("front", &front), ("target", &own)] {
        assert!(!html.contains("k3y"), "{page} shows the secret:\n{html}");
        for shown in ["shop ***", "team ***", "last ***"] {
            assert!(html.contains(shown), "{page} lacks {shown}:\n{html}");
        }
        assert!(html.contains("held: parent *** is down"), "{page}:\n{html}");
    }
    assert!(own.contains("<title>shop ***</title>"), "{own}");
    assert!(own.contains("GET https://127.0.0.1/v1/***/status"), "{own}");
    assert!(own.contains("[BODY] == ok: got &quot;***&quot;"), "{own}");
}

#[test]
fn without_secrets_a_page_shows_its_texts_escaped() {
    let (target, incident) = leaky();
    let own = detail(
        &Detail {
            now_ms: 1_700_000_100_000,
            target,
            hours: Vec::new(),
            incidents: vec![incident],
        },
        Sanitizer(&Redactor::none()),
    );
    assert!(own.contains("<h1>shop k3y&amp;&lt;9f2-x</h1>"), "{own}");
    assert!(!own.contains("***"), "{own}");
}
