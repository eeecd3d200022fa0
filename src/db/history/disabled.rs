//! The loader's writes of disabled periods (`target_pauses`): a pause opens when a target is
//! disabled and ends when it is enabled again; at start, the pauses are brought in line with
//! the targets as they are now.

use mysql::prelude::Queryable;

use crate::base::model::TargetId;
use crate::db::{Conn, Error};

/// A target stopped being checked (disabled): its pause opens now, unless one is open.
pub fn pause(conn: &mut Conn, id: TargetId) -> Result<(), Error> {
    conn.exec_drop(
        "INSERT IGNORE INTO target_pauses (target_id, started) VALUES (?, UTC_TIMESTAMP(3))",
        (id,),
    )
    .map_err(Error::query("recording a disabled target"))
}

/// A target is checked again: its open pause, if any, ends now.
pub fn resume(conn: &mut Conn, id: TargetId) -> Result<(), Error> {
    conn.exec_drop(
        "UPDATE target_pauses SET ended = UTC_TIMESTAMP(3) WHERE open_target = ?",
        (id,),
    )
    .map_err(Error::query("recording an enabled target"))
}

/// At start: ends the pauses of targets enabled meanwhile, and opens one for each disabled
/// target without one (disabled while no daemon ran; the pause starts now).
pub fn reconcile_pauses(conn: &mut Conn) -> Result<(), Error> {
    conn.query_drop(
        "UPDATE target_pauses p JOIN targets t ON t.id = p.target_id \
         SET p.ended = UTC_TIMESTAMP(3) WHERE p.ended IS NULL AND t.enabled = 1",
    )
    .map_err(Error::query("ending pauses of enabled targets"))?;
    conn.query_drop(
        "INSERT IGNORE INTO target_pauses (target_id, started) \
         SELECT id, UTC_TIMESTAMP(3) FROM targets WHERE enabled = 0",
    )
    .map_err(Error::query("opening pauses of disabled targets"))
}
