//! The relay's TLS identity and QUIC server configuration.
//!
//! A relay has no certificate authority behind it: on first start it makes a self-signed
//! certificate (ECDSA P-256, subject alt name [`SERVER_NAME`]) and keeps it in its data directory.
//! Devices pin the SHA-256 of that certificate — its [`fingerprint`], printed by the relay and
//! carried in every invite — so the certificate must never change once devices know it: later
//! starts load the same files, and a missing key next to an existing certificate is an error
//! rather than a reason to make a new identity.
//!
//! The server speaks TLS 1.3 only (QUIC requires it), with ALPN [`candor_shared::ALPN`], the
//! `ring` crypto provider, and no 0-RTT (early data could be replayed).

use crate::data::{write_atomic, DataDir, FileMode};
use candor_shared::invite::RelayFingerprint;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The DNS name in the relay certificate; devices connect with this server name.
pub const SERVER_NAME: &str = "candor-relay";
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The relay pings idle connections this often so NAT bindings and subscriptions stay open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Most bidirectional streams (requests) a device may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// Most stream bytes a connection may have sent that the relay has not read yet, until its
/// session authenticates (QUIC connection-level flow control). Without it quinn would buffer
/// up to its per-stream window on each of [`MAX_CONCURRENT_STREAMS`] streams for anyone who
/// completes a handshake; `Hello` and `Authenticate` need a few hundred bytes.
pub const UNAUTHENTICATED_RECEIVE_WINDOW: u32 = 64 * 1024;
/// The connection-level receive window once the session has authenticated (the relay raises it
/// then). It bounds what QUIC buffers for a connection that sends frames faster than the relay
/// reads them — a hostile one that stalls in mid-frame holds at most this much — while a frame
/// being read streams through it at full speed (on loopback or a LAN, a window of a few hundred
/// KiB covers the bandwidth-delay product many times over).
pub const AUTHENTICATED_RECEIVE_WINDOW: u32 = 256 * 1024;
/// Most unread bytes one stream may hold (QUIC stream-level flow control), so one stalled
/// request cannot take the whole connection window.
pub const STREAM_RECEIVE_WINDOW: u32 = 128 * 1024;

/// Errors loading or creating the TLS identity, or building the server configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The certificate exists but its private key is gone.
    #[error(
        "{cert} exists but its private key {key} is missing; the relay cannot prove its identity. \
         Restore the key from a backup, or delete {cert} to create a new identity (every device \
         will then have to pin the new fingerprint)"
    )]
    MissingKey {
        /// The certificate file.
        cert: PathBuf,
        /// The missing key file.
        key: PathBuf,
    },
    /// Generating the certificate failed.
    #[error("could not generate the relay certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key (e.g. a corrupt key file).
    #[error("the relay certificate or key is unusable: {0}")]
    Rustls(#[from] rustls::Error),
    /// The TLS configuration does not suit QUIC.
    #[error("TLS configuration is not usable for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The relay's certificate and private key.
#[derive(Debug)]
pub struct Identity {
    /// The self-signed certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The fingerprint devices pin.
    pub fn fingerprint(&self) -> RelayFingerprint {
        fingerprint(&self.cert)
    }

    /// The QUIC stateless-reset key, derived from the private key so it survives restarts.
    ///
    /// After a crash and restart, a device still holding a connection to the old process gets a
    /// stateless reset on its next packet and reconnects at once, instead of waiting for its
    /// idle timeout. The derivation is one-way: the reset key reveals nothing of the TLS key.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &self.derive(b"stateless reset key"),
        )
    }

    /// The key of quinn's connection-id validation, stable across restarts for the same reason:
    /// a restarted relay must recognise the ids it issued before, or it drops their packets
    /// instead of answering with a stateless reset.
    pub fn connection_id_key(&self) -> u64 {
        let derived = self.derive(b"connection id key");
        u64::from_le_bytes([
            derived[0], derived[1], derived[2], derived[3], derived[4], derived[5], derived[6],
            derived[7],
        ])
    }

    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"candor-relay v1 ");
        hasher.update(purpose);
        hasher.update(b"\0");
        hasher.update(self.key.secret_der());
        hasher.finalize().into()
    }
}

/// SHA-256 of a DER certificate: what devices pin.
pub fn fingerprint(cert_der: &[u8]) -> RelayFingerprint {
    RelayFingerprint(Sha256::digest(cert_der).into())
}

fn read(path: PathBuf) -> Result<Option<Vec<u8>>, TlsError> {
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            action: "could not read",
            path,
            source,
        }),
    }
}

/// Loads the identity from the data directory, creating it on first start.
///
/// The key is written before the certificate, so an existing certificate always has its key;
/// a key without a certificate (a crash during the first start) is simply replaced.
pub fn load_or_create(data: &DataDir) -> Result<Identity, TlsError> {
    let (cert_path, key_path) = (data.cert_path(), data.key_path());
    if let Some(cert) = read(cert_path.clone())? {
        let Some(key) = read(key_path.clone())? else {
            return Err(TlsError::MissingKey {
                cert: cert_path,
                key: key_path,
            });
        };
        return Ok(Identity {
            cert: CertificateDer::from(cert),
            key: PrivatePkcs8KeyDer::from(key).into(),
        });
    }
    let identity = generate()?;
    let write = |path: PathBuf, bytes: &[u8], mode| {
        write_atomic(&path, bytes, mode).map_err(|source| TlsError::Io {
            action: "could not write",
            path,
            source,
        })
    };
    write(key_path, identity.key.secret_der(), FileMode::Private)?;
    write(cert_path, identity.cert.as_ref(), FileMode::Public)?;
    tracing::info!(
        fingerprint = %identity.fingerprint(),
        "created a new relay certificate"
    );
    Ok(identity)
}

/// Makes a fresh self-signed certificate for [`SERVER_NAME`].
pub fn generate() -> Result<Identity, TlsError> {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SERVER_NAME);
    let cert = params.self_signed(&key_pair)?;
    Ok(Identity {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into(),
    })
}

/// The QUIC server configuration: TLS 1.3 with the `ring` provider, ALPN
/// [`candor_shared::ALPN`], no client certificates, and a keep-alive friendly transport whose
/// connection receive window starts at [`UNAUTHENTICATED_RECEIVE_WINDOW`] (the relay raises it
/// to [`AUTHENTICATED_RECEIVE_WINDOW`] once the device has authenticated).
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with(identity, IDLE_TIMEOUT)
}

/// [`server_config`] with another idle timeout (a connection whose peer sends nothing — not even
/// the acknowledgement of a keep-alive — for this long is closed). Keep-alives are sent every
/// [`KEEP_ALIVE_INTERVAL`] or a third of the timeout, whichever is shorter.
pub fn server_config_with(
    identity: &Identity,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    tls.alpn_protocols = vec![candor_shared::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls)?;

    let mut transport = quinn::TransportConfig::default();
    // Configured timeouts are at most a day, which always fits a QUIC idle timeout (2^62 ms).
    let idle_timeout = idle_timeout.max(Duration::from_secs(1));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok());
    transport.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL.min(idle_timeout / 3)));
    transport.max_concurrent_bidi_streams(MAX_CONCURRENT_STREAMS.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.receive_window(UNAUTHENTICATED_RECEIVE_WINDOW.into());
    set_congestion(&mut transport);
    transport.stream_receive_window(STREAM_RECEIVE_WINDOW.into());

    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::create(tmp.path().join("data")).unwrap();
        let first = load_or_create(&data).unwrap();
        let second = load_or_create(&data).unwrap();
        assert_eq!(first.cert, second.cert);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(
            first.fingerprint().0,
            <[u8; 32]>::from(Sha256::digest(std::fs::read(data.cert_path()).unwrap()))
        );
        server_config(&second).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn missing_key_is_an_error_not_a_new_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::create(tmp.path()).unwrap();
        load_or_create(&data).unwrap();
        std::fs::remove_file(data.key_path()).unwrap();
        assert!(matches!(
            load_or_create(&data),
            Err(TlsError::MissingKey { .. })
        ));
    }

    #[test]
    fn corrupt_key_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::create(tmp.path()).unwrap();
        load_or_create(&data).unwrap();
        std::fs::write(data.key_path(), b"not a key").unwrap();
        let identity = load_or_create(&data).unwrap();
        assert!(server_config(&identity).is_err());
    }
}
