//! `skypunch targets [ID [enable | disable | test | history]]`.

use std::collections::BTreeMap;

use super::out::{line, print};
use super::table::Table;
use super::{parse_id, toggle, Error, Invocation, USAGE};
use crate::base::keyring::Keyring;
use crate::base::model::{CheckOutcome, Method, Target, TargetId, Verdict};
use crate::base::redactor::Redactor;
use crate::base::state::{CertSeen, Counts};
use crate::base::text::yes_no;
use crate::base::{authn, headers};
use crate::check::{CheckSettings, Checker, Heard};
use crate::config::Config;
use crate::db::{self, targets::TargetRow, Pool};
use crate::{target, worker};

pub fn run(config: &Config, inv: &Invocation, words: &[&str]) -> Result<(), Error> {
    let (pool, mut conn) = db::open(&config.db)?;
    match words {
        [] => {
            let rows = db::targets::all(&mut conn)?;
            let uptime = super::report::uptime_30d(&mut conn)?;
            print(list(&rows, &uptime))?;
            Ok(())
        }
        [id, "history"] => {
            let row = find(&mut conn, id)?;
            print(super::history::render(&mut conn, &row, inv)?)
        }
        [id] => {
            let row = find(&mut conn, id)?;
            let by = checked_by(config, &mut conn, &row)?;
            let routed = db::notifiers::routed_to(&mut conn, row.id)?;
            let created = db::history::created(&mut conn, &[row.id])?;
            let redactor = Redactor::from_secrets(&config.secrets);
            let mut t = detail(&row, &by, &redactor);
            for (field, value) in push_fields(config, &mut conn, &row)? {
                t.row(vec![field.into(), value]);
            }
            t.row(vec!["Notifiers".into(), notifiers_line(&routed)]);
            t.row(vec![
                "Depends On".into(),
                row.depends_on.map_or_else(String::new, |p| p.to_string()),
            ]);
            if let Some(why) = row.held.as_deref().filter(|_| row.status == "FAIL") {
                t.row(vec!["Alerts".into(), format!("held: {why}")]);
            }
            let created = created
                .get(&row.id)
                .map_or_else(String::new, |ms| local_millis(*ms));
            t.row(vec!["Created".into(), created]);
            print(t)?;
            if let Some(trace) = row.last_trace.as_deref().filter(|t| !t.is_empty()) {
                let trace = crate::base::trace::localize(&redactor.redact(trace));
                print(format_args!("Last check trace:\n{trace}"))?;
            }
            Ok(())
        }
        [id, word @ ("enable" | "disable")] => {
            let row = find(&mut conn, id)?;
            let (enable, done) = toggle(word);
            db::targets::set_enabled(&mut conn, row.id, enable)?;
            line(format_args!("Target: {} has been {done}", row.name))?;
            Ok(())
        }
        [id, "test"] => {
            let row = find(&mut conn, id)?;
            drop(conn);
            test(config, &pool, &row)
        }
        [_, word, ..] => Err(Error::usage(format!(
            "unknown targets command `{word}`\n{USAGE}"
        ))),
    }
}

/// `skypunch targets ID test`: checks the target now, prints the check line and the trace,
/// and records the check without sending a notification. It records what the check saw and
/// counts it, never the target's status: that is the daemon's (see
/// [`db::results::record_test`]), so a daemon checking the target meanwhile loses nothing.
fn test(config: &Config, pool: &Pool, row: &TargetRow) -> Result<(), Error> {
    let mut shared = target::Shared::new(config);
    let target = target::from_row(row, &mut shared, &config.secrets).map_err(|reason| {
        Error::failed(format!("target {} has a config error: {reason}", row.id))
    })?;
    let checker = Checker::new(CheckSettings {
        max_body_bytes: config.max_body_bytes,
        token_lifetime: config.token_lifetime,
        source_address: config.source_address,
    })
    .with_keyring(Keyring::new(&config.secrets));
    let push = target.method == Method::Push;
    if push {
        let mut conn = db::checkout(pool)?;
        hear_last_push(&checker, &mut conn, target.id)?;
    }
    let outcome = worker::check_safely(&checker, &target);
    line(worker::check_line(&target, &outcome))?;
    print(crate::base::trace::localize(&outcome.trace.to_string()))?;
    // A PUSH target's test reads what its pushes say: no check was made to count.
    if !push {
        record(pool, &target, &outcome)?;
    }
    // Scripts read the verdict from the exit status; the line and trace above say why.
    match outcome.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => Err(Error {
            message: String::new(),
            code: 1,
        }),
    }
}

/// Gives `checker` the last push of PUSH target `id`, as the daemon's heartbeat thread
/// would have read it.
fn hear_last_push(checker: &Checker, conn: &mut db::Conn, id: TargetId) -> Result<(), Error> {
    let now = std::time::Instant::now();
    if let Some(p) = db::targets::push::last(conn, id)? {
        let heard = Heard {
            count: p.count,
            at: now.checked_sub(p.age).unwrap_or(now),
            wall_ms: p.wall_ms,
            failed: p.failed,
            message: p.message,
        };
        checker.heartbeats().heard(id, heard);
    }
    checker.heartbeats().read(now);
    Ok(())
}

/// A PUSH target's token (whole: `targets ID` is the one place that shows it), the URL
/// to push to, and its last push; nothing for other targets that have no token.
fn push_fields(
    config: &Config,
    conn: &mut db::Conn,
    r: &TargetRow,
) -> Result<Vec<(&'static str, String)>, Error> {
    let push = Method::parse(&r.method) == Some(Method::Push);
    if !push && r.push_token.is_none() {
        return Ok(Vec::new());
    }
    let Some(token) = r.push_token.as_deref() else {
        let pending = "- (the daemon makes one when it loads the row)".to_string();
        return Ok(vec![("Push Token", pending)]);
    };
    let base = config
        .http
        .page_base()
        .unwrap_or_else(|| "http://HOST:PORT".into());
    let last = match db::targets::push::last(conn, r.id)? {
        None => "- (none yet)".to_string(),
        Some(p) => {
            let at = local_millis(p.wall_ms);
            let status = if p.failed { "status=fail" } else { "status=ok" };
            let message = p.message.map(|m| format!(": {m}")).unwrap_or_default();
            format!("{at} ({status}, push {}){message}", p.count)
        }
    };
    Ok(vec![
        ("Push Token", token.to_string()),
        ("Push URL", format!("{base}/push/{token}")),
        ("Last Push", last),
    ])
}

/// Records a test's check (see [`db::results::record_test`]); its stored trace ends with a
/// line saying who made it, since the status beside it is still the daemon's.
fn record(pool: &Pool, target: &Target, outcome: &CheckOutcome) -> Result<(), Error> {
    let mut trace = outcome.trace.clone();
    trace.step(TEST_MARK);
    let test = db::results::TestRecord {
        counts: Counts::of(outcome.verdict, outcome.http_status),
        at: crate::base::trace::Stamp(&chrono::Utc::now(), '.').to_string(),
        http_status: outcome.http_status,
        response_ms: outcome.elapsed.as_millis() as u64,
        trace: trace.to_string(),
        cert: CertSeen::of(outcome, target.url.is_https()),
        phases: outcome.phases,
    };
    let mut conn = db::checkout(pool)?;
    let recorded = db::results::record_test(&mut conn, target.id, &test)
        .map_err(|e| Error::failed(format!("result not recorded: {e}")))?;
    if !recorded && db::targets::get(&mut conn, target.id)?.is_none() {
        return Err(Error::failed(format!("target {} was deleted", target.id)));
    }
    Ok(())
}

/// The last line of a stored trace `targets ID test` made.
const TEST_MARK: &str =
    "made by `skypunch targets ID test`: counted, but the status and alerts are the daemon's";

/// Milliseconds since the epoch in local time with its offset.
fn local_millis(ms: i64) -> String {
    changed_at(ms.saturating_mul(1000))
}

/// `config_changed` (µs since the epoch) in local time with its offset.
fn changed_at(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_default()
}

fn find(conn: &mut db::Conn, word: &str) -> Result<TargetRow, Error> {
    let id = parse_id(word)?;
    db::targets::get(conn, id)?.ok_or_else(|| Error::failed(format!("id: {id} does not exist")))
}

/// The original's list: ID, Name, Status, LastUpdated, Enabled, Pass Count, Fail Count; then
/// the uptime over the last 30 days (from its creation, when later; `-` before any).
pub fn list(rows: &[TargetRow], uptime: &BTreeMap<TargetId, Option<f64>>) -> Table {
    let mut t = Table::new(&[
        "ID",
        "Name",
        "Status",
        "LastUpdated",
        "Enabled",
        "Pass Count",
        "Fail Count",
        "Uptime 30d",
    ]);
    for r in rows {
        let up = uptime.get(&r.id).copied().flatten();
        t.row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.status.clone(),
            crate::base::trace::local_from_utc(&r.last_updated),
            yes_no(r.enabled).into(),
            r.pass_count.to_string(),
            r.fail_count.to_string(),
            up.map_or("-".into(), |u| format!("{u:.3} %")),
        ]);
    }
    t
}

/// How often the target is really checked: its frequency, or, when its timeout is longer,
/// the stretched schedule and what the last check's time makes of it now.
fn schedule(r: &TargetRow) -> String {
    if Method::parse(&r.method) == Some(Method::Push) {
        let window = r.frequency.saturating_add(r.timeout);
        return format!(
            "a push due every {}s; FAIL after {window}s without one",
            r.frequency
        );
    }
    let secs = |s: i64| std::time::Duration::from_secs(s.max(1) as u64);
    let every = format!("every {}s", r.frequency);
    let Some(why) = target::stretched_schedule(secs(r.frequency), secs(r.timeout)) else {
        return every;
    };
    match r.last_response_ms.filter(|ms| *ms > r.frequency * 1000) {
        Some(ms) => {
            let took = ms as f64 / 1000.0;
            format!("WARNING: {why}; the last check took {took:.1}s, so every {took:.1}s now")
        }
        None => format!("WARNING: {why}"),
    }
}

/// `ops (3), dev (4)`, or what an unrouted target does.
fn notifiers_line(routed: &[(u64, String)]) -> String {
    if routed.is_empty() {
        return "every enabled notifier (no target_notifiers rows)".into();
    }
    let names: Vec<String> = routed
        .iter()
        .map(|(id, name)| format!("{name} ({id})"))
        .collect();
    names.join(", ")
}

/// Which live node checks the target (rendezvous hashing over the live nodes, as the nodes
/// themselves decide), or why none does.
fn checked_by(config: &Config, conn: &mut db::Conn, r: &TargetRow) -> Result<String, Error> {
    if !r.enabled {
        return Ok("- (disabled)".into());
    }
    let dead_after = config.cluster.dead_after.as_millis() as i64;
    let rows = db::nodes::all(conn)?;
    // The daemons' own rule: a late node counts until one of them has removed it.
    let live = crate::cluster::live_names(&rows);
    let anyone_beating = rows.iter().any(|n| n.heartbeat_age_ms <= dead_after);
    if !anyone_beating {
        return Ok("- (no skypunch daemon is running against this database)".into());
    }
    Ok(match crate::cluster::owner(r.id, &live) {
        Some(node) => format!("{node} (of {} live nodes)", live.len()),
        None => "- (no skypunch daemon is running against this database)".into(),
    })
}

/// Every field of one target, the original's first, as a two-column table. Passwords in
/// `authn_parms` and the values of secret-named request headers are `***`, and so is every
/// value of `[secrets]` (`redactor`) wherever it shows.
pub fn detail(r: &TargetRow, checked_by: &str, redactor: &Redactor) -> Table {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let opt_n = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut fields: Vec<(&str, String)> = vec![
        ("ID", r.id.to_string()),
        ("Name", r.name.clone()),
        ("Tenant ID", r.tenantid.clone()),
        ("Status", r.status.clone()),
        ("Previous Status", r.previous_status.clone()),
        ("Enabled", yes_no(r.enabled).into()),
        ("Status Description", opt(&r.status_description)),
        (
            "Last Updated",
            crate::base::trace::local_from_utc(&r.last_updated),
        ),
        ("Target URL", crate::base::urls::shown(&r.url)),
        ("Target Method", r.method.clone()),
        ("Authentication", r.authn.clone()),
        (
            "Authentication Params",
            authn::redact_params(r.authn_parms.as_deref().unwrap_or("")),
        ),
        ("Expected Value", r.pass_result.to_string()),
        ("Frequency (sec)", r.frequency.to_string()),
        ("Timeout (sec)", r.timeout.to_string()),
        ("Schedule", schedule(r)),
        ("Pass Count", r.pass_count.to_string()),
        ("Fail Count", r.fail_count.to_string()),
        ("200 Status Count", r.count200.to_string()),
        ("300 Status Count", r.count300.to_string()),
        ("400 Status Count", r.count400.to_string()),
        ("500 Status Count", r.count500.to_string()),
        ("Network Fail Count", r.network_fails.to_string()),
        ("Repeated Fail Count", r.repeated_fails.to_string()),
        ("Fail Threshold", r.fail_threshold.to_string()),
        ("Success Threshold", r.success_threshold.to_string()),
        ("Repeated Pass Count", r.repeated_passes.to_string()),
        ("Alert Sent", yes_no(r.alerted).into()),
        ("Realert (min)", r.realert_minutes.to_string()),
        (
            "Last Alerted",
            r.last_alerted_ms.map_or_else(String::new, local_millis),
        ),
        ("Request Body", opt(&r.request_body)),
        ("Content Type", opt(&r.content_type)),
        ("Expected Body", opt(&r.expect_body)),
        ("Max Response (ms)", opt_n(r.max_response_ms)),
        ("Follow Redirects", yes_no(r.follow_redirects).into()),
        ("Verify TLS", yes_no(r.verify_tls).into()),
        ("CA File", opt(&r.ca_file)),
        ("Client Cert", opt(&r.client_cert)),
        ("Client Key", opt(&r.client_key)),
        (
            "Proxy",
            r.proxy_url.as_deref().map_or_else(String::new, |p| {
                match crate::base::proxy::ProxyUrl::parse(p) {
                    Ok(proxy) => proxy.shown().to_string(),
                    Err(_) => crate::base::urls::shown(p),
                }
            }),
        ),
        ("IP Family", r.ip_family.clone()),
        ("Cert Warn Days", r.cert_warn_days.to_string()),
        (
            "Cert Expires",
            r.cert_expires_at
                .as_deref()
                .map_or_else(String::new, crate::base::trace::local_from_utc),
        ),
        ("Cert Issuer", opt(&r.cert_issuer)),
        ("Last HTTP Status", opt_n(r.last_http_status)),
        ("Last Response (ms)", opt_n(r.last_response_ms)),
        ("Config Changed", changed_at(r.revision)),
        ("State Seq", r.state_seq.to_string()),
        ("Checked By", checked_by.to_string()),
    ];
    // One row per line, after the columns they add to.
    let at = fields
        .iter()
        .position(|(k, _)| *k == "Max Response (ms)")
        .map_or(fields.len(), |i| i + 1);
    let headers = r.request_headers.as_deref().map(headers::shown);
    let lines = lines("Conditions", r.conditions.as_deref())
        .chain(lines("Request Headers", headers.as_deref()));
    fields.splice(at..at, lines.collect::<Vec<_>>());
    let mut t = Table::new(&["Field", "Value"]);
    for (k, v) in fields {
        t.row(vec![k.to_string(), redactor.redact(&v).into_owned()]);
    }
    t
}

/// A column of several lines as rows: its name on the first, the others under it; one empty
/// row when it is NULL.
fn lines<'a>(name: &'a str, text: Option<&'a str>) -> impl Iterator<Item = (&'a str, String)> {
    let text = text.map(str::trim_end).unwrap_or("");
    let mut first = true;
    text.split('\n').map(move |line| {
        let key = if first { name } else { "" };
        first = false;
        (key, line.trim_end_matches('\r').to_string())
    })
}
