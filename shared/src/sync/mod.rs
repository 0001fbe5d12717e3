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
//! The machine reads the device's own log through [`LocalLog`] and never writes it: storing
//! pulled entries (after [`verify_incoming`]) is the driver's job, so durability stays with it.
//! In watch mode the driver calls [`SyncMachine::local_written`] after each local write and
//! [`SyncMachine::handle_notify`] when the relay announces a new cursor.

mod verify;

pub use verify::{verify_incoming, Incoming, IncomingError, LogKeys};

use crate::chain::LogHead;
use crate::wire::{
    PagedEntry, PushOutcome, Request, Response, MAX_PAGE_ENTRIES, MAX_PUSH_BYTES, MAX_PUSH_ENTRIES,
};
use crate::{DeviceKey, SpaceId};
use std::collections::VecDeque;

/// Read access to the device's own log.
pub trait LocalLog {
    /// The store's error type.
    type Error: std::error::Error;
    /// Number of entries in this device's own log.
    fn own_count(&self) -> Result<u64, Self::Error>;
    /// Own entries in wire form, from `seq`, at most `limit`.
    fn own_entries(&self, from_seq: u64, limit: usize) -> Result<Vec<Vec<u8>>, Self::Error>;
}

/// Something the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// Entries pulled from the relay, in cursor order: verify and store each.
    Pulled(Vec<PagedEntry>),
    /// Persist this pull cursor (emitted after the `Pulled` it covers).
    Cursor(u64),
    /// The relay durably stored this many more of our entries.
    Pushed(u64),
    /// The relay holds less of the partner's log than this device already verified.
    PartnerRollback {
        /// The partner device.
        partner: DeviceKey,
        /// What we verified.
        ours: u64,
        /// What the relay claims.
        relay: u64,
    },
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
    /// The relay refused one of our entries.
    #[error("relay refused our entry at seq {seq}: {reason}")]
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
    Push { from: u64, count: u64 },
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
    cursor: u64,
    relay_has_own: Option<u64>,
    want_push: bool,
    want_pull: bool,
    next_id: u64,
    outstanding: Option<Outstanding>,
    events: VecDeque<SyncEvent>,
    partner_verified: Option<(DeviceKey, u64)>,
}

impl SyncMachine {
    /// A machine that will first ask for heads, push, then pull from `cursor`.
    pub fn new(space: SpaceId, me: DeviceKey, cursor: u64) -> Self {
        Self {
            space,
            me,
            cursor,
            relay_has_own: None,
            want_push: true,
            want_pull: true,
            next_id: 1,
            outstanding: None,
            events: VecDeque::new(),
            partner_verified: None,
        }
    }

    /// Tells the machine how much of the partner's log this device has verified, so it can
    /// notice a relay that serves less.
    pub fn set_partner_verified(&mut self, partner: DeviceKey, count: u64) {
        self.partner_verified = Some((partner, count));
    }

    /// The pull cursor reached so far.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether a request is outstanding or work is pending.
    pub fn is_idle(&self) -> bool {
        self.outstanding.is_none() && !self.want_push && !self.want_pull
    }

    /// A local entry was written: push it when possible.
    pub fn local_written(&mut self) {
        self.want_push = true;
    }

    /// The relay announced that the space's latest cursor is `cursor`.
    pub fn handle_notify(&mut self, cursor: u64) {
        if cursor > self.cursor {
            self.want_pull = true;
        }
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
        let step = if self.relay_has_own.is_none() {
            Step::Heads
        } else if self.want_push {
            let from = self.relay_has_own.unwrap_or(0);
            let own = local
                .own_count()
                .map_err(|e| SyncError::Local(e.to_string()))?;
            if from >= own {
                self.want_push = false;
                return self.poll_request(local);
            }
            Step::Push {
                from,
                count: (own - from).min(MAX_PUSH_ENTRIES as u64),
            }
        } else if self.want_pull {
            Step::Pull
        } else {
            return Ok(None);
        };
        let (step, request) = match step {
            Step::Heads => (step, Request::Heads { space: self.space }),
            Step::Push { from, count } => {
                let entries = push_batch(
                    local
                        .own_entries(from, count as usize)
                        .map_err(|e| SyncError::Local(e.to_string()))?,
                );
                let step = Step::Push {
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

    /// Delivers the relay's answer to request `id`.
    pub fn handle_response(&mut self, id: u64, response: Response) -> Result<(), SyncError> {
        let Some(out) = self.outstanding.as_ref().filter(|o| o.id == id) else {
            return Ok(()); // stale or duplicated answer
        };
        let step = out.step;
        self.outstanding = None;
        if let Response::Error { code, message } = &response {
            return Err(SyncError::Refused(format!("{message} ({code:?})")));
        }
        match (step, response) {
            (Step::Heads, Response::HeadList { heads }) => self.on_heads(&heads),
            (Step::Push { from, count }, Response::Pushed { outcomes }) => {
                self.on_pushed(from, count, outcomes)
            }
            (Step::Pull, Response::Page { entries, more }) => {
                self.on_page(entries, more);
                Ok(())
            }
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

    fn on_heads(&mut self, heads: &[(DeviceKey, LogHead)]) -> Result<(), SyncError> {
        let relay_own = heads
            .iter()
            .find(|(author, _)| *author == self.me)
            .map_or(0, |(_, head)| head.count);
        self.relay_has_own = Some(relay_own);
        self.want_push = true;
        if let Some((partner, ours)) = self.partner_verified {
            let relay = heads
                .iter()
                .find(|(author, _)| *author == partner)
                .map_or(0, |(_, head)| head.count);
            if relay < ours {
                self.events.push_back(SyncEvent::PartnerRollback {
                    partner,
                    ours,
                    relay,
                });
            }
        }
        Ok(())
    }

    fn on_pushed(
        &mut self,
        from: u64,
        count: u64,
        outcomes: Vec<PushOutcome>,
    ) -> Result<(), SyncError> {
        if outcomes.len() as u64 != count {
            return Err(SyncError::Unexpected("Push"));
        }
        let mut stored = 0;
        for (offset, outcome) in outcomes.into_iter().enumerate() {
            let seq = from + offset as u64;
            match outcome {
                PushOutcome::Stored { .. } => stored += 1,
                PushOutcome::Duplicate => {}
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
        self.relay_has_own = Some(from + count);
        if stored > 0 {
            self.events.push_back(SyncEvent::Pushed(stored));
        }
        Ok(())
    }

    fn on_page(&mut self, entries: Vec<PagedEntry>, more: bool) {
        // Only entries beyond our cursor count; a stale page may repeat some.
        let fresh: Vec<PagedEntry> = entries
            .into_iter()
            .filter(|e| e.cursor > self.cursor)
            .collect();
        if let Some(last) = fresh.last().map(|e| e.cursor) {
            self.cursor = last;
            self.events.push_back(SyncEvent::Pulled(fresh));
            self.events.push_back(SyncEvent::Cursor(last));
        }
        self.want_pull = more;
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
