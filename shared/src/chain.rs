//! Pure verification of one author's log: does this entry extend the chain we hold?
//!
//! Both the relay (before it stores a pushed entry) and devices (before they store or show a
//! pulled one) use [`LogHead::classify`], so they agree on what "fits" means: seq grows by exactly
//! one, the previous-hash field names the entry we hold at `seq - 1`, and an entry at a seq we
//! already hold is either the very same entry (a harmless re-delivery) or proof of equivocation.

use crate::entry::Header;
use crate::{DeviceKey, EntryHash, SpaceId};
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

/// The logs as they will be once a batch of entries, checked but not yet stored, is stored:
/// each author's head and the hashes of its pending entries over the head its store holds.
///
/// The relay (a push), its stores (the push's one write) and a device (a pulled page) check a
/// batch entry by entry and store it at once, so every entry after the first must be checked
/// against the heads the earlier ones leave. The caller reads an author's stored head once, the
/// first time the author appears ([`PendingHeads::get`] is `None`), and records each entry that
/// fits with [`PendingHeads::push`].
#[derive(Clone, Debug, Default)]
pub struct PendingHeads {
    logs: Vec<(DeviceKey, PendingLog)>,
}

#[derive(Clone, Debug)]
struct PendingLog {
    /// The head the store holds.
    stored: LogHead,
    /// The pending entries' hashes, from seq `stored.count` on.
    hashes: Vec<EntryHash>,
}

impl PendingLog {
    fn head(&self) -> LogHead {
        match self.hashes.last() {
            Some(hash) => LogHead {
                count: self.stored.count + self.hashes.len() as u64,
                hash: *hash,
            },
            None => self.stored,
        }
    }
}

impl PendingHeads {
    /// `author`'s head after the pending entries, if any of the author's are pending.
    pub fn get(&self, author: &DeviceKey) -> Option<LogHead> {
        self.log(author).map(PendingLog::head)
    }

    /// `author`'s head after the pending entries; `stored` reads the head the store holds,
    /// when none of the author's entries are pending.
    pub fn head<E>(
        &self,
        author: &DeviceKey,
        stored: impl FnOnce() -> Result<LogHead, E>,
    ) -> Result<LogHead, E> {
        match self.get(author) {
            Some(head) => Ok(head),
            None => stored(),
        }
    }

    /// The hash of the pending entry at `author`'s `seq`, if that entry is pending.
    pub fn hash_at(&self, author: &DeviceKey, seq: u64) -> Option<EntryHash> {
        let log = self.log(author)?;
        let index = seq.checked_sub(log.stored.count)?;
        log.hashes.get(usize::try_from(index).ok()?).copied()
    }

    /// The first seq and the hashes of `author`'s pending entries (empty if none).
    pub fn pending(&self, author: &DeviceKey) -> (u64, &[EntryHash]) {
        match self.log(author) {
            Some(log) => (log.stored.count, &log.hashes),
            None => (0, &[]),
        }
    }

    /// Records a pending entry of `author` with `hash` that extends `head`: the head
    /// [`PendingHeads::head`] gave (for the author's first pending entry, the stored head).
    pub fn push(&mut self, author: DeviceKey, head: LogHead, hash: EntryHash) {
        match self.logs.iter_mut().find(|(a, _)| *a == author) {
            Some((_, log)) => log.hashes.push(hash),
            None => self.logs.push((
                author,
                PendingLog {
                    stored: head,
                    hashes: vec![hash],
                },
            )),
        }
    }

    /// Each author with pending entries and its head once they are stored.
    pub fn heads(&self) -> impl Iterator<Item = (DeviceKey, LogHead)> + '_ {
        self.logs.iter().map(|(author, log)| (*author, log.head()))
    }

    fn log(&self, author: &DeviceKey) -> Option<&PendingLog> {
        self.logs
            .iter()
            .find(|(a, _)| a == author)
            .map(|(_, log)| log)
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

    #[test]
    fn pending_heads_advance_over_the_stored_head() {
        let (a, b) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
        let stored = LogHead {
            count: 5,
            hash: EntryHash([5; 32]),
        };
        let mut pending = PendingHeads::default();
        assert_eq!(pending.get(&a), None);
        let head = pending.head(&a, || Ok::<_, ()>(stored)).unwrap();
        pending.push(a, head, EntryHash([6; 32]));
        let head = pending.head(&a, || Err(())).unwrap();
        assert_eq!(head, stored.advanced(EntryHash([6; 32])));
        pending.push(a, head, EntryHash([7; 32]));
        assert_eq!(pending.get(&a).map(|h| h.count), Some(7));
        assert_eq!(pending.hash_at(&a, 4), None, "stored, not pending");
        assert_eq!(pending.hash_at(&a, 6), Some(EntryHash([7; 32])));
        assert_eq!(pending.hash_at(&a, 7), None);
        assert_eq!(pending.hash_at(&b, 0), None);
        assert_eq!(pending.pending(&a).0, 5);
        assert_eq!(pending.pending(&a).1.len(), 2);
        pending.push(b, LogHead::default(), EntryHash([1; 32]));
        let heads: Vec<_> = pending.heads().collect();
        assert_eq!(heads.len(), 2);
        assert_eq!(
            heads[1],
            (b, LogHead::default().advanced(EntryHash([1; 32])))
        );
    }
}
