//! The `RelayStore` contract suite (`candor_shared::relay::contract`) over sled and PostgreSQL
//! (the in-memory store runs it in `candor-shared`'s own tests), and what only a shared database
//! must add: relays in two "processes" (two stores with their own connection pools) pushing into
//! one space at once keep one chain, gap-free cursors and one conflict per seq.
//!
//! PostgreSQL tests start a throw-away cluster ([`candor_tests::pg::PgCluster`]); without
//! PostgreSQL they fail unless `CANDOR_SKIP_PG=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use candor_relay::postgres::PgStore;
use candor_relay::store::SledStore;
use candor_shared::relay::contract::{
    self, chain, device, entry, login, paired_on, push_to, SPACE,
};
use candor_shared::relay::{Relay, RelayLimits, RelayStore};
use candor_shared::wire::{PushOutcome, Response};
use candor_tests::pg::PgCluster;
use tokio::runtime::Runtime;

#[test]
fn the_sled_store_keeps_the_store_contract() {
    contract::run_all(|| {
        SledStore::from_db(sled::Config::new().temporary(true).open().unwrap()).unwrap()
    });
}

fn connect(runtime: &Runtime, url: &str) -> PgStore {
    let config: tokio_postgres::Config = url.parse().unwrap();
    runtime
        .block_on(PgStore::connect(config, runtime.handle().clone()))
        .unwrap()
}

#[test]
fn the_postgres_store_keeps_the_store_contract() {
    let Some(cluster) = PgCluster::start().unwrap() else {
        return;
    };
    let runtime = Runtime::new().unwrap();
    contract::run_all(|| connect(&runtime, &cluster.create_database().unwrap()));
    // Connecting again finds the schema in place (no second migration, no error).
    let url = cluster.create_database().unwrap();
    drop(connect(&runtime, &url));
    let store = connect(&runtime, &url);
    assert_eq!(store.space(&SPACE).unwrap(), None);
}

#[test]
fn two_relays_on_one_database_keep_one_chain_under_concurrent_pushes() {
    let Some(cluster) = PgCluster::start().unwrap() else {
        return;
    };
    let runtime = Runtime::new().unwrap();
    let url = cluster.create_database().unwrap();
    let (relay_1, _, _, key) = paired_on(connect(&runtime, &url), RelayLimits::default());
    // A second relay process: its own pools on the same database.
    let relay_2 = Relay::new(connect(&runtime, &url));
    let a = device(1);
    const N: u64 = 40;
    let log = chain(&a, &key, N, "a");
    let forks = |text: &str| -> Vec<_> {
        log.iter()
            .map(|e| entry(&a, &key, e.header.seq, e.header.prev, text))
            .collect()
    };
    let (forks_1, forks_2) = (forks("fork one"), forks("fork two"));
    let push_each = |relay: &Relay<PgStore>, entries: &[candor_shared::entry::Entry]| {
        let mut session = login(relay, &a);
        let mut outcomes = Vec::new();
        for e in entries {
            match push_to(relay, &mut session, &[e]) {
                Response::Pushed { outcomes: got } => outcomes.extend(got),
                other => panic!("push refused: {other:?}"),
            }
        }
        outcomes
    };
    let both = |first: &[_], second: &[_]| {
        std::thread::scope(|s| {
            let one = s.spawn(|| push_each(&relay_1, first));
            let two = s.spawn(|| push_each(&relay_2, second));
            (one.join().unwrap(), two.join().unwrap())
        })
    };
    // Both relays push the whole log at once: each entry is stored once, by one of them.
    let (one, two) = both(&log, &log);
    let stored = one
        .iter()
        .chain(&two)
        .filter(|o| matches!(o, PushOutcome::Stored { .. }))
        .count();
    assert_eq!(stored as u64, N, "{one:?} {two:?}");
    assert!(one
        .iter()
        .chain(&two)
        .all(|o| matches!(o, PushOutcome::Stored { .. } | PushOutcome::Duplicate)));
    let store = relay_2.store();
    let (page, more) = store.page(&SPACE, 0, 500).unwrap();
    assert!(!more);
    let cursors: Vec<u64> = page.iter().map(|p| p.cursor).collect();
    assert_eq!(cursors, (1..=N).collect::<Vec<_>>(), "gap-free cursors");
    let bytes: Vec<Vec<u8>> = page.into_iter().map(|p| p.entry).collect();
    assert_eq!(bytes, log.iter().map(|e| e.to_bytes()).collect::<Vec<_>>());
    let head = store.head(&SPACE, &a.device_key()).unwrap();
    assert_eq!((head.count, head.hash), (N, log[N as usize - 1].hash));
    // Two different forks of every seq at once: both answered Conflict, exactly one kept, and
    // only that one counted.
    let (one, two) = both(&forks_1, &forks_2);
    assert!(one.iter().chain(&two).all(|o| *o == PushOutcome::Conflict));
    let mut expected_bytes: u64 = log.iter().map(|e| e.to_bytes().len() as u64).sum();
    for seq in 0..N as usize {
        let kept = store
            .conflict_at(&SPACE, &a.device_key(), seq as u64)
            .unwrap();
        let kept = [&forks_1[seq], &forks_2[seq]]
            .into_iter()
            .find(|f| Some(f.hash) == kept)
            .unwrap_or_else(|| panic!("no fork kept at seq {seq}"));
        expected_bytes += kept.to_bytes().len() as u64;
    }
    assert_eq!(
        runtime.block_on(store.conflicts(&SPACE)).unwrap().len() as u64,
        N
    );
    assert_eq!(store.space_bytes(&SPACE).unwrap(), expected_bytes);
}
