//! What a device keeps of what it refused or flagged, within bounds a malicious relay cannot
//! grow.
//!
//! * **Refused entries** ([`bounded`]): an entry whose bytes have the layout of an entry (a
//!   header that decodes, a length that matches) is kept whole — it is at most
//!   [`MAX_ENTRY`] bytes, and a signed one is proof anyone can check. Bytes that are not even
//!   an entry prove nothing about anyone: only their length and BLAKE3 hash are kept, in the
//!   reason. At most [`MAX_RECORDS`] records and [`MAX_BYTES`] of entry bytes are kept; beyond
//!   that, further refusals are still refused and reported, but not kept (`candor verify` says
//!   so).
//! * **Entries dated in the future** ([`flag_future_dated`], [`own_time`]): a partner entry
//!   dated beyond the tolerance past this device's clock when it arrives, or this device's own
//!   last entry when it finds it ahead of its clock before writing, is flagged by id so the
//!   audit blames it alone (see `candor_shared::audit`). At most [`MAX_FUTURE_FLAGS`] are kept.

use crate::store::{Evidence, Store, StoreError};
use candor_shared::audit::future_dated;
use candor_shared::entry::{id_of, Entry, Header, HEADER_LEN, MAX_ENTRY, SIGNATURE_LEN};
use candor_shared::EntryHash;

/// Most evidence records kept.
pub const MAX_RECORDS: usize = 256;
/// Most entry bytes kept as evidence, over all records.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most entries flagged as dated in the future.
pub const MAX_FUTURE_FLAGS: usize = 4096;

/// Whether `bytes` have the layout of an entry: a header that decodes, followed by a signature
/// and exactly the ciphertext length it names, within [`MAX_ENTRY`].
fn has_entry_layout(bytes: &[u8]) -> bool {
    if bytes.len() > MAX_ENTRY {
        return false;
    }
    let Some(header) = bytes
        .get(..HEADER_LEN)
        .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return false;
    };
    Header::decode(header)
        .is_ok_and(|h| bytes.len() == HEADER_LEN + SIGNATURE_LEN + h.ciphertext_len as usize)
}

/// The evidence to keep for `evidence`, given what the store already holds (`records` records
/// with `bytes` entry bytes), or `None` when the store is full.
pub fn bounded(evidence: Evidence, records: usize, bytes: usize) -> Option<Evidence> {
    if records >= MAX_RECORDS {
        return None;
    }
    let mut kept = Evidence {
        entries: Vec::with_capacity(evidence.entries.len()),
        ..evidence
    };
    for entry in evidence.entries {
        if has_entry_layout(&entry) {
            kept.entries.push(entry);
        } else {
            kept.reason.push_str(&format!(
                " [{} bytes that are not an entry, BLAKE3 {}: not kept]",
                entry.len(),
                blake3::hash(&entry).to_hex()
            ));
        }
    }
    let size: usize = kept.entries.iter().map(Vec::len).sum();
    (bytes + size <= MAX_BYTES).then_some(kept)
}

/// Whether the evidence store is full (so refusals are no longer kept).
pub fn is_full(records: usize) -> bool {
    records >= MAX_RECORDS
}

/// Flags the partner entries just stored that are dated beyond the tolerance past `now_ms`
/// (this device's clock at receipt).
pub fn flag_future_dated(store: &Store, stored: &[Entry], now_ms: u64) -> Result<(), StoreError> {
    let flags: Vec<(EntryHash, u64)> = stored
        .iter()
        .filter_map(|e| future_dated(e.header.time_ms, now_ms).map(|ahead| (e.hash, ahead)))
        .collect();
    if flags.is_empty() {
        return Ok(());
    }
    store.add_future_dated(&flags, MAX_FUTURE_FLAGS)
}

/// The time of this device's next entry, given its clock `now_ms`, the time of the partner's
/// latest entry it verified (`partner_ms`, unless that entry is flagged), and its own entries
/// newest first (wire form): times never go backwards, except past own entries dated beyond the
/// tolerance ahead of both the clock and the partner's latest entry (a clock that was wrong),
/// which are not carried forward. Returns the time and the flags for those entries.
pub fn own_time<B: AsRef<[u8]>>(
    now_ms: u64,
    partner_ms: Option<u64>,
    own_newest_first: impl Iterator<Item = B>,
) -> (u64, Vec<(EntryHash, u64)>) {
    // A partner entry dated after this clock means the clock is behind, not the log ahead.
    let reference = now_ms.max(partner_ms.unwrap_or(0));
    let mut flags = Vec::new();
    for entry in own_newest_first.take(MAX_FUTURE_FLAGS) {
        let entry = entry.as_ref();
        let time = candor_shared::entry::peek_time(entry).unwrap_or(0);
        match (future_dated(time, reference), id_of(entry)) {
            (Some(ahead), Some(id)) => flags.push((id, ahead)),
            _ if flags.is_empty() => return (reference.max(time), flags),
            _ => break,
        }
    }
    (reference, flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogWriter;
    use candor_shared::at_rest::StorageKey;
    use candor_shared::entry::Class;
    use candor_shared::keys::{DeviceSecrets, SpaceKey};
    use candor_shared::payload::{kind, Payload};
    use candor_shared::SpaceId;
    use std::sync::Arc;

    fn store(dir: &std::path::Path) -> Store {
        Store::open(dir, Arc::new(StorageKey::from_bytes([9; 32]))).expect("store")
    }

    #[test]
    fn a_relay_cannot_grow_the_evidence_without_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path());
        for i in 0..MAX_RECORDS + 20 {
            // Four MiB of bytes that are not an entry, each time different.
            let mut garbage = vec![0u8; 4 * 1024 * 1024];
            garbage[..8].copy_from_slice(&(i as u64).to_be_bytes());
            store
                .record_evidence(&evidence(vec![garbage]))
                .expect("record");
        }
        let kept = store.evidence().expect("evidence");
        assert_eq!(kept.len(), MAX_RECORDS);
        assert!(kept.iter().all(|e| e.entries.is_empty()));
        let stored: usize = kept.iter().map(|e| e.reason.len()).sum();
        assert!(stored < 256 * 1024, "{stored} bytes of reasons");
    }

    #[test]
    fn an_own_entry_dated_far_ahead_is_flagged_and_not_carried_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path());
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let (key, space) = (SpaceKey::from_bytes([3; 32]), SpaceId([4; 16]));
        let writer = LogWriter {
            author: &me,
            space: &space,
            key: &key,
            partner: None,
        };
        let note = || {
            vec![(
                Class::Shared,
                Payload {
                    kind: kind::NOTE,
                    content: vec![0, 0, 0, 0],
                },
            )]
        };
        let now = 1_764_000_000_000u64;
        let days = 3 * 24 * 3_600_000;
        let ahead = store
            .append_own(&writer, note(), now + days, || Ok([1; 24]))
            .expect("write");
        let next = store
            .append_own(&writer, note(), now, || Ok([2; 24]))
            .expect("write");
        assert_eq!(next[0].header.time_ms, now);
        let flags = store.future_dated().expect("flags");
        assert_eq!(flags.get(&ahead[0].hash), Some(&days));
        // A partner entry dated days ahead on arrival is flagged the same way.
        flag_future_dated(&store, &next, now - days).expect("flag");
        assert!(store
            .future_dated()
            .expect("flags")
            .contains_key(&next[0].hash));
    }

    fn evidence(entries: Vec<Vec<u8>>) -> Evidence {
        Evidence {
            time_ms: 1,
            reason: "refused".into(),
            entries,
        }
    }

    #[test]
    fn garbage_keeps_only_its_hash_and_length_and_the_store_has_a_cap() {
        let garbage = vec![7u8; 4 * 1024 * 1024];
        let kept = bounded(evidence(vec![garbage]), 0, 0).expect("kept");
        assert!(kept.entries.is_empty());
        assert!(
            kept.reason.contains("4194304 bytes that are not an entry"),
            "{}",
            kept.reason
        );
        assert!(bounded(evidence(vec![]), MAX_RECORDS, 0).is_none());
        assert!(is_full(MAX_RECORDS));
    }

    #[test]
    fn a_far_future_own_time_is_not_carried_forward() {
        assert_eq!(
            own_time(1_000, None, std::iter::empty::<&[u8]>()),
            (1_000, vec![])
        );
        // A last entry slightly ahead (within the tolerance) is carried forward: times never go
        // backwards for clock jitter.
        let mut last = vec![0u8; HEADER_LEN + SIGNATURE_LEN];
        let time_at = 1 + 1 + 16 + 32 + 8 + 32;
        last[time_at..time_at + 8].copy_from_slice(&61_000u64.to_be_bytes());
        assert_eq!(candor_shared::entry::peek_time(&last), Some(61_000));
        assert_eq!(
            own_time(1_000, None, std::iter::once(last.as_slice())),
            (61_000, vec![])
        );
        let days = 3 * 24 * 3_600_000u64;
        last[time_at..time_at + 8].copy_from_slice(&(1_000 + days).to_be_bytes());
        let (time, flags) = own_time(1_000, None, std::iter::once(last.as_slice()));
        assert_eq!(time, 1_000);
        assert_eq!(flags.first().map(|(_, ahead)| *ahead), Some(days));
        // But if the partner's latest entry is dated that late too, this clock is behind: the
        // log's time is carried forward and nothing is flagged.
        let (time, flags) = own_time(1_000, Some(1_000 + days), std::iter::once(last.as_slice()));
        assert_eq!((time, flags), (1_000 + days, vec![]));
    }
}
