//! The relay's limits on peers that have not authenticated: the authentication deadline, the
//! small frame cap, the stream and body budgets, and the per-address connection cap — while
//! honest devices keep working throughout.

use super::fixtures::{create_space, device, space};
use super::quic::{call, client_endpoint, connect, exchange, is_bad_request, login, read_frame};
use crate::data::DataDir;
use crate::service::{self, AddressTable, Gate, Limits};
use candor_shared::wire::{encode_frame, ErrorCode, Request, Response, MAX_FRAME};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound on each test; nothing in them waits on a timer except the auth deadline.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A relay serving on 127.0.0.1 with `limits`, stopped (and checked) by [`Server::stop`].
struct Server {
    addr: SocketAddr,
    client: quinn::Endpoint,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start(limits: Limits) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::create(tmp.path().join("data")).unwrap();
        let bound = service::bind("127.0.0.1:0".parse().unwrap(), &data).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service::run(bound.endpoint, bound.relay, limits, async {
            let _ = stopped.await;
        }));
        Self {
            addr: bound.local_addr,
            client: client_endpoint(bound.fingerprint.0),
            stop,
            task,
            _tmp: tmp,
        }
    }

    async fn connect(&self) -> quinn::Connection {
        connect(&self.client, self.addr).await
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// An authenticated device with its space, as an honest user of the relay.
async fn honest_device(server: &Server) -> quinn::Connection {
    let conn = server.connect().await;
    login(&conn, &device(0)).await;
    assert_eq!(
        call(&conn, &create_space(&device(0), 0)).await,
        Response::SpaceCreated
    );
    conn
}

/// The honest device still gets answers.
async fn assert_serves(conn: &quinn::Connection) {
    assert!(conn.close_reason().is_none());
    assert!(matches!(
        call(conn, &Request::Heads { space: space(0) }).await,
        Response::HeadList { .. }
    ));
}

fn is_challenge(response: &Response) -> bool {
    matches!(response, Response::Challenge { .. })
}

/// A frame prefix announcing `len` body bytes.
fn prefix(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap().to_be_bytes()
}

#[tokio::test]
async fn unauthenticated_connections_are_closed_at_the_deadline() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = Server::start(Limits {
            auth_deadline: Duration::from_secs(1),
            ..Limits::default()
        });
        // Accepted first, so its own deadline passes before the others'.
        let honest = honest_device(&server).await;
        let idle = server.connect().await;
        // Answering a challenge is not authenticating; keep-alives do not help either.
        let hello_only = server.connect().await;
        assert!(is_challenge(
            &call(&hello_only, &Request::Hello { version: 1 }).await
        ));

        for conn in [&idle, &hello_only] {
            match conn.closed().await {
                quinn::ConnectionError::ApplicationClosed(close) => {
                    assert_eq!(close.error_code, service::CLOSE_NOT_AUTHENTICATED.into());
                    assert_eq!(&close.reason[..], b"not authenticated in time");
                }
                other => panic!("closed for another reason: {other:?}"),
            }
        }
        assert_serves(&honest).await;
        server.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn large_frames_before_authentication_are_refused_from_their_prefix() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = Server::start(Limits::default());
        let honest = honest_device(&server).await;
        let conn = server.connect().await;

        // A 2 MiB prefix and nothing else: the relay answers at once and finishes the stream,
        // without waiting for (or allocating) the body.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&prefix(2 * 1024 * 1024)).await.unwrap();
        assert_eq!(
            read_frame(&mut recv).await,
            Some(Response::Error {
                code: ErrorCode::BadRequest,
                message: service::UNAUTHENTICATED_FRAME_MESSAGE.to_owned(),
            })
        );
        assert_eq!(read_frame(&mut recv).await, None, "the stream is finished");
        drop((send, recv));
        assert_serves(&honest).await;

        // Just over the cap is refused the same way; at the cap the body is read (and here
        // fails to decode, with another message).
        let over = exchange(&conn, &prefix(service::MAX_UNAUTHENTICATED_FRAME + 1)).await;
        assert!(
            matches!(&over, Response::Error { code: ErrorCode::BadRequest, message }
                if message == service::UNAUTHENTICATED_FRAME_MESSAGE),
            "{over:?}"
        );
        let mut at_cap = prefix(service::MAX_UNAUTHENTICATED_FRAME).to_vec();
        at_cap.resize(4 + service::MAX_UNAUTHENTICATED_FRAME, 0);
        let at_cap = exchange(&conn, &at_cap).await;
        assert!(
            matches!(&at_cap, Response::Error { code: ErrorCode::BadRequest, message }
                if message != service::UNAUTHENTICATED_FRAME_MESSAGE),
            "{at_cap:?}"
        );

        // The connection still serves a normal Hello, and the device can log in on it.
        assert!(is_challenge(
            &call(&conn, &Request::Hello { version: 1 }).await
        ));
        login(&conn, &device(1)).await;

        // Authenticated, a large frame is read in full (it needs the raised receive window and
        // the body budget) and only then judged: 2 MiB of zeros is a Hello with trailing bytes.
        let mut large = prefix(2 * 1024 * 1024).to_vec();
        large.resize(4 + 2 * 1024 * 1024, 0);
        let large = exchange(&conn, &large).await;
        assert!(
            matches!(&large, Response::Error { code: ErrorCode::BadRequest, message }
                if message != service::UNAUTHENTICATED_FRAME_MESSAGE),
            "{large:?}"
        );
        assert!(matches!(
            call(&conn, &Request::Heads { space: space(0) }).await,
            Response::Error {
                code: ErrorCode::Forbidden,
                ..
            }
        ));
        assert_serves(&honest).await;
        server.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[test]
fn hello_and_authenticate_fit_under_the_unauthenticated_frame_cap() {
    let d = device(0);
    for request in [
        Request::Hello { version: 1 },
        Request::Authenticate {
            device: d.device_key(),
            signature: vec![0xff; 64],
        },
    ] {
        let frame = encode_frame(&request).unwrap();
        assert!(frame.len() - 4 <= service::MAX_UNAUTHENTICATED_FRAME / 4);
    }
}

#[tokio::test]
async fn one_address_cannot_fill_the_connection_slots() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let server = Server::start(Limits {
            connections_per_ip: 2,
            ..Limits::default()
        });
        let honest = honest_device(&server).await;
        let other = server.connect().await;
        let refused = server
            .client
            .connect(server.addr, crate::tls::SERVER_NAME)
            .unwrap()
            .await;
        // The refused connection is told why: closed with the limit named in the reason.
        let closed = match refused {
            Ok(conn) => conn.closed().await,
            Err(e) => e,
        };
        assert!(
            matches!(
                &closed,
                quinn::ConnectionError::ApplicationClosed(close)
                    if close.error_code == service::CLOSE_LIMIT.into()
                        && String::from_utf8_lossy(&close.reason)
                            .contains("2 connections from one address")
            ),
            "{closed:?}"
        );
        // The connections already open are unaffected.
        assert_serves(&honest).await;
        assert!(is_challenge(
            &call(&other, &Request::Hello { version: 1 }).await
        ));
        server.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[test]
fn addresses_are_counted_per_host_and_released() {
    let table = Arc::new(AddressTable::default());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let first = table.claim(ip("192.0.2.1"), 2).unwrap();
    // The same IPv4 address arriving IPv4-mapped on a dual-stack socket.
    let second = table.claim(ip("::ffff:192.0.2.1"), 2).unwrap();
    assert!(table.claim(ip("192.0.2.1"), 2).is_none());
    assert!(table.claim(ip("192.0.2.2"), 2).is_some());
    drop(first);
    let third = table.claim(ip("192.0.2.1"), 2).unwrap();
    drop((second, third));
    assert_eq!(table.open(ip("192.0.2.1")), 0);

    // IPv6: one /64 is one host.
    let _a = table.claim(ip("2001:db8::1"), 1).unwrap();
    assert!(table.claim(ip("2001:db8::ffff:2"), 1).is_none());
    assert!(table.claim(ip("2001:db8:0:1::1"), 1).is_some());
    assert!(table.claim(ip("198.51.100.7"), 0).is_none());
    assert_eq!(table.open(ip("198.51.100.7")), 0);
}

/// Polls `future` once (nothing here needs waking: every test drives its futures by hand).
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn unauthenticated_streams_wait_for_a_slot_or_authentication() {
    let gate = Gate::new(&Limits::default());
    assert_eq!(service::MAX_UNAUTHENTICATED_STREAMS, 2);
    let first = gate.admit_stream().await;
    let second = gate.admit_stream().await;
    assert!(first.is_some() && second.is_some());

    let mut third = pin!(gate.admit_stream());
    assert!(poll_once(third.as_mut()).is_pending());
    drop(first);
    let Poll::Ready(third) = poll_once(third.as_mut()) else {
        panic!("a finished stream frees its slot");
    };
    assert!(third.is_some());

    let mut fourth = pin!(gate.admit_stream());
    assert!(poll_once(fourth.as_mut()).is_pending());
    assert!(gate.refuses_frame(service::MAX_UNAUTHENTICATED_FRAME + 1));
    assert!(!gate.refuses_frame(service::MAX_UNAUTHENTICATED_FRAME));

    // Authentication lets waiting and new streams through, without a slot, and lifts the cap.
    assert!(gate.mark_authenticated());
    assert!(!gate.mark_authenticated());
    assert!(matches!(poll_once(fourth.as_mut()), Poll::Ready(None)));
    assert!(gate.admit_stream().await.is_none());
    assert!(!gate.refuses_frame(MAX_FRAME));
}

#[tokio::test]
async fn request_bodies_share_a_per_connection_budget() {
    let gate = Gate::new(&Limits::default());
    assert_eq!(service::MAX_BUFFERED_REQUEST_BYTES, 2 * MAX_FRAME);
    let first = gate.reserve_body(MAX_FRAME).await.unwrap();
    let _second = gate.reserve_body(MAX_FRAME).await.unwrap();
    let mut third = pin!(gate.reserve_body(1));
    assert!(poll_once(third.as_mut()).is_pending());
    drop(first);
    assert!(matches!(poll_once(third.as_mut()), Poll::Ready(Some(_))));

    // A frame larger than the whole budget waits for all of it rather than forever.
    let small = Gate::new(&Limits {
        buffered_request_bytes: 10,
        ..Limits::default()
    });
    let whole = small.reserve_body(100).await.unwrap();
    let mut next = pin!(small.reserve_body(0));
    assert!(poll_once(next.as_mut()).is_ready());
    let mut one = pin!(small.reserve_body(1));
    assert!(poll_once(one.as_mut()).is_pending());
    drop(whole);
    assert!(poll_once(one.as_mut()).is_ready());
}

#[tokio::test]
async fn request_bodies_of_all_connections_share_a_relay_budget() {
    let big = service::SMALL_REQUEST_BYTES + 1;
    let limits = Limits {
        buffered_request_bytes: 2 * big,
        relay_buffered_bytes: 3 * big,
        ..Limits::default()
    };
    let budget = service::relay_budget(&limits);
    let (a, b) = (
        Gate::with_budget(&limits, budget.clone()),
        Gate::with_budget(&limits, budget),
    );
    let held = a.reserve_body(2 * big).await.unwrap();
    // Small bodies do not wait for the relay budget.
    assert!(b.reserve_body(service::SMALL_REQUEST_BYTES).await.is_some());
    // B's own budget has room, the relay's does not: B waits until A's body is handled.
    let mut waiting = pin!(b.reserve_body(2 * big));
    assert!(poll_once(waiting.as_mut()).is_pending());
    drop(held);
    assert!(matches!(poll_once(waiting.as_mut()), Poll::Ready(Some(_))));
}

#[test]
fn production_limits_are_the_documented_constants() {
    let limits = Limits::default();
    assert_eq!(limits.auth_deadline, Duration::from_secs(10));
    assert_eq!(limits.unauthenticated_frame, 1024);
    assert_eq!(limits.unauthenticated_streams, 2);
    assert_eq!(limits.buffered_request_bytes, 8 * 1024 * 1024);
    assert_eq!(limits.relay_buffered_bytes, 64 * 1024 * 1024);
    assert_eq!(limits.connections, service::MAX_CONNECTIONS);
    assert_eq!(limits.connections_per_ip, 64);
    assert_eq!(
        service::NOT_AUTHENTICATED_REASON,
        b"not authenticated in time"
    );
    assert!(is_bad_request(&Response::error(
        ErrorCode::BadRequest,
        service::UNAUTHENTICATED_FRAME_MESSAGE
    )));
}
