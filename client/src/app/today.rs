//! [`Today`]: what needs this person now, as one typed value (`candor today`, text and
//! `--json`, and the web app's start page render it).
//!
//! Computed from the read model's indexes only, never from the whole history: the ledger and
//! goal records (as `promise list` and `goal list` read them), the time-ordered timeline from
//! two days ago on (for check-ins whose ETA passed), and the partner's log from the local
//! "looked at" marker on (for what is new). The marker is a local value of the store, sealed
//! like the rest, never synced: looking at `today` moves it ([`Reader::mark_looked`]).

use super::reader::{Reader, TimelineEntry};
use crate::store::TimelineRow;
use crate::timefmt;
use anyhow::Result;
use candor_shared::goals::GoalStatus;
use candor_shared::ledger::{iso_week, AgreementState, Confirmation, Ledger, PromiseStatus};
use candor_shared::{DeviceKey, EntryHash};
use serde::Serialize;
use std::collections::BTreeMap;

const DAY_MS: u64 = 86_400_000;
/// At most this many of the partner's new entries are listed (all are counted).
pub const NEW_ENTRIES_SHOWN: usize = 50;

/// Everything `candor today` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Today {
    /// When this was computed, RFC 3339 with the local offset.
    pub time: String,
    /// The ISO week, e.g. `2026-W49`.
    pub week: String,
    /// The partner's name, if received.
    pub partner_name: Option<String>,
    /// The partner's promises they marked kept, missed or renegotiated, not yet confirmed or
    /// disputed by me.
    pub promises_to_confirm: Vec<PromiseToConfirm>,
    /// The partner's support requests I have not replied to.
    pub support_to_answer: Vec<SupportToAnswer>,
    /// Agreements the partner proposed, waiting for my accept or decline.
    pub agreements_proposed: Vec<AgreementItem>,
    /// Accepted agreements whose review date has come.
    pub agreements_to_review: Vec<AgreementItem>,
    /// Each partner's latest check-in, if its ETA passed (within the last day) and nothing
    /// followed it.
    pub checkins_overdue: Vec<OverdueCheckin>,
    /// My goals of this week, and our shared ones.
    pub goals: Vec<WeekGoal>,
    /// The partner's entries since I last looked (at most [`NEW_ENTRIES_SHOWN`], the newest),
    /// oldest first.
    pub partner_new: Vec<TimelineEntry>,
    /// How many entries the partner wrote since I last looked (hidden control entries are not
    /// counted).
    pub partner_new_count: u64,
    /// When the partner left the space, if they did.
    pub partner_left: Option<PartnerLeft>,
    /// The partner's log length this view covers: the marker [`Reader::mark_looked`] stores.
    #[serde(skip)]
    pub looked_upto: u64,
}

impl Today {
    /// Whether nothing at all needs this person.
    pub fn is_quiet(&self) -> bool {
        self.promises_to_confirm.is_empty()
            && self.support_to_answer.is_empty()
            && self.agreements_proposed.is_empty()
            && self.agreements_to_review.is_empty()
            && self.checkins_overdue.is_empty()
            && self.partner_new_count == 0
            && self.partner_left.is_none()
    }
}

/// A partner's promise waiting for my answer.
#[derive(Debug, Clone, Serialize)]
pub struct PromiseToConfirm {
    /// The promise's id.
    pub id: String,
    /// Its current words.
    pub text: String,
    /// open (renegotiated), kept or missed.
    pub status: PromiseStatus,
    /// When that status was set, RFC 3339.
    pub status_time: Option<String>,
    /// Its due time, RFC 3339.
    pub due: Option<String>,
}

/// A partner's support request without my reply.
#[derive(Debug, Clone, Serialize)]
pub struct SupportToAnswer {
    /// The request's id.
    pub id: String,
    /// space, talk, reassure or company.
    pub need: &'static str,
    /// Their words.
    pub note: Option<String>,
    /// When, RFC 3339.
    pub time: String,
}

/// An agreement to answer or review.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementItem {
    /// The proposal's id.
    pub id: String,
    /// "me" or "partner".
    pub proposer: &'static str,
    /// The agreement.
    pub text: String,
    /// Its review date, RFC 3339.
    pub review: String,
}

/// A check-in whose expected arrival passed.
#[derive(Debug, Clone, Serialize)]
pub struct OverdueCheckin {
    /// The check-in's id.
    pub id: String,
    /// "me" or "partner".
    pub author: &'static str,
    /// Its words.
    pub text: String,
    /// The expected arrival, RFC 3339.
    pub eta_at: String,
}

/// One goal of this week.
#[derive(Debug, Clone, Serialize)]
pub struct WeekGoal {
    /// The goal's id.
    pub id: String,
    /// The goal.
    pub text: String,
    /// open, done or dropped.
    pub status: GoalStatus,
    /// Whether both partners update it.
    pub together: bool,
}

/// The partner's leaving.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerLeft {
    /// When, RFC 3339.
    pub time: String,
    /// Their words.
    pub note: Option<String>,
}

impl Reader<'_> {
    /// What needs this person as of `now_ms` (does not move the "looked at" marker).
    pub fn today(&self, now_ms: u64) -> Result<Today> {
        let me = self.paired.me();
        let partner = self.paired.partner();
        let ledger = self.ledger(now_ms)?;
        let goals = self.goals()?;
        let week = iso_week(now_ms);
        let recent = self
            .store
            .timeline_since(now_ms.saturating_sub(2 * DAY_MS))?;
        let acked_by_me = |id: &EntryHash| {
            ledger
                .acks
                .iter()
                .any(|(target, by)| target == id && by.author == me)
        };
        let who = |author: &DeviceKey| if *author == me { "me" } else { "partner" };
        let checkins_overdue = overdue_checkins(&recent, acked_by_me, now_ms)
            .into_iter()
            .map(|(row, eta_ms)| OverdueCheckin {
                id: row.id.to_hex(),
                author: who(&row.author),
                text: row.text.clone(),
                eta_at: timefmt::rfc3339(eta_ms),
            })
            .collect();
        let (partner_new, partner_new_count, looked_upto) = match &partner {
            Some(partner) => self.partner_new(partner)?,
            None => (Vec::new(), 0, 0),
        };
        let mut today = needs_of(&ledger, &me);
        today.time = timefmt::rfc3339(now_ms);
        today.week = week.to_string();
        today.partner_name = self.partner_name()?;
        today.checkins_overdue = checkins_overdue;
        today.goals = goals
            .goals
            .iter()
            .filter(|g| g.week == week && (g.author == me || g.together))
            .map(|g| WeekGoal {
                id: g.id.to_hex(),
                text: g.text.clone(),
                status: g.status,
                together: g.together,
            })
            .collect();
        today.partner_new = partner_new;
        today.partner_new_count = partner_new_count;
        today.looked_upto = looked_upto;
        Ok(today)
    }

    /// Marks the partner's entries `today` showed as looked at (a local, sealed marker).
    pub fn mark_looked(&self, today: &Today) -> Result<()> {
        Ok(self.store.set_partner_looked(today.looked_upto)?)
    }

    /// The partner's shown entries since the marker (the newest [`NEW_ENTRIES_SHOWN`]), how
    /// many there are, and the partner's log length they cover.
    fn partner_new(&self, partner: &DeviceKey) -> Result<(Vec<TimelineEntry>, u64, u64)> {
        let upto = self.store.head(partner)?.count;
        let from = self.store.partner_looked()?;
        let mut rows: Vec<TimelineRow> = self
            .store
            .partner_rows_from(partner, from)?
            .into_iter()
            .filter(|r| r.seq < upto)
            .collect();
        let count = rows.len() as u64;
        let skip = rows.len().saturating_sub(NEW_ENTRIES_SHOWN);
        rows.drain(..skip);
        Ok((self.named(rows)?, count, upto))
    }
}

/// The ledger's part of [`Today`]: what waits for `me`'s answer (the other fields empty).
fn needs_of(ledger: &Ledger, me: &DeviceKey) -> Today {
    let who = |author: &DeviceKey| if author == me { "me" } else { "partner" };
    let agreement = |a: &candor_shared::ledger::Agreement| AgreementItem {
        id: a.id.to_hex(),
        proposer: who(&a.proposer),
        text: a.text.clone(),
        review: timefmt::rfc3339(a.review_ms),
    };
    Today {
        time: String::new(),
        week: String::new(),
        partner_name: None,
        promises_to_confirm: ledger
            .promises
            .iter()
            .filter(|p| {
                p.promiser != *me
                    && p.status_entry.is_some()
                    && p.confirmation == Confirmation::None
            })
            .map(|p| PromiseToConfirm {
                id: p.id.to_hex(),
                text: p.text.clone(),
                status: p.status,
                status_time: p
                    .history
                    .iter()
                    .find(|h| Some(h.id) == p.status_entry)
                    .map(|h| timefmt::rfc3339(h.time_ms)),
                due: p.due_ms.map(timefmt::rfc3339),
            })
            .collect(),
        support_to_answer: ledger
            .support
            .iter()
            .filter(|s| s.requester != *me && s.replies.iter().all(|r| r.author != *me))
            .map(|s| SupportToAnswer {
                id: s.id.to_hex(),
                need: s.need,
                note: s.note.clone(),
                time: timefmt::rfc3339(s.time_ms),
            })
            .collect(),
        agreements_proposed: ledger
            .agreements
            .iter()
            .filter(|a| a.state == AgreementState::Proposed && a.proposer != *me)
            .map(agreement)
            .collect(),
        agreements_to_review: ledger
            .agreements
            .iter()
            .filter(|a| a.due_for_review)
            .map(agreement)
            .collect(),
        checkins_overdue: Vec::new(),
        goals: Vec::new(),
        partner_new: Vec::new(),
        partner_new_count: 0,
        partner_left: ledger
            .departures
            .iter()
            .find(|d| d.author != *me)
            .map(|d| PartnerLeft {
                time: timefmt::rfc3339(d.time_ms),
                note: d.note.clone(),
            }),
        looked_upto: 0,
    }
}

/// Each author's latest check-in among `rows` (time order) whose ETA passed within the last day
/// before `now_ms`, unless `acked` says this person acknowledged it; with its ETA (ms).
fn overdue_checkins(
    rows: &[TimelineRow],
    acked: impl Fn(&EntryHash) -> bool,
    now_ms: u64,
) -> Vec<(&TimelineRow, u64)> {
    let mut latest: BTreeMap<DeviceKey, &TimelineRow> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == "checkin") {
        latest.insert(row.author, row);
    }
    latest
        .into_values()
        .filter_map(|row| {
            let eta = row.eta.as_deref().and_then(timefmt::eta_ms)?;
            (eta <= now_ms && now_ms - eta <= DAY_MS && !acked(&row.id)).then_some((row, eta))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(author: u8, seq: u64, time_ms: u64, eta_ms: Option<u64>) -> TimelineRow {
        TimelineRow {
            id: EntryHash([author * 16 + seq as u8; 32]),
            author: DeviceKey([author; 32]),
            seq,
            time_ms,
            kind: "checkin".into(),
            text: format!("check-in {seq}"),
            replaces: None,
            original_time_ms: None,
            eta: eta_ms.map(timefmt::rfc3339),
            refers_to: None,
            corrected_by: Vec::new(),
        }
    }

    const NOW: u64 = 1_796_000_000_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn only_the_latest_check_in_past_its_eta_needs_attention() {
        let rows = vec![
            checkin(1, 0, NOW - 5 * HOUR, Some(NOW - 4 * HOUR)), // superseded by seq 1
            checkin(1, 1, NOW - 3 * HOUR, None),                 // "home": nothing overdue
            checkin(2, 0, NOW - 3 * HOUR, Some(NOW - 2 * HOUR)), // overdue
            checkin(3, 0, NOW - HOUR, Some(NOW + HOUR)),         // not yet
            checkin(4, 0, NOW - 30 * HOUR, Some(NOW - 26 * HOUR)), // too old to matter
            checkin(5, 0, NOW - 3 * HOUR, Some(NOW - HOUR)),     // acknowledged
        ];
        let acked = EntryHash([5 * 16; 32]);
        let overdue = overdue_checkins(&rows, |id| *id == acked, NOW);
        let ids: Vec<(u8, u64)> = overdue
            .iter()
            .map(|(r, eta)| (r.author.0[0], *eta))
            .collect();
        assert_eq!(ids, vec![(2, NOW - 2 * HOUR)]);
    }
}
