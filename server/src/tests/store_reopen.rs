//! Everything the relay stored survives closing and reopening the database.

use super::fixtures::{chain, create_space, device, join, login, space};
use crate::store::{SledStore, StoreError};
use candor_shared::relay::{Relay, RelayStore};
use candor_shared::wire::{PushOutcome, Request, Response};

fn push(relay: &Relay<SledStore>, who: u8, entries: Vec<Vec<u8>>) -> Vec<PushOutcome> {
    let mut session = login(relay, &device(who));
    let handled = relay.handle_request(
        &mut session,
        Request::Push {
            space: space(0),
            entries,
        },
        [0; 32],
    );
    match handled.response {
        Response::Pushed { outcomes } => outcomes,
        other => panic!("push refused: {other:?}"),
    }
}

#[tokio::test]
async fn reopened_database_has_everything_and_cursors_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let (a, b) = (device(0), device(1));
    let chain_a = chain(&a, 0, 3);
    let chain_b = chain(&b, 0, 2);
    let record = {
        let relay = Relay::new(SledStore::open(&path).unwrap());
        let mut sa = login(&relay, &a);
        let created = relay.handle_request(&mut sa, create_space(&a, 0), [0; 32]);
        assert_eq!(created.response, Response::SpaceCreated);
        let mut sb = login(&relay, &b);
        let joined = relay.handle_request(&mut sb, join(&b, 0, true), [0; 32]);
        assert!(matches!(joined.response, Response::Joined { .. }));
        let outcomes = push(
            &relay,
            0,
            chain_a[..2].iter().map(|e| e.to_bytes()).collect(),
        );
        assert_eq!(
            outcomes,
            vec![
                PushOutcome::Stored { cursor: 1 },
                PushOutcome::Stored { cursor: 2 }
            ]
        );
        let outcomes = push(&relay, 1, vec![chain_b[0].to_bytes()]);
        assert_eq!(outcomes, vec![PushOutcome::Stored { cursor: 3 }]);
        relay.store().flush().await.unwrap();
        relay.store().space(&space(0)).unwrap().unwrap()
    };

    let relay = Relay::new(SledStore::open(&path).unwrap());
    let store = relay.store();
    assert_eq!(store.space(&space(0)).unwrap(), Some(record));
    assert_eq!(store.spaces_of(&a.device_key()).unwrap(), vec![space(0)]);
    assert_eq!(store.spaces_of(&b.device_key()).unwrap(), vec![space(0)]);
    let heads = store.heads(&space(0)).unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(store.head(&space(0), &a.device_key()).unwrap().count, 2);
    assert_eq!(
        store.head(&space(0), &a.device_key()).unwrap().hash,
        chain_a[1].hash
    );
    assert_eq!(
        store.hash_at(&space(0), &b.device_key(), 0).unwrap(),
        Some(chain_b[0].hash)
    );
    let (page, more) = store.page(&space(0), 0, 10).unwrap();
    assert!(!more);
    let cursors: Vec<u64> = page.iter().map(|p| p.cursor).collect();
    assert_eq!(cursors, vec![1, 2, 3]);
    assert_eq!(page[2].entry, chain_b[0].to_bytes());

    // New entries get new cursors; re-pushed ones are recognised as held.
    let outcomes = push(&relay, 0, chain_a.iter().map(|e| e.to_bytes()).collect());
    assert_eq!(
        outcomes,
        vec![
            PushOutcome::Duplicate,
            PushOutcome::Duplicate,
            PushOutcome::Stored { cursor: 4 }
        ]
    );
    let outcomes = push(&relay, 1, vec![chain_b[1].to_bytes()]);
    assert_eq!(outcomes, vec![PushOutcome::Stored { cursor: 5 }]);
    let (page, more) = store.page(&space(0), 3, 1).unwrap();
    assert_eq!((page[0].cursor, more), (4, true));
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledStore::from_db(db.clone()).unwrap();
    db.open_tree("spaces")
        .unwrap()
        .insert(space(0).0, &b"\xff\xff\xff"[..])
        .unwrap();
    let mut key = space(0).0.to_vec();
    key.extend_from_slice(&device(0).device_key().0);
    db.open_tree("heads")
        .unwrap()
        .insert(&key, &b"\xff"[..])
        .unwrap();
    db.open_tree("entries")
        .unwrap()
        .insert([&space(1).0[..], &[0xff]].concat(), &b"short key"[..])
        .unwrap();
    assert!(matches!(
        store.space(&space(0)),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.heads(&space(0)),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.page(&space(1), 0, 10),
        Err(StoreError::Corrupt { .. })
    ));
    // The relay turns such errors into an `Internal` answer.
    let relay = Relay::new(store);
    let mut session = login(&relay, &device(0));
    let handled = relay.handle_request(&mut session, Request::Members { space: space(0) }, [0; 32]);
    assert!(matches!(
        handled.response,
        Response::Error {
            code: candor_shared::wire::ErrorCode::Internal,
            ..
        }
    ));
}

#[test]
fn legacy_space_records_still_decode_and_usage_counts_appends() {
    #[derive(serde::Serialize)]
    struct Legacy {
        members: Vec<candor_shared::wire::MemberCard>,
        invite_verifier: [u8; 32],
        sealed_space_key: Option<Vec<u8>>,
    }
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledStore::from_db(db.clone()).unwrap();
    let member = super::fixtures::card(&device(0));
    let legacy = postcard::to_stdvec(&Legacy {
        members: vec![member],
        invite_verifier: [3; 32],
        sealed_space_key: Some(vec![1, 2, 3]),
    })
    .unwrap();
    db.open_tree("spaces")
        .unwrap()
        .insert(space(0).0, legacy)
        .unwrap();
    let record = store.space(&space(0)).unwrap().unwrap();
    assert_eq!(record.members, vec![member]);
    assert_eq!(record.created_ms, 0);
    assert_eq!(record.sealed_space_key, Some(vec![1, 2, 3]));

    let relay = Relay::new(store);
    let entries: Vec<Vec<u8>> = chain(&device(0), 0, 3)
        .iter()
        .map(|e| e.to_bytes())
        .collect();
    let total: usize = entries.iter().map(Vec::len).sum();
    let outcomes = push(&relay, 0, entries);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, PushOutcome::Stored { .. })));
    assert_eq!(relay.store().space_bytes(&space(0)).unwrap(), total as u64);
}
