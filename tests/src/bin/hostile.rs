//! Relay memory under hostile authenticated connections that hold partly sent frames.
//!
//! ```sh
//! cargo build --release -p candor-relay -p candor-tests
//! target/release/hostile --connections 1024 --streams 2 --sent-kib 160
//! ```
//!
//! It starts the relay it measures (`candor-relay` next to its own executable, or `--relay BIN`)
//! with limits raised for one loopback address, then opens `--connections` QUIC connections,
//! each authenticated with a fresh device key (authenticating is free: no space is needed), and
//! on each opens `--streams` request streams that announce a maximum-size frame (4 MiB) and send
//! `--sent-kib` KiB of it before stalling (as far as the relay's flow control lets them). With
//! everything held open it reports the relay's resident memory (VmRSS and peak VmHWM from
//! /proc) against its idle baseline, then checks that an honest device still gets a small
//! request answered, and how long that took.

use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::keys::{DeviceSecrets, AUTH_SIGNATURE_PREFIX};
use candor_shared::wire::{
    auth_message, decode_body, encode_frame, frame_len, Request, Response, MAX_FRAME,
    TLS_EXPORTER_LABEL,
};
use candor_shared::SpaceId;
use candor_tests::load::{peak_rss_mib, random, rss_mib, start_relay, RelayProcess};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    connections: usize,
    streams: usize,
    sent_kib: usize,
    relay: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        connections: 1024,
        streams: 2,
        sent_kib: 160,
        relay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" => args.connections = value()?.parse()?,
            "--streams" => args.streams = value()?.parse()?,
            "--sent-kib" => args.sent_kib = value()?.parse()?,
            "--relay" => args.relay = Some(value()?.into()),
            "--help" | "-h" => {
                println!("hostile [--connections N] [--streams N] [--sent-kib KIB] [--relay BIN]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

async fn call(conn: &quinn::Connection, request: &Request) -> Result<Response> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&encode_frame(request)?).await?;
    send.finish()?;
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await?;
    let mut body = vec![0u8; frame_len(prefix)?];
    recv.read_exact(&mut body).await?;
    Ok(decode_body(&body)?)
}

/// Connects and authenticates a fresh device.
async fn login(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<quinn::Connection> {
    let conn = endpoint.connect(addr, "candor-relay")?.await?;
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, b"")
        .map_err(|_| anyhow!("no keying material"))?;
    let Response::Challenge { nonce } = call(&conn, &Request::Hello { version: 1 }).await? else {
        bail!("expected a challenge");
    };
    let device = DeviceSecrets::from_seeds(random(), random());
    let signature = device
        .sign(
            AUTH_SIGNATURE_PREFIX,
            &auth_message(&nonce, &exporter, &device.device_key()),
        )
        .to_vec();
    let answer = call(
        &conn,
        &Request::Authenticate {
            device: device.device_key(),
            signature,
        },
    )
    .await?;
    if !matches!(answer, Response::Authenticated { .. }) {
        bail!("not authenticated: {answer:?}");
    }
    Ok(conn)
}

/// Opens `streams` streams on `conn` that announce a 4 MiB frame and send `sent` bytes of it
/// (or as much as flow control lets through in a moment), then keeps them open.
async fn stall(
    conn: &quinn::Connection,
    streams: usize,
    sent: usize,
) -> Result<Vec<quinn::SendStream>> {
    let mut held = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (mut send, _recv) = conn.open_bi().await?;
        let mut frame = (MAX_FRAME as u32).to_be_bytes().to_vec();
        frame.resize(4 + sent, 7);
        // Flow control stops the write where the relay stops reading: that stall is the point.
        let _ = tokio::time::timeout(Duration::from_millis(20), send.write_all(&frame)).await;
        held.push(send);
    }
    Ok(held)
}

async fn run(args: &Args, relay: &RelayProcess) -> Result<()> {
    let pid = relay.child.id();
    let addr: SocketAddr = relay.addr.parse()?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(candor::net::pinned_client_config(&relay.fingerprint)?);
    // Let the relay settle after start-up before taking the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_mib(pid);
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    for chunk in 0..args.connections.div_ceil(64) {
        let n = 64.min(args.connections - chunk * 64);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let endpoint = endpoint.clone();
            let (streams, sent) = (args.streams, args.sent_kib * 1024);
            tasks.spawn(async move {
                let conn = login(&endpoint, addr).await?;
                let sends = stall(&conn, streams, sent).await?;
                anyhow::Ok((conn, sends))
            });
        }
        while let Some(result) = tasks.join_next().await {
            held.push(result.context("a hostile connection task failed")??);
        }
    }
    let opened = started.elapsed();
    // Give the relay a moment to read what it will read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_mib(pid);
    let peak = peak_rss_mib(pid);
    let honest = login(&endpoint, addr).await?;
    let asked = Instant::now();
    let answer = call(
        &honest,
        &Request::Heads {
            space: SpaceId(random()),
        },
    )
    .await?;
    let answered = asked.elapsed();
    if !matches!(answer, Response::Error { .. }) {
        bail!("unexpected answer to an outsider's Heads: {answer:?}");
    }
    println!(
        "hostile: {} authenticated connections x {} streams, each announcing a {} MiB frame and \
         sending {} KiB of it, opened in {:.1} s",
        held.len(),
        args.streams,
        MAX_FRAME / (1024 * 1024),
        args.sent_kib,
        opened.as_secs_f64()
    );
    println!(
        "relay RSS: {baseline:.1} MiB idle, {loaded:.1} MiB with all of them held (+{:.1} MiB, \
         {:.1} KiB per connection), peak {peak:.1} MiB",
        loaded - baseline,
        (loaded - baseline) * 1024.0 / held.len().max(1) as f64
    );
    println!(
        "an honest device's small request meanwhile: answered in {:.1} ms",
        answered.as_secs_f64() * 1000.0
    );
    drop(held);
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let relay = start_relay(args.relay.as_deref(), args.connections)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&args, &relay))
}
