//! [`SyncSession`]: one connected sync session of a device, as a sans-IO state machine.
//!
//! # Calling contract
//!
//! The driver owns the connection, the store and the clock, and loops:
//!
//! 1. Performs every [`Action`] from [`SyncSession::poll_action`] until it returns `None`:
//!    * [`Action::Send`] — send the request (the window allows several in flight); deliver the
//!      answer, whenever it comes, with [`SyncSession::handle_response`].
//!    * [`Action::PartnerJoined`] — persist the partner the relay presented (its membership
//!      proof is already checked) *before* applying the next page.
//!    * [`Action::Apply`] — verify and store the page (prechecks, then the store's in-order
//!      judgement), make it durable, then report at once with [`SyncSession::handle_applied`], which
//!      says whether to go on or stop (and what evidence to keep). No other action comes first.
//!    * [`Action::Event`] — persist the cursor (after the page it covers is durable), count
//!      pushes, tell the person about a relay that lost data.
//!    * [`Action::Checkpoint`] — write a checkpoint if one is due ([`super::checkpoint_due`]);
//!      report with [`SyncSession::handle_checkpoint`].
//!    * [`Action::Audit`] — check both logs' signed views of each other; problems stop the sync.
//!    * [`Action::Drained`] — (watch mode) nothing is in flight any more: report what was done.
//!    * [`Action::RoundDone`] — the round (sync, checkpoint, audit) is complete; in
//!      [`Mode::Once`] the driver closes the connection.
//! 2. Waits for the first of: an answer, a relay notification ([`SyncSession::handle_notify`]), a
//!    local write ([`SyncSession::local_written`]), or the time [`SyncSession::poll_timeout`] names
//!    ([`SyncSession::handle_timeout`]).
//!
//! Time comes in as `now` on every call that may start a timer; the session never reads a clock.
//!
//! # What it decides
//!
//! * Partner discovery: while the partner is unknown, the relay's member list is read before the
//!   first heads and before each pulled page; a partner is accepted only with a valid proof of
//!   holding the invite (which the relay cannot forge).
//! * Page verdicts ([`super::judge_refusal`]): a gap restarts the pull once; other refusals stop
//!   with evidence, freezing the author's log for equivocation or a false checkpoint.
//! * When to checkpoint and audit: at the end of a round in [`Mode::Once`]; in [`Mode::Watch`]
//!   once the space has been quiet for [`CHECK_QUIET`] after entries were stored (or after at
//!   most [`CHECK_AT_LEAST`] while they keep coming), so a stream of entries costs one checkpoint
//!   per pause.
//! * Retries: requests unanswered for [`super::RETRY_AFTER`] are re-sent (all are idempotent).

use super::judge::{judge_refusal, Judgement, Refusal};
use super::{LocalLog, SyncError, SyncEvent, SyncMachine, RETRY_AFTER};
use crate::invite::InviteSecret;
use crate::keys::DevicePublic;
use crate::wire::{PagedEntry, Request, Response};
use crate::{DeviceKey, SpaceId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the space must be quiet before a watching device checkpoints and audits.
pub const CHECK_QUIET: Duration = Duration::from_millis(5);
/// The longest a watching device defers its checkpoint and audit while entries keep arriving.
pub const CHECK_AT_LEAST: Duration = Duration::from_millis(500);

/// Ids of the session's own requests (member lists), apart from the machine's (1, 2, …).
const MEMBERS_IDS: u64 = 1 << 63;

/// One round and out (`candor sync`), or connected until the connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sync, checkpoint if due, audit, done.
    Once,
    /// Stay connected: sync on notifications and local writes; checkpoint and audit when quiet.
    Watch,
}

/// What a session starts from.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The space.
    pub space: SpaceId,
    /// This device.
    pub me: DeviceKey,
    /// The partner's device, once known.
    pub partner: Option<DeviceKey>,
    /// The invite secret (kept by the space's creator until the partner joined): checks the
    /// joiner's membership proof.
    pub invite: Option<InviteSecret>,
    /// The persisted pull cursor.
    pub cursor: u64,
    /// After a restore from a recovery bundle: adopt own entries the old device wrote later.
    pub adopt_own: bool,
    /// Once or watch.
    pub mode: Mode,
    /// Requests in flight at once ([`super::DEFAULT_WINDOW`]).
    pub window: usize,
}

/// Something the driver must do (see the module docs).
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this request; answer with [`SyncSession::handle_response`] under the same id.
    Send {
        /// The request's id.
        id: u64,
        /// The request.
        request: Request,
    },
    /// The partner joined and proved it holds the invite: persist it.
    PartnerJoined(DevicePublic),
    /// Verify and store these pulled entries, then call [`SyncSession::handle_applied`].
    Apply(Vec<PagedEntry>),
    /// Persist or report this (never `Pulled` or `Idle`: those are `Apply` and `Drained`).
    Event(SyncEvent),
    /// Write a checkpoint if one is due; then call [`SyncSession::handle_checkpoint`].
    Checkpoint,
    /// Audit both logs.
    Audit,
    /// Nothing is in flight any more (watch mode: report what this burst did).
    Drained,
    /// The round is complete.
    RoundDone,
}

/// What the store did with a page ([`Action::Apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOutcome {
    /// Entries newly stored.
    pub stored: u64,
    /// The first entry refused (its index in the page) and why; later ones were not judged.
    pub refused: Option<(usize, Refusal)>,
}

/// What follows from an applied page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Go on.
    Continue,
    /// Stop: the entry at relay position `cursor` was refused; keep evidence as the judgement
    /// says, then report.
    Stop {
        /// The refused entry's relay cursor.
        cursor: u64,
        /// [`Judgement::Stop`] or [`Judgement::Evidence`].
        judgement: Judgement,
    },
}

/// Why a session stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// The push/pull protocol failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A partner is listed but this device cannot check its proof.
    #[error("cannot check the partner's membership: the invite secret is missing")]
    NoInviteSecret,
    /// The relay listed a partner device without a valid membership proof.
    #[error(
        "the relay presented a partner device ({0}) that cannot prove it holds your invite; \
         refusing it — the relay may be trying to insert its own key"
    )]
    UnprovenMember(String),
    /// The relay answered `Members` with something else.
    #[error("the relay answered Members with something unexpected")]
    UnexpectedMembers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Pushing and pulling.
    Syncing,
    /// Waiting for [`SyncSession::handle_checkpoint`].
    Checkpointing,
    /// A checkpoint was written: push it, then audit.
    PushingCheckpoint,
    /// [`Mode::Once`]: the round is over.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Members {
    /// Nothing to ask.
    Settled,
    /// Ask the relay for its member list.
    Ask,
    /// Asked under this id at this time.
    Asked(u64, Instant),
}

/// One sync session; see the module docs for the calling contract.
#[derive(Debug)]
pub struct SyncSession {
    machine: SyncMachine,
    space: SpaceId,
    me: DeviceKey,
    invite: Option<InviteSecret>,
    mode: Mode,
    phase: Phase,
    members: Members,
    next_members_id: u64,
    /// A page held back until the member list is read (the partner may have just joined).
    waiting_page: Option<Vec<PagedEntry>>,
    /// Whether the member list was read for the page now waiting in the machine.
    members_read: bool,
    pending: VecDeque<Action>,
    /// An `Apply` was handed out and not yet reported.
    applying: bool,
    /// `Drained` was handed out since the last activity.
    drained: bool,
    /// Watch mode: since when stored entries wait for a checkpoint and audit.
    unchecked_since: Option<Instant>,
    /// Watch mode: when the quiet window ends.
    quiet_until: Option<Instant>,
}

impl SyncSession {
    /// A session that starts by reading the member list (if the partner is unknown), then heads.
    pub fn new(config: SessionConfig) -> Self {
        let mut machine = SyncMachine::new(config.space, config.me, config.partner, config.cursor);
        machine.set_adopt_own(config.adopt_own);
        machine.set_window(config.window);
        Self {
            machine,
            space: config.space,
            me: config.me,
            invite: config.invite,
            mode: config.mode,
            phase: Phase::Syncing,
            members: if config.partner.is_none() {
                Members::Ask
            } else {
                Members::Settled
            },
            next_members_id: MEMBERS_IDS,
            waiting_page: None,
            members_read: false,
            pending: VecDeque::new(),
            applying: false,
            drained: false,
            unchecked_since: None,
            quiet_until: None,
        }
    }

    /// The underlying push/pull machine (for tests and diagnostics).
    pub fn machine(&self) -> &SyncMachine {
        &self.machine
    }

    /// Whether the round is complete ([`Mode::Once`] only; a watch session never is).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next thing to do at `now`, if any; call until `None`.
    pub fn poll_action<L: LocalLog>(
        &mut self,
        local: &L,
        now: Instant,
    ) -> Result<Option<Action>, SessionError> {
        if self.applying {
            return Ok(None); // `handle_applied` first
        }
        if let Some(action) = self.pending.pop_front() {
            self.applying = matches!(action, Action::Apply(_));
            return Ok(Some(action));
        }
        match self.members {
            Members::Ask => {
                let id = self.next_members_id;
                self.next_members_id += 1;
                self.members = Members::Asked(id, now);
                self.drained = false;
                let request = Request::Members { space: self.space };
                return Ok(Some(Action::Send { id, request }));
            }
            Members::Asked(..) => return Ok(None), // the member list comes first
            Members::Settled => {}
        }
        if let Some(page) = self.waiting_page.take() {
            self.applying = true;
            return Ok(Some(Action::Apply(page)));
        }
        while let Some(event) = self.machine.poll_event() {
            match event {
                SyncEvent::Pulled(page)
                    if self.machine.partner().is_none() && !self.members_read =>
                {
                    self.members_read = true;
                    self.waiting_page = Some(page);
                    self.members = Members::Ask;
                    return self.poll_action(local, now);
                }
                SyncEvent::Pulled(page) => {
                    self.members_read = false;
                    self.applying = true;
                    return Ok(Some(Action::Apply(page)));
                }
                SyncEvent::Idle => {}
                event => return Ok(Some(Action::Event(event))),
            }
        }
        if self.phase == Phase::Done {
            return Ok(None);
        }
        if let Some((id, request)) = self.machine.poll_request(local, now)? {
            self.drained = false;
            return Ok(Some(Action::Send { id, request }));
        }
        if self.machine.is_idle() {
            self.on_idle(now);
        }
        Ok(self.pending.pop_front())
    }

    /// Nothing is in flight: report, and move the round on.
    fn on_idle(&mut self, now: Instant) {
        match self.phase {
            Phase::Syncing => {
                if !self.drained {
                    self.drained = true;
                    self.pending.push_back(Action::Drained);
                }
                match self.mode {
                    Mode::Once => {
                        self.phase = Phase::Checkpointing;
                        self.pending.push_back(Action::Checkpoint);
                    }
                    Mode::Watch => {
                        if let (Some(since), None) = (self.unchecked_since, self.quiet_until) {
                            self.quiet_until =
                                Some((now + CHECK_QUIET).min(since + CHECK_AT_LEAST));
                        }
                    }
                }
            }
            Phase::PushingCheckpoint => self.finish_round(),
            Phase::Checkpointing | Phase::Done => {}
        }
    }

    fn finish_round(&mut self) {
        self.pending.push_back(Action::Audit);
        self.pending.push_back(Action::RoundDone);
        self.unchecked_since = None;
        self.quiet_until = None;
        self.phase = match self.mode {
            Mode::Once => Phase::Done,
            Mode::Watch => Phase::Syncing,
        };
    }

    /// The earliest moment [`SyncSession::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let members = match self.members {
            Members::Asked(_, sent) => Some(sent + RETRY_AFTER),
            _ => None,
        };
        let quiet = self.quiet_until.filter(|_| self.phase == Phase::Syncing);
        [self.machine.poll_timeout(), members, quiet]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: re-send what went unanswered; end the quiet window.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.machine.handle_timeout(now);
        if let Members::Asked(_, sent) = self.members {
            if now >= sent + RETRY_AFTER {
                self.members = Members::Ask;
            }
        }
        if self.phase == Phase::Syncing
            && self.quiet_until.is_some_and(|until| now >= until)
            && self.machine.is_idle()
        {
            self.quiet_until = None;
            self.phase = Phase::Checkpointing;
            self.pending.push_back(Action::Checkpoint);
        }
    }

    /// The simulation's "everything in flight was lost": re-send it all at the next poll.
    pub fn resend_all(&mut self) {
        self.machine.resend_all();
        if let Members::Asked(..) = self.members {
            self.members = Members::Ask;
        }
    }

    /// The relay announced that the space's latest cursor is `cursor`.
    pub fn handle_notify(&mut self, cursor: u64) {
        self.machine.handle_notify(cursor);
        self.woke();
    }

    /// A local entry was written: push it.
    pub fn local_written(&mut self) {
        self.machine.local_written();
        self.woke();
    }

    fn woke(&mut self) {
        self.drained = false;
        self.quiet_until = None;
    }

    /// Delivers the relay's answer to request `id` (any order; unknown ids are ignored).
    pub fn handle_response<L: LocalLog>(
        &mut self,
        id: u64,
        response: Response,
        local: &L,
    ) -> Result<(), SessionError> {
        if id < MEMBERS_IDS {
            return Ok(self.machine.handle_response(id, response, local)?);
        }
        if !matches!(self.members, Members::Asked(asked, _) if asked == id) {
            return Ok(()); // a stale member list
        }
        self.members = Members::Settled;
        let members = match response {
            Response::MemberList { members } => members,
            Response::Error { code, message } => {
                return Err(SyncError::Refused(format!("{message} ({code:?})")).into())
            }
            _ => return Err(SessionError::UnexpectedMembers),
        };
        let Some(other) = members.iter().find(|m| m.public.device != self.me) else {
            return Ok(()); // the partner has not joined yet
        };
        let secret = self.invite.as_ref().ok_or(SessionError::NoInviteSecret)?;
        if !secret.verify_join_proof(&self.space, &other.public, &other.proof) {
            return Err(SessionError::UnprovenMember(other.public.device.short()));
        }
        self.machine.set_partner(other.public.device);
        self.pending.push_back(Action::PartnerJoined(other.public));
        Ok(())
    }

    /// Reports what the store did with the page of the last [`Action::Apply`] (`page` is that
    /// page); says whether to go on.
    pub fn handle_applied(
        &mut self,
        page: &[PagedEntry],
        outcome: PageOutcome,
        now: Instant,
    ) -> Applied {
        self.applying = false;
        if outcome.stored > 0 && self.mode == Mode::Watch && self.unchecked_since.is_none() {
            self.unchecked_since = Some(now);
        }
        let Some((index, refusal)) = outcome.refused else {
            return Applied::Continue;
        };
        let (cursor, bytes) = page
            .get(index)
            .map(|p| (p.cursor, p.entry.as_slice()))
            .unwrap_or_default();
        match judge_refusal(refusal, bytes, true) {
            Judgement::RestartPull if self.machine.restart_pull() => Applied::Continue,
            Judgement::RestartPull => Applied::Stop {
                cursor,
                judgement: judge_refusal(refusal, bytes, false),
            },
            judgement => Applied::Stop { cursor, judgement },
        }
    }

    /// Reports whether [`Action::Checkpoint`] wrote a checkpoint (which is then pushed before
    /// the audit).
    pub fn handle_checkpoint(&mut self, written: bool) {
        if self.phase != Phase::Checkpointing {
            return;
        }
        if written {
            self.phase = Phase::PushingCheckpoint;
            self.machine.local_written();
            self.drained = true; // the checkpoint's push is part of this round's report
        } else {
            self.finish_round();
        }
    }
}
