//! The device side of sync, as a state machine: push what the relay lacks, pull what we lack.
//!
//! # Calling contract
//!
//! A [`SyncMachine`] talks to one relay about one space. It sends at most one request at a time.
//! The driver loops:
//!
//! 1. [`SyncMachine::poll_request`] — a request to send, tagged with an id, or `None`.
//! 2. It delivers the relay's answer with [`SyncMachine::handle_response`] (answers with an id
//!    other than the outstanding one are ignored, so late duplicates are harmless).
//! 3. It drains [`SyncMachine::poll_event`]: pulled entries to verify and store, then the new
//!    cursor to persist *after* those entries are stored, and progress/completion.
//! 4. If no answer comes, [`SyncMachine::handle_timeout`] re-sends the outstanding request under
//!    a new id. Every request is idempotent at the relay, so re-sending is always safe.
//!
//! The machine reads the device's logs through [`LocalLog`] and never writes them: storing
//! pulled entries (after [`verify_incoming`]) is the driver's job, so durability stays with it.
//! In watch mode the driver calls [`SyncMachine::local_written`] after each local write and
//! [`SyncMachine::handle_notify`] when the relay announces a new cursor.

mod verify;

pub use verify::{
    precheck, precheck_batch, verify_incoming, verify_prechecked, Incoming, IncomingError, LogKeys,
    Prechecked,
};

use crate::chain::LogHead;
use crate::wire::{
    PagedEntry, PushOutcome, Request, Response, MAX_PAGE_ENTRIES, MAX_PUSH_BYTES, MAX_PUSH_ENTRIES,
};
use crate::{DeviceKey, SpaceId};
use std::collections::VecDeque;

/// Read access to the logs this device holds.
pub trait LocalLog {
    /// The store's error type.
    type Error: std::error::Error;
    /// Number of entries held of `author`'s log.
    fn count(&self, author: &DeviceKey) -> Result<u64, Self::Error>;
    /// Entries of `author`'s log in wire form, from `from_seq`, at most `limit`.
    fn entries(
        &self,
        author: &DeviceKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Self::Error>;
}

/// Something the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// Entries pulled from the relay, in cursor order: verify and store each.
    Pulled(Vec<PagedEntry>),
    /// Persist this pull cursor (emitted after the `Pulled` it covers).
    Cursor(u64),
    /// The relay now durably holds these entries of this device's own log (entries it lacked
    /// when sync began or after the last push): `count` entries from seq `from`.
    Pushed {
        /// First seq.
        from: u64,
        /// How many.
        count: u64,
    },
    /// The relay holds less of the partner's log than this device verified: it lost data (or
    /// rolled it back). The machine re-uploads the missing entries; tell the person.
    RelayBehind {
        /// The partner device.
        partner: DeviceKey,
        /// Entries this device verified.
        ours: u64,
        /// Entries the relay holds.
        relay: u64,
    },
    /// The relay again holds this many of the partner's entries that it had lost.
    Restored(u64),
    /// The relay holds `relay` entries of this device's own log, fewer than the `ours` this
    /// device holds; the missing ones will be pushed. Whether the relay had acknowledged them
    /// before (and so lost them) only the driver knows.
    OwnBehind {
        /// Entries of the own log this device holds.
        ours: u64,
        /// Entries of it the relay holds.
        relay: u64,
    },
    /// The relay's cursors no longer match this device's (it was restored from a backup or lost
    /// data): persist cursor 0; everything is pulled again and entries already held are skipped.
    CursorReset,
    /// Push and pull are complete; nothing is outstanding.
    Idle,
}

/// Why sync stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// The relay refused a request.
    #[error("relay refused: {0}")]
    Refused(String),
    /// The relay answered with something that does not fit the request.
    #[error("relay sent an unexpected answer to {0}")]
    Unexpected(&'static str),
    /// The relay refused one of the entries sent.
    #[error("relay refused the entry at seq {seq}: {reason}")]
    EntryRefused {
        /// The entry's seq.
        seq: u64,
        /// The relay's reason.
        reason: String,
    },
    /// The relay claims more of our log than we have.
    #[error(
        "the relay holds {relay} entries of this device's log but this device has only {ours}; \
         was this device restored from an old copy?"
    )]
    AheadOfUs {
        /// Our count.
        ours: u64,
        /// The relay's count.
        relay: u64,
    },
    /// Reading the local log failed.
    #[error("local store: {0}")]
    Local(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Heads,
    Push {
        author: DeviceKey,
        from: u64,
        count: u64,
    },
    Pull,
}

#[derive(Debug)]
struct Outstanding {
    id: u64,
    step: Step,
    request: Request,
    sent: bool,
}

/// The sync state machine for one space; see the module docs for the calling contract.
#[derive(Debug)]
pub struct SyncMachine {
    space: SpaceId,
    me: DeviceKey,
    partner: Option<DeviceKey>,
    cursor: u64,
    /// How many entries of each log the relay holds, once known.
    relay_counts: Option<Vec<(DeviceKey, u64)>>,
    want_push: bool,
    want_pull: bool,
    next_id: u64,
    outstanding: Option<Outstanding>,
    events: VecDeque<SyncEvent>,
    /// Whether a full re-pull already ran since the last `Heads`.
    repulled: bool,
    /// Set after a restore from a recovery bundle: the relay may hold more of this device's
    /// own log (written by the old device after the bundle); pull it instead of refusing.
    adopt_own: bool,
    /// Relay counts that once exceeded what this device held after pulling to the end. Heads
    /// may count entries the relay has stored but not yet flushed (and so not yet serves), so a
    /// shortfall is only believed if it is still there after fresh heads and another pull that
    /// brought nothing new.
    suspect: Option<Vec<(DeviceKey, u64)>>,
    /// Whether a pull returned entries since `suspect` was set (in a live space the shortfall
    /// is then entries still being flushed, not changed cursors).
    progressed: bool,
}

impl SyncMachine {
    /// A machine that will first ask for heads, push, then pull from `cursor`.
    pub fn new(space: SpaceId, me: DeviceKey, partner: Option<DeviceKey>, cursor: u64) -> Self {
        Self {
            space,
            me,
            partner,
            cursor,
            relay_counts: None,
            want_push: true,
            want_pull: true,
            next_id: 1,
            outstanding: None,
            events: VecDeque::new(),
            repulled: false,
            adopt_own: false,
            suspect: None,
            progressed: false,
        }
    }

    /// After a restore from a recovery bundle: accept that the relay holds more of this
    /// device's own log than the device does, and pull it (the store then checks each entry).
    pub fn set_adopt_own(&mut self, adopt: bool) {
        self.adopt_own = adopt;
    }

    /// Tells the machine who the partner is, once learned (e.g. after they joined).
    pub fn set_partner(&mut self, partner: DeviceKey) {
        self.partner = Some(partner);
    }

    /// The pull cursor reached so far.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether nothing is outstanding and no work is pending.
    pub fn is_idle(&self) -> bool {
        self.outstanding.is_none()
            && !self.want_push
            && !self.want_pull
            && self.relay_counts.is_some()
    }

    /// A local entry was written: push it when possible.
    pub fn local_written(&mut self) {
        self.want_push = true;
    }

    /// The relay announced that the space's latest cursor is `cursor`.
    pub fn handle_notify(&mut self, cursor: u64) {
        if cursor > self.cursor {
            self.want_pull = true;
        } else if cursor < self.cursor {
            // Either a notification overtaken by our own pulls, or a relay whose cursors went
            // back (restored from a backup). Ask for heads: the check after pulling tells which.
            self.relay_counts = None;
        }
    }

    /// The driver met a pulled entry that skips ahead of its author's log (a seq gap). With an
    /// honest relay that means the relay's cursors changed under this device (a restore from
    /// backup): drop the rest of the page and pull everything once more. Returns false if that
    /// was already tried since the last `Heads` — then the gap is real and must be reported.
    pub fn restart_pull(&mut self) -> bool {
        if self.repulled {
            return false;
        }
        self.repulled = true;
        self.cursor = 0;
        self.want_pull = true;
        self.events
            .retain(|e| !matches!(e, SyncEvent::Cursor(_) | SyncEvent::Pulled(_)));
        self.events.push_back(SyncEvent::CursorReset);
        true
    }

    /// After pulling to the end: if the relay holds more of a log than this device got, its
    /// cursors must have changed under us, so pull everything once more.
    fn missed_entries<L: LocalLog>(&self, local: &L) -> Result<bool, SyncError> {
        for author in std::iter::once(self.me).chain(self.partner) {
            let ours = local
                .count(&author)
                .map_err(|e| SyncError::Local(e.to_string()))?;
            if ours < self.relay_count(&author) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether this device still holds fewer entries of a log than `counts` (heads seen
    /// earlier) say the relay had.
    fn missed_against<L: LocalLog>(
        &self,
        counts: &[(DeviceKey, u64)],
        local: &L,
    ) -> Result<bool, SyncError> {
        for (author, count) in counts {
            let ours = local
                .count(author)
                .map_err(|e| SyncError::Local(e.to_string()))?;
            if ours < *count {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn relay_count(&self, author: &DeviceKey) -> u64 {
        self.relay_counts
            .as_ref()
            .and_then(|counts| counts.iter().find(|(a, _)| a == author))
            .map_or(0, |(_, count)| *count)
    }

    fn set_relay_count(&mut self, author: DeviceKey, count: u64) {
        let counts = self.relay_counts.get_or_insert_with(Vec::new);
        match counts.iter_mut().find(|(a, _)| *a == author) {
            Some(entry) => entry.1 = count,
            None => counts.push((author, count)),
        }
    }

    /// The next log the relay lacks entries of: own first, then the partner's (re-upload).
    fn next_push<L: LocalLog>(&self, local: &L) -> Result<Option<Step>, SyncError> {
        let local_err = |e: L::Error| SyncError::Local(e.to_string());
        for author in std::iter::once(self.me).chain(self.partner) {
            let ours = local.count(&author).map_err(local_err)?;
            let relay = self.relay_count(&author);
            if relay < ours {
                return Ok(Some(Step::Push {
                    author,
                    from: relay,
                    count: (ours - relay).min(MAX_PUSH_ENTRIES as u64),
                }));
            }
        }
        Ok(None)
    }

    /// The next request to send, if any.
    pub fn poll_request<L: LocalLog>(
        &mut self,
        local: &L,
    ) -> Result<Option<(u64, Request)>, SyncError> {
        if let Some(out) = &mut self.outstanding {
            if out.sent {
                return Ok(None);
            }
            out.sent = true;
            return Ok(Some((out.id, out.request.clone())));
        }
        let step = if self.relay_counts.is_none() {
            Step::Heads
        } else if let Some(push) = self
            .want_push
            .then(|| self.next_push(local))
            .transpose()?
            .flatten()
        {
            push
        } else if self.want_pull {
            self.want_push = false;
            Step::Pull
        } else if !self.repulled && self.cursor > 0 && self.missed_entries(local)? {
            self.want_push = false;
            let confirmed = match self.suspect.take() {
                Some(earlier) => !self.progressed && self.missed_against(&earlier, local)?,
                None => false,
            };
            self.progressed = false;
            if confirmed {
                self.repulled = true;
                self.cursor = 0;
                self.events.push_back(SyncEvent::CursorReset);
                Step::Pull
            } else {
                // Perhaps entries not yet flushed at the relay: ask again before re-pulling all.
                self.suspect = self.relay_counts.take();
                Step::Heads
            }
        } else {
            self.suspect = None;
            self.want_push = false;
            return Ok(None);
        };
        let (step, request) = match step {
            Step::Heads => (step, Request::Heads { space: self.space }),
            Step::Push {
                author,
                from,
                count,
            } => {
                let entries = push_batch(
                    local
                        .entries(&author, from, count as usize)
                        .map_err(|e| SyncError::Local(e.to_string()))?,
                );
                let step = Step::Push {
                    author,
                    from,
                    count: entries.len() as u64,
                };
                let request = Request::Push {
                    space: self.space,
                    entries,
                };
                (step, request)
            }
            Step::Pull => (
                step,
                Request::Pull {
                    space: self.space,
                    after: self.cursor,
                    limit: MAX_PAGE_ENTRIES,
                },
            ),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.outstanding = Some(Outstanding {
            id,
            step,
            request: request.clone(),
            sent: true,
        });
        Ok(Some((id, request)))
    }

    /// The outstanding request got no answer: send it again under a new id.
    pub fn handle_timeout(&mut self) {
        if let Some(out) = &mut self.outstanding {
            out.id = self.next_id;
            self.next_id += 1;
            out.sent = false;
        }
    }

    /// Delivers the relay's answer to request `id`. `local` is consulted to compare the
    /// relay's heads with what this device holds.
    pub fn handle_response<L: LocalLog>(
        &mut self,
        id: u64,
        response: Response,
        local: &L,
    ) -> Result<(), SyncError> {
        let Some(out) = self.outstanding.as_ref().filter(|o| o.id == id) else {
            return Ok(()); // stale or duplicated answer
        };
        let step = out.step;
        self.outstanding = None;
        if let Response::Error { code, message } = &response {
            return Err(SyncError::Refused(format!("{message} ({code:?})")));
        }
        match (step, response) {
            (Step::Heads, Response::HeadList { heads }) => self.on_heads(&heads, local),
            (
                Step::Push {
                    author,
                    from,
                    count,
                },
                Response::Pushed { outcomes },
            ) => self.on_pushed(author, from, count, outcomes),
            (Step::Pull, Response::Page { entries, more }) => self.on_page(entries, more),
            (Step::Heads, _) => Err(SyncError::Unexpected("Heads")),
            (Step::Push { .. }, _) => Err(SyncError::Unexpected("Push")),
            (Step::Pull, _) => Err(SyncError::Unexpected("Pull")),
        }
        .inspect(|()| self.maybe_idle())
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    fn maybe_idle(&mut self) {
        if self.outstanding.is_none() && !self.want_pull && !self.want_push {
            self.events.push_back(SyncEvent::Idle);
        }
    }

    fn on_heads<L: LocalLog>(
        &mut self,
        heads: &[(DeviceKey, LogHead)],
        local: &L,
    ) -> Result<(), SyncError> {
        let local_err = |e: L::Error| SyncError::Local(e.to_string());
        self.relay_counts = Some(heads.iter().map(|(a, h)| (*a, h.count)).collect());
        self.repulled = false;
        let ours = local.count(&self.me).map_err(local_err)?;
        let relay = self.relay_count(&self.me);
        if relay > ours && !self.adopt_own {
            return Err(SyncError::AheadOfUs { ours, relay });
        }
        if relay < ours {
            self.events.push_back(SyncEvent::OwnBehind { ours, relay });
        }
        if let Some(partner) = self.partner {
            let ours = local.count(&partner).map_err(local_err)?;
            let relay = self.relay_count(&partner);
            if relay < ours {
                self.events.push_back(SyncEvent::RelayBehind {
                    partner,
                    ours,
                    relay,
                });
            }
        }
        self.want_push = true;
        // The heads may count entries that arrived after the last pull (their notification is
        // still on its way): pull before judging whether the relay's cursors changed, or a
        // busy space would be pulled again from the start after every stale notification.
        self.want_pull = true;
        Ok(())
    }

    fn on_pushed(
        &mut self,
        author: DeviceKey,
        from: u64,
        count: u64,
        outcomes: Vec<PushOutcome>,
    ) -> Result<(), SyncError> {
        if outcomes.len() as u64 != count {
            return Err(SyncError::Unexpected("Push"));
        }
        for (offset, outcome) in outcomes.into_iter().enumerate() {
            let seq = from + offset as u64;
            match outcome {
                // A duplicate is an entry an earlier attempt stored but whose answer was lost.
                PushOutcome::Stored { .. } | PushOutcome::Duplicate => {}
                PushOutcome::Conflict => {
                    return Err(SyncError::EntryRefused {
                        seq,
                        reason: "the relay holds a different entry at this seq".into(),
                    })
                }
                PushOutcome::Rejected { reason } => {
                    return Err(SyncError::EntryRefused { seq, reason })
                }
            }
        }
        self.set_relay_count(author, from + count);
        if count > 0 {
            self.events.push_back(if author == self.me {
                SyncEvent::Pushed { from, count }
            } else {
                SyncEvent::Restored(count)
            });
        }
        Ok(())
    }

    fn on_page(&mut self, entries: Vec<PagedEntry>, more: bool) -> Result<(), SyncError> {
        // Cursors must rise strictly; a stale page may repeat entries at or below our cursor.
        let mut last = self.cursor;
        let mut fresh = Vec::with_capacity(entries.len());
        for paged in entries {
            if paged.cursor <= self.cursor {
                continue;
            }
            if paged.cursor <= last || paged.cursor == u64::MAX {
                return Err(SyncError::Unexpected("Pull (cursors out of order)"));
            }
            last = paged.cursor;
            fresh.push(paged);
        }
        if more && fresh.is_empty() {
            return Err(SyncError::Unexpected(
                "Pull (more entries promised, none sent)",
            ));
        }
        for paged in &fresh {
            // What the relay serves, it holds: keeps re-upload decisions accurate.
            if let Some((author, seq)) = crate::entry::peek_author_seq(&paged.entry) {
                if self.relay_count(&author) <= seq {
                    self.set_relay_count(author, seq.saturating_add(1));
                }
            }
        }
        if let Some(last) = fresh.last().map(|e| e.cursor) {
            self.progressed = true;
            self.cursor = last;
            self.events.push_back(SyncEvent::Pulled(fresh));
            self.events.push_back(SyncEvent::Cursor(last));
        }
        self.want_pull = more;
        Ok(())
    }
}

/// Keeps the longest prefix of `entries` within [`MAX_PUSH_BYTES`] (at least one entry).
fn push_batch(mut entries: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut used = 0usize;
    let keep = entries
        .iter()
        .take_while(|e| {
            used += e.len();
            used <= MAX_PUSH_BYTES
        })
        .count()
        .max(1);
    entries.truncate(keep);
    entries
}

#[cfg(test)]
mod sim;
