//! Shared-notes benchmark (BENCHMARKS.md, "Shared notes"): builds a note of 10,000 edits by two
//! devices (concurrent in rounds, ~100 KB of text), then measures what a device does with it:
//! open from a snapshot, replay all history, merge a batch of concurrent edits, one `note set`.
//!
//! Run: `cargo run --release -p candor-tests --bin notes_bench [EDITS]`

use anyhow::{anyhow, Result};
use candor_shared::notes::{LocalEdit, NoteDoc, NoteEdit, NoteId, NoteInput, NoteView, Splice};
use candor_shared::{DeviceKey, EntryHash};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct Device {
    key: DeviceKey,
    doc: NoteDoc,
    log: Vec<NoteInput>,
}

const WORDS: [&str; 12] = [
    "I feel ",
    "heard ",
    "when ",
    "we talk ",
    "it would help me ",
    "if ",
    "you told me ",
    "by noon. ",
    "Thank you ",
    "for ",
    "listening. ",
    "\n",
];

impl Device {
    fn new(n: u8) -> Self {
        Device {
            key: DeviceKey([n; 32]),
            doc: NoteDoc::new(),
            log: Vec::new(),
        }
    }

    /// One random edit: mostly insertions of a few words, sometimes a deletion.
    fn edit(&mut self, rng: &mut Rng, time_ms: u64) -> Result<()> {
        let len = self.doc.text().chars().count();
        let words = format!(
            "{}{}",
            WORDS[rng.below(WORDS.len())],
            WORDS[rng.below(WORDS.len())]
        );
        let splice = if len > 200 && rng.below(10) == 0 {
            let pos = rng.below(len - 20);
            Splice {
                pos,
                delete: 1 + rng.below(12),
                insert: "",
            }
        } else {
            Splice {
                pos: rng.below(len + 1),
                delete: 0,
                insert: &words,
            }
        };
        let edit = LocalEdit {
            splice: Some(splice),
            ..LocalEdit::default()
        };
        let Some(bytes) = self.doc.edit(&self.key, time_ms, None, &edit)? else {
            return Ok(());
        };
        for part in NoteEdit::split(NoteId([1; 16]), "bench", &bytes)? {
            let seq = self.log.len() as u64;
            let id = blake3::hash(&[&self.key.0[..], &seq.to_be_bytes()].concat());
            self.log.push(NoteInput {
                id: EntryHash(*id.as_bytes()),
                author: self.key,
                seq,
                time_ms,
                edit: part,
            });
        }
        Ok(())
    }
}

fn feed(doc: &mut NoteDoc, inputs: &[NoteInput]) {
    for input in inputs {
        doc.apply(input);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let edits: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut a, mut b) = (Device::new(1), Device::new(2));
    // Rounds of 50 edits each, made concurrently (offline), then exchanged.
    let build = Instant::now();
    let mut made = 0;
    let mut time = 1_700_000_000_000u64;
    while made < edits {
        let (a_from, b_from) = (a.log.len(), b.log.len());
        for _ in 0..25.min(edits - made) {
            time += 1000;
            a.edit(&mut rng, time)?;
            made += 1;
        }
        for _ in 0..25.min(edits - made) {
            time += 1000;
            b.edit(&mut rng, time)?;
            made += 1;
        }
        let (new_a, new_b) = (a.log[a_from..].to_vec(), b.log[b_from..].to_vec());
        feed(&mut a.doc, &new_b);
        feed(&mut b.doc, &new_a);
    }
    let built = build.elapsed();
    let text = a.doc.text();
    if text != b.doc.text() {
        return Err(anyhow!("the two devices diverged"));
    }
    let all: Vec<NoteInput> = a.log.iter().chain(&b.log).cloned().collect();
    println!(
        "note: {} edits ({} entries), {} bytes of text ({} chars); built in {}",
        edits,
        all.len(),
        text.len(),
        text.chars().count(),
        ms(built)
    );

    // Full replay: a device that has only the logs.
    let start = Instant::now();
    let mut replayed = NoteDoc::new();
    replayed.apply_all(&all);
    let replay = start.elapsed();
    if replayed.text() != text {
        return Err(anyhow!("replay diverged"));
    }
    println!(
        "full replay of all {} entries:      {}",
        all.len(),
        ms(replay)
    );

    // Snapshot: save, then open (what `note show` does) and read the text.
    let start = Instant::now();
    let snapshot = replayed.snapshot();
    let save = start.elapsed();
    println!(
        "snapshot save:                       {} ({} bytes)",
        ms(save),
        snapshot.len()
    );
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        let opened = NoteDoc::load(&snapshot)?;
        if opened.text().len() != text.len() {
            return Err(anyhow!("snapshot diverged"));
        }
    }
    println!(
        "load the document from its snapshot (before applying new edits or editing): {} (mean of {runs})",
        ms(start.elapsed() / runs)
    );
    let start = Instant::now();
    for _ in 0..runs {
        let view = NoteView::read(&snapshot)?;
        if view.text.len() != text.len() {
            return Err(anyhow!("snapshot view diverged"));
        }
    }
    println!(
        "read the note (view at the snapshot's front, what `note show`/`list` do): {} (mean of {runs})",
        ms(start.elapsed() / runs)
    );

    // Merge: both devices make 100 edits offline, then each applies the other's.
    let (a_from, b_from) = (a.log.len(), b.log.len());
    for _ in 0..100 {
        time += 1000;
        a.edit(&mut rng, time)?;
        b.edit(&mut rng, time)?;
    }
    let (new_a, new_b) = (a.log[a_from..].to_vec(), b.log[b_from..].to_vec());
    let start = Instant::now();
    feed(&mut a.doc, &new_b);
    let merge = start.elapsed();
    feed(&mut b.doc, &new_a);
    if a.doc.text() != b.doc.text() {
        return Err(anyhow!("merge diverged"));
    }
    println!("merge 100 concurrent partner edits:  {}", ms(merge));

    // One `note set` of the whole ~100 KB text with one word changed (diff → change).
    let mut changed = a.doc.text();
    let at = changed.len() / 2;
    let at = (at..changed.len())
        .find(|i| changed.is_char_boundary(*i))
        .unwrap_or(0);
    changed.insert_str(at, "CHANGED ");
    let start = Instant::now();
    let edit = LocalEdit {
        text: Some(&changed),
        ..LocalEdit::default()
    };
    let bytes = a.doc.edit(&a.key, time + 1000, None, &edit)?;
    println!(
        "one `note set` of the whole text:    {} ({} change bytes)",
        ms(start.elapsed()),
        bytes.map_or(0, |b| b.len())
    );
    Ok(())
}
