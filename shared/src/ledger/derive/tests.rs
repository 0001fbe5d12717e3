//! Tests of the ledger derivation: lifecycles, every invalid transition, order independence.

use super::*;
use crate::ledger::records::*;

const A: DeviceKey = DeviceKey([1; 32]);
const B: DeviceKey = DeviceKey([2; 32]);

struct Logs {
    entries: Vec<LedgerEntry>,
    seqs: HashMap<DeviceKey, u64>,
    next_id: u8,
}

impl Logs {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
            seqs: HashMap::new(),
            next_id: 1,
        }
    }

    fn write(&mut self, author: DeviceKey, time_ms: u64, record: Record) -> EntryHash {
        let seq = self.seqs.entry(author).or_insert(0);
        let id = EntryHash([self.next_id; 32]);
        self.next_id += 1;
        self.entries.push(LedgerEntry {
            id,
            author,
            seq: *seq,
            time_ms,
            kind: record.kind_name().to_string(),
            record: Some(record),
        });
        *seq += 1;
        id
    }

    fn text(&mut self, author: DeviceKey, time_ms: u64, kind: &str) {
        let seq = self.seqs.entry(author).or_insert(0);
        let id = EntryHash([self.next_id; 32]);
        self.next_id += 1;
        self.entries.push(LedgerEntry {
            id,
            author,
            seq: *seq,
            time_ms,
            kind: kind.into(),
            record: None,
        });
        *seq += 1;
    }
}

fn reference(target: EntryHash) -> Reference {
    Reference { target, note: None }
}

const DAY: u64 = 86_400_000;
const T0: u64 = 1_764_000_000_000; // 2025-11-24, a Monday

#[test]
fn a_promise_kept_and_confirmed() {
    let mut logs = Logs::new();
    let p = logs.write(
        A,
        T0,
        Record::PromiseMade(PromiseMade {
            text: "call at lunch".into(),
            due_ms: Some(T0 + DAY),
        }),
    );
    let kept = logs.write(A, T0 + 1, Record::PromiseKept(reference(p)));
    logs.write(B, T0 + 2, Record::StatusConfirmed(reference(kept)));
    let ledger = derive(&logs.entries, T0);
    let promise = &ledger.promises[0];
    assert_eq!(promise.status, PromiseStatus::Kept);
    assert_eq!(
        promise.confirmation,
        Confirmation::Confirmed { time_ms: T0 + 2 }
    );
    assert_eq!(promise.history.len(), 3);
    assert!(ledger.invalid.is_empty());
}

#[test]
fn only_the_promiser_changes_status_and_only_the_partner_answers() {
    let mut logs = Logs::new();
    let p = logs.write(
        A,
        T0,
        Record::PromiseMade(PromiseMade {
            text: "x".into(),
            due_ms: None,
        }),
    );
    let forged = logs.write(B, T0 + 1, Record::PromiseKept(reference(p)));
    let missed = logs.write(
        A,
        T0 + 2,
        Record::PromiseMissed(Reference {
            target: p,
            note: Some("sorry".into()),
        }),
    );
    let self_confirm = logs.write(A, T0 + 3, Record::StatusConfirmed(reference(missed)));
    let late = logs.write(A, T0 + 4, Record::PromiseKept(reference(p)));
    let dispute = logs.write(
        B,
        T0 + 6,
        Record::StatusDisputed(Reference {
            target: missed,
            note: Some("it was fine".into()),
        }),
    );
    let nowhere = logs.write(B, T0 + 7, Record::StatusConfirmed(reference(p))); // a promise, not a status
    let ledger = derive(&logs.entries, T0);
    let promise = &ledger.promises[0];
    assert_eq!(promise.status, PromiseStatus::Missed);
    assert!(matches!(
        promise.confirmation,
        Confirmation::Disputed { .. }
    ));
    let invalid: Vec<EntryHash> = ledger.invalid.iter().map(|i| i.id).collect();
    for id in [forged, self_confirm, late, nowhere] {
        assert!(invalid.contains(&id), "{id:?} should be invalid");
    }
    assert!(!invalid.contains(&dispute));
    assert!(promise
        .history
        .iter()
        .any(|h| h.id == forged && h.invalid.is_some()));
}

#[test]
fn renegotiating_reopens_with_new_terms_and_resets_the_answer() {
    let mut logs = Logs::new();
    let p = logs.write(
        A,
        T0,
        Record::PromiseMade(PromiseMade {
            text: "home by 6".into(),
            due_ms: None,
        }),
    );
    let r = logs.write(
        A,
        T0 + 1,
        Record::PromiseRenegotiated(PromiseRenegotiated {
            promise: p,
            text: "home by 7".into(),
            due_ms: Some(T0 + 2),
        }),
    );
    logs.write(B, T0 + 2, Record::StatusConfirmed(reference(r)));
    let kept = logs.write(A, T0 + 3, Record::PromiseKept(reference(p)));
    let ledger = derive(&logs.entries, T0);
    let promise = &ledger.promises[0];
    assert_eq!(
        (promise.status, promise.text.as_str(), promise.renegotiated),
        (PromiseStatus::Kept, "home by 7", 1)
    );
    assert_eq!(promise.status_entry, Some(kept));
    assert_eq!(
        promise.confirmation,
        Confirmation::None,
        "the kept status is not answered yet"
    );
}

#[test]
fn agreements_need_the_partners_consent_and_either_may_end_them() {
    let mut logs = Logs::new();
    let a = logs.write(
        A,
        T0,
        Record::AgreementProposed(AgreementProposed {
            text: "share plans a day ahead".into(),
            review_ms: T0 + 7 * DAY,
        }),
    );
    let self_accept = logs.write(A, T0 + 1, Record::AgreementAccepted(reference(a)));
    logs.write(B, T0 + 2, Record::AgreementAccepted(reference(a)));
    let second = logs.write(B, T0 + 3, Record::AgreementDeclined(reference(a)));
    let ledger = derive(&logs.entries, T0 + 8 * DAY);
    assert_eq!(ledger.agreements[0].state, AgreementState::Accepted);
    assert!(ledger.agreements[0].due_for_review);
    let invalid: Vec<EntryHash> = ledger.invalid.iter().map(|i| i.id).collect();
    assert_eq!(invalid.len(), 2);
    assert!(invalid.contains(&self_accept) && invalid.contains(&second));
    assert!(!derive(&logs.entries, T0 + DAY).agreements[0].due_for_review);

    logs.write(B, T0 + 4, Record::AgreementEnded(reference(a)));
    let ledger = derive(&logs.entries, T0 + 8 * DAY);
    assert_eq!(ledger.agreements[0].state, AgreementState::Ended);
    assert!(!ledger.agreements[0].due_for_review);
}

#[test]
fn support_acks_and_the_weekly_summary() {
    let mut logs = Logs::new();
    let req = logs.write(
        A,
        T0,
        Record::SupportRequest(SupportRequest {
            need: SupportNeed::Talk,
            note: None,
        }),
    );
    let own_reply = logs.write(
        A,
        T0 + 1,
        Record::SupportReply(SupportReply {
            request: req,
            text: "me?".into(),
        }),
    );
    logs.write(
        B,
        T0 + 2,
        Record::SupportReply(SupportReply {
            request: req,
            text: "after dinner?".into(),
        }),
    );
    let ack = logs.write(B, T0 + 3, Record::Ack(reference(req)));
    let self_ack = logs.write(A, T0 + 4, Record::Ack(reference(req)));
    logs.text(A, T0 + 5, "checkin");
    let p = logs.write(
        A,
        T0 + 6,
        Record::PromiseMade(PromiseMade {
            text: "x".into(),
            due_ms: None,
        }),
    );
    logs.write(A, T0 + 7 * DAY, Record::PromiseKept(reference(p)));
    let ledger = derive(&logs.entries, T0);
    assert_eq!(ledger.support[0].replies.len(), 1);
    assert_eq!(ledger.acks.len(), 1);
    assert_eq!(ledger.acks[0].1.id, ack);
    let invalid: Vec<EntryHash> = ledger.invalid.iter().map(|i| i.id).collect();
    assert!(invalid.contains(&own_reply) && invalid.contains(&self_ack));
    let weeks: Vec<(&IsoWeek, &WeekSummary)> = ledger.weeks.iter().collect();
    assert_eq!(weeks.len(), 2);
    let first = weeks[0].1;
    assert_eq!(
        (first.promises_made, first.promises_kept, first.checkins),
        (1, 0, 1)
    );
    assert_eq!((first.support_requests, first.support_answered), (1, 1));
    assert_eq!(weeks[1].1.promises_kept, 1);
}

proptest::proptest! {
    #[test]
    fn the_ledger_does_not_depend_on_arrival_order_or_duplicates(seed in proptest::prelude::any::<u64>()) {
        let mut logs = Logs::new();
        let p = logs.write(A, T0, Record::PromiseMade(PromiseMade { text: "x".into(), due_ms: None }));
        let k = logs.write(A, T0 + 5, Record::PromiseKept(reference(p)));
        logs.write(B, T0 + 1, Record::StatusConfirmed(reference(k)));
        logs.write(B, T0 + 2, Record::PromiseMissed(reference(p)));
        let a = logs.write(B, T0 + 3, Record::AgreementProposed(AgreementProposed { text: "y".into(), review_ms: T0 }));
        logs.write(A, T0 + 4, Record::AgreementDeclined(reference(a)));
        logs.write(A, T0 + 6, Record::AgreementAccepted(reference(a)));
        let expected = derive(&logs.entries, T0);
        let mut shuffled = logs.entries.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        shuffled.push(shuffled[0].clone());
        proptest::prop_assert_eq!(derive(&shuffled, T0), expected);
    }
}

#[test]
fn records_about_missing_or_wrong_targets_are_invalid() {
    let mut logs = Logs::new();
    let a = logs.write(
        A,
        T0,
        Record::AgreementProposed(AgreementProposed {
            text: "x".into(),
            review_ms: T0,
        }),
    );
    logs.write(B, T0 + 1, Record::AgreementDeclined(reference(a)));
    let end_declined = logs.write(A, T0 + 2, Record::AgreementEnded(reference(a)));
    let ghost = EntryHash([0xee; 32]);
    let kept_ghost = logs.write(A, T0 + 3, Record::PromiseKept(reference(ghost)));
    let reply_ghost = logs.write(
        B,
        T0 + 4,
        Record::SupportReply(SupportReply {
            request: ghost,
            text: "?".into(),
        }),
    );
    let ack_ghost = logs.write(B, T0 + 5, Record::Ack(reference(ghost)));
    let accept_ghost = logs.write(B, T0 + 6, Record::AgreementAccepted(reference(ghost)));
    let ledger = derive(&logs.entries, T0);
    assert_eq!(ledger.agreements[0].state, AgreementState::Declined);
    let invalid: Vec<EntryHash> = ledger.invalid.iter().map(|i| i.id).collect();
    for id in [
        end_declined,
        kept_ghost,
        reply_ghost,
        ack_ghost,
        accept_ghost,
    ] {
        assert!(invalid.contains(&id), "{id:?} should be invalid");
    }
}

fn promise(logs: &mut Logs, text: &str) -> EntryHash {
    logs.write(
        A,
        T0,
        Record::PromiseMade(PromiseMade {
            text: text.into(),
            due_ms: None,
        }),
    )
}

fn renegotiate(logs: &mut Logs, time_ms: u64, p: EntryHash, text: &str) -> EntryHash {
    logs.write(
        A,
        time_ms,
        Record::PromiseRenegotiated(PromiseRenegotiated {
            promise: p,
            text: text.into(),
            due_ms: None,
        }),
    )
}

#[test]
fn a_missed_promise_is_agreed_anew_by_renegotiating_it() {
    let mut logs = Logs::new();
    let p = promise(&mut logs, "walk on Sunday");
    let missed = logs.write(A, T0 + 1, Record::PromiseMissed(reference(p)));
    logs.write(B, T0 + 2, Record::StatusConfirmed(reference(missed)));
    let again = renegotiate(&mut logs, T0 + 3, p, "walk on Saturday");
    let ledger = derive(&logs.entries, T0);
    let promise_now = &ledger.promises[0];
    assert!(ledger.invalid.is_empty(), "{:?}", ledger.invalid);
    assert_eq!(
        (promise_now.status, promise_now.text.as_str()),
        (PromiseStatus::Open, "walk on Saturday")
    );
    assert_eq!(promise_now.status_entry, Some(again));
    assert_eq!(promise_now.confirmation, Confirmation::None);
    // The miss stays counted; the promise can now be kept.
    let week = &ledger.weeks[&iso_week(T0)];
    assert_eq!((week.promises_missed, week.promises_renegotiated), (1, 1));
    logs.write(A, T0 + 4, Record::PromiseKept(reference(p)));
    assert_eq!(
        derive(&logs.entries, T0).promises[0].status,
        PromiseStatus::Kept
    );
}

#[test]
fn a_kept_promise_stays_closed_and_a_missed_one_is_not_kept_later() {
    assert_eq!(status_change_refused(PromiseStatus::Open, false), None);
    assert_eq!(status_change_refused(PromiseStatus::Missed, true), None);
    assert!(status_change_refused(PromiseStatus::Missed, false).is_some());
    assert!(status_change_refused(PromiseStatus::Kept, true).is_some());
    let mut logs = Logs::new();
    let p = promise(&mut logs, "tidy up");
    logs.write(A, T0 + 1, Record::PromiseKept(reference(p)));
    let late = renegotiate(&mut logs, T0 + 2, p, "tidy up twice");
    let ledger = derive(&logs.entries, T0);
    assert_eq!(ledger.promises[0].status, PromiseStatus::Kept);
    assert_eq!(ledger.promises[0].text, "tidy up");
    assert_eq!(ledger.invalid[0].id, late);
}

#[test]
fn a_status_is_answered_once_and_an_entry_acknowledged_once() {
    let mut logs = Logs::new();
    let p = promise(&mut logs, "call mum");
    let kept = logs.write(A, T0 + 1, Record::PromiseKept(reference(p)));
    logs.write(B, T0 + 2, Record::StatusConfirmed(reference(kept)));
    let again = logs.write(B, T0 + 3, Record::StatusConfirmed(reference(kept)));
    let changed_mind = logs.write(B, T0 + 4, Record::StatusDisputed(reference(kept)));
    let ack = logs.write(B, T0 + 5, Record::Ack(reference(p)));
    let ack_again = logs.write(B, T0 + 6, Record::Ack(reference(p)));
    let ledger = derive(&logs.entries, T0);
    assert_eq!(
        ledger.promises[0].confirmation,
        Confirmation::Confirmed { time_ms: T0 + 2 },
        "the first answer stands"
    );
    let reasons: Vec<(EntryHash, &str)> = ledger
        .invalid
        .iter()
        .map(|i| (i.id, i.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (again, ALREADY_ANSWERED),
            (changed_mind, ALREADY_ANSWERED),
            (ack_again, ALREADY_ACKNOWLEDGED)
        ]
    );
    assert_eq!(ledger.acks.len(), 1);
    assert_eq!(ledger.acks[0].1.id, ack);
}
