//! The QUIC service end to end, in process: a pinned client authenticates, pairs, subscribes,
//! pushes and pulls; malformed frames are refused without harming the connection.

use super::fixtures::{auth_signature, chain, create_space, device, join, space};
use crate::data::DataDir;
use crate::service;
use candor_shared::keys::DeviceSecrets;
use candor_shared::wire::{
    decode_body, encode_frame, frame_len, ErrorCode, PushOutcome, Request, Response,
    TLS_EXPORTER_LABEL,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Accepts exactly the certificate whose SHA-256 is `fingerprint`.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate fingerprint mismatch".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub(super) fn client_endpoint(fingerprint: [u8; 32]) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint,
            provider,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![candor_shared::ALPN.to_vec()];
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).unwrap(),
    )));
    endpoint
}

pub(super) async fn read_frame(recv: &mut quinn::RecvStream) -> Option<Response> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.ok()?;
    let mut body = vec![0u8; frame_len(prefix).unwrap()];
    recv.read_exact(&mut body).await.unwrap();
    Some(decode_body(&body).unwrap())
}

/// Sends raw bytes on a new stream and reads the single answer.
pub(super) async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let response = read_frame(&mut recv).await.expect("a response");
    assert!(
        read_frame(&mut recv).await.is_none(),
        "one answer per stream"
    );
    response
}

pub(super) async fn call(conn: &quinn::Connection, request: &Request) -> Response {
    exchange(conn, &encode_frame(request).unwrap()).await
}

pub(super) async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> quinn::Connection {
    endpoint
        .connect(addr, crate::tls::SERVER_NAME)
        .unwrap()
        .await
        .unwrap()
}

pub(super) async fn login(conn: &quinn::Connection, d: &DeviceSecrets) {
    let Response::Challenge { nonce } = call(conn, &Request::Hello { version: 1 }).await else {
        panic!("no challenge");
    };
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, b"")
        .unwrap();
    let response = call(
        conn,
        &Request::Authenticate {
            device: d.device_key(),
            signature: auth_signature(d, &nonce, &exporter),
        },
    )
    .await;
    assert!(
        matches!(response, Response::Authenticated { .. }),
        "{response:?}"
    );
}

pub(super) fn is_bad_request(response: &Response) -> bool {
    matches!(
        response,
        Response::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    )
}

#[tokio::test]
async fn pinned_devices_pair_push_and_get_notified() {
    tokio::time::timeout(Duration::from_secs(30), scenario())
        .await
        .expect("the scenario finishes in time");
}

async fn scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::create(tmp.path().join("data")).unwrap();
    let bound = service::bind("127.0.0.1:0".parse().unwrap(), &data).unwrap();
    let addr = bound.local_addr;
    assert_ne!(addr.port(), 0);
    let fingerprint = bound.fingerprint;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::run(
        bound.endpoint,
        bound.relay,
        service::Limits::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // A client pinning another fingerprint refuses the relay.
    let wrong = client_endpoint([0; 32]);
    assert!(wrong
        .connect(addr, crate::tls::SERVER_NAME)
        .unwrap()
        .await
        .is_err());

    let client = client_endpoint(fingerprint.0);
    let (a, b) = (device(0), device(1));
    let conn_a = connect(&client, addr).await;
    let conn_b = connect(&client, addr).await;

    // Nothing works before authentication.
    let response = call(&conn_a, &Request::Heads { space: space(0) }).await;
    assert!(matches!(
        response,
        Response::Error {
            code: ErrorCode::NotAuthenticated,
            ..
        }
    ));
    login(&conn_a, &a).await;
    login(&conn_b, &b).await;

    assert_eq!(
        call(&conn_a, &create_space(&a, 0)).await,
        Response::SpaceCreated
    );
    assert!(matches!(
        call(&conn_b, &join(&b, 0, true)).await,
        Response::Joined { .. }
    ));

    // B subscribes on a long-lived stream; other requests on its connection still work.
    let (mut sub_send, mut sub_recv) = conn_b.open_bi().await.unwrap();
    sub_send
        .write_all(&encode_frame(&Request::Subscribe { space: space(0) }).unwrap())
        .await
        .unwrap();
    sub_send.finish().unwrap();
    assert_eq!(read_frame(&mut sub_recv).await, Some(Response::Subscribed));
    assert!(matches!(
        call(&conn_b, &Request::Heads { space: space(0) }).await,
        Response::HeadList { heads } if heads.is_empty()
    ));

    // A pushes; B hears about it and pulls the entries.
    let entries: Vec<Vec<u8>> = chain(&a, 0, 2).iter().map(|e| e.to_bytes()).collect();
    let response = call(
        &conn_a,
        &Request::Push {
            space: space(0),
            entries: entries.clone(),
        },
    )
    .await;
    assert_eq!(
        response,
        Response::Pushed {
            outcomes: vec![
                PushOutcome::Stored { cursor: 1 },
                PushOutcome::Stored { cursor: 2 }
            ]
        }
    );
    assert_eq!(
        read_frame(&mut sub_recv).await,
        Some(Response::Notify { cursor: 2 })
    );
    let Response::Page {
        entries: page,
        more,
    } = call(
        &conn_b,
        &Request::Pull {
            space: space(0),
            after: 0,
            limit: 10,
        },
    )
    .await
    else {
        panic!("no page");
    };
    assert!(!more);
    assert_eq!(
        page.into_iter().map(|p| p.entry).collect::<Vec<_>>(),
        entries
    );

    // Malformed and oversized frames get BadRequest; the connection keeps working.
    assert!(is_bad_request(
        &exchange(&conn_a, &[0, 0, 0, 3, 0xff, 0xff, 0xff]).await
    ));
    assert!(is_bad_request(
        &exchange(&conn_a, &[0xff, 0xff, 0xff, 0xff]).await
    ));
    assert!(is_bad_request(&exchange(&conn_a, &[0, 0, 0, 9, 1]).await));
    assert!(matches!(
        call(&conn_a, &Request::Heads { space: space(0) }).await,
        Response::HeadList { heads } if heads.len() == 1
    ));

    // Shutdown closes connections (ending the subscription) and returns cleanly.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert_eq!(read_frame(&mut sub_recv).await, None);
    let reason = conn_a.closed().await;
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
        "{reason:?}"
    );
}
