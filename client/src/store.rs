//! The device's local store: both logs, in sled, holding only verified entries.
//!
//! Trees:
//!
//! * `log`: `author (32) | seq (8, BE)` → entry in wire form. Own entries are written by
//!   [`Store::append_own`]; the partner's only by [`Store::apply_incoming`], after
//!   [`verify_incoming`] accepted them. Nothing is ever overwritten or deleted.
//! * `ids`: entry hash → `author | seq`, to find entries by id.
//! * `meta`: the space configuration, the pull cursor, whether this device left the space,
//!   whether journal backup is on.
//! * `local`: text that never leaves this device (the details of busy-only plans).
//! * `evidence`: entries refused at sync (forged, out of place, equivocated), kept as proof.
//! * `merkle`: author (32) → the [`Frontier`] of that author's log as far as it was last
//!   computed: a cache that lets checkpoint roots be computed and checked in O(new entries). It
//!   holds only hashes of entry ids, so it is not sealed.
//! * `journal`: journal record id (16) → the record, and the id of the log entry that backs it
//!   up (if backup was on when it was written or turned on later).
//! * `notes`: a cache of the shared notes (sealed), rebuilt from the logs if lost: `doc/` + note id (16)
//!   → the note's snapshot ([`candor_shared::notes::NoteDoc::snapshot`]); `scan/` + author (32)
//!   → how many entries of that author's log were fed into the notes (8, BE). Only the
//!   `note_*` methods below touch it.
//!
//! **Encryption at rest.** Every value of the trees in [`SEALED_TREES`] goes through one helper,
//! [`SealedTree`], which seals it under the device's storage key with XChaCha20-Poly1305, a
//! random nonce and associated data naming the tree and key (so a value cannot be moved to
//! another place unnoticed). The `log` and `ids` trees hold entries in wire form, already
//! encrypted under the space or journal key, whose public headers are readable (see
//! SECURITY.md). A store written before encryption at rest is sealed in place when first opened.
//!
//! Every write path flushes before it reports success, so an entry the CLI said it wrote survives
//! a crash (see SECURITY.md for what sled's flush guarantees).

use candor_shared::at_rest::{AtRestError, StorageKey};
use candor_shared::chain::LogHead;
use candor_shared::entry::{Class, Draft, Entry, EntryError, EntryKey, PartnerSeen};
use candor_shared::invite::RelayFingerprint;
use candor_shared::journal::JournalRecord;
use candor_shared::keys::{DevicePublic, DeviceSecrets, SpaceKey};
use candor_shared::merkle::{Frontier, TreeHash};
use candor_shared::notes::NoteId;
use candor_shared::payload::{Checkpoint, Payload};
use candor_shared::sync::{
    verify_incoming, verify_prechecked, Incoming, IncomingError, LocalLog, LogKeys, Prechecked,
};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

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
    #[error("your partner's log is frozen: their device signed two different entries at one position, or vouched for a history other than the one it signed (see `candor verify`)")]
    Frozen,
    /// The transaction failed.
    #[error("transaction failed: {0}")]
    Transaction(String),
    /// A sealed value does not open.
    #[error("tree {tree}: {source}")]
    Sealed {
        /// The tree.
        tree: &'static str,
        /// Why.
        source: AtRestError,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// A restore into a store that already holds data.
    #[error("the local store already holds data; restore only into a new home")]
    NotEmpty,
}

/// Trees whose every value is sealed under the storage key (see the module documentation).
pub const SEALED_TREES: [&str; 5] = ["meta", "local", "evidence", "journal", "notes"];
/// Trees holding entries in wire form (encrypted under the space or journal key already).
pub const ENTRY_TREES: [&str; 2] = ["log", "ids"];
const META_SEALED: &[u8] = b"sealed_at_rest";
const META_JOURNAL_BACKUP: &[u8] = b"journal_backup";
/// Set by a restore from a bundle: own entries the relay holds beyond the bundle (written by the
/// old device after the export) are adopted at the next sync, until this device writes its own.
const META_ADOPT_OWN: &[u8] = b"adopt_own";

fn nonce() -> Result<[u8; 24], StoreError> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).map_err(|_| StoreError::Random)?;
    Ok(bytes)
}

fn label(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut label = Vec::with_capacity(tree.len() + 1 + key.len());
    label.extend_from_slice(tree.as_bytes());
    label.push(0);
    label.extend_from_slice(key);
    label
}

/// A sled tree whose values are sealed under the storage key: the one path through which every
/// local plaintext is written and read.
#[derive(Clone)]
pub struct SealedTree {
    name: &'static str,
    tree: sled::Tree,
    key: Arc<StorageKey>,
}

impl SealedTree {
    /// Seals a value for `key` in this tree.
    pub fn seal(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.key.seal(&label(self.name, key), value, nonce()?))
    }

    fn open(&self, key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.key
            .open(&label(self.name, key), sealed)
            .map_err(|source| StoreError::Sealed {
                tree: self.name,
                source,
            })
    }

    /// The plaintext stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.tree.get(key)?.map(|v| self.open(key, &v)).transpose()
    }

    /// Stores `value` under `key`, sealed (not flushed).
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(key, self.seal(key, value)?)?;
        Ok(())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key)?)
    }

    /// Every key and plaintext, in key order.
    pub fn iter(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, Zeroizing<Vec<u8>>), StoreError>> + '_ {
        self.tree.iter().map(|item| {
            let (k, v) = item?;
            let plain = self.open(&k, &v)?;
            Ok((k, plain))
        })
    }
}

/// One tree's contents in a recovery bundle: raw entries, or plaintext of sealed values.
#[derive(
    Debug, Clone, Default, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct TreeDump {
    /// The tree's name.
    pub name: String,
    /// Keys and values (plaintext for sealed trees).
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
}

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

const META_SPACE: &[u8] = b"space";
const META_CURSOR: &[u8] = b"cursor";
const META_LEFT: &[u8] = b"left";
const META_FROZEN: &[u8] = b"frozen";
const META_ACKED: &[u8] = b"acked_own";
/// Entries flagged as dated in the future when met (see `crate::evidence`): postcard list of
/// (id, ms ahead).
const META_FUTURE: &[u8] = b"future_dated";

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
    meta: SealedTree,
    local: SealedTree,
    evidence: SealedTree,
    journal: SealedTree,
    merkle: sled::Tree,
    notes: SealedTree,
    writes: Mutex<()>,
    on_applied: Mutex<Option<AppliedHook>>,
    /// Group commit: tickets handed out by [`Store::flush`], and the highest one made durable.
    flush_tickets: AtomicU64,
    flushed: Mutex<u64>,
}

/// Called after each new incoming entry is stored (a progress display during a sync).
pub type AppliedHook = Box<dyn Fn() + Send + Sync>;

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

const NOTE_DOC: &[u8] = b"doc/";
const NOTE_SCAN: &[u8] = b"scan/";

fn note_doc_key(note: &NoteId) -> Vec<u8> {
    [NOTE_DOC, &note.0[..]].concat()
}

fn note_scan_key(author: &DeviceKey) -> Vec<u8> {
    [NOTE_SCAN, &author.0[..]].concat()
}

/// The id of an entry this store verified before storing it (no need to verify it again).
fn stored_id(bytes: &[u8]) -> Result<EntryHash, StoreError> {
    candor_shared::entry::id_of(bytes)
        .ok_or_else(|| StoreError::Corrupt("a stored entry is truncated".into()))
}

/// A stored big-endian u64, if present; `what` names it in the error if it is malformed.
fn decode_u64(value: Option<Zeroizing<Vec<u8>>>, what: &str) -> Result<Option<u64>, StoreError> {
    value
        .map(|v| {
            v.as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt(what.into()))
        })
        .transpose()
}

fn hash_from(value: &[u8]) -> Result<EntryHash, StoreError> {
    value
        .try_into()
        .map(EntryHash)
        .map_err(|_| StoreError::Corrupt("hash has the wrong length".into()))
}

impl Store {
    /// Opens (or creates) the store at `dir`, sealing values under `key`.
    pub fn open(dir: &Path, key: Arc<StorageKey>) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked
            }
            _ => StoreError::Db(e),
        })?;
        crate::files::restrict_tree(dir).map_err(|e| StoreError::Db(e.into()))?;
        let sealed = |name: &'static str| -> Result<SealedTree, StoreError> {
            Ok(SealedTree {
                name,
                tree: db.open_tree(name)?,
                key: key.clone(),
            })
        };
        let store = Self {
            data_file: std::fs::File::open(dir.join("db")).ok(),
            log: db.open_tree("log")?,
            ids: db.open_tree("ids")?,
            meta: sealed("meta")?,
            local: sealed("local")?,
            evidence: sealed("evidence")?,
            journal: sealed("journal")?,
            merkle: db.open_tree("merkle")?,
            notes: sealed("notes")?,
            writes: Mutex::new(()),
            flush_tickets: AtomicU64::new(0),
            flushed: Mutex::new(0),
            on_applied: Mutex::new(None),
            db,
        };
        store.seal_legacy_values()?;
        Ok(store)
    }

    /// Seals values written in the clear by versions before encryption at rest (once).
    fn seal_legacy_values(&self) -> Result<(), StoreError> {
        if self.meta.tree.contains_key(META_SEALED)? {
            return Ok(());
        }
        for tree in [&self.meta, &self.local, &self.evidence, &self.journal] {
            for item in tree.tree.iter() {
                let (k, v) = item?;
                tree.tree.insert(&k, tree.seal(&k, &v)?)?;
            }
        }
        self.meta.insert(META_SEALED, &[1])?;
        self.flush()
    }

    /// A sealed tree by name (one of [`SEALED_TREES`]).
    pub fn sealed_tree(&self, name: &str) -> Option<&SealedTree> {
        [&self.meta, &self.local, &self.evidence, &self.journal]
            .into_iter()
            .find(|t| t.name == name)
    }

    /// Whether the store holds nothing yet (no entry and no sealed value but the seal marker).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.log.is_empty()
            && self.ids.is_empty()
            && self.local.tree.is_empty()
            && self.evidence.tree.is_empty()
            && self.journal.tree.is_empty()
            && self
                .meta
                .tree
                .iter()
                .keys()
                .all(|k| k.is_ok_and(|k| k == META_SEALED)))
    }

    /// Every tree's contents, sealed values opened: what a recovery bundle carries.
    pub fn dump(&self) -> Result<Vec<TreeDump>, StoreError> {
        let mut out = Vec::new();
        for (name, tree) in [("log", &self.log), ("ids", &self.ids)] {
            let rows = tree
                .iter()
                .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<_, _>>()?;
            out.push(TreeDump {
                name: name.to_string(),
                rows,
            });
        }
        for tree in [&self.meta, &self.local, &self.evidence, &self.journal] {
            let rows = tree
                .iter()
                .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<Result<_, _>>()?;
            out.push(TreeDump {
                name: tree.name.to_string(),
                rows,
            });
        }
        Ok(out)
    }

    /// Restores dumped trees into this empty store (entries are checked as they are decoded
    /// by their readers, like any stored entry), sealing values under this store's key, then
    /// flushes. `progress` is called with the number of rows written so far.
    pub fn restore(
        &self,
        trees: &[TreeDump],
        mut progress: impl FnMut(u64),
    ) -> Result<(), StoreError> {
        if !self.is_empty()? {
            return Err(StoreError::NotEmpty);
        }
        let mut done = 0u64;
        for dump in trees {
            let raw = match dump.name.as_str() {
                "log" => Some(&self.log),
                "ids" => Some(&self.ids),
                _ => None,
            };
            let sealed = self.sealed_tree(&dump.name);
            if raw.is_none() && sealed.is_none() {
                return Err(StoreError::Corrupt(format!(
                    "the bundle holds an unknown tree {:?}",
                    dump.name
                )));
            }
            for (k, v) in &dump.rows {
                if dump.name == "log" {
                    // Entries are checked before they are stored, as at sync.
                    let entry = Entry::from_bytes(v)?;
                    if log_key(&entry.header.author, entry.header.seq).as_slice() != k.as_slice() {
                        return Err(StoreError::Corrupt(
                            "an entry in the bundle is filed under the wrong position".into(),
                        ));
                    }
                }
                match (raw, sealed) {
                    (Some(tree), _) => {
                        tree.insert(k.as_slice(), v.as_slice())?;
                    }
                    (None, Some(tree)) => tree.insert(k, v)?,
                    (None, None) => {}
                }
                done += 1;
                progress(done);
            }
        }
        self.meta.insert(META_SEALED, &[1])?;
        self.meta.insert(META_ADOPT_OWN, &[1])?;
        self.flush()
    }

    /// Sets (or clears) the hook called after each new incoming entry is stored.
    pub fn set_applied_hook(&self, hook: Option<AppliedHook>) {
        *self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Whether this device was restored from a bundle and has not written since (see
    /// [`Store::apply_incoming`]: own entries the old device wrote later are then adopted).
    pub fn adopting_own(&self) -> Result<bool, StoreError> {
        self.meta.contains_key(META_ADOPT_OWN)
    }

    /// After a restore: accepts an entry of this device's own log that the old device wrote
    /// after the bundle was made, if it is signed by this device's key and extends the log.
    fn adopt_own(&self, keys: &LogKeys<'_>, bytes: &[u8]) -> Result<Incoming, StoreError> {
        let entry = Entry::from_bytes(bytes).map_err(IncomingError::Damaged)?;
        let seq = entry.header.seq;
        if entry.header.author != keys.me {
            return Err(IncomingError::UnknownOwnEntry { seq }.into());
        }
        match self.head(&keys.me)?.classify(&keys.space, &entry.header) {
            Ok(candor_shared::chain::Fit::Next) => Ok(Incoming::New {
                payload: entry
                    .open_readable(keys.key)
                    .map_err(IncomingError::Undecryptable)?,
                entry: Box::new(entry),
            }),
            _ => Err(IncomingError::UnknownOwnEntry { seq }.into()),
        }
    }

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

    /// The stored snapshot of one shared note, if any.
    pub fn note_snapshot(&self, note: &NoteId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.notes.get(&note_doc_key(note))?.map(|v| v.to_vec()))
    }

    /// The ids of every note with a stored snapshot.
    pub fn note_ids(&self) -> Result<Vec<NoteId>, StoreError> {
        self.notes
            .tree
            .scan_prefix(NOTE_DOC)
            .keys()
            .map(|key| {
                let key = key?;
                key[NOTE_DOC.len()..]
                    .try_into()
                    .map(NoteId)
                    .map_err(|_| StoreError::Corrupt("note key has the wrong length".into()))
            })
            .collect()
    }

    /// How many entries of `author`'s log have been fed into the notes' snapshots.
    pub fn notes_scanned(&self, author: &DeviceKey) -> Result<u64, StoreError> {
        Ok(decode_u64(
            self.notes.get(&note_scan_key(author))?,
            "notes scan position",
        )?
        .unwrap_or(0))
    }

    /// Stores note snapshots together with the scan positions they reflect, atomically. Not
    /// flushed: the notes are a cache of the logs, rebuilt from them if a write is lost.
    pub fn set_note_snapshots(
        &self,
        snapshots: &[(NoteId, Vec<u8>)],
        scanned: &[(DeviceKey, u64)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (note, bytes) in snapshots {
            let key = note_doc_key(note);
            batch.insert(&key[..], self.notes.seal(&key, bytes)?);
        }
        for (author, count) in scanned {
            let key = note_scan_key(author);
            batch.insert(&key[..], self.notes.seal(&key, &count.to_be_bytes())?);
        }
        self.notes.tree.apply_batch(batch)?;
        Ok(())
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
    fn latest_unflagged_time(&self, author: &DeviceKey) -> Result<Option<u64>, StoreError> {
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

    /// The pull cursor.
    pub fn cursor(&self) -> Result<u64, StoreError> {
        Ok(decode_u64(self.meta.get(META_CURSOR)?, "cursor")?.unwrap_or(0))
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
        nonce: impl FnMut() -> [u8; 24],
    ) -> Result<Vec<Entry>, StoreError> {
        let key = writer.key;
        self.append_own_sealed(
            writer,
            items
                .into_iter()
                .map(|(class, payload)| (class, payload, space_entry_key(key)))
                .collect(),
            now_ms,
            nonce,
        )
    }

    /// Appends a checkpoint whose Merkle root covers exactly the own entries before it (computed
    /// under the write lock, so no concurrent write can slip in between); returns it.
    pub fn append_checkpoint(
        &self,
        writer: &LogWriter<'_>,
        countersign: bool,
        now_ms: u64,
        nonce: impl FnMut() -> [u8; 24],
    ) -> Result<Entry, StoreError> {
        let me = writer.author.device_key();
        let key = writer.key;
        let written = self.append_own_with(
            writer,
            |store| {
                let own_root = store.log_root(&me, store.head(&me)?.count)?;
                Ok(vec![(
                    Class::Control,
                    Payload::checkpoint(&Checkpoint {
                        own_root,
                        countersign,
                    }),
                    space_entry_key(key),
                )])
            },
            now_ms,
            nonce,
        )?;
        written
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("checkpoint was not written".into()))
    }

    /// Like [`Store::append_own`], with each entry's key chosen by the caller from its nonce
    /// (e.g. a journal entry's key, derived from the journal key).
    pub fn append_own_sealed(
        &self,
        writer: &LogWriter<'_>,
        items: Vec<(Class, Payload, EntryKeyFn<'_>)>,
        now_ms: u64,
        nonce: impl FnMut() -> [u8; 24],
    ) -> Result<Vec<Entry>, StoreError> {
        self.append_own_with(writer, |_| Ok(items), now_ms, nonce)
    }

    /// Seals the items `items` returns (called under the write lock) and appends them.
    fn append_own_with<'k>(
        &self,
        writer: &LogWriter<'_>,
        items: impl FnOnce(&Self) -> Result<Vec<(Class, Payload, EntryKeyFn<'k>)>, StoreError>,
        now_ms: u64,
        mut nonce: impl FnMut() -> [u8; 24],
    ) -> Result<Vec<Entry>, StoreError> {
        let LogWriter {
            author,
            space,
            key: _,
            partner,
        } = writer;
        let guard = self.lock();
        // Once this device writes, its log is its own again: no more adoption after a restore.
        if self.meta.contains_key(META_ADOPT_OWN)? {
            self.meta.tree.remove(META_ADOPT_OWN)?;
        }
        let items = items(self)?;
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
        // An author's times never go backwards, even if the clock does — but own entries dated
        // far in the future are flagged, not carried forward (see `crate::evidence::own_time`).
        let partner_ms = match partner {
            Some(partner) => self.latest_unflagged_time(partner)?,
            None => None,
        };
        let own: Vec<sled::IVec> = self
            .log
            .scan_prefix(me.0)
            .values()
            .rev()
            .take(crate::evidence::MAX_FUTURE_FLAGS)
            .collect::<Result<_, _>>()?;
        let (time_ms, flags) =
            crate::evidence::own_time(now_ms, partner_ms, own.iter().map(|v| v.as_ref()));
        if !flags.is_empty() {
            self.add_future_dated(&flags, crate::evidence::MAX_FUTURE_FLAGS)?;
        }
        let mut written = Vec::with_capacity(items.len());
        for (class, payload, entry_key) in items {
            if class == Class::Private {
                return Err(StoreError::Seal(EntryError::WrongClass(class)));
            }
            let draft = Draft {
                class,
                space: **space,
                seq: head.count,
                prev: head.hash,
                time_ms,
                partner_seen,
                nonce: nonce(),
            };
            let entry_key = entry_key(&draft.nonce);
            let entry = Entry::seal_with(draft, &payload, &entry_key, author)?;
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
        let verdict = match verdict {
            Err(IncomingError::UnknownOwnEntry { .. })
                if self.meta.contains_key(META_ADOPT_OWN)? =>
            {
                self.adopt_own(keys, bytes)?
            }
            other => other?,
        };
        match verdict {
            Incoming::AlreadyHeld => Ok(None),
            Incoming::New { entry, payload } => {
                if let Some(payload) = &payload {
                    let (author, seq) = (entry.header.author, entry.header.seq);
                    check_checkpoint(&author, seq, payload, || self.log_root(&author, seq))??;
                }
                self.insert_entries(std::slice::from_ref(&entry))?;
                if let Some(hook) = &*self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) {
                    hook();
                }
                Ok(Some(*entry))
            }
        }
    }
}

impl Store {
    /// The Merkle root over `author`'s first `count` entries (all of which must be stored).
    /// Extends and saves the cached frontier when `count` is beyond it; recomputes from the
    /// start for an older count.
    pub fn log_root(&self, author: &DeviceKey, count: u64) -> Result<TreeHash, StoreError> {
        Ok(self.log_frontier(author, count)?.root())
    }

    /// The Merkle frontier over `author`'s first `count` stored entries (see [`Store::log_root`]).
    fn log_frontier(&self, author: &DeviceKey, count: u64) -> Result<Frontier, StoreError> {
        let cached: Option<Frontier> = self
            .merkle
            .get(author.0)?
            .and_then(|bytes| postcard::from_bytes(&bytes).ok())
            .filter(|f: &Frontier| f.is_well_formed() && f.size() <= count);
        let mut frontier = cached.unwrap_or_default();
        let start = frontier.size();
        for item in self.log_entries(author, start) {
            if frontier.size() == count {
                break;
            }
            let (seq, bytes) = item?;
            if seq != frontier.size() {
                return Err(StoreError::Corrupt(format!(
                    "log of {} has a gap at seq {}",
                    author.short(),
                    frontier.size()
                )));
            }
            frontier.push(&stored_id(&bytes)?);
        }
        if frontier.size() != count {
            return Err(StoreError::Corrupt(format!(
                "asked for the root over {count} entries of {}, but only {} are stored",
                author.short(),
                frontier.size()
            )));
        }
        if frontier.size() > start {
            let bytes = postcard::to_stdvec(&frontier)
                .map_err(|e| StoreError::Corrupt(format!("frontier: {e}")))?;
            self.merkle.insert(author.0, bytes)?;
        }
        Ok(frontier)
    }

    /// The Merkle root over `author`'s first `seq` entries, some stored and the rest in
    /// `pending` (verified entries of the same page, in log order, not stored yet).
    fn root_with_pending(
        &self,
        author: &DeviceKey,
        seq: u64,
        pending: &[Entry],
    ) -> Result<TreeHash, StoreError> {
        let stored = self.head(author)?.count.min(seq);
        let mut frontier = self.log_frontier(author, stored)?;
        for entry in pending
            .iter()
            .filter(|e| e.header.author == *author && e.header.seq < seq)
        {
            if entry.header.seq != frontier.size() {
                return Err(StoreError::Corrupt(format!(
                    "page entries of {} are out of order",
                    author.short()
                )));
            }
            frontier.push(&entry.hash);
        }
        if frontier.size() != seq {
            return Err(StoreError::Corrupt(format!(
                "the entries before {}'s checkpoint at {seq} are missing",
                author.short()
            )));
        }
        Ok(frontier.root())
    }
}

/// Refuses a checkpoint whose Merkle root differs from the root over the entries of its author
/// that this device verified before it; other payloads pass.
fn check_checkpoint(
    author: &DeviceKey,
    seq: u64,
    payload: &Payload,
    root: impl FnOnce() -> Result<TreeHash, StoreError>,
) -> Result<Result<(), IncomingError>, StoreError> {
    use candor_shared::payload::Content;
    let Ok(Content::Checkpoint(Some(checkpoint))) = payload.content() else {
        return Ok(Ok(()));
    };
    if checkpoint.own_root == root()? {
        return Ok(Ok(()));
    }
    Ok(Err(IncomingError::FalseCheckpoint {
        author: author.short(),
        seq,
    }))
}

/// Chooses the key of an entry from its nonce.
pub type EntryKeyFn<'a> = Box<dyn Fn(&[u8; 24]) -> EntryKey + 'a>;

/// The key function of entries sealed under the space key.
fn space_entry_key(key: &SpaceKey) -> EntryKeyFn<'_> {
    Box::new(move |n: &[u8; 24]| EntryKey::derive(key, n))
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
        let adopting = self.adopting_own()?;
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
            // After a restore, own entries the old device wrote later are adopted (see
            // `Store::adopt_own`).
            let adoptable = adopting
                .then(|| {
                    prechecked
                        .entry()
                        .filter(|e| e.header.author == keys.me)
                        .cloned()
                })
                .flatten();
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
            let verdict = match (verdict, adoptable) {
                (Err(IncomingError::UnknownOwnEntry { seq }), Some(entry)) => {
                    let head = match heads.iter().find(|(a, _)| *a == keys.me) {
                        Some((_, head)) => *head,
                        None => self.head(&keys.me)?,
                    };
                    match head.classify(&keys.space, &entry.header) {
                        Ok(candor_shared::chain::Fit::Next) => entry
                            .open_readable(keys.key)
                            .map(|payload| Incoming::New {
                                payload,
                                entry: Box::new(entry),
                            })
                            .map_err(IncomingError::Undecryptable),
                        _ => Err(IncomingError::UnknownOwnEntry { seq }),
                    }
                }
                (verdict, _) => verdict,
            };
            // A checkpoint must commit to the log this device verified before it.
            let verdict = match verdict {
                Ok(Incoming::New { entry, payload }) => {
                    let (author, seq) = (entry.header.author, entry.header.seq);
                    let checked = match &payload {
                        Some(payload) => check_checkpoint(&author, seq, payload, || {
                            self.root_with_pending(&author, seq, &pending)
                        })?,
                        None => Ok(()),
                    };
                    checked.map(|()| Incoming::New { entry, payload })
                }
                other => other,
            };
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
            if let Some(hook) = &*self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) {
                for _ in &pending {
                    hook();
                }
            }
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

    fn test_key() -> Arc<StorageKey> {
        Arc::new(StorageKey::from_bytes([9; 32]))
    }

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
            let store = Store::open(dir.path(), test_key()).unwrap();
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
        let store = Store::open(dir.path(), test_key()).unwrap();
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
    fn local_values_are_sealed_and_a_dump_restores_into_an_empty_store_only() {
        let dir = tempfile::tempdir().unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let dump = {
            let store = Store::open(dir.path(), test_key()).unwrap();
            store
                .set_local_note(&EntryHash([7; 32]), "sealed-marker-words")
                .unwrap();
            store.set_cursor(42).unwrap();
            store
                .append_own(
                    &LogWriter {
                        author: &me,
                        space: &space,
                        key: &key,
                        partner: None,
                    },
                    vec![note("a")],
                    5,
                    || [1; 24],
                )
                .unwrap();
            // The raw tree holds ciphertext only, bound to its tree and key.
            let raw = store.local.tree.get(EntryHash([7; 32]).0).unwrap().unwrap();
            assert!(!raw.windows(6).any(|w| w == b"sealed"));
            assert!(store.local.open(&[8; 32], &raw).is_err());
            store.flush().unwrap();
            store.dump().unwrap()
        };
        // Another key does not open the store's values.
        let wrong = Store::open(dir.path(), Arc::new(StorageKey::from_bytes([8; 32]))).unwrap();
        assert!(wrong.local_note(&EntryHash([7; 32])).is_err());
        drop(wrong);
        let other = tempfile::tempdir().unwrap();
        let restored =
            Store::open(other.path(), Arc::new(StorageKey::from_bytes([5; 32]))).unwrap();
        let mut steps = 0;
        restored.restore(&dump, |n| steps = n).unwrap();
        assert!(steps >= 4);
        assert_eq!(
            restored.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
            Some("sealed-marker-words")
        );
        assert_eq!(restored.cursor().unwrap(), 42);
        assert_eq!(restored.head(&me.device_key()).unwrap().count, 1);
        assert!(matches!(
            restored.restore(&dump, |_| {}),
            Err(StoreError::NotEmpty)
        ));
    }

    #[test]
    fn values_written_before_encryption_at_rest_are_sealed_on_first_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("local")
                .unwrap()
                .insert([7; 32], b"old plain words".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(dir.path(), test_key()).unwrap();
        assert_eq!(
            store.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
            Some("old plain words")
        );
        let raw = store.local.tree.get([7; 32]).unwrap().unwrap();
        assert!(!raw.windows(5).any(|w| w == b"plain"));
        drop(store);
        // Opening again does not seal twice.
        let store = Store::open(dir.path(), test_key()).unwrap();
        assert_eq!(
            store.local_note(&EntryHash([7; 32])).unwrap().as_deref(),
            Some("old plain words")
        );
    }

    #[test]
    fn a_page_is_stored_up_to_its_first_bad_entry_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_key()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path(), test_key()).unwrap();
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
        let store = Store::open(dir.path(), test_key()).unwrap();
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
        let reopened = Store::open(dir.path(), test_key()).unwrap();
        assert_eq!(reopened.head(&author).unwrap().hash, prev);
    }

    #[test]
    fn a_second_open_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), test_key()).unwrap();
        assert!(matches!(
            Store::open(dir.path(), test_key()),
            Err(StoreError::Locked)
        ));
    }

    #[test]
    fn partner_entries_are_stored_only_after_verification() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_key()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path(), test_key()).unwrap();
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

    #[test]
    fn a_checkpoint_with_a_false_root_is_refused_and_an_honest_one_stored() {
        use candor_shared::merkle::root;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_key()).unwrap();
        let me = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let partner = DeviceSecrets::from_seeds([5; 32], [6; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let space = SpaceId([4; 16]);
        let writer = LogWriter {
            author: &partner,
            space: &space,
            key: &key,
            partner: None,
        };
        let keys = LogKeys {
            space,
            key: &key,
            me: me.device_key(),
            partner: Some(partner.device_key()),
        };
        // The partner's device writes two notes and an honest checkpoint in its own store.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path(), test_key()).unwrap();
        let mut n = 0u8;
        let mut nonce = || {
            n += 1;
            [n; 24]
        };
        let notes = other
            .append_own(&writer, vec![note("x"), note("y")], 1, &mut nonce)
            .unwrap();
        let honest = other
            .append_checkpoint(&writer, false, 2, &mut nonce)
            .unwrap();
        let ids: Vec<_> = notes.iter().map(|e| e.hash).collect();
        assert_eq!(
            honest.open(&key).unwrap().content().unwrap(),
            candor_shared::payload::Content::Checkpoint(Some(Checkpoint {
                own_root: root(&ids),
                countersign: false
            }))
        );
        // A checkpoint at the same place claiming another history (a third, unpublished entry).
        let mut forged_ids = ids.clone();
        forged_ids.push(EntryHash([9; 32]));
        let forged = Entry::seal(
            Draft {
                class: Class::Control,
                space,
                seq: 2,
                prev: notes[1].hash,
                time_ms: 2,
                partner_seen: PartnerSeen::default(),
                nonce: [77; 24],
            },
            &Payload::checkpoint(&Checkpoint {
                own_root: root(&forged_ids),
                countersign: false,
            }),
            &key,
            &partner,
        )
        .unwrap();
        for entry in &notes {
            store.apply_incoming(&keys, &entry.to_bytes()).unwrap();
        }
        assert!(matches!(
            store.apply_incoming(&keys, &forged.to_bytes()),
            Err(StoreError::Refused(IncomingError::FalseCheckpoint {
                seq: 2,
                ..
            }))
        ));
        assert_eq!(store.head(&partner.device_key()).unwrap().count, 2);
        assert!(store
            .apply_incoming(&keys, &honest.to_bytes())
            .unwrap()
            .is_some());
        assert_eq!(store.head(&partner.device_key()).unwrap().count, 3);

        // The same within one pulled page, where the entries before it are not stored yet.
        let page_dir = tempfile::tempdir().unwrap();
        let paged = Store::open(page_dir.path(), test_key()).unwrap();
        let bytes: Vec<Vec<u8>> = notes
            .iter()
            .chain([&forged])
            .map(|e| e.to_bytes())
            .collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let applied = paged
            .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
            .unwrap();
        assert_eq!(applied.stored.len(), 2);
        assert!(matches!(
            applied.refused,
            Some((
                2,
                StoreError::Refused(IncomingError::FalseCheckpoint { seq: 2, .. })
            ))
        ));
        let honest_page = [honest.to_bytes()];
        let refs: Vec<&[u8]> = honest_page.iter().map(Vec::as_slice).collect();
        let applied = paged
            .apply_incoming_page(&keys, candor_shared::sync::precheck_batch(&keys, &refs))
            .unwrap();
        assert_eq!(applied.stored.len(), 1);
        assert!(applied.refused.is_none());
    }
}
