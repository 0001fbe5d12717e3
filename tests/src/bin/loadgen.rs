//! Load generator for `candor-relay` on loopback.
//!
//! ```sh
//! cargo build --release -p candor-relay -p candor-tests
//! target/release/loadgen --devices 1000 --rate 500 --latency-secs 10 --ingest-entries 100000
//! ```
//!
//! It starts the relay it measures (`candor-relay` next to its own executable, or `--relay BIN`)
//! in a temporary data directory with limits raised for one loopback address, then:
//!
//! 1. connects `--devices` devices, each authenticated on its own QUIC connection; pairs them
//!    into `--devices / 2` spaces (one creates, the other joins); every joiner subscribes to its
//!    space; reports the relay's resident memory (VmRSS from /proc);
//! 2. **latency**: pushes `--rate` entries per second spread round-robin over the spaces for
//!    `--latency-secs`; each partner, on `Notify`, pulls; reports the time from sending the push
//!    to the partner holding the entry (p50/p99/max) — push, durable flush, notify, pull;
//! 3. **ingest**: every creator pushes its share of `--ingest-entries` in batches of `--batch`
//!    as fast as the relay acknowledges them (an acknowledgement means flushed and fsynced);
//!    partners do not pull during this phase; reports entries per second.
//!
//! Entries are sealed and signed before each phase so the generator's own CPU use stays small.

use anyhow::{anyhow, bail, Result};
use candor_shared::wire::{Request, Response};
use candor_tests::load::{
    connect_pairs, ingest, percentile, rss_mib, seal_all, start_relay, Connected, Pair,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Args {
    devices: usize,
    rate: u64,
    latency_secs: u64,
    ingest_entries: usize,
    batch: usize,
    text_bytes: usize,
    relay: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        devices: 1000,
        rate: 500,
        latency_secs: 10,
        ingest_entries: 100_000,
        batch: 64,
        text_bytes: 100,
        relay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--devices" => args.devices = value()?.parse()?,
            "--rate" => args.rate = value()?.parse()?,
            "--latency-secs" => args.latency_secs = value()?.parse()?,
            "--ingest-entries" => args.ingest_entries = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--text-bytes" => args.text_bytes = value()?.parse()?,
            "--relay" => args.relay = Some(value()?.into()),
            "--help" | "-h" => {
                println!(
                    "loadgen [--devices N] [--rate ENTRIES_PER_SEC] [--latency-secs S] \
                     [--ingest-entries N] [--batch N] [--text-bytes N] [--relay BIN]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if args.devices < 2 || args.devices % 2 != 0 {
        bail!("--devices must be an even number, at least 2");
    }
    args.batch = args.batch.clamp(1, 256);
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let relay = start_relay(args.relay.as_deref(), args.devices)?;
    let pid = relay.child.id();
    let spaces = args.devices / 2;
    println!(
        "loadgen: relay pid {pid} on {}, {} devices, {spaces} spaces; idle relay RSS {:.1} MiB",
        relay.addr,
        args.devices,
        rss_mib(pid)
    );

    // 1. Connect, pair, subscribe.
    let mut pairs: Vec<Pair> = (0..spaces).map(|_| Pair::random()).collect();
    let started = Instant::now();
    let clients = connect_pairs(&relay, &pairs).await?;
    let connected_rss = rss_mib(pid);
    println!(
        "connected: {} authenticated devices ({} subscribed) in {:.1} s; relay RSS {connected_rss:.1} MiB",
        clients.len() * 2,
        clients.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. Latency at a fixed rate.
    let total = (args.rate * args.latency_secs) as usize;
    let per_pair = total.div_ceil(spaces);
    let latency_entries = seal_all(&mut pairs, per_pair, args.text_bytes)?;
    let sent_at: Arc<Mutex<HashMap<(usize, u64), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let pulling = Arc::new(AtomicBool::new(true));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = tokio::task::JoinSet::new();
    let mut writers = Vec::new();
    for (i, connected) in clients.into_iter().enumerate() {
        let Connected {
            writer: w,
            reader: r,
            mut subscription,
        } = connected;
        writers.push(w);
        let (sent_at, latencies, pulling, received) = (
            Arc::clone(&sent_at),
            Arc::clone(&latencies),
            Arc::clone(&pulling),
            Arc::clone(&received),
        );
        let space = pairs[i].space;
        readers.spawn(async move {
            let mut after = 0u64;
            while let Ok(cursor) = subscription.next().await {
                if cursor <= after || !pulling.load(Ordering::Relaxed) {
                    continue;
                }
                loop {
                    let Ok(Response::Page { entries, more }) = r
                        .request(&Request::Pull {
                            space,
                            after,
                            limit: 512,
                        })
                        .await
                    else {
                        break;
                    };
                    let now = Instant::now();
                    for e in &entries {
                        after = after.max(e.cursor);
                        let seq = e
                            .entry
                            .get(50..58)
                            .and_then(|b| <[u8; 8]>::try_from(b).ok())
                            .map_or(u64::MAX, u64::from_be_bytes);
                        if let Some(t0) = sent_at
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(i, seq))
                        {
                            latencies
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(now - t0);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if !more {
                        break;
                    }
                }
            }
        });
    }
    let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> =
        latency_entries.into_iter().map(Into::into).collect();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let phase = Instant::now();
    let mut pushes = tokio::task::JoinSet::new();
    for n in 0..total {
        ticker.tick().await;
        let i = n % spaces;
        let Some(bytes) = queues[i].pop_front() else {
            continue;
        };
        let seq = bytes
            .get(50..58)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes);
        let w = Arc::clone(&writers[i]);
        let space = pairs[i].space;
        sent_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((i, seq), Instant::now());
        pushes.spawn(async move {
            w.request(&Request::Push {
                space,
                entries: vec![bytes],
            })
            .await
        });
        while let Some(done) = pushes.try_join_next() {
            if let Ok(Err(e)) = done {
                eprintln!("push failed: {e}");
            }
        }
    }
    while pushes.join_next().await.is_some() {}
    let send_secs = phase.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < total as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort();
    println!(
        "latency: {} entries at {:.0}/s over {spaces} spaces; partner received {}; \
         push-to-partner p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; relay RSS {:.1} MiB",
        total,
        total as f64 / send_secs,
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        rss_mib(pid)
    );

    // 3. Ingest as fast as acknowledged.
    pulling.store(false, Ordering::Relaxed);
    let per_pair = args.ingest_entries.div_ceil(spaces);
    let ingest_entries = seal_all(&mut pairs, per_pair, args.text_bytes)?;
    let spaces_writers: Vec<_> = pairs
        .iter()
        .map(|p| p.space)
        .zip(writers.iter().cloned())
        .collect();
    let result = ingest(pid, &spaces_writers, ingest_entries, args.batch).await?;
    println!(
        "ingest: {} entries durably acknowledged in {:.2} s = {:.0} entries/s \
         (batches of {}, {} concurrent writers); relay RSS {:.1} MiB; CPU used: relay {:.0}%, \
         loadgen {:.0}% of one core",
        result.stored,
        result.elapsed.as_secs_f64(),
        result.per_sec(),
        args.batch,
        spaces,
        rss_mib(pid),
        result.relay_cores * 100.0,
        result.own_cores * 100.0,
    );
    readers.abort_all();
    Ok(())
}
