//! A small UDP proxy on 127.0.0.1 that delays and drops datagrams, for measuring sync over a
//! slow, lossy path on a machine without netem (the benchmark's "slow path" case).
//!
//! Each client address gets its own upstream socket, so the relay sees one peer per client.
//! Datagrams in each direction pass a delay line (a queue drained in order once each one's
//! delivery time has come: the one-way delay is constant, so order is kept) after a random drop
//! with the configured probability. The proxy runs as tokio tasks until [`Proxy`] is dropped.

use anyhow::{Context as _, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the path does to datagrams.
#[derive(Debug, Clone, Copy)]
pub struct PathShape {
    /// Added to each datagram in each direction (half the added round trip).
    pub one_way: Duration,
    /// Probability (0–1) that a datagram is dropped, in each direction.
    pub loss: f64,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect (instead of the relay).
    pub addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (port chosen by the OS) in front of `upstream`.
    pub async fn start(upstream: SocketAddr, shape: PathShape) -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, shape).await
    }

    /// Starts a proxy on `listen` (e.g. the address an earlier proxy had, which devices' configs
    /// name) in front of `upstream`.
    pub async fn start_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        shape: PathShape,
    ) -> Result<Self> {
        let front = Arc::new(
            UdpSocket::bind(listen)
                .await
                .with_context(|| format!("binding the proxy on {listen}"))?,
        );
        let addr = front.local_addr()?;
        let mut tasks = JoinSet::new();
        tasks.spawn(serve(front, upstream, shape));
        Ok(Self { addr, tasks })
    }

    /// Stops the proxy and waits until its sockets are closed.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A datagram on its way, and where it goes.
type Delayed = (Instant, Vec<u8>, Arc<UdpSocket>, Option<SocketAddr>);

async fn serve(front: Arc<UdpSocket>, upstream: SocketAddr, shape: PathShape) {
    let (line, queue) = mpsc::unbounded_channel::<Delayed>();
    let mut tasks = JoinSet::new();
    tasks.spawn(deliver(queue));
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut dice = Dice::new(0x005e_ed0f_ca7d_u64 ^ u64::from(front_port(&front)));
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = front.recv_from(&mut buf).await else {
            return;
        };
        let back = match clients.get(&from) {
            Some(back) => Arc::clone(back),
            None => {
                let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if back.connect(upstream).await.is_err() {
                    continue;
                }
                let back = Arc::new(back);
                clients.insert(from, Arc::clone(&back));
                tasks.spawn(relay_to_client(
                    Arc::clone(&back),
                    Arc::clone(&front),
                    from,
                    line.clone(),
                    shape,
                    Dice::new(dice.next()),
                ));
                back
            }
        };
        if dice.chance(shape.loss) {
            continue;
        }
        let at = Instant::now() + shape.one_way;
        if line.send((at, buf[..len].to_vec(), back, None)).is_err() {
            return;
        }
    }
}

fn front_port(socket: &UdpSocket) -> u16 {
    socket.local_addr().map_or(0, |a| a.port())
}

/// Datagrams from the relay to one client.
async fn relay_to_client(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    line: mpsc::UnboundedSender<Delayed>,
    shape: PathShape,
    mut dice: Dice,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(len) = back.recv(&mut buf).await else {
            return;
        };
        if dice.chance(shape.loss) {
            continue;
        }
        let at = Instant::now() + shape.one_way;
        let sent = line.send((at, buf[..len].to_vec(), Arc::clone(&front), Some(client)));
        if sent.is_err() {
            return;
        }
    }
}

/// The delay line: sends each datagram once its time has come, in arrival order.
async fn deliver(mut queue: mpsc::UnboundedReceiver<Delayed>) {
    while let Some((at, bytes, socket, to)) = queue.recv().await {
        tokio::time::sleep_until(at).await;
        // A full socket buffer drops the datagram, as a congested link would.
        let _ = match to {
            Some(to) => socket.send_to(&bytes, to).await,
            None => socket.send(&bytes).await,
        };
    }
}

/// xorshift64: the drop decisions, reproducible from the seed.
#[derive(Debug)]
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next() >> 11) as f64 / ((1u64 << 53) as f64);
        probability > 0.0 && unit < probability
    }
}
