//! Crashes lose nothing: the relay killed with SIGKILL again and again while a device pushes
//! thousands of entries under `sync --watch`, and the device's own process killed mid-write and
//! mid-sync. Afterwards every entry is held exactly once, in order, by the relay and the partner.
//!
//! Kill times are spread over the run on purpose (chaos, not synchronisation); every wait for an
//! outcome is a deadline on an observable condition.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use anyhow::{bail, Context as _, Result};
use candor_relay::store::SledStore;
use candor_shared::relay::RelayStore;
use candor_shared::{DeviceKey, SpaceId};
use candor_tests::{pair, Device, Relay, DEADLINE};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn write_lines(path: &Path, prefix: &str, n: usize) -> Result<Vec<String>> {
    let lines: Vec<String> = (0..n).map(|i| format!("{prefix} {i:05}")).collect();
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(lines)
}

/// Waits (with a deadline) until `device` lists `n` entries; returns their texts.
fn wait_for_count(device: &Device, n: usize, deadline: Duration) -> Result<Vec<String>> {
    let end = Instant::now() + deadline;
    loop {
        let texts = device.texts()?;
        if texts.len() >= n {
            return Ok(texts);
        }
        if Instant::now() > end {
            bail!("only {} of {n} entries arrived in time", texts.len());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens the (stopped) relay's database and checks every log of `space`: cursors 1, 2, 3, …,
/// and each author's seqs 0, 1, 2, … exactly once, agreeing with its head. Returns the entry
/// count per author.
fn check_relay_space(data: &Path, space: SpaceId) -> Result<BTreeMap<DeviceKey, u64>> {
    let store = SledStore::open(&data.join("db")).context("opening the relay database")?;
    let mut next: BTreeMap<DeviceKey, u64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let (page, more) = store.page(&space, after, 512)?;
        for paged in &page {
            if paged.cursor != after + 1 {
                bail!("cursor {} follows {after}", paged.cursor);
            }
            after = paged.cursor;
            let entry = candor_shared::entry::Entry::from_bytes(&paged.entry)?;
            let expected = next.entry(entry.header.author).or_insert(0);
            if entry.header.seq != *expected {
                bail!(
                    "relay holds seq {} of an author where {} was next",
                    entry.header.seq,
                    expected
                );
            }
            *expected += 1;
        }
        if !more {
            break;
        }
    }
    for (author, head) in store.heads(&space)? {
        if next.get(&author).copied().unwrap_or(0) != head.count {
            bail!("head of {author:?} says {} entries", head.count);
        }
    }
    Ok(next)
}

fn space_of(device: &Device) -> Result<SpaceId> {
    let show: serde_json::Value = serde_json::from_str(&device.ok(&["space", "show", "--json"])?)?;
    let hex = show["space"]
        .as_str()
        .context("space show --json has no space id")?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()?;
    Ok(SpaceId(
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("space id length"))?,
    ))
}

#[test]
fn relay_killed_repeatedly_while_a_watcher_pushes_thousands() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let mut relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let space = space_of(&alex)?;
    let alex_watch = alex.watch()?;
    let sam_watch = sam.watch()?;

    const N: usize = 3000;
    let file = tmp.path().join("import.txt");
    let lines = write_lines(&file, "entry", N)?;
    // Handed to the running watcher, which writes them and starts pushing at once.
    alex.ok(&["log", "import", file.to_str().unwrap_or_default()])?;
    for pause_ms in [40, 120, 250, 80, 400, 160] {
        std::thread::sleep(Duration::from_millis(pause_ms));
        let addr = relay.kill();
        relay = Relay::start_on(&data, &addr)?;
    }
    let texts = wait_for_count(&sam, N, DEADLINE)?;
    assert_eq!(texts, lines, "the partner holds every entry once, in order");
    drop((alex_watch, sam_watch));
    alex.ok(&["verify"])?;
    sam.ok(&["verify"])?;

    // The relay holds each log gap-free and duplicate-free, and as much as the devices.
    let addr = relay.kill();
    let counts = check_relay_space(&data, space)?;
    // Alex's log: a hello and the N entries (plus any control entries the devices add).
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.values().any(|&n| n > N as u64),
        "the relay lacks entries: {counts:?}"
    );
    let _ = addr;
    Ok(())
}

/// Kills `candor ARGS` after `after`, whatever it is doing; returns whether it had finished.
fn run_and_kill(device: &Device, args: &[&str], after: Duration) -> Result<bool> {
    let mut child = device
        .command(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(after);
    let finished = child.try_wait()?.is_some();
    let _ = child.kill();
    let _ = child.wait();
    Ok(finished)
}

#[test]
fn device_killed_mid_write_and_mid_sync_loses_nothing_and_duplicates_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    // Mid-write: imports killed at different points. Each import is one atomic batch, so the
    // store holds all of a batch or none of it, and always opens and verifies.
    let mut expected: Vec<String> = Vec::new();
    for (round, kill_ms) in [5u64, 30, 80, 150, 400].into_iter().enumerate() {
        let file = tmp.path().join(format!("batch-{round}.txt"));
        let lines = write_lines(&file, &format!("batch {round}"), 400)?;
        let path = file.to_str().unwrap_or_default().to_owned();
        run_and_kill(
            &alex,
            &["log", "import", &path],
            Duration::from_millis(kill_ms),
        )?;
        alex.ok(&["verify"])?;
        let texts = alex.texts()?;
        let held = texts.len() - expected.len();
        assert!(
            held == 0 || held == lines.len(),
            "a torn batch: {held} entries"
        );
        expected.extend(texts[expected.len()..].iter().cloned());
        assert_eq!(texts, expected);
    }
    // Make sure some entries exist to sync, whatever the kills did.
    let file = tmp.path().join("last.txt");
    let last = write_lines(&file, "last", 300)?;
    alex.ok(&["log", "import", file.to_str().unwrap_or_default()])?;
    expected.extend(last);

    // Mid-sync: pushes killed at different points, then a sync that completes.
    for kill_ms in [10u64, 60, 150, 300] {
        run_and_kill(&alex, &["sync"], Duration::from_millis(kill_ms))?;
        alex.ok(&["verify"])?;
    }
    alex.ok(&["sync"])?;
    // The partner: pulls killed mid-way, then one that completes.
    for kill_ms in [10u64, 60, 150] {
        run_and_kill(&sam, &["sync"], Duration::from_millis(kill_ms))?;
        sam.ok(&["verify"])?;
    }
    sam.ok(&["sync"])?;
    assert_eq!(sam.texts()?, expected, "no gaps, no duplicates, in order");
    assert_eq!(alex.texts()?, expected);
    // A further sync has nothing left to do.
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 0, pulled 0");
    sam.ok(&["verify"])?;
    Ok(())
}
