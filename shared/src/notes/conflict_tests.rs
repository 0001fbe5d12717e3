//! Tests of concurrent edits of one passage: no mixed words, both versions shown, the same on
//! both devices, until someone edits the passage.

use super::conflict::{BETWEEN, CLOSE, OPEN};
use super::tests::{feed, Dev};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn names(actor: &[u8]) -> String {
    if actor == actor_of(&super::tests::device(1)).to_bytes() {
        "Alex".into()
    } else if actor == actor_of(&super::tests::device(2)).to_bytes() {
        "Sam".into()
    } else {
        "?".into()
    }
}

fn shown(dev: &mut Dev) -> (String, usize) {
    let view = dev.doc.view();
    (view.rendered(names), view.conflicts.len())
}

/// Delivers each device's log to the other.
fn exchange(a: &mut Dev, b: &mut Dev) {
    let (la, lb) = (a.log.clone(), b.log.clone());
    feed(&mut a.doc, &lb);
    feed(&mut b.doc, &la);
}

const SUNDAY: &str = "We will talk every Sunday evening after dinner.";
const ALEX: &str = "We will talk every Saturday morning before breakfast.";
const SAM: &str = "We will talk every Monday night.";

#[test]
fn both_replacing_one_sentence_shows_both_versions_until_someone_edits_it() {
    let (mut a, mut b) = (Dev::new(1), Dev::new(2));
    a.set_text(&format!("Agreements\n{SUNDAY}\nNo phones at the table.\n"));
    feed(&mut b.doc, &a.log.clone());
    a.set_text(&format!("Agreements\n{ALEX}\nNo phones at the table.\n"));
    b.set_text(&format!("Agreements\n{SAM}\nNo phones at the table.\n"));
    exchange(&mut a, &mut b);

    let (text, conflicts) = shown(&mut a);
    assert_eq!(
        (text.clone(), conflicts),
        shown(&mut b),
        "both devices agree"
    );
    assert_eq!(conflicts, 1);
    // Sam's edit is the earlier one (1 s against Alex's 2 s): it comes first.
    let expected = format!(
        "Agreements\n{OPEN}Sam\n{SAM}\n{BETWEEN}Alex\n{ALEX}\n{CLOSE}\nNo phones at the table.\n"
    );
    assert_eq!(text, expected);
    assert!(conflict::has_markers(&text));

    // Sam keeps Alex's version: the passage is edited, the conflict is gone on both devices.
    b.set_text(&format!("Agreements\n{ALEX}\nNo phones at the table.\n"));
    exchange(&mut a, &mut b);
    let resolved = format!("Agreements\n{ALEX}\nNo phones at the table.\n");
    assert_eq!(shown(&mut a), (resolved.clone(), 0));
    assert_eq!(shown(&mut b), (resolved, 0));
}

#[test]
fn edits_of_different_lines_or_words_are_not_conflicts() {
    let (mut a, mut b) = (Dev::new(1), Dev::new(2));
    a.set_text(&format!("{SUNDAY}\nNo phones at the table.\n"));
    feed(&mut b.doc, &a.log.clone());
    a.set_text(&format!("{SUNDAY}\nNo phones at the dinner table.\n"));
    b.set_text("We will talk every Monday evening after dinner.\nNo phones at the table.\n");
    exchange(&mut a, &mut b);
    let merged =
        "We will talk every Monday evening after dinner.\nNo phones at the dinner table.\n";
    assert_eq!(shown(&mut a), (merged.to_string(), 0));
    assert_eq!(shown(&mut b), (merged.to_string(), 0));
}

#[test]
fn conflicts_survive_a_snapshot_and_an_older_snapshot_format_loads() {
    let (mut a, mut b) = (Dev::new(1), Dev::new(2));
    a.set_text(SUNDAY);
    feed(&mut b.doc, &a.log.clone());
    a.set_text(ALEX);
    b.set_text(SAM);
    exchange(&mut a, &mut b);
    let before = shown(&mut a);
    assert_eq!(before.1, 1);
    let snapshot = a.doc.snapshot();
    assert!(NoteView::is_current(&snapshot));
    assert_eq!(NoteView::read(&snapshot).unwrap().rendered(names), before.0);
    let mut reopened = NoteDoc::load(&snapshot).unwrap();
    assert_eq!(reopened.view().rendered(names), before.0);

    // A version 1 snapshot (no conflicts in its view) still reads, with its conflicts found.
    #[derive(serde::Serialize)]
    struct OldView {
        text: String,
        name: Option<String>,
        archived: bool,
        heads: Vec<[u8; 32]>,
        pending: Vec<PendingEdit>,
        invalid: Vec<InvalidEdit>,
    }
    let view = a.doc.view();
    let (_, _, doc_bytes): (u8, NoteView, Vec<u8>) = postcard::from_bytes(&snapshot).unwrap();
    let old = postcard::to_stdvec(&(
        1u8,
        OldView {
            text: view.text.clone(),
            name: view.name.clone(),
            archived: view.archived,
            heads: view.heads.clone(),
            pending: vec![],
            invalid: vec![],
        },
        doc_bytes,
    ))
    .unwrap();
    assert!(!NoteView::is_current(&old));
    assert_eq!(NoteView::read(&old).unwrap().rendered(names), before.0);
    assert_eq!(NoteDoc::load(&old).unwrap().view().conflicts.len(), 1);
}

const WORDS: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

fn sentence(words: &[usize]) -> String {
    words
        .iter()
        .map(|&w| WORDS[w])
        .collect::<Vec<_>>()
        .join(" ")
}

fn word_set(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// A replacement of the words `start..start+len` (clamped) by `with`.
fn replaced(original: &[usize], start: usize, len: usize, with: &[usize]) -> Vec<usize> {
    let start = start.min(original.len());
    let end = (start + len).min(original.len());
    let mut out = original[..start].to_vec();
    out.extend_from_slice(with);
    out.extend_from_slice(&original[end..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn concurrent_overlapping_replacements_never_make_a_word_neither_wrote(
        original in proptest::collection::vec(0..WORDS.len(), 1..10),
        (a_start, a_len) in (0usize..10, 0usize..5),
        (b_start, b_len) in (0usize..10, 0usize..5),
        a_with in proptest::collection::vec(0..WORDS.len(), 0..4),
        b_with in proptest::collection::vec(0..WORDS.len(), 0..4),
        lines in any::<bool>(),
        order in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let join = |w: &[usize]| {
            let s = sentence(w);
            if lines { format!("intro\n{s}\noutro") } else { s }
        };
        let original_text = join(&original);
        let a_text = join(&replaced(&original, a_start, a_len, &a_with));
        let b_text = join(&replaced(&original, b_start, b_len, &b_with));
        let (mut a, mut b) = (Dev::new(1), Dev::new(2));
        a.set_text(&original_text);
        feed(&mut b.doc, &a.log.clone());
        let base = a.log.len();
        a.set_text(&a_text);
        b.set_text(&b_text);
        // A third device receives everything in an order chosen by the test.
        let mut c = Dev::new(3);
        let (a_new, b_new) = (a.log[base..].to_vec(), b.log.clone());
        feed(&mut c.doc, &a.log[..base]);
        if order[0] { feed(&mut c.doc, &b_new); feed(&mut c.doc, &a_new); }
        else { feed(&mut c.doc, &a_new); feed(&mut c.doc, &b_new); }
        if order[1] { feed(&mut a.doc, &b_new); } else { a.doc.apply_all(&b_new); }
        if order[2] { feed(&mut b.doc, &a_new); } else { b.doc.apply_all(&a_new); }
        if order[3] {
            // Reopened from a snapshot: the same conflicts.
            let snap = a.doc.snapshot();
            a.doc = NoteDoc::load(&snap).unwrap();
        }

        let (shown_a, conflicts) = shown(&mut a);
        prop_assert_eq!(&shown_a, &shown(&mut b).0);
        prop_assert_eq!(&shown_a, &shown(&mut c).0);
        let allowed: BTreeSet<String> = word_set(&original_text)
            .into_iter()
            .chain(word_set(&a_text))
            .chain(word_set(&b_text))
            .collect();
        for line in shown_a.lines() {
            if line.starts_with(OPEN) || line.starts_with(BETWEEN) || line == CLOSE {
                continue;
            }
            for word in line.split_whitespace() {
                prop_assert!(allowed.contains(word), "{word:?} in {shown_a:?}");
            }
        }
        if a_text == original_text || b_text == original_text {
            prop_assert_eq!(conflicts, 0, "{}", shown_a);
        }
        if conflicts == 0 {
            // No conflict: the merged text is a clean combination, no marker anywhere.
            prop_assert!(!conflict::has_markers(&shown_a));
        } else if !lines {
            // One line: the versions are exactly what each partner wrote.
            let view = a.doc.view();
            let versions: BTreeSet<&str> =
                view.conflicts[0].versions.iter().map(|v| v.text.as_str()).collect();
            prop_assert_eq!(versions, BTreeSet::from([a_text.as_str(), b_text.as_str()]));
        }
    }
}
