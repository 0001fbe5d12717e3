//! [`SyncMachine`]: heads → push → pull for one space, with a window of requests in flight.
//!
//! # Calling contract
//!
//! A [`SyncMachine`] talks to one relay about one space. The driver loops:
//!
//! 1. [`SyncMachine::poll_request`] until it returns `None` — each a request to send, tagged
//!    with an id. Up to [`SyncMachine::window`] requests are in flight at once: the next batches
//!    of a log to push and the next pages to pull (pages are requested ahead from where the
//!    previous one will end, as far as the relay's heads or notifications say it holds entries).
//!    `Heads` is a barrier: it is sent alone. Pulls start once every push is answered, so that
//!    a pull reads past what this device pushed (as with one request at a time).
//! 2. It delivers the relay's answers, in any order, with [`SyncMachine::handle_response`].
//!    Answers with an id that is not in flight are ignored, so late duplicates are harmless.
//!    Pages are applied strictly in cursor order; a page that no longer starts where the previous
//!    one ended (the relay sent a short page) is dropped with every page requested after it, and
//!    pulled again from the cursor reached.
//! 3. It drains [`SyncMachine::poll_event`]: pulled entries to verify and store, then the new
//!    cursor to persist *after* those entries are stored, and progress/completion.
//! 4. When [`SyncMachine::poll_timeout`] passes, it calls [`SyncMachine::handle_timeout`]: requests
//!    unanswered for [`RETRY_AFTER`] are re-sent under new ids. Every request is idempotent at the
//!    relay, so re-sending is always safe.
//!
//! Pushes pipelined on separate streams may reach the relay out of order; a batch the relay
//! refuses while an earlier batch of the same log is still unanswered is held and re-sent once
//! that one is answered (only a refusal with nothing earlier outstanding is an error). The relay
//! answers a push only once it is durable, and a batch is stored only after every earlier entry
//! of its log, so each [`SyncEvent::Pushed`] means everything before its end is durable.
//!
//! The machine reads the device's logs through [`LocalLog`] and never writes them: storing
//! pulled entries (after [`super::verify_incoming`]) is the driver's job, so durability stays
//! with it. In watch mode the driver calls [`SyncMachine::local_written`] after each local write
//! and [`SyncMachine::handle_notify`] when the relay announces a new cursor.

use super::{LocalLog, SyncError, SyncEvent};
use crate::chain::LogHead;
use crate::wire::{
    PagedEntry, PushOutcome, Request, Response, MAX_PAGE_ENTRIES, MAX_PUSH_BYTES, MAX_PUSH_ENTRIES,
};
use crate::{DeviceKey, SpaceId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests in flight at once by default: enough to keep a 50–100 ms path busy with 512-entry
/// pages and 256-entry pushes (BENCHMARKS.md, "Sync over a slow, lossy path").
pub const DEFAULT_WINDOW: usize = 8;

/// How long a request may stay unanswered before it is sent again.
pub const RETRY_AFTER: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Heads,
    Push {
        author: DeviceKey,
        from: u64,
        count: u64,
    },
    Pull {
        after: u64,
    },
}

impl Step {
    /// Order in which waiting requests are (re)sent: pushes by seq, then pulls by cursor.
    fn order(&self) -> (u8, u64) {
        match self {
            Step::Heads => (0, 0),
            Step::Push { from, .. } => (1, *from),
            Step::Pull { after } => (2, *after),
        }
    }
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    step: Step,
    request: Request,
    /// When it was last sent; `None` while it waits to be (re)sent.
    sent_at: Option<Instant>,
    /// A push the relay refused while an earlier push of the same log was unanswered: waits
    /// for that one's answer before it is sent again.
    held: bool,
    /// A push sent before the relay had acknowledged the entries before it: a refusal may only
    /// mean it overtook them.
    ahead: bool,
}

/// An answered pull waiting for the pages before it.
#[derive(Debug)]
struct AnsweredPull {
    after: u64,
    entries: Vec<PagedEntry>,
    more: bool,
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
    need_heads: bool,
    want_push: bool,
    want_pull: bool,
    next_id: u64,
    window: usize,
    retry_after: Duration,
    in_flight: Vec<InFlight>,
    /// Answered pulls, by `after`, waiting for earlier pages.
    answered: Vec<AnsweredPull>,
    /// The highest cursor the relay is known to have assigned (from heads and notifications):
    /// how far ahead pages may be requested.
    horizon: u64,
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
            need_heads: true,
            want_push: true,
            want_pull: true,
            next_id: 1,
            window: DEFAULT_WINDOW,
            retry_after: RETRY_AFTER,
            in_flight: Vec::new(),
            answered: Vec::new(),
            horizon: 0,
            events: VecDeque::new(),
            repulled: false,
            adopt_own: false,
            suspect: None,
            progressed: false,
        }
    }

    /// Sets how many requests may be in flight at once (at least 1).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
    }

    /// The number of requests that may be in flight at once.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Sets how long a request may stay unanswered before it is re-sent.
    pub fn set_retry_after(&mut self, after: Duration) {
        self.retry_after = after;
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

    /// The partner, if known.
    pub fn partner(&self) -> Option<DeviceKey> {
        self.partner
    }

    /// The pull cursor reached so far.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether nothing is in flight and no work is pending.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.answered.is_empty()
            && !self.want_push
            && !self.want_pull
            && !self.need_heads
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
            self.horizon = self.horizon.max(cursor);
        } else if cursor < self.cursor {
            // Either a notification overtaken by our own pulls, or a relay whose cursors went
            // back (restored from a backup). Ask for heads: the check after pulling tells which.
            self.need_heads = true;
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
        self.cancel_pulls();
        self.events
            .retain(|e| !matches!(e, SyncEvent::Cursor(_) | SyncEvent::Pulled(_)));
        self.events.push_back(SyncEvent::CursorReset);
        true
    }

    /// The earliest moment [`SyncMachine::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight
            .iter()
            .filter_map(|f| f.sent_at)
            .min()
            .map(|sent| sent + self.retry_after)
    }

    /// Requests unanswered for the retry interval at `now` are sent again under new ids.
    pub fn handle_timeout(&mut self, now: Instant) {
        for flight in &mut self.in_flight {
            if flight
                .sent_at
                .is_some_and(|sent| now >= sent + self.retry_after)
            {
                flight.id = self.next_id;
                self.next_id += 1;
                flight.sent_at = None;
            }
        }
    }

    /// Every request in flight is re-sent under a new id at the next poll (the simulation's
    /// "this message was lost"; a driver uses [`SyncMachine::handle_timeout`]).
    pub fn resend_all(&mut self) {
        for flight in &mut self.in_flight {
            if flight.sent_at.is_some() {
                flight.id = self.next_id;
                self.next_id += 1;
                flight.sent_at = None;
            }
        }
    }

    /// The next request to send at `now`, if any; call until `None`.
    pub fn poll_request<L: LocalLog>(
        &mut self,
        local: &L,
        now: Instant,
    ) -> Result<Option<(u64, Request)>, SyncError> {
        if let Some(flight) = self
            .in_flight
            .iter_mut()
            .filter(|f| f.sent_at.is_none() && !f.held)
            .min_by_key(|f| f.step.order())
        {
            flight.sent_at = Some(now);
            let (id, request, step) = (flight.id, flight.request.clone(), flight.step);
            let ahead = self.is_ahead(&step);
            if let Some(flight) = self.in_flight.iter_mut().find(|f| f.id == id) {
                flight.ahead = ahead;
            }
            return Ok(Some((id, request)));
        }
        if self.need_heads {
            if !self.in_flight.is_empty() || !self.answered.is_empty() {
                return Ok(None); // heads go alone
            }
            return Ok(Some(self.send_heads(now)));
        }
        if self.in_flight.len() >= self.window {
            return Ok(None);
        }
        if self.want_push {
            match self.next_push(local)? {
                Some((step, request)) => return Ok(Some(self.send_request(step, request, now))),
                // Pull once the pushes are answered, so that a pull reads past what was pushed.
                None if self.pushes_in_flight() => return Ok(None),
                None => self.want_push = false,
            }
        }
        if self.want_pull {
            return Ok(self.next_pull().map(|after| self.send_pull(after, now)));
        }
        if !self.in_flight.is_empty() || !self.answered.is_empty() {
            return Ok(None);
        }
        if !self.repulled && self.cursor > 0 && self.missed_entries(local)? {
            let confirmed = match self.suspect.take() {
                Some(earlier) => !self.progressed && self.missed_against(&earlier, local)?,
                None => false,
            };
            self.progressed = false;
            if confirmed {
                self.repulled = true;
                self.cursor = 0;
                self.want_pull = true;
                self.events.push_back(SyncEvent::CursorReset);
                return Ok(self.next_pull().map(|after| self.send_pull(after, now)));
            }
            // Perhaps entries not yet flushed at the relay: ask again before re-pulling all.
            self.suspect = self.relay_counts.clone();
            self.need_heads = true;
            return Ok(Some(self.send_heads(now)));
        }
        self.suspect = None;
        Ok(None)
    }

    fn send_heads(&mut self, now: Instant) -> (u64, Request) {
        let request = Request::Heads { space: self.space };
        self.send_request(Step::Heads, request, now)
    }

    fn send_pull(&mut self, after: u64, now: Instant) -> (u64, Request) {
        let request = Request::Pull {
            space: self.space,
            after,
            limit: MAX_PAGE_ENTRIES,
        };
        self.send_request(Step::Pull { after }, request, now)
    }

    fn send_request(&mut self, step: Step, request: Request, now: Instant) -> (u64, Request) {
        let id = self.next_id;
        self.next_id += 1;
        let ahead = self.is_ahead(&step);
        self.in_flight.push(InFlight {
            id,
            step,
            request: request.clone(),
            sent_at: Some(now),
            held: false,
            ahead,
        });
        (id, request)
    }

    fn pushes_in_flight(&self) -> bool {
        self.in_flight
            .iter()
            .any(|f| matches!(f.step, Step::Push { .. }))
    }

    /// Whether `step` is a push beyond what the relay has acknowledged of its log.
    fn is_ahead(&self, step: &Step) -> bool {
        matches!(step, Step::Push { author, from, .. } if *from > self.relay_count(author))
    }

    /// Where the next page starts: at the cursor if no pull is in flight, else where the last
    /// one requested ends if the relay is known to hold entries beyond it.
    fn next_pull(&self) -> Option<u64> {
        let last = self
            .in_flight
            .iter()
            .filter_map(|f| match f.step {
                Step::Pull { after } => Some(after),
                _ => None,
            })
            .chain(self.answered.iter().map(|a| a.after))
            .max();
        match last {
            None => Some(self.cursor),
            Some(after) => {
                let next = after.saturating_add(u64::from(MAX_PAGE_ENTRIES));
                (next < self.horizon).then_some(next)
            }
        }
    }

    fn cancel_pulls(&mut self) {
        self.in_flight
            .retain(|f| !matches!(f.step, Step::Pull { .. }));
        self.answered.clear();
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

    /// Raises the relay's known count of `author`'s log to at least `count`.
    fn raise_relay_count(&mut self, author: DeviceKey, count: u64) {
        let counts = self.relay_counts.get_or_insert_with(Vec::new);
        match counts.iter_mut().find(|(a, _)| *a == author) {
            Some(entry) => entry.1 = entry.1.max(count),
            None => counts.push((author, count)),
        }
    }

    /// The next batch of a log the relay lacks (own first, then the partner's: a re-upload),
    /// after the batches already in flight.
    fn next_push<L: LocalLog>(&self, local: &L) -> Result<Option<(Step, Request)>, SyncError> {
        let local_err = |e: L::Error| SyncError::Local(e.to_string());
        for author in std::iter::once(self.me).chain(self.partner) {
            let ours = local.count(&author).map_err(local_err)?;
            let sent = self
                .in_flight
                .iter()
                .filter_map(|f| match f.step {
                    Step::Push {
                        author: a,
                        from,
                        count,
                    } if a == author => Some(from + count),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let from = self.relay_count(&author).max(sent);
            if from < ours {
                let count = (ours - from).min(MAX_PUSH_ENTRIES as u64);
                let entries = push_batch(
                    local
                        .entries(&author, from, count as usize)
                        .map_err(local_err)?,
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
                return Ok(Some((step, request)));
            }
        }
        Ok(None)
    }

    /// Delivers the relay's answer to request `id`. `local` is consulted to compare the
    /// relay's heads with what this device holds.
    pub fn handle_response<L: LocalLog>(
        &mut self,
        id: u64,
        response: Response,
        local: &L,
    ) -> Result<(), SyncError> {
        let Some(at) = self
            .in_flight
            .iter()
            .position(|f| f.id == id && f.sent_at.is_some())
        else {
            return Ok(()); // stale or duplicated answer
        };
        let flight = self.in_flight.remove(at);
        if let Response::Error { code, message } = &response {
            return Err(SyncError::Refused(format!("{message} ({code:?})")));
        }
        match (flight.step, response) {
            (Step::Heads, Response::HeadList { heads }) => self.on_heads(&heads, local),
            (Step::Push { .. }, Response::Pushed { outcomes }) => self.on_pushed(flight, outcomes),
            (Step::Pull { after }, Response::Page { entries, more }) => {
                let at = self.answered.partition_point(|a| a.after < after);
                self.answered.insert(
                    at,
                    AnsweredPull {
                        after,
                        entries,
                        more,
                    },
                );
                self.apply_pages()
            }
            (Step::Heads, _) => Err(SyncError::Unexpected("Heads")),
            (Step::Push { .. }, _) => Err(SyncError::Unexpected("Push")),
            (Step::Pull { .. }, _) => Err(SyncError::Unexpected("Pull")),
        }
        .inspect(|()| self.maybe_idle())
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    fn maybe_idle(&mut self) {
        if self.in_flight.is_empty() && !self.want_pull && !self.want_push {
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
        self.need_heads = false;
        self.repulled = false;
        // Cursors are numbered 1, 2, … across the space, so the heads' total is (about) the
        // latest cursor: how far ahead pages can be asked for.
        let total = heads
            .iter()
            .fold(0u64, |sum, (_, h)| sum.saturating_add(h.count));
        self.horizon = self.horizon.max(total);
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

    fn on_pushed(&mut self, flight: InFlight, outcomes: Vec<PushOutcome>) -> Result<(), SyncError> {
        let Step::Push {
            author,
            from,
            count,
        } = flight.step
        else {
            return Err(SyncError::Unexpected("Push"));
        };
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
                    if !flight.ahead {
                        return Err(SyncError::EntryRefused { seq, reason });
                    }
                    // It was sent before the batches ahead of it were acknowledged and may
                    // have overtaken them: send it again, after them if they are unanswered.
                    let earlier_unanswered = self.in_flight.iter().any(|f| {
                        matches!(f.step, Step::Push { author: a, from: f, .. } if a == author && f < from)
                    });
                    self.in_flight.push(InFlight {
                        id: self.next_id,
                        held: earlier_unanswered,
                        sent_at: None,
                        ..flight
                    });
                    self.next_id += 1;
                    return Ok(());
                }
            }
        }
        self.raise_relay_count(author, from + count);
        for held in &mut self.in_flight {
            if matches!(held.step, Step::Push { author: a, .. } if a == author) {
                held.held = false;
            }
        }
        if count > 0 {
            self.events.push_back(if author == self.me {
                SyncEvent::Pushed { from, count }
            } else {
                SyncEvent::Restored(count)
            });
        }
        Ok(())
    }

    /// Applies answered pages that start where the cursor is, in cursor order.
    fn apply_pages(&mut self) -> Result<(), SyncError> {
        while let Some(first) = self.answered.first() {
            let earlier_in_flight = self
                .in_flight
                .iter()
                .any(|f| matches!(f.step, Step::Pull { after } if after < first.after));
            if earlier_in_flight {
                return Ok(()); // wait for the page before it
            }
            let page = self.answered.remove(0);
            if page.after > self.cursor {
                // The page before ended short of where this one starts: the pages asked ahead
                // are of no use; pull again from the cursor.
                self.cancel_pulls();
                self.want_pull = true;
                return Ok(());
            }
            self.on_page(page)?;
            if !self.want_pull {
                self.cancel_pulls(); // the end: pages asked beyond it are empty or early
                return Ok(());
            }
        }
        Ok(())
    }

    fn on_page(&mut self, page: AnsweredPull) -> Result<(), SyncError> {
        let AnsweredPull {
            after,
            entries,
            more,
        } = page;
        // Cursors must rise strictly; a page asked from an earlier cursor repeats entries at or
        // below ours.
        let mut last = self.cursor;
        let mut fresh = Vec::with_capacity(entries.len());
        for paged in entries {
            if paged.cursor <= after {
                return Err(SyncError::Unexpected("Pull (cursors out of order)"));
            }
            if paged.cursor <= self.cursor {
                continue;
            }
            if paged.cursor <= last || paged.cursor == u64::MAX {
                return Err(SyncError::Unexpected("Pull (cursors out of order)"));
            }
            last = paged.cursor;
            fresh.push(paged);
        }
        if more && fresh.is_empty() && after == self.cursor {
            return Err(SyncError::Unexpected(
                "Pull (more entries promised, none sent)",
            ));
        }
        for paged in &fresh {
            // What the relay serves, it holds: keeps re-upload decisions accurate.
            if let Some((author, seq)) = crate::entry::peek_author_seq(&paged.entry) {
                self.raise_relay_count(author, seq.saturating_add(1));
            }
        }
        if let Some(last) = fresh.last().map(|e| e.cursor) {
            self.progressed = true;
            self.cursor = last;
            self.horizon = self.horizon.max(last);
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
