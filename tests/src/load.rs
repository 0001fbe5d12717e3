//! Relay load: a relay started with raised limits, spaces created and joined over real QUIC,
//! and pushes of pre-sealed entries. Shared by the load generator (`src/bin/loadgen.rs`) and
//! the benchmark (`src/bin/bench.rs`, case 4).

use anyhow::{anyhow, bail, Context as _, Result};
use candor::net::{RelayClient, Subscription};
use candor_shared::entry::{Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::{InviteSecret, RelayFingerprint};
use candor_shared::keys::{DeviceSecrets, SpaceKey};
use candor_shared::payload::{kind, Payload};
use candor_shared::wire::{MemberCard, PushOutcome, Request, Response};
use candor_shared::{EntryHash, SpaceId};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `candor-relay` started for load: data in a temp dir, killed on drop.
pub struct RelayProcess {
    /// The relay process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its certificate fingerprint.
    pub fingerprint: RelayFingerprint,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Its data directory (certificate and key; the sled database unless `--store` says
    /// otherwise).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `candor-relay` (`relay`, or the one next to this executable) on `127.0.0.1:0` in a temp
/// data dir, with limits raised for `devices` devices all connecting from 127.0.0.1 and pushing
/// far faster than people do.
pub fn start_relay(relay: Option<&Path>, devices: usize) -> Result<RelayProcess> {
    start_relay_with(relay, devices, &[], None)
}

/// [`start_relay`] with more `serve` arguments (e.g. `--store postgres://…`) and, if
/// `identity_from` names a data directory, that relay's certificate and key (relays sharing a
/// database share one identity).
pub fn start_relay_with(
    relay: Option<&Path>,
    devices: usize,
    args: &[&str],
    identity_from: Option<&Path>,
) -> Result<RelayProcess> {
    let bin = match relay {
        Some(bin) => bin.to_path_buf(),
        None => {
            let exe = std::env::current_exe()?;
            exe.with_file_name("candor-relay")
        }
    };
    let dir = tempfile::tempdir()?;
    if let Some(from) = identity_from {
        std::fs::create_dir(dir.path().join("data"))?;
        for file in ["cert.der", "key.der"] {
            std::fs::copy(from.join(file), dir.path().join("data").join(file))?;
        }
    }
    let config = dir.path().join("relay.toml");
    // Every device connects from 127.0.0.1: lift the per-address limits, and the per-device
    // request rate (the generator pushes far faster than a person).
    std::fs::write(
        &config,
        format!(
            "[limits]\nmax_connections = {n}\nmax_connections_per_address = {n}\n\
             address_connections_per_second = 0.0\ndevice_requests_per_second = 0.0\n\
             space_quota_mib = 0\n",
            n = devices + 64
        ),
    )?;
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(args)
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

/// Resident memory of process `pid` in MiB (VmRSS).
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// Peak resident memory of process `pid` in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A memory figure of `/proc/PID/status` (given in kB there) in MiB; 0 if unreadable.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) used so far by process `pid`, and by this process.
pub fn cpu_secs(pid: u32) -> f64 {
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

/// Bytes from the OS RNG (zeros if it fails: this is a load generator, not key material).
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).unwrap_or_default();
    out
}

/// One space: its creator (the writer) and partner, and the writer's log so far.
pub struct Pair {
    /// The space.
    pub space: SpaceId,
    /// Its key.
    pub key: SpaceKey,
    /// The device that creates the space and writes.
    pub writer: DeviceSecrets,
    /// The device that joins and reads.
    pub reader: DeviceSecrets,
    next_seq: u64,
    prev: EntryHash,
}

impl Pair {
    /// A new space with fresh random keys.
    pub fn random() -> Self {
        Self {
            space: SpaceId(random()),
            key: SpaceKey::from_bytes(random()),
            writer: DeviceSecrets::from_seeds(random(), random()),
            reader: DeviceSecrets::from_seeds(random(), random()),
            next_seq: 0,
            prev: EntryHash::ZERO,
        }
    }
}

impl Pair {
    /// Seals the writer's next `n` entries with `text_bytes` of content each.
    pub fn seal(&mut self, n: usize, text_bytes: usize) -> Result<Vec<Vec<u8>>> {
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
pub fn seal_all(
    pairs: &mut [Pair],
    per_pair: usize,
    text_bytes: usize,
) -> Result<Vec<Vec<Vec<u8>>>> {
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

/// A member card with a dummy proof (the relay does not check proofs; partners do).
pub fn card(d: &DeviceSecrets) -> MemberCard {
    MemberCard {
        public: d.public(),
        proof: [0; 32],
    }
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends a request; a refusal is an error.
pub async fn expect(client: &RelayClient, request: Request) -> Result<Response> {
    let response = client.request(&request).await?;
    if let Response::Error { code, message } = &response {
        bail!("relay refused ({code:?}): {message}");
    }
    Ok(response)
}

/// One connected space: the writer's and the reader's authenticated connections, and the
/// reader's subscription to the space.
pub struct Connected {
    /// The writer (it created the space).
    pub writer: Arc<RelayClient>,
    /// The reader (it joined).
    pub reader: Arc<RelayClient>,
    /// The reader's subscription.
    pub subscription: Subscription,
}

/// Connects both devices of every pair (each on its own QUIC connection, 64 handshakes at a
/// time), creates and joins the spaces, and subscribes the readers; in `pairs` order.
pub async fn connect_pairs(relay: &RelayProcess, pairs: &[Pair]) -> Result<Vec<Connected>> {
    connect_pairs_across(relay, relay, pairs).await
}

/// [`connect_pairs`] with the writers on one relay and the readers on another (two processes
/// sharing one database and one certificate).
pub async fn connect_pairs_across(
    writers: &RelayProcess,
    readers: &RelayProcess,
    pairs: &[Pair],
) -> Result<Vec<Connected>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        let (addr, fp) = (writers.addr.clone(), writers.fingerprint);
        let reader_addr = readers.addr.clone();
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
            let (r, _) = RelayClient::connect(&reader_addr, &fp, &reader).await?;
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
    let mut clients: Vec<Option<Connected>> = (0..pairs.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, w, r, subscription) = joined??;
        if let Some(slot) = clients.get_mut(i) {
            *slot = Some(Connected {
                writer: Arc::new(w),
                reader: Arc::new(r),
                subscription,
            });
        }
    }
    clients
        .into_iter()
        .map(|c| c.ok_or_else(|| anyhow!("a space was not connected")))
        .collect()
}

/// What an ingest run measured.
#[derive(Debug, Clone, Copy)]
pub struct Ingest {
    /// Entries the relay acknowledged as stored (flushed and fsynced).
    pub stored: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The relay's CPU use, in cores (1.0 = one core busy all the time).
    pub relay_cores: f64,
    /// This process's CPU use, in cores.
    pub own_cores: f64,
}

impl Ingest {
    /// Durably acknowledged entries per second.
    pub fn per_sec(&self) -> f64 {
        self.stored as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Every writer pushes its space's `entries` in pushes of `batch`, all spaces at once, each
/// push waiting for the relay's durable acknowledgement.
pub async fn ingest(
    relay_pid: u32,
    spaces: &[(SpaceId, Arc<RelayClient>)],
    entries: Vec<Vec<Vec<u8>>>,
    batch: usize,
) -> Result<Ingest> {
    let stored = Arc::new(AtomicU64::new(0));
    let (relay_cpu, own_cpu) = (cpu_secs(relay_pid), cpu_secs(std::process::id()));
    let phase = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for ((space, w), entries) in spaces.iter().cloned().zip(entries) {
        let stored = Arc::clone(&stored);
        tasks.spawn(async move {
            for chunk in entries.chunks(batch.max(1)) {
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
    let elapsed = phase.elapsed();
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(Ingest {
        stored: stored.load(Ordering::Relaxed),
        elapsed,
        relay_cores: (cpu_secs(relay_pid) - relay_cpu) / secs,
        own_cores: (cpu_secs(std::process::id()) - own_cpu) / secs,
    })
}
