//! The loader thread ("skypunch-loader"): reads the enabled targets at start, then every
//! `ReloadInterval` finds what was changed with the mysql client (insert, update, enable,
//! disable, delete) and tells the cluster thread, which passes on to the wheel the targets
//! this node owns. Reads the `targets` table; writes only the `config error: ...` of rows that
//! do not validate (or decode), and the repair of values the daemon keeps that a person edited
//! out of range (see `db::decode`). A row whose id is not usable (0 or negative) is reported
//! once and never checked.
//!
//! A scan reads `(id, config_changed)` of recently changed rows through an index, and a count
//! and id sum of the enabled rows to notice deletions; whole rows are read only for the rows
//! that changed. The whole dependency graph (`depends_on`) is read at the first load, at every
//! change a scan sees and at least every minute: a missing parent and every row of a cycle
//! are config errors, and a row whose error goes is taken again.
//!
//! The `[secrets]` a row's `${secret:NAME}` references name come from the shared [`Keyring`];
//! when a SIGHUP replaced them, the next pass validates again every enabled row that names a
//! secret or has a config error (an edit of the file moves no `config_changed`).
//!
//! A PUSH row without a `push_token` gets a random one here (a conditional write, so that
//! two nodes loading it at once agree on one).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::base::keyring::{Keyring, Vault};
use crate::base::model::Control;
use crate::base::model::{Method, TargetId, ToWriter};
use crate::base::secrets::has_references;
use crate::base::stop::{Feed, Stop};
use crate::db::{self, targets::TargetRow, Pool};
use crate::target;

/// The dependency graph is read again at least this often (and at every change seen).
const GRAPH_EVERY: Duration = Duration::from_secs(60);

/// Rows changed this long before the previous scan are looked at again, so that a
/// transaction that committed late with an earlier timestamp is not missed.
const SLACK_MICROS: i64 = 5_000_000;

/// What the loader knows: every enabled row it has seen, by revision.
pub struct Loader {
    pool: Pool,
    /// Every enabled target, and those no longer checked: the cluster thread keeps what this
    /// node owns and tells the wheel.
    cluster: Feed<Control>,
    /// Told of targets no longer checked, so that it can forget their state.
    writer: Sender<ToWriter>,
    stop: Stop,
    revisions: HashMap<TargetId, i64>,
    /// Enabled rows that do not validate, with the reason written to them.
    invalid: HashMap<TargetId, String>,
    /// The database clock at the previous scan (microseconds).
    scanned_at: i64,
    loaded: bool,
    outage_logged: bool,
    /// The files rows name and the config's defaults: CA bundles read once per pass, client
    /// certificates read again when they change.
    shared: target::Shared,
    /// The enabled rows whose `depends_on` cannot stand (a missing parent, a cycle), from the
    /// last look at the whole graph, and when that was.
    dependency_errors: BTreeMap<TargetId, target::Error>,
    graph_read: Option<Instant>,
    /// The `[secrets]`, and the snapshot of them this pass validates rows with.
    keyring: Keyring,
    vault: Arc<Vault>,
    /// The keyring's generation the rows were last validated with.
    validated: u64,
}

/// Why a row is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// The first read at start.
    First,
    /// New, edited or enabled again.
    Changed,
    /// Unchanged, but the `[secrets]` were replaced.
    Secrets,
}

impl Loader {
    pub fn new(
        pool: Pool,
        cluster: Feed<Control>,
        writer: Sender<ToWriter>,
        stop: Stop,
        shared: target::Shared,
        keyring: Keyring,
    ) -> Loader {
        Loader {
            vault: keyring.now(),
            validated: keyring.generation(),
            keyring,
            pool,
            cluster,
            writer,
            stop,
            revisions: HashMap::new(),
            invalid: HashMap::new(),
            scanned_at: 0,
            loaded: false,
            outage_logged: false,
            shared,
            dependency_errors: BTreeMap::new(),
            graph_read: None,
        }
    }

    /// One pass: the first read, or a scan for changes. Database errors are logged once per
    /// outage and the pass is retried next time.
    pub fn pass(&mut self) {
        self.shared.cas.forget();
        // The generation first: a replacement between the two reads is seen next pass.
        let generation = self.keyring.generation();
        self.vault = self.keyring.now();
        let pool = self.pool.clone();
        let result = db::with_conn(&pool, |conn| {
            if !self.loaded {
                self.load_all(conn)?;
            } else {
                self.reload_client_certs(conn)?;
                if generation != self.validated {
                    self.revalidate(conn)?;
                }
                self.scan(conn)?;
            }
            self.validated = generation;
            Ok(())
        });
        match result {
            Ok(()) if self.outage_logged => {
                log::warn!("loader: the database answers again; target changes are picked up");
                self.outage_logged = false;
            }
            Ok(()) => {}
            Err(e) if !self.outage_logged => {
                log::error!("loader: cannot read targets, will retry: {e}");
                self.outage_logged = true;
            }
            Err(_) => {}
        }
    }

    fn load_all(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        const PAGE: usize = 5000;
        let started = Instant::now();
        let scanned_at = db::targets::db_clock(conn)?;
        self.read_graph(conn)?;
        let (mut count, mut invalid, mut after) = (0, 0, 0);
        loop {
            if self.stop.requested() {
                return Ok(());
            }
            let rows = db::targets::enabled_page(conn, after, PAGE)?;
            for row in &rows {
                if !self.take_row(conn, row, Take::First)? {
                    invalid += 1;
                }
            }
            count += rows.len();
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = last.id,
                _ => break,
            }
        }
        self.scanned_at = scanned_at;
        self.loaded = true;
        // Rows with ids no page reads are reported once (later ones by the scan).
        db::targets::report_unusable(conn)?;
        db::history::reconcile_pauses(conn)?;
        crate::base::os::release_free_memory();
        log::info!(
            "loaded {count} enabled targets ({invalid} with config errors) in {} ms",
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// Validates again, with the `[secrets]` now in force, every enabled row that names a
    /// secret or has a config error: the ones that name a secret no longer there become config
    /// errors, those that named one missing until now are checked, and the others are checked
    /// with the new values from their next check on.
    fn revalidate(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        const PAGE: usize = 5000;
        let (mut taken, mut invalid, mut after) = (0, 0, 0);
        loop {
            if self.stop.requested() {
                return Ok(());
            }
            let rows = db::targets::enabled_page(conn, after, PAGE)?;
            for row in &rows {
                // New, edited or enabled again since the last pass: the scan takes it.
                let known = self.revisions.get(&row.id) == Some(&row.revision);
                if known && (self.invalid.contains_key(&row.id) || names_secrets(row)) {
                    taken += 1;
                    if !self.take_row(conn, row, Take::Secrets)? {
                        invalid += 1;
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = last.id,
                _ => break,
            }
        }
        log::info!(
            "loader: [secrets] replaced: {taken} targets naming secrets or with config errors \
             validated again ({invalid} with config errors)"
        );
        Ok(())
    }

    fn scan(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        let scanned_at = db::targets::db_clock(conn)?;
        let changed = db::targets::changed_since(conn, self.scanned_at - SLACK_MICROS)?;
        let ids: Vec<TargetId> = changed
            .iter()
            .filter(|(id, revision)| self.revisions.get(id) != Some(revision))
            .map(|(id, _)| *id)
            .collect();
        log::debug!(
            "loader: scan found {} rows changed since the last scan, {} of them new to it",
            changed.len(),
            ids.len()
        );
        if self.stop.requested() {
            return Ok(());
        }
        let mut ids = ids;
        if !ids.is_empty() {
            ids.extend(self.read_graph(conn)?);
        }
        self.refresh(conn, &ids)?;
        self.scanned_at = scanned_at;
        let (count, sum) = db::targets::enabled_fingerprint(conn)?;
        let known_sum = self
            .revisions
            .keys()
            .fold(0u64, |s, id| s.wrapping_add(*id));
        let reconciling = count != self.revisions.len() as u64 || sum != known_sum;
        if reconciling {
            log::debug!("loader: enabled rows differ from those known; reconciling ids");
            let unseen = self.reconcile(conn)?;
            self.refresh(conn, &unseen)?;
        }
        // A parent deleted or disabled shows only here; and a row deleted while disabled
        // changes nothing the scan sees: the graph is read again at least every minute.
        let stale = self.graph_read.is_none_or(|at| at.elapsed() >= GRAPH_EVERY);
        if reconciling || stale {
            let flipped = self.read_graph(conn)?;
            self.refresh(conn, &flipped)?;
        }
        if self.stop.requested() {
            return Ok(());
        }
        // A row given an id of 0 or below with an old `config_changed` escapes the scan; an
        // index range read finds it (each is reported once).
        db::targets::report_unusable(conn)?;
        self.keep_config_errors(conn)
    }

    /// Reads again the client certificates whose files changed: the next handshake presents
    /// the new ones, and the rows naming files that became usable or unusable are validated
    /// again (their config error comes or goes).
    fn reload_client_certs(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        let refreshed = self.shared.identities.refresh();
        for r in &refreshed.reloaded {
            let (cert, rows) = (r.files.cert.display(), r.rows);
            match &r.error {
                None => {
                    log::info!("client certificate {cert} changed: read again ({rows} targets)")
                }
                Some(e) => log::error!(
                    "client certificate {cert} changed and cannot be used: {e} ({rows} targets)"
                ),
            }
        }
        self.refresh(conn, &refreshed.rows)
    }

    /// Marks again a row whose `config error: ...` was overwritten without an edit: a check
    /// that was in flight when the row was edited into a bad one writes its (older) result
    /// over the error, and no revision change would bring the loader back to it.
    fn keep_config_errors(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        let ids: Vec<TargetId> = self.invalid.keys().copied().collect();
        for id in db::targets::without_config_error(conn, &ids)? {
            if let Some(reason) = self.invalid.get(&id) {
                db::targets::mark_config_error(conn, id, reason)?;
            }
        }
        Ok(())
    }

    /// Re-reads these rows and schedules, reschedules or drops each.
    fn refresh(&mut self, conn: &mut db::Conn, ids: &[TargetId]) -> Result<(), db::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        for row in db::targets::by_ids(conn, ids)? {
            if row.enabled {
                self.take_row(conn, &row, Take::Changed)?;
            } else if self.revisions.remove(&row.id).is_some() {
                self.invalid.remove(&row.id);
                self.shared.identities.release(row.id);
                db::history::pause(conn, row.id)?;
                log::info!("[{}] target disabled: no longer checked", row.id);
                self.unschedule(row.id);
            }
        }
        Ok(())
    }

    /// Removes deleted rows; returns enabled ids the loader has not seen.
    fn reconcile(&mut self, conn: &mut db::Conn) -> Result<Vec<TargetId>, db::Error> {
        let enabled: std::collections::HashSet<TargetId> =
            db::targets::enabled_ids(conn)?.into_iter().collect();
        let gone: Vec<TargetId> = self
            .revisions
            .keys()
            .filter(|id| !enabled.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.revisions.remove(&id);
            self.invalid.remove(&id);
            self.shared.identities.release(id);
            log::info!("[{id}] target deleted: no longer checked");
            self.unschedule(id);
        }
        Ok(enabled
            .into_iter()
            .filter(|id| !self.revisions.contains_key(id))
            .collect())
    }

    /// Reads the whole dependency graph again; returns the known rows whose dependency error
    /// appeared, went or changed, to be taken again.
    fn read_graph(&mut self, conn: &mut db::Conn) -> Result<Vec<TargetId>, db::Error> {
        let errors = target::dependency_errors(&db::targets::dependencies(conn)?);
        self.graph_read = Some(Instant::now());
        let old = std::mem::replace(&mut self.dependency_errors, errors);
        let new = &self.dependency_errors;
        let changed = old
            .keys()
            .chain(new.keys())
            .filter(|id| old.get(id) != new.get(id) && self.revisions.contains_key(id))
            .copied()
            .collect::<std::collections::BTreeSet<_>>();
        Ok(changed.into_iter().collect())
    }

    /// Tells the cluster thread (and through it the wheel) to stop checking a target, and the
    /// writer that it may forget it.
    fn unschedule(&self, id: TargetId) {
        let _ = self.cluster.send(Control::Remove(id));
        let _ = self.writer.send(ToWriter::Forget(id));
    }

    /// Schedules a valid row, or records its config error. Returns whether it was valid.
    fn take_row(
        &mut self,
        conn: &mut db::Conn,
        row: &TargetRow,
        take: Take,
    ) -> Result<bool, db::Error> {
        // Before the revision is taken: a fill that fails is tried again at the next scan.
        fill_push_token(conn, row)?;
        if take == Take::Changed {
            // Enabled again (or edited, or new): a pause it was in ends now.
            db::history::resume(conn, row.id)?;
        }
        let first = take == Take::First;
        self.revisions.insert(row.id, row.revision);
        // Counters and `state_seq` edited out of range: repaired, and the repair logged.
        db::targets::repair(conn, row.id, &row.fixes())?;
        let graph = &self.dependency_errors;
        let checked = target::from_row(row, &mut self.shared, &self.vault.secrets)
            .and_then(|t| graph.get(&t.id).map_or(Ok(t), |e| Err(e.clone())));
        match checked {
            Ok(t) => {
                let recovered = self.invalid.remove(&row.id).is_some();
                // Re-validated for the secrets alone: said only when that fixed the row.
                if take != Take::Secrets || recovered {
                    log_schedule(&t, first);
                }
                let _ = self.cluster.send(Control::Upsert {
                    target: Arc::new(t),
                    first,
                });
                Ok(true)
            }
            Err(error) => {
                let reason = error.to_string();
                log::error!(
                    "[{}] {} config error: {} (not checked until the row is fixed)",
                    row.id,
                    row.name,
                    reason
                );
                self.unschedule(row.id);
                let already = row.status == "FAIL"
                    && row.status_description.as_deref()
                        == Some(&format!("config error: {reason}")[..]);
                if !already {
                    db::targets::mark_config_error(conn, row.id, &reason)?;
                }
                self.invalid.insert(row.id, reason);
                Ok(false)
            }
        }
    }
}

/// Whether a row names a `[secrets]` value in a column the loader expands.
fn names_secrets(row: &TargetRow) -> bool {
    [
        Some(row.url.as_str()),
        row.authn_parms.as_deref(),
        row.request_headers.as_deref(),
        row.request_body.as_deref(),
        row.proxy_url.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(has_references)
}

/// Gives a PUSH row without a `push_token` a random one, unless another node (or a person)
/// gives it one first; logs it masked (`targets ID` shows it whole). A failure of the system's
/// random source is logged and leaves the row without one: no push can reach it then, and
/// it fails with `no heartbeat`.
fn fill_push_token(conn: &mut db::Conn, row: &TargetRow) -> Result<(), db::Error> {
    let push = Method::parse(&row.method) == Some(Method::Push);
    if !push || row.push_token.is_some() || row.undecodable.is_some() {
        return Ok(());
    }
    let token = match crate::base::push::new_token() {
        Ok(token) => token,
        Err(e) => {
            log::error!(
                "[{}] cannot make a push token: {e}; set push_token by hand",
                row.id
            );
            return Ok(());
        }
    };
    if db::targets::push::fill_token(conn, row.id, &token)? {
        log::info!(
            "[{}] {} push token {} made: `skypunch targets {}` shows it",
            row.id,
            row.name,
            crate::base::push::masked(&token),
            row.id
        );
    }
    Ok(())
}

/// Says when a target is scheduled (a row new or edited since the first load), and every
/// time its row is loaded, first load included, when its timeout stretches its schedule:
/// the operator must never read "every 2s" of a target checked every 8s.
fn log_schedule(t: &crate::base::model::Target, first: bool) {
    let name = &t.name;
    if t.method == Method::Push {
        if !first {
            let (f, window) = (t.frequency.as_secs(), (t.frequency + t.timeout).as_secs());
            log::info!(
                "[{}] target {name} scheduled: a push due every {f}s, FAIL after {window}s \
                 without one",
                t.id
            );
        }
        return;
    }
    match target::stretched_schedule(t.frequency, t.timeout) {
        Some(why) => log::warn!("[{}] target {name} scheduled {why}", t.id),
        None if !first => log::info!(
            "[{}] target {name} scheduled every {}s",
            t.id,
            t.frequency.as_secs()
        ),
        None => {}
    }
}

/// The thread body: a pass every `interval` until the stop request.
pub fn run(mut loader: Loader, interval: Duration) {
    loop {
        crate::base::fault::point("loader");
        loader.pass();
        if loader.stop.sleep(interval) {
            return;
        }
    }
}
