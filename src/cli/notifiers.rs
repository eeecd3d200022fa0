//! `skypunch notifiers [ID [enable | disable | test]]`.

use super::out::{line, print};
use super::table::Table;
use super::{parse_id, toggle, Error, USAGE};
use crate::base::text::yes_no;
use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow};
use crate::notifier;

pub fn run(config: &Config, words: &[&str]) -> Result<(), Error> {
    let (_pool, mut conn) = db::open(&config.db)?;
    match words {
        [] => {
            print(list(&db::notifiers::all(&mut conn)?))?;
            Ok(())
        }
        [id] => {
            let row = find(&mut conn, id)?;
            let owed = notifier::outbox::owed_to(&mut conn, row.id)?;
            print(detail(&row, &owed))?;
            Ok(())
        }
        [id, word @ ("enable" | "disable")] => {
            let row = find(&mut conn, id)?;
            let (enable, done) = toggle(word);
            db::notifiers::set_enabled(&mut conn, row.id, enable)?;
            line(format_args!("Notifier: {} has been {done}", row.name))?;
            Ok(())
        }
        [id, "test"] => {
            let row = find(&mut conn, id)?;
            line(notifier::send_test(config, &row).map_err(|e| Error::failed(e.to_string()))?)
        }
        [_, word, ..] => Err(Error::usage(format!(
            "unknown notifiers command `{word}`\n{USAGE}"
        ))),
    }
}

fn find(conn: &mut db::Conn, word: &str) -> Result<NotifierRow, Error> {
    let id = parse_id(word)?;
    db::notifiers::get(conn, id)?.ok_or_else(|| Error::failed(format!("id: {id} does not exist")))
}

/// ID, Name, Type, Address, Enabled, Pass Count, Fail Count.
pub fn list(rows: &[NotifierRow]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "Name",
        "Type",
        "Address",
        "Enabled",
        "Pass Count",
        "Fail Count",
    ]);
    for r in rows {
        t.row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.kind.clone(),
            crate::notifier::hooks::shown_address(r),
            yes_no(r.enabled).into(),
            r.pass_count.to_string(),
            r.fail_count.to_string(),
        ]);
    }
    t
}

/// Every field of one notifier (the password in `params` redacted) and what it is owed.
pub fn detail(r: &NotifierRow, owed: &notifier::outbox::Owed) -> Table {
    let mut t = Table::new(&["Field", "Value"]);
    let fields: Vec<(&str, String)> = vec![
        ("ID", r.id.to_string()),
        ("Name", r.name.clone()),
        ("Type", r.kind.clone()),
        ("Address", crate::notifier::hooks::shown_address(r)),
        ("Params", crate::base::authn::redact_params(&r.params)),
        ("Enabled", yes_no(r.enabled).into()),
        ("Pass Count", r.pass_count.to_string()),
        ("Fail Count", r.fail_count.to_string()),
        ("Pending Alerts", owed.pending.to_string()),
        ("Pending After Failed Tries", owed.failing.to_string()),
        ("Last Error", owed.last_error.clone().unwrap_or_default()),
    ];
    for (k, v) in fields {
        t.row(vec![k.to_string(), v]);
    }
    t
}
