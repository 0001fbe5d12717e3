//! The relay on PostgreSQL under load (benchmark case 7): durable ingest with sled, with
//! PostgreSQL behind one relay and behind two relays sharing the database, measured in one run,
//! and the latency from a push on one relay to the partner's notification on the other.
//!
//! The database is a throw-away cluster ([`crate::pg::PgCluster`]: default durability settings,
//! `fsync` and `synchronous_commit` on). Every pushed entry counts only once the relay answers
//! `Stored`, which for PostgreSQL means committed.

use crate::load::{self, Pair, RelayProcess};
use crate::pg::PgCluster;
use anyhow::{bail, Context as _, Result};
use candor_shared::wire::{PushOutcome, Request, Response};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries per push in the ingest runs.
pub const BATCH: usize = 64;

/// What case 7 measured (one run).
#[derive(Debug, Clone, Copy, Default)]
pub struct PgFigures {
    /// Devices pushing (one writer per space).
    pub writers: usize,
    /// Entries pushed per run.
    pub entries: usize,
    /// Durably acknowledged entries per second: sled, one relay.
    pub sled: f64,
    /// The same on PostgreSQL behind one relay.
    pub pg_one: f64,
    /// The same on PostgreSQL behind two relays (half the writers on each).
    pub pg_two: f64,
    /// Write (push sent) → the partner on the other relay notified: median, in ms.
    pub notify_p50_ms: f64,
    /// The same, 99th percentile.
    pub notify_p99_ms: f64,
    /// Single-entry pushes timed for the latency.
    pub notify_samples: usize,
}

/// Ingest of `per_space` entries into each of `spaces` spaces, writers on `relays[i % n]` and
/// readers on the next relay; entries per second.
async fn ingest(relays: &[&RelayProcess], spaces: usize, per_space: usize) -> Result<f64> {
    let n = relays.len();
    let mut groups: Vec<Vec<Pair>> = (0..n).map(|_| Vec::new()).collect();
    for i in 0..spaces {
        groups[i % n].push(Pair::random());
    }
    let mut writers = Vec::new();
    let mut keep = Vec::new();
    let mut entries = Vec::new();
    for (offset, mut group) in groups.into_iter().enumerate() {
        let connected =
            load::connect_pairs_across(relays[offset], relays[(offset + 1) % n], &group).await?;
        entries.extend(load::seal_all(&mut group, per_space, 100)?);
        for (pair, c) in group.iter().zip(&connected) {
            writers.push((pair.space, Arc::clone(&c.writer)));
        }
        keep.push(connected);
    }
    let result = load::ingest(relays[0].child.id(), &writers, entries, BATCH).await?;
    let expected = (spaces * per_space) as u64;
    if result.stored < expected {
        bail!("ingest stored only {} of {expected} entries", result.stored);
    }
    drop(keep);
    Ok(result.per_sec())
}

/// `samples` single-entry pushes by a writer on `writer_relay`; each timed until the reader on
/// `reader_relay` is notified of it. Returns the sorted latencies.
async fn notify_latency(
    writer_relay: &RelayProcess,
    reader_relay: &RelayProcess,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut pairs = vec![Pair::random()];
    let mut connected = load::connect_pairs_across(writer_relay, reader_relay, &pairs).await?;
    let entries = load::seal_all(&mut pairs, samples, 100)?;
    let c = connected.pop().context("no connected pair")?;
    let mut subscription = c.subscription;
    let space = pairs[0].space;
    let mut latencies = Vec::with_capacity(samples);
    for entry in entries.into_iter().flatten() {
        let start = Instant::now();
        let response = c
            .writer
            .request(&Request::Push {
                space,
                entries: vec![entry],
            })
            .await?;
        let cursor = match response {
            Response::Pushed { outcomes } => match outcomes.first() {
                Some(PushOutcome::Stored { cursor }) => *cursor,
                other => bail!("push not stored: {other:?}"),
            },
            other => bail!("unexpected answer {other:?}"),
        };
        loop {
            let notified = tokio::time::timeout(Duration::from_secs(10), subscription.next())
                .await
                .context("no notification within 10 s")??;
            if notified >= cursor {
                break;
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    Ok(latencies)
}

/// Runs case 7 once with the relay binary `relay`.
pub async fn measure(relay: &Path, quick: bool) -> Result<PgFigures> {
    let (spaces, per_space, samples) = if quick {
        (10, 200, 50)
    } else {
        (100, 500, 500)
    };
    let devices = spaces * 2 + 4;
    let cluster =
        PgCluster::start()?.context("PostgreSQL is not installed (apt-get install postgresql)")?;
    let mut out = PgFigures {
        writers: spaces,
        entries: spaces * per_space,
        notify_samples: samples,
        ..PgFigures::default()
    };
    {
        let sled = load::start_relay_with(Some(relay), devices, &[], None)?;
        out.sled = ingest(&[&sled], spaces, per_space).await?;
    }
    {
        let url = cluster.create_database()?;
        let one = load::start_relay_with(Some(relay), devices, &["--store", &url], None)?;
        out.pg_one = ingest(&[&one], spaces, per_space).await?;
    }
    let url = cluster.create_database()?;
    let first = load::start_relay_with(Some(relay), devices, &["--store", &url], None)?;
    let second = load::start_relay_with(
        Some(relay),
        devices,
        &["--store", &url],
        Some(&first.data_dir()),
    )?;
    if first.fingerprint != second.fingerprint {
        bail!("the two relays do not share one certificate");
    }
    out.pg_two = ingest(&[&first, &second], spaces, per_space).await?;
    let latencies = notify_latency(&first, &second, samples).await?;
    let ms = |p: f64| load::percentile(&latencies, p).as_secs_f64() * 1000.0;
    out.notify_p50_ms = ms(0.50);
    out.notify_p99_ms = ms(0.99);
    Ok(out)
}
