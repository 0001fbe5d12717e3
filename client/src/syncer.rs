//! The sync driver: a thin loop that feeds the relay connection, the store and the clock into
//! the sans-IO session (`candor_shared::sync::SyncSession`) and performs what it asks — one
//! round for `candor sync`, a connected loop for `candor sync --watch`. Every decision (what to
//! send, how many requests in flight, what a refused entry means, when to checkpoint and audit)
//! is the session's, so the simulation in `shared/` tests it.

use crate::checks;
use crate::commands::Paired;
use crate::home::Home;
use crate::net::{NetError, RelayClient, Subscription};
use crate::output::Output;
use crate::store::{Evidence, Store, StoreError};
use anyhow::{bail, Context as _, Result};
use candor_shared::entry::Class;
use candor_shared::sync::{
    precheck, precheck_batch, Action, Applied, EvidencePlan, Judgement, LogKeys, Mode, Prechecked,
    SessionConfig, SyncEvent, SyncSession, DEFAULT_WINDOW,
};
use candor_shared::wire::{PagedEntry, Response};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// What one sync did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SyncReport {
    /// Own entries the relay newly stored (not counting introductions and checkpoints).
    pub pushed: u64,
    /// Partner entries verified and stored (not counting introductions and checkpoints).
    pub pulled: u64,
    /// Introductions and checkpoints verified and stored (not printed: a checkpoint may ask
    /// this device to countersign, which the watch loop answers after the round).
    pub pulled_control: u64,
    /// Partner entries re-uploaded to a relay that had lost them.
    pub restored: u64,
    /// Own entries re-uploaded to a relay that had acknowledged and then lost them.
    pub restored_own: u64,
    /// Things the person should know that are not errors.
    pub notices: Vec<String>,
}

impl SyncReport {
    /// Prints the one-line summary (or JSON).
    pub fn print(&self, json: bool, out: &mut Output) {
        if json {
            out.line(
                serde_json::json!({
                    "pushed": self.pushed,
                    "pulled": self.pulled,
                    "restored": self.restored,
                    "restored_own": self.restored_own,
                    "notices": self.notices,
                })
                .to_string(),
            );
        } else {
            out.line(format!("pushed {}, pulled {}", self.pushed, self.pulled));
        }
        for notice in &self.notices {
            out.note(notice);
        }
        if self.restored > 0 {
            out.note(format!(
                "notice: the relay had lost {} of your partner's entries; this device uploaded its copies again",
                self.restored
            ));
        }
    }
}

async fn connect(paired: &Paired) -> Result<RelayClient> {
    let (client, _) = RelayClient::connect(
        &paired.config.relay,
        &paired.config.fingerprint,
        &paired.identity.secrets,
    )
    .await
    .with_context(|| format!("could not reach the relay at {}", paired.config.relay))?;
    Ok(client)
}

fn session_for(store: &Store, paired: &Paired, mode: Mode) -> Result<SyncSession> {
    Ok(SyncSession::new(SessionConfig {
        space: paired.config.space,
        me: paired.identity.secrets.device_key(),
        partner: paired.config.partner.map(|p| p.device),
        invite: paired.invite_secret.clone(),
        cursor: store.cursor()?,
        adopt_own: store.adopting_own()?,
        mode,
        window: DEFAULT_WINDOW,
    }))
}

/// What wakes a watching session besides the relay's answers.
struct Wakers<'a> {
    subscription: &'a mut Subscription,
    wake: &'a Notify,
}

/// The loop: performs the session's actions, then waits for an answer, a notification, a local
/// write or the session's timer. Returns when a [`Mode::Once`] round is done.
async fn run(
    client: &RelayClient,
    store: &Store,
    paired: &mut Paired,
    session: &mut SyncSession,
    report: &mut SyncReport,
    mut wakers: Option<Wakers<'_>>,
) -> Result<()> {
    let mut in_flight: JoinSet<(u64, Result<Response, NetError>)> = JoinSet::new();
    // Own entries below this were acknowledged before: pushing them again is a re-upload.
    let acknowledged = store.acknowledged_own()?;
    loop {
        while let Some(action) = session.poll_action(store, Instant::now())? {
            if let Action::Send { id, request } = action {
                let answer = client.request_owned(request);
                in_flight.spawn(async move { (id, answer.await) });
            } else {
                let watching = wakers.is_some();
                perform(
                    action,
                    store,
                    paired,
                    session,
                    report,
                    watching,
                    acknowledged,
                )?;
            }
        }
        if session.is_done() {
            return Ok(());
        }
        let timer = session.poll_timeout().map(tokio::time::Instant::from_std);
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let notified = async {
            match wakers.as_mut() {
                Some(w) => tokio::select! {
                    cursor = w.subscription.next() => Some(cursor),
                    () = w.wake.notified() => None,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(joined) = in_flight.join_next() => {
                let (id, answer) = joined.context("a request task failed")?;
                let response = match answer {
                    Ok(response) => response,
                    Err(NetError::Refused { code, message }) => Response::Error { code, message },
                    Err(e) => return Err(e.into()),
                };
                session.handle_response(id, response, store)?;
            }
            woke = notified => match woke {
                Some(cursor) => session.handle_notify(cursor?),
                None => session.local_written(),
            },
            () = sleep => session.handle_timeout(Instant::now()),
            err = client.closed() => return Err(err.into()),
        }
    }
}

/// Performs one action of the session (other than sending a request).
fn perform(
    action: Action,
    store: &Store,
    paired: &mut Paired,
    session: &mut SyncSession,
    report: &mut SyncReport,
    watching: bool,
    acknowledged: u64,
) -> Result<()> {
    match action {
        Action::Send { .. } => {}
        Action::PartnerJoined(public) => {
            paired.config.partner = Some(public);
            store.set_space_config(&paired.config)?;
        }
        Action::Apply(page) => apply(&page, store, paired, session, report, watching)?,
        Action::Event(event) => on_event(event, store, paired, report, acknowledged)?,
        Action::Checkpoint => {
            session.handle_checkpoint(checks::checkpoint_if_behind(store, paired)?)
        }
        Action::Audit => audit(store, paired, report)?,
        Action::Drained if watching => {
            // What this burst pushed and noticed; pulled entries were announced page by page.
            report.pulled = 0;
            report.pulled_control = 0;
            if *report != SyncReport::default() {
                let mut out = Output::default();
                report.print(false, &mut out);
                out.emit();
            }
            *report = SyncReport::default();
        }
        Action::RoundDone if watching => {
            let mut out = Output::default();
            if report.pulled > 0 || report.pushed > 0 {
                report.print(false, &mut out);
            } else {
                for notice in &report.notices {
                    out.note(notice);
                }
            }
            out.emit();
            *report = SyncReport::default();
        }
        Action::Drained | Action::RoundDone => {}
    }
    Ok(())
}

/// Verifies and stores a pulled page, and hands the outcome to the session; in watch mode
/// announces the page's entries as soon as they are durable (scripts and the benchmark wait
/// for this line), before the cursor is stored.
fn apply(
    page: &[PagedEntry],
    store: &Store,
    paired: &Paired,
    session: &mut SyncSession,
    report: &mut SyncReport,
    watching: bool,
) -> Result<()> {
    let keys = LogKeys {
        space: paired.config.space,
        key: &paired.key,
        me: paired.identity.secrets.device_key(),
        partner: paired.config.partner.map(|p| p.device),
    };
    let bytes: Vec<&[u8]> = page.iter().map(|p| p.entry.as_slice()).collect();
    let applied = store.apply_incoming_page(&keys, precheck_parallel(&keys, &bytes))?;
    crate::evidence::flag_future_dated(store, &applied.stored, crate::timefmt::now_ms())?;
    // Count what the person will see: the partner's shared entries, not their introductions,
    // checkpoints or private (journal backup) entries, which no view shows.
    let pulled = applied
        .stored
        .iter()
        .filter(|e| e.header.class == Class::Shared)
        .count() as u64;
    report.pulled += pulled;
    report.pulled_control += applied
        .stored
        .iter()
        .filter(|e| e.header.class == Class::Control)
        .count() as u64;
    report.notices.extend(departures(&applied.stored, paired));
    if let Applied::Stop { cursor, judgement } =
        session.handle_applied(page, applied.outcome, Instant::now())
    {
        let error = applied
            .refused
            .map(|(_, error)| error)
            .unwrap_or(StoreError::Frozen);
        match judgement {
            Judgement::Evidence(plan) => {
                keep_evidence(store, &plan, &error)?;
                bail!(
                    "refused the entry at relay position {cursor}: {error}; it is kept as \
                     evidence (see `candor verify`)"
                );
            }
            Judgement::Stop | Judgement::RestartPull => {
                bail!("refused the entry at relay position {cursor}: {error}")
            }
        }
    }
    store.flush()?;
    if watching && pulled > 0 {
        let mut out = Output::default();
        out.line(format!("pushed 0, pulled {pulled}"));
        out.emit();
        report.pulled = 0;
    }
    Ok(())
}

/// A notice for each partner's leaving of the space among `stored` (control entries holding a
/// `Left` record): the next sync says so.
fn departures(stored: &[candor_shared::entry::Entry], paired: &Paired) -> Vec<String> {
    let me = paired.identity.secrets.device_key();
    stored
        .iter()
        .filter(|e| e.header.class == Class::Control && e.header.author != me)
        .filter_map(|e| {
            let payload = e.open_readable(&paired.key).ok().flatten()?;
            match candor_shared::ledger::Record::from_payload(&payload) {
                Ok(Some(candor_shared::ledger::Record::Left(_))) => {
                    Some(left_notice(e.header.time_ms))
                }
                _ => None,
            }
        })
        .collect()
}

/// What a person reads when their partner left the space (at the sync that brings it; `space
/// show` and `candor today` say it too, with their words).
pub fn left_notice(time_ms: u64) -> String {
    format!(
        "notice: your partner left the space on {}; nothing new will come from them, and \
         everything up to then stays on this device (`candor space show`)",
        crate::timefmt::short(time_ms)
    )
}

/// Persists and counts what the push/pull machine reports; `acknowledged` is how many own
/// entries the relay had acknowledged when the session began.
fn on_event(
    event: SyncEvent,
    store: &Store,
    paired: &Paired,
    report: &mut SyncReport,
    acknowledged: u64,
) -> Result<()> {
    match event {
        SyncEvent::Cursor(cursor) => {
            store.set_cursor(cursor)?;
            store.flush()?;
        }
        SyncEvent::Pushed { from, count } => {
            // Count what the person wrote, not protocol bookkeeping; entries the relay had
            // acknowledged before and lost are re-uploads, not news.
            let me = paired.identity.secrets.device_key();
            for item in store.log_entries(&me, from).take(count as usize) {
                let (seq, bytes) = item?;
                if seq < acknowledged {
                    report.restored_own += 1;
                } else if !candor_shared::entry::peek_is_control(&bytes) {
                    report.pushed += 1;
                }
            }
            // Pipelined pushes may be answered out of order; everything before the end of
            // this one is durable at the relay.
            let before = store.acknowledged_own()?;
            store.set_acknowledged_own(before.max(from + count))?;
        }
        SyncEvent::OwnBehind { relay, .. } => {
            let acknowledged = store.acknowledged_own()?;
            if relay < acknowledged {
                report.notices.push(format!(
                    "notice: the relay had lost {} of your entries it had acknowledged \
                     (it holds {relay} of {acknowledged}): it was restored from a backup \
                     or rolled back; this device uploads them again",
                    acknowledged - relay
                ));
            }
        }
        SyncEvent::RelayBehind { ours, relay, .. } => report.notices.push(format!(
            "notice: the relay held only {relay} of your partner's entries, but this \
             device has verified {ours}: it lost data or rolled back"
        )),
        SyncEvent::Restored(count) => report.restored += count,
        SyncEvent::CursorReset => {
            store.set_cursor(0)?;
            report.notices.push(
                "notice: the relay served entries out of its usual order (it was restored \
                 from a backup, or had held entries back); pulling everything again so \
                 nothing is missed"
                    .into(),
            );
        }
        SyncEvent::Pulled(_) | SyncEvent::Idle => {}
    }
    Ok(())
}

/// Checks both logs' signed views of each other: problems stop the sync; notices are reported.
fn audit(store: &Store, paired: &Paired, report: &mut SyncReport) -> Result<()> {
    let findings = checks::findings(store, paired, crate::timefmt::now_ms())?;
    let (notices, problems): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.notice);
    report.notices.extend(
        notices
            .into_iter()
            .map(|f| format!("notice: {}", f.explanation)),
    );
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|f| f.explanation.clone()).collect();
        bail!(
            "the logs are inconsistent, so this device stops here:\n  - {}\nrun `candor verify` for the evidence",
            list.join("\n  - ")
        );
    }
    Ok(())
}

/// Pages smaller than this are checked on the calling thread (a thread costs more than it saves).
const PARALLEL_MIN: usize = 64;

/// The log-independent checks of a pulled page (signatures in batches, ciphertext hashes,
/// decryption), split over the machine's cores; results in page order. The chain checks that
/// follow stay sequential ([`Store::apply_incoming_page`]).
fn precheck_parallel(keys: &LogKeys<'_>, bytes: &[&[u8]]) -> Vec<Prechecked> {
    if bytes.len() == 1 {
        return bytes.iter().map(|b| precheck(keys, b)).collect();
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || bytes.len() < PARALLEL_MIN {
        return precheck_batch(keys, bytes);
    }
    let chunk = bytes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = bytes.chunks(chunk);
        // This thread takes the first chunk while the others run.
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|part| scope.spawn(move || precheck_batch(keys, part)))
            .collect();
        let mut out = precheck_batch(keys, first);
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Keeps a refused entry as evidence, as the session's judgement says: beside the entry held at
/// the same seq for two signed versions of one entry, and freezing the author's log where the
/// author signed against itself.
fn keep_evidence(store: &Store, plan: &EvidencePlan, error: &StoreError) -> Result<()> {
    let mut entries = vec![plan.entry.clone()];
    if let Some((author, seq)) = plan.with_held {
        if let Some(held) = store.log_entries(&author, seq).next().transpose()? {
            entries.insert(0, held.1.to_vec());
        }
    }
    if let Some(author) = plan.freeze {
        store.freeze(&author)?;
    }
    store.record_evidence(&Evidence {
        time_ms: crate::timefmt::now_ms(),
        reason: error.to_string(),
        entries,
    })?;
    Ok(())
}

/// One full round: push what the relay lacks, pull what this device lacks, checkpoint if due,
/// audit.
pub async fn sync_once(store: &Store, paired: &Paired) -> Result<SyncReport> {
    let mut paired = paired.clone();
    let client = connect(&paired).await?;
    let result = async {
        let mut session = session_for(store, &paired, Mode::Once)?;
        let mut report = SyncReport::default();
        run(&client, store, &mut paired, &mut session, &mut report, None).await?;
        Ok(report)
    }
    .await;
    client.close().await;
    result
}

/// One connected session of `sync --watch`; returns when the connection fails.
async fn watch_session(
    store: &Store,
    paired: &mut Paired,
    wake: &Notify,
    connected: &mut bool,
) -> Result<()> {
    let client = connect(paired).await?;
    *connected = true;
    eprintln!("connected to relay {}", paired.config.relay);
    let mut subscription = client.subscribe(paired.config.space).await?;
    let mut session = session_for(store, paired, Mode::Watch)?;
    let mut report = SyncReport::default();
    let wakers = Wakers {
        subscription: &mut subscription,
        wake,
    };
    run(
        &client,
        store,
        paired,
        &mut session,
        &mut report,
        Some(wakers),
    )
    .await
}

/// `candor sync --watch`: stays connected, reconnecting with backoff, until `shutdown` resolves.
pub async fn watch(
    home: &Home,
    store: &Store,
    wake: &Notify,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut paired = Paired::load(home, store)?;
        let mut connected = false;
        let result = tokio::select! {
            result = watch_session(store, &mut paired, wake, &mut connected) => result,
            () = &mut shutdown => return Ok(()),
        };
        if connected {
            backoff = Duration::from_millis(100);
        }
        if let Err(e) = result {
            eprintln!("candor: {e:#}; retrying in {} ms", backoff.as_millis());
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut shutdown => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
