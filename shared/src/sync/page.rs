//! Judging a page of pulled entries, in order, before any of it is stored: the one place that
//! decides which entries a device accepts.
//!
//! [`judge_page`] takes a page whose log-independent checks already ran ([`super::precheck_batch`])
//! and the device's logs as a [`HeldLogs`], and decides entry by entry against the logs as they
//! will be once the accepted entries before it are stored ([`PendingHeads`]):
//!
//! * an entry of a frozen log (one whose author was caught signing against itself) is refused;
//! * membership, chain position and equivocation ([`super::verify_prechecked`]);
//! * after a restore from a recovery bundle (`adopting`), an own entry this device does not hold
//!   is adopted if it extends the own log (the old device wrote it after the bundle was made);
//! * a checkpoint must commit to the Merkle root of its author's log as this device verified
//!   it, entries of the same page included.
//!
//! The first refusal ends the page: entries after it are not judged. The caller stores
//! [`PageVerdict::accepted`] in one write and hands [`PageVerdict::outcome`] to the session,
//! which decides what follows ([`super::judge_refusal`]). The client's store and the simulation
//! both call this function, so the simulation tests the judgement the product makes.

use super::judge::Refusal;
use super::session::PageOutcome;
use super::verify::{verify_prechecked, Incoming, IncomingError, LogKeys, Prechecked};
use crate::chain::{Fit, LogHead, PendingHeads};
use crate::entry::Entry;
use crate::merkle::{Frontier, TreeHash};
use crate::payload::{Content, Payload};
use crate::{DeviceKey, EntryHash};

/// What judging a page reads of the logs a device holds.
pub trait HeldLogs {
    /// The store's error type.
    type Error;
    /// The head of `author`'s log.
    fn head(&self, author: &DeviceKey) -> Result<LogHead, Self::Error>;
    /// The hash of `author`'s entry at `seq`, if held.
    fn hash_at(&self, author: &DeviceKey, seq: u64) -> Result<Option<EntryHash>, Self::Error>;
    /// Whether `author`'s log is frozen (evidence that its author forked it is held).
    fn is_frozen(&self, author: &DeviceKey) -> Result<bool, Self::Error>;
    /// The Merkle frontier over `author`'s first `count` entries, all of them held.
    fn frontier(&self, author: &DeviceKey, count: u64) -> Result<Frontier, Self::Error>;
}

/// Why [`judge_page`] refused an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum PageRefusal {
    /// Its author's log is frozen.
    Frozen,
    /// It failed a check.
    Incoming(IncomingError),
}

impl PageRefusal {
    /// The kind of refusal the session judges.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Frozen => Refusal::Frozen,
            Self::Incoming(error) => Refusal::of(error),
        }
    }
}

/// What [`judge_page`] decided about a page.
#[derive(Debug, Default)]
pub struct PageVerdict {
    /// The entries accepted and new, in page order: store them all, in one write.
    pub accepted: Vec<Entry>,
    /// Each accepted entry's payload (`None`: a private entry, which only its author opens).
    pub payloads: Vec<Option<Payload>>,
    /// The first entry refused: its index in the page and why. Entries after it were not
    /// judged; entries before it were.
    pub refused: Option<(usize, PageRefusal)>,
}

impl PageVerdict {
    /// What to tell the session ([`super::SyncSession::handle_applied`]) once the accepted
    /// entries are stored.
    pub fn outcome(&self) -> PageOutcome {
        PageOutcome {
            stored: self.accepted.len() as u64,
            refused: self
                .refused
                .as_ref()
                .map(|(index, why)| (*index, why.refusal())),
        }
    }
}

/// Judges `page` in order against `logs` (see the module docs); `adopting` says whether this
/// device was restored from a bundle and has not written since. Errors are the store's only:
/// refusals are in the verdict.
pub fn judge_page<L: HeldLogs>(
    logs: &L,
    keys: &LogKeys<'_>,
    adopting: bool,
    page: Vec<Prechecked>,
) -> Result<PageVerdict, L::Error> {
    let mut pending = PendingHeads::default();
    let mut verdict = PageVerdict::default();
    let mut frozen: Vec<(DeviceKey, bool)> = Vec::new();
    for (index, prechecked) in page.into_iter().enumerate() {
        if let Some((author, _)) = prechecked.author_seq() {
            let is_frozen = match frozen.iter().find(|(a, _)| *a == author) {
                Some((_, known)) => *known,
                None => {
                    let known = logs.is_frozen(&author)?;
                    frozen.push((author, known));
                    known
                }
            };
            if is_frozen {
                verdict.refused = Some((index, PageRefusal::Frozen));
                break;
            }
        }
        match judge_entry(logs, keys, adopting, &pending, prechecked)? {
            Ok(Incoming::AlreadyHeld) => {}
            Ok(Incoming::New { entry, payload }) => {
                let author = entry.header.author;
                let head = pending.head(&author, || logs.head(&author))?;
                pending.push(author, head, entry.hash);
                verdict.accepted.push(*entry);
                verdict.payloads.push(payload);
            }
            Err(error) => {
                verdict.refused = Some((index, PageRefusal::Incoming(error)));
                break;
            }
        }
    }
    Ok(verdict)
}

/// One entry's verdict against the logs with `pending` stored.
fn judge_entry<L: HeldLogs>(
    logs: &L,
    keys: &LogKeys<'_>,
    adopting: bool,
    pending: &PendingHeads,
    prechecked: Prechecked,
) -> Result<Result<Incoming, IncomingError>, L::Error> {
    let adoptable = adopting
        .then(|| {
            prechecked
                .entry()
                .filter(|e| e.header.author == keys.me)
                .cloned()
        })
        .flatten();
    // Either lookup may fail; a failure is the result, not a verdict.
    let lookup_error = std::cell::Cell::new(None);
    let verdict = verify_prechecked(
        keys,
        prechecked,
        |author| {
            pending
                .head(author, || logs.head(author))
                .unwrap_or_else(|e| {
                    lookup_error.set(Some(e));
                    LogHead::default()
                })
        },
        |author, seq| match pending.hash_at(author, seq) {
            Some(hash) => Some(hash),
            None => logs.hash_at(author, seq).unwrap_or_else(|e| {
                lookup_error.set(Some(e));
                None
            }),
        },
    );
    if let Some(e) = lookup_error.into_inner() {
        return Err(e);
    }
    let verdict = match (verdict, adoptable) {
        (Err(IncomingError::UnknownOwnEntry { seq }), Some(entry)) => {
            adopt_own(logs, keys, pending, seq, entry)?
        }
        (verdict, _) => verdict,
    };
    // A checkpoint must commit to the log this device verified before it.
    Ok(match verdict {
        Ok(Incoming::New { entry, payload }) => {
            match check_checkpoint(logs, pending, &entry, payload.as_ref())? {
                Ok(()) => Ok(Incoming::New { entry, payload }),
                Err(refused) => Err(refused),
            }
        }
        other => other,
    })
}

/// After a restore: accepts an entry of this device's own log that the old device wrote after
/// the bundle was made, if it is signed by this device's key (the precheck verified that) and
/// extends the own log.
fn adopt_own<L: HeldLogs>(
    logs: &L,
    keys: &LogKeys<'_>,
    pending: &PendingHeads,
    seq: u64,
    entry: Entry,
) -> Result<Result<Incoming, IncomingError>, L::Error> {
    let head = pending.head(&keys.me, || logs.head(&keys.me))?;
    Ok(match head.classify(&keys.space, &entry.header) {
        Ok(Fit::Next) => entry
            .open_readable(keys.key)
            .map(|payload| Incoming::New {
                payload,
                entry: Box::new(entry),
            })
            .map_err(IncomingError::Undecryptable),
        _ => Err(IncomingError::UnknownOwnEntry { seq }),
    })
}

/// Refuses a checkpoint whose Merkle root differs from the root over the entries of its author
/// that this device verified before it (held, or pending in this page); other payloads pass.
fn check_checkpoint<L: HeldLogs>(
    logs: &L,
    pending: &PendingHeads,
    entry: &Entry,
    payload: Option<&Payload>,
) -> Result<Result<(), IncomingError>, L::Error> {
    let Some(Ok(Content::Checkpoint(Some(checkpoint)))) = payload.map(Payload::content) else {
        return Ok(Ok(()));
    };
    let (author, seq) = (entry.header.author, entry.header.seq);
    if checkpoint.own_root == root_before(logs, pending, &author, seq)? {
        return Ok(Ok(()));
    }
    Ok(Err(IncomingError::FalseCheckpoint {
        author: author.short(),
        seq,
    }))
}

/// The Merkle root over `author`'s first `seq` entries: the held ones, then the pending ones
/// (the entry at `seq` extends the pending head, so they are exactly the rest).
fn root_before<L: HeldLogs>(
    logs: &L,
    pending: &PendingHeads,
    author: &DeviceKey,
    seq: u64,
) -> Result<TreeHash, L::Error> {
    let (first_pending, hashes) = pending.pending(author);
    let held = if hashes.is_empty() {
        seq
    } else {
        first_pending
    };
    let mut frontier = logs.frontier(author, held)?;
    for hash in hashes {
        frontier.push(hash);
    }
    Ok(frontier.root())
}
