//! The benchmark suite: Candor against the physical limits of this machine and against a peer.
//!
//! ```sh
//! cargo run --release -p candor-tests --bin bench            # full run, rewrites BENCHMARKS.md
//! cargo run --release -p candor-tests --bin bench -- --quick # < 1 minute, prints only
//! ```
//!
//! Every Candor case runs the real `candor-relay` and `candor` binaries (built next to this
//! executable) on 127.0.0.1 with their sled stores in temp dirs; the limits are measured in this
//! process in the same run. Each figure is the median of several runs, with the range. What is
//! timed, case by case:
//!
//! 1. **write → visible**: device A and B both run `candor sync --watch`; the bench sends
//!    `log add` to A's watcher over its local socket (what `candor log add` does, without
//!    starting a process) and stops the clock when B's watcher prints that it pulled the entry
//!    (verified, stored and flushed on B). A's write, the push, the relay's fsync, the
//!    notification, the pull and B's fsync are all inside.
//! 2. **sustained stream**: 10,000 `log add`s sent to A's watcher over 16 concurrent socket
//!    connections, each write durable on A before it is answered; the clock stops when B's
//!    watcher has reported all of them pulled. 2b: the same number as `log import -` batches of
//!    100 (two at a time), for a program that writes many entries at once.
//! 3. **catch-up**: A holds 10,000 (then 100,000) entries on the relay; a freshly joined B runs
//!    `candor sync` (process start to exit: connect, pull, verify, decrypt, store, checkpoint,
//!    audit). Each run starts from copies of the relay's data and B's home taken before B's
//!    first sync.
//! 4. **relay ingest**: many devices (each its own QUIC connection) push pre-sealed entries in
//!    batches of 64 at once; each push waits for the durable acknowledgement
//!    (`candor_tests::load`, shared with `loadgen`).
//! 5. **limits**: Ed25519 verify (one by one, batch, batch on all cores), XChaCha20-Poly1305 on
//!    256 B, sled inserts with and without flush, and quinn 256 B request/response over loopback,
//!    sequential and 64 in flight.
//! 7. **PostgreSQL**: durable ingest with sled, with PostgreSQL behind one relay and behind two
//!    relays sharing it, in one run, and p99 push → partner notified across the two relays
//!    (`candor_tests::pg_load`; needs PostgreSQL's server binaries).
//! 6. **peer**: `scripts/syncthing-peer.sh` moves 1,000 small files from one Syncthing to
//!    another through an untrusted "receive encrypted" Syncthing in the middle.
//!
//! The full run replaces the region between `<!-- bench:begin -->` and `<!-- bench:end -->` in
//! BENCHMARKS.md (appending it if missing) and keeps everything else in the file.

use anyhow::{anyhow, bail, Context as _, Result};
use candor::daemon::{self, Forwarded};
use candor::home::Home;
use candor_tests::load::{self, Pair};
use candor_tests::{Device, Relay};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";
/// How long any awaited event of the benchmark may take.
const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    runs: usize,
    /// Run only these cases (1–7); all when empty.
    only: Vec<u32>,
    peer: bool,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Opts> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut opts = Opts {
        quick: false,
        runs: 5,
        only: Vec::new(),
        peer: true,
        out: Some(root.join("BENCHMARKS.md")),
    };
    let mut out_given = None;
    let mut runs_given = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => opts.quick = true,
            "--no-peer" => opts.peer = false,
            "--only" => {
                opts.only = it
                    .next()
                    .ok_or_else(|| anyhow!("--only needs case numbers, e.g. 1,3"))?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--runs" => {
                runs_given = Some(
                    it.next()
                        .ok_or_else(|| anyhow!("--runs needs a number"))?
                        .parse::<usize>()?,
                )
            }
            "--out" => {
                out_given = Some(PathBuf::from(
                    it.next().ok_or_else(|| anyhow!("--out needs a file"))?,
                ))
            }
            "--help" | "-h" => {
                println!(
                    "bench [--quick] [--runs N] [--no-peer] [--only 1,2,…] [--out FILE]\n\n\
                     Runs Candor's benchmark suite and writes its results between the \
                     {BEGIN} and {END} markers of FILE (default: the repository's \
                     BENCHMARKS.md; --quick writes only with --out). --quick: small sizes, two \
                     runs, no Syncthing peer; finishes in under a minute. --only: just these cases \
                     (prints, never writes)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if opts.quick {
        opts.runs = 2;
        opts.peer = false;
        opts.out = None;
    }
    if let Some(runs) = runs_given {
        opts.runs = runs.max(1);
    }
    if let Some(out) = out_given {
        opts.out = Some(out);
    } else if !opts.only.is_empty() {
        opts.out = None;
    }
    Ok(opts)
}

/// One figure over several runs.
#[derive(Debug, Clone, Default)]
struct Stat(Vec<f64>);

impl Stat {
    fn push(&mut self, value: f64) {
        self.0.push(value);
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
    /// `median (min–max)` with `fmt` applied to each.
    fn show(&self, fmt: fn(f64) -> String) -> String {
        if self.0.len() < 2 {
            return fmt(self.median());
        }
        format!(
            "**{}** ({}–{})",
            fmt(self.median()),
            fmt(self.min()),
            fmt(self.max())
        )
    }
}

fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn secs(v: f64) -> String {
    format!("{v:.2} s")
}

fn ratio(value: f64, bound: f64) -> String {
    if !value.is_finite() || !bound.is_finite() || bound == 0.0 {
        return "–".into();
    }
    let r = value / bound;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------------
// 5. Limits, in process.

#[derive(Debug, Default)]
struct Limits {
    verify_single: Stat,
    verify_batch: Stat,
    verify_batch_all: Stat,
    xchacha_open: Stat,
    sled_noflush: Stat,
    sled_flush: Stat,
    sled_flush_sync: Stat,
    quinn_seq: Stat,
    quinn_conc: Stat,
}

fn signed_messages(
    n: usize,
) -> Vec<(
    ed25519_dalek::VerifyingKey,
    Vec<u8>,
    ed25519_dalek::Signature,
)> {
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&load::random());
    (0..n)
        .map(|i| {
            let mut message = vec![0u8; 23 + 198];
            message[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let signature = key.sign(&message);
            (key.verifying_key(), message, signature)
        })
        .collect()
}

fn batch_verify(
    items: &[(
        ed25519_dalek::VerifyingKey,
        Vec<u8>,
        ed25519_dalek::Signature,
    )],
) -> Result<()> {
    for chunk in items.chunks(256) {
        let messages: Vec<&[u8]> = chunk.iter().map(|(_, m, _)| m.as_slice()).collect();
        let signatures: Vec<_> = chunk.iter().map(|(_, _, s)| *s).collect();
        let keys: Vec<_> = chunk.iter().map(|(k, _, _)| *k).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys)
            .map_err(|e| anyhow!("batch verify: {e}"))?;
    }
    Ok(())
}

fn per_sec(n: usize, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64().max(1e-9)
}

fn limit_crypto(limits: &mut Limits, quick: bool) -> Result<()> {
    let n = if quick { 1_000 } else { 8_192 };
    let items = signed_messages(n);
    let t = Instant::now();
    for (key, message, signature) in &items {
        key.verify_strict(message, signature)
            .map_err(|e| anyhow!("verify: {e}"))?;
    }
    limits.verify_single.push(per_sec(n, t));
    let t = Instant::now();
    batch_verify(&items)?;
    limits.verify_batch.push(per_sec(n, t));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let t = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(n.div_ceil(threads))
            .map(|part| scope.spawn(move || batch_verify(part)))
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow!("verify thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    limits.verify_batch_all.push(per_sec(n, t));

    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new((&load::random::<32>()).into());
    let nonce = load::random::<24>();
    let aad = [7u8; 166];
    let sealed = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &[1u8; 256],
                aad: &aad,
            },
        )
        .map_err(|_| anyhow!("encrypt"))?;
    let m = if quick { 10_000 } else { 100_000 };
    let t = Instant::now();
    for _ in 0..m {
        let opened = cipher
            .decrypt(
                (&nonce).into(),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow!("decrypt"))?;
        std::hint::black_box(opened);
    }
    limits.xchacha_open.push(per_sec(m, t));
    Ok(())
}

fn limit_sled(limits: &mut Limits, quick: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new().path(dir.path()).open()?;
    let tree = db.open_tree("log")?;
    let data = std::fs::File::open(dir.path().join("db")).ok();
    let value = vec![9u8; 534];
    let key = |i: usize| {
        let mut k = [0u8; 40];
        k[32..].copy_from_slice(&(i as u64).to_be_bytes());
        k
    };
    let n = if quick { 5_000 } else { 50_000 };
    let t = Instant::now();
    for i in 0..n {
        tree.insert(key(i), value.as_slice())?;
    }
    limits.sled_noflush.push(per_sec(n, t));
    db.flush()?;
    let f = if quick { 200 } else { 1_000 };
    let t = Instant::now();
    for i in n..n + f {
        tree.insert(key(i), value.as_slice())?;
        db.flush()?;
    }
    limits.sled_flush.push(per_sec(f, t));
    let t = Instant::now();
    for i in n + f..n + 2 * f {
        tree.insert(key(i), value.as_slice())?;
        db.flush()?;
        if let Some(file) = &data {
            file.sync_data()?;
        }
    }
    limits.sled_flush_sync.push(per_sec(f, t));
    Ok(())
}

async fn limit_quinn(limits: &mut Limits, quick: bool) -> Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der())
        .map_err(|e| anyhow!("key: {e}"))?;
    let server_config = quinn::ServerConfig::with_single_cert(vec![cert_der.clone()], key)?;
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let serving = tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(request) = recv.read_to_end(4096).await {
                            let _ = send.write_all(&request).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der)?;
    let client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_config);
    let conn = client.connect(addr, "localhost")?.await?;
    let request = vec![5u8; 256];
    async fn round_trip(conn: &quinn::Connection, request: &[u8]) -> Result<()> {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(request).await?;
        send.finish()?;
        let answer = recv.read_to_end(4096).await?;
        if answer.len() != request.len() {
            bail!("short answer");
        }
        Ok(())
    }
    let n = if quick { 500 } else { 3_000 };
    for _ in 0..50 {
        round_trip(&conn, &request).await?;
    }
    let t = Instant::now();
    for _ in 0..n {
        round_trip(&conn, &request).await?;
    }
    limits.quinn_seq.push(per_sec(n, t));
    let total = if quick { 5_000 } else { 40_000 };
    let in_flight = 64;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let conn = conn.clone();
        let request = request.clone();
        tasks.spawn(async move {
            for _ in 0..total / in_flight {
                round_trip(&conn, &request).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    limits
        .quinn_conc
        .push(per_sec(total / in_flight * in_flight, t));
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    serving.abort();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Devices.

/// Relay and two paired devices (A created the space, B joined), both having synced once.
struct Pairing {
    tmp: tempfile::TempDir,
    relay: Option<Relay>,
    a: Device,
    b: Device,
}

/// A benchmark exceeds the relay's default per-device request rate (meant for people) on
/// purpose: lift it, and the per-address connection limits (everything is on 127.0.0.1).
const RELAY_CONFIG: &str = "[limits]\ndevice_requests_per_second = 0.0\n\
    address_connections_per_second = 0.0\nspace_quota_mib = 0\n";

/// Starts a relay with [`RELAY_CONFIG`] in `root`.
fn bench_relay(root: &Path, data: &Path, listen: &str) -> Result<Relay> {
    let config = root.join("relay.toml");
    std::fs::write(&config, RELAY_CONFIG)?;
    Relay::start_with(data, listen, Some(&config))
}

fn pairing() -> Result<Pairing> {
    let tmp = tempfile::tempdir()?;
    let relay = bench_relay(tmp.path(), &tmp.path().join("relay"), "127.0.0.1:0")?;
    let a = Device::init(tmp.path(), "A")?;
    let b = Device::init(tmp.path(), "B")?;
    let invite = a.create_space(&relay)?;
    b.ok(&["space", "join", &invite])?;
    a.ok(&["sync"])?;
    Ok(Pairing {
        tmp,
        relay: Some(relay),
        a,
        b,
    })
}

/// Runs `candor --home HOME ARGS…` in the `sync --watch` running for `home`, over its socket;
/// `None` if none is listening.
fn via_socket(home: &Path, args: &[&str], stdin: Option<String>) -> Result<Option<()>> {
    let mut all = vec![
        "candor".to_string(),
        "--home".into(),
        home.display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let request = Forwarded {
        args: all,
        cwd: std::env::temp_dir(),
        stdin,
        passphrase: None,
    };
    match daemon::forward(&Home::new(home.to_path_buf()), &request)? {
        None => Ok(None),
        Some(output) if output.code == 0 => Ok(Some(())),
        Some(output) => bail!("candor {args:?} failed: {}", output.stderr),
    }
}

/// Sends `log add TEXT` to the `sync --watch` running for `home`; `None` if none is listening.
fn add_via_socket(home: &Path, text: &str) -> Result<Option<()>> {
    via_socket(home, &["log", "add", text], None)
}

/// Waits (polling, during setup only) until the watcher of `home` answers on its socket.
fn wait_socket(home: &Path) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while add_via_socket(home, "warm-up")?.is_none() {
        if Instant::now() > deadline {
            bail!("sync --watch of {} never opened its socket", home.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The number of entries a watcher's line says it pulled (`pushed X, pulled Y`).
fn pulled_in(line: &str) -> u64 {
    line.split_once("pulled ")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `watch` has reported `n` pulled entries in total; returns when the last came.
fn wait_pulled(watch: &candor_tests::Watch, n: u64) -> Result<Instant> {
    let deadline = Instant::now() + WAIT;
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = watch
            .next_line(left)
            .ok_or_else(|| anyhow!("timed out: the partner reported {got} of {n} entries"))?;
        got += pulled_in(&line);
    }
    Ok(Instant::now())
}

#[derive(Debug, Default)]
struct WriteVisible {
    p50: Stat,
    p99: Stat,
    write_p50: Stat,
    samples: usize,
}

/// Case 1.
fn case_write_visible(opts: &Opts) -> Result<WriteVisible> {
    let env = pairing()?;
    let a_watch = env.a.watch()?;
    let b_watch = env.b.watch()?;
    wait_socket(&env.a.home)?;
    wait_pulled(&b_watch, 1)?;
    let samples = if opts.quick { 20 } else { 200 };
    let mut out = WriteVisible {
        samples,
        ..WriteVisible::default()
    };
    for run in 0..opts.runs {
        let mut total = Vec::with_capacity(samples);
        let mut write = Vec::with_capacity(samples);
        for i in 0..samples {
            let t0 = Instant::now();
            add_via_socket(&env.a.home, &format!("run {run} entry {i}"))?
                .ok_or_else(|| anyhow!("A's watcher went away"))?;
            let written = t0.elapsed();
            let seen = wait_pulled(&b_watch, 1)?;
            total.push((seen - t0).as_secs_f64() * 1e3);
            write.push(written.as_secs_f64() * 1e3);
            // One entry at a time, as a person writes: let the checkpoint B writes after each
            // pull reach A before the next entry.
            std::thread::sleep(Duration::from_millis(15));
        }
        total.sort_by(f64::total_cmp);
        write.sort_by(f64::total_cmp);
        out.p50.push(percentile(&total, 0.5));
        out.p99.push(percentile(&total, 0.99));
        out.write_p50.push(percentile(&write, 0.5));
    }
    drop(a_watch);
    drop(b_watch);
    Ok(out)
}

#[derive(Debug, Default)]
struct Stream {
    end_to_end: Stat,
    written: Stat,
    /// The same stream written as `log import -` batches.
    batched: Stat,
    entries: usize,
    writers: usize,
    batch: usize,
    /// CPU time per entry (µs) during the single-entry stream: A, relay, B, the writer (bench).
    cpu_us: [Stat; 4],
    /// The same during the batched stream.
    cpu_us_batched: [Stat; 4],
}

/// CPU seconds used so far by A, the relay, B and this process.
fn cpu_of(pids: [u32; 3]) -> [f64; 4] {
    [
        load::cpu_secs(pids[0]),
        load::cpu_secs(pids[1]),
        load::cpu_secs(pids[2]),
        load::cpu_secs(std::process::id()),
    ]
}

fn record_cpu(into: &mut [Stat; 4], before: [f64; 4], after: [f64; 4], entries: usize) {
    for (i, stat) in into.iter_mut().enumerate() {
        stat.push((after[i] - before[i]) / entries as f64 * 1e6);
    }
}

/// Case 2.
fn case_stream(opts: &Opts) -> Result<Stream> {
    let entries = if opts.quick { 500 } else { 10_000 };
    let writers = 16;
    let batch = 100;
    let mut out = Stream {
        entries,
        writers,
        batch,
        ..Stream::default()
    };
    let runs = if opts.quick { 1 } else { opts.runs.min(3) };
    for _ in 0..runs {
        let env = pairing()?;
        let a_watch = env.a.watch()?;
        let b_watch = env.b.watch()?;
        wait_socket(&env.a.home)?;
        wait_pulled(&b_watch, 1)?;
        let relay_pid = env
            .relay
            .as_ref()
            .map(Relay::pid)
            .ok_or_else(|| anyhow!("no relay"))?;
        let pids = [a_watch.pid(), relay_pid, b_watch.pid()];
        let cpu_before = cpu_of(pids);
        let t0 = Instant::now();
        let home = env.a.home.clone();
        let writing = std::thread::spawn(move || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..writers)
                    .map(|w| {
                        let home = home.clone();
                        scope.spawn(move || {
                            for i in (w..entries).step_by(writers) {
                                add_via_socket(&home, &format!("stream entry {i}"))?
                                    .ok_or_else(|| anyhow!("A's watcher went away"))?;
                            }
                            Ok::<_, anyhow::Error>(())
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().map_err(|_| anyhow!("writer panicked"))??;
                }
                Ok::<_, anyhow::Error>(t0.elapsed())
            })
        });
        let done = wait_pulled(&b_watch, entries as u64)?;
        let wrote = writing.join().map_err(|_| anyhow!("writers panicked"))??;
        out.end_to_end
            .push(entries as f64 / (done - t0).as_secs_f64().max(1e-9));
        out.written
            .push(entries as f64 / wrote.as_secs_f64().max(1e-9));
        record_cpu(&mut out.cpu_us, cpu_before, cpu_of(pids), entries);
        let cpu_before = cpu_of(pids);
        // The same number of entries as `log import -` batches (one transaction and one flush
        // per batch), two writers at a time.
        let t0 = Instant::now();
        let home = env.a.home.clone();
        let writing = std::thread::spawn(move || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..2)
                    .map(|w| {
                        let home = home.clone();
                        scope.spawn(move || {
                            for chunk in (0..entries)
                                .collect::<Vec<_>>()
                                .chunks(batch)
                                .skip(w)
                                .step_by(2)
                            {
                                let mut text = String::new();
                                for i in chunk {
                                    let _ = writeln!(text, "batched stream entry {i}");
                                }
                                via_socket(&home, &["log", "import", "-"], Some(text))?
                                    .ok_or_else(|| anyhow!("A's watcher went away"))?;
                            }
                            Ok::<_, anyhow::Error>(())
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().map_err(|_| anyhow!("writer panicked"))??;
                }
                Ok::<_, anyhow::Error>(())
            })
        });
        let done = wait_pulled(&b_watch, entries as u64)?;
        writing.join().map_err(|_| anyhow!("writers panicked"))??;
        out.batched
            .push(entries as f64 / (done - t0).as_secs_f64().max(1e-9));
        record_cpu(&mut out.cpu_us_batched, cpu_before, cpu_of(pids), entries);
        drop(a_watch);
        drop(b_watch);
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for item in std::fs::read_dir(from)? {
        let item = item?;
        let target = to.join(item.file_name());
        let kind = item.file_type()?;
        if kind.is_dir() {
            copy_dir(&item.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(item.path(), &target)?;
            std::fs::set_permissions(&target, item.metadata()?.permissions())?;
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct CatchUp {
    sizes: Vec<(usize, Stat)>,
}

/// Case 3.
fn case_catch_up(opts: &Opts) -> Result<CatchUp> {
    let sizes: &[usize] = if opts.quick {
        &[1_000]
    } else {
        &[10_000, 100_000]
    };
    let mut env = pairing()?;
    let root = env.tmp.path().to_path_buf();
    // B's home before its first sync: every run starts from a copy of it.
    let b_template = root.join("b-template");
    copy_dir(&env.b.home, &b_template)?;
    let mut out = CatchUp::default();
    let mut held = 0;
    for (step, &size) in sizes.iter().enumerate() {
        let notes = root.join(format!("notes-{size}.txt"));
        let mut text = String::new();
        for i in held..size {
            let _ = writeln!(text, "catch-up note number {i}, a line of ordinary length");
        }
        std::fs::write(&notes, text)?;
        env.a.ok(&["log", "import", &notes.display().to_string()])?;
        env.a.ok(&["sync"])?;
        held = size;
        let relay = env
            .relay
            .take()
            .ok_or_else(|| anyhow!("the relay is not running"))?;
        let data = relay.data.clone();
        let addr = relay.kill();
        let relay_template = root.join(format!("relay-template-{step}"));
        copy_dir(&data, &relay_template)?;
        let mut stat = Stat::default();
        let runs = if size >= 100_000 {
            opts.runs.min(3)
        } else {
            opts.runs
        };
        for run in 0..runs {
            let relay_dir = root.join(format!("relay-{step}-{run}"));
            copy_dir(&relay_template, &relay_dir)?;
            let relay = bench_relay(&root, &relay_dir, &addr)?;
            let b = Device {
                home: root.join(format!("b-{step}-{run}")),
            };
            copy_dir(&b_template, &b.home)?;
            let t0 = Instant::now();
            let printed = b.ok(&["sync"])?;
            let elapsed = t0.elapsed();
            if pulled_in(printed.trim()) < size as u64 {
                bail!("catch-up pulled less than {size}: {printed}");
            }
            stat.push(size as f64 / elapsed.as_secs_f64().max(1e-9));
            drop(relay);
            let _ = std::fs::remove_dir_all(&relay_dir);
            let _ = std::fs::remove_dir_all(&b.home);
        }
        out.sizes.push((size, stat));
        env.relay = Some(bench_relay(&root, &data, &addr)?);
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Ingest {
    per_sec: Stat,
    relay_cores: Stat,
    devices: usize,
    entries: usize,
}

/// Case 4.
async fn case_ingest(opts: &Opts) -> Result<Ingest> {
    let (spaces, per_space, batch) = if opts.quick {
        (10, 200, 64)
    } else {
        (200, 250, 64)
    };
    let mut out = Ingest {
        devices: spaces * 2,
        entries: spaces * per_space,
        ..Ingest::default()
    };
    for _ in 0..opts.runs.min(3) {
        let relay = load::start_relay(Some(&candor_tests::binary("candor-relay")), spaces * 2)?;
        let mut pairs: Vec<Pair> = (0..spaces).map(|_| Pair::random()).collect();
        let connected = load::connect_pairs(&relay, &pairs).await?;
        let entries = load::seal_all(&mut pairs, per_space, 100)?;
        let writers: Vec<_> = pairs
            .iter()
            .map(|p| p.space)
            .zip(connected.iter().map(|c| Arc::clone(&c.writer)))
            .collect();
        let result = load::ingest(relay.child.id(), &writers, entries, batch).await?;
        if result.stored < out.entries as u64 {
            bail!(
                "ingest stored only {} of {} entries",
                result.stored,
                out.entries
            );
        }
        out.per_sec.push(result.per_sec());
        out.relay_cores.push(result.relay_cores);
        drop(writers);
        drop(connected);
        drop(relay);
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Peer {
    items: usize,
    seconds: Stat,
    one_item_ms: Stat,
    note: String,
}

/// Case 6: runs the Syncthing script, which prints `RESULT items=N seconds=S one_item_ms=M`.
fn case_peer(opts: &Opts) -> Result<Peer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("syncthing-peer.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .env("ROUNDS", opts.runs.min(3).to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{} failed: {stdout}", script.display());
    }
    let mut peer = Peer::default();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("RESULT ") else {
            continue;
        };
        for field in rest.split_whitespace() {
            match field.split_once('=') {
                Some(("items", v)) => peer.items = v.parse().unwrap_or(0),
                Some(("seconds", v)) => peer.seconds.push(v.parse().unwrap_or(f64::NAN)),
                Some(("one_item_ms", v)) => peer.one_item_ms.push(v.parse().unwrap_or(f64::NAN)),
                _ => {}
            }
        }
    }
    if peer.seconds.0.is_empty() {
        bail!("{} printed no RESULT line: {stdout}", script.display());
    }
    peer.note = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("VERSION "))
        .next()
        .unwrap_or("syncthing")
        .to_string();
    Ok(peer)
}

// ---------------------------------------------------------------------------------------------
// Report.

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "{cores} cores (`{cpu}`), Linux {kernel}; load average at the start: {}",
        load_average()
    )
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn yes(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "**no**"
    }
}

struct Results {
    opts: Opts,
    started: String,
    machine: String,
    elapsed: Duration,
    limits: Limits,
    wv: WriteVisible,
    stream: Stream,
    catch_up: CatchUp,
    ingest: Ingest,
    postgres: Option<std::result::Result<candor_tests::pg_load::PgFigures, String>>,
    peer: std::result::Result<Peer, String>,
}

/// Case 7: one run of each store, in the same process and minute.
fn render_postgres(
    s: &mut String,
    pg: &std::result::Result<candor_tests::pg_load::PgFigures, String>,
) {
    let _ = writeln!(s, "\n### 7. PostgreSQL behind the relay\n");
    match pg {
        Err(why) => {
            let _ = writeln!(s, "Not measured: {why}");
        }
        Ok(pg) => {
            let _ = writeln!(
                s,
                "{} writers (one space each, partner subscribed on the other relay when there \
                 are two) push {} entries in batches of {}; each push waits for its durable \
                 acknowledgement (sled: flushed and fsynced; PostgreSQL: committed, `fsync` and \
                 `synchronous_commit` on, one throw-away cluster on a Unix socket).\n\n\
                 | store | durably acknowledged entries/s | target |\n|---|---|---|",
                pg.writers,
                rate(pg.entries as f64),
                candor_tests::pg_load::BATCH
            );
            let _ = writeln!(s, "| sled, one relay | {} | |", rate(pg.sled));
            let _ = writeln!(s, "| PostgreSQL, one relay | {} | |", rate(pg.pg_one));
            let _ = writeln!(
                s,
                "| PostgreSQL, two relays on one database | {} | ≥ 10,000: {} |",
                rate(pg.pg_two),
                yes(pg.pg_two >= 10_000.0)
            );
            let _ = writeln!(
                s,
                "\nWrite → partner notified across relays (push on relay 1, `Notify` on relay 2 \
                 through LISTEN/NOTIFY), {} single-entry pushes: p50 {}, p99 {} (target p99 < \
                 20 ms: {}).",
                pg.notify_samples,
                ms(pg.notify_p50_ms),
                ms(pg.notify_p99_ms),
                yes(pg.notify_p99_ms < 20.0)
            );
        }
    }
}

fn render(r: &Results) -> String {
    let l = &r.limits;
    let mut s = String::new();
    let runs = r.opts.runs;
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## Benchmark suite (generated)\n\n\
         Generated by `cargo run --release -p candor-tests --bin bench{}` on {} (took {:.0} s). \
         Machine: {}. The relay and both devices are the real {} binaries on 127.0.0.1 with \
         sled stores in temp dirs on the machine's disk; the limits are measured in the same run, \
         in process. Figures are the **median** of the runs with the range (min–max) after it; \
         ratios use medians. The machine is shared with other builds, so single figures move by \
         ±25 %; compare ratios. See `tests/src/bin/bench.rs` for exactly what each case times.\n",
        if r.opts.quick { " -- --quick" } else { "" },
        r.started,
        r.elapsed.as_secs_f64(),
        r.machine,
        if cfg!(debug_assertions) {
            "debug (unoptimised: figures not comparable)"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        s,
        "Load average at the end: {}. When \"all cores\" below is not well above \"1 core\", \
         other processes held the second core during the run.\n",
        load_average()
    );
    let _ = writeln!(s, "### Limits of this machine ({runs} runs each)\n");
    let _ = writeln!(s, "| limit | per second |\n|---|---|");
    for (name, stat) in [
        ("Ed25519 verify, one by one (1 core)", &l.verify_single),
        ("Ed25519 verify, batches of 256 (1 core)", &l.verify_batch),
        (
            "Ed25519 verify, batches of 256 (all cores)",
            &l.verify_batch_all,
        ),
        ("XChaCha20-Poly1305 open, 256 B (1 core)", &l.xchacha_open),
        ("sled insert (534 B), no flush", &l.sled_noflush),
        ("sled insert + flush", &l.sled_flush),
        (
            "sled insert + flush + fdatasync (what Candor's stores do per durable write)",
            &l.sled_flush_sync,
        ),
        ("quinn 256 B request/response, sequential", &l.quinn_seq),
        ("quinn 256 B request/response, 64 in flight", &l.quinn_conc),
    ] {
        let _ = writeln!(s, "| {name} | {} |", stat.show(rate));
    }
    // Bounds.
    let rtt_ms = 1e3 / l.quinn_seq.median();
    let durable_ms = 1e3 / l.sled_flush_sync.median();
    let floor_ms = 3.0 * durable_ms + 2.0 * rtt_ms;
    let _ = writeln!(s, "\n### Candor\n");
    let _ = writeln!(
        s,
        "| case | figure | bound (limit that caps it) | ratio to bound | target | met? |\n|---|---|---|---|---|---|"
    );
    let wv = &r.wv;
    let _ = writeln!(
        s,
        "| 1. write → visible at the partner, p50 ({} samples per run, {runs} runs) | {} | {} = 3 durable writes ({}) + 2 round trips ({}) | {} | < 2 ms | {} |",
        wv.samples,
        wv.p50.show(ms),
        ms(floor_ms),
        ms(durable_ms),
        ms(rtt_ms),
        ratio(wv.p50.median(), floor_ms),
        yes(wv.p50.median() < 2.0)
    );
    let _ = writeln!(
        s,
        "| 1. write → visible, p99 | {} | {} | {} | < 10 ms | {} |",
        wv.p99.show(ms),
        ms(floor_ms),
        ratio(wv.p99.median(), floor_ms),
        yes(wv.p99.median() < 10.0)
    );
    let _ = writeln!(
        s,
        "| 1. of which A's durable write, answered over its socket, p50 | {} | {} (1 durable write) | {} | | |",
        wv.write_p50.show(ms),
        ms(durable_ms),
        ratio(wv.write_p50.median(), durable_ms),
    );
    let st = &r.stream;
    let _ = writeln!(
        s,
        "| 2. sustained stream, {} entries from {} concurrent writers, end to end (entries/s) | {} | {} (sled insert + flush + fdatasync) | {} | ≥ 5,000/s | {} |",
        rate(st.entries as f64),
        st.writers,
        st.end_to_end.show(rate),
        rate(l.sled_flush_sync.median()),
        ratio(st.end_to_end.median(), l.sled_flush_sync.median()),
        yes(st.end_to_end.median() >= 5_000.0)
    );
    let _ = writeln!(
        s,
        "| 2. of which A's durable writes (entries/s) | {} | {} | {} | | |",
        st.written.show(rate),
        rate(l.sled_flush_sync.median()),
        ratio(st.written.median(), l.sled_flush_sync.median()),
    );
    let _ = writeln!(
        s,
        "| 2b. the same stream written as `log import -` batches of {} (2 writers), end to end (entries/s) | {} | {} (Ed25519 batch verify, all cores: relay and B verify every entry) | {} | ≥ 5,000/s | {} |",
        st.batch,
        st.batched.show(rate),
        rate(l.verify_batch_all.median()),
        ratio(st.batched.median(), l.verify_batch_all.median()),
        yes(st.batched.median() >= 5_000.0)
    );
    let cpu = |stats: &[Stat; 4]| {
        let total: f64 = stats.iter().map(Stat::median).sum();
        format!(
            "A {:.0} µs, relay {:.0} µs, B {:.0} µs, writer {:.0} µs: {:.0} µs of CPU per entry, \
             so {} cores cap it at {}/s",
            stats[0].median(),
            stats[1].median(),
            stats[2].median(),
            stats[3].median(),
            total,
            std::thread::available_parallelism().map_or(1, usize::from),
            rate(std::thread::available_parallelism().map_or(1, usize::from) as f64 / total * 1e6)
        )
    };
    let _ = writeln!(
        s,
        "| 2. CPU per entry, single entries (from /proc) | {} | | | | |",
        cpu(&st.cpu_us)
    );
    let _ = writeln!(
        s,
        "| 2b. CPU per entry, batches | {} | | | | |",
        cpu(&st.cpu_us_batched)
    );
    for (size, stat) in &r.catch_up.sizes {
        let _ = writeln!(
            s,
            "| 3. catch-up of {} entries by a freshly joined device (entries/s) | {} | {} (Ed25519 batch verify, all cores) | {} | ≥ 20,000/s | {} |",
            rate(*size as f64),
            stat.show(rate),
            rate(l.verify_batch_all.median()),
            ratio(stat.median(), l.verify_batch_all.median()),
            yes(stat.median() >= 20_000.0)
        );
    }
    let ing = &r.ingest;
    let _ = writeln!(
        s,
        "| 4. relay ingest, {} devices pushing {} entries in batches of 64, durably acknowledged (entries/s) | {} | {} (Ed25519 batch verify, all cores) | {} | | |",
        ing.devices,
        rate(ing.entries as f64),
        ing.per_sec.show(rate),
        rate(l.verify_batch_all.median()),
        ratio(ing.per_sec.median(), l.verify_batch_all.median()),
    );
    let _ = writeln!(
        s,
        "\nRelay CPU during ingest: {} cores busy.",
        ing.relay_cores.show(|v| format!("{v:.2}"))
    );
    if let Some(pg) = &r.postgres {
        render_postgres(&mut s, pg);
    }
    let _ = writeln!(s, "\n### Peer: Syncthing\n");
    match &r.peer {
        Ok(peer) => {
            let candor_secs = peer.items as f64 / st.end_to_end.median();
            let _ = writeln!(
                s,
                "{} as an untrusted \"receive encrypted\" node between two trusted ones, all on \
                 127.0.0.1, discovery and relays off (`scripts/syncthing-peer.sh`).\n\n\
                 | figure | Syncthing | Candor | Candor faster by | target |\n|---|---|---|---|---|",
                peer.note
            );
            let _ = writeln!(
                s,
                "| {} small items A → B, Candor writing them one `log add` each | {} | {} (at case 2's rate) | {} | ≥ 10× ({}) |",
                rate(peer.items as f64),
                peer.seconds.show(secs),
                secs(candor_secs),
                ratio(peer.seconds.median(), candor_secs),
                yes(peer.seconds.median() / candor_secs >= 10.0)
            );
            let batched_secs = peer.items as f64 / st.batched.median();
            let _ = writeln!(
                s,
                "| {} small items A → B, Candor writing them as `log import -` batches | {} | {} (at case 2b's rate) | {} | ≥ 10× ({}) |",
                rate(peer.items as f64),
                peer.seconds.show(secs),
                secs(batched_secs),
                ratio(peer.seconds.median(), batched_secs),
                yes(peer.seconds.median() / batched_secs >= 10.0)
            );
            if !peer.one_item_ms.0.is_empty() {
                let _ = writeln!(
                    s,
                    "| one item A → B (write → visible) | {} | {} (case 1 p50) | {} | |",
                    peer.one_item_ms.show(ms),
                    ms(wv.p50.median()),
                    ratio(peer.one_item_ms.median(), wv.p50.median()),
                );
            }
        }
        Err(why) => {
            let _ = writeln!(s, "Not run: {why}.");
        }
    }
    let _ = writeln!(s, "\n{END}");
    s
}

/// Replaces the marked region of `path` with `region` (appending it if the markers are missing).
fn write_region(path: &Path, region: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let after = &old[e + END.len()..];
            format!("{}{}{}", &old[..b], region.trim_end(), after)
        }
        _ => format!("{}\n{}", old.trim_end(), format_args!("\n{region}")),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

fn now_utc() -> String {
    let ms = candor::timefmt::now_ms();
    candor::timefmt::rfc3339(ms)
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = parse_args()?;
    let begun = Instant::now();
    let started = now_utc();
    let machine = machine();
    eprintln!("bench: {machine}; {} runs per figure", opts.runs);

    let run = |case: u32| opts.only.is_empty() || opts.only.contains(&case);
    let mut limits = Limits::default();
    if run(5) {
        eprintln!("bench: 5. limits");
        for _ in 0..opts.runs {
            limit_crypto(&mut limits, opts.quick)?;
            limit_sled(&mut limits, opts.quick)?;
            limit_quinn(&mut limits, opts.quick).await?;
        }
    }
    let mut wv = WriteVisible::default();
    if run(1) {
        eprintln!("bench: 1. write → visible");
        let o = opts.clone();
        wv = tokio::task::spawn_blocking(move || case_write_visible(&o)).await??;
    }
    let mut stream = Stream::default();
    if run(2) {
        eprintln!("bench: 2. sustained stream");
        let o = opts.clone();
        stream = tokio::task::spawn_blocking(move || case_stream(&o)).await??;
    }
    let mut catch_up = CatchUp::default();
    if run(3) {
        eprintln!("bench: 3. catch-up");
        let o = opts.clone();
        catch_up = tokio::task::spawn_blocking(move || case_catch_up(&o)).await??;
    }
    let mut ingest = Ingest::default();
    if run(4) {
        eprintln!("bench: 4. relay ingest");
        ingest = case_ingest(&opts).await?;
    }
    let postgres = run(7).then_some(()).map(|()| {
        eprintln!("bench: 7. PostgreSQL behind one and two relays");
        (opts.quick, candor_tests::binary("candor-relay"))
    });
    let postgres = match postgres {
        Some((quick, relay)) => Some(
            candor_tests::pg_load::measure(&relay, quick)
                .await
                .map_err(|e| format!("{e:#}")),
        ),
        None => None,
    };
    let peer = if !opts.peer || !run(6) {
        Err(if opts.quick {
            "skipped in --quick mode".to_string()
        } else {
            "skipped (--no-peer or --only)".to_string()
        })
    } else {
        eprintln!("bench: 6. Syncthing peer");
        let o = opts.clone();
        tokio::task::spawn_blocking(move || case_peer(&o))
            .await?
            .map_err(|e| format!("{e:#}"))
    };
    if let Err(why) = &peer {
        eprintln!("bench: Syncthing peer not run: {why}");
    }
    let results = Results {
        opts: opts.clone(),
        started,
        machine,
        elapsed: begun.elapsed(),
        limits,
        wv,
        stream,
        catch_up,
        ingest,
        postgres,
        peer,
    };
    let region = render(&results);
    println!("{region}");
    if let Some(path) = &opts.out {
        write_region(path, &region)?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}
