//! The device's connection to its relay: QUIC with a pinned certificate, then authentication.
//!
//! A relay presents a self-signed certificate. Devices do not check it against any certificate
//! authority or host name: they accept exactly the certificate whose SHA-256 fingerprint they
//! pinned (from the invite or from setup), and nothing else. The TLS 1.3 handshake signature is
//! still verified against that certificate's key, so only the holder of the relay's private key
//! can complete the handshake.
//!
//! After the handshake the device authenticates (see [`candor_shared::wire`]):
//!
//! 1. `Hello { version }` → `Challenge { nonce }`;
//! 2. `Authenticate { device, signature }` → `Authenticated { spaces }`, where the signature
//!    covers [`AUTH_SIGNATURE_PREFIX`] and [`auth_message`] of the nonce, keying material
//!    exported from this very TLS session, and the device key — so a relay (or anyone in the
//!    middle) cannot replay it on another connection.
//!
//! Each exchange then runs on its own bidirectional stream: one request frame, the send side
//! finished, one response frame back. [`RelayClient::subscribe`] is the exception: the relay
//! answers `Subscribed` and then keeps sending `Notify` frames on that stream, read with
//! [`Subscription::next`].
//!
//! Every wait is bounded: connecting and authenticating by [`CONNECT_TIMEOUT`], each request by
//! [`REQUEST_TIMEOUT`]. A subscription waits for notifications without limit; a dead connection
//! is still noticed through keep-alives and the idle timeout.

use candor_shared::invite::RelayFingerprint;
use candor_shared::keys::{DeviceSecrets, AUTH_SIGNATURE_PREFIX};
use candor_shared::wire::{
    auth_message, decode_frame, encode_frame, frame_len, ErrorCode, Request, Response, WireError,
    TLS_EXPORTER_LABEL,
};
use candor_shared::{DeviceKey, SpaceId, ALPN, PROTOCOL_VERSION};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, PeerIncompatible, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// The TLS server name devices ask for. Relays ignore it and devices do not check it (the
/// certificate is pinned instead), but QUIC needs a syntactically valid name.
pub const SERVER_NAME: &str = "candor-relay";
/// Upper bound on resolving, connecting and authenticating in [`RelayClient::connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on one [`RelayClient::request`] (and on opening a subscription).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle connection is kept alive.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// A connection with no traffic (not even keep-alives) for this long is considered dead.
const IDLE_TIMEOUT_MS: u32 = 30_000;
/// How long [`RelayClient::close`] waits for the close to reach the relay.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Largest single read from a stream.
const READ_CHUNK: usize = 64 * 1024;
/// Longest relay error message kept (the text is untrusted).
const MAX_RELAY_MESSAGE: usize = 500;

/// What can go wrong talking to the relay.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The relay address could not be resolved.
    #[error("cannot resolve the relay address {addr:?}: {reason}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why resolution failed.
        reason: String,
    },
    /// No QUIC connection could be established (relay down, port blocked, handshake refused, or
    /// no answer within [`CONNECT_TIMEOUT`]).
    #[error("cannot connect to the relay at {addr}: {reason}")]
    Connect {
        /// The resolved address tried.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
    /// The relay presented a certificate other than the pinned one.
    #[error(
        "the relay's certificate does not match the pinned fingerprint: expected {expected}, \
         got {got} (if the relay was reinstalled, re-pin it; otherwise someone may be \
         intercepting the connection)"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: RelayFingerprint,
        /// The fingerprint of the certificate the relay presented.
        got: RelayFingerprint,
    },
    /// Building the TLS configuration or exporting keying material failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// A local socket error (e.g. binding the UDP socket).
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// An operation did not finish in time.
    #[error("timed out after {after:?} {operation}")]
    Timeout {
        /// What was being waited for.
        operation: &'static str,
        /// The limit that elapsed.
        after: Duration,
    },
    /// The connection to the relay was lost (or closed by the relay), with the reason.
    #[error("lost the connection to the relay: {0}")]
    ConnectionLost(quinn::ConnectionError),
    /// A stream failed (reset or stopped by the relay, or ended in the middle of a frame).
    #[error("stream error talking to the relay: {0}")]
    Stream(String),
    /// A frame announced more than [`candor_shared::wire::MAX_FRAME`] bytes.
    #[error("frame of {0} bytes exceeds the protocol limit")]
    FrameTooLarge(usize),
    /// A frame did not decode as the expected message.
    #[error("malformed message from the relay: {0}")]
    Malformed(String),
    /// The relay answered with an error.
    #[error("the relay refused the request ({code:?}): {message}")]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The relay's explanation (control characters removed, length capped).
        message: String,
    },
    /// The relay answered with a message that does not fit the request.
    #[error("unexpected answer from the relay: {0}")]
    Unexpected(&'static str),
    /// The connection or subscription was closed (by us, or by the relay ending the stream).
    #[error("the connection to the relay is closed")]
    Closed,
}

impl From<WireError> for NetError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::FrameTooLarge(len) => Self::FrameTooLarge(len),
            WireError::Malformed(reason) => Self::Malformed(reason),
        }
    }
}

impl NetError {
    fn from_connection(error: quinn::ConnectionError) -> Self {
        match error {
            quinn::ConnectionError::LocallyClosed => Self::Closed,
            other => Self::ConnectionLost(other),
        }
    }

    fn from_read(error: quinn::ReadError) -> Self {
        match error {
            quinn::ReadError::ConnectionLost(e) => Self::from_connection(e),
            quinn::ReadError::Reset(code) => {
                Self::Stream(format!("the relay reset the stream (code {code})"))
            }
            other => Self::Stream(other.to_string()),
        }
    }

    fn from_write(error: quinn::WriteError) -> Self {
        match error {
            quinn::WriteError::ConnectionLost(e) => Self::from_connection(e),
            quinn::WriteError::Stopped(code) => Self::Stream(format!(
                "the relay stopped reading the request (code {code})"
            )),
            other => Self::Stream(other.to_string()),
        }
    }

    fn refused(code: ErrorCode, message: String) -> Self {
        let message = message
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_RELAY_MESSAGE)
            .collect();
        Self::Refused { code, message }
    }
}

/// An authenticated connection to a relay.
///
/// Requests may run concurrently from several tasks (`request` takes `&self`; wrap the client in
/// an `Arc` to share it). Dropping the client closes the connection abruptly; prefer
/// [`RelayClient::close`].
pub struct RelayClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    device: DeviceKey,
}

impl fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayClient")
            .field("relay", &self.conn.remote_address())
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl RelayClient {
    /// Connects to the relay and authenticates as `device`.
    ///
    /// Resolves `addr` (`"HOST:PORT"`, using the first address found), connects over QUIC with
    /// TLS 1.3 pinned to `fingerprint` (ALPN `candor/1`, server name [`SERVER_NAME`]), then runs
    /// the `Hello` / `Authenticate` exchange, signing the relay's nonce together with keying
    /// material exported from this TLS session. Everything is bounded by [`CONNECT_TIMEOUT`].
    ///
    /// Returns the client and the spaces the relay knows this device to be a member of.
    pub async fn connect(
        addr: &str,
        fingerprint: &RelayFingerprint,
        device: &DeviceSecrets,
    ) -> Result<(Self, Vec<SpaceId>), NetError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;

        let remote = match tokio::time::timeout_at(deadline, tokio::net::lookup_host(addr)).await {
            Err(_) => {
                return Err(NetError::Resolve {
                    addr: addr.to_owned(),
                    reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
                })
            }
            Ok(Err(e)) => {
                return Err(NetError::Resolve {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| NetError::Resolve {
                addr: addr.to_owned(),
                reason: "no addresses found".to_owned(),
            })?,
        };

        let mismatch = Arc::new(OnceLock::new());
        let config = client_config(fingerprint, Arc::clone(&mismatch))?;
        let local: SocketAddr = match remote {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let endpoint = quinn::Endpoint::client(local)?;
        tracing::debug!(%remote, "connecting to relay");

        let connecting = endpoint
            .connect_with(config, remote, SERVER_NAME)
            .map_err(|e| NetError::Connect {
                addr: remote,
                reason: e.to_string(),
            })?;
        let conn = match tokio::time::timeout_at(deadline, connecting).await {
            Err(_) => {
                return Err(NetError::Connect {
                    addr: remote,
                    reason: format!(
                        "no answer within {CONNECT_TIMEOUT:?} (is the relay running, and is UDP \
                         port {} reachable?)",
                        remote.port()
                    ),
                })
            }
            Ok(Err(e)) => {
                if let Some(got) = mismatch.get() {
                    return Err(NetError::FingerprintMismatch {
                        expected: *fingerprint,
                        got: *got,
                    });
                }
                return Err(NetError::Connect {
                    addr: remote,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(conn)) => conn,
        };

        let device_key = device.device_key();
        let spaces = tokio::time::timeout_at(deadline, authenticate(&conn, device, &device_key))
            .await
            .map_err(|_| NetError::Timeout {
                operation: "authenticating with the relay",
                after: CONNECT_TIMEOUT,
            })??;
        tracing::debug!(%remote, spaces = spaces.len(), "authenticated with relay");

        Ok((
            Self {
                endpoint,
                conn,
                device: device_key,
            },
            spaces,
        ))
    }

    /// Runs one request/response exchange on a fresh stream, bounded by [`REQUEST_TIMEOUT`].
    ///
    /// A `Response::Error` from the relay becomes [`NetError::Refused`]. The response's length
    /// prefix is checked against the frame limit before its body is buffered. (Use
    /// [`RelayClient::subscribe`], not this, for `Request::Subscribe`.)
    pub async fn request(&self, request: &Request) -> Result<Response, NetError> {
        tokio::time::timeout(REQUEST_TIMEOUT, exchange(&self.conn, request))
            .await
            .map_err(|_| NetError::Timeout {
                operation: "waiting for the relay's answer",
                after: REQUEST_TIMEOUT,
            })?
    }

    /// [`RelayClient::request`] as a future that owns what it needs, for a driver that keeps
    /// several requests in flight (each on its own stream) and awaits them in any order.
    pub fn request_owned(
        &self,
        request: Request,
    ) -> impl std::future::Future<Output = Result<Response, NetError>> + Send + 'static {
        let conn = self.conn.clone();
        async move {
            tokio::time::timeout(REQUEST_TIMEOUT, exchange(&conn, &request))
                .await
                .map_err(|_| NetError::Timeout {
                    operation: "waiting for the relay's answer",
                    after: REQUEST_TIMEOUT,
                })?
        }
    }

    /// Opens a subscription to `space`; returns once the relay has answered `Subscribed`.
    ///
    /// Read notifications with [`Subscription::next`].
    pub async fn subscribe(&self, space: SpaceId) -> Result<Subscription, NetError> {
        let open = async {
            let mut reader = send_request(&self.conn, &Request::Subscribe { space }).await?;
            match reader.next().await? {
                Some(Response::Subscribed) => Ok(Subscription { reader }),
                Some(Response::Error { code, message }) => Err(NetError::refused(code, message)),
                Some(_) => Err(NetError::Unexpected(
                    "the relay did not answer Subscribe with Subscribed",
                )),
                None => Err(NetError::Unexpected(
                    "the relay ended the subscription stream without answering",
                )),
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, open)
            .await
            .map_err(|_| NetError::Timeout {
                operation: "waiting for the relay to confirm the subscription",
                after: REQUEST_TIMEOUT,
            })?
    }

    /// Resolves when the connection closes, with the reason ([`NetError::Closed`] if we closed
    /// it, otherwise [`NetError::ConnectionLost`]).
    pub async fn closed(&self) -> NetError {
        NetError::from_connection(self.conn.closed().await)
    }

    /// The device this connection is authenticated as.
    pub fn device(&self) -> DeviceKey {
        self.device
    }

    /// The relay's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// Closes the connection gracefully, waiting briefly (about a second at most) for the close
    /// to reach the relay.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        // Timing out here only means the relay did not acknowledge in time; nothing to report.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
    }
}

/// An open subscription: the relay sends the space's latest cursor whenever an entry lands.
#[derive(Debug)]
pub struct Subscription {
    reader: FrameReader,
}

impl Subscription {
    /// Waits for the next notification and returns its cursor.
    ///
    /// Fails with [`NetError::Closed`] when the relay ends the stream, or with the connection's
    /// error when it is lost. Cancel-safe: it can be used in `tokio::select!` without losing or
    /// corrupting notifications.
    pub async fn next(&mut self) -> Result<u64, NetError> {
        match self.reader.next().await? {
            Some(Response::Notify { cursor }) => Ok(cursor),
            Some(Response::Error { code, message }) => Err(NetError::refused(code, message)),
            Some(_) => Err(NetError::Unexpected(
                "the relay sent something other than a notification on a subscription",
            )),
            None => Err(NetError::Closed),
        }
    }
}

/// `Hello` → `Challenge`, then `Authenticate` → `Authenticated`.
async fn authenticate(
    conn: &quinn::Connection,
    device: &DeviceSecrets,
    device_key: &DeviceKey,
) -> Result<Vec<SpaceId>, NetError> {
    let nonce = match exchange(
        conn,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    )
    .await?
    {
        Response::Challenge { nonce } => nonce,
        _ => {
            return Err(NetError::Unexpected(
                "the relay did not answer Hello with a Challenge",
            ))
        }
    };

    let mut exporter = Zeroizing::new([0u8; 32]);
    conn.export_keying_material(exporter.as_mut_slice(), TLS_EXPORTER_LABEL, b"")
        .map_err(|e| NetError::Tls(format!("cannot export keying material: {e:?}")))?;
    let signature = device.sign(
        AUTH_SIGNATURE_PREFIX,
        &auth_message(&nonce, &exporter, device_key),
    );

    match exchange(
        conn,
        &Request::Authenticate {
            device: *device_key,
            signature: signature.to_vec(),
        },
    )
    .await?
    {
        Response::Authenticated { spaces } => Ok(spaces),
        _ => Err(NetError::Unexpected(
            "the relay did not answer Authenticate with Authenticated",
        )),
    }
}

/// One request, one response, on a fresh stream (no timeout of its own).
async fn exchange(conn: &quinn::Connection, request: &Request) -> Result<Response, NetError> {
    let mut reader = send_request(conn, request).await?;
    match reader.next().await? {
        Some(Response::Error { code, message }) => Err(NetError::refused(code, message)),
        Some(response) => Ok(response),
        None => Err(NetError::Unexpected(
            "the relay ended the stream without answering",
        )),
    }
}

/// Opens a stream, writes `request` as one frame and finishes the send side.
async fn send_request(
    conn: &quinn::Connection,
    request: &Request,
) -> Result<FrameReader, NetError> {
    let frame = encode_frame(request)?;
    let (mut send, recv) = conn.open_bi().await.map_err(NetError::from_connection)?;
    send.write_all(&frame).await.map_err(NetError::from_write)?;
    send.finish()
        .map_err(|e| NetError::Stream(format!("cannot finish the request stream: {e}")))?;
    Ok(FrameReader {
        recv,
        buf: Vec::new(),
    })
}

/// Reads length-prefixed response frames from a stream, never buffering more than the frame
/// being read (whose announced length is checked before its body is read). Cancel-safe: partial
/// frames stay in `buf` across cancelled calls.
#[derive(Debug)]
struct FrameReader {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame, or `None` if the stream ended cleanly between frames.
    async fn next(&mut self) -> Result<Option<Response>, NetError> {
        loop {
            if let Some((response, used)) = decode_frame::<Response>(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(response));
            }
            let missing = match self.buf.get(..4) {
                Some(&[a, b, c, d]) => {
                    let len = frame_len([a, b, c, d])?;
                    (4 + len).saturating_sub(self.buf.len())
                }
                _ => 4 - self.buf.len(),
            };
            match self
                .recv
                .read_chunk(missing.min(READ_CHUNK), true)
                .await
                .map_err(NetError::from_read)?
            {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(NetError::Stream(
                        "the relay ended the stream in the middle of a frame".to_owned(),
                    ))
                }
            }
        }
    }
}

/// The QUIC client configuration devices use, pinned to `fingerprint`: for tools and tests that
/// speak the wire protocol directly (e.g. to send malformed frames to a relay).
pub fn pinned_client_config(
    fingerprint: &RelayFingerprint,
) -> Result<quinn::ClientConfig, NetError> {
    client_config(fingerprint, Arc::new(OnceLock::new()))
}

/// Builds the QUIC client configuration: TLS 1.3 only, ring provider, pinned certificate,
/// ALPN `candor/1`, no session resumption (so the pin is checked on every connection).
fn client_config(
    fingerprint: &RelayFingerprint,
    mismatch: Arc<OnceLock<RelayFingerprint>>,
) -> Result<quinn::ClientConfig, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedVerifier {
        expected: *fingerprint,
        mismatch,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| NetError::Tls(format!("unusable TLS configuration for QUIC: {e}")))?;

    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .max_idle_timeout(Some(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS).into()))
        // The relay never opens streams towards devices.
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(0u32.into());
    set_congestion(&mut transport);
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Sets the congestion controller: quinn's Cubic unless `CANDOR_CONGESTION` names another
/// (`bbr`, `newreno`; the benchmark's slow-path case compares them — BENCHMARKS.md).
fn set_congestion(transport: &mut quinn::TransportConfig) {
    use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
    match std::env::var("CANDOR_CONGESTION").as_deref() {
        Ok("bbr") => transport.congestion_controller_factory(Arc::new(BbrConfig::default())),
        Ok("newreno") => {
            transport.congestion_controller_factory(Arc::new(NewRenoConfig::default()))
        }
        _ => transport.congestion_controller_factory(Arc::new(CubicConfig::default())),
    };
}

/// Accepts exactly the certificate with the pinned SHA-256 fingerprint, whatever its name, chain
/// or validity dates, and verifies TLS 1.3 handshake signatures against it.
#[derive(Debug)]
struct PinnedVerifier {
    expected: RelayFingerprint,
    /// Set to the fingerprint actually seen when it does not match, so the caller can report it.
    mismatch: Arc<OnceLock<RelayFingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Compares two 32-byte values without an early exit.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn certificate_fingerprint(der: &[u8]) -> RelayFingerprint {
    RelayFingerprint(Sha256::digest(der).into())
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = certificate_fingerprint(end_entity.as_ref());
        if constant_time_eq(&got.0, &self.expected.0) {
            Ok(ServerCertVerified::assertion())
        } else {
            // Only the first mismatch of this connection is recorded; there is only one.
            let _ = self.mismatch.set(got);
            tracing::warn!(expected = %self.expected, %got, "relay certificate does not match the pin");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOfferedOrEnabled,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use candor_shared::keys::verify_signature;
    use candor_shared::wire::MAX_FRAME;
    use quinn::crypto::rustls::QuicServerConfig;
    use rustls::pki_types::PrivatePkcs8KeyDer;

    /// A relay-like QUIC endpoint on loopback with a fresh self-signed certificate.
    fn test_server() -> (quinn::Endpoint, RelayFingerprint) {
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).unwrap();
        let cert = certified.cert.der().clone();
        let fingerprint = certificate_fingerprint(cert.as_ref());
        let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())
        .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicServerConfig::try_from(Arc::new(tls)).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let endpoint = quinn::Endpoint::server(config, (Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        (endpoint, fingerprint)
    }

    async fn read_request(recv: &mut quinn::RecvStream) -> Request {
        let bytes = recv.read_to_end(MAX_FRAME + 4).await.unwrap();
        let (request, used) = decode_frame::<Request>(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        request
    }

    async fn answer(send: &mut quinn::SendStream, response: &Response) {
        send.write_all(&encode_frame(response).unwrap())
            .await
            .unwrap();
    }

    fn device() -> DeviceSecrets {
        DeviceSecrets::from_seeds([1; 32], [2; 32])
    }

    #[tokio::test]
    async fn authenticates_with_pinned_certificate_and_exchanges() {
        let (endpoint, fingerprint) = test_server();
        let addr = endpoint.local_addr().unwrap();
        let device = device();
        let expected_device = device.device_key();
        let space = SpaceId([7; 16]);

        let server = tokio::spawn(async move {
            let conn = endpoint.accept().await.unwrap().await.unwrap();
            let nonce = [9u8; 32];

            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            assert_eq!(
                read_request(&mut recv).await,
                Request::Hello {
                    version: PROTOCOL_VERSION
                }
            );
            answer(&mut send, &Response::Challenge { nonce }).await;
            send.finish().unwrap();

            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let Request::Authenticate { device, signature } = read_request(&mut recv).await else {
                panic!("expected Authenticate");
            };
            assert_eq!(device, expected_device);
            let mut exporter = [0u8; 32];
            conn.export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, b"")
                .unwrap();
            let signature: [u8; 64] = signature.try_into().unwrap();
            verify_signature(
                &device,
                AUTH_SIGNATURE_PREFIX,
                &auth_message(&nonce, &exporter, &device),
                &signature,
            )
            .unwrap();
            // A signature bound to another session's keying material must not verify.
            assert!(verify_signature(
                &device,
                AUTH_SIGNATURE_PREFIX,
                &auth_message(&nonce, &[0u8; 32], &device),
                &signature,
            )
            .is_err());
            answer(
                &mut send,
                &Response::Authenticated {
                    spaces: vec![space],
                },
            )
            .await;
            send.finish().unwrap();

            // A refused request.
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            assert_eq!(read_request(&mut recv).await, Request::Heads { space });
            answer(
                &mut send,
                &Response::error(ErrorCode::Forbidden, "not a member\u{1b}[2J"),
            )
            .await;
            send.finish().unwrap();

            // An oversized length prefix.
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            read_request(&mut recv).await;
            send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            send.finish().unwrap();

            // A subscription with two notifications, then the end of the stream.
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            assert_eq!(read_request(&mut recv).await, Request::Subscribe { space });
            answer(&mut send, &Response::Subscribed).await;
            answer(&mut send, &Response::Notify { cursor: 3 }).await;
            answer(&mut send, &Response::Notify { cursor: 4 }).await;
            send.finish().unwrap();

            // The client's last request: the relay closes the connection instead of answering.
            let (_send, mut recv) = conn.accept_bi().await.unwrap();
            read_request(&mut recv).await;
            conn.close(42u32.into(), b"maintenance");
            endpoint.wait_idle().await;
        });

        let (client, spaces) = RelayClient::connect(&addr.to_string(), &fingerprint, &device)
            .await
            .unwrap();
        assert_eq!(spaces, vec![space]);
        assert_eq!(client.device(), expected_device);

        match client.request(&Request::Heads { space }).await {
            Err(NetError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Forbidden);
                assert_eq!(message, "not a member[2J");
            }
            other => panic!("expected Refused, got {other:?}"),
        }

        match client
            .request(&Request::Pull {
                space,
                after: 0,
                limit: 10,
            })
            .await
        {
            Err(NetError::FrameTooLarge(len)) => assert_eq!(len, u32::MAX as usize),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }

        let mut subscription = client.subscribe(space).await.unwrap();
        assert_eq!(subscription.next().await.unwrap(), 3);
        assert_eq!(subscription.next().await.unwrap(), 4);
        assert!(matches!(subscription.next().await, Err(NetError::Closed)));

        let last = client.request(&Request::Members { space }).await;
        assert!(
            matches!(last, Err(NetError::ConnectionLost(_))),
            "expected ConnectionLost, got {last:?}"
        );
        match client.closed().await {
            NetError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close)) => {
                assert_eq!(close.error_code, 42u32.into());
                assert_eq!(&close.reason[..], b"maintenance");
            }
            other => panic!("expected an application close, got {other:?}"),
        }
        client.close().await;
        server.await.unwrap();
    }

    #[tokio::test]
    async fn refuses_a_certificate_that_does_not_match_the_pin() {
        let (endpoint, actual) = test_server();
        let addr = endpoint.local_addr().unwrap();
        // The relay side only has to run the handshake; whether (and when) it learns of the
        // client's abort does not matter, so the task is aborted rather than awaited.
        let server = tokio::spawn(async move {
            if let Some(incoming) = endpoint.accept().await {
                let _ = incoming.await;
            }
        });

        let pinned = RelayFingerprint([0xab; 32]);
        let error = RelayClient::connect(&addr.to_string(), &pinned, &device())
            .await
            .unwrap_err();
        match &error {
            NetError::FingerprintMismatch { expected, got } => {
                assert_eq!(*expected, pinned);
                assert_eq!(*got, actual);
            }
            other => panic!("expected FingerprintMismatch, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.contains("does not match the pinned fingerprint"),
            "{text}"
        );
        assert!(text.contains(&actual.to_string()), "{text}");
        server.abort();
    }

    #[tokio::test]
    async fn reports_unresolvable_addresses() {
        let error = RelayClient::connect("no port here", &RelayFingerprint([0; 32]), &device())
            .await
            .unwrap_err();
        assert!(matches!(error, NetError::Resolve { .. }), "{error:?}");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(&[5; 32], &[5; 32]));
        let mut other = [5; 32];
        other[31] = 4;
        assert!(!constant_time_eq(&[5; 32], &other));
    }

    #[test]
    fn wire_errors_map_to_precise_variants() {
        assert!(matches!(
            NetError::from(WireError::FrameTooLarge(9)),
            NetError::FrameTooLarge(9)
        ));
        assert!(matches!(
            NetError::from(WireError::Malformed("x".into())),
            NetError::Malformed(_)
        ));
    }
}
