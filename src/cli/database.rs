//! `skypunch init-db | upgrade-db`: the tables, created or brought up to date.

use super::out::line;
use super::Error;
use crate::config::Config;
use crate::db::{self, schema::Upgrade};

/// Creates the tables, or upgrades a 1.0 database, in the configured database.
pub fn upgrade(config: &Config, word: &str) -> Result<(), Error> {
    let pool = db::connect(&config.db)?;
    let mut conn = db::checkout(&pool)?;
    let name = config.db.describe();
    let v = format!("{}.{}", db::schema::VERSION.0, db::schema::VERSION.1);
    match db::schema::upgrade(&mut conn, &name)? {
        Upgrade::Created => line(format_args!(
            "{word}: created the skypunch {v} tables in {name}"
        ))?,
        Upgrade::AlreadyCurrent => line(format_args!(
            "{word}: {name} already has skypunch schema {v}"
        ))?,
        Upgrade::Upgraded { from } => line(format_args!(
            "{word}: upgraded {name} from schema {}.{} to {v}",
            from.0, from.1
        ))?,
    }
    Ok(())
}
