//! The growth case of the benchmark suite: how long each everyday command takes as history
//! piles up.
//!
//! For each size, two devices are paired through a real relay. Device A's store receives its
//! share of the history (four entries in five) written through the library's own write path
//! (`Store::append_own`, batches of 100, the signing and sealing a `log add` does), then B
//! writes its share in answer to A's (confirmations, acknowledgements, support replies,
//! accepted agreements, its own check-ins), both sync, and B — the partner device freshly
//! synced, as in issue 12 — runs each command as its own process: the figure is the best of
//! the runs, process start to exit, like a person typing it.
//!
//! The mix, per twenty entries: ten text entries (notes, check-ins, disclosures), and one each
//! of promise made, promise kept, acknowledgement, plan, weekly goal, goal progress, support
//! request, agreement proposed, and two more check-ins. Entries carry the real time they are
//! written (a log's times never go backwards and both logs begin at pairing, and the audit flags
//! an entry older than what it says it saw), so the whole history falls in one or two weeks:
//! the weekly counters are one row per week, so this changes nothing the commands read but the
//! number of week rows. Each size also has two shared notes and three journal
//! entries written through the CLI.

use crate::{sync_both, Device, Relay};
use anyhow::{Context as _, Result};
use candor::app::Paired;
use candor::home::Home;
use candor::store::{os_nonce, Store};
use candor_shared::entry::Class;
use candor_shared::goals::{GoalAdded, GoalRecord, GoalUpdate};
use candor_shared::ledger::{
    iso_week, AgreementProposed, Plan, PromiseMade, Record, Reference, SupportNeed, SupportReply,
    SupportRequest,
};
use candor_shared::payload::{kind, Payload, TextContent};
use candor_shared::EntryHash;
use std::path::Path;
use std::time::{Duration, Instant};

/// The commands timed at each size, as typed after `candor`.
pub const COMMANDS: [&[&str]; 8] = [
    &["log", "list", "--limit", "20"],
    &["promise", "list"],
    &["summary", "--weeks", "8"],
    &["goal", "list"],
    &["note", "list"],
    &["plan", "list"],
    &["agreement", "list"],
    &["journal", "list"],
];

/// The figures at one size.
#[derive(Debug, Clone, Default)]
pub struct Size {
    /// Entries in both logs together.
    pub entries: usize,
    /// How long B's `candor sync` took to pull, verify, store and index them all.
    pub sync: Duration,
    /// Best time of each of [`COMMANDS`], in order.
    pub best: Vec<Duration>,
}

const DAY_MS: u64 = 86_400_000;
/// Entries written per transaction.
const BATCH: usize = 100;

fn text(code: u16, words: String) -> Payload {
    Payload::text(
        code,
        &TextContent {
            text: words,
            replaces: None,
            original_time_ms: None,
            eta: None,
        },
    )
}

/// Writes `count` entries into the store of `home` (no process may hold it), each made by
/// `make(i, written so far)`, at the time they are written; returns their ids.
fn write_history(
    home: &Path,
    count: usize,
    mut make: impl FnMut(usize, &[EntryHash]) -> Payload,
) -> Result<Vec<EntryHash>> {
    let home = Home::new(home.to_path_buf());
    let store = Store::open(&home.store_dir(), home.storage_key()?)?;
    let paired = Paired::load(&home, &store)?;
    let mut ids: Vec<EntryHash> = Vec::with_capacity(count);
    let mut i = 0;
    while i < count {
        let end = (i + BATCH).min(count);
        let mut items = Vec::with_capacity(end - i);
        for j in i..end {
            items.push((Class::Shared, make(j, &ids)));
        }
        let written = store.append_own(&paired.writer(), items, now_ms(), os_nonce)?;
        ids.extend(written.iter().map(|e| e.hash));
        i = end;
    }
    store.flush()?;
    Ok(ids)
}

/// A's share: entry `i` of the mix.
fn a_entry(i: usize, now_ms: u64, ids: &[EntryHash]) -> Payload {
    // The entry written `back` places before the same place of the previous batch (so already
    // written, and of the same kind as the one `back` places before `i`).
    let earlier = |back: usize| {
        i.checked_sub(back + BATCH)
            .and_then(|at| ids.get(at))
            .copied()
    };
    match i % 20 {
        10 => Record::PromiseMade(PromiseMade {
            text: format!("promise {i}: call when I leave work"),
            due_ms: Some(now_ms),
        })
        .to_payload(),
        11 => match earlier(1) {
            Some(target) => Record::PromiseKept(Reference { target, note: None }).to_payload(),
            None => text(kind::NOTE, format!("note {i}")),
        },
        13 => Record::Plan(Plan {
            when_ms: now_ms + (i as u64 % 14) * DAY_MS,
            text: Some(format!("plan {i}: dinner with Sam")),
        })
        .to_payload(),
        14 => GoalRecord::Added(GoalAdded {
            text: format!("goal {i}: a walk together"),
            week: iso_week(now_ms),
            together: false,
        })
        .to_payload(),
        15 => match earlier(1) {
            Some(goal) => GoalRecord::Progress(GoalUpdate {
                goal,
                text: Some("halfway".into()),
            })
            .to_payload(),
            None => text(kind::NOTE, format!("note {i}")),
        },
        16 => Record::SupportRequest(SupportRequest {
            need: SupportNeed::Talk,
            note: Some(format!("request {i}")),
        })
        .to_payload(),
        17 => Record::AgreementProposed(AgreementProposed {
            text: format!("agreement {i}: phones away at dinner"),
            review_ms: now_ms + 30 * DAY_MS,
        })
        .to_payload(),
        12 | 18 | 19 => text(kind::CHECKIN, format!("check-in {i}: on my way")),
        n if n % 3 == 0 => text(kind::DISCLOSURE, format!("disclosure {i}: I spoke with J.")),
        n if n % 3 == 1 => text(kind::CHECKIN, format!("check-in {i}: at the office")),
        _ => text(kind::NOTE, format!("note {i}: a good day")),
    }
}

/// B's share: answers to A's entries (`a` holds A's ids in order) and its own check-ins.
fn b_entry(i: usize, a: &[EntryHash]) -> Payload {
    // A's entry of the same position in the mix, twenty at a time.
    let at = |offset: usize| a.get((i / 5) * 20 % a.len().max(1) + offset).copied();
    let reference = |target| Reference {
        target,
        note: Some("thank you".into()),
    };
    match (i % 5, at(11), at(12), at(16), at(17)) {
        (0, Some(kept), ..) => Record::StatusConfirmed(Reference {
            target: kept,
            note: None,
        })
        .to_payload(),
        (1, _, Some(checkin), ..) => Record::Ack(reference(checkin)).to_payload(),
        (2, _, _, Some(request), _) => Record::SupportReply(SupportReply {
            request,
            text: "let's talk tonight".into(),
        })
        .to_payload(),
        (3, .., Some(agreement)) => Record::AgreementAccepted(Reference {
            target: agreement,
            note: None,
        })
        .to_payload(),
        _ => text(kind::CHECKIN, format!("check-in {i}: home by seven")),
    }
}

/// Pairs two devices, writes `entries` entries of history across both logs, syncs and times
/// each command on B `runs` times.
pub fn measure(root: &Path, relay: &Relay, entries: usize, runs: usize) -> Result<Size> {
    let a = Device::init(root, "A")?;
    let b = Device::init(root, "B")?;
    let invite = a.create_space(relay)?;
    b.ok(&["space", "join", &invite])?;
    sync_both(&a, &b)?;
    a.ok(&["note", "new", "Needs", "--template", "needs"])
        .or_else(|_| a.ok(&["note", "new", "Needs"]))?;
    a.ok(&["note", "new", "Boundaries"])?;
    for words in ["slept badly", "proud of today", "talked it through"] {
        b.ok(&["journal", "add", words])?;
    }
    let now = now_ms();
    let a_count = entries * 4 / 5;
    let b_count = entries - a_count;
    let a_ids = write_history(&a.home, a_count, |i, ids| a_entry(i, now, ids))
        .context("writing A's history")?;
    a.ok(&["sync"])?;
    let t0 = Instant::now();
    b.ok(&["sync"])?;
    let sync = t0.elapsed();
    write_history(&b.home, b_count, |i, _| b_entry(i, &a_ids)).context("writing B's history")?;
    sync_both(&b, &a)?;
    let mut best = Vec::with_capacity(COMMANDS.len());
    for args in COMMANDS {
        let mut fastest = Duration::MAX;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            b.ok(args)?;
            fastest = fastest.min(t.elapsed());
        }
        best.push(fastest);
    }
    Ok(Size {
        entries,
        sync,
        best,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
