//! The device's local store: both logs, in sled, holding only verified entries.
//!
//! Trees:
//!
//! * `log`: `author (32) | seq (8, BE)` → entry in wire form. Own entries are written by
//!   [`Store::append_own`]; the partner's only by [`Store::apply_incoming`], after
//!   [`verify_incoming`] accepted them. Nothing is ever overwritten or deleted.
//! * `ids`: entry hash → `author | seq`, to find entries by id.
//! * `meta`: the space configuration, the pull cursor, whether this device left the space.
//! * `local`: text that never leaves this device (the details of busy-only plans).
//! * `evidence`: entries refused at sync (forged, out of place, equivocated), kept as proof.
//!
//! Every write path flushes before it reports success, so an entry the CLI said it wrote survives
//! a crash (see SECURITY.md for what sled's flush guarantees).

use candor_shared::chain::LogHead;
use candor_shared::entry::{Class, Draft, Entry, EntryError, PartnerSeen};
use candor_shared::invite::RelayFingerprint;
use candor_shared::keys::{DevicePublic, DeviceSecrets, SpaceKey};
use candor_shared::payload::Payload;
use candor_shared::sync::{
    verify_incoming, verify_prechecked, Incoming, IncomingError, LocalLog, LogKeys, Prechecked,
};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("the store is in use by another candor process")]
    Locked,
    /// sled failed.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// Stored data does not decode.
    #[error("the local store is damaged: {0}")]
    Corrupt(String),
    /// A new entry could not be sealed.
    #[error("could not seal entry: {0}")]
    Seal(#[from] EntryError),
    /// An incoming entry was refused.
    #[error(transparent)]
    Refused(#[from] IncomingError),
    /// The author's log is frozen after proof of equivocation.
    #[error("your partner's log is frozen: their device signed two different entries at one position (see `candor verify`)")]
    Frozen,
    /// The transaction failed.
    #[error("transaction failed: {0}")]
    Transaction(String),
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

const META_SPACE: &[u8] = b"space";
const META_CURSOR: &[u8] = b"cursor";
const META_LEFT: &[u8] = b"left";
const META_FROZEN: &[u8] = b"frozen";
const META_ACKED: &[u8] = b"acked_own";

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

/// The sled-backed store.
pub struct Store {
    db: sled::Db,
    /// sled's data file, `fdatasync`ed after each flush (see [`Store::flush`]).
    data_file: Option<std::fs::File>,
    log: sled::Tree,
    ids: sled::Tree,
    meta: sled::Tree,
    local: sled::Tree,
    evidence: sled::Tree,
    writes: Mutex<()>,
    /// Group commit: tickets handed out by [`Store::flush`], and the highest one made durable.
    flush_tickets: AtomicU64,
    flushed: Mutex<u64>,
}

fn log_key(author: &DeviceKey, seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&author.0);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn decode_log_key(key: &[u8]) -> Result<(DeviceKey, u64), StoreError> {
    let bytes: [u8; 40] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("log key has the wrong length".into()))?;
    let mut author = [0u8; 32];
    author.copy_from_slice(&bytes[..32]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[32..]);
    Ok((DeviceKey(author), u64::from_be_bytes(seq)))
}

/// The id of an entry this store verified before storing it (no need to verify it again).
fn stored_id(bytes: &[u8]) -> Result<EntryHash, StoreError> {
    candor_shared::entry::id_of(bytes)
        .ok_or_else(|| StoreError::Corrupt("a stored entry is truncated".into()))
}

fn hash_from(value: &[u8]) -> Result<EntryHash, StoreError> {
    value
        .try_into()
        .map(EntryHash)
        .map_err(|_| StoreError::Corrupt("hash has the wrong length".into()))
}

impl Store {
    /// Opens (or creates) the store at `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked
            }
            _ => StoreError::Db(e),
        })?;
        Ok(Self {
            data_file: std::fs::File::open(dir.join("db")).ok(),
            log: db.open_tree("log")?,
            ids: db.open_tree("ids")?,
            meta: db.open_tree("meta")?,
            local: db.open_tree("local")?,
            evidence: db.open_tree("evidence")?,
            db,
            writes: Mutex::new(()),
            flush_tickets: AtomicU64::new(0),
            flushed: Mutex::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every write so far durable: sled's flush (which uses `sync_file_range`, enough to
    /// survive a process crash) followed by `fdatasync` of its data file (enough for power loss).
    ///
    /// Concurrent callers share flushes (group commit): each takes a ticket after its writes,
    /// and a flush that began after a ticket was taken covers that caller's writes, so it
    /// returns without flushing again.
    pub fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.flush_tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if *flushed >= ticket {
            return Ok(());
        }
        // Every ticket up to here was taken after its writes: this flush covers them all.
        let covers = self.flush_tickets.load(Ordering::SeqCst);
        self.db.flush()?;
        if let Some(file) = &self.data_file {
            file.sync_data()
                .map_err(|e| StoreError::Db(sled::Error::Io(e)))?;
        }
        *flushed = covers;
        Ok(())
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
        self.meta.insert(META_SPACE, bytes)?;
        self.flush()
    }

    /// When this device left the space, if it did.
    pub fn left_at(&self) -> Result<Option<u64>, StoreError> {
        self.meta
            .get(META_LEFT)?
            .map(|v| {
                v.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("left marker".into()))
            })
            .transpose()
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
            .get(id.0)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Keeps text on this device only, durably.
    pub fn set_local_note(&self, id: &EntryHash, text: &str) -> Result<(), StoreError> {
        self.local.insert(id.0, text.as_bytes())?;
        self.flush()
    }

    /// Keeps refused entries as evidence, durably (a re-delivery of the same evidence is not
    /// stored twice).
    pub fn record_evidence(&self, evidence: &Evidence) -> Result<(), StoreError> {
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
        self.evidence.insert(key.as_bytes(), value)?;
        self.flush()
    }

    /// All evidence kept, oldest first.
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut all: Vec<Evidence> = self
            .evidence
            .iter()
            .values()
            .map(|v| {
                postcard::from_bytes(&v?).map_err(|e| StoreError::Corrupt(format!("evidence: {e}")))
            })
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|e| e.time_ms);
        Ok(all)
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
            .is_some_and(|v| v.as_ref() == author.0))
    }

    /// How many entries of this device's own log the relay has acknowledged as durable.
    pub fn acknowledged_own(&self) -> Result<u64, StoreError> {
        Ok(match self.meta.get(META_ACKED)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("acknowledged count".into()))?,
            ),
            None => 0,
        })
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

    /// The pull cursor.
    pub fn cursor(&self) -> Result<u64, StoreError> {
        Ok(match self.meta.get(META_CURSOR)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("cursor".into()))?,
            ),
            None => 0,
        })
    }

    /// Records the pull cursor. Not flushed: see [`Store::flush`].
    pub fn set_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        self.meta.insert(META_CURSOR, &cursor.to_be_bytes())?;
        Ok(())
    }

    /// The head of `author`'s log as this device holds it.
    pub fn head(&self, author: &DeviceKey) -> Result<LogHead, StoreError> {
        match self.log.scan_prefix(author.0).next_back() {
            None => Ok(LogHead::default()),
            Some(item) => {
                let (key, value) = item?;
                let (_, seq) = decode_log_key(&key)?;
                Ok(LogHead {
                    count: seq + 1,
                    hash: stored_id(&value)?,
                })
            }
        }
    }

    /// Hash of `author`'s entry at `seq`, if held.
    pub fn hash_at(&self, author: &DeviceKey, seq: u64) -> Result<Option<EntryHash>, StoreError> {
        self.log
            .get(log_key(author, seq))?
            .map(|v| stored_id(&v))
            .transpose()
    }

    /// The raw entries of `author`'s log in seq order, from `from_seq`.
    pub fn log_entries(
        &self,
        author: &DeviceKey,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        let start = log_key(author, from_seq);
        let end = log_key(author, u64::MAX);
        self.log.range(start..=end).map(|item| {
            let (key, value) = item?;
            let (_, seq) = decode_log_key(&key)?;
            Ok((seq, value))
        })
    }

    /// Finds entries whose id starts with the hex `prefix`.
    pub fn find_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(DeviceKey, u64, EntryHash)>, StoreError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let even = &prefix[..prefix.len() - prefix.len() % 2];
        let Ok(bytes) = hex::decode(even) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for item in self.ids.scan_prefix(&bytes) {
            let (hash, location) = item?;
            let hash = hash_from(&hash)?;
            if hash.to_hex().starts_with(&prefix) {
                let (author, seq) = decode_log_key(&location)?;
                found.push((author, seq, hash));
            }
        }
        Ok(found)
    }

    /// Inserts entries (log and id index) in one transaction: all or none.
    fn insert_entries(&self, entries: &[Entry]) -> Result<(), StoreError> {
        use sled::Transactional;
        let rows: Vec<([u8; 40], Vec<u8>, EntryHash)> = entries
            .iter()
            .map(|e| {
                (
                    log_key(&e.header.author, e.header.seq),
                    e.to_bytes(),
                    e.hash,
                )
            })
            .collect();
        (&self.log, &self.ids)
            .transaction(|(log, ids)| {
                for (key, bytes, hash) in &rows {
                    log.insert(&key[..], bytes.as_slice())?;
                    ids.insert(&hash.0[..], &key[..])?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| StoreError::Transaction(format!("{e:?}")))
    }

    /// Seals and appends entries to this device's own log, then flushes; returns them.
    pub fn append_own(
        &self,
        writer: &LogWriter<'_>,
        items: Vec<(Class, Payload)>,
        now_ms: u64,
        mut nonce: impl FnMut() -> [u8; 24],
    ) -> Result<Vec<Entry>, StoreError> {
        let LogWriter {
            author,
            space,
            key,
            partner,
        } = writer;
        let guard = self.lock();
        let me = author.device_key();
        let mut head = self.head(&me)?;
        let partner_seen = match partner {
            Some(partner) => {
                let h = self.head(partner)?;
                PartnerSeen {
                    count: h.count,
                    head: h.hash,
                }
            }
            None => PartnerSeen::default(),
        };
        // An author's times never go backwards, even if the clock does.
        let time_ms = match head.count {
            0 => now_ms,
            n => {
                let last = self
                    .log
                    .get(log_key(&me, n - 1))?
                    .ok_or_else(|| StoreError::Corrupt("own log head is missing".into()))?;
                now_ms.max(candor_shared::entry::peek_time(&last).unwrap_or(0))
            }
        };
        let mut written = Vec::with_capacity(items.len());
        for (class, payload) in items {
            let draft = Draft {
                class,
                space: **space,
                seq: head.count,
                prev: head.hash,
                time_ms,
                partner_seen,
                nonce: nonce(),
            };
            let entry = Entry::seal(draft, &payload, key, author)?;
            head = head.advanced(entry.hash);
            written.push(entry);
        }
        // One transaction for the whole batch (e.g. an import): a crash keeps all or none.
        self.insert_entries(&written)?;
        // Flush outside the write lock, so that concurrent writers share one flush.
        drop(guard);
        self.flush()?;
        Ok(written)
    }

    /// Verifies an entry pulled from the relay and stores it if it is new. Not flushed: the
    /// caller flushes once per page, before persisting the cursor.
    pub fn apply_incoming(
        &self,
        keys: &LogKeys<'_>,
        bytes: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        let _guard = self.lock();
        if let Some((author, _)) = candor_shared::entry::peek_author_seq(bytes) {
            if self.is_frozen(&author)? {
                return Err(StoreError::Frozen);
            }
        }
        let mut lookup_error = None;
        let verdict = verify_incoming(
            keys,
            bytes,
            |author| {
                self.head(author).unwrap_or_else(|e| {
                    lookup_error = Some(e);
                    LogHead::default()
                })
            },
            |author, seq| self.hash_at(author, seq).ok().flatten(),
        );
        if let Some(e) = lookup_error {
            return Err(e);
        }
        match verdict? {
            Incoming::AlreadyHeld => Ok(None),
            Incoming::New { entry, .. } => {
                self.insert_entries(std::slice::from_ref(&entry))?;
                Ok(Some(*entry))
            }
        }
    }
}

/// What [`Store::apply_incoming_page`] did with a page of pulled entries.
#[derive(Debug)]
pub struct PageApplied {
    /// The entries verified and stored, in page order.
    pub stored: Vec<Entry>,
    /// The first entry refused: its index in the page and why. Entries after it were not
    /// judged (nor stored); entries before it were.
    pub refused: Option<(usize, StoreError)>,
}

impl Store {
    /// Judges a page of pulled entries in order, whose log-independent checks (signature,
    /// ciphertext hash, decryption) already ran, possibly in parallel
    /// ([`candor_shared::sync::precheck_batch`]); stores the accepted ones, up to the first
    /// refusal, in one transaction. Like [`Store::apply_incoming`], not flushed.
    pub fn apply_incoming_page(
        &self,
        keys: &LogKeys<'_>,
        page: Vec<Prechecked>,
    ) -> Result<PageApplied, StoreError> {
        let _guard = self.lock();
        // Heads and hashes as they will be once the accepted entries are stored.
        let mut heads: Vec<(DeviceKey, LogHead)> = Vec::new();
        let mut pending: Vec<Entry> = Vec::new();
        let mut refused = None;
        let mut frozen: Vec<(DeviceKey, bool)> = Vec::new();
        for (index, prechecked) in page.into_iter().enumerate() {
            if let Some((author, _)) = prechecked.author_seq() {
                let is_frozen = match frozen.iter().find(|(a, _)| *a == author) {
                    Some((_, known)) => *known,
                    None => {
                        let known = self.is_frozen(&author)?;
                        frozen.push((author, known));
                        known
                    }
                };
                if is_frozen {
                    refused = Some((index, StoreError::Frozen));
                    break;
                }
            }
            let mut lookup_error = None;
            let verdict = verify_prechecked(
                keys,
                prechecked,
                |author| match heads.iter().find(|(a, _)| a == author) {
                    Some((_, head)) => *head,
                    None => self.head(author).unwrap_or_else(|e| {
                        lookup_error = Some(e);
                        LogHead::default()
                    }),
                },
                |author, seq| {
                    pending
                        .iter()
                        .find(|e| e.header.author == *author && e.header.seq == seq)
                        .map(|e| e.hash)
                        .or_else(|| self.hash_at(author, seq).ok().flatten())
                },
            );
            if let Some(e) = lookup_error {
                return Err(e);
            }
            match verdict {
                Ok(Incoming::AlreadyHeld) => {}
                Ok(Incoming::New { entry, .. }) => {
                    let author = entry.header.author;
                    let base = match heads.iter().position(|(a, _)| *a == author) {
                        Some(at) => at,
                        None => {
                            heads.push((author, self.head(&author)?));
                            heads.len() - 1
                        }
                    };
                    if let Some((_, head)) = heads.get_mut(base) {
                        *head = head.advanced(entry.hash);
                    }
                    pending.push(*entry);
                }
                Err(e) => {
                    refused = Some((index, StoreError::Refused(e)));
                    break;
                }
            }
        }
        if !pending.is_empty() {
            self.insert_entries(&pending)?;
        }
        Ok(PageApplied {
            stored: pending,
            refused,
        })
    }
}

/// What sealing this device's next entries needs.
pub struct LogWriter<'a> {
    /// This device's keys.
    pub author: &'a DeviceSecrets,
    /// The space.
    pub space: &'a SpaceId,
    /// The space key.
    pub key: &'a SpaceKey,
    /// The partner, whose verified head each entry records.
    pub partner: Option<&'a DeviceKey>,
}

impl LocalLog for Store {
    type Error = StoreError;

    fn count(&self, author: &DeviceKey) -> Result<u64, StoreError> {
        Ok(self.head(author)?.count)
    }

    fn entries(
        &self,
        author: &DeviceKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.log_entries(author, from_seq)
            .take(limit)
            .map(|item| item.map(|(_, v)| v.to_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_shared::payload::{kind, TextContent};

    fn note(text: &str) -> (Class, Payload) {
        (
            Class::Shared,
            Payload::text(
                kind::NOTE,
                &TextContent {
                    text: text.into(),
                    replaces: None,
                    original_time_ms: None,
                    eta: None,
                },
            ),
        )
    }

    #[test]
    fn own_entries_chain_survive_reopen_and_are_found_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let mut n = 0u8;
        let written = {
            let store = Store::open(dir.path()).unwrap();
            let first = store
                .append_own(
                    &LogWriter {
                        author: &me,
                        space: &space,
                        key: &key,
                        partner: None,
                    },
                    vec![note("a"), note("b")],
                    5,
                    || {
                        n += 1;
                        [n; 24]
                    },
                )
                .unwrap();
            assert_eq!(first[1].header.prev, first[0].hash);
            first
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.head(&me.device_key()).unwrap(),
            LogHead {
                count: 2,
                hash: written[1].hash
            }
        );
        let found = store
            .find_by_prefix(&written[1].hash.to_hex()[..7])
            .unwrap();
        assert_eq!(found, vec![(me.device_key(), 1, written[1].hash)]);
        assert_eq!(
            store.entries(&me.device_key(), 1, 10).unwrap(),
            vec![written[1].to_bytes()]
        );
    }

    #[test]
    fn a_page_is_stored_up_to_its_first_bad_entry_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path()).unwrap();
        let notes: Vec<_> = (0..100).map(|i| note(&format!("n{i}"))).collect();
        let mut n = 0u8;
        let entries = other
            .append_own(
                &LogWriter {
                    author: &partner,
                    space: &space,
                    key: &key,
                    partner: None,
                },
                notes,
                1,
                || {
                    n = n.wrapping_add(1);
                    [n; 24]
                },
            )
            .unwrap();
        let keys = LogKeys {
            space,
            key: &key,
            me: me.device_key(),
            partner: Some(partner.device_key()),
        };
        let mut page: Vec<Vec<u8>> = entries.iter().map(Entry::to_bytes).collect();
        // A forged signature at index 70, in the second half of the batch.
        page[70][candor_shared::entry::HEADER_LEN + 1] ^= 1;
        let refs: Vec<&[u8]> = page.iter().map(Vec::as_slice).collect();
        let applied = store
            .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
            .unwrap();
        assert_eq!(applied.stored.len(), 70);
        assert!(matches!(
            applied.refused,
            Some((70, StoreError::Refused(IncomingError::Damaged(_))))
        ));
        assert_eq!(store.head(&partner.device_key()).unwrap().count, 70);
        // The same page again, repaired: the first 70 are already held, the rest are stored.
        let good: Vec<Vec<u8>> = entries.iter().map(Entry::to_bytes).collect();
        let refs: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
        let applied = store
            .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
            .unwrap();
        assert_eq!(applied.stored.len(), 30);
        assert!(applied.refused.is_none());
        assert_eq!(
            store.head(&partner.device_key()).unwrap(),
            LogHead {
                count: 100,
                hash: entries[99].hash
            }
        );
    }

    #[test]
    fn concurrent_writers_sharing_flushes_keep_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                let (store, me, key) = (&store, &me, &key);
                scope.spawn(move || {
                    for i in 0..10u8 {
                        store
                            .append_own(
                                &LogWriter {
                                    author: me,
                                    space: &space,
                                    key,
                                    partner: None,
                                },
                                vec![note("concurrent")],
                                1,
                                || [t.wrapping_mul(16).wrapping_add(i); 24],
                            )
                            .unwrap();
                    }
                });
            }
        });
        let author = me.device_key();
        assert_eq!(store.head(&author).unwrap().count, 80);
        let mut prev = EntryHash::ZERO;
        for (seq, item) in store.log_entries(&author, 0).enumerate() {
            let (at, bytes) = item.unwrap();
            let entry = Entry::from_bytes(&bytes).unwrap();
            assert_eq!((at, entry.header.seq), (seq as u64, seq as u64));
            assert_eq!(entry.header.prev, prev);
            prev = entry.hash;
        }
        drop(store);
        // Everything was flushed: a reopened store holds the same chain.
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.head(&author).unwrap().hash, prev);
    }

    #[test]
    fn a_second_open_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked)));
    }

    #[test]
    fn partner_entries_are_stored_only_after_verification() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path()).unwrap();
        let entries = other
            .append_own(
                &LogWriter {
                    author: &partner,
                    space: &space,
                    key: &key,
                    partner: None,
                },
                vec![note("x"), note("y")],
                1,
                || [0; 24],
            )
            .unwrap();
        let keys = LogKeys {
            space,
            key: &key,
            me: me.device_key(),
            partner: Some(partner.device_key()),
        };
        // Out of order: refused, nothing stored.
        assert!(store.apply_incoming(&keys, &entries[1].to_bytes()).is_err());
        assert_eq!(store.head(&partner.device_key()).unwrap().count, 0);
        // Tampered: refused.
        let mut bad = entries[0].to_bytes();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(store.apply_incoming(&keys, &bad).is_err());
        // In order: stored once.
        assert!(store
            .apply_incoming(&keys, &entries[0].to_bytes())
            .unwrap()
            .is_some());
        assert!(store
            .apply_incoming(&keys, &entries[0].to_bytes())
            .unwrap()
            .is_none());
        assert!(store
            .apply_incoming(&keys, &entries[1].to_bytes())
            .unwrap()
            .is_some());
        assert_eq!(store.head(&partner.device_key()).unwrap().count, 2);
    }
}
