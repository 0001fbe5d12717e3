//! Unit tests of the relay logic over the in-memory store.

use super::memory::MemoryStore;
use super::*;
use crate::invite::InviteSecret;
use crate::keys::{DeviceSecrets, SpaceKey};

use super::contract::{card, device, entry, login, EXPORTER, SPACE};

/// A relay with a space created by device 1 and joined by device 2.
fn paired() -> (Relay<MemoryStore>, Session, Session, SpaceKey) {
    let relay = Relay::new(MemoryStore::default());
    let key = SpaceKey::from_bytes([9; 32]);
    let (a, b) = (device(1), device(2));
    let secret = InviteSecret([5; 32]);
    let mut sa = login(&relay, &a);
    let created = relay.handle_request(
        &mut sa,
        Request::CreateSpace {
            space: SPACE,
            invite_verifier: secret.verifier(),
            sealed_space_key: secret.seal_space_key(&SPACE, &key, [1; 24]),
            member: card(&a, &key),
        },
        [0; 32],
    );
    assert_eq!(created.response, Response::SpaceCreated);
    assert!(created.flush.is_some());
    let mut sb = login(&relay, &b);
    let joined = relay.handle_request(
        &mut sb,
        Request::Join {
            space: SPACE,
            token: secret.token(),
            member: card(&b, &key),
        },
        [0; 32],
    );
    let Response::Joined {
        sealed_space_key,
        members,
    } = joined.response
    else {
        panic!("join failed: {:?}", joined.response);
    };
    assert_eq!(
        secret.open_space_key(&SPACE, &sealed_space_key),
        Ok(key.clone())
    );
    assert_eq!(members.len(), 2);
    (relay, sa, sb, key)
}

/// Joins `SPACE` with the invite `paired` created (secret `[5; 32]`).
fn join_with_invite(
    relay: &Relay<MemoryStore>,
    session: &mut Session,
    d: &DeviceSecrets,
    key: &SpaceKey,
) -> Handled {
    relay.handle_request(
        session,
        Request::Join {
            space: SPACE,
            token: InviteSecret([5; 32]).token(),
            member: card(d, key),
        },
        [0; 32],
    )
}

fn push(relay: &Relay<MemoryStore>, s: &mut Session, entries: &[&Entry]) -> Vec<PushOutcome> {
    let handled = relay.handle_request(
        s,
        Request::Push {
            space: SPACE,
            entries: entries.iter().map(|e| e.to_bytes()).collect(),
        },
        [0; 32],
    );
    match handled.response {
        Response::Pushed { outcomes } => outcomes,
        other => panic!("push refused: {other:?}"),
    }
}

#[test]
fn requests_before_authentication_are_refused() {
    let relay = Relay::new(MemoryStore::default());
    let mut session = Session::new(EXPORTER);
    let handled = relay.handle_request(&mut session, Request::Heads { space: SPACE }, [0; 32]);
    assert!(matches!(
        handled.response,
        Response::Error {
            code: ErrorCode::NotAuthenticated,
            ..
        }
    ));
}

#[test]
fn challenge_response_is_bound_to_the_connection_and_used_once() {
    let relay = Relay::new(MemoryStore::default());
    let d = device(1);
    let mut session = Session::new(EXPORTER);
    let Response::Challenge { nonce } = relay
        .handle_request(&mut session, Request::Hello { version: 1 }, [3; 32])
        .response
    else {
        panic!()
    };
    // Signed for another connection's exporter: refused.
    let other = d.sign(
        AUTH_SIGNATURE_PREFIX,
        &auth_message(&nonce, &[0; 32], &d.device_key()),
    );
    let auth = |sig: [u8; 64]| Request::Authenticate {
        device: d.device_key(),
        signature: sig.to_vec(),
    };
    let r = relay
        .handle_request(&mut session, auth(other), [0; 32])
        .response;
    assert!(matches!(
        r,
        Response::Error {
            code: ErrorCode::AuthFailed,
            ..
        }
    ));
    // The challenge is consumed even by a failed attempt: a correct answer now is refused too.
    let good = d.sign(
        AUTH_SIGNATURE_PREFIX,
        &auth_message(&nonce, &EXPORTER, &d.device_key()),
    );
    let r = relay
        .handle_request(&mut session, auth(good), [0; 32])
        .response;
    assert!(matches!(
        r,
        Response::Error {
            code: ErrorCode::AuthFailed,
            ..
        }
    ));
    assert_eq!(session.device(), None);
}

#[test]
fn invite_works_once_and_changes_nothing_the_second_time() {
    let (relay, _, _, key) = paired();
    let before = relay.store().space(&SPACE).unwrap();
    let c = device(3);
    let mut sc = login(&relay, &c);
    let again = join_with_invite(&relay, &mut sc, &c, &key);
    assert!(matches!(
        again.response,
        Response::Error {
            code: ErrorCode::InviteUsed,
            ..
        }
    ));
    let wrong = relay.handle_request(
        &mut sc,
        Request::Join {
            space: SPACE,
            token: [0; 32],
            member: card(&c, &key),
        },
        [0; 32],
    );
    assert!(matches!(
        wrong.response,
        Response::Error {
            code: ErrorCode::InviteInvalid,
            ..
        }
    ));
    assert_eq!(relay.store().space(&SPACE).unwrap(), before);
}

#[test]
fn outsiders_cannot_read_or_write_a_space() {
    let (relay, mut sa, _, key) = paired();
    let outsider = device(3);
    let mut so = login(&relay, &outsider);
    for request in [
        Request::Heads { space: SPACE },
        Request::Members { space: SPACE },
        Request::Pull {
            space: SPACE,
            after: 0,
            limit: 10,
        },
        Request::Subscribe { space: SPACE },
        Request::Push {
            space: SPACE,
            entries: vec![entry(&outsider, &key, 0, EntryHash::ZERO, "x").to_bytes()],
        },
    ] {
        let r = relay.handle_request(&mut so, request, [0; 32]).response;
        assert!(
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::Forbidden,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    // A member cannot push entries authored by a non-member either.
    let outcomes = push(
        &relay,
        &mut sa,
        &[&entry(&outsider, &key, 0, EntryHash::ZERO, "x")],
    );
    assert!(matches!(outcomes[0], PushOutcome::Rejected { .. }));
}

#[test]
fn push_stores_in_order_dedupes_and_keeps_conflicts_as_evidence() {
    let (relay, mut sa, mut sb, key) = paired();
    let a = device(1);
    let e0 = entry(&a, &key, 0, EntryHash::ZERO, "zero");
    let e1 = entry(&a, &key, 1, e0.hash, "one");
    let gap = entry(&a, &key, 3, e1.hash, "three");
    let bad_prev = entry(&a, &key, 2, EntryHash([1; 32]), "two?");
    let handled = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes(), e1.to_bytes()],
        },
        [0; 32],
    );
    assert!(
        handled.flush.is_some(),
        "stored entries must be flushed before the ack"
    );
    assert_eq!(handled.notify, Some((SPACE, 2)));
    assert_eq!(
        push(&relay, &mut sa, &[&e0, &gap, &bad_prev]),
        vec![
            PushOutcome::Duplicate,
            PushOutcome::Rejected {
                reason: "seq gap: expected seq 2, got 3".into()
            },
            PushOutcome::Rejected {
                reason: "entry 2 does not chain to the entry before it".into()
            },
        ]
    );
    let fork = entry(&a, &key, 1, e0.hash, "another one");
    assert_eq!(push(&relay, &mut sa, &[&fork]), vec![PushOutcome::Conflict]);
    assert_eq!(relay.store().conflicts().len(), 1);
    let mut flipped = e1.to_bytes();
    flipped[300] ^= 1;
    let r = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![flipped],
        },
        [0; 32],
    );
    assert!(
        matches!(&r.response, Response::Pushed { outcomes } if matches!(outcomes[0], PushOutcome::Rejected { .. }))
    );

    // The partner pulls exactly the two stored entries, in order, in pages.
    let page = relay.handle_request(
        &mut sb,
        Request::Pull {
            space: SPACE,
            after: 0,
            limit: 1,
        },
        [0; 32],
    );
    let Response::Page { entries, more } = page.response else {
        panic!()
    };
    assert_eq!((entries.len(), more), (1, true));
    assert_eq!(entries[0].entry, e0.to_bytes());
    let page = relay.handle_request(
        &mut sb,
        Request::Pull {
            space: SPACE,
            after: 1,
            limit: 10,
        },
        [0; 32],
    );
    let Response::Page { entries, more } = page.response else {
        panic!()
    };
    assert_eq!((entries.len(), more), (1, false));
    assert_eq!(entries[0].entry, e1.to_bytes());
    let Response::HeadList { heads } = relay
        .handle_request(&mut sb, Request::Heads { space: SPACE }, [0; 32])
        .response
    else {
        panic!()
    };
    assert_eq!(
        heads,
        vec![(
            a.device_key(),
            LogHead {
                count: 2,
                hash: e1.hash
            }
        )]
    );
}

#[test]
fn pages_of_large_entries_fit_in_one_frame() {
    let (relay, mut sa, mut sb, key) = paired();
    let a = device(1);
    let big = "x".repeat(59_000);
    let mut prev = EntryHash::ZERO;
    let mut entries = Vec::new();
    for seq in 0..70 {
        let e = entry(&a, &key, seq, prev, &big);
        prev = e.hash;
        entries.push(e);
    }
    for chunk in entries.chunks(10) {
        let refs: Vec<&Entry> = chunk.iter().collect();
        assert!(push(&relay, &mut sa, &refs)
            .iter()
            .all(|o| matches!(o, PushOutcome::Stored { .. })));
    }
    let page = relay.handle_request(
        &mut sb,
        Request::Pull {
            space: SPACE,
            after: 0,
            limit: 512,
        },
        [0; 32],
    );
    let response = page.response;
    let frame = crate::wire::encode_frame(&response).expect("a page always fits in a frame");
    assert!(frame.len() <= crate::wire::MAX_FRAME);
    let Response::Page { entries: got, more } = response else {
        panic!()
    };
    assert!(more, "a cut page must say more entries follow");
    assert!(got.len() > 1 && got.len() < 70, "{}", got.len());
}

/// A store whose writes are durable only once flushed, like sled.
struct Flushed(MemoryStore);

impl RelayStore for Flushed {
    type Error = std::convert::Infallible;
    type SpaceLock<'a> = std::sync::MutexGuard<'a, ()>;
    fn lock_space(&self, space: &SpaceId) -> Result<Self::SpaceLock<'_>, Self::Error> {
        self.0.lock_space(space)
    }
    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, Self::Error> {
        self.0.space(space)
    }
    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), Self::Error> {
        self.0.put_space(space, record)
    }
    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, Self::Error> {
        self.0.spaces_of(device)
    }
    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, Self::Error> {
        self.0.head(space, author)
    }
    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, Self::Error> {
        self.0.heads(space)
    }
    fn space_bytes(&self, space: &SpaceId) -> Result<u64, Self::Error> {
        self.0.space_bytes(space)
    }
    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Self::Error> {
        self.0.hash_at(space, author, seq)
    }
    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, Self::Error> {
        self.0.append(space, entry, bytes)
    }
    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Self::Error> {
        self.0.conflict_at(space, author, seq)
    }
    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, Self::Error> {
        self.0.record_conflict(space, entry, bytes)
    }
    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), Self::Error> {
        self.0.page(space, after, limit)
    }
}

#[test]
fn entries_are_served_only_once_flushed() {
    let (memory_relay, _, _, key) = paired();
    let record = memory_relay.store().space(&SPACE).unwrap().unwrap();
    let relay = Relay::new(Flushed(MemoryStore::default()));
    relay.store().put_space(&SPACE, &record).unwrap();
    let (a, mut sa, mut sb) = (
        device(1),
        login(&relay, &device(1)),
        login(&relay, &device(2)),
    );
    let e0 = entry(&a, &key, 0, EntryHash::ZERO, "zero");
    let pushed = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes()],
        },
        [0; 32],
    );
    let ticket = pushed.flush.expect("a stored entry asks for a flush");
    let pull = |s: &mut Session| match relay
        .handle_request(
            s,
            Request::Pull {
                space: SPACE,
                after: 0,
                limit: 10,
            },
            [0; 32],
        )
        .response
    {
        Response::Page { entries, more } => (entries.len(), more),
        other => panic!("{other:?}"),
    };
    assert_eq!(pull(&mut sb), (0, false), "not served before the flush");
    // A retry before the flush completes is acknowledged only after a flush too.
    let retry = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes()],
        },
        [0; 32],
    );
    assert!(retry.flush.is_some());
    relay.flushed(ticket);
    assert_eq!(pull(&mut sb), (1, false), "served once flushed");
}

#[test]
fn a_lost_join_answer_can_be_retried_by_the_same_device_only() {
    let (relay, _, mut sb, key) = paired();
    let b = device(2);
    let again = join_with_invite(&relay, &mut sb, &b, &key);
    assert!(
        matches!(again.response, Response::Joined { .. }),
        "{:?}",
        again.response
    );
    // Once the joiner's first entry is stored, the sealed key is gone and a retry is refused.
    let e0 = entry(&b, &key, 0, EntryHash::ZERO, "hello");
    push(&relay, &mut sb, &[&e0]);
    assert_eq!(
        relay
            .store()
            .space(&SPACE)
            .unwrap()
            .unwrap()
            .sealed_space_key,
        None
    );
    let late = join_with_invite(&relay, &mut sb, &b, &key);
    assert!(matches!(
        late.response,
        Response::Error {
            code: ErrorCode::InviteUsed,
            ..
        }
    ));
}

/// Like [`paired`], but with `limits` and every session's clock at `now_ms`.
fn paired_with(limits: RelayLimits, now_ms: u64) -> (Relay<MemoryStore>, Session, SpaceKey) {
    let (relay, sa, _, key) = super::contract::paired_at(MemoryStore::default(), limits, now_ms);
    (relay, sa, key)
}

fn error_code(response: &Response) -> Option<(ErrorCode, String)> {
    match response {
        Response::Error { code, message } => Some((*code, message.clone())),
        _ => None,
    }
}

#[test]
fn invites_expire_after_the_configured_lifetime() {
    let limits = RelayLimits {
        invite_expiry_ms: 60_000,
        ..RelayLimits::default()
    };
    let relay = Relay::with_limits(MemoryStore::default(), limits);
    let key = SpaceKey::from_bytes([9; 32]);
    let (a, b) = (device(1), device(2));
    let secret = InviteSecret([5; 32]);
    let mut sa = login(&relay, &a);
    sa.set_now(1_000_000);
    let created = relay.handle_request(
        &mut sa,
        Request::CreateSpace {
            space: SPACE,
            invite_verifier: secret.verifier(),
            sealed_space_key: secret.seal_space_key(&SPACE, &key, [1; 24]),
            member: card(&a, &key),
        },
        [0; 32],
    );
    assert_eq!(created.response, Response::SpaceCreated);
    let mut sb = login(&relay, &b);
    sb.set_now(1_000_000 + 60_001);
    let join = Request::Join {
        space: SPACE,
        token: secret.token(),
        member: card(&b, &key),
    };
    let late = relay.handle_request(&mut sb, join.clone(), [0; 32]);
    let (code, message) = error_code(&late.response).unwrap();
    assert_eq!(code, ErrorCode::InviteExpired);
    assert!(message.contains("1 minute"), "{message}");
    assert_eq!(
        relay.store().space(&SPACE).unwrap().unwrap().members.len(),
        1
    );
    // Within the lifetime the same join works.
    sb.set_now(1_000_000 + 59_000);
    assert!(matches!(
        relay.handle_request(&mut sb, join, [0; 32]).response,
        Response::Joined { .. }
    ));
}

#[test]
fn device_request_rate_is_limited_and_recovers() {
    let limits = RelayLimits {
        device_requests: Rate::new(10.0, 5),
        ..RelayLimits::default()
    };
    // Pairing used one request of each device's burst.
    let (relay, mut sa, _) = paired_with(limits, 0);
    for _ in 0..4 {
        let r = relay.handle_request(&mut sa, Request::Heads { space: SPACE }, [0; 32]);
        assert!(matches!(r.response, Response::HeadList { .. }), "{r:?}");
    }
    let refused = relay.handle_request(&mut sa, Request::Heads { space: SPACE }, [0; 32]);
    let (code, message) = error_code(&refused.response).unwrap();
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(message.contains("retry in 100 ms"), "{message}");
    // The limit is per device: a second connection of the same device shares it.
    let mut again = login(&relay, &device(1));
    again.set_now(0);
    let refused = relay.handle_request(&mut again, Request::Heads { space: SPACE }, [0; 32]);
    assert_eq!(
        error_code(&refused.response).map(|(c, _)| c),
        Some(ErrorCode::RateLimited)
    );
    sa.set_now(100);
    let r = relay.handle_request(&mut sa, Request::Heads { space: SPACE }, [0; 32]);
    assert!(matches!(r.response, Response::HeadList { .. }));
}

#[test]
fn push_limits_name_the_limit() {
    let limits = RelayLimits {
        max_push_entries: 2,
        max_entry_bytes: 600,
        max_page_entries: 1,
        ..RelayLimits::default()
    };
    let (relay, mut sa, key) = paired_with(limits, 0);
    let a = device(1);
    let e0 = entry(&a, &key, 0, EntryHash::ZERO, "zero");
    let e1 = entry(&a, &key, 1, e0.hash, "one");
    let e2 = entry(&a, &key, 2, e1.hash, "two");
    let three = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes(), e1.to_bytes(), e2.to_bytes()],
        },
        [0; 32],
    );
    let (code, message) = error_code(&three.response).unwrap();
    assert_eq!(code, ErrorCode::LimitExceeded);
    assert!(message.contains("entries per push") && message.contains('2'));
    let big = entry(&a, &key, 0, EntryHash::ZERO, &"x".repeat(1000));
    let refused = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![big.to_bytes()],
        },
        [0; 32],
    );
    let (code, message) = error_code(&refused.response).unwrap();
    assert_eq!(code, ErrorCode::LimitExceeded);
    assert!(message.contains("entry size") && message.contains("600"));
    let ok = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes(), e1.to_bytes()],
        },
        [0; 32],
    );
    assert!(matches!(ok.response, Response::Pushed { .. }));
    // Pages are capped at the configured size.
    let page = relay.handle_request(
        &mut sa,
        Request::Pull {
            space: SPACE,
            after: 0,
            limit: 100,
        },
        [0; 32],
    );
    let Response::Page { entries, more } = page.response else {
        panic!("expected a page");
    };
    assert_eq!((entries.len(), more), (1, true));
}

#[test]
fn space_quota_refuses_what_does_not_fit_and_keeps_what_did() {
    let a = device(1);
    let key = SpaceKey::from_bytes([9; 32]);
    let e0 = entry(&a, &key, 0, EntryHash::ZERO, "zero");
    let e1 = entry(&a, &key, 1, e0.hash, "one");
    let e2 = entry(&a, &key, 2, e1.hash, "two");
    let quota = (e0.to_bytes().len() * 2) as u64;
    let limits = RelayLimits {
        space_quota_bytes: quota,
        ..RelayLimits::default()
    };
    let (relay, mut sa, _) = paired_with(limits, 0);
    let handled = relay.handle_request(
        &mut sa,
        Request::Push {
            space: SPACE,
            entries: vec![e0.to_bytes(), e1.to_bytes(), e2.to_bytes()],
        },
        [0; 32],
    );
    let (code, message) = error_code(&handled.response).unwrap();
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message.contains(&quota.to_string()), "{message}");
    // The two that fit are stored and announced.
    assert_eq!(handled.notify, Some((SPACE, 2)));
    assert_eq!(relay.store().space_bytes(&SPACE).unwrap(), quota);
    // Re-pushing them is still fine (duplicates take no room).
    assert_eq!(
        push(&relay, &mut sa, &[&e0, &e1]),
        vec![PushOutcome::Duplicate, PushOutcome::Duplicate]
    );
}

#[test]
fn join_and_create_answer_alike_for_a_missing_space_and_a_space_one_is_not_in() {
    let (relay, _, _, key) = paired();
    let outsider = device(3);
    let mut so = login(&relay, &outsider);
    let join = |so: &mut Session, space: SpaceId| {
        relay
            .handle_request(
                so,
                Request::Join {
                    space,
                    token: [0; 32],
                    member: card(&outsider, &key),
                },
                [0; 32],
            )
            .response
    };
    let existing = join(&mut so, SPACE);
    let missing = join(&mut so, SpaceId([8; 16]));
    assert!(matches!(
        existing,
        Response::Error {
            code: ErrorCode::InviteInvalid,
            ..
        }
    ));
    assert_eq!(existing, missing);
    // Creating over a taken id answers as any request about a space one is not in does.
    let secret = InviteSecret([6; 32]);
    let create = relay.handle_request(
        &mut so,
        Request::CreateSpace {
            space: SPACE,
            invite_verifier: secret.verifier(),
            sealed_space_key: secret.seal_space_key(&SPACE, &key, [1; 24]),
            member: card(&outsider, &key),
        },
        [0; 32],
    );
    let heads = relay.handle_request(&mut so, Request::Heads { space: SPACE }, [0; 32]);
    assert_eq!(create.response, heads.response);
    assert!(matches!(
        heads.response,
        Response::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
}

#[test]
fn the_creator_asking_again_gets_the_same_answer() {
    let relay = Relay::new(MemoryStore::default());
    let key = SpaceKey::from_bytes([9; 32]);
    let a = device(1);
    let secret = InviteSecret([5; 32]);
    let mut sa = login(&relay, &a);
    let create = || Request::CreateSpace {
        space: SPACE,
        invite_verifier: secret.verifier(),
        sealed_space_key: secret.seal_space_key(&SPACE, &key, [1; 24]),
        member: card(&a, &key),
    };
    for _ in 0..2 {
        let created = relay.handle_request(&mut sa, create(), [0; 32]);
        assert_eq!(created.response, Response::SpaceCreated);
    }
}

#[test]
fn the_memory_store_keeps_the_store_contract() {
    super::contract::run_all(MemoryStore::default);
}
