//! Drives the sync state machine (`candor_shared::sync::SyncMachine`) over a relay connection
//! and the local store: one round for `candor sync`, a connected loop for `candor sync --watch`.

use crate::checks;
use crate::commands::Paired;
use crate::home::Home;
use crate::net::{NetError, RelayClient};
use crate::output::Output;
use crate::store::{Evidence, Store, StoreError};
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::chain::ChainError;
use candor_shared::sync::IncomingError;
use candor_shared::sync::{precheck, precheck_batch, LogKeys, Prechecked, SyncEvent, SyncMachine};
use candor_shared::wire::{Request, Response};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::Notify;

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

/// Learns the partner's device from the relay's member list, checking the joiner's proof of
/// holding the invite (which the relay cannot forge). No-op once the partner is known.
async fn resolve_partner(client: &RelayClient, store: &Store, paired: &mut Paired) -> Result<()> {
    if paired.config.partner.is_some() {
        return Ok(());
    }
    let space = paired.config.space;
    let Response::MemberList { members } = client.request(&Request::Members { space }).await?
    else {
        bail!("the relay answered Members with something unexpected");
    };
    let me = paired.identity.secrets.device_key();
    let Some(other) = members.iter().find(|m| m.public.device != me) else {
        return Ok(()); // the partner has not joined yet
    };
    let secret = paired.invite_secret.as_ref().ok_or_else(|| {
        anyhow!("cannot check the partner's membership: the invite secret is missing")
    })?;
    if !secret.verify_join_proof(&space, &other.public, &other.proof) {
        bail!(
            "the relay presented a partner device ({}) that cannot prove it holds your invite; \
             refusing it — the relay may be trying to insert its own key",
            other.public.device.short()
        );
    }
    paired.config.partner = Some(other.public);
    store.set_space_config(&paired.config)?;
    Ok(())
}

fn machine_for(store: &Store, paired: &Paired) -> Result<SyncMachine> {
    let mut machine = SyncMachine::new(
        paired.config.space,
        paired.identity.secrets.device_key(),
        paired.config.partner.map(|p| p.device),
        store.cursor()?,
    );
    machine.set_adopt_own(store.adopting_own()?);
    Ok(machine)
}

/// Runs the machine until it has nothing left to send, applying its events to the store.
async fn drive(
    client: &RelayClient,
    store: &Store,
    paired: &mut Paired,
    machine: &mut SyncMachine,
    report: &mut SyncReport,
) -> Result<()> {
    drive_announcing(client, store, paired, machine, report, &mut |_| {}).await
}

/// [`drive`], calling `announce` with the number of (non-control) entries of each pulled page
/// as soon as they are verified and durable, before the cursor is stored.
async fn drive_announcing(
    client: &RelayClient,
    store: &Store,
    paired: &mut Paired,
    machine: &mut SyncMachine,
    report: &mut SyncReport,
    announce: &mut (dyn FnMut(u64) + Send),
) -> Result<()> {
    let me = paired.identity.secrets.device_key();
    let mut prefetched: Option<(Request, crate::net::Prefetch)> = None;
    loop {
        while let Some(event) = machine.poll_event() {
            match event {
                SyncEvent::Pulled(entries) => {
                    resolve_partner(client, store, paired).await?;
                    if let Some(partner) = paired.config.partner {
                        machine.set_partner(partner.device);
                    }
                    let keys = LogKeys {
                        space: paired.config.space,
                        key: &paired.key,
                        me,
                        partner: paired.config.partner.map(|p| p.device),
                    };
                    let bytes: Vec<&[u8]> = entries.iter().map(|p| p.entry.as_slice()).collect();
                    let applied =
                        store.apply_incoming_page(&keys, precheck_parallel(&keys, &bytes))?;
                    crate::evidence::flag_future_dated(
                        store,
                        &applied.stored,
                        crate::timefmt::now_ms(),
                    )?;
                    let pulled = applied
                        .stored
                        .iter()
                        .filter(|e| e.header.class != candor_shared::entry::Class::Control)
                        .count() as u64;
                    report.pulled += pulled;
                    report.pulled_control += applied.stored.len() as u64 - pulled;
                    if let Some((index, error)) = applied.refused {
                        let (cursor, bytes) = entries
                            .get(index)
                            .map(|p| (p.cursor, p.entry.as_slice()))
                            .unwrap_or_default();
                        match error {
                            StoreError::Refused(IncomingError::Chain(ChainError::Gap {
                                ..
                            })) if machine.restart_pull() => {}
                            StoreError::Frozen => bail!(
                                "refused the entry at relay position {cursor}: {}",
                                StoreError::Frozen
                            ),
                            e => {
                                keep_evidence(store, bytes, &e)?;
                                bail!(
                                    "refused the entry at relay position {cursor}: {e}; it is \
                                     kept as evidence (see `candor verify`)"
                                );
                            }
                        }
                    }
                    store.flush()?;
                    if pulled > 0 {
                        announce(pulled);
                    }
                }
                SyncEvent::Cursor(cursor) => {
                    store.set_cursor(cursor)?;
                    store.flush()?;
                }
                SyncEvent::Pushed { from, count } => {
                    // Count what the person wrote, not protocol bookkeeping; entries the relay
                    // had acknowledged before and lost are re-uploads, not news.
                    let acknowledged = store.acknowledged_own()?;
                    for item in store.log_entries(&me, from).take(count as usize) {
                        let (seq, bytes) = item?;
                        if seq < acknowledged {
                            report.restored_own += 1;
                        } else if !candor_shared::entry::peek_is_control(&bytes) {
                            report.pushed += 1;
                        }
                    }
                    store.set_acknowledged_own(from + count)?;
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
                SyncEvent::Idle => {}
            }
        }
        let Some((id, request)) = machine.poll_request(store)? else {
            return Ok(());
        };
        let answer = match prefetched.take() {
            Some((ahead, prefetch)) if ahead == request => match prefetch.answer().await {
                Some(answer) => answer,
                None => client.request(&request).await,
            },
            _ => client.request(&request).await,
        };
        // While this page is verified and stored, the relay reads and sends the next one. Pulls
        // are idempotent: if the machine asks for something else, the answer is dropped.
        if let (
            Request::Pull { space, limit, .. },
            Ok(Response::Page {
                entries,
                more: true,
            }),
        ) = (&request, &answer)
        {
            if let Some(last) = entries.last() {
                let next = Request::Pull {
                    space: *space,
                    after: last.cursor,
                    limit: *limit,
                };
                prefetched = Some((next.clone(), client.spawn_request(next)));
            }
        }
        let response = match answer {
            Ok(response) => response,
            Err(NetError::Refused { code, message }) => Response::Error { code, message },
            Err(e) => return Err(e.into()),
        };
        machine.handle_response(id, response, store)?;
    }
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

/// Keeps a refused entry as evidence; for two signed versions of one entry, keeps both and
/// freezes that author's log.
fn keep_evidence(store: &Store, bytes: &[u8], error: &StoreError) -> Result<()> {
    let mut entries = vec![bytes.to_vec()];
    if let StoreError::Refused(IncomingError::Equivocation { .. }) = error {
        if let Some((author, seq)) = candor_shared::entry::peek_author_seq(bytes) {
            if let Some(held) = store.log_entries(&author, seq).next().transpose()? {
                entries.insert(0, held.1.to_vec());
            }
            store.freeze(&author)?;
        }
    }
    // A false checkpoint is signed proof that its author vouched for another history.
    if let StoreError::Refused(IncomingError::FalseCheckpoint { .. }) = error {
        if let Some((author, _)) = candor_shared::entry::peek_author_seq(bytes) {
            store.freeze(&author)?;
        }
    }
    store.record_evidence(&Evidence {
        time_ms: crate::timefmt::now_ms(),
        reason: error.to_string(),
        entries,
    })?;
    Ok(())
}

/// After a round: write and push a checkpoint if this device verified new partner entries, then
/// check both logs' signed views of each other. Problems stop the sync; notices are reported.
async fn finish_round(
    client: &RelayClient,
    store: &Store,
    paired: &mut Paired,
    machine: &mut SyncMachine,
    report: &mut SyncReport,
) -> Result<()> {
    if checks::checkpoint_if_behind(store, paired)? {
        machine.local_written();
        let mut checkpoint = SyncReport::default();
        drive(client, store, paired, machine, &mut checkpoint).await?;
        report.pulled += checkpoint.pulled;
    }
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

/// One full round: push what the relay lacks, pull what this device lacks.
pub async fn sync_once(store: &Store, paired: &Paired) -> Result<SyncReport> {
    let mut paired = paired.clone();
    let client = connect(&paired).await?;
    let result = async {
        resolve_partner(&client, store, &mut paired).await?;
        let mut machine = machine_for(store, &paired)?;
        let mut report = SyncReport::default();
        drive(&client, store, &mut paired, &mut machine, &mut report).await?;
        finish_round(&client, store, &mut paired, &mut machine, &mut report).await?;
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
    resolve_partner(&client, store, paired).await?;
    let mut subscription = client.subscribe(paired.config.space).await?;
    let mut machine = machine_for(store, paired)?;
    // Since when pulled entries wait for this device's checkpoint and audit.
    let mut unchecked_since: Option<std::time::Instant> = None;
    loop {
        let mut report = SyncReport::default();
        // Pulled entries are announced as soon as they are verified and durable (scripts and
        // the benchmark wait for this line); checkpoint and audit come later.
        let mut announce = |pulled: u64| {
            let mut out = Output::default();
            out.line(format!("pushed 0, pulled {pulled}"));
            out.emit();
        };
        drive_announcing(
            &client,
            store,
            paired,
            &mut machine,
            &mut report,
            &mut announce,
        )
        .await?;
        let pulled = std::mem::take(&mut report.pulled);
        let pulled_control = std::mem::take(&mut report.pulled_control);
        if report != SyncReport::default() {
            let mut out = Output::default();
            report.print(false, &mut out);
            out.emit();
        }
        if pulled + pulled_control > 0 && unchecked_since.is_none() {
            unchecked_since = Some(std::time::Instant::now());
        }
        if let Some(since) = unchecked_since {
            // Checkpoint and audit once the space is quiet for a moment (or after at most
            // CHECK_AT_LEAST), so that a stream of entries costs one checkpoint per pause, not
            // one per entry.
            let wait = CHECK_QUIET.min(CHECK_AT_LEAST.saturating_sub(since.elapsed()));
            tokio::select! {
                cursor = subscription.next() => {
                    machine.handle_notify(cursor?);
                    continue;
                }
                () = wake.notified() => {
                    machine.local_written();
                    continue;
                }
                err = client.closed() => return Err(err.into()),
                () = tokio::time::sleep(wait) => {}
            }
            unchecked_since = None;
            let mut after = SyncReport::default();
            finish_round(&client, store, paired, &mut machine, &mut after).await?;
            let mut out = Output::default();
            if after.pulled > 0 || after.pushed > 0 {
                after.print(false, &mut out);
            } else {
                for notice in &after.notices {
                    out.note(notice);
                }
            }
            out.emit();
            continue;
        }
        tokio::select! {
            cursor = subscription.next() => machine.handle_notify(cursor?),
            () = wake.notified() => machine.local_written(),
            err = client.closed() => return Err(err.into()),
        }
    }
}

/// How long the space must be quiet before `sync --watch` checkpoints and audits what it pulled.
const CHECK_QUIET: Duration = Duration::from_millis(5);
/// The longest `sync --watch` defers its checkpoint and audit while entries keep arriving.
const CHECK_AT_LEAST: Duration = Duration::from_millis(500);

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
