//! The store: chains, sealing, bundles, pages, checkpoints, adoption after a restore.

use super::*;
use candor_shared::payload::{kind, TextContent};

fn test_key() -> Arc<StorageKey> {
    Arc::new(StorageKey::from_bytes([9; 32]))
}

fn note(text: &str) -> (Class, Payload) {
    (
        Class::Shared,
        Payload::text(
            kind::NOTE,
            &TextContent {
                text: text.into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        ),
    )
}

#[test]
fn own_entries_chain_survive_reopen_and_are_found_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    let mut n = 0u8;
    let written = {
        let store = Store::open(dir.path(), test_key()).unwrap();
        let first = store
            .append_own(
                &LogWriter {
                    author: &me,
                    space: &space,
                    key: &key,
                    partner: None,
                },
                vec![note("a"), note("b")],
                5,
                || {
                    n += 1;
                    Ok([n; 24])
                },
            )
            .unwrap();
        assert_eq!(first[1].header.prev, first[0].hash);
        first
    };
    let store = Store::open(dir.path(), test_key()).unwrap();
    assert_eq!(
        store.head(&me.device_key()).unwrap(),
        LogHead {
            count: 2,
            hash: written[1].hash
        }
    );
    let found = store
        .find_by_prefix(&written[1].hash.to_hex()[..7])
        .unwrap();
    assert_eq!(found, vec![(me.device_key(), 1, written[1].hash)]);
    assert_eq!(
        store.entries(&me.device_key(), 1, 10).unwrap(),
        vec![written[1].to_bytes()]
    );
}

#[test]
fn local_values_are_sealed_and_a_dump_restores_into_an_empty_store_only() {
    let dir = tempfile::tempdir().unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    let dump = {
        let store = Store::open(dir.path(), test_key()).unwrap();
        store
            .set_local_note(&EntryHash([7; 32]), "sealed-marker-words")
            .unwrap();
        store.set_cursor(42).unwrap();
        store
            .append_own(
                &LogWriter {
                    author: &me,
                    space: &space,
                    key: &key,
                    partner: None,
                },
                vec![note("a")],
                5,
                || Ok([1; 24]),
            )
            .unwrap();
        // The raw tree holds ciphertext only, bound to its tree and key.
        let raw = store.local.tree.get(EntryHash([7; 32]).0).unwrap().unwrap();
        assert!(!raw.windows(6).any(|w| w == b"sealed"));
        assert!(store.local.open(&[8; 32], &raw).is_err());
        store.flush().unwrap();
        store.dump().unwrap()
    };
    // Another key does not open the store's values.
    let wrong = Store::open(dir.path(), Arc::new(StorageKey::from_bytes([8; 32]))).unwrap();
    assert!(wrong.local_note(&EntryHash([7; 32])).is_err());
    drop(wrong);
    let other = tempfile::tempdir().unwrap();
    let restored = Store::open(other.path(), Arc::new(StorageKey::from_bytes([5; 32]))).unwrap();
    let mut steps = 0;
    restored.restore(&dump, |n| steps = n).unwrap();
    assert!(steps >= 4);
    assert_eq!(
        restored.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
        Some("sealed-marker-words")
    );
    assert_eq!(restored.cursor().unwrap(), 42);
    assert_eq!(restored.head(&me.device_key()).unwrap().count, 1);
    assert!(matches!(
        restored.restore(&dump, |_| {}),
        Err(StoreError::NotEmpty)
    ));
}

#[test]
fn values_written_before_encryption_at_rest_are_sealed_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("local")
            .unwrap()
            .insert([7; 32], b"old plain words".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path(), test_key()).unwrap();
    assert_eq!(
        store.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
        Some("old plain words")
    );
    let raw = store.local.tree.get([7; 32]).unwrap().unwrap();
    assert!(!raw.windows(5).any(|w| w == b"plain"));
    drop(store);
    // Opening again does not seal twice.
    let store = Store::open(dir.path(), test_key()).unwrap();
    assert_eq!(
        store.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
        Some("old plain words")
    );
}

#[test]
fn a_page_is_stored_up_to_its_first_bad_entry_and_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), test_key()).unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path(), test_key()).unwrap();
    let notes: Vec<_> = (0..100).map(|i| note(&format!("n{i}"))).collect();
    let mut n = 0u8;
    let entries = other
        .append_own(
            &LogWriter {
                author: &partner,
                space: &space,
                key: &key,
                partner: None,
            },
            notes,
            1,
            || {
                n = n.wrapping_add(1);
                Ok([n; 24])
            },
        )
        .unwrap();
    let keys = LogKeys {
        space,
        key: &key,
        me: me.device_key(),
        partner: Some(partner.device_key()),
    };
    let mut page: Vec<Vec<u8>> = entries.iter().map(Entry::to_bytes).collect();
    // A forged signature at index 70, in the second half of the batch.
    page[70][candor_shared::entry::HEADER_LEN + 1] ^= 1;
    let refs: Vec<&[u8]> = page.iter().map(Vec::as_slice).collect();
    let applied = store
        .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
        .unwrap();
    assert_eq!(applied.stored.len(), 70);
    assert!(matches!(
        applied.refused,
        Some((70, StoreError::Refused(IncomingError::Damaged(_))))
    ));
    assert_eq!(store.head(&partner.device_key()).unwrap().count, 70);
    // The same page again, repaired: the first 70 are already held, the rest are stored.
    let good: Vec<Vec<u8>> = entries.iter().map(Entry::to_bytes).collect();
    let refs: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
    let applied = store
        .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
        .unwrap();
    assert_eq!(applied.stored.len(), 30);
    assert!(applied.refused.is_none());
    assert_eq!(
        store.head(&partner.device_key()).unwrap(),
        LogHead {
            count: 100,
            hash: entries[99].hash
        }
    );
}

#[test]
fn concurrent_writers_sharing_flushes_keep_one_unbroken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), test_key()).unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    std::thread::scope(|scope| {
        for t in 0..8u8 {
            let (store, me, key) = (&store, &me, &key);
            scope.spawn(move || {
                for i in 0..10u8 {
                    store
                        .append_own(
                            &LogWriter {
                                author: me,
                                space: &space,
                                key,
                                partner: None,
                            },
                            vec![note("concurrent")],
                            1,
                            || Ok([t.wrapping_mul(16).wrapping_add(i); 24]),
                        )
                        .unwrap();
                }
            });
        }
    });
    let author = me.device_key();
    assert_eq!(store.head(&author).unwrap().count, 80);
    let mut prev = EntryHash::ZERO;
    for (seq, item) in store.log_entries(&author, 0).enumerate() {
        let (at, bytes) = item.unwrap();
        let entry = Entry::from_bytes(&bytes).unwrap();
        assert_eq!((at, entry.header.seq), (seq as u64, seq as u64));
        assert_eq!(entry.header.prev, prev);
        prev = entry.hash;
    }
    drop(store);
    // Everything was flushed: a reopened store holds the same chain.
    let reopened = Store::open(dir.path(), test_key()).unwrap();
    assert_eq!(reopened.head(&author).unwrap().hash, prev);
}

#[test]
fn a_second_open_reports_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), test_key()).unwrap();
    assert!(matches!(
        Store::open(dir.path(), test_key()),
        Err(StoreError::Locked)
    ));
}

#[test]
fn partner_entries_are_stored_only_after_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), test_key()).unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path(), test_key()).unwrap();
    let entries = other
        .append_own(
            &LogWriter {
                author: &partner,
                space: &space,
                key: &key,
                partner: None,
            },
            vec![note("x"), note("y")],
            1,
            || Ok([0; 24]),
        )
        .unwrap();
    let keys = LogKeys {
        space,
        key: &key,
        me: me.device_key(),
        partner: Some(partner.device_key()),
    };
    // Out of order: refused, nothing stored.
    assert!(store.apply_incoming(&keys, &entries[1].to_bytes()).is_err());
    assert_eq!(store.head(&partner.device_key()).unwrap().count, 0);
    // Tampered: refused.
    let mut bad = entries[0].to_bytes();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(store.apply_incoming(&keys, &bad).is_err());
    // In order: stored once.
    assert!(store
        .apply_incoming(&keys, &entries[0].to_bytes())
        .unwrap()
        .is_some());
    assert!(store
        .apply_incoming(&keys, &entries[0].to_bytes())
        .unwrap()
        .is_none());
    assert!(store
        .apply_incoming(&keys, &entries[1].to_bytes())
        .unwrap()
        .is_some());
    assert_eq!(store.head(&partner.device_key()).unwrap().count, 2);
}

#[test]
fn a_checkpoint_with_a_false_root_is_refused_and_an_honest_one_stored() {
    use candor_shared::merkle::root;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), test_key()).unwrap();
    let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
    let key = SpaceKey::from_bytes([3; 32]);
    let space = SpaceId([4; 16]);
    let writer = LogWriter {
        author: &partner,
        space: &space,
        key: &key,
        partner: None,
    };
    let keys = LogKeys {
        space,
        key: &key,
        me: me.device_key(),
        partner: Some(partner.device_key()),
    };
    // The partner's device writes two notes and an honest checkpoint in its own store.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path(), test_key()).unwrap();
    let mut n = 0u8;
    let mut nonce = || {
        n += 1;
        Ok([n; 24])
    };
    let notes = other
        .append_own(&writer, vec![note("x"), note("y")], 1, &mut nonce)
        .unwrap();
    let honest = other
        .append_checkpoint(&writer, false, 2, &mut nonce)
        .unwrap();
    let ids: Vec<_> = notes.iter().map(|e| e.hash).collect();
    assert_eq!(
        honest.open(&key).unwrap().content().unwrap(),
        candor_shared::payload::Content::Checkpoint(Some(Checkpoint {
            own_root: root(&ids),
            countersign: false
        }))
    );
    // A checkpoint at the same place claiming another history (a third, unpublished entry).
    let mut forged_ids = ids.clone();
    forged_ids.push(EntryHash([9; 32]));
    let forged = Entry::seal(
        Draft {
            class: Class::Control,
            space,
            seq: 2,
            prev: notes[1].hash,
            time_ms: 2,
            partner_seen: PartnerSeen::default(),
            nonce: [77; 24],
        },
        &Payload::checkpoint(&Checkpoint {
            own_root: root(&forged_ids),
            countersign: false,
        }),
        &key,
        &partner,
    )
    .unwrap();
    for entry in &notes {
        store.apply_incoming(&keys, &entry.to_bytes()).unwrap();
    }
    assert!(matches!(
        store.apply_incoming(&keys, &forged.to_bytes()),
        Err(StoreError::Refused(IncomingError::FalseCheckpoint {
            seq: 2,
            ..
        }))
    ));
    assert_eq!(store.head(&partner.device_key()).unwrap().count, 2);
    assert!(store
        .apply_incoming(&keys, &honest.to_bytes())
        .unwrap()
        .is_some());
    assert_eq!(store.head(&partner.device_key()).unwrap().count, 3);

    // The same within one pulled page, where the entries before it are not stored yet.
    let page_dir = tempfile::tempdir().unwrap();
    let paged = Store::open(page_dir.path(), test_key()).unwrap();
    let bytes: Vec<Vec<u8>> = notes
        .iter()
        .chain([&forged])
        .map(|e| e.to_bytes())
        .collect();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let applied = paged
        .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
        .unwrap();
    assert_eq!(applied.stored.len(), 2);
    assert!(matches!(
        applied.refused,
        Some((
            2,
            StoreError::Refused(IncomingError::FalseCheckpoint { seq: 2, .. })
        ))
    ));
    let honest_page = [honest.to_bytes()];
    let refs: Vec<&[u8]> = honest_page.iter().map(Vec::as_slice).collect();
    let applied = paged
        .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
        .unwrap();
    assert_eq!(applied.stored.len(), 1);
    assert!(applied.refused.is_none());
}
