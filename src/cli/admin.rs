//! `skypunch init-db | upgrade-db` and the daemon's lifecycle words `start | stop | status`.

use super::{load_config, Error, Invocation};
use crate::config::Config;
use crate::db::{self, schema::Upgrade};

/// Creates the tables, or upgrades a 1.0 database, in the configured database.
pub fn upgrade_db(config: &Config, word: &str) -> Result<(), Error> {
    let pool = db::connect(&config.db)?;
    let mut conn = db::checkout(&pool)?;
    let name = config.db.describe();
    match db::schema::upgrade(&mut conn, &name)? {
        Upgrade::Created => println!("{word}: created the skypunch 2.0 tables in {name}"),
        Upgrade::AlreadyCurrent => println!("{word}: {name} already has skypunch schema 2.0"),
        Upgrade::Upgraded { from } => {
            println!(
                "{word}: upgraded {name} from schema {}.{} to 2.0",
                from.0, from.1
            )
        }
    }
    Ok(())
}

/// `start`, `stop`, `status`.
pub fn lifecycle(inv: &Invocation, word: &str) -> Result<(), Error> {
    let config = load_config(inv)?;
    match word {
        "start" if inv.foreground => {
            crate::daemon::run_foreground(config, inv.config.as_deref(), inv.wait_for_db)
                .map_err(Error::failed)
        }
        _ => Err(Error::failed(format!(
            "`{word}` without --foreground comes with the lifecycle issue"
        ))),
    }
}
