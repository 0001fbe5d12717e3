//! The [`RelayStore`] contract as a test suite, run against every store: the in-memory one here,
//! sled and PostgreSQL in `candor-tests` (`tests/tests/store_contract.rs`).
//!
//! Each check takes a fresh, empty store and panics on the first broken promise. [`run_all`]
//! runs them in turn. Compiled for this crate's tests and with the `contract-tests` feature.

use super::{Relay, RelayLimits, RelayStore, Session};
use crate::entry::{Class, Draft, Entry, PartnerSeen};
use crate::invite::{member_proof, InviteSecret};
use crate::keys::{DeviceSecrets, SpaceKey, AUTH_SIGNATURE_PREFIX};
use crate::payload::{kind, Payload, TextContent};
use crate::relay::{Rate, SpaceRecord};
use crate::wire::{auth_message, ErrorCode, MemberCard, PushOutcome, Request, Response};
use crate::{EntryHash, SpaceId};

/// The space every check uses.
pub const SPACE: SpaceId = SpaceId([7; 16]);
/// The TLS exporter value of every test session.
pub const EXPORTER: [u8; 32] = [42; 32];

/// Test device `n` (deterministic keys).
pub fn device(n: u8) -> DeviceSecrets {
    DeviceSecrets::from_seeds([n; 32], [n + 50; 32])
}

/// `d`'s member card for [`SPACE`] under `key`.
pub fn card(d: &DeviceSecrets, key: &SpaceKey) -> MemberCard {
    MemberCard {
        public: d.public(),
        proof: member_proof(key, &SPACE, &d.public()),
    }
}

/// An authenticated session of `d` on `relay`.
pub fn login<S: RelayStore>(relay: &Relay<S>, d: &DeviceSecrets) -> Session {
    let mut session = Session::new(EXPORTER);
    let Response::Challenge { nonce } = relay
        .handle_request(&mut session, Request::Hello { version: 1 }, [3; 32])
        .response
    else {
        panic!("expected a challenge");
    };
    let signature = d
        .sign(
            AUTH_SIGNATURE_PREFIX,
            &auth_message(&nonce, &EXPORTER, &d.device_key()),
        )
        .to_vec();
    let handled = relay.handle_request(
        &mut session,
        Request::Authenticate {
            device: d.device_key(),
            signature,
        },
        [0; 32],
    );
    assert!(
        matches!(handled.response, Response::Authenticated { .. }),
        "{:?}",
        handled.response
    );
    session
}

/// A note by `d` at `seq` after `prev` in [`SPACE`].
pub fn entry(d: &DeviceSecrets, key: &SpaceKey, seq: u64, prev: EntryHash, text: &str) -> Entry {
    let draft = Draft {
        class: Class::Shared,
        space: SPACE,
        seq,
        prev,
        time_ms: 1000 + seq,
        partner_seen: PartnerSeen::default(),
        nonce: [seq as u8; 24],
    };
    let payload = Payload::text(
        kind::NOTE,
        &TextContent {
            text: text.into(),
            replaces: None,
            original_time_ms: None,
            eta: None,
        },
    );
    Entry::seal(draft, &payload, key, d).unwrap_or_else(|e| panic!("sealing failed: {e}"))
}

/// `count` chained entries by `d`, starting at seq 0.
pub fn chain(d: &DeviceSecrets, key: &SpaceKey, count: u64, text: &str) -> Vec<Entry> {
    let mut prev = EntryHash::ZERO;
    (0..count)
        .map(|seq| {
            let e = entry(d, key, seq, prev, &format!("{text} {seq}"));
            prev = e.hash;
            e
        })
        .collect()
}

/// `store` behind a relay with `limits`, [`SPACE`] created by device 1 and joined by device 2,
/// both sessions' clocks at time 0.
pub fn paired_on<S: RelayStore>(
    store: S,
    limits: RelayLimits,
) -> (Relay<S>, Session, Session, SpaceKey) {
    paired_at(store, limits, 0)
}

/// [`paired_on`] with both sessions' clocks at `now_ms`.
pub fn paired_at<S: RelayStore>(
    store: S,
    limits: RelayLimits,
    now_ms: u64,
) -> (Relay<S>, Session, Session, SpaceKey) {
    let relay = Relay::with_limits(store, limits);
    let key = SpaceKey::from_bytes([9; 32]);
    let (a, b) = (device(1), device(2));
    let secret = InviteSecret([5; 32]);
    let mut sa = login(&relay, &a);
    sa.set_now(now_ms);
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
    sb.set_now(now_ms);
    let joined = relay.handle_request(
        &mut sb,
        Request::Join {
            space: SPACE,
            token: secret.token(),
            member: card(&b, &key),
        },
        [0; 32],
    );
    assert!(
        matches!(joined.response, Response::Joined { .. }),
        "{:?}",
        joined.response
    );
    (relay, sa, sb, key)
}

/// Pushes `entries` to [`SPACE`]; the response.
pub fn push_to<S: RelayStore>(relay: &Relay<S>, s: &mut Session, entries: &[&Entry]) -> Response {
    relay
        .handle_request(
            s,
            Request::Push {
                space: SPACE,
                entries: entries.iter().map(|e| e.to_bytes()).collect(),
            },
            [0; 32],
        )
        .response
}

fn stored_or_panic(response: Response) -> Vec<PushOutcome> {
    match response {
        Response::Pushed { outcomes } => outcomes,
        other => panic!("push refused: {other:?}"),
    }
}

fn len(e: &Entry) -> u64 {
    e.to_bytes().len() as u64
}

/// Runs every check, each on a store from `fresh`.
pub fn run_all<S: RelayStore>(fresh: impl Fn() -> S) {
    appends_read_back_in_cursor_order(fresh());
    space_records_replace_and_index_members(fresh());
    one_conflict_is_kept_per_seq_and_counted(fresh());
    conflicts_count_against_the_quota(fresh());
    conflicts_are_rate_limited(fresh());
}

/// Cursors start at 1 and rise by one; heads, hashes, usage and pages agree with the appends.
pub fn appends_read_back_in_cursor_order<S: RelayStore>(store: S) {
    let (relay, mut sa, mut sb, key) = paired_on(store, RelayLimits::default());
    let a = chain(&device(1), &key, 3, "a");
    let b = chain(&device(2), &key, 2, "b");
    let outcomes = stored_or_panic(push_to(&relay, &mut sa, &[&a[0], &a[1]]));
    assert_eq!(
        outcomes,
        vec![
            PushOutcome::Stored { cursor: 1 },
            PushOutcome::Stored { cursor: 2 }
        ]
    );
    let outcomes = stored_or_panic(push_to(&relay, &mut sb, &[&b[0], &b[1]]));
    assert_eq!(outcomes[1], PushOutcome::Stored { cursor: 4 });
    let outcomes = stored_or_panic(push_to(&relay, &mut sa, &[&a[1], &a[2]]));
    assert_eq!(
        outcomes,
        vec![PushOutcome::Duplicate, PushOutcome::Stored { cursor: 5 }]
    );
    let store = relay.store();
    let a_key = device(1).device_key();
    let head = store.head(&SPACE, &a_key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((head.count, head.hash), (3, a[2].hash));
    let heads = store.heads(&SPACE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heads.len(), 2);
    assert_eq!(
        store
            .hash_at(&SPACE, &a_key, 1)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(a[1].hash)
    );
    assert_eq!(
        store
            .hash_at(&SPACE, &a_key, 3)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    let total: u64 = a.iter().chain(&b).map(len).sum();
    assert_eq!(
        store.space_bytes(&SPACE).unwrap_or_else(|e| panic!("{e}")),
        total
    );
    let (page, more) = store.page(&SPACE, 1, 3).unwrap_or_else(|e| panic!("{e}"));
    let cursors: Vec<u64> = page.iter().map(|p| p.cursor).collect();
    assert_eq!(cursors, vec![2, 3, 4]);
    assert!(more);
    assert_eq!(page[0].entry, a[1].to_bytes());
    let (page, more) = store.page(&SPACE, 4, 10).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((page.len(), more), (1, false));
    let (page, _) = store
        .page(&SpaceId([1; 16]), 0, 10)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(page.is_empty());
}

/// `put_space` replaces the record and indexes its members for `spaces_of`.
pub fn space_records_replace_and_index_members<S: RelayStore>(store: S) {
    let key = SpaceKey::from_bytes([9; 32]);
    let (a, b) = (device(1), device(2));
    let mut record = SpaceRecord {
        members: vec![card(&a, &key)],
        invite_verifier: [1; 32],
        sealed_space_key: Some(vec![2; 40]),
        created_ms: 5,
    };
    assert_eq!(store.space(&SPACE).unwrap_or_else(|e| panic!("{e}")), None);
    store
        .put_space(&SPACE, &record)
        .unwrap_or_else(|e| panic!("{e}"));
    record.members.push(card(&b, &key));
    record.sealed_space_key = None;
    store
        .put_space(&SPACE, &record)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.space(&SPACE).unwrap_or_else(|e| panic!("{e}")),
        Some(record)
    );
    for d in [&a, &b] {
        assert_eq!(
            store
                .spaces_of(&d.device_key())
                .unwrap_or_else(|e| panic!("{e}")),
            vec![SPACE]
        );
    }
    assert!(store
        .spaces_of(&device(3).device_key())
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}

/// A second entry at a held seq is answered `Conflict` and kept once: later ones at that seq are
/// answered alike but not stored, and the kept one counts in `space_bytes`.
pub fn one_conflict_is_kept_per_seq_and_counted<S: RelayStore>(store: S) {
    let (relay, mut sa, _, key) = paired_on(store, RelayLimits::default());
    let a = device(1);
    let log = chain(&a, &key, 2, "a");
    stored_or_panic(push_to(&relay, &mut sa, &[&log[0], &log[1]]));
    let logged = len(&log[0]) + len(&log[1]);
    let fork = entry(&a, &key, 1, log[0].hash, "a fork");
    let other_fork = entry(&a, &key, 1, log[0].hash, "another fork");
    assert_eq!(
        stored_or_panic(push_to(&relay, &mut sa, &[&fork])),
        vec![PushOutcome::Conflict]
    );
    let store = relay.store();
    let author = a.device_key();
    assert_eq!(
        store
            .conflict_at(&SPACE, &author, 1)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(fork.hash)
    );
    assert_eq!(
        store.space_bytes(&SPACE).unwrap_or_else(|e| panic!("{e}")),
        logged + len(&fork)
    );
    for _ in 0..3 {
        assert_eq!(
            stored_or_panic(push_to(&relay, &mut sa, &[&other_fork, &fork])),
            vec![PushOutcome::Conflict, PushOutcome::Conflict]
        );
    }
    assert_eq!(
        store
            .conflict_at(&SPACE, &author, 1)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(fork.hash),
        "the first conflict stays the one kept"
    );
    assert_eq!(
        store.space_bytes(&SPACE).unwrap_or_else(|e| panic!("{e}")),
        logged + len(&fork),
        "conflicts not kept are not counted"
    );
    assert_eq!(
        store
            .conflict_at(&SPACE, &author, 0)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    // The kept conflict's own record: nothing in the log changed.
    assert_eq!(
        store
            .hash_at(&SPACE, &author, 1)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(log[1].hash)
    );
}

/// A conflict that would take the space over its quota is refused and not kept.
pub fn conflicts_count_against_the_quota<S: RelayStore>(store: S) {
    let key = SpaceKey::from_bytes([9; 32]);
    let a = device(1);
    let log = chain(&a, &key, 1, "a");
    let fork = entry(&a, &key, 0, EntryHash::ZERO, "a fork");
    let limits = RelayLimits {
        space_quota_bytes: len(&log[0]) + len(&fork) - 1,
        ..RelayLimits::default()
    };
    let (relay, mut sa, _, _) = paired_on(store, limits);
    stored_or_panic(push_to(&relay, &mut sa, &[&log[0]]));
    let refused = push_to(&relay, &mut sa, &[&fork]);
    assert!(
        matches!(
            refused,
            Response::Error {
                code: ErrorCode::QuotaExceeded,
                ..
            }
        ),
        "{refused:?}"
    );
    let store = relay.store();
    assert_eq!(
        store
            .conflict_at(&SPACE, &a.device_key(), 0)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    assert_eq!(
        store.space_bytes(&SPACE).unwrap_or_else(|e| panic!("{e}")),
        len(&log[0])
    );
}

/// Each conflict kept is charged to the pushing device's request rate: a push of many forks
/// stops, refused `RateLimited`, once the device's burst is spent.
pub fn conflicts_are_rate_limited<S: RelayStore>(store: S) {
    let limits = RelayLimits {
        // Pairing spends one request per device; this leaves each device 5.
        device_requests: Rate::new(1.0, 6),
        ..RelayLimits::default()
    };
    let (relay, mut sa, _, key) = paired_on(store, limits);
    let a = device(1);
    let log = chain(&a, &key, 8, "a");
    let all: Vec<&Entry> = log.iter().collect();
    stored_or_panic(push_to(&relay, &mut sa, &all));
    let forks: Vec<Entry> = log
        .iter()
        .map(|e| entry(&a, &key, e.header.seq, e.header.prev, "fork"))
        .collect();
    let forks: Vec<&Entry> = forks.iter().collect();
    // Two requests spent (pushes); three tokens left, so three conflicts are kept.
    let refused = push_to(&relay, &mut sa, &forks);
    assert!(
        matches!(
            refused,
            Response::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{refused:?}"
    );
    let store = relay.store();
    let kept = (0..8)
        .filter(|seq| {
            store
                .conflict_at(&SPACE, &a.device_key(), *seq)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some()
        })
        .count();
    assert_eq!(kept, 3);
}
