//! `candor-shared`: everything two Candor devices and a relay must agree on, with no I/O.
//!
//! * [`entry`]: the signed, encrypted, hash-chained log entry and its byte layout.
//! * [`payload`]: the versioned plaintext inside an entry (kinds, padding).
//! * [`chain`]: pure verification of one author's log, entry by entry.
//! * [`audit`]: what each log's signed views say about the other: split views, backdating, withholding.
//! * [`journal`]: the private journal's records, edits, search and reflection prompts.
//! * [`at_rest`]: the device's storage key, values sealed at rest, passphrase wrapping, bundles.
//! * [`keys`]: device identities, the space key, safety numbers.
//! * [`invite`]: the one-line invite and the membership proofs exchanged when pairing.
//! * [`merkle`]: the Merkle tree over a log's entry ids that checkpoints commit to.
//! * [`proof`]: verifiable exports: chosen entries with inclusion proofs, checked offline.
//! * [`record`]: every payload kind a reader shows, decoded once.
//! * [`ledger`]: the trust ledger's records and the state derived from both logs.
//! * [`notes`]: shared notes (an Automerge text per note) and weekly goals' kind codes.
//! * [`goals`]: weekly goals and their progress, derived from both logs.
//! * [`wire`]: request/response messages and their length-prefixed framing.
//! * [`relay`]: the relay's request handling as a state machine over a storage trait.
//! * [`sync`]: the client's sync state machine (push what the relay lacks, pull what we lack).
//!
//! Nothing in this crate reads a clock, touches the network or disk, or draws randomness: the
//! caller passes times in milliseconds and random bytes in, so every function is deterministic and
//! testable in memory.

pub mod at_rest;
pub mod audit;
pub mod chain;
pub mod entry;
pub mod goals;
pub mod ids;
pub mod invite;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod merkle;
pub mod notes;
pub mod payload;
pub mod proof;
pub mod record;
pub mod relay;
pub mod sync;
pub mod wire;

pub use ids::{DeviceKey, EntryHash, SpaceId};

/// Version byte written into every entry header and negotiated on the wire.
pub const PROTOCOL_VERSION: u8 = 1;

/// The QUIC ALPN protocol identifier spoken by relays and devices.
pub const ALPN: &[u8] = b"candor/1";
