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

use anyhow::{anyhow, bail, Context as _, Result};
use candor::net::RelayClient;
use candor_shared::entry::{Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::{InviteSecret, RelayFingerprint};
use candor_shared::keys::{DeviceSecrets, SpaceKey};
use candor_shared::payload::{kind, Payload};
use candor_shared::wire::{MemberCard, PushOutcome, Request, Response};
use candor_shared::{EntryHash, SpaceId};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

struct RelayProcess {
    child: Child,
    addr: String,
    fingerprint: RelayFingerprint,
    _dir: tempfile::TempDir,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(args: &Args) -> Result<RelayProcess> {
    let bin = match &args.relay {
        Some(bin) => bin.clone(),
        None => {
            let exe = std::env::current_exe()?;
            exe.with_file_name("candor-relay")
        }
    };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("relay.toml");
    // Every device connects from 127.0.0.1: lift the per-address limits, and the per-device
    // request rate (the generator pushes far faster than a person).
    std::fs::write(
        &config,
        format!(
            "[limits]\nmax_connections = {n}\nmax_connections_per_address = {n}\n\
             address_connections_per_second = 0.0\ndevice_requests_per_second = 0.0\n\
             space_quota_mib = 0\n",
            n = args.devices + 64
        ),
    )?;
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("CANDOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    let mut fingerprint = None;
    while addr.is_none() || fingerprint.is_none() {
        let line = lines.next().context("relay exited before starting")??;
        if let Some(a) = line.strip_prefix("candor-relay listening on ") {
            addr = Some(a.trim().to_owned());
        } else if let Some(f) = line.strip_prefix("fingerprint ") {
            fingerprint = Some(RelayFingerprint::parse(f.trim()).map_err(|e| anyhow!("{e}"))?);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(RelayProcess {
        child,
        addr: addr.unwrap_or_default(),
        fingerprint: fingerprint.context("no fingerprint")?,
        _dir: dir,
    })
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) used so far by process `pid`, and by this process.
fn cpu_secs(pid: u32) -> f64 {
    let ticks = |path: String| -> f64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|stat| {
                // Fields after the command name (which is in parentheses).
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some(utime + stime)
            })
            .unwrap_or(0.0)
    };
    // Linux reports in clock ticks of 1/100 s on every common configuration.
    ticks(format!("/proc/{pid}/stat")) / 100.0
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).unwrap_or_default();
    out
}

/// One space: its creator (the writer) and partner, and the writer's log so far.
struct Pair {
    space: SpaceId,
    key: SpaceKey,
    writer: DeviceSecrets,
    reader: DeviceSecrets,
    next_seq: u64,
    prev: EntryHash,
}

impl Pair {
    fn seal(&mut self, n: usize, text_bytes: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let draft = Draft {
                class: Class::Shared,
                space: self.space,
                seq: self.next_seq,
                prev: self.prev,
                time_ms: 1_700_000_000_000 + self.next_seq,
                partner_seen: PartnerSeen::default(),
                nonce: random(),
            };
            let payload = Payload {
                kind: kind::NOTE,
                content: vec![b'x'; text_bytes],
            };
            let entry = Entry::seal(draft, &payload, &self.key, &self.writer)
                .map_err(|e| anyhow!("sealing: {e}"))?;
            self.prev = entry.hash;
            self.next_seq += 1;
            out.push(entry.to_bytes());
        }
        Ok(out)
    }
}

/// Seals `per_pair` entries for every pair, on all cores.
fn seal_all(pairs: &mut [Pair], per_pair: usize, text_bytes: usize) -> Result<Vec<Vec<Vec<u8>>>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = pairs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .chunks_mut(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter_mut()
                        .map(|p| p.seal(per_pair, text_bytes))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .map_err(|_| anyhow!("sealing thread panicked"))??,
            );
        }
        Ok(all)
    })
}

fn card(d: &DeviceSecrets) -> MemberCard {
    MemberCard {
        public: d.public(),
        proof: [0; 32],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn expect(client: &RelayClient, request: Request) -> Result<Response> {
    let response = client.request(&request).await?;
    if let Response::Error { code, message } = &response {
        bail!("relay refused ({code:?}): {message}");
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let relay = start_relay(&args)?;
    let pid = relay.child.id();
    let spaces = args.devices / 2;
    println!(
        "loadgen: relay pid {pid} on {}, {} devices, {spaces} spaces; idle relay RSS {:.1} MiB",
        relay.addr,
        args.devices,
        rss_mib(pid)
    );

    // 1. Connect, pair, subscribe.
    let mut pairs: Vec<Pair> = (0..spaces)
        .map(|_| Pair {
            space: SpaceId(random()),
            key: SpaceKey::from_bytes(random()),
            writer: DeviceSecrets::from_seeds(random(), random()),
            reader: DeviceSecrets::from_seeds(random(), random()),
            next_seq: 0,
            prev: EntryHash::ZERO,
        })
        .collect();
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        let (addr, fp) = (relay.addr.clone(), relay.fingerprint);
        let (writer, reader, space) = (pair.writer.clone(), pair.reader.clone(), pair.space);
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let _slot = gate.acquire().await?;
            let secret = InviteSecret(random());
            let (w, _) = RelayClient::connect(&addr, &fp, &writer).await?;
            expect(
                &w,
                Request::CreateSpace {
                    space,
                    invite_verifier: secret.verifier(),
                    sealed_space_key: vec![0; 72],
                    member: card(&writer),
                },
            )
            .await?;
            let (r, _) = RelayClient::connect(&addr, &fp, &reader).await?;
            expect(
                &r,
                Request::Join {
                    space,
                    token: secret.token(),
                    member: card(&reader),
                },
            )
            .await?;
            let subscription = r.subscribe(space).await?;
            Ok::<_, anyhow::Error>((i, w, r, subscription))
        });
    }
    let mut clients: Vec<Option<_>> = (0..spaces).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, w, r, s) = joined??;
        clients[i] = Some((Arc::new(w), Arc::new(r), s));
    }
    let clients: Vec<_> = clients.into_iter().flatten().collect();
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
    for (i, (w, r, mut subscription)) in clients.into_iter().enumerate() {
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
    let stored = Arc::new(AtomicU64::new(0));
    let (relay_cpu, own_cpu) = (cpu_secs(pid), cpu_secs(std::process::id()));
    let phase = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, entries) in ingest_entries.into_iter().enumerate() {
        let w = Arc::clone(&writers[i]);
        let space = pairs[i].space;
        let (stored, batch) = (Arc::clone(&stored), args.batch);
        tasks.spawn(async move {
            for chunk in entries.chunks(batch) {
                let response = w
                    .request(&Request::Push {
                        space,
                        entries: chunk.to_vec(),
                    })
                    .await?;
                let Response::Pushed { outcomes } = response else {
                    bail!("unexpected answer {response:?}");
                };
                let ok = outcomes
                    .iter()
                    .filter(|o| matches!(o, PushOutcome::Stored { .. }))
                    .count();
                stored.fetch_add(ok as u64, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            eprintln!("ingest push failed: {e}");
        }
    }
    let secs = phase.elapsed().as_secs_f64();
    let n = stored.load(Ordering::Relaxed);
    println!(
        "ingest: {n} entries durably acknowledged in {secs:.2} s = {:.0} entries/s \
         (batches of {}, {} concurrent writers); relay RSS {:.1} MiB; CPU used: relay {:.0}%, \
         loadgen {:.0}% of one core",
        n as f64 / secs,
        args.batch,
        spaces,
        rss_mib(pid),
        (cpu_secs(pid) - relay_cpu) / secs * 100.0,
        (cpu_secs(std::process::id()) - own_cpu) / secs * 100.0,
    );
    readers.abort_all();
    Ok(())
}
