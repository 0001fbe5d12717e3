//! Runs the cargo-fuzz targets (`fuzz/src/targets.rs`) on stable, as part of the normal suite:
//!
//! * every file in `shared/tests/corpus/<target>/` — inputs the fuzzers found interesting (new
//!   coverage, and anything that once crashed) — is replayed;
//! * seeds built from valid messages, entries and invites, and deterministic random mutations of
//!   them, are run too, so the targets are exercised even where cargo-fuzz (nightly) is absent.
//!
//! `CANDOR_WRITE_FUZZ_SEEDS=DIR cargo test -p candor-shared --test fuzz_regressions` writes the
//! seeds to `DIR/<target>/` to start a fuzzing run from.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use candor_shared::chain::LogHead;
use candor_shared::invite::{Invite, InviteSecret, RelayFingerprint};
use candor_shared::keys::DevicePublic;
use candor_shared::wire::{
    encode_frame, ErrorCode, MemberCard, PagedEntry, PushOutcome, Request, Response,
};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("wire_request", targets::wire_request),
    ("wire_response", targets::wire_response),
    ("entry", targets::entry),
    ("invite", targets::invite),
];

fn card() -> MemberCard {
    MemberCard {
        public: DevicePublic {
            device: DeviceKey([1; 32]),
            exchange: [2; 32],
        },
        proof: [3; 32],
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let space = SpaceId([4; 16]);
    let entry = targets::valid_entry().to_bytes();
    match target {
        "wire_request" => [
            Request::Hello { version: 1 },
            Request::Authenticate {
                device: DeviceKey([1; 32]),
                signature: vec![9; 64],
            },
            Request::CreateSpace {
                space,
                invite_verifier: [5; 32],
                sealed_space_key: vec![6; 72],
                member: card(),
            },
            Request::Join {
                space,
                token: [7; 32],
                member: card(),
            },
            Request::Heads { space },
            Request::Push {
                space,
                entries: vec![entry.clone(), entry],
            },
            Request::Pull {
                space,
                after: 3,
                limit: 512,
            },
            Request::Subscribe { space },
        ]
        .iter()
        .map(|r| encode_frame(r).unwrap())
        .collect(),
        "wire_response" => [
            Response::Challenge { nonce: [8; 32] },
            Response::Authenticated {
                spaces: vec![space],
            },
            Response::Joined {
                sealed_space_key: vec![1; 72],
                members: vec![card(), card()],
            },
            Response::HeadList {
                heads: vec![(
                    DeviceKey([1; 32]),
                    LogHead {
                        count: 3,
                        hash: EntryHash([2; 32]),
                    },
                )],
            },
            Response::Pushed {
                outcomes: vec![
                    PushOutcome::Stored { cursor: 1 },
                    PushOutcome::Duplicate,
                    PushOutcome::Conflict,
                    PushOutcome::Rejected {
                        reason: "gap".into(),
                    },
                ],
            },
            Response::Page {
                entries: vec![PagedEntry { cursor: 1, entry }],
                more: true,
            },
            Response::Notify { cursor: 9 },
            Response::error(ErrorCode::InviteExpired, "expired"),
        ]
        .iter()
        .map(|r| encode_frame(r).unwrap())
        .collect(),
        "entry" => vec![entry, [&[0u8, 0][..], &[0xff; 8]].concat()],
        "invite" => {
            let invite = Invite {
                relay: "relay.example:4433".into(),
                relay_fingerprint: RelayFingerprint([1; 32]),
                space,
                secret: InviteSecret([2; 32]),
                creator: card().public,
            };
            vec![
                invite.to_line().into_bytes(),
                RelayFingerprint([1; 32]).to_string().into_bytes(),
            ]
        }
        _ => Vec::new(),
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A random mutation: flip, overwrite, insert, delete, truncate, or a huge length prefix.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = rng.next() as u8,
            2 => out.insert(at, rng.next() as u8),
            3 if at < out.len() => {
                out.remove(at);
            }
            4 => out.truncate(at),
            _ => {
                if out.len() >= 4 {
                    out[..4].copy_from_slice(&(rng.next() as u32).to_be_bytes());
                }
            }
        }
    }
    out
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

#[test]
fn corpus_replays_without_panics() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let Ok(dir) = std::fs::read_dir(corpus_dir(name)) else {
            continue;
        };
        for file in dir.flatten() {
            let input = std::fs::read(file.path()).unwrap();
            target(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "the committed corpus is missing");
}

#[test]
fn seeds_and_mutations_never_panic() {
    let write_to = std::env::var_os("CANDOR_WRITE_FUZZ_SEEDS").map(PathBuf::from);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty());
        if let Some(dir) = &write_to {
            let dir = dir.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
        for seed in &seeds {
            target(seed);
            for _ in 0..300 {
                target(&mutate(&mut rng, seed));
            }
        }
        for _ in 0..300 {
            let len = rng.below(300);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            target(&bytes);
        }
    }
}
