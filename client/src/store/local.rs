//! The store's small sealed values: space configuration, pull cursor, leaving, busy-only plan
//! details, the journal, evidence, frozen logs, acknowledged counts and what the person has
//! looked at of the partner's entries.

use super::{
    decode_u64, Store, StoreError, META_ACKED, META_CURSOR, META_FROZEN, META_FUTURE,
    META_JOURNAL_BACKUP, META_LEFT, META_PARTNER_LOOKED, META_SPACE,
};
use candor_shared::invite::RelayFingerprint;
use candor_shared::journal::JournalRecord;
use candor_shared::keys::DevicePublic;
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A journal record as the local `journal` tree keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJournal {
    /// The record.
    pub record: JournalRecord,
    /// The log entry backing it up at the relay, if any.
    pub backed_up: Option<EntryHash>,
}

/// The space this device belongs to, as recorded at pairing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceConfig {
    /// The space id.
    pub space: SpaceId,
    /// The relay's address.
    pub relay: String,
    /// The relay's pinned certificate fingerprint.
    pub fingerprint: RelayFingerprint,
    /// Whether this device created the space.
    pub creator: bool,
    /// The partner's device, once known and its membership proof checked.
    pub partner: Option<DevicePublic>,
}

/// Entries this device refused, kept as evidence with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it was recorded (ms).
    pub time_ms: u64,
    /// Why the entries were refused.
    pub reason: String,
    /// The entries in wire form (e.g. both versions of an equivocated entry).
    pub entries: Vec<Vec<u8>>,
}

impl Store {
    /// Whether journal entries are backed up to the relay.
    pub fn journal_backup(&self) -> Result<bool, StoreError> {
        Ok(self
            .meta
            .get(META_JOURNAL_BACKUP)?
            .is_some_and(|v| v.as_slice() == [1]))
    }

    /// Turns journal backup on or off, durably.
    pub fn set_journal_backup(&self, on: bool) -> Result<(), StoreError> {
        self.meta.insert(META_JOURNAL_BACKUP, &[u8::from(on)])?;
        self.flush()
    }

    /// Every journal record held locally.
    pub fn journal_records(&self) -> Result<Vec<StoredJournal>, StoreError> {
        self.journal
            .iter()
            .map(|item| {
                let (_, v) = item?;
                postcard::from_bytes(&v)
                    .map_err(|e| StoreError::Corrupt(format!("journal record: {e}")))
            })
            .collect()
    }

    /// Keeps a journal record locally (replacing the stored copy of the same record, e.g. to
    /// note its backup), durably.
    pub fn put_journal(&self, stored: &StoredJournal) -> Result<(), StoreError> {
        let bytes = Zeroizing::new(
            postcard::to_stdvec(stored)
                .map_err(|e| StoreError::Corrupt(format!("journal record: {e}")))?,
        );
        self.journal.insert(&stored.record.id, &bytes)?;
        self.flush()
    }

    /// The space configuration, if paired.
    pub fn space_config(&self) -> Result<Option<SpaceConfig>, StoreError> {
        self.meta
            .get(META_SPACE)?
            .map(|v| {
                postcard::from_bytes(&v)
                    .map_err(|e| StoreError::Corrupt(format!("space configuration: {e}")))
            })
            .transpose()
    }

    /// Records the space configuration, durably.
    pub fn set_space_config(&self, config: &SpaceConfig) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(config)
            .map_err(|e| StoreError::Corrupt(format!("space configuration: {e}")))?;
        self.meta.insert(META_SPACE, &bytes)?;
        self.flush()
    }

    /// When this device left the space, if it did.
    pub fn left_at(&self) -> Result<Option<u64>, StoreError> {
        decode_u64(self.meta.get(META_LEFT)?, "left marker")
    }

    /// Records that this device left the space, durably.
    pub fn set_left(&self, at_ms: u64) -> Result<(), StoreError> {
        self.meta.insert(META_LEFT, &at_ms.to_be_bytes())?;
        self.flush()
    }

    /// Text kept only on this device (never synced), e.g. the details of a busy-only plan.
    pub fn local_note(&self, id: &EntryHash) -> Result<Option<String>, StoreError> {
        Ok(self
            .local
            .get(&id.0)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Keeps text on this device only, durably.
    pub fn set_local_note(&self, id: &EntryHash, text: &str) -> Result<(), StoreError> {
        self.local.insert(&id.0, text.as_bytes())?;
        self.flush()
    }

    /// Keeps refused entries as evidence, durably (a re-delivery of the same evidence is not
    /// stored twice), within the bounds of [`crate::evidence::bounded`].
    pub fn record_evidence(&self, evidence: &Evidence) -> Result<(), StoreError> {
        let held: Vec<usize> = self
            .evidence
            .iter()
            .map(|i| i.map(|(_, v)| v.len()))
            .collect::<Result<_, _>>()?;
        let Some(evidence) =
            crate::evidence::bounded(evidence.clone(), held.len(), held.iter().sum())
        else {
            return Ok(());
        };
        let evidence = &evidence;
        let mut hasher = blake3::Hasher::new();
        for entry in &evidence.entries {
            hasher.update(entry);
        }
        hasher.update(evidence.reason.as_bytes());
        let key = hasher.finalize();
        if self.evidence.contains_key(key.as_bytes())? {
            return Ok(());
        }
        let value = postcard::to_stdvec(evidence)
            .map_err(|e| StoreError::Corrupt(format!("evidence: {e}")))?;
        self.evidence.insert(key.as_bytes(), &value)?;
        self.flush()
    }

    /// All evidence kept, oldest first.
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut all: Vec<Evidence> = self
            .evidence
            .iter()
            .map(|item| {
                postcard::from_bytes(&item?.1)
                    .map_err(|e| StoreError::Corrupt(format!("evidence: {e}")))
            })
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|e| e.time_ms);
        Ok(all)
    }

    /// Entries this device flagged as dated in the future when it met them: id → ms ahead.
    pub fn future_dated(&self) -> Result<std::collections::BTreeMap<EntryHash, u64>, StoreError> {
        Ok(match self.meta.get(META_FUTURE)? {
            Some(bytes) => postcard::from_bytes::<Vec<(EntryHash, u64)>>(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("future-dated flags: {e}")))?
                .into_iter()
                .collect(),
            None => std::collections::BTreeMap::new(),
        })
    }

    /// The time of `author`'s latest entry, unless it is flagged as dated in the future.
    pub(super) fn latest_unflagged_time(
        &self,
        author: &DeviceKey,
    ) -> Result<Option<u64>, StoreError> {
        let Some(last) = self
            .log
            .scan_prefix(author.0)
            .values()
            .next_back()
            .transpose()?
        else {
            return Ok(None);
        };
        let flagged = candor_shared::entry::id_of(&last)
            .is_some_and(|id| self.future_dated().is_ok_and(|f| f.contains_key(&id)));
        Ok((!flagged)
            .then(|| candor_shared::entry::peek_time(&last))
            .flatten())
    }

    /// Adds flags of entries dated in the future, keeping at most `cap`. Not flushed on its own.
    pub fn add_future_dated(
        &self,
        flags: &[(EntryHash, u64)],
        cap: usize,
    ) -> Result<(), StoreError> {
        let mut all = self.future_dated()?;
        for (id, ahead) in flags {
            if all.len() < cap {
                all.entry(*id).or_insert(*ahead);
            }
        }
        let list: Vec<(EntryHash, u64)> = all.into_iter().collect();
        let bytes = postcard::to_stdvec(&list)
            .map_err(|e| StoreError::Corrupt(format!("future-dated flags: {e}")))?;
        self.meta.insert(META_FUTURE, &bytes)
    }

    /// Freezes an author's log: no further entries of it are accepted (after equivocation).
    pub fn freeze(&self, author: &DeviceKey) -> Result<(), StoreError> {
        self.meta.insert(META_FROZEN, &author.0)?;
        self.flush()
    }

    /// Whether an author's log is frozen.
    pub fn is_frozen(&self, author: &DeviceKey) -> Result<bool, StoreError> {
        Ok(self
            .meta
            .get(META_FROZEN)?
            .is_some_and(|v| v.as_slice() == author.0))
    }

    /// How many entries of this device's own log the relay has acknowledged as durable.
    pub fn acknowledged_own(&self) -> Result<u64, StoreError> {
        Ok(decode_u64(self.meta.get(META_ACKED)?, "acknowledged count")?.unwrap_or(0))
    }

    /// Records that the relay acknowledged own entries up to `count` (never lowers it). Not
    /// flushed: a lost update only means a later notice is missed.
    pub fn set_acknowledged_own(&self, count: u64) -> Result<(), StoreError> {
        let _guard = self.lock();
        if count > self.acknowledged_own()? {
            self.meta.insert(META_ACKED, &count.to_be_bytes())?;
        }
        Ok(())
    }

    /// How many of the partner's log entries this person has looked at (`candor today` shows
    /// those from here on as new). A local marker: never part of any entry.
    pub fn partner_looked(&self) -> Result<u64, StoreError> {
        Ok(decode_u64(self.meta.get(META_PARTNER_LOOKED)?, "partner marker")?.unwrap_or(0))
    }

    /// Marks the partner's entries up to `count` as looked at (never lowers the marker), durably.
    pub fn set_partner_looked(&self, count: u64) -> Result<(), StoreError> {
        let _guard = self.lock();
        if count > self.partner_looked()? {
            self.meta
                .insert(META_PARTNER_LOOKED, &count.to_be_bytes())?;
            self.flush()?;
        }
        Ok(())
    }

    /// The pull cursor.
    pub fn cursor(&self) -> Result<u64, StoreError> {
        Ok(decode_u64(self.meta.get(META_CURSOR)?, "cursor")?.unwrap_or(0))
    }

    /// Records the pull cursor. Not flushed: see [`Store::flush`].
    pub fn set_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        self.meta.insert(META_CURSOR, &cursor.to_be_bytes())?;
        Ok(())
    }
}
