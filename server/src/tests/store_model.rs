//! Model-based test: random request sequences through `Relay` over the in-memory store (the
//! model) and over `SledStore` must give identical answers and leave identical state.

use super::fixtures::{auth_signature, chain, create_space, device, entry, join, space};
use crate::store::SledStore;
use candor_shared::keys::DeviceSecrets;
use candor_shared::relay::memory::MemoryStore;
use candor_shared::relay::{Handled, Relay, RelayStore, Session};
use candor_shared::wire::{Request, Response};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::OnceLock;

const DEVICES: u8 = 3;
const SPACES: u8 = 2;
const CHAIN: u64 = 4;
const EXPORTER: [u8; 32] = [9; 32];

/// Entries to push: for every author and space a chain, a fork at every seq, plus garbage.
struct Pool {
    /// `chains[author][space]`: the chain in wire form.
    chains: Vec<Vec<Vec<Vec<u8>>>>,
    /// `forks[author][space][seq]`: a different entry at the same seq and previous hash.
    forks: Vec<Vec<Vec<Vec<u8>>>>,
    /// Everything, flattened, for random picks.
    all: Vec<Vec<u8>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut chains = Vec::new();
        let mut forks = Vec::new();
        let mut all = vec![vec![0xAB; 300], Vec::new()];
        for author in 0..DEVICES {
            let d = device(author);
            let mut per_space = Vec::new();
            let mut forks_per_space = Vec::new();
            for s in 0..SPACES {
                let entries = chain(&d, s, CHAIN);
                let mut space_forks = Vec::new();
                for (seq, e) in entries.iter().enumerate() {
                    let fork = entry(&d, s, seq as u64, e.header.prev, 1).to_bytes();
                    all.push(e.to_bytes());
                    all.push(fork.clone());
                    space_forks.push(fork);
                }
                per_space.push(entries.iter().map(|e| e.to_bytes()).collect());
                forks_per_space.push(space_forks);
            }
            chains.push(per_space);
            forks.push(forks_per_space);
        }
        Pool { chains, forks, all }
    })
}

#[derive(Clone, Debug)]
enum Op {
    Login(u8),
    Hello(u8, u8),
    Create(u8, u8),
    Join(u8, u8, bool),
    PushRandom(u8, u8, Vec<usize>),
    PushChain(u8, u8, u8, usize),
    PushFork(u8, u8, u8, usize),
    Pull(u8, u8, u64, u32),
    Heads(u8, u8),
    Members(u8, u8),
    Subscribe(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DEVICES;
    let s = 0..SPACES;
    prop_oneof![
        1 => d.clone().prop_map(Op::Login),
        1 => (d.clone(), any::<u8>()).prop_map(|(d, n)| Op::Hello(d, n)),
        2 => (d.clone(), s.clone()).prop_map(|(d, s)| Op::Create(d, s)),
        2 => (d.clone(), s.clone(), any::<bool>()).prop_map(|(d, s, ok)| Op::Join(d, s, ok)),
        3 => (d.clone(), s.clone(), proptest::collection::vec(any::<prop::sample::Index>(), 0..5))
            .prop_map(|(d, s, picks)| {
                let len = pool().all.len();
                Op::PushRandom(d, s, picks.iter().map(|i| i.index(len)).collect())
            }),
        4 => (d.clone(), s.clone(), 0..DEVICES, 1..=CHAIN as usize)
            .prop_map(|(d, s, author, len)| Op::PushChain(d, s, author, len)),
        2 => (d.clone(), s.clone(), 0..DEVICES, 0..CHAIN as usize)
            .prop_map(|(d, s, author, seq)| Op::PushFork(d, s, author, seq)),
        3 => (d.clone(), s.clone(), 0..6u64, 0..4u32).prop_map(|(d, s, a, l)| Op::Pull(d, s, a, l)),
        1 => (d.clone(), s.clone()).prop_map(|(d, s)| Op::Heads(d, s)),
        1 => (d.clone(), s.clone()).prop_map(|(d, s)| Op::Members(d, s)),
        1 => (d, s).prop_map(|(d, s)| Op::Subscribe(d, s)),
    ]
}

/// The parts of a handled request both relays must agree on. A flush the relay asks for is
/// "performed" (the model has no crashes), so flushed entries become servable as with the driver.
fn summary<S: candor_shared::relay::RelayStore>(
    relay: &Relay<S>,
    h: Handled,
) -> (Response, bool, Option<(candor_shared::SpaceId, u64)>, bool) {
    let flush = h.flush.is_some();
    if let Some(ticket) = h.flush {
        relay.flushed(ticket);
    }
    (h.response, flush, h.notify, h.subscribe.is_some())
}

struct Pair {
    memory: Relay<MemoryStore>,
    sled: Relay<SledStore>,
    memory_sessions: Vec<Session>,
    sled_sessions: Vec<Session>,
    devices: Vec<DeviceSecrets>,
}

impl Pair {
    fn new() -> Self {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Self {
            memory: Relay::new(MemoryStore::default()),
            sled: Relay::new(SledStore::from_db(db).unwrap()),
            memory_sessions: (0..DEVICES).map(|_| Session::new(EXPORTER)).collect(),
            sled_sessions: (0..DEVICES).map(|_| Session::new(EXPORTER)).collect(),
            devices: (0..DEVICES).map(device).collect(),
        }
    }

    /// Sends one request from device `d` to both relays; they must agree.
    fn step(&mut self, d: u8, request: Request, nonce: [u8; 32]) -> Response {
        let d = d as usize;
        let handled =
            self.memory
                .handle_request(&mut self.memory_sessions[d], request.clone(), nonce);
        let expected = summary(&self.memory, handled);
        let handled = self
            .sled
            .handle_request(&mut self.sled_sessions[d], request.clone(), nonce);
        let got = summary(&self.sled, handled);
        assert_eq!(got, expected, "request {request:?}");
        assert!(
            !matches!(
                got.0,
                Response::Error {
                    code: candor_shared::wire::ErrorCode::Internal,
                    ..
                }
            ),
            "{got:?}"
        );
        expected.0
    }

    fn apply(&mut self, op: &Op) {
        match op.clone() {
            Op::Login(d) => {
                if let Response::Challenge { nonce } =
                    self.step(d, Request::Hello { version: 1 }, [d; 32])
                {
                    let secrets = &self.devices[d as usize];
                    let request = Request::Authenticate {
                        device: secrets.device_key(),
                        signature: auth_signature(secrets, &nonce, &EXPORTER),
                    };
                    self.step(d, request, [0; 32]);
                }
            }
            Op::Hello(d, n) => {
                self.step(d, Request::Hello { version: 1 }, [n; 32]);
            }
            Op::Create(d, s) => {
                let request = create_space(&self.devices[d as usize], s);
                self.step(d, request, [0; 32]);
            }
            Op::Join(d, s, ok) => {
                let request = join(&self.devices[d as usize], s, ok);
                self.step(d, request, [0; 32]);
            }
            Op::PushRandom(d, s, picks) => {
                let entries = picks.iter().map(|i| pool().all[*i].clone()).collect();
                self.step(
                    d,
                    Request::Push {
                        space: space(s),
                        entries,
                    },
                    [0; 32],
                );
            }
            Op::PushChain(d, s, author, len) => {
                let entries = pool().chains[author as usize][s as usize][..len].to_vec();
                self.step(
                    d,
                    Request::Push {
                        space: space(s),
                        entries,
                    },
                    [0; 32],
                );
            }
            Op::PushFork(d, s, author, seq) => {
                let fork = pool().forks[author as usize][s as usize][seq].clone();
                self.step(
                    d,
                    Request::Push {
                        space: space(s),
                        entries: vec![fork],
                    },
                    [0; 32],
                );
            }
            Op::Pull(d, s, after, limit) => {
                self.step(
                    d,
                    Request::Pull {
                        space: space(s),
                        after,
                        limit,
                    },
                    [0; 32],
                );
            }
            Op::Heads(d, s) => {
                self.step(d, Request::Heads { space: space(s) }, [0; 32]);
            }
            Op::Members(d, s) => {
                self.step(d, Request::Members { space: space(s) }, [0; 32]);
            }
            Op::Subscribe(d, s) => {
                self.step(d, Request::Subscribe { space: space(s) }, [0; 32]);
            }
        }
    }

    /// The stores' whole visible state must match too.
    fn check_state(&self) {
        let (m, s) = (self.memory.store(), self.sled.store());
        for n in 0..SPACES {
            let id = space(n);
            assert_eq!(s.space(&id).unwrap(), m.space(&id).unwrap());
            assert_eq!(s.heads(&id).unwrap(), m.heads(&id).unwrap());
            assert_eq!(s.page(&id, 0, 1000).unwrap(), m.page(&id, 0, 1000).unwrap());
            let model_conflicts: BTreeSet<Vec<u8>> = m
                .conflicts()
                .into_iter()
                .filter(|(space, _)| *space == id)
                .map(|(_, bytes)| bytes)
                .collect();
            let conflicts: BTreeSet<Vec<u8>> = s.conflicts(&id).unwrap().into_iter().collect();
            assert_eq!(conflicts, model_conflicts);
            for d in &self.devices {
                for seq in 0..CHAIN + 1 {
                    assert_eq!(
                        s.hash_at(&id, &d.device_key(), seq).unwrap(),
                        m.hash_at(&id, &d.device_key(), seq).unwrap()
                    );
                }
            }
        }
        for d in &self.devices {
            assert_eq!(
                s.spaces_of(&d.device_key()).unwrap(),
                m.spaces_of(&d.device_key()).unwrap()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sled_store_behaves_like_the_memory_store(ops in proptest::collection::vec(op(), 1..60)) {
        let mut pair = Pair::new();
        for d in 0..DEVICES {
            pair.apply(&Op::Login(d));
        }
        for op in &ops {
            pair.apply(op);
        }
        pair.check_state();
    }
}

#[test]
fn a_typical_session_agrees_too() {
    // A deterministic run that surely reaches stored entries, duplicates and conflicts.
    let mut pair = Pair::new();
    for op in [
        Op::Login(0),
        Op::Login(1),
        Op::Login(2),
        Op::Create(0, 0),
        Op::Join(1, 0, true),
        Op::Join(2, 0, true),
        Op::PushChain(0, 0, 0, 2),
        Op::PushChain(1, 0, 1, 3),
        Op::PushChain(0, 0, 0, 4),
        Op::PushRandom(1, 0, (0..pool().all.len()).collect()),
        Op::Pull(1, 0, 2, 3),
        Op::Heads(1, 0),
        Op::Members(0, 0),
        Op::Subscribe(1, 0),
        Op::Create(2, 1),
        Op::Pull(2, 0, 0, 10),
    ] {
        pair.apply(&op);
    }
    pair.check_state();
    let (_, more) = pair.sled.store().page(&space(0), 0, 1000).unwrap();
    assert!(!more);
    // A: 2 entries, B: 3, A: 2 more, then B's fourth entry from the random pool.
    assert_eq!(pair.sled.store().last_cursor(&space(0)).unwrap(), 8);
    assert!(!pair.sled.store().conflicts(&space(0)).unwrap().is_empty());
}
