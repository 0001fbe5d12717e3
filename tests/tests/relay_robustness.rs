//! A live `candor-relay` under bad input: random bytes, truncated frames, oversized length
//! prefixes, unknown message types, a challenge response replayed from another connection, and a
//! flood of stalled large frames — from unauthenticated and authenticated connections — while two
//! honest devices keep syncing. The relay must refuse each clearly, keep its memory bounded, and
//! never stop serving.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use anyhow::Result;
use candor_shared::invite::{InviteSecret, RelayFingerprint};
use candor_shared::keys::{DeviceSecrets, AUTH_SIGNATURE_PREFIX};
use candor_shared::wire::{
    auth_message, decode_body, encode_frame, frame_len, ErrorCode, MemberCard, PushOutcome,
    Request, Response, MAX_FRAME, TLS_EXPORTER_LABEL,
};
use candor_shared::SpaceId;
use candor_tests::{Device, Relay};
use std::net::SocketAddr;
use std::time::Duration;

struct Raw {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
}

impl Raw {
    fn new(relay: &Relay) -> Self {
        let fingerprint = RelayFingerprint::parse(&relay.fingerprint).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint
            .set_default_client_config(candor::net::pinned_client_config(&fingerprint).unwrap());
        Self {
            endpoint,
            addr: relay.addr.parse().unwrap(),
        }
    }

    async fn connect(&self) -> quinn::Connection {
        self.endpoint
            .connect(self.addr, "candor-relay")
            .unwrap()
            .await
            .unwrap()
    }
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Option<Response> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.ok()?;
    let mut body = vec![0u8; frame_len(prefix).ok()?];
    recv.read_exact(&mut body).await.ok()?;
    decode_body(&body).ok()
}

/// Sends raw bytes on a new stream (then finishes it) and reads the one answer.
async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    read_frame(&mut recv).await.expect("the relay answers")
}

async fn call(conn: &quinn::Connection, request: &Request) -> Response {
    exchange(conn, &encode_frame(request).unwrap()).await
}

fn exporter(conn: &quinn::Connection) -> [u8; 32] {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, TLS_EXPORTER_LABEL, b"")
        .unwrap();
    out
}

async fn challenge(conn: &quinn::Connection) -> [u8; 32] {
    match call(conn, &Request::Hello { version: 1 }).await {
        Response::Challenge { nonce } => nonce,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn authenticate(d: &DeviceSecrets, nonce: &[u8; 32], exporter: &[u8; 32]) -> Request {
    Request::Authenticate {
        device: d.device_key(),
        signature: d
            .sign(
                AUTH_SIGNATURE_PREFIX,
                &auth_message(nonce, exporter, &d.device_key()),
            )
            .to_vec(),
    }
}

async fn login(conn: &quinn::Connection, d: &DeviceSecrets) {
    let nonce = challenge(conn).await;
    let answer = call(conn, &authenticate(d, &nonce, &exporter(conn))).await;
    assert!(
        matches!(answer, Response::Authenticated { .. }),
        "{answer:?}"
    );
}

#[track_caller]
fn assert_refused(response: &Response, code: ErrorCode, says: &str) {
    match response {
        Response::Error { code: got, message } => {
            assert_eq!(*got, code, "{message}");
            assert!(
                message.contains(says),
                "expected {says:?} in the refusal, got {message:?}"
            );
        }
        other => panic!("expected a {code:?} refusal, got {other:?}"),
    }
}

/// Bad input every connection (authenticated or not) may send; each must be refused clearly.
async fn garbage(conn: &quinn::Connection, seed: u64) {
    let mut x = seed | 1;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    // Random bytes after a plausible small length prefix.
    for _ in 0..5 {
        let body = random(40);
        let frame = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
        let answer = exchange(conn, &frame).await;
        assert!(
            matches!(
                answer,
                Response::Error {
                    code: ErrorCode::BadRequest,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    // Pure random bytes (the prefix too).
    let answer = exchange(conn, &random(300)).await;
    assert!(matches!(answer, Response::Error { .. }), "{answer:?}");
    // A truncated frame.
    let hello = encode_frame(&Request::Hello { version: 1 }).unwrap();
    let answer = exchange(conn, &hello[..hello.len() - 1]).await;
    assert_refused(&answer, ErrorCode::BadRequest, "stream ended after");
    // A length prefix beyond the protocol's maximum.
    let answer = exchange(conn, &u32::MAX.to_be_bytes()).await;
    assert_refused(&answer, ErrorCode::BadRequest, "exceeds the limit");
    let answer = exchange(conn, &((MAX_FRAME + 1) as u32).to_be_bytes()).await;
    assert_refused(&answer, ErrorCode::BadRequest, "exceeds the limit");
    // An unknown message type (postcard enum index 42).
    let answer = exchange(conn, &[0, 0, 0, 1, 42]).await;
    assert_refused(&answer, ErrorCode::BadRequest, "malformed");
    // A known type with trailing bytes.
    let mut trailing = encode_frame(&Request::Hello { version: 1 }).unwrap();
    trailing.push(0);
    trailing[3] += 1;
    let answer = exchange(conn, &trailing).await;
    assert_refused(&answer, ErrorCode::BadRequest, "trailing");
}

#[derive(Default)]
struct Floods {
    streams: Vec<(quinn::SendStream, quinn::RecvStream)>,
    conns: Vec<quinn::Connection>,
}

impl Floods {
    fn push_conn(&mut self, conn: quinn::Connection) {
        self.conns.push(conn);
    }
}

fn relay_rss_mib(relay: &Relay) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", relay.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// An honest entry goes from Alex to Sam's running watcher.
fn honest_round(alex: &Device, sam_watch: &candor_tests::Watch, text: &str) -> Result<()> {
    alex.ok(&["log", "add", text])?;
    alex.ok(&["sync"])?;
    sam_watch.wait_pulled()?;
    Ok(())
}

#[test]
fn relay_survives_bad_input_and_keeps_serving_honest_devices() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let alex = Device::init(tmp.path(), "Alex")?;
    let sam = Device::init(tmp.path(), "Sam")?;
    let invite = alex.create_space(&relay)?;
    sam.ok(&["space", "join", &invite])?;
    alex.ok(&["sync"])?;
    let sam_watch = sam.watch()?;
    honest_round(&alex, &sam_watch, "before the storm")?;
    let rss_before = relay_rss_mib(&relay);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let raw = runtime.block_on(async { Raw::new(&relay) });

    // Unauthenticated connections.
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let conn = raw.connect().await;
            garbage(&conn, 1).await;
            // Requests that need a session.
            let answer = call(
                &conn,
                &Request::Heads {
                    space: SpaceId([1; 16]),
                },
            )
            .await;
            assert_refused(&answer, ErrorCode::NotAuthenticated, "authenticate first");
            // Authenticate without a challenge.
            let mallory = DeviceSecrets::from_seeds([66; 32], [67; 32]);
            let answer = call(&conn, &authenticate(&mallory, &[0; 32], &exporter(&conn))).await;
            assert_refused(&answer, ErrorCode::AuthFailed, "no challenge outstanding");
            // A large frame before authenticating is refused from its prefix alone.
            let answer = exchange(&conn, &(64 * 1024u32).to_be_bytes()).await;
            assert_refused(&answer, ErrorCode::BadRequest, "authenticate before");

            // A challenge response replayed on another connection fails: it is bound to the
            // connection's TLS session.
            let victim = DeviceSecrets::from_seeds([70; 32], [71; 32]);
            let first = raw.connect().await;
            let nonce = challenge(&first).await;
            let response = authenticate(&victim, &nonce, &exporter(&first));
            let second = raw.connect().await;
            let _ = challenge(&second).await;
            let answer = call(&second, &response).await;
            assert_refused(&answer, ErrorCode::AuthFailed, "does not verify");
            // The original still works once, and replaying it on its own connection does not.
            assert!(matches!(
                call(&first, &response).await,
                Response::Authenticated { .. }
            ));
            let answer = call(&first, &response).await;
            assert_refused(&answer, ErrorCode::AuthFailed, "no challenge outstanding");
            // Even with the nonce of the second connection, the exporter differs.
            let answer = call(&second, &authenticate(&victim, &nonce, &exporter(&first))).await;
            assert_refused(&answer, ErrorCode::AuthFailed, "");
            for conn in [conn, first, second] {
                conn.close(0u32.into(), b"done");
            }
        })
        .await
    })?;
    honest_round(&alex, &sam_watch, "after unauthenticated garbage")?;

    // Authenticated connections.
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let eve = DeviceSecrets::from_seeds([80; 32], [81; 32]);
            let conn = raw.connect().await;
            login(&conn, &eve).await;
            garbage(&conn, 2).await;
            // Eve's own space, to push garbage into.
            let space = SpaceId([9; 16]);
            let secret = InviteSecret([10; 32]);
            let created = call(
                &conn,
                &Request::CreateSpace {
                    space,
                    invite_verifier: secret.verifier(),
                    sealed_space_key: vec![0; 72],
                    member: MemberCard {
                        public: eve.public(),
                        proof: [0; 32],
                    },
                },
            )
            .await;
            assert_eq!(created, Response::SpaceCreated);
            let pushed = call(
                &conn,
                &Request::Push {
                    space,
                    entries: vec![vec![1; 300], vec![], vec![0xff; 262]],
                },
            )
            .await;
            let Response::Pushed { outcomes } = pushed else {
                panic!("{pushed:?}");
            };
            assert!(outcomes
                .iter()
                .all(|o| matches!(o, PushOutcome::Rejected { .. })));
            // Over the limits: entries per push, entry size.
            let answer = call(
                &conn,
                &Request::Push {
                    space,
                    entries: vec![vec![0; 10]; 257],
                },
            )
            .await;
            assert_refused(&answer, ErrorCode::LimitExceeded, "entries per push");
            let answer = call(
                &conn,
                &Request::Push {
                    space,
                    entries: vec![vec![0; 70_000]],
                },
            )
            .await;
            assert_refused(&answer, ErrorCode::LimitExceeded, "entry size");
            // Someone else's space: the same answer whether or not it exists.
            let answer = call(
                &conn,
                &Request::Heads {
                    space: SpaceId([1; 16]),
                },
            )
            .await;
            assert_refused(&answer, ErrorCode::Forbidden, "not a member");

            // Memory stays bounded: several authenticated connections each open many streams that
            // announce maximum-size frames and stall after a little of the body.
            let mut floods = Floods::default();
            for i in 0..6u8 {
                let conn = raw.connect().await;
                login(
                    &conn,
                    &DeviceSecrets::from_seeds([90 + i; 32], [100 + i; 32]),
                )
                .await;
                for _ in 0..32 {
                    let (mut send, recv) = conn.open_bi().await.unwrap();
                    let mut frame = (MAX_FRAME as u32).to_be_bytes().to_vec();
                    frame.extend(std::iter::repeat_n(7u8, 256 * 1024));
                    // The relay's flow control may stop us; a stalled write is the point.
                    let _ = tokio::time::timeout(Duration::from_millis(50), send.write_all(&frame))
                        .await;
                    floods.streams.push((send, recv));
                }
                floods.push_conn(conn);
            }
            drop(floods);
            conn.close(0u32.into(), b"done");
        })
        .await
    })?;
    let rss_after = relay_rss_mib(&relay);
    assert!(
        rss_after < rss_before + 150.0,
        "relay memory grew from {rss_before:.1} MiB to {rss_after:.1} MiB"
    );
    honest_round(&alex, &sam_watch, "after authenticated garbage")?;

    // Everything honest arrived, in order, and verifies.
    let texts = sam.texts()?;
    assert_eq!(
        texts,
        [
            "before the storm",
            "after unauthenticated garbage",
            "after authenticated garbage"
        ]
    );
    sam_watch.stop();
    sam.ok(&["verify"])?;
    Ok(())
}
