//! The read model against full derivation from the logs, over random histories.
//!
//! Device A (this store) writes its own entries while B's arrive in pages: out of order (a
//! page with a gap is refused from its first entry on, and comes again later), duplicated, with
//! tampered entries among them, interleaved with A's writes. Histories hold every record family
//! with references to real, missing and the other author's entries, corrections of one's own
//! and of the other's entries, private entries and checkpoints. After each history:
//!
//! * the ledger from the read model equals `ledger::derive` over every entry decrypted from the
//!   logs, the goals equal `goals::derive`, the timeline equals the sorted, correction-linked
//!   list of every shown entry, and the journal and notes indexes name exactly the private and
//!   note-edit entries;
//! * a rebuild from the logs writes exactly the rows the incremental path wrote.

use super::super::{LogWriter, Store};
use candor_shared::at_rest::StorageKey;
use candor_shared::entry::{Class, Draft, Entry, EntryKey, PartnerSeen};
use candor_shared::goals::{self, GoalAdded, GoalEntry, GoalRecord, GoalUpdate};
use candor_shared::keys::{DeviceSecrets, JournalKey, SpaceKey};
use candor_shared::ledger::{
    self, iso_week, AgreementProposed, LedgerEntry, Plan, PromiseMade, PromiseRenegotiated,
    Record as L, Reference, SupportNeed, SupportReply, SupportRequest,
};
use candor_shared::payload::{kind, Payload, TextContent};
use candor_shared::record::Record;
use candor_shared::sync::{precheck_batch, LogKeys};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use proptest::prelude::*;
use std::sync::Arc;

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    /// A writes an entry of `what`, referring to the `pick`-th known entry.
    A { what: u8, pick: usize },
    /// B writes one.
    B { what: u8, pick: usize, seen: u64 },
    /// A receives B's entries `from .. from + len` (in log order), some tampered.
    Deliver {
        from: usize,
        len: usize,
        tamper: Option<usize>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..25, any::<usize>()).prop_map(|(what, pick)| Step::A { what, pick }),
        4 => (0u8..25, any::<usize>(), 0u64..40)
            .prop_map(|(what, pick, seen)| Step::B { what, pick, seen }),
        2 => (0usize..40, 1usize..8, proptest::option::weighted(0.2, 0usize..8))
            .prop_map(|(from, len, tamper)| Step::Deliver { from, len, tamper }),
    ]
}

fn text(kind: u16, words: &str, replaces: Option<EntryHash>) -> Payload {
    Payload::text(
        kind,
        &TextContent {
            text: words.into(),
            replaces,
            original_time_ms: (words.len() % 3 == 0).then_some(1_000),
            eta: (kind == candor_shared::payload::kind::CHECKIN).then(|| "18:00".into()),
        },
    )
}

/// The payload of step kind `what`, referring to `target` (`None`: a private entry; a
/// checkpoint is `Some(None)`).
fn payload(what: u8, target: EntryHash, n: usize) -> Option<Option<Payload>> {
    let r = |note: Option<&str>| Reference {
        target,
        note: note.map(str::to_string),
    };
    let week = iso_week(1_700_000_000_000 + n as u64 * 3_600_000);
    Some(Some(match what {
        0 => text(kind::NOTE, &format!("note {n}"), None),
        1 => text(kind::CHECKIN, &format!("home {n}"), None),
        2 => text(kind::DISCLOSURE, &format!("told {n}"), Some(target)),
        3 => L::PromiseMade(PromiseMade {
            text: format!("promise {n}"),
            due_ms: Some(n as u64),
        })
        .to_payload(),
        4 => L::PromiseKept(r(None)).to_payload(),
        5 => L::PromiseMissed(r(Some("sorry"))).to_payload(),
        6 => L::PromiseRenegotiated(PromiseRenegotiated {
            promise: target,
            text: format!("again {n}"),
            due_ms: None,
        })
        .to_payload(),
        7 => L::StatusConfirmed(r(None)).to_payload(),
        8 => L::StatusDisputed(r(Some("no"))).to_payload(),
        9 => L::Ack(r(Some("thanks"))).to_payload(),
        10 => L::SupportRequest(SupportRequest {
            need: SupportNeed::Talk,
            note: None,
        })
        .to_payload(),
        11 => L::SupportReply(SupportReply {
            request: target,
            text: "here".into(),
        })
        .to_payload(),
        12 => L::Plan(Plan {
            when_ms: n as u64 * 1000,
            text: (n % 2 == 0).then(|| "dinner".into()),
        })
        .to_payload(),
        13 => L::AgreementProposed(AgreementProposed {
            text: format!("agree {n}"),
            review_ms: n as u64,
        })
        .to_payload(),
        14 => L::AgreementAccepted(r(None)).to_payload(),
        15 => L::AgreementDeclined(r(None)).to_payload(),
        16 => L::AgreementEnded(r(Some("done"))).to_payload(),
        17 => GoalRecord::Added(GoalAdded {
            text: format!("goal {n}"),
            week,
            together: n % 2 == 0,
        })
        .to_payload(),
        18 => GoalRecord::Progress(GoalUpdate {
            goal: target,
            text: Some("half".into()),
        })
        .to_payload(),
        19 => GoalRecord::Done(GoalUpdate {
            goal: target,
            text: None,
        })
        .to_payload(),
        20 => Payload {
            kind: candor_shared::notes::code::NOTE_EDIT,
            content: vec![0xff; 3], // does not decode: shown, not in the notes index
        },
        21 => Payload {
            kind: 0x7ff0,
            content: vec![1, 2],
        },
        22 => candor_shared::notes::NoteEdit {
            note: candor_shared::notes::NoteId([n as u8; 16]),
            name: format!("needs {n}"),
            part: 0,
            parts: 1 + (n % 2) as u16,
            bytes: vec![1, 2, 3],
        }
        .to_payload(),
        23 => return Some(None), // checkpoint (A) / private (B)
        _ => return None,        // private
    }))
}

struct World {
    a: DeviceSecrets,
    b: DeviceSecrets,
    space: SpaceId,
    key: SpaceKey,
    journal: JournalKey,
    /// B's log as B wrote it.
    b_log: Vec<Entry>,
    /// Every entry id written so far, by either author.
    known: Vec<EntryHash>,
    nonce: u64,
    time: u64,
}

impl World {
    fn new() -> Self {
        World {
            a: DeviceSecrets::from_seeds([1; 32], [2; 32]),
            b: DeviceSecrets::from_seeds([3; 32], [4; 32]),
            space: SpaceId([5; 16]),
            key: SpaceKey::from_bytes([6; 32]),
            journal: JournalKey::from_bytes([7; 32]),
            b_log: Vec::new(),
            known: Vec::new(),
            nonce: 0,
            time: 1_700_000_000_000,
        }
    }

    fn nonce(&mut self) -> [u8; 24] {
        self.nonce += 1;
        let mut n = [0u8; 24];
        n[..8].copy_from_slice(&self.nonce.to_be_bytes());
        n
    }

    fn target(&self, pick: usize) -> EntryHash {
        // One pick in five names an entry nobody wrote.
        if self.known.is_empty() || pick % 5 == 0 {
            return EntryHash([0xee; 32]);
        }
        self.known[pick % self.known.len()]
    }

    fn write_a(&mut self, store: &Store, what: u8, pick: usize) {
        let target = self.target(pick);
        let n = self.known.len();
        self.time += (pick % 3) as u64 * 3_600_000;
        let mut nonces = vec![self.nonce()].into_iter();
        let writer = LogWriter {
            author: &self.a,
            space: &self.space,
            key: &self.key,
            partner: Some(&self.b.device_key()),
        };
        let written = match payload(what, target, n) {
            Some(Some(p)) => store
                .append_own(&writer, vec![(Class::Shared, p)], self.time, || {
                    Ok(nonces.next().unwrap_or_default())
                })
                .unwrap(),
            Some(None) => vec![store
                .append_checkpoint(&writer, false, self.time, || {
                    Ok(nonces.next().unwrap_or_default())
                })
                .unwrap()],
            None => {
                let journal = self.journal.clone();
                let key: super::super::EntryKeyFn<'_> =
                    Box::new(move |n: &[u8; 24]| journal.entry_key(n));
                let p = text(kind::NOTE, "private words", None);
                store
                    .append_own_sealed(&writer, vec![(Class::Shared, p, key)], self.time, || {
                        Ok(nonces.next().unwrap_or_default())
                    })
                    .unwrap()
            }
        };
        self.known.extend(written.iter().map(|e| e.hash));
    }

    fn write_b(&mut self, what: u8, pick: usize, seen: u64) {
        let target = self.target(pick);
        let n = self.known.len();
        self.time += (pick % 2) as u64 * 3_600_000;
        let (seq, prev) = match self.b_log.last() {
            Some(last) => (last.header.seq + 1, last.hash),
            None => (0, EntryHash::default()),
        };
        let draft = Draft {
            class: Class::Shared,
            space: self.space,
            seq,
            prev,
            time_ms: self.time,
            partner_seen: PartnerSeen {
                count: seen,
                head: EntryHash([seen as u8; 32]),
            },
            nonce: self.nonce(),
        };
        let (payload, key) = match payload(what, target, n).flatten() {
            Some(p) => (p, EntryKey::derive(&self.key, &draft.nonce)),
            None => (
                text(kind::NOTE, "b private", None),
                self.journal.entry_key(&draft.nonce),
            ),
        };
        let entry = Entry::seal_with(draft, &payload, &key, &self.b).unwrap();
        self.known.push(entry.hash);
        self.b_log.push(entry);
    }

    fn deliver(&self, store: &Store, from: usize, len: usize, tamper: Option<usize>) {
        let keys = LogKeys {
            space: self.space,
            key: &self.key,
            me: self.a.device_key(),
            partner: Some(self.b.device_key()),
        };
        let mut page: Vec<Vec<u8>> = self
            .b_log
            .iter()
            .skip(from)
            .take(len)
            .map(Entry::to_bytes)
            .collect();
        if let Some(bad) = tamper.and_then(|t| page.get_mut(t)) {
            if let Some(byte) = bad.last_mut() {
                *byte ^= 1;
            }
        }
        let items: Vec<&[u8]> = page.iter().map(Vec::as_slice).collect();
        let _ = store
            .apply_incoming_page(&keys, precheck_batch(&keys, &items))
            .unwrap();
    }
}

/// Every entry of both logs, decrypted, as the old full derivation read them.
fn full(store: &Store, w: &World) -> Vec<(Entry, Option<Payload>)> {
    let mut out = Vec::new();
    for author in [w.a.device_key(), w.b.device_key()] {
        for item in store.log_entries(&author, 0) {
            let (_, bytes) = item.unwrap();
            let entry = Entry::from_bytes(&bytes).unwrap();
            let payload = entry.open_readable(&w.key).unwrap();
            out.push((entry, payload));
        }
    }
    out
}

fn check(store: &Store, w: &World) {
    let me = w.a.device_key();
    let all = full(store, w);
    let shown: Vec<(&Entry, Record, &'static str)> = all
        .iter()
        .filter_map(|(e, p)| {
            let record = Record::decode(p.as_ref()?);
            let kind = record.kind_name()?;
            Some((e, record, kind))
        })
        .collect();

    // The ledger.
    let entries: Vec<LedgerEntry> = shown
        .iter()
        .map(|(e, record, kind)| LedgerEntry {
            id: e.hash,
            author: e.header.author,
            seq: e.header.seq,
            time_ms: e.header.time_ms,
            kind: kind.to_string(),
            record: match record {
                Record::Ledger(r) => Some(r.clone()),
                _ => None,
            },
        })
        .collect();
    let now = w.time;
    let expected = ledger::derive(&entries, now);
    let got = ledger::derive_records(
        &store.ledger_records().unwrap(),
        |id| store.shown_author(&me, id).unwrap(),
        store.week_counts().unwrap(),
        now,
    );
    assert_eq!(got, expected);

    // The goals.
    let goal_entries: Vec<GoalEntry> = shown
        .iter()
        .filter_map(|(e, record, _)| match record {
            Record::Goal { record, .. } => Some(GoalEntry {
                id: e.hash,
                author: e.header.author,
                seq: e.header.seq,
                time_ms: e.header.time_ms,
                record: record.clone(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        goals::derive(&store.goal_records().unwrap()),
        goals::derive(&goal_entries)
    );

    // The timeline: sorted by time, this device first, seq; corrections linked to the same
    // author's entries only.
    let mut rows: Vec<(u64, bool, u64, EntryHash, DeviceKey, Option<EntryHash>)> = shown
        .iter()
        .map(|(e, record, _)| {
            let replaces = match record {
                Record::Text { text, .. } => text.replaces,
                _ => None,
            };
            let author = e.header.author;
            (
                e.header.time_ms,
                author != me,
                e.header.seq,
                e.hash,
                author,
                replaces,
            )
        })
        .collect();
    rows.sort();
    let timeline = store.timeline(None).unwrap();
    assert_eq!(
        timeline.iter().map(|r| r.id).collect::<Vec<_>>(),
        rows.iter().map(|r| r.3).collect::<Vec<_>>()
    );
    for row in &timeline {
        let corrections: Vec<EntryHash> = rows
            .iter()
            .filter(|r| r.5 == Some(row.id) && r.4 == row.author)
            .map(|r| r.3)
            .collect();
        assert_eq!(row.corrected_by, corrections);
    }
    let limited = store.timeline(Some(3)).unwrap();
    assert_eq!(limited[..], timeline[timeline.len().saturating_sub(3)..]);

    // The journal and notes indexes; what the partner has seen.
    let private: Vec<u64> = all
        .iter()
        .filter(|(e, p)| e.header.author == me && p.is_none())
        .map(|(e, _)| e.header.seq)
        .collect();
    assert_eq!(store.private_own_seqs().unwrap(), private);
    for author in [me, w.b.device_key()] {
        let edits: Vec<u64> = shown
            .iter()
            .filter(|(e, r, _)| e.header.author == author && matches!(r, Record::NoteEdit(_)))
            .map(|(e, _, _)| e.header.seq)
            .collect();
        assert_eq!(store.note_edit_seqs(&author, 0).unwrap(), edits);
    }
    let seen = all
        .iter()
        .filter(|(e, _)| e.header.author != me)
        .map(|(e, _)| e.header.partner_seen.count)
        .max()
        .unwrap_or(0);
    assert_eq!(store.partner_has_seen().unwrap(), seen);

    // A rebuild from the logs writes exactly the rows the incremental path wrote.
    let incremental = store.read_model_rows().unwrap();
    store
        .rebuild_read_model(&me, Some(&w.b.device_key()), &w.key, |_| {})
        .unwrap();
    assert_eq!(store.read_model_rows().unwrap(), incremental);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn incremental_read_model_equals_full_derivation(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Arc::new(StorageKey::from_bytes([9; 32]))).unwrap();
        let mut world = World::new();
        for step in steps {
            match step {
                Step::A { what, pick } => world.write_a(&store, what, pick),
                Step::B { what, pick, seen } => world.write_b(what, pick, seen),
                Step::Deliver { from, len, tamper } => world.deliver(&store, from, len, tamper),
            }
        }
        // Whatever is still missing arrives in order at the end, some of it twice.
        for from in (0..world.b_log.len()).step_by(5) {
            world.deliver(&store, from, 7, None);
        }
        check(&store, &world);
    }
}
