//! The status page, as the people who look at it meet it: `/` with the targets grouped, their
//! states and 90 days of uptime bars, the incidents with their reasons; `/target/ID` with its
//! figures, its 24-hour chart and its incidents. First read as HTML, then in a real browser
//! (Debian's chromium, headless, which scripts/test installs): the DOM it rendered, and
//! screenshots at desktop and phone sizes. With `SKYPUNCH_SCREENSHOTS=DIR` (scripts/screenshot)
//! the screenshots are kept there for the README.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::http::{get, start};
use crate::support::http::HttpServer;
use crate::support::{wait_for, TestDb};

const HOSTILE: &str = "<img src=x onerror=alert(1)> & \"Co\"";
const URL_SECRET: &str = "hunter2pw";
const TOKEN: &str = "tok3nsecret";

/// The targets an operator's page shows, with history written as the daemon would have
/// written it over the last weeks.
struct Fleet {
    billing: u64,
    search: u64,
    disabled: u64,
    private: u64,
    hostile: u64,
}

fn fleet(db: &TestDb, up: &HttpServer, down: &HttpServer) -> Fleet {
    let add = |name: &str, url: String, group: &str, extra: &str| {
        db.add_target(
            "name, url, frequency, timeout, group_name, public, enabled",
            &format!(
                "'{}', '{url}', 1, 2, '{group}', {extra}",
                name.replace('\'', "''")
            ),
        )
    };
    let fleet = Fleet {
        billing: add("Billing API", up.url("/billing"), "Payments", "1, 1"),
        search: add("Search", down.url("/search"), "Website", "1, 1"),
        disabled: add("Old reports", up.url("/old"), "Website", "1, 0"),
        private: add("Admin console", up.url("/admin"), "Internal", "0, 1"),
        hostile: add(
            HOSTILE,
            format!(
                "http://admin:{URL_SECRET}@127.0.0.1:{}/x?token={TOKEN}",
                up.port
            ),
            "",
            "1, 1",
        ),
    };
    // They have been monitored for longer than the history: uptime counts from creation.
    db.exec("UPDATE targets SET created_at = NOW(3) - INTERVAL 61 DAY");
    for id in [fleet.billing, fleet.search, fleet.private, fleet.hostile] {
        history(db, id);
    }
    // Twelve days ago Billing was down for two hours; 40 days ago for ten minutes.
    past_incident(db, fleet.billing, (12, 8), 120, "HTTP 502 Bad Gateway");
    past_incident(db, fleet.billing, (40, 14), 10, "connection refused");
    fleet
}

/// Daily rollups for the last 60 days, and hourly ones for the last 6 hours.
fn history(db: &TestDb, id: u64) {
    let days: Vec<String> = (1..=60)
        .map(|d| {
            format!(
                "({id}, UTC_DATE() - INTERVAL {d} DAY, 86400, {f}, 0, {}, 400, 86400)",
                86400 * (20 + d % 7),
                f = u64::from(d == 12) * 7200
            )
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO target_days (target_id, day, checks, failures, fail_seconds, \
         response_ms_sum, response_ms_max, b50) VALUES {}",
        days.join(",")
    ));
    let hours: Vec<String> = (1..=6)
        .map(|h| {
            format!(
                "({id}, DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL {h} HOUR, '%Y-%m-%d %H:00:00'), \
                 3600, {}, {}, 90, 3600)",
                u64::from(h == 3) * 20,
                3600 * (15 + 4 * h)
            )
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO target_hours (target_id, hour, checks, failures, response_ms_sum, \
         response_ms_max, b50) VALUES {}",
        hours.join(",")
    ));
}

/// An ended incident that started `days_ago` at `hour` (UTC) and lasted `minutes`.
fn past_incident(db: &TestDb, id: u64, (days_ago, hour): (u64, u64), minutes: u64, reason: &str) {
    let mut conn = db.conn();
    conn.query_drop("SET time_zone = '+00:00'").unwrap();
    let started = format!("UTC_DATE() - INTERVAL {days_ago} DAY + INTERVAL {hour} HOUR");
    conn.query_drop(format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
         failed_checks, alerted) VALUES ({id}, {started}, {started} + INTERVAL {minutes} MINUTE, \
         '{reason}', '{reason}', {}, 1)",
        minutes * 60
    ))
    .unwrap();
}

/// A GET with `headers` added: the head (lowercase) and the body's bytes.
fn raw_get(port: u16, path: &str, headers: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\n{headers}\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_ascii_lowercase();
    (head, all[split + 4..].to_vec())
}

/// Waits until Billing passed and Search failed with an open incident.
fn checked(db: &TestDb, f: &Fleet) {
    wait_for(
        Duration::from_secs(15),
        "PASS, FAIL and an open incident",
        || {
            let s: (String, String, u64) = db.one(&format!(
                "SELECT (SELECT status FROM targets WHERE id = {}), \
             (SELECT status FROM targets WHERE id = {}), \
             (SELECT COUNT(*) FROM incidents WHERE target_id = {} AND ended IS NULL)",
                f.billing, f.search, f.search
            ));
            (s.0 == "PASS" && s.1 == "FAIL" && s.2 == 1).then_some(())
        },
    );
}

/// The `<li>` of target `id` on the front page.
fn line_of(page: &str, id: u64) -> &str {
    let at = page
        .find(&format!("id=\"target-{id}\""))
        .unwrap_or_else(|| panic!("no line for target {id}:\n{page}"));
    let start = page[..at].rfind("<li").unwrap();
    let end = page[start..].find("</li>").unwrap() + start;
    &page[start..end]
}

#[test]
fn the_front_page_groups_targets_with_states_bars_and_incidents() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(500));
    let f = fleet(&db, &up, &down);
    let (_daemon, port) = start(&db, "");
    checked(&db, &f);

    let r = get(port, "/");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("content-type: text/html; charset=utf-8"));
    assert!(r
        .headers
        .contains("content-security-policy: default-src 'none'"));
    let page = r.body;
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    assert!(page.contains("name=\"viewport\""));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no external asset"
    );
    assert!(
        page.contains("<p class=\"banner down\">1 of 4 targets down</p>"),
        "{page}"
    );

    // Groups in name order, the ungrouped last.
    let at = |s: &str| {
        page.find(s)
            .unwrap_or_else(|| panic!("{s} missing:\n{page}"))
    };
    assert!(at("<h2>Internal") < at("<h2>Payments") && at("<h2>Payments") < at("<h2>Website"));
    assert!(at("<h2>Website") < at("<h2>Other services"));
    assert!(page.contains("<h2>Payments <small>1 of 1 up</small>"));

    let billing = line_of(&page, f.billing);
    assert!(billing.contains("class=\"target up\""), "{billing}");
    assert!(billing.contains(">Up</span>") && billing.contains(" ms</span>"));
    assert_eq!(
        billing.matches("<i ").count() + billing.matches("<i>").count(),
        90,
        "a bar per day"
    );
    // The day of the two-hour incident: 22 of 24 hours up.
    assert!(billing.contains("class=\"u0\" title=\""), "{billing}");
    assert!(billing.contains(": 91.66%, 1 incident\"></i>"), "{billing}");
    assert!(
        billing.contains("class=\"u2\" title=\""),
        "the ten-minute one: {billing}"
    );
    assert!(
        billing.contains("<i></i>"),
        "days before its history: no data"
    );

    let search = line_of(&page, f.search);
    assert!(search.contains("class=\"target down\"") && search.contains(">Down</span>"));
    assert!(
        !page.contains(&format!("id=\"target-{}\"", f.disabled)),
        "disabled: not listed"
    );

    // No secret of a URL shows; the hostile name is text, not markup, everywhere.
    assert!(
        !page.contains(URL_SECRET) && !page.contains(TOKEN),
        "{page}"
    );
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;Co&quot;"));

    // A browser that takes gzip gets the same page gzipped.
    let (head, packed) = raw_get(port, "/", "Accept-Encoding: gzip, deflate\r\n");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    assert!(unpacked.contains("<h1>Service status</h1>"));
    assert!(
        packed.len() * 3 < unpacked.len(),
        "{} of {}",
        packed.len(),
        unpacked.len()
    );

    // Incidents: the open one first, with its reason; the one 12 days ago is not "recent".
    let incidents = &page[at("Incidents, last 7 days")..];
    assert!(incidents.contains("<tr class=\"open\">"), "{incidents}");
    assert!(
        incidents.contains("ongoing") && incidents.contains("target status:500 != 200"),
        "{incidents}"
    );
    assert!(!incidents.contains("502 Bad Gateway"));
}

#[test]
fn a_targets_page_shows_its_figures_chart_and_incidents() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(500));
    let f = fleet(&db, &up, &down);
    let (_daemon, port) = start(&db, "");
    checked(&db, &f);

    let page = get(port, &format!("/target/{}", f.billing)).body;
    assert!(
        page.contains("<h1>Billing API</h1><p class=\"badge up\">Up</p>"),
        "{page}"
    );
    assert!(page.contains("<dt>Group</dt><dd>Payments</dd>"));
    assert!(page.contains(&format!("<dd>GET {}</dd>", up.url("/billing"))));
    assert!(page.contains("<dt>Checked every</dt><dd>1 s</dd>"));
    assert!(page.contains(": 91.66%, 1 incident; 86400 checks, 7200 failed, "));
    for window in ["24 hours", "7 days", "30 days", "90 days"] {
        assert!(
            page.contains(&format!("</b> {window}</li>")),
            "{window}: {page}"
        );
    }
    // The chart: six seeded hours and the current one, a line through them, one hour failed.
    let svg = &page[page.find("<svg class=\"chart\"").expect("a chart")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert!(svg.contains("<polyline class=\"avg\""), "{svg}");
    assert!(svg.matches("<circle").count() >= 6, "{svg}");
    assert_eq!(svg.matches("class=\"fail\"").count(), 1, "{svg}");
    // All in the 25-50 ms bucket, at most 90 ms seen: p95 is estimated within the bucket.
    assert!(
        svg.contains("3600 checks, 20 failed; 27 ms on average, p95 ~48.8 ms"),
        "{svg}"
    );
    // Both past incidents, with reasons and durations.
    assert!(page.contains("<td>2 h 0 min</td><td>7200</td><td>HTTP 502 Bad Gateway</td>"));
    assert!(page.contains("<td>10 min</td><td>600</td><td>connection refused</td>"));

    let search = get(port, &format!("/target/{}", f.search)).body;
    assert!(search.contains("<p class=\"badge down\">Down</p>"));
    assert!(search.contains("<dt>Response</dt><dd>") && search.contains("HTTP 500"));
    let hostile = get(port, &format!("/target/{}", f.hostile)).body;
    assert!(
        !hostile.contains(URL_SECRET) && !hostile.contains(TOKEN),
        "{hostile}"
    );
    assert!(!hostile.contains("<img src=x") && hostile.contains("&lt;img src=x"));
    let disabled = get(port, &format!("/target/{}", f.disabled)).body;
    assert!(disabled.contains("<p class=\"badge off\">Disabled</p>"));
    assert_eq!(get(port, "/target/999999").status, 404);
    assert_eq!(get(port, "/target/abc").status, 404);
}

#[test]
fn public_only_shows_only_public_targets_on_the_pages() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(500));
    let f = fleet(&db, &up, &down);
    let (_daemon, port) = start(&db, "PublicOnly: yes\n");
    checked(&db, &f);
    let page = get(port, "/").body;
    assert!(page.contains(&format!("id=\"target-{}\"", f.billing)));
    assert!(
        !page.contains("Admin console") && !page.contains("<h2>Internal"),
        "{page}"
    );
    assert_eq!(get(port, &format!("/target/{}", f.private)).status, 404);
    assert_eq!(get(port, &format!("/target/{}", f.billing)).status, 200);
}

/// Debian's chromium, which scripts/test installs; tests never install software.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
        .expect("chromium is not installed: run the tests with scripts/test, which installs it")
}

/// Runs headless chromium on `url` with `args`, bounded in time; its stdout.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--hide-scrollbars", "--force-device-scale-factor=1"])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

/// Saves a screenshot of `url` at `size` as `name`: in SKYPUNCH_SCREENSHOTS when set, else in
/// the test's folder; checks it is a PNG of that size.
fn screenshot(profile: &Path, url: &str, size: (u32, u32), name: &str) {
    let dir = std::env::var_os("SKYPUNCH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile.to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    browse(
        profile,
        url,
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={},{}", size.0, size.1),
        ],
    );
    let png =
        std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot {}: {e}", file.display()));
    assert_eq!(&png[1..4], b"PNG", "{}", file.display());
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), size, "{}", file.display());
}

#[test]
fn the_pages_render_in_a_real_browser() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(500));
    let f = fleet(&db, &up, &down);
    let (_daemon, port) = start(&db, "");
    checked(&db, &f);
    let profile = db.dir.join("chromium");
    let base = format!("http://127.0.0.1:{port}");

    let dom = browse(&profile, &format!("{base}/"), &["--dump-dom"]);
    assert!(
        dom.contains("<p class=\"banner down\">1 of 4 targets down</p>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<div class=\"bars\"").count(), 4, "{dom}");
    assert_eq!(
        dom.matches("<i class=\"u").count() + dom.matches("<i></i>").count(),
        360
    );
    assert!(dom.contains(&format!(
        "<li class=\"target down\" id=\"target-{}\">",
        f.search
    )));
    assert!(!dom.contains("<img"), "the hostile name stayed text");
    let detail = browse(
        &profile,
        &format!("{base}/target/{}", f.billing),
        &["--dump-dom"],
    );
    assert!(detail.contains("<svg class=\"chart\""), "{detail}");
    assert!(detail.contains("<polyline class=\"avg\""));

    screenshot(
        &profile,
        &format!("{base}/"),
        (1200, 950),
        "status-page.png",
    );
    screenshot(
        &profile,
        &format!("{base}/"),
        (390, 844),
        "status-page-phone.png",
    );
    screenshot(
        &profile,
        &format!("{base}/target/{}", f.billing),
        (1200, 1000),
        "status-page-target.png",
    );
}
