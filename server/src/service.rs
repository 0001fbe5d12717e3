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
//! Logs never contain entry bytes, keys, signatures or invite tokens: only request kinds, short
//! device/space ids, addresses and errors.

use crate::data::DataDir;
use crate::hub::Hub;
use crate::store::{SledStore, StoreError};
use crate::tls::{self, TlsError};
use anyhow::Context as _;
use candor_shared::invite::RelayFingerprint;
use candor_shared::relay::{Handled, Relay, Session};
use candor_shared::wire::{
    decode_body, encode_frame, frame_len, ErrorCode, Request, Response, TLS_EXPORTER_LABEL,
};
use quinn::{RecvStream, SendStream, VarInt};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, error, info, warn, Instrument as _};

/// How long a device may take to send its request once it opened a stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing one response frame may take before the stream is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections served at once; more are refused.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for connections to close before flushing and exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// QUIC application error code sent when the relay closes connections on shutdown.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// QUIC application error code sent when the relay cannot serve a connection.
pub const CLOSE_INTERNAL: u32 = 1;

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
    pub relay: Arc<Relay<SledStore>>,
    /// The certificate fingerprint devices pin.
    pub fingerprint: RelayFingerprint,
    /// The address actually bound (the real port when asked for port 0).
    pub local_addr: SocketAddr,
}

/// Opens the database and TLS identity in `data` and binds a QUIC endpoint on `listen`.
///
/// Must be called inside a tokio runtime.
pub fn bind(listen: SocketAddr, data: &DataDir) -> Result<Bound, SetupError> {
    let identity = tls::load_or_create(data)?;
    let config = tls::server_config(&identity)?;
    let db_path = data.db_path();
    let store = SledStore::open(&db_path).map_err(|source| SetupError::Store {
        path: db_path,
        source,
    })?;
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
        relay: Arc::new(Relay::new(store)),
        fingerprint: identity.fingerprint(),
        local_addr,
    })
}

/// Serves connections on `endpoint` until `shutdown` completes (or the endpoint is closed),
/// then closes every connection, waits up to [`SHUTDOWN_GRACE`] for them to finish and flushes
/// the database.
pub async fn run(
    endpoint: quinn::Endpoint,
    relay: Arc<Relay<SledStore>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let hub = Arc::new(Hub::default());
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
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
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    warn!(
                        remote = %incoming.remote_address(),
                        "refusing a connection: {MAX_CONNECTIONS} connections are open"
                    );
                    incoming.refuse();
                    continue;
                };
                let span = tracing::info_span!("conn", remote = %incoming.remote_address());
                let relay = Arc::clone(&relay);
                let hub = Arc::clone(&hub);
                connections.spawn(
                    async move {
                        handle_connection(incoming, relay, hub).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join("connection", joined);
            }
        }
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

fn log_join(what: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            error!("a {what} task panicked; other connections are unaffected");
        }
    }
}

async fn handle_connection(incoming: quinn::Incoming, relay: Arc<Relay<SledStore>>, hub: Arc<Hub>) {
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            debug!(error = %e, "could not accept connection");
            return;
        }
    };
    let conn = match connecting.await {
        Ok(conn) => conn,
        Err(e) => {
            debug!(error = %e, "handshake failed");
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
    let session = Arc::new(Mutex::new(Session::new(exporter)));
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
                            Arc::clone(&session),
                        )
                        .instrument(span),
                    );
                }
                Err(e) => {
                    debug!(reason = %e, "connection closed");
                    break;
                }
            },
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
}

/// Why no request could be read from a stream.
enum ReadFailure {
    /// The stream or connection broke: there is nobody to answer.
    Gone(String),
    /// The peer sent something that is not a request: answer `BadRequest`.
    Bad(String),
}

async fn read_request(recv: &mut RecvStream) -> Result<Request, ReadFailure> {
    use quinn::ReadExactError;
    let broken = |e: ReadExactError, what: &str| match e {
        ReadExactError::FinishedEarly(got) => {
            ReadFailure::Bad(format!("stream ended after {got} bytes of the {what}"))
        }
        ReadExactError::ReadError(e) => ReadFailure::Gone(e.to_string()),
    };
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|e| broken(e, "length prefix"))?;
    // Check the announced length before allocating anything for it.
    let len = frame_len(prefix).map_err(|e| ReadFailure::Bad(e.to_string()))?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| broken(e, "request"))?;
    decode_body(&body).map_err(|e| ReadFailure::Bad(e.to_string()))
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
    relay: Arc<Relay<SledStore>>,
    hub: Arc<Hub>,
    session: Arc<Mutex<Session>>,
) {
    let request = match timeout(REQUEST_TIMEOUT, read_request(&mut recv)).await {
        Ok(Ok(request)) => request,
        Ok(Err(ReadFailure::Gone(reason))) => {
            debug!(%reason, "stream broke before a request arrived");
            return;
        }
        Ok(Err(ReadFailure::Bad(reason))) => {
            debug!(%reason, "malformed request");
            let response = Response::error(ErrorCode::BadRequest, reason);
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
    let handled = {
        let relay = Arc::clone(&relay);
        let task = tokio::task::spawn_blocking(move || {
            let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
            relay.handle_request(&mut session, request, nonce)
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
    if let Response::Error {
        code: ErrorCode::Internal,
        message,
    } = &response
    {
        error!(request = kind, %message, "request failed");
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
        Some(receiver) => forward_notifications(&mut send, receiver).await,
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
async fn forward_notifications(send: &mut SendStream, mut receiver: broadcast::Receiver<u64>) {
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
