//! `ip_family`: a service listening on `::1` only passes with `6` (and `any`), fails with `4`
//! saying there is no IPv4 address, and a value other than any, 4, 6 is a config error.

use std::time::Duration;

use crate::support::servers::{serve_v6, write_response};
use crate::support::{wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

fn result(db: &TestDb, id: u64) -> (String, String) {
    wait_for(WAIT, &format!("target {id}'s result"), || {
        let (status, description): (String, Option<String>) = db.one(&format!(
            "SELECT status, status_description FROM targets WHERE id = {id}"
        ));
        (status != "NEW").then(|| (status, description.unwrap_or_default()))
    })
}

#[test]
fn a_service_on_ipv6_loopback_passes_over_ipv6_and_fails_over_ipv4_saying_why() {
    let db = TestDb::new();
    db.write_config("");
    let server = serve_v6(|_, w| write_response(w, "200 OK", &[], b"ok"));
    let url = server.url("/health");
    assert!(url.starts_with("http://[::1]:"), "{url}");
    let add = |name: &str, family: &str| {
        db.add_target(
            "name, url, frequency, timeout, ip_family",
            &format!("'{name}', '{url}', 1, 2, '{family}'"),
        )
    };
    let six = add("over ipv6", "6");
    let any = add("any family", "any");
    let four = add("over ipv4", "4");
    let bad = add("bad family", "ipv5");
    let _daemon = Daemon::start(&db);

    for id in [six, any] {
        assert_eq!(result(&db, id), ("PASS".to_string(), "OK".to_string()));
    }
    let trace: String = db.one(&format!("SELECT last_trace FROM targets WHERE id = {six}"));
    assert!(
        trace.contains(&format!("connected to {}", server.addr)),
        "{trace}"
    );
    assert_eq!(
        result(&db, four),
        (
            "FAIL".to_string(),
            "no IPv4 address for [::1] (ip_family 4)".to_string()
        )
    );
    assert_eq!(
        result(&db, bad).1,
        "config error: ip_family `ipv5` is none of any, 4, 6"
    );
}
