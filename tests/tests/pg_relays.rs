//! Two relay processes on one PostgreSQL database serve one space: the partners' devices on
//! different relays see each other's entries live (`sync --watch`, woken through
//! `LISTEN/NOTIFY`), one relay killed with SIGKILL mid-stream loses nothing acknowledged, the
//! device on the other relay keeps syncing meanwhile, and the killed one restarts and serves on.
//!
//! Needs PostgreSQL's server binaries (a throw-away cluster on a private Unix socket); fails
//! without them unless `CANDOR_SKIP_PG=1`. The kill time is chaos, not synchronisation: every
//! wait for an outcome is a deadline on an observable condition.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use anyhow::{bail, Result};
use candor_tests::pg::PgCluster;
use candor_tests::{pair, Device, Relay, DEADLINE};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits (with a deadline) until `device` lists an entry for which `pred` holds, or `n` of them.
fn wait_texts(
    device: &Device,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>> {
    let end = Instant::now() + DEADLINE;
    loop {
        let texts = device.texts()?;
        if done(&texts) {
            return Ok(texts);
        }
        if Instant::now() > end {
            bail!(
                "{what} did not happen in time; {} entries held",
                texts.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Gives the relay in `to` the TLS identity of the one in `from`: relays sharing a database
/// share one certificate, so devices pin one fingerprint.
fn share_identity(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for file in ["cert.der", "key.der"] {
        std::fs::copy(from.join(file), to.join(file))?;
    }
    Ok(())
}

#[test]
fn two_relays_on_one_database_sync_live_and_survive_kill_9() -> Result<()> {
    let Some(cluster) = PgCluster::start()? else {
        return Ok(());
    };
    let url = cluster.create_database()?;
    let store = ["--store", url.as_str()];
    let tmp = tempfile::tempdir()?;
    let (data_1, data_2) = (tmp.path().join("relay-1"), tmp.path().join("relay-2"));
    let mut relay_1 = Relay::start_args(&data_1, "127.0.0.1:0", &store)?;
    share_identity(&data_1, &data_2)?;
    let relay_2 = Relay::start_args(&data_2, "127.0.0.1:0", &store)?;
    assert_eq!(relay_1.fingerprint, relay_2.fingerprint);

    let (alex, sam) = pair(tmp.path(), &relay_1)?;
    let moved = sam.ok(&["space", "relay", &relay_2.addr])?;
    assert!(moved.contains(&relay_2.addr), "{moved}");
    let shown = sam.ok(&["space", "show", "--json"])?;
    let shown: serde_json::Value = serde_json::from_str(&shown)?;
    assert_eq!(shown["relay"], relay_2.addr.as_str());

    let alex_watch = alex.watch()?;
    let sam_watch = sam.watch()?;
    // Live across relays: Alex's entry lands on relay 1, Sam's watcher on relay 2 is woken.
    alex.ok(&["log", "add", "across relays"])?;
    wait_texts(&sam, "a live entry across relays", |t| {
        t.iter().any(|t| t == "across relays")
    })?;
    sam.ok(&["log", "add", "and back"])?;
    wait_texts(&alex, "a live entry back", |t| {
        t.iter().any(|t| t == "and back")
    })?;

    // Mid-stream: Alex imports many entries through relay 1, which is killed meanwhile.
    const N: usize = 1500;
    let lines: Vec<String> = (0..N).map(|i| format!("entry {i:05}")).collect();
    let file = tmp.path().join("import.txt");
    std::fs::write(&file, lines.join("\n") + "\n")?;
    alex.ok(&["log", "import", file.to_str().unwrap_or_default()])?;
    std::thread::sleep(Duration::from_millis(150));
    let addr_1 = relay_1.kill();
    // Sam, on relay 2, keeps syncing while relay 1 is down.
    sam.ok(&["log", "add", "while one is down"])?;
    sam_watch.wait_pushed()?;
    relay_1 = Relay::start_args(&data_1, &addr_1, &store)?;
    let held = |texts: &[String]| lines.iter().all(|l| texts.contains(l));
    let sam_texts = wait_texts(&sam, "every imported entry at Sam", held)?;
    let imported: Vec<&String> = sam_texts
        .iter()
        .filter(|t| t.starts_with("entry "))
        .collect();
    assert_eq!(
        imported,
        lines.iter().collect::<Vec<_>>(),
        "once each, in order"
    );
    wait_texts(&alex, "Sam's entry from while relay 1 was down", |t| {
        t.iter().any(|t| t == "while one is down")
    })?;
    drop((alex_watch, sam_watch));
    alex.ok(&["verify"])?;
    sam.ok(&["verify"])?;
    drop((relay_1, relay_2));
    Ok(())
}
