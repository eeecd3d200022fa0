//! `/healthz`: 200 when the daemon works, 503 when it does not, with a one-line reason
//! (the test is [`crate::health`]'s).

use super::answer::Answer;
use super::Shared;
use crate::health::{verdict, Facts};

/// The health facts now.
pub fn facts(shared: &Shared) -> Facts {
    Facts::read(
        &shared.stats,
        &shared.liveness,
        &shared.stop,
        shared.config.cluster.dead_after,
    )
}

pub fn answer(shared: &Shared) -> Answer {
    let (ok, reason) = verdict(&facts(shared));
    Answer::text(if ok { 200 } else { 503 }, &format!("{reason}\n"))
}
