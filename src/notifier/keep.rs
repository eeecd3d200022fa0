//! Keeping a delivery's claim alive while an e-mail goes out. Each SMTP step is bounded by
//! `SmtpTimeout`, but a conversation is many steps (greeting, EHLO, AUTH, MAIL, RCPT, DATA,
//! the message, QUIT), and a tarpitting server that answers each just in time stretches it
//! past the claim's lease (4 × `SmtpTimeout` + 10 s): another node would then claim the
//! delivery and send it again. So while the notifier thread is in lettre's blocking send, a
//! scoped thread ("skypunch-claim") renews the claim every `SmtpTimeout`, and ends with the
//! send. It borrows the pool and holds a pooled connection only for each renewal.

use std::time::Duration;

use crossbeam_channel::{select, Receiver};

use super::{claim_lease, outbox};
use crate::db::{self, Pool};

/// The claim to renew: one delivery, or a grouped message's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    One { alert: u64, notifier: u64 },
    Group { notifier: u64, group: u64 },
}

/// Runs `send`, renewing `claim` (held by `node`) every `smtp_timeout` until it returns. If
/// the renewing thread cannot start (the system's thread limit), the send goes on without it:
/// a second message is a lesser harm than none.
pub(super) fn while_sending<T>(
    pool: &Pool,
    claim: Claim,
    node: &str,
    smtp_timeout: Duration,
    send: impl FnOnce() -> T,
) -> T {
    let (done, ended) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|s| {
        let keeper = std::thread::Builder::new()
            .name("skypunch-claim".into())
            .spawn_scoped(s, move || keep(pool, claim, node, smtp_timeout, &ended));
        if let Err(e) = keeper {
            log::warn!(
                "notifier: cannot start the thread that renews a claim ({e}): sending without it"
            );
        }
        let out = send();
        drop(done);
        out
    })
}

/// The renewing thread's body: a renewal every `every` until `ended` closes.
fn keep(pool: &Pool, claim: Claim, node: &str, every: Duration, ended: &Receiver<()>) {
    let lease = claim_lease(every);
    let mut warned = false;
    loop {
        select! {
            recv(ended) -> _ => return,
            default(every) => {}
        }
        let renewed = db::with_conn(pool, |conn| match claim {
            Claim::One { alert, notifier } => outbox::renew_one(conn, alert, notifier, node, lease),
            Claim::Group { notifier, group } => {
                outbox::renew(conn, notifier, group, node, lease).map(|()| true)
            }
        });
        match renewed {
            Ok(true) => log::debug!("notifier: renewed the claim on {claim:?} while sending"),
            // Past its lease before a renewal got through (the database was away): another
            // node may send it too, which the operator should know of.
            Ok(false) if !warned => {
                warned = true;
                log::warn!(
                    "notifier: the claim on {} was lost during a slow send; another node may \
                     send it again",
                    shown(claim)
                );
            }
            Ok(false) => {}
            // The lease leaves room for several renewals: the next one may get through.
            Err(e) => log::debug!("notifier: could not renew the claim on {claim:?}: {e}"),
        }
    }
}

/// `alert 7 to notifier 2` / `group 7 to notifier 2`.
fn shown(claim: Claim) -> String {
    match claim {
        Claim::One { alert, notifier } => format!("alert {alert} to notifier {notifier}"),
        Claim::Group { notifier, group } => format!("group {group} to notifier {notifier}"),
    }
}
