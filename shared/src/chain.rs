//! Pure verification of one author's log: does this entry extend the chain we hold?
//!
//! Both the relay (before it stores a pushed entry) and devices (before they store or show a
//! pulled one) use [`LogHead::classify`], so they agree on what "fits" means: seq grows by exactly
//! one, the previous-hash field names the entry we hold at `seq - 1`, and an entry at a seq we
//! already hold is either the very same entry (a harmless re-delivery) or proof of equivocation.

use crate::entry::Header;
use crate::{EntryHash, SpaceId};
use serde::{Deserialize, Serialize};

/// The verified tip of one author's log: how many entries, and the hash of the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// Number of entries held (the next expected seq).
    pub count: u64,
    /// Hash of entry `count - 1`, zeros when `count` is 0.
    pub hash: EntryHash,
}

/// How an entry relates to a log head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It is the next entry: append it.
    Next,
    /// Its seq is already held; the caller must compare it with the stored entry at that seq
    /// (same hash: duplicate, ignore; different: equivocation, keep as evidence).
    AlreadyHeld,
}

/// Why an entry does not extend a log.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ChainError {
    /// The entry names another space.
    #[error("entry belongs to space {found}, not {expected}")]
    WrongSpace {
        /// This log's space.
        expected: SpaceId,
        /// The header's space.
        found: SpaceId,
    },
    /// Entries between the head and this one are missing.
    #[error("seq gap: expected seq {expected}, got {got}")]
    Gap {
        /// The next seq the log needs.
        expected: u64,
        /// The entry's seq.
        got: u64,
    },
    /// The previous-hash field does not name the entry held at `seq - 1`.
    #[error("entry {seq} does not chain to the entry before it")]
    WrongPrevious {
        /// The entry's seq.
        seq: u64,
    },
    /// Two different entries signed at the same seq.
    #[error("author signed two different entries at seq {seq}")]
    Equivocation {
        /// The contested seq.
        seq: u64,
    },
}

impl LogHead {
    /// Classifies `header` against this head of a log in `space`.
    pub fn classify(&self, space: &SpaceId, header: &Header) -> Result<Fit, ChainError> {
        if header.space != *space {
            return Err(ChainError::WrongSpace {
                expected: *space,
                found: header.space,
            });
        }
        if header.seq < self.count {
            return Ok(Fit::AlreadyHeld);
        }
        if header.seq > self.count {
            return Err(ChainError::Gap {
                expected: self.count,
                got: header.seq,
            });
        }
        let expected_prev = if self.count == 0 {
            EntryHash::ZERO
        } else {
            self.hash
        };
        if header.prev != expected_prev {
            return Err(ChainError::WrongPrevious { seq: header.seq });
        }
        Ok(Fit::Next)
    }

    /// The head after appending the entry with `hash`.
    pub fn advanced(&self, hash: EntryHash) -> LogHead {
        LogHead {
            count: self.count + 1,
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Class, PartnerSeen};
    use crate::DeviceKey;

    fn header(seq: u64, prev: EntryHash) -> Header {
        Header {
            version: 1,
            class: Class::Shared,
            space: SpaceId([1; 16]),
            author: DeviceKey([2; 32]),
            seq,
            prev,
            time_ms: 0,
            partner_seen: PartnerSeen::default(),
            nonce: [0; 24],
            ciphertext_len: 0,
            ciphertext_hash: [0; 32],
        }
    }

    #[test]
    fn classifies_next_gap_previous_and_held() {
        let space = SpaceId([1; 16]);
        let empty = LogHead::default();
        assert_eq!(
            empty.classify(&space, &header(0, EntryHash::ZERO)),
            Ok(Fit::Next)
        );
        assert_eq!(
            empty.classify(&space, &header(0, EntryHash([9; 32]))),
            Err(ChainError::WrongPrevious { seq: 0 })
        );
        assert_eq!(
            empty.classify(&space, &header(1, EntryHash::ZERO)),
            Err(ChainError::Gap {
                expected: 0,
                got: 1
            })
        );
        let one = empty.advanced(EntryHash([7; 32]));
        assert_eq!(
            one.classify(&space, &header(1, EntryHash([7; 32]))),
            Ok(Fit::Next)
        );
        assert_eq!(
            one.classify(&space, &header(1, EntryHash([6; 32]))),
            Err(ChainError::WrongPrevious { seq: 1 })
        );
        assert_eq!(
            one.classify(&space, &header(0, EntryHash::ZERO)),
            Ok(Fit::AlreadyHeld)
        );
        assert!(matches!(
            one.classify(&SpaceId([2; 16]), &header(1, EntryHash([7; 32]))),
            Err(ChainError::WrongSpace { .. })
        ));
    }
}
