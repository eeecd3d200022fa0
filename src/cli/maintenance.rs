//! `skypunch maintenance add ID|all --for SPAN [--reason TEXT] | list | end N`: windows during
//! which checks go on but no alert is sent, and which reports leave out of uptime.

use super::out::{line, print};
use super::table::Table;
use super::{parse_id, Error, Invocation, USAGE};
use crate::config::Config;
use crate::db;

pub fn run(config: &Config, inv: &Invocation, words: &[&str]) -> Result<(), Error> {
    let pool = db::open(&config.db)?.0;
    let mut conn = db::checkout(&pool)?;
    match words {
        ["add", which] => add(&mut conn, inv, which),
        ["list"] | [] => print(list(&db::maintenance::list(&mut conn, 7)?)),
        ["end", id] => {
            let id = parse_id(id)?;
            if db::maintenance::end(&mut conn, id)? {
                line(format_args!(
                    "Maintenance window {id} ended: alerts flow again"
                ))
            } else {
                Err(Error::failed(format!("no open maintenance window {id}")))
            }
        }
        _ => Err(Error::usage(format!(
            "maintenance takes add ID|all --for SPAN [--reason TEXT], list, or end N\n{USAGE}"
        ))),
    }
}

fn add(conn: &mut db::Conn, inv: &Invocation, which: &str) -> Result<(), Error> {
    let span = inv
        .for_span
        .as_deref()
        .ok_or_else(|| Error::usage("maintenance add needs --for SPAN (e.g. 2h, 90m)"))?;
    let ms = super::report::span_ms("--for", span)?;
    let target = match which {
        "all" => None,
        id => {
            let id = parse_id(id)?;
            if db::targets::get(conn, id)?.is_none() {
                return Err(Error::failed(format!("no target {id}")));
            }
            Some(id)
        }
    };
    let reason = inv.reason.as_deref().unwrap_or("");
    let id = db::maintenance::add(conn, target, ms / 1000, reason)?;
    let what = target.map_or("every target".to_string(), |t| format!("target {t}"));
    line(format_args!(
        "Maintenance window {id}: {what} for {span}, from now: checks go on, alerts are held"
    ))
}

fn list(windows: &[db::maintenance::Window]) -> Table {
    let now = chrono::Utc::now().timestamp();
    let mut t = Table::new(&["ID", "Target", "Starts", "Ends", "State", "Reason"]);
    for w in windows {
        let state = if w.starts > now {
            "scheduled"
        } else if w.ends > now {
            "active"
        } else {
            "ended"
        };
        t.row(vec![
            w.id.to_string(),
            w.target.map_or("all".into(), |t| t.to_string()),
            local(w.starts),
            local(w.ends),
            state.into(),
            w.reason.clone(),
        ]);
    }
    t
}

/// Seconds since the epoch in local time with its offset.
fn local(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_default()
}
