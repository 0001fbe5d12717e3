//! Fuzz target bodies: each takes arbitrary bytes and must never panic, hang or allocate without
//! bound; where a decoder accepts its input, the targets also check invariants (re-encoding
//! round-trips, a changed entry never verifies).
//!
//! Shared by the cargo-fuzz binaries in `fuzz/` and by `shared/tests/fuzz_regressions.rs`.

use candor_shared::entry::{Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::{Invite, RelayFingerprint};
use candor_shared::keys::{DeviceSecrets, SpaceKey};
use candor_shared::payload::{kind, Payload};
use candor_shared::wire::{decode_body, decode_frame, encode_frame, Request, Response};
use candor_shared::{EntryHash, SpaceId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

fn frames<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    // As a stream of frames: decode, advance, repeat (what a reader does).
    let mut rest = data;
    while let Ok(Some((message, used))) = decode_frame::<T>(rest) {
        assert!(
            used >= 4 && used <= rest.len(),
            "decode_frame consumed {used} of {}",
            rest.len()
        );
        round_trip(&message);
        rest = &rest[used..];
    }
    // As a bare body.
    if let Ok(message) = decode_body::<T>(data) {
        round_trip(&message);
    }
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(message: &T) {
    if let Ok(frame) = encode_frame(message) {
        match decode_frame::<T>(&frame) {
            Ok(Some((back, used))) => {
                assert_eq!(used, frame.len());
                assert_eq!(&back, message, "re-encoded message decodes differently");
            }
            other => panic!("re-encoded message does not decode: {other:?}"),
        }
    }
}

/// Request frames as the relay reads them.
pub fn wire_request(data: &[u8]) {
    frames::<Request>(data);
}

/// Response frames as a device reads them.
pub fn wire_response(data: &[u8]) {
    frames::<Response>(data);
}

fn space_key() -> SpaceKey {
    SpaceKey::from_bytes([3; 32])
}

/// A valid entry to mutate.
pub fn valid_entry() -> Entry {
    let author = DeviceSecrets::from_seeds([1; 32], [2; 32]);
    let draft = Draft {
        class: Class::Shared,
        space: SpaceId([4; 16]),
        seq: 0,
        prev: EntryHash::ZERO,
        time_ms: 1_700_000_000_000,
        partner_seen: PartnerSeen::default(),
        nonce: [5; 24],
    };
    let payload = Payload {
        kind: kind::NOTE,
        content: b"fuzz".to_vec(),
    };
    match Entry::seal(draft, &payload, &space_key(), &author) {
        Ok(entry) => entry,
        Err(e) => panic!("sealing the reference entry failed: {e}"),
    }
}

/// Entry parsing and verification: arbitrary bytes as a wire entry and as padded plaintext,
/// and a valid entry with bytes overwritten (which must never verify unless unchanged).
pub fn entry(data: &[u8]) {
    if let Ok(entry) = Entry::from_bytes(data) {
        assert_eq!(
            entry.to_bytes(),
            data,
            "a verified entry re-encodes differently"
        );
        let _ = entry.open(&space_key());
    }
    if let Ok(payload) = Payload::from_padded(data) {
        let _ = payload.content();
    }
    // Splice: data = offset (2 bytes) ‖ replacement bytes, applied to a valid entry.
    if let [hi, lo, patch @ ..] = data {
        let original = valid_entry().to_bytes();
        let mut bytes = original.clone();
        let at = usize::from(u16::from_be_bytes([*hi, *lo])) % (bytes.len() + 1);
        let end = (at + patch.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&patch[..end - at]);
        // Patch bytes beyond the end are appended (a longer entry).
        bytes.extend_from_slice(&patch[end - at..]);
        match Entry::from_bytes(&bytes) {
            Ok(entry) => {
                assert_eq!(bytes, original, "a modified entry verified");
                assert!(entry.open(&space_key()).is_ok());
            }
            Err(_) => assert_ne!(bytes, original, "the unmodified entry was refused"),
        }
    }
}

/// Invite and fingerprint parsing.
pub fn invite(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(invite) = Invite::parse(&text) {
        let _ = Invite::parse(&invite.to_line());
    }
    let _ = RelayFingerprint::parse(&text);
}
