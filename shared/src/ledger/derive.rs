//! Deriving the ledger's state from the records of both logs.

use super::records::Record;
use super::week::{iso_week, IsoWeek};
use crate::{DeviceKey, EntryHash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One verified entry of either log, as the derivation sees it.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    /// The entry's id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// Its position in the author's log.
    pub seq: u64,
    /// The author's time (ms).
    pub time_ms: u64,
    /// The kind's name (`note`, `checkin`, `promise`, …), for the summary.
    pub kind: String,
    /// The ledger record, if the entry is one.
    pub record: Option<Record>,
}

/// Where a promise stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromiseStatus {
    /// Made or renegotiated, not yet closed.
    Open,
    /// Kept.
    Kept,
    /// Missed.
    Missed,
}

/// The partner's answer to the promise's current status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Confirmation {
    /// No answer yet.
    None,
    /// Confirmed.
    Confirmed {
        /// When (ms).
        time_ms: u64,
    },
    /// Disputed, with the partner's words.
    Disputed {
        /// When (ms).
        time_ms: u64,
        /// Why.
        note: Option<String>,
    },
}

/// One step in a promise's or agreement's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryItem {
    /// The record's entry id.
    pub id: EntryHash,
    /// Who wrote it.
    pub author: DeviceKey,
    /// When (author's clock, ms).
    pub time_ms: u64,
    /// What it says.
    pub what: String,
    /// Why it was not applied, if it was not.
    pub invalid: Option<String>,
}

/// A promise and everything that happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Promise {
    /// The `PromiseMade` entry's id.
    pub id: EntryHash,
    /// Who promised.
    pub promiser: DeviceKey,
    /// When it was made (ms).
    pub made_ms: u64,
    /// Its current wording.
    pub text: String,
    /// Its current due time (ms).
    pub due_ms: Option<u64>,
    /// Where it stands.
    pub status: PromiseStatus,
    /// The entry that set the current status (kept/missed/renegotiated), if any.
    pub status_entry: Option<EntryHash>,
    /// How many times it was renegotiated.
    pub renegotiated: u32,
    /// The partner's answer to the current status.
    pub confirmation: Confirmation,
    /// Everything, in order, valid or not.
    pub history: Vec<HistoryItem>,
}

/// Where an agreement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgreementState {
    /// Proposed, awaiting the partner's answer.
    Proposed,
    /// Accepted by the partner.
    Accepted,
    /// Declined by the partner.
    Declined,
    /// Ended by either partner.
    Ended,
}

/// An agreement and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// The proposal's entry id.
    pub id: EntryHash,
    /// Who proposed it.
    pub proposer: DeviceKey,
    /// The agreement.
    pub text: String,
    /// When both should review it (ms).
    pub review_ms: u64,
    /// Where it stands.
    pub state: AgreementState,
    /// Accepted and the review date has come.
    pub due_for_review: bool,
    /// Everything, in order, valid or not.
    pub history: Vec<HistoryItem>,
}

/// A support request and its replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Support {
    /// The request's entry id.
    pub id: EntryHash,
    /// Who asked.
    pub requester: DeviceKey,
    /// When (ms).
    pub time_ms: u64,
    /// What would help.
    pub need: &'static str,
    /// Their words.
    pub note: Option<String>,
    /// The partner's replies (valid ones), in order.
    pub replies: Vec<HistoryItem>,
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanView {
    /// The entry id.
    pub id: EntryHash,
    /// Whose plan.
    pub author: DeviceKey,
    /// When (ms).
    pub when_ms: u64,
    /// What, or `None` if only "busy" was shared.
    pub text: Option<String>,
}

/// A partner's leaving of the space (`space leave`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Departure {
    /// The record's entry id.
    pub id: EntryHash,
    /// Who left.
    pub author: DeviceKey,
    /// When (author's clock, ms).
    pub time_ms: u64,
    /// Their words.
    pub note: Option<String>,
}

/// A record that breaks a rule: kept, shown, never applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// The record's entry id.
    pub id: EntryHash,
    /// Who wrote it.
    pub author: DeviceKey,
    /// Why it was not applied.
    pub reason: String,
}

/// One ISO week of the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekSummary {
    /// Entries written that week, by kind.
    pub entries_by_kind: BTreeMap<String, u64>,
    /// Promises made.
    pub promises_made: u64,
    /// Promises marked kept.
    pub promises_kept: u64,
    /// Promises marked missed.
    pub promises_missed: u64,
    /// Promises renegotiated.
    pub promises_renegotiated: u64,
    /// Check-ins.
    pub checkins: u64,
    /// Support requests made that week that got an answer.
    pub support_answered: u64,
    /// Support requests made that week.
    pub support_requests: u64,
}

/// Everything derived from both logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Promises, oldest first.
    pub promises: Vec<Promise>,
    /// Agreements, oldest first.
    pub agreements: Vec<Agreement>,
    /// Support requests, oldest first.
    pub support: Vec<Support>,
    /// Plans, by time.
    pub plans: Vec<PlanView>,
    /// Explicit acknowledgements: (acknowledged entry, acknowledging record).
    pub acks: Vec<(EntryHash, HistoryItem)>,
    /// Records that broke a rule.
    pub invalid: Vec<Invalid>,
    /// Who left the space, when, with their words (each author's first `Left` record).
    pub departures: Vec<Departure>,
    /// Per ISO week.
    pub weeks: BTreeMap<IsoWeek, WeekSummary>,
}

/// Why a second confirmation or dispute of the same promise status is not applied.
pub const ALREADY_ANSWERED: &str = "this status was already confirmed or disputed";

/// Why a second acknowledgement of the same entry is not applied.
pub const ALREADY_ACKNOWLEDGED: &str = "this entry was already acknowledged";

/// Whether the promiser may record a status change on a promise that stands at `status`
/// (`renegotiating`: new terms rather than kept or missed); `Some(reason)` if not. An open
/// promise takes any change; a missed one may be agreed anew (renegotiated, which opens it
/// again); a kept one is closed for good.
pub fn status_change_refused(status: PromiseStatus, renegotiating: bool) -> Option<&'static str> {
    match (status, renegotiating) {
        (PromiseStatus::Open, _) | (PromiseStatus::Missed, true) => None,
        (PromiseStatus::Missed, false) => Some(
            "this promise is already closed: it was missed; renegotiate it to agree on it anew",
        ),
        (PromiseStatus::Kept, _) => Some("this promise is already closed: it was kept"),
    }
}

fn item(e: &LedgerEntry, invalid: Option<String>) -> HistoryItem {
    HistoryItem {
        id: e.id,
        author: e.author,
        time_ms: e.time_ms,
        what: e.record.as_ref().map(Record::describe).unwrap_or_default(),
        invalid,
    }
}

/// Derives the ledger from all entries of both logs. `now_ms` decides which agreements are due
/// for review. The result does not depend on the order of `entries`.
///
/// This is [`count_entry`] folded over every entry plus [`derive_records`] over the ledger
/// records among them: the client's read model keeps the first as running counters and the
/// records as rows, and calls [`derive_records`] itself, so both paths apply the same rules.
pub fn derive(entries: &[LedgerEntry], now_ms: u64) -> Ledger {
    let mut sorted: Vec<&LedgerEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.author, e.seq, e.id));
    sorted.dedup_by_key(|e| e.id); // the same record delivered twice counts once
    let mut weeks = BTreeMap::new();
    for e in &sorted {
        count_entry(&mut weeks, e);
    }
    let authors: HashMap<EntryHash, DeviceKey> = sorted.iter().map(|e| (e.id, e.author)).collect();
    let records: Vec<LedgerEntry> = sorted
        .into_iter()
        .filter(|e| e.record.is_some())
        .cloned()
        .collect();
    derive_records(&records, |id| authors.get(id).copied(), weeks, now_ms)
}

/// Counts one entry into the weekly summary: the part of the summary every entry adds to, by
/// itself (entries by kind, check-ins, promises made, support requests). Counting an entry
/// twice counts it twice: callers count each stored entry once.
pub fn count_entry(weeks: &mut BTreeMap<IsoWeek, WeekSummary>, e: &LedgerEntry) {
    let week = weeks.entry(iso_week(e.time_ms)).or_default();
    *week.entries_by_kind.entry(e.kind.clone()).or_insert(0) += 1;
    match &e.record {
        Some(Record::PromiseMade(_)) => week.promises_made += 1,
        Some(Record::SupportRequest(_)) => week.support_requests += 1,
        _ => {}
    }
    if e.kind == "checkin" {
        week.checkins += 1;
    }
}

/// Derives the ledger from the ledger records of both logs (entries whose `record` is `None`
/// are ignored), with `weeks` already holding [`count_entry`] of every entry and `author_of`
/// naming the author of any visible entry (what an acknowledgement may refer to). The result
/// does not depend on the order of `records`.
pub fn derive_records(
    records: &[LedgerEntry],
    author_of: impl Fn(&EntryHash) -> Option<DeviceKey>,
    weeks: BTreeMap<IsoWeek, WeekSummary>,
    now_ms: u64,
) -> Ledger {
    // Each author's records in their own log order: the only order that is authoritative.
    let mut sorted: Vec<&LedgerEntry> = records.iter().filter(|e| e.record.is_some()).collect();
    sorted.sort_by_key(|e| (e.author, e.seq, e.id));
    sorted.dedup_by_key(|e| e.id); // the same record delivered twice counts once
    let by_id: HashMap<EntryHash, &LedgerEntry> = sorted.iter().map(|e| (e.id, *e)).collect();
    let mut ledger = Ledger {
        weeks,
        ..Ledger::default()
    };
    let invalid = |ledger: &mut Ledger, e: &LedgerEntry, reason: &str| -> HistoryItem {
        ledger.invalid.push(Invalid {
            id: e.id,
            author: e.author,
            reason: reason.to_string(),
        });
        item(e, Some(reason.to_string()))
    };

    // Pass 1: the things records refer to.
    let mut promises: BTreeMap<EntryHash, Promise> = BTreeMap::new();
    let mut agreements: BTreeMap<EntryHash, Agreement> = BTreeMap::new();
    let mut support: BTreeMap<EntryHash, Support> = BTreeMap::new();
    for e in &sorted {
        match &e.record {
            Some(Record::PromiseMade(p)) => {
                promises.insert(
                    e.id,
                    Promise {
                        id: e.id,
                        promiser: e.author,
                        made_ms: e.time_ms,
                        text: p.text.clone(),
                        due_ms: p.due_ms,
                        status: PromiseStatus::Open,
                        status_entry: None,
                        renegotiated: 0,
                        confirmation: Confirmation::None,
                        history: vec![item(e, None)],
                    },
                );
            }
            Some(Record::AgreementProposed(a)) => {
                agreements.insert(
                    e.id,
                    Agreement {
                        id: e.id,
                        proposer: e.author,
                        text: a.text.clone(),
                        review_ms: a.review_ms,
                        state: AgreementState::Proposed,
                        due_for_review: false,
                        history: vec![item(e, None)],
                    },
                );
            }
            Some(Record::SupportRequest(r)) => {
                support.insert(
                    e.id,
                    Support {
                        id: e.id,
                        requester: e.author,
                        time_ms: e.time_ms,
                        need: r.need.name(),
                        note: r.note.clone(),
                        replies: Vec::new(),
                    },
                );
            }
            Some(Record::Left(left)) if ledger.departures.iter().all(|d| d.author != e.author) => {
                ledger.departures.push(Departure {
                    id: e.id,
                    author: e.author,
                    time_ms: e.time_ms,
                    note: left.note.clone(),
                });
            }
            Some(Record::Plan(p)) => ledger.plans.push(PlanView {
                id: e.id,
                author: e.author,
                when_ms: p.when_ms,
                text: p.text.clone(),
            }),
            _ => {}
        }
    }

    // Pass 2: the promiser's status changes, in the promiser's own order.
    let mut status_of: HashMap<EntryHash, EntryHash> = HashMap::new(); // status entry -> promise
    for e in &sorted {
        let (target, closing) = match &e.record {
            Some(Record::PromiseKept(r)) => (r.target, Some(PromiseStatus::Kept)),
            Some(Record::PromiseMissed(r)) => (r.target, Some(PromiseStatus::Missed)),
            Some(Record::PromiseRenegotiated(r)) => (r.promise, None),
            _ => continue,
        };
        let Some(promise) = promises.get_mut(&target) else {
            invalid(&mut ledger, e, "refers to a promise that does not exist");
            continue;
        };
        if e.author != promise.promiser {
            let bad = invalid(
                &mut ledger,
                e,
                "only the partner who made a promise changes its status",
            );
            promise.history.push(bad);
            continue;
        }
        if let Some(reason) = status_change_refused(promise.status, closing.is_none()) {
            let bad = invalid(&mut ledger, e, reason);
            promise.history.push(bad);
            continue;
        }
        match (&e.record, closing) {
            (Some(Record::PromiseRenegotiated(r)), _) => {
                // After a miss, renegotiating agrees the promise anew: it is open again.
                promise.status = PromiseStatus::Open;
                promise.text = r.text.clone();
                promise.due_ms = r.due_ms;
                promise.renegotiated += 1;
            }
            (_, Some(status)) => promise.status = status,
            _ => {}
        }
        promise.status_entry = Some(e.id);
        promise.confirmation = Confirmation::None;
        promise.history.push(item(e, None));
        status_of.insert(e.id, target);
    }

    // Pass 3: everything that answers or refers to something. Each partner answers a status
    // once and acknowledges an entry once: (author, target) pairs already applied.
    let mut answered: std::collections::HashSet<(DeviceKey, EntryHash)> = Default::default();
    let mut acked: std::collections::HashSet<(DeviceKey, EntryHash)> = Default::default();
    for e in &sorted {
        match &e.record {
            Some(Record::StatusConfirmed(r) | Record::StatusDisputed(r)) => {
                let confirmed = matches!(e.record, Some(Record::StatusConfirmed(_)));
                let Some(promise) = status_of.get(&r.target).and_then(|p| promises.get_mut(p))
                else {
                    invalid(&mut ledger, e, "refers to no promise status");
                    continue;
                };
                if e.author == promise.promiser {
                    let bad = invalid(
                        &mut ledger,
                        e,
                        "only the other partner confirms or disputes a promise",
                    );
                    promise.history.push(bad);
                    continue;
                }
                if !answered.insert((e.author, r.target)) {
                    let bad = invalid(&mut ledger, e, ALREADY_ANSWERED);
                    promise.history.push(bad);
                    continue;
                }
                if promise.status_entry == Some(r.target) {
                    promise.confirmation = if confirmed {
                        Confirmation::Confirmed { time_ms: e.time_ms }
                    } else {
                        Confirmation::Disputed {
                            time_ms: e.time_ms,
                            note: r.note.clone(),
                        }
                    };
                }
                promise.history.push(item(e, None));
            }
            Some(Record::AgreementAccepted(r) | Record::AgreementDeclined(r)) => {
                let accepted = matches!(e.record, Some(Record::AgreementAccepted(_)));
                let Some(agreement) = agreements.get_mut(&r.target) else {
                    invalid(&mut ledger, e, "refers to an agreement that does not exist");
                    continue;
                };
                let reason = if e.author == agreement.proposer {
                    Some("only the other partner accepts or declines a proposal")
                } else if agreement.history.iter().any(|h| {
                    h.invalid.is_none()
                        && h.author == e.author
                        && matches!(
                            by_id.get(&h.id).and_then(|x| x.record.as_ref()),
                            Some(Record::AgreementAccepted(_) | Record::AgreementDeclined(_))
                        )
                }) {
                    Some("the proposal was already answered")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    let bad = invalid(&mut ledger, e, reason);
                    agreement.history.push(bad);
                    continue;
                }
                if agreement.state == AgreementState::Proposed {
                    agreement.state = if accepted {
                        AgreementState::Accepted
                    } else {
                        AgreementState::Declined
                    };
                }
                agreement.history.push(item(e, None));
            }
            Some(Record::SupportReply(r)) => {
                let Some(request) = support.get_mut(&r.request) else {
                    invalid(
                        &mut ledger,
                        e,
                        "refers to a support request that does not exist",
                    );
                    continue;
                };
                if e.author == request.requester {
                    invalid(
                        &mut ledger,
                        e,
                        "the partner who asked does not answer their own request",
                    );
                    continue;
                }
                request.replies.push(item(e, None));
            }
            Some(Record::Ack(r)) => match author_of(&r.target) {
                Some(author) if author != e.author => {
                    if acked.insert((e.author, r.target)) {
                        ledger.acks.push((r.target, item(e, None)));
                    } else {
                        invalid(&mut ledger, e, ALREADY_ACKNOWLEDGED);
                    }
                }
                Some(_) => {
                    invalid(
                        &mut ledger,
                        e,
                        "one acknowledges the partner's entries, not one's own",
                    );
                }
                None => {
                    invalid(&mut ledger, e, "refers to an entry that does not exist");
                }
            },
            _ => {}
        }
    }
    // Ending wins over any answer: either partner may end an agreement at any time.
    for e in &sorted {
        if let Some(Record::AgreementEnded(r)) = &e.record {
            match agreements.get_mut(&r.target) {
                Some(agreement) if agreement.state == AgreementState::Declined => {
                    let bad = invalid(&mut ledger, e, "a declined proposal cannot be ended");
                    agreement.history.push(bad);
                }
                Some(agreement) => {
                    agreement.state = AgreementState::Ended;
                    agreement.history.push(item(e, None));
                }
                None => {
                    invalid(&mut ledger, e, "refers to an agreement that does not exist");
                }
            }
        }
    }

    for agreement in agreements.values_mut() {
        agreement
            .history
            .sort_by_key(|h| (h.time_ms, h.author, h.id));
        agreement.due_for_review =
            agreement.state == AgreementState::Accepted && agreement.review_ms <= now_ms;
    }
    for promise in promises.values_mut() {
        promise.history.sort_by_key(|h| (h.time_ms, h.author, h.id));
    }

    // The weekly summary's parts that depend on what records did.
    for promise in promises.values() {
        for h in promise.history.iter().filter(|h| h.invalid.is_none()) {
            let week = ledger.weeks.entry(iso_week(h.time_ms)).or_default();
            match by_id.get(&h.id).and_then(|e| e.record.as_ref()) {
                Some(Record::PromiseKept(_)) => week.promises_kept += 1,
                Some(Record::PromiseMissed(_)) => week.promises_missed += 1,
                Some(Record::PromiseRenegotiated(_)) => week.promises_renegotiated += 1,
                _ => {}
            }
        }
    }
    for request in support.values().filter(|r| !r.replies.is_empty()) {
        ledger
            .weeks
            .entry(iso_week(request.time_ms))
            .or_default()
            .support_answered += 1;
    }

    let mut promises: Vec<Promise> = promises.into_values().collect();
    promises.sort_by_key(|p| (p.made_ms, p.id));
    let mut agreements: Vec<Agreement> = agreements.into_values().collect();
    agreements.sort_by_key(|a| (a.history.first().map_or(0, |h| h.time_ms), a.id));
    let mut support: Vec<Support> = support.into_values().collect();
    support.sort_by_key(|s| (s.time_ms, s.id));
    ledger.plans.sort_by_key(|p| (p.when_ms, p.id));
    ledger
        .acks
        .sort_by_key(|(target, h)| (h.time_ms, *target, h.id));
    ledger.invalid.sort_by_key(|i| i.id);
    ledger.promises = promises;
    ledger.agreements = agreements;
    ledger.support = support;
    ledger
}

#[cfg(test)]
mod tests;
