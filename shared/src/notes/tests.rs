use super::*;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::ReadDoc;
use proptest::prelude::*;

pub(super) fn device(n: u8) -> DeviceKey {
    DeviceKey([n; 32])
}

/// One simulated device: its document and its own log of note-edit records.
pub(super) struct Dev {
    pub(super) key: DeviceKey,
    pub(super) doc: NoteDoc,
    pub(super) log: Vec<NoteInput>,
    /// How many of the other device's records were delivered (a re-delivery may go back).
    seen: usize,
}

impl Dev {
    pub(super) fn new(n: u8) -> Self {
        Dev {
            key: device(n),
            doc: NoteDoc::new(),
            log: Vec::new(),
            seen: 0,
        }
    }

    fn write(&mut self, edit: LocalEdit<'_>, base: Option<&[automerge::ChangeHash]>) {
        let time = 1_000 * (self.log.len() as u64 + 1);
        let Some(bytes) = self.doc.edit(&self.key, time, base, &edit).unwrap() else {
            return;
        };
        for part in NoteEdit::split(NoteId([7; 16]), "needs", &bytes).unwrap() {
            let seq = self.log.len() as u64;
            let mut id = [0u8; 32];
            id[..32].copy_from_slice(
                blake3::hash(&[&self.key.0[..], &seq.to_be_bytes()].concat()).as_bytes(),
            );
            self.log.push(NoteInput {
                id: EntryHash(id),
                author: self.key,
                seq,
                time_ms: time,
                edit: part,
            });
        }
    }

    pub(super) fn set_text(&mut self, text: &str) {
        self.write(
            LocalEdit {
                text: Some(text),
                ..LocalEdit::default()
            },
            None,
        );
    }
}

pub(super) fn feed(doc: &mut NoteDoc, inputs: &[NoteInput]) {
    for input in inputs {
        let applied = doc.apply(input);
        assert!(
            !matches!(applied, Applied::Invalid(_)),
            "an honest edit was refused: {applied:?}"
        );
    }
}

#[test]
fn concurrent_offline_edits_merge_with_both_words() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    a.set_text("I feel heard when we talk.\n");
    feed(&mut b.doc, &a.log.clone());
    // Both edit offline.
    a.set_text("I feel heard when we talk after dinner.\n");
    b.set_text("I feel heard and safe when we talk.\n");
    let (la, lb) = (a.log.clone(), b.log.clone());
    feed(&mut a.doc, &lb);
    feed(&mut b.doc, &la);
    assert_eq!(a.doc.text(), b.doc.text());
    assert_eq!(
        a.doc.text(),
        "I feel heard and safe when we talk after dinner.\n"
    );
}

#[test]
fn catching_up_on_long_interleaved_histories_parks_nothing() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    // 1,500 rounds in which each device builds on the other's latest edit: feeding one whole
    // log before the other would leave every change waiting for a dependency.
    for round in 0..1_500 {
        a.set_text(&format!("{}a{round} ", b.doc.text()));
        let last = a.log.len() - 1;
        feed(&mut b.doc, &a.log[last..]);
        b.set_text(&format!("{}b{round} ", b.doc.text()));
        let last = b.log.len() - 1;
        feed(&mut a.doc, &b.log[last..]);
    }
    let mut fresh = NoteDoc::new();
    let results = fresh.apply_all(&[a.log.clone(), b.log.clone()].concat());
    assert!(results.iter().all(|(_, r)| *r == Applied::Applied));
    assert_eq!(fresh.text(), a.doc.text());
    assert!(fresh.pending().is_empty());
}

#[test]
fn both_creating_the_same_note_offline_share_one_text_object() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    a.set_text("from A\n");
    b.set_text("from B\n");
    let (la, lb) = (a.log.clone(), b.log.clone());
    feed(&mut a.doc, &lb);
    feed(&mut b.doc, &la);
    assert_eq!(a.doc.text(), b.doc.text());
    assert!(a.doc.text().contains("from A") && a.doc.text().contains("from B"));
}

#[test]
fn an_edit_based_on_an_older_version_keeps_changes_made_since() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    a.set_text("one two three");
    feed(&mut b.doc, &a.log.clone());
    let base = a.doc.heads();
    // While A's editor is open, B's insertion arrives.
    b.set_text("zero one two three");
    feed(&mut a.doc, &b.log.clone());
    // A saves the editor's text, which was based on the old version.
    a.write(
        LocalEdit {
            text: Some("one two three four"),
            ..LocalEdit::default()
        },
        Some(&base),
    );
    feed(&mut b.doc, &a.log.clone());
    assert_eq!(a.doc.text(), "zero one two three four");
    assert_eq!(b.doc.text(), a.doc.text());
}

#[test]
fn rename_and_archive_travel_with_the_note() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    a.write(
        LocalEdit {
            text: Some("x"),
            name: Some("Needs"),
            ..LocalEdit::default()
        },
        None,
    );
    a.write(
        LocalEdit {
            name: Some("Our needs"),
            archived: Some(true),
            ..LocalEdit::default()
        },
        None,
    );
    feed(&mut b.doc, &a.log.clone());
    assert_eq!(b.doc.name().as_deref(), Some("Our needs"));
    assert!(b.doc.archived());
    let history = summarize(&a.log);
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].inserted, 1);
    assert_eq!(history[1].renamed.as_deref(), Some("Our needs"));
    assert_eq!(history[1].archived, Some(true));
}

#[test]
fn a_large_edit_is_split_and_applies_only_when_complete() {
    let mut a = Dev::new(1);
    let mut b = Dev::new(2);
    let big: String = (0..120_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) % 26) as u8))
        .collect();
    a.set_text(&big);
    assert!(a.log.len() >= 2, "120 KB must take several parts");
    let log = a.log.clone();
    for (i, input) in log.iter().enumerate() {
        let applied = b.doc.apply(input);
        if i + 1 < log.len() {
            assert_eq!(applied, Applied::Waiting);
            assert_eq!(b.doc.text(), "");
        } else {
            assert_eq!(applied, Applied::Applied);
        }
        // A part delivered twice changes nothing.
        assert_ne!(b.doc.apply(input), Applied::Applied);
    }
    assert_eq!(b.doc.text(), big);
    let history = summarize(&log);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].inserted, 120_000);
}

#[test]
fn snapshots_reopen_with_waiting_parts() {
    let mut a = Dev::new(1);
    let big = "é".repeat(60_000);
    a.set_text(&big);
    let mut b = NoteDoc::new();
    assert_eq!(b.apply(&a.log[0]), Applied::Waiting);
    let mut b = NoteDoc::load(&b.snapshot()).unwrap();
    assert_eq!(b.pending().len(), 1);
    for input in &a.log[1..] {
        b.apply(input);
    }
    assert_eq!(b.text(), big);
    let snapshot = b.snapshot();
    let reopened = NoteDoc::load(&snapshot).unwrap();
    assert_eq!(reopened.text(), big);
    let view = NoteView::read(&snapshot).unwrap();
    assert_eq!(view.text, big);
    assert_eq!(view.change_hashes(), b.heads());
    assert!(view.pending.is_empty());
    assert!(NoteDoc::load(b"garbage").is_err());
}

fn partner_input(author: DeviceKey, seq: u64, bytes: Vec<u8>) -> NoteInput {
    NoteInput {
        id: EntryHash([seq as u8 + 100; 32]),
        author,
        seq,
        time_ms: 5,
        edit: NoteEdit {
            note: NoteId([7; 16]),
            name: "needs".into(),
            part: 0,
            parts: 1,
            bytes,
        },
    }
}

#[test]
fn malformed_or_hostile_changes_are_invalid_and_change_nothing() {
    let mut a = Dev::new(1);
    a.set_text("keep me");
    let mut doc = NoteDoc::new();
    feed(&mut doc, &a.log.clone());
    let partner = device(2);
    let refused = |doc: &mut NoteDoc, seq: u64, bytes: Vec<u8>| {
        let applied = doc.apply(&partner_input(partner, seq, bytes));
        assert!(matches!(applied, Applied::Invalid(_)), "{applied:?}");
        assert_eq!(doc.text(), "keep me");
    };
    // Garbage, truncated and oversized bytes.
    refused(&mut doc, 0, b"not automerge at all".to_vec());
    refused(&mut doc, 1, a.log[0].edit.bytes[..20].to_vec());
    let mut huge = partner_input(partner, 2, vec![0; PART_BYTES + 1]);
    assert!(matches!(doc.apply(&huge), Applied::Invalid(_)));
    huge.edit.parts = 0;
    assert!(matches!(doc.apply(&huge), Applied::Invalid(_)));
    // A's change replayed inside B's log: the actor does not match the log's author (once A's
    // own copy is applied, the replay is recognised as a duplicate and changes nothing either).
    let mut fresh = NoteDoc::new();
    let replayed = fresh.apply(&partner_input(partner, 3, a.log[0].edit.bytes.clone()));
    assert!(matches!(replayed, Applied::Invalid(_)), "{replayed:?}");
    assert_eq!(fresh.text(), "");
    assert_eq!(
        doc.apply(&partner_input(partner, 3, a.log[0].edit.bytes.clone())),
        Applied::Duplicate
    );
    // A change by B's actor that replaces the text object or writes other keys.
    let mut evil = genesis().with_actor(actor_of(&partner));
    evil.put_object(automerge::ROOT, "text", automerge::ObjType::Text)
        .unwrap();
    evil.put(automerge::ROOT, "owner", "me").unwrap();
    evil.commit_with(CommitOptions::default().with_time(1));
    let bytes = evil.get_last_local_change().unwrap().raw_bytes().to_vec();
    refused(&mut doc, 4, bytes);
    // A compressed change chunk.
    let mut compressed = genesis().with_actor(actor_of(&partner));
    let text = compressed
        .get(automerge::ROOT, "text")
        .ok()
        .flatten()
        .unwrap()
        .1;
    compressed
        .splice_text(&text, 0, 0, &"x".repeat(5000))
        .unwrap();
    compressed.commit_with(CommitOptions::default().with_time(1));
    let bytes = compressed
        .get_last_local_change()
        .unwrap()
        .clone()
        .bytes()
        .to_vec();
    refused(&mut doc, 5, bytes);
    // A later part whose first part never came.
    let mut orphan = partner_input(partner, 6, vec![1, 2, 3]);
    orphan.edit.part = 1;
    orphan.edit.parts = 2;
    assert!(matches!(doc.apply(&orphan), Applied::Invalid(_)));
    assert_eq!(doc.invalid().len(), 6);
    // The document still works.
    let again = NoteDoc::load(&doc.snapshot()).unwrap();
    assert_eq!(again.text(), "keep me");
    assert_eq!(again.invalid().len(), 6);
}

#[test]
fn a_change_automerge_refuses_leaves_the_document_as_it_was() {
    // A's log holds two different changes with the same actor and number (a client that
    // rewound its state): Automerge refuses the second; the note is rebuilt and keeps working.
    let mut a = Dev::new(1);
    a.set_text("first words");
    let mut rewound = Dev::new(1);
    rewound.set_text("other words");
    let mut doc = NoteDoc::new();
    feed(&mut doc, &a.log);
    let mut second = rewound.log[0].clone();
    second.seq = 1;
    second.id = EntryHash([9; 32]);
    let applied = doc.apply(&second);
    assert!(matches!(applied, Applied::Invalid(_)), "{applied:?}");
    assert_eq!(doc.text(), "first words");
    a.set_text("first words, then more");
    feed(&mut doc, &a.log[1..]);
    assert_eq!(doc.text(), "first words, then more");
    assert_eq!(NoteDoc::load(&doc.snapshot()).unwrap().text(), doc.text());
}

#[test]
fn ids_and_actors_are_stable_and_distinct() {
    assert_eq!(NoteId::for_name(" Needs ", 0), NoteId::for_name("needs", 0));
    assert_ne!(NoteId::for_name("needs", 0), NoteId::for_name("needs", 1));
    assert_ne!(actor_of(&device(1)), actor_of(&device(2)));
    assert_eq!(actor_of(&device(1)), actor_of(&device(1)));
    assert!(valid_name("").is_err() && valid_name("a\u{1b}b").is_err());
    for name in templates::NAMES {
        assert!(templates::template(name).is_some_and(|t| t.len() > 200));
    }
}

// ---- property: random concurrent edits converge ---------------------------------------------

#[derive(Clone, Debug)]
enum Step {
    /// Device inserts `len` fresh characters at a position (fraction of its text length).
    Insert { dev: bool, at: u16, len: u8 },
    /// Device deletes a range.
    Delete { dev: bool, at: u16 },
    /// Device receives the other's records from `back` records before where it was, up to
    /// `ahead` records further (re-delivering some: duplicates).
    Receive { dev: bool, back: u8, ahead: u8 },
}

/// The text a person editing on `dev` starts from: what the device shows, with each conflict
/// resolved by keeping its first version (the words only in other versions count as deleted).
fn shown_resolved(dev: &mut Dev, deleted: &mut std::collections::BTreeSet<String>) -> String {
    let mut view = dev.doc.view();
    for c in &mut view.conflicts {
        let kept: Vec<&str> = c.versions[0].text.split_whitespace().collect();
        for v in &c.versions[1..] {
            deleted.extend(
                v.text
                    .split_whitespace()
                    .filter(|w| !kept.contains(w))
                    .map(str::to_string),
            );
        }
        c.versions.truncate(1);
    }
    view.rendered(|_| String::new())
        .lines()
        .filter(|l| !l.starts_with("<<<<<<<") && !l.starts_with(">>>>>>>"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<bool>(), any::<u16>(), 1u8..6).prop_map(|(dev, at, len)| Step::Insert { dev, at, len }),
        1 => (any::<bool>(), any::<u16>()).prop_map(|(dev, at)| Step::Delete { dev, at }),
        2 => (any::<bool>(), 0u8..3, 0u8..4).prop_map(|(dev, back, ahead)| Step::Receive { dev, back, ahead }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_concurrent_edits_converge_and_lose_nothing(
        steps in proptest::collection::vec(step(), 1..40),
        order in proptest::collection::vec(any::<bool>(), 0..200),
    ) {
        let mut devs = [Dev::new(1), Dev::new(2)];
        let mut next_char = 0u32;
        let mut inserted: Vec<String> = Vec::new();
        let mut deleted: std::collections::BTreeSet<String> = Default::default();
        for s in steps {
            match s {
                Step::Insert { dev, at, len } => {
                    // Whole new words, at a word boundary (edits are on word boundaries).
                    let d = &mut devs[usize::from(dev)];
                    let text = shown_resolved(d, &mut deleted);
                    let mut tokens: Vec<String> =
                        words::tokens(&text).into_iter().map(str::to_string).collect();
                    let starts: Vec<usize> = (0..=tokens.len())
                        .filter(|&i| i == tokens.len() || !tokens[i].starts_with(' '))
                        .collect();
                    let pos = starts[usize::from(at) % starts.len()];
                    let fresh: String = (0..len)
                        .map(|_| {
                            next_char += 1;
                            char::from_u32(0x4E00 + next_char).unwrap_or('?')
                        })
                        .collect();
                    inserted.push(fresh.clone());
                    if pos == tokens.len() && !tokens.is_empty() {
                        tokens.push(format!(" {fresh}"));
                    } else if tokens.is_empty() {
                        tokens.push(fresh);
                    } else {
                        tokens.insert(pos, format!("{fresh} "));
                    }
                    d.set_text(&tokens.concat());
                }
                Step::Delete { dev, at } => {
                    // One whole word and one space next to it.
                    let d = &mut devs[usize::from(dev)];
                    let text = shown_resolved(d, &mut deleted);
                    let mut tokens: Vec<&str> = words::tokens(&text);
                    let found: Vec<usize> =
                        (0..tokens.len()).filter(|&i| !tokens[i].starts_with(' ')).collect();
                    if found.is_empty() { continue; }
                    let i = found[usize::from(at) % found.len()];
                    deleted.insert(tokens[i].to_string());
                    if i + 1 < tokens.len() {
                        tokens.drain(i..i + 2);
                    } else if i > 0 {
                        tokens.drain(i - 1..=i);
                    } else {
                        tokens.remove(i);
                    }
                    d.set_text(&tokens.concat());
                }
                Step::Receive { dev, back, ahead } => {
                    let (me, other) = (usize::from(dev), usize::from(!dev));
                    let from = devs[me].seen.saturating_sub(usize::from(back));
                    let to = (devs[me].seen + usize::from(ahead)).min(devs[other].log.len());
                    let batch = devs[other].log[from.min(to)..to].to_vec();
                    feed(&mut devs[me].doc, &batch);
                    devs[me].seen = devs[me].seen.max(to);
                }
            }
        }
        // Final sync: everything, with duplicates.
        for me in 0..2 {
            let other = devs[1 - me].log.clone();
            feed(&mut devs[me].doc, &other);
            feed(&mut devs[me].doc, &other);
        }
        // A third device receives both logs interleaved in a random order.
        let mut third = NoteDoc::new();
        let (mut i, mut j) = (0, 0);
        let (la, lb) = (devs[0].log.clone(), devs[1].log.clone());
        for pick in order.iter().chain(std::iter::repeat_n(&true, la.len() + lb.len())) {
            if (*pick && i < la.len()) || j >= lb.len() {
                if i < la.len() { feed(&mut third, &la[i..=i]); i += 1; }
            } else {
                feed(&mut third, &lb[j..=j]);
                j += 1;
            }
        }
        // A fourth catches up on both whole logs at once, one author's log after the other.
        let mut fourth = NoteDoc::new();
        let results = fourth.apply_all(&[lb.clone(), la.clone(), lb.clone()].concat());
        prop_assert!(results.iter().all(|(_, r)| !matches!(r, Applied::Invalid(_))));
        prop_assert!(fourth.pending().is_empty());
        let text = devs[0].doc.text();
        prop_assert_eq!(&text, &devs[1].doc.text());
        prop_assert_eq!(&text, &third.text());
        prop_assert_eq!(&text, &fourth.text());
        let view = devs[0].doc.view();
        let shown = view.rendered(|a| hex::encode(a));
        prop_assert_eq!(&shown, &devs[1].doc.view().rendered(|a| hex::encode(a)));
        // Every word shown is one somebody inserted. (Which words survive several rounds of
        // concurrent edits of one spot, each resolved by keeping a version, is not checked here:
        // see `conflict_tests` for the two-device property.)
        for line in shown.lines().filter(|l| !l.starts_with("<<<<<<<")
            && !l.starts_with("=======") && !l.starts_with(">>>>>>>"))
        {
            for word in line.split_whitespace() {
                let glued_inserts = word.chars().all(|c| inserted.iter().any(|w| w.contains(c)));
                prop_assert!(glued_inserts, "{word:?} in {shown:?}");
            }
        }
        prop_assert_eq!(&shown, &third.view().rendered(|a| hex::encode(a)));
        prop_assert_eq!(&shown, &fourth.view().rendered(|a| hex::encode(a)));
        // Snapshots reopen to the same text.
        prop_assert_eq!(NoteDoc::load(&devs[0].doc.snapshot()).unwrap().text(), text);
    }
}

/// Re-seals a change chunk after its body was altered: a correct checksum, so the bytes reach
/// Automerge's parser instead of failing the checksum test.
fn reseal(chunk: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut out = chunk.to_vec();
    if out.len() > 9 {
        let digest = sha2::Sha256::digest(&out[8..]);
        out[4..8].copy_from_slice(&digest[..4]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn corrupted_partner_changes_never_panic_or_corrupt_the_note(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<Option<usize>>(),
        raw in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut a = Dev::new(1);
        a.set_text("keep me");
        let mut b = Dev::new(2);
        feed(&mut b.doc, &a.log.clone());
        b.set_text("keep me, and me");
        let honest = b.log[0].edit.bytes.clone();
        let mut bad = honest.clone();
        for (at, x) in flips {
            let i = 9 + at % (bad.len() - 9);
            bad[i] ^= x | 1;
        }
        if let Some(c) = cut {
            bad.truncate(9 + c % (bad.len() - 9));
        }
        let mut doc = NoteDoc::new();
        feed(&mut doc, &a.log);
        for bytes in [reseal(&bad), bad.clone(), raw] {
            let input = partner_input(device(2), 0, bytes);
            let _ = doc.apply(&input);
            // Whatever happened, the document is whole: it saves, reloads to the same text
            // (a change that damaged it was refused), and still takes an honest edit.
            let snapshot = doc.snapshot();
            let text = doc.text();
            prop_assert_eq!(NoteDoc::load(&snapshot).unwrap().text(), text);
        }
        let mut later = Dev::new(1);
        later.doc = NoteDoc::load(&doc.snapshot()).unwrap();
        later.log = a.log.clone();
        later.set_text("fresh start");
        prop_assert_eq!(later.doc.text(), "fresh start");
    }
}
