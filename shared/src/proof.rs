//! Verifiable exports: a few chosen entries of a log, with what a third party needs to check,
//! offline and with no secret key, that each was signed by its author and sits at its place in
//! one unbroken log whose head both partners signed.
//!
//! For one author's log, a proof holds:
//!
//! * a **checkpoint** of that author at seq `n` with its entry key: its content is the Merkle
//!   root over the ids of the author's entries `0..n` (see [`crate::merkle`]);
//! * the **countersignature**: the header and signature of a partner entry whose header says the
//!   partner had verified exactly `n + 1` entries of this log, ending with that checkpoint. The
//!   partner's device recomputes a checkpoint's root from the chain it verified before it writes
//!   any entry that acknowledges it, so this signature vouches for the root;
//! * each disclosed entry in wire form with its entry key and its audit path to the root.
//!
//! Nothing else of the log is disclosed: the audit paths are hashes of hashes of entry ids, and
//! the checkpoint says how many entries there are. [`verify_log`] checks all of it.

use crate::entry::{verify_signed_header, Class, Entry, EntryError, EntryKey};
use crate::merkle::{verify_inclusion, TreeHash, MAX_PROOF_LEN};
use crate::payload::{Content, Payload};
use crate::{DeviceKey, EntryHash, SpaceId};

/// Most entries one log proof may disclose.
pub const MAX_DISCLOSED: usize = 10_000;

/// One disclosed entry.
#[derive(Clone, Debug)]
pub struct Disclosure {
    /// The entry in wire form.
    pub entry: Vec<u8>,
    /// The key that opens this entry and no other.
    pub entry_key: EntryKey,
    /// Its audit path to the checkpoint's root.
    pub path: Vec<TreeHash>,
}

/// The proof for the disclosed entries of one author's log.
#[derive(Clone, Debug)]
pub struct LogProof {
    /// The author's checkpoint (wire form) whose root covers the disclosed entries.
    pub checkpoint: Vec<u8>,
    /// The checkpoint's entry key.
    pub checkpoint_key: EntryKey,
    /// `header | signature` of the partner entry that acknowledges the checkpoint.
    pub countersignature: Vec<u8>,
    /// The disclosed entries.
    pub entries: Vec<Disclosure>,
}

/// An entry whose place and signature were checked, with its plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenEntry {
    /// Position in the author's log.
    pub seq: u64,
    /// Its id.
    pub id: EntryHash,
    /// Author time (ms).
    pub time_ms: u64,
    /// The decrypted payload.
    pub payload: Payload,
}

/// What a verified log proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenLog {
    /// The author.
    pub author: DeviceKey,
    /// Number of entries in the log before the checkpoint (the root's size).
    pub size: u64,
    /// The checkpoint's id.
    pub checkpoint: EntryHash,
    /// The checkpoint's author time (ms).
    pub checkpoint_time_ms: u64,
    /// The partner device that acknowledged the checkpoint.
    pub countersigner: DeviceKey,
    /// Seq of the countersigning entry in the partner's log.
    pub countersigner_seq: u64,
    /// The countersigning entry's author time (ms).
    pub countersigned_time_ms: u64,
    /// The disclosed entries, in the order given.
    pub entries: Vec<ProvenEntry>,
}

/// Why a proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// An entry or header does not decode, or its signature is wrong.
    #[error("{what}: {source}")]
    Entry {
        /// Which part of the proof.
        what: String,
        /// The failure.
        source: EntryError,
    },
    /// Parts of the proof belong to different spaces.
    #[error("{0} belongs to another space")]
    WrongSpace(String),
    /// The checkpoint is not a checkpoint with a Merkle root.
    #[error("the checkpoint entry is not a checkpoint with a root over its log")]
    NotACheckpoint,
    /// A disclosed entry was not written by the log's author.
    #[error("entry {0} was written by another device than the log's author")]
    WrongAuthor(String),
    /// The countersigning entry does not acknowledge the checkpoint.
    #[error("the countersignature does not acknowledge this checkpoint (it acknowledges {count} entries ending with {head})")]
    NotCountersigned {
        /// Entries the countersigning header acknowledges.
        count: u64,
        /// The last entry it acknowledges.
        head: String,
    },
    /// The countersignature is by the log's own author.
    #[error("the countersignature is by the log's own author, not the partner")]
    SelfCountersigned,
    /// A disclosed entry lies beyond the checkpoint.
    #[error("entry {id} at seq {seq} is not before the checkpoint at seq {size}")]
    BeyondCheckpoint {
        /// The entry id.
        id: String,
        /// Its seq.
        seq: u64,
        /// The checkpoint's seq.
        size: u64,
    },
    /// A disclosed entry's audit path does not lead to the root.
    #[error("entry {0} is not part of the log the checkpoint commits to")]
    NotIncluded(String),
    /// Too many entries or too long a path.
    #[error("the proof is larger than any honest proof")]
    TooLarge,
}

fn entry_err(what: impl Into<String>) -> impl FnOnce(EntryError) -> ProofError {
    let what = what.into();
    move |source| ProofError::Entry { what, source }
}

/// Checks one log proof for `space`.
pub fn verify_log(space: &SpaceId, proof: &LogProof) -> Result<ProvenLog, ProofError> {
    if proof.entries.len() > MAX_DISCLOSED {
        return Err(ProofError::TooLarge);
    }
    let checkpoint = Entry::from_bytes(&proof.checkpoint).map_err(entry_err("the checkpoint"))?;
    if checkpoint.header.space != *space {
        return Err(ProofError::WrongSpace("the checkpoint".into()));
    }
    if checkpoint.header.class != Class::Control {
        return Err(ProofError::NotACheckpoint);
    }
    let root = match checkpoint
        .open_with(&proof.checkpoint_key)
        .map_err(entry_err("the checkpoint"))?
        .content()
    {
        Ok(Content::Checkpoint(Some(content))) => content.own_root,
        _ => return Err(ProofError::NotACheckpoint),
    };
    let author = checkpoint.header.author;
    let size = checkpoint.header.seq;

    let (counter, _) =
        verify_signed_header(&proof.countersignature).map_err(entry_err("the countersignature"))?;
    if counter.space != *space {
        return Err(ProofError::WrongSpace("the countersignature".into()));
    }
    if counter.author == author {
        return Err(ProofError::SelfCountersigned);
    }
    if counter.partner_seen.count != size + 1 || counter.partner_seen.head != checkpoint.hash {
        return Err(ProofError::NotCountersigned {
            count: counter.partner_seen.count,
            head: counter.partner_seen.head.short(),
        });
    }

    let mut entries = Vec::with_capacity(proof.entries.len());
    for disclosed in &proof.entries {
        if disclosed.path.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLarge);
        }
        let entry = Entry::from_bytes(&disclosed.entry).map_err(entry_err("a disclosed entry"))?;
        let id = entry.hash.short();
        if entry.header.space != *space {
            return Err(ProofError::WrongSpace(format!("entry {id}")));
        }
        if entry.header.author != author {
            return Err(ProofError::WrongAuthor(id));
        }
        if entry.header.seq >= size {
            return Err(ProofError::BeyondCheckpoint {
                id,
                seq: entry.header.seq,
                size,
            });
        }
        if !verify_inclusion(&entry.hash, entry.header.seq, size, &disclosed.path, &root) {
            return Err(ProofError::NotIncluded(id));
        }
        let payload = entry
            .open_with(&disclosed.entry_key)
            .map_err(entry_err(format!("entry {id}")))?;
        entries.push(ProvenEntry {
            seq: entry.header.seq,
            id: entry.hash,
            time_ms: entry.header.time_ms,
            payload,
        });
    }
    Ok(ProvenLog {
        author,
        size,
        checkpoint: checkpoint.hash,
        checkpoint_time_ms: checkpoint.header.time_ms,
        countersigner: counter.author,
        countersigner_seq: counter.seq,
        countersigned_time_ms: counter.time_ms,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Draft, PartnerSeen};
    use crate::keys::{DeviceSecrets, SpaceKey};
    use crate::merkle::{inclusion_proof, root};
    use crate::payload::{kind, Checkpoint, TextContent};

    struct Log {
        author: DeviceSecrets,
        entries: Vec<Entry>,
    }

    impl Log {
        fn append(&mut self, key: &SpaceKey, payload: Payload, class: Class, seen: PartnerSeen) {
            let seq = self.entries.len() as u64;
            let prev = self.entries.last().map(|e| e.hash).unwrap_or_default();
            let draft = Draft {
                class,
                space: SpaceId([9; 16]),
                seq,
                prev,
                time_ms: 1_000 + seq,
                partner_seen: seen,
                nonce: [seq as u8; 24],
            };
            self.entries
                .push(Entry::seal(draft, &payload, key, &self.author).unwrap());
        }
        fn ids(&self) -> Vec<EntryHash> {
            self.entries.iter().map(|e| e.hash).collect()
        }
    }

    fn note(text: &str) -> Payload {
        Payload::text(
            kind::NOTE,
            &TextContent {
                text: text.into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        )
    }

    /// Alex writes 5 notes and a checkpoint; Sam acknowledges it.
    fn fixture() -> (SpaceKey, LogProof, Log) {
        let key = SpaceKey::from_bytes([3; 32]);
        let mut alex = Log {
            author: DeviceSecrets::from_seeds([1; 32], [2; 32]),
            entries: Vec::new(),
        };
        let mut sam = Log {
            author: DeviceSecrets::from_seeds([5; 32], [6; 32]),
            entries: Vec::new(),
        };
        for i in 0..5 {
            alex.append(
                &key,
                note(&format!("n{i}")),
                Class::Shared,
                PartnerSeen::default(),
            );
        }
        let own_root = root(&alex.ids());
        let cp = Payload::checkpoint(&Checkpoint {
            own_root,
            countersign: true,
        });
        alex.append(&key, cp, Class::Control, PartnerSeen::default());
        let seen = PartnerSeen {
            count: 6,
            head: alex.entries[5].hash,
        };
        sam.append(&key, note("ok"), Class::Shared, seen);
        let counter = sam.entries[0].to_bytes()[..262].to_vec();
        let ids = alex.ids();
        let proof = LogProof {
            checkpoint: alex.entries[5].to_bytes(),
            checkpoint_key: alex.entries[5].entry_key(&key),
            countersignature: counter,
            entries: [1usize, 3]
                .iter()
                .map(|&i| Disclosure {
                    entry: alex.entries[i].to_bytes(),
                    entry_key: alex.entries[i].entry_key(&key),
                    path: inclusion_proof(&ids[..5], i).unwrap(),
                })
                .collect(),
        };
        (key, proof, alex)
    }

    #[test]
    fn an_honest_proof_verifies_and_discloses_only_the_chosen_entries() {
        let (_, proof, alex) = fixture();
        let proven = verify_log(&SpaceId([9; 16]), &proof).unwrap();
        assert_eq!(proven.size, 5);
        assert_eq!(proven.author, alex.author.device_key());
        let seqs: Vec<u64> = proven.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(proven.entries[1].payload, note("n3"));
    }

    #[test]
    fn any_flipped_byte_breaks_the_proof() {
        let (_, proof, _) = fixture();
        let space = SpaceId([9; 16]);
        for part in 0..3 {
            let len = match part {
                0 => proof.checkpoint.len(),
                1 => proof.countersignature.len(),
                _ => proof.entries[0].entry.len(),
            };
            for i in (0..len).step_by(7) {
                let mut bad = proof.clone();
                match part {
                    0 => bad.checkpoint[i] ^= 1,
                    1 => bad.countersignature[i] ^= 1,
                    _ => bad.entries[0].entry[i] ^= 1,
                }
                assert!(verify_log(&space, &bad).is_err(), "part {part} byte {i}");
            }
        }
        let mut bad = proof.clone();
        bad.entries[0].path[0].0[3] ^= 1;
        assert!(verify_log(&space, &bad).is_err());
        let mut bad = proof.clone();
        bad.entries[0].entry_key.0[0] ^= 1;
        assert!(verify_log(&space, &bad).is_err());
        assert!(verify_log(&SpaceId([8; 16]), &proof).is_err());
    }

    #[test]
    fn an_entry_off_the_log_or_a_self_countersignature_is_refused() {
        let (key, proof, alex) = fixture();
        let space = SpaceId([9; 16]);
        // Alex signs a different entry at seq 1 (a fork) and tries to pass it off.
        let mut fork = Log {
            author: DeviceSecrets::from_seeds([1; 32], [2; 32]),
            entries: alex.entries[..1].to_vec(),
        };
        fork.append(&key, note("forged"), Class::Shared, PartnerSeen::default());
        let mut bad = proof.clone();
        bad.entries[0].entry = fork.entries[1].to_bytes();
        bad.entries[0].entry_key = fork.entries[1].entry_key(&key);
        assert!(matches!(
            verify_log(&space, &bad),
            Err(ProofError::NotIncluded(_))
        ));
        // Alex countersigning Alex's own checkpoint proves nothing.
        let mut bad = proof.clone();
        bad.countersignature = alex.entries[4].to_bytes()[..262].to_vec();
        assert!(verify_log(&space, &bad).is_err());
    }
}
