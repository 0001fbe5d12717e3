//! The network driver: QUIC connections and streams around [`Relay::handle_request`].
//!
//! * [`bind`] opens the database, loads (or creates) the TLS identity and binds the QUIC endpoint.
//! * [`run`] accepts connections until its shutdown future completes, then closes the endpoint,
//!   waits (briefly) for connections to go idle and flushes the database.
//!
//! Each connection gets a [`Session`] keyed to TLS keying material exported from that connection
//! (label [`TLS_EXPORTER_LABEL`], empty context), so a device's challenge signature cannot be
//! replayed elsewhere. Each bidirectional stream carries one request, read with a deadline; the
//! request runs on the blocking pool (sled does disk I/O) with the session locked only for its
//! duration, so a long-lived `Subscribe` stream never blocks the connection's other requests.
//! When the relay asks for it, the database is flushed *before* the response goes out: a
//! `Pushed`, `SpaceCreated` or `Joined` answer acknowledges durable data. A stream that sends a
//! malformed or oversized frame gets `Error { code: BadRequest }`; nothing a peer sends can take
//! down another stream or connection.
//!
//! Nobody can take the relay offline without authenticating (the [`Limits`]):
//!
//! * addresses are validated with a QUIC Retry before a connection counts against any limit, so
//!   spoofed source addresses cannot occupy slots (nor lock a real address out);
//! * one address (an IPv6 /64) holds at most [`MAX_CONNECTIONS_PER_IP`] connections, all
//!   addresses together [`MAX_CONNECTIONS`];
//! * a connection whose session has not authenticated [`AUTH_DEADLINE`] after it was accepted
//!   is closed with [`CLOSE_NOT_AUTHENTICATED`] ("not authenticated in time"): the relay's
//!   keep-alives would otherwise keep an idle, unauthenticated connection open forever;
//! * before authentication a connection gets at most [`MAX_UNAUTHENTICATED_STREAMS`] requests
//!   served at once (further streams wait), frames larger than [`MAX_UNAUTHENTICATED_FRAME`]
//!   are refused from their length prefix alone, and QUIC flow control lets the peer send at
//!   most [`tls::UNAUTHENTICATED_RECEIVE_WINDOW`] bytes of unread stream data;
//! * after authentication the connection's window grows to
//!   [`tls::AUTHENTICATED_RECEIVE_WINDOW`] (each stream's to [`tls::STREAM_RECEIVE_WINDOW`]), and
//!   the request bodies it has buffered at once are capped at [`MAX_BUFFERED_REQUEST_BYTES`], and
//!   those of all connections together at [`MAX_RELAY_BUFFERED_BYTES`] (a stream waits for room
//!   in both before allocating its body). So however many authenticated connections hold partly
//!   sent frames, the relay buffers at most the relay-wide budget in request bodies plus one
//!   connection window per connection in QUIC (BENCHMARKS.md measures it with 1,024).
//!
//! Configured limits ([`Limits`], from `relay.toml`) add: a lower frame cap, a rate of new
//! connections per address (token bucket), the idle timeout, and — enforced by
//! [`Relay`] itself — entry size, entries per push and page, per-space quota, per-device request
//! rate and invite lifetime. A refused *request* is answered with `Error { code, message }`
//! naming the limit; a refused *connection* (too many from the address or in all, or opened too
//! fast) is accepted and closed at once with [`CLOSE_LIMIT`] and a reason naming the limit, as
//! long as at most [`MAX_REFUSAL_HANDSHAKES`] such refusals are in progress (beyond that, QUIC's
//! plain `CONNECTION_REFUSED`, which costs nothing).
//!
//! On shutdown the relay stops accepting connections and streams, lets requests already read
//! finish — a push is answered after its flush — ends subscriptions, and closes each connection
//! with [`CLOSE_SHUTDOWN`]; after [`SHUTDOWN_GRACE`] it closes whatever is left and flushes.
//!
//! Logs never contain entry bytes, keys, signatures or invite tokens: only request kinds, short
//! device/space ids, addresses and errors.

use crate::backend::RelayDb;
use crate::data::DataDir;
use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::store::{SledStore, StoreError};
use crate::tls::{self, TlsError};
use anyhow::Context as _;
use candor_shared::invite::RelayFingerprint;
use candor_shared::relay::{Handled, Rate, Relay, RelayLimits, Session, TokenBucket};
use candor_shared::wire::{
    decode_body, encode_frame, frame_len, ErrorCode, PushOutcome, Request, Response, MAX_FRAME,
    TLS_EXPORTER_LABEL,
};
use quinn::{RecvStream, SendStream, VarInt};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Semaphore, SemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, error, info, warn, Instrument as _};

/// How long a device may take to send its request once it opened a stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing one response frame may take before the stream is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections served at once; more are refused.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most connections served at once from one IP address (for IPv6, one /64 network, which a
/// single host usually controls entirely); more from it are refused, so that one address
/// cannot fill [`MAX_CONNECTIONS`].
pub const MAX_CONNECTIONS_PER_IP: usize = 64;
/// How long after being accepted a connection has to authenticate (handshake, `Hello` and
/// `Authenticate` included) before it is closed with [`CLOSE_NOT_AUTHENTICATED`].
pub const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request frame body accepted before the connection has authenticated. `Hello` and
/// `Authenticate` take about a hundred bytes; larger frames are refused from their length
/// prefix, before anything is buffered.
pub const MAX_UNAUTHENTICATED_FRAME: usize = 1024;
/// Most request streams of one connection served at once before it has authenticated; further
/// streams wait (without anything read from them) until one finishes or the session
/// authenticates.
pub const MAX_UNAUTHENTICATED_STREAMS: usize = 2;
/// Most request-body bytes one authenticated connection may have buffered at once, across its
/// concurrent streams (two maximum-size frames). A stream waits for room before allocating.
pub const MAX_BUFFERED_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Most request-body bytes all connections together may have buffered at once (sixteen
/// maximum-size frames). A stream waits for room before allocating. Bodies of at most
/// [`SMALL_REQUEST_BYTES`] do not count: QUIC flow control already bounds them per connection,
/// and exempting them keeps heads, pulls and ordinary pushes flowing while large frames wait.
pub const MAX_RELAY_BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// Request bodies this small count against their connection's budget only (see
/// [`MAX_RELAY_BUFFERED_BYTES`]): the authenticated connection window.
pub const SMALL_REQUEST_BYTES: usize = tls::AUTHENTICATED_RECEIVE_WINDOW as usize;
/// How long shutdown waits for connections to close before flushing and exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Default rate of new connections per address: 2 per second sustained, 30 at once.
pub const ADDRESS_CONNECTIONS: Rate = Rate::new(2.0, 30);
/// Most connections being accepted only to be closed with a reason (over a limit) at once;
/// beyond that, refused connections get a plain QUIC refusal.
pub const MAX_REFUSAL_HANDSHAKES: usize = 16;
/// Per-address rate buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// QUIC application error code sent when the relay closes connections on shutdown.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// QUIC application error code sent when the relay cannot serve a connection.
pub const CLOSE_INTERNAL: u32 = 1;
/// QUIC application error code sent when a connection did not authenticate within
/// [`Limits::auth_deadline`]; the reason is [`NOT_AUTHENTICATED_REASON`].
pub const CLOSE_NOT_AUTHENTICATED: u32 = 2;
/// QUIC application error code sent when a connection is over a connection limit; the reason
/// names the limit.
pub const CLOSE_LIMIT: u32 = 3;
/// Close reason accompanying [`CLOSE_NOT_AUTHENTICATED`].
pub const NOT_AUTHENTICATED_REASON: &[u8] = b"not authenticated in time";
/// `BadRequest` message for a frame over [`Limits::unauthenticated_frame`] before authentication.
pub const UNAUTHENTICATED_FRAME_MESSAGE: &str = "authenticate before sending large requests";

/// The limits that keep peers (authenticated or not) from exhausting the relay. [`Default`]
/// gives the production values (the constants of this module); tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Connections served at once ([`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Connections served at once per IP address or IPv6 /64 ([`MAX_CONNECTIONS_PER_IP`]).
    pub connections_per_ip: usize,
    /// Time from accepting a connection to its session authenticating ([`AUTH_DEADLINE`]).
    pub auth_deadline: Duration,
    /// Largest request frame body before authentication ([`MAX_UNAUTHENTICATED_FRAME`]).
    pub unauthenticated_frame: usize,
    /// Request streams served at once per connection before authentication
    /// ([`MAX_UNAUTHENTICATED_STREAMS`]; at least 1 is used).
    pub unauthenticated_streams: usize,
    /// Request-body bytes buffered at once per connection ([`MAX_BUFFERED_REQUEST_BYTES`]; a
    /// larger frame, if allowed at all, waits until it has the whole budget to itself).
    pub buffered_request_bytes: usize,
    /// Request-body bytes buffered at once by all connections together
    /// ([`MAX_RELAY_BUFFERED_BYTES`]; at least `buffered_request_bytes` is used).
    pub relay_buffered_bytes: usize,
    /// New connections per address ([`ADDRESS_CONNECTIONS`]).
    pub address_connections: Rate,
    /// Idle timeout of a connection whose peer went silent ([`tls::IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Largest request frame body after authentication ([`MAX_FRAME`] at most).
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: MAX_CONNECTIONS,
            connections_per_ip: MAX_CONNECTIONS_PER_IP,
            auth_deadline: AUTH_DEADLINE,
            unauthenticated_frame: MAX_UNAUTHENTICATED_FRAME,
            unauthenticated_streams: MAX_UNAUTHENTICATED_STREAMS,
            buffered_request_bytes: MAX_BUFFERED_REQUEST_BYTES,
            relay_buffered_bytes: MAX_RELAY_BUFFERED_BYTES,
            address_connections: ADDRESS_CONNECTIONS,
            idle_timeout: tls::IDLE_TIMEOUT,
            max_frame: MAX_FRAME,
        }
    }
}

/// Errors preparing the relay before it serves.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS identity could not be loaded, created or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database could not be opened.
    #[error("could not open the relay database in {path}: {source}")]
    Store {
        /// The database directory.
        path: std::path::PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The database's files could not be made private (0700 directories, 0600 files).
    #[error("could not restrict the permissions of {path}: {source}")]
    Permissions {
        /// The database directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The UDP socket could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A relay ready to serve: its endpoint (already bound) and its state.
#[derive(Debug)]
pub struct Bound {
    /// The QUIC endpoint, listening.
    pub endpoint: quinn::Endpoint,
    /// The relay logic over its database.
    pub relay: Arc<Relay<RelayDb>>,
    /// The certificate fingerprint devices pin.
    pub fingerprint: RelayFingerprint,
    /// The address actually bound (the real port when asked for port 0).
    pub local_addr: SocketAddr,
}

/// Opens the database and TLS identity in `data` and binds a QUIC endpoint on `listen`.
///
/// Must be called inside a tokio runtime.
pub fn bind(listen: SocketAddr, data: &DataDir) -> Result<Bound, SetupError> {
    bind_with(listen, data, &Limits::default(), RelayLimits::default())
}

/// [`bind`] with the idle timeout of `limits` and the relay logic's `relay_limits`.
pub fn bind_with(
    listen: SocketAddr,
    data: &DataDir,
    limits: &Limits,
    relay_limits: RelayLimits,
) -> Result<Bound, SetupError> {
    let db_path = data.db_path();
    let store = SledStore::open(&db_path).map_err(|source| SetupError::Store {
        path: db_path.clone(),
        source,
    })?;
    // sled creates its files with the process umask: only the relay's user may read them.
    crate::data::restrict_tree(&db_path).map_err(|source| SetupError::Permissions {
        path: db_path,
        source,
    })?;
    bind_store(listen, data, limits, relay_limits, store.into())
}

/// [`bind_with`] on an already opened store (PostgreSQL, say) instead of the data directory's
/// sled database; the data directory still holds the TLS identity.
pub fn bind_store(
    listen: SocketAddr,
    data: &DataDir,
    limits: &Limits,
    relay_limits: RelayLimits,
    store: RelayDb,
) -> Result<Bound, SetupError> {
    let identity = tls::load_or_create(data)?;
    let config = tls::server_config_with(&identity, limits.idle_timeout)?;
    let bind_error = |source| SetupError::Bind {
        addr: listen,
        source,
    };
    let socket = std::net::UdpSocket::bind(listen).map_err(bind_error)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind_error(std::io::Error::other("no async runtime found")))?;
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
    let cid_key = identity.connection_id_key();
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let endpoint =
        quinn::Endpoint::new(endpoint_config, Some(config), socket, runtime).map_err(bind_error)?;
    let local_addr = endpoint.local_addr().map_err(|source| SetupError::Bind {
        addr: listen,
        source,
    })?;
    Ok(Bound {
        endpoint,
        relay: Arc::new(Relay::with_limits(store, relay_limits)),
        fingerprint: identity.fingerprint(),
        local_addr,
    })
}

/// Serves connections on `endpoint` within `limits` until `shutdown` completes (or the endpoint
/// is closed), then closes every connection, waits up to [`SHUTDOWN_GRACE`] for them to finish
/// and flushes the database.
pub async fn run(
    endpoint: quinn::Endpoint,
    relay: Arc<Relay<RelayDb>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(endpoint, relay, limits, Arc::default(), shutdown).await
}

/// [`run`], counting into `metrics`.
pub async fn run_with(
    endpoint: quinn::Endpoint,
    relay: Arc<Relay<RelayDb>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let hub = Arc::new(Hub::default());
    let relay_bytes = relay_budget(&limits);
    // Relays sharing a PostgreSQL database hear each other's appends.
    let _listener = relay.store().as_postgres().map(|store| {
        AbortOnDrop(tokio::spawn(crate::pg_notify::listen(
            store.config().clone(),
            Arc::clone(&hub),
        )))
    });
    let limit = Arc::new(Semaphore::new(limits.connections));
    let per_address = Arc::new(AddressTable::default());
    let address_rates = AddressRates::default();
    let refusal_handshakes = Arc::new(Semaphore::new(MAX_REFUSAL_HANDSHAKES));
    let (stopping, _) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else {
                    info!("endpoint closed");
                    break;
                };
                let remote = incoming.remote_address();
                // An unvalidated source address may be spoofed: counting it would let anyone
                // fill the connection slots, or another address's quota, without receiving a
                // single packet. A Retry costs honest devices one round trip and the relay no
                // state; the device comes back with a token proving it owns the address.
                if !incoming.remote_address_validated() {
                    if let Err(e) = incoming.retry() {
                        e.into_incoming().refuse();
                    }
                    continue;
                }
                let refusal = if let Err(wait_ms) =
                    address_rates.take(remote.ip(), &limits.address_connections)
                {
                    Some((
                        "address_connection_rate",
                        format!(
                            "connection rate limit: at most {} new connections per second \
                             (bursts of {}) from one address; retry in {wait_ms} ms",
                            limits.address_connections.per_second,
                            limits.address_connections.burst
                        ),
                    ))
                } else {
                    None
                };
                let claim = match refusal {
                    Some(refusal) => Err(refusal),
                    None => per_address
                        .claim(remote.ip(), limits.connections_per_ip)
                        .ok_or_else(|| {
                            (
                                "connections_per_address",
                                format!(
                                    "connection limit: {} connections from one address are \
                                     open on this relay",
                                    limits.connections_per_ip
                                ),
                            )
                        }),
                };
                let admitted = claim.and_then(|claim| {
                    match Arc::clone(&limit).try_acquire_owned() {
                        Ok(permit) => Ok((claim, permit)),
                        Err(_) => Err((
                            "connections_total",
                            format!(
                                "connection limit: this relay serves at most {} connections \
                                 and is full; try again later",
                                limits.connections
                            ),
                        )),
                    }
                });
                let (claim, permit) = match admitted {
                    Ok(admitted) => admitted,
                    Err((reason, message)) => {
                        metrics.refused(reason);
                        debug!(%remote, %message, "refusing a connection");
                        match Arc::clone(&refusal_handshakes).try_acquire_owned() {
                            Ok(slot) => {
                                refusals.spawn(async move {
                                    refuse_with_reason(incoming, &message).await;
                                    drop(slot);
                                });
                            }
                            Err(_) => incoming.refuse(),
                        }
                        continue;
                    }
                };
                let span = tracing::info_span!("conn", %remote);
                let relay = Arc::clone(&relay);
                let hub = Arc::clone(&hub);
                let metrics = Arc::clone(&metrics);
                let stopping = stopping.subscribe();
                let relay_bytes = Arc::clone(&relay_bytes);
                connections.spawn(
                    async move {
                        metrics.connection_opened();
                        let shared = Shared { relay, hub, relay_bytes };
                        handle_connection(incoming, shared, limits, &metrics, stopping).await;
                        metrics.connection_closed();
                        drop((permit, claim));
                    }
                    .instrument(span),
                );
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join("connection", joined);
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
        }
    }

    // No new connections; connections stop taking streams, finish the requests they have read
    // (pushes are answered once durable), end subscriptions and close.
    endpoint.set_server_config(None);
    refusals.abort_all();
    let _ = stopping.send(true);
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            log_join("connection", joined);
        }
    };
    if timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!("requests did not finish within {SHUTDOWN_GRACE:?}; closing connections");
    }
    endpoint.close(CLOSE_SHUTDOWN.into(), b"relay shutting down");
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            log_join("connection", joined);
        }
        endpoint.wait_idle().await;
    };
    if timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!("connections did not close within {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    connections.abort_all();
    relay
        .store()
        .flush()
        .await
        .context("could not flush the relay database on shutdown")?;
    info!("database flushed; stopped");
    Ok(())
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes the handshake of a connection that is over a limit only to close it with a reason
/// the device can show (a plain refusal would look like a network failure).
async fn refuse_with_reason(incoming: quinn::Incoming, message: &str) {
    let Ok(connecting) = incoming.accept() else {
        return;
    };
    if let Ok(Ok(conn)) = timeout(Duration::from_secs(5), connecting).await {
        conn.close(CLOSE_LIMIT.into(), message.as_bytes());
        // Keep the connection until the close went out.
        let _ = timeout(Duration::from_secs(1), conn.closed()).await;
    }
}

/// Token buckets of new connections per address (see [`address_key`]).
#[derive(Debug, Default)]
pub(crate) struct AddressRates(Mutex<HashMap<IpAddr, TokenBucket>>);

impl AddressRates {
    /// Charges one new connection from `ip`; `Err(ms)` until one is allowed.
    pub(crate) fn take(&self, ip: IpAddr, rate: &Rate) -> Result<(), u64> {
        if !rate.is_limited() {
            return Ok(());
        }
        let now = unix_ms();
        let key = address_key(ip);
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&key) {
            buckets.retain(|_, bucket| !bucket.is_full(rate, now));
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .take(rate, now)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn log_join(what: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            error!("a {what} task panicked; other connections are unaffected");
        }
    }
}

/// The key an address is counted under for [`Limits::connections_per_ip`]: the IPv4 address
/// (also when it arrives IPv4-mapped on a dual-stack socket), or the /64 network of an IPv6
/// address, since one host usually holds a whole /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
    }
}

/// How many connections each address (see [`address_key`]) has open.
#[derive(Debug, Default)]
pub(crate) struct AddressTable(Mutex<HashMap<IpAddr, usize>>);

/// One open connection counted in an [`AddressTable`]; dropping it releases the slot.
#[derive(Debug)]
pub(crate) struct AddressClaim {
    table: Arc<AddressTable>,
    key: IpAddr,
}

impl AddressTable {
    /// Counts one more connection from `ip`, unless it already has `max`.
    pub(crate) fn claim(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressClaim> {
        let key = address_key(ip);
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(AddressClaim {
            table: Arc::clone(self),
            key,
        })
    }

    /// Connections currently counted for `ip`.
    #[cfg(test)]
    pub(crate) fn open(&self, ip: IpAddr) -> usize {
        let open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&address_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for AddressClaim {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The per-connection admission state: whether the session has authenticated, and the
/// budgets its request streams draw from.
#[derive(Debug)]
pub(crate) struct Gate {
    /// `true` once the session has authenticated (a session never loses its device).
    authenticated: watch::Sender<bool>,
    /// Streams served at once before authentication ([`Limits::unauthenticated_streams`]).
    unauthenticated_streams: Semaphore,
    /// One permit per request-body byte buffered ([`Limits::buffered_request_bytes`]).
    request_bytes: Semaphore,
    /// One permit per request-body byte buffered by any connection of the relay
    /// ([`Limits::relay_buffered_bytes`]), shared by every connection's gate.
    relay_bytes: Arc<Semaphore>,
    /// The number of permits `request_bytes` was created with.
    request_bytes_capacity: usize,
    /// [`Limits::unauthenticated_frame`].
    unauthenticated_frame: usize,
    /// [`Limits::max_frame`].
    max_frame: usize,
}

impl Gate {
    /// A gate with a relay-wide budget of its own (a connection alone, in tests).
    #[cfg(test)]
    pub(crate) fn new(limits: &Limits) -> Self {
        Self::with_budget(limits, relay_budget(limits))
    }

    /// A gate drawing on `relay_bytes`, the budget shared by all connections ([`relay_budget`]).
    pub(crate) fn with_budget(limits: &Limits, relay_bytes: Arc<Semaphore>) -> Self {
        let capacity = budget_permits(limits.buffered_request_bytes);
        Self {
            authenticated: watch::Sender::new(false),
            unauthenticated_streams: Semaphore::new(limits.unauthenticated_streams.max(1)),
            request_bytes: Semaphore::new(capacity),
            relay_bytes,
            request_bytes_capacity: capacity,
            unauthenticated_frame: limits.unauthenticated_frame,
            max_frame: limits.max_frame.min(MAX_FRAME),
        }
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        *self.authenticated.borrow()
    }

    /// Records that the session authenticated; `true` the first time.
    pub(crate) fn mark_authenticated(&self) -> bool {
        self.authenticated.send_if_modified(|authenticated| {
            let first = !*authenticated;
            *authenticated = true;
            first
        })
    }

    /// Waits until a new stream may be served: at once when authenticated, otherwise for one of
    /// the [`Limits::unauthenticated_streams`] slots or for authentication, whichever comes
    /// first. Hold the returned permit (if any) until the request has been handled.
    pub(crate) async fn admit_stream(&self) -> Option<SemaphorePermit<'_>> {
        let mut authenticated = self.authenticated.subscribe();
        if *authenticated.borrow_and_update() {
            return None;
        }
        tokio::select! {
            permit = self.unauthenticated_streams.acquire() => permit.ok(),
            _ = authenticated.wait_for(|authenticated| *authenticated) => None,
        }
    }

    /// Whether a frame of `len` bytes must be refused before anything of it is read.
    pub(crate) fn refuses_frame(&self, len: usize) -> bool {
        len > self.unauthenticated_frame && !self.is_authenticated()
    }

    /// Waits until `len` more request-body bytes fit in the connection's budget and then in the
    /// relay's, and reserves them (a frame larger than a whole budget waits for all of it). Hold
    /// the permit until the request has been handled.
    pub(crate) async fn reserve_body(&self, len: usize) -> Option<BodyPermit<'_>> {
        let wanted = u32::try_from(len.min(self.request_bytes_capacity)).ok()?;
        let connection = self.request_bytes.acquire_many(wanted).await.ok()?;
        // The relay budget is at least a connection budget (see `relay_budget`).
        let relay = if len > SMALL_REQUEST_BYTES {
            let budget = Arc::clone(&self.relay_bytes);
            Some(budget.acquire_many_owned(wanted).await.ok()?)
        } else {
            None
        };
        Some(BodyPermit {
            _connection: connection,
            _relay: relay,
        })
    }
}

/// Room reserved for one request body in its connection's budget and in the relay's.
#[derive(Debug)]
pub(crate) struct BodyPermit<'g> {
    _connection: SemaphorePermit<'g>,
    _relay: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Permits for a budget of `bytes`: `acquire_many` takes a u32, so never hand out a budget it
/// could not ask for at once.
fn budget_permits(bytes: usize) -> usize {
    bytes
        .clamp(1, u32::MAX as usize)
        .min(Semaphore::MAX_PERMITS)
}

/// The relay-wide budget of buffered request-body bytes ([`Limits::relay_buffered_bytes`]), at
/// least one connection's budget so that any frame one connection may buffer fits.
pub(crate) fn relay_budget(limits: &Limits) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(budget_permits(
        limits
            .relay_buffered_bytes
            .max(limits.buffered_request_bytes),
    )))
}

/// What the streams of one connection share.
struct ConnState {
    conn: quinn::Connection,
    session: Mutex<Session>,
    gate: Gate,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
}

/// What every connection of the relay shares.
struct Shared {
    relay: Arc<Relay<RelayDb>>,
    hub: Arc<Hub>,
    /// The relay-wide budget of buffered request-body bytes ([`relay_budget`]).
    relay_bytes: Arc<Semaphore>,
}

async fn handle_connection(
    incoming: quinn::Incoming,
    shared: Shared,
    limits: Limits,
    metrics: &Arc<Metrics>,
    stopping: watch::Receiver<bool>,
) {
    let Shared {
        relay,
        hub,
        relay_bytes,
    } = shared;
    // The deadline runs from acceptance, so a slow handshake counts against it too.
    let auth_deadline = Instant::now() + limits.auth_deadline;
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            debug!(error = %e, "could not accept connection");
            return;
        }
    };
    let conn = match timeout_at(auth_deadline, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            debug!(error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            // Dropping the handshake closes the connection.
            debug!("handshake not completed within {:?}", limits.auth_deadline);
            return;
        }
    };
    let mut exporter = [0u8; 32];
    if let Err(e) = conn.export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, b"") {
        error!(error = ?e, "could not export TLS keying material");
        conn.close(CLOSE_INTERNAL.into(), b"internal error");
        return;
    }
    debug!("connection established");
    let state = Arc::new(ConnState {
        conn: conn.clone(),
        session: Mutex::new(Session::new(exporter)),
        gate: Gate::with_budget(&limits, relay_bytes),
        metrics: Arc::clone(metrics),
        stopping: stopping.clone(),
    });
    let mut stop = stopping;
    let deadline = tokio::time::sleep_until(auth_deadline);
    tokio::pin!(deadline);
    let mut awaiting_auth = true;
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let span = tracing::debug_span!("stream", id = %send.id());
                    streams.spawn(
                        handle_stream(
                            send,
                            recv,
                            Arc::clone(&relay),
                            Arc::clone(&hub),
                            Arc::clone(&state),
                        )
                        .instrument(span),
                    );
                }
                Err(e) => {
                    debug!(reason = %e, "connection closed");
                    break;
                }
            },
            _ = stop.wait_for(|stopping| *stopping) => {
                debug!("relay stopping: no new requests on this connection");
                break;
            }
            () = &mut deadline, if awaiting_auth => {
                awaiting_auth = false;
                if !state.gate.is_authenticated() {
                    state.metrics.refused("auth_timeout");
                    debug!(
                        "closing: not authenticated within {:?}",
                        limits.auth_deadline
                    );
                    conn.close(CLOSE_NOT_AUTHENTICATED.into(), NOT_AUTHENTICATED_REASON);
                    // `accept_bi` now fails, which ends the loop.
                }
            }
            Some(joined) = streams.join_next(), if !streams.is_empty() => {
                log_join("stream", joined);
            }
        }
    }
    // Let in-flight requests finish (their flush and notifications matter even if the device
    // has gone); subscription streams end on their own now that the connection is closed.
    while let Some(joined) = streams.join_next().await {
        log_join("stream", joined);
    }
    if *stop.borrow() {
        conn.close(CLOSE_SHUTDOWN.into(), b"relay shutting down");
    }
}

/// Why no request could be read from a stream.
enum ReadFailure {
    /// The stream or connection broke: there is nobody to answer.
    Gone(String),
    /// The peer sent something that is not a request, or over a limit: answer with this code.
    Bad(ErrorCode, String),
}

/// Reads one request frame: the length prefix, checked against [`MAX_FRAME`] and (before
/// authentication) [`Limits::unauthenticated_frame`] before anything else is read, then the body
/// once the connection's body budget has room for it. The returned permit holds that room.
///
/// [`MAX_FRAME`]: candor_shared::wire::MAX_FRAME
async fn read_request<'g>(
    recv: &mut RecvStream,
    gate: &'g Gate,
) -> Result<(Request, BodyPermit<'g>), ReadFailure> {
    use quinn::ReadExactError;
    let broken = |e: ReadExactError, what: &str| match e {
        ReadExactError::FinishedEarly(got) => ReadFailure::Bad(
            ErrorCode::BadRequest,
            format!("stream ended after {got} bytes of the {what}"),
        ),
        ReadExactError::ReadError(e) => ReadFailure::Gone(e.to_string()),
    };
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|e| broken(e, "length prefix"))?;
    // Check the announced length before allocating anything for it.
    let len =
        frame_len(prefix).map_err(|e| ReadFailure::Bad(ErrorCode::BadRequest, e.to_string()))?;
    if gate.refuses_frame(len) {
        return Err(ReadFailure::Bad(
            ErrorCode::BadRequest,
            UNAUTHENTICATED_FRAME_MESSAGE.to_owned(),
        ));
    }
    if len > gate.max_frame {
        return Err(ReadFailure::Bad(
            ErrorCode::LimitExceeded,
            format!(
                "frame size: a request of {len} bytes exceeds this relay's limit of {} bytes",
                gate.max_frame
            ),
        ));
    }
    let permit = gate
        .reserve_body(len)
        .await
        .ok_or_else(|| ReadFailure::Gone("the connection is shutting down".to_owned()))?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| broken(e, "request"))?;
    let request =
        decode_body(&body).map_err(|e| ReadFailure::Bad(ErrorCode::BadRequest, e.to_string()))?;
    Ok((request, permit))
}

fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Hello { .. } => "hello",
        Request::Authenticate { .. } => "authenticate",
        Request::CreateSpace { .. } => "create-space",
        Request::Join { .. } => "join",
        Request::Members { .. } => "members",
        Request::Heads { .. } => "heads",
        Request::Push { .. } => "push",
        Request::Pull { .. } => "pull",
        Request::Subscribe { .. } => "subscribe",
    }
}

fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Challenge { .. } => "challenge",
        Response::Authenticated { .. } => "authenticated",
        Response::SpaceCreated => "space-created",
        Response::Joined { .. } => "joined",
        Response::MemberList { .. } => "member-list",
        Response::HeadList { .. } => "head-list",
        Response::Pushed { .. } => "pushed",
        Response::Page { .. } => "page",
        Response::Subscribed => "subscribed",
        Response::Notify { .. } => "notify",
        Response::Error { .. } => "error",
    }
}

async fn handle_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    relay: Arc<Relay<RelayDb>>,
    hub: Arc<Hub>,
    state: Arc<ConnState>,
) {
    // Waiting for a slot counts against the request deadline: a stream nobody reads from
    // should not linger.
    let read = async {
        let stream_permit = state.gate.admit_stream().await;
        let (request, body_permit) = read_request(&mut recv, &state.gate).await?;
        Ok::<_, ReadFailure>((request, (stream_permit, body_permit)))
    };
    let (request, permits) = match timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(ReadFailure::Gone(reason))) => {
            debug!(%reason, "stream broke before a request arrived");
            return;
        }
        Ok(Err(ReadFailure::Bad(code, reason))) => {
            debug!(%reason, "refused a request");
            state.metrics.refused(metrics::reason(code));
            let response = Response::error(code, reason);
            if write_response(&mut send, &response).await {
                let _ = send.finish();
            }
            return;
        }
        Err(_) => {
            debug!("no request within {REQUEST_TIMEOUT:?}");
            let _ = send.reset(VarInt::from_u32(0));
            return;
        }
    };
    // `recv` stays open until the exchange is over: dropping it early would send STOP_SENDING,
    // which a device that finishes its send side only after reading the answer could see as an
    // error.
    let kind = request_kind(&request);
    state.metrics.request();
    // Sizes of pushed entries, to count the bytes of those stored.
    let pushed_sizes: Vec<usize> = match &request {
        Request::Push { entries, .. } => entries.iter().map(Vec::len).collect(),
        _ => Vec::new(),
    };

    let mut nonce = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut nonce) {
        error!(error = %e, "the OS random number generator failed");
        reply_and_finish(
            &mut send,
            &Response::error(ErrorCode::Internal, "relay could not draw randomness"),
        )
        .await;
        return;
    }
    let (handled, authenticated) = {
        let relay = Arc::clone(&relay);
        let shared = Arc::clone(&state);
        let task = tokio::task::spawn_blocking(move || {
            let mut session = shared.session.lock().unwrap_or_else(|p| p.into_inner());
            session.set_now(unix_ms());
            let handled = relay.handle_request(&mut session, request, nonce);
            (handled, session.device().is_some())
        });
        match task.await {
            Ok(handled) => handled,
            Err(e) => {
                error!(error = %e, request = kind, "request handler failed");
                reply_and_finish(
                    &mut send,
                    &Response::error(ErrorCode::Internal, "relay failed to handle the request"),
                )
                .await;
                return;
            }
        }
    };
    // The request is handled: its body no longer counts against the connection.
    drop(permits);
    // Lift the pre-authentication limits before the device can learn it has authenticated, so
    // that its next requests already see them lifted.
    if authenticated && state.gate.mark_authenticated() {
        state
            .conn
            .set_receive_window(tls::AUTHENTICATED_RECEIVE_WINDOW.into());
        debug!("session authenticated");
    }
    let Handled {
        response,
        flush,
        notify,
        subscribe,
    } = handled;
    debug!(
        request = kind,
        response = response_kind(&response),
        "handled"
    );
    if let Response::Error { code, message } = &response {
        state.metrics.refused(metrics::reason(*code));
        if *code == ErrorCode::Internal {
            error!(request = kind, %message, "request failed");
        }
    }

    if let Some(ticket) = flush {
        if let Err(e) = relay.store().flush().await {
            error!(error = %e, request = kind, "could not flush the database");
            reply_and_finish(
                &mut send,
                &Response::error(
                    ErrorCode::Internal,
                    "relay could not make the data durable; try again",
                ),
            )
            .await;
            return;
        }
        relay.flushed(ticket);
    }
    if let Response::Pushed { outcomes } = &response {
        let (count, bytes) = outcomes
            .iter()
            .zip(&pushed_sizes)
            .filter(|(o, _)| matches!(o, PushOutcome::Stored { .. }))
            .fold((0u64, 0u64), |(n, b), (_, len)| (n + 1, b + *len as u64));
        state.metrics.stored(count, bytes);
    }
    // Wake subscribers as soon as the data is durable, even if this device has gone meanwhile.
    if let Some((space, cursor)) = notify {
        hub.publish(space, cursor);
    }
    // Subscribe before answering, so no entry that lands after `Subscribed` goes unnoticed.
    let subscription = subscribe.map(|space| hub.subscribe(space));

    if !write_response(&mut send, &response).await {
        return;
    }
    match subscription {
        Some(receiver) => forward_notifications(&mut send, receiver, state.stopping.clone()).await,
        None => {
            let _ = send.finish();
        }
    }
}

/// Writes one response frame; `false` if the stream is unusable.
async fn write_response(send: &mut SendStream, response: &Response) -> bool {
    let frame = match encode_frame(response) {
        Ok(frame) => frame,
        Err(e) => {
            error!(error = %e, "could not encode a response");
            match encode_frame(&Response::error(
                ErrorCode::Internal,
                "relay could not encode its response",
            )) {
                Ok(frame) => frame,
                Err(_) => return false,
            }
        }
    };
    match timeout(WRITE_TIMEOUT, send.write_all(&frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            debug!(error = %e, "could not write the response");
            false
        }
        Err(_) => {
            debug!("writing the response timed out");
            let _ = send.reset(VarInt::from_u32(0));
            false
        }
    }
}

async fn reply_and_finish(send: &mut SendStream, response: &Response) {
    if write_response(send, response).await {
        let _ = send.finish();
    }
}

/// Writes `Notify` frames for a subscription until the device stops the stream, the connection
/// closes or the relay shuts down.
async fn forward_notifications(
    send: &mut SendStream,
    mut receiver: broadcast::Receiver<u64>,
    mut stopping: watch::Receiver<bool>,
) {
    use broadcast::error::{RecvError, TryRecvError};
    let stopped = send.stopped();
    tokio::pin!(stopped);
    // Concurrent pushes may publish their cursors out of order; only ever announce a newer one.
    let mut announced = 0u64;
    loop {
        let received = tokio::select! {
            _ = &mut stopped => {
                debug!("subscription ended by the device");
                return;
            }
            _ = stopping.wait_for(|stopping| *stopping) => break,
            received = receiver.recv() => received,
        };
        let mut latest = match received {
            Ok(cursor) => cursor,
            Err(RecvError::Lagged(_)) => 0,
            Err(RecvError::Closed) => break,
        };
        // Only the newest cursor matters: skip anything already queued behind this one.
        loop {
            match receiver.try_recv() {
                Ok(cursor) => latest = latest.max(cursor),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => break,
            }
        }
        if latest <= announced {
            continue;
        }
        if !write_response(send, &Response::Notify { cursor: latest }).await {
            return;
        }
        announced = latest;
    }
    let _ = send.finish();
}
