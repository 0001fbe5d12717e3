//! The device's local store: both logs, in sled, holding only verified entries.
//!
//! Trees (one [`Tree`] each), and the module that keeps each:
//!
//! * `log`: `author (32) | seq (8, BE)` → entry in wire form. Own entries are written by
//!   [`Store::append_own`]; the partner's only by [`Store::apply_incoming_page`], after
//!   [`judge_page`] accepted them. Nothing is ever overwritten or deleted.
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
//!   `note_*` methods ([`notes_cache`]) touch it.
//! * `view`: the read model ([`read_model`]): what every view shows, maintained as entries are
//!   stored.
//!
//! Modules: [`sealed`] (values sealed at rest), [`local`] (the small sealed values: space,
//! cursor, journal, evidence, …), [`notes_cache`], [`merkle`] (log roots), [`bundle`] (dump and
//! restore), [`read_model`]; this file holds the logs: opening, heads, appending own entries and
//! storing the incoming ones [`judge_page`] accepts, each stored by `insert_entries` in one
//! transaction with its read-model rows.
//!
//! **Encryption at rest.** Every value of the sealed trees ([`Tree::sealed`]) goes through one helper,
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
use candor_shared::keys::{DeviceSecrets, SpaceKey};
use candor_shared::merkle::Frontier;
use candor_shared::payload::{Checkpoint, Payload};
use candor_shared::sync::{
    judge_page, precheck, HeldLogs, IncomingError, LocalLog, LogKeys, PageOutcome, PageRefusal,
    Prechecked,
};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

mod bundle;
mod local;
mod merkle;
mod notes_cache;
mod read_model;
mod sealed;

pub use bundle::TreeDump;
pub use local::{Evidence, SpaceConfig, StoredJournal};
pub use read_model::{TimelineRow, READ_MODEL_VERSION};
pub use sealed::{os_nonce, SealedTree};

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

/// The store's sled trees (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// Both logs, entries in wire form.
    Log,
    /// Entry hash → log position.
    Ids,
    /// Space configuration, cursor, flags (sealed).
    Meta,
    /// Text that never leaves this device (sealed).
    Local,
    /// Refused entries kept as proof (sealed).
    Evidence,
    /// The private journal (sealed).
    Journal,
    /// Cached Merkle frontiers (hashes only).
    Merkle,
    /// The shared notes' cache (sealed).
    Notes,
    /// The read model (sealed).
    View,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 9] = [
        Tree::Log,
        Tree::Ids,
        Tree::Meta,
        Tree::Local,
        Tree::Evidence,
        Tree::Journal,
        Tree::Merkle,
        Tree::Notes,
        Tree::View,
    ];

    /// Its name in sled (and in the associated data of its sealed values).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Log => "log",
            Tree::Ids => "ids",
            Tree::Meta => "meta",
            Tree::Local => "local",
            Tree::Evidence => "evidence",
            Tree::Journal => "journal",
            Tree::Merkle => "merkle",
            Tree::Notes => "notes",
            Tree::View => "view",
        }
    }

    /// Whether every value is sealed under the storage key (the others hold entries already
    /// encrypted under the space or journal key, or hashes).
    pub fn sealed(self) -> bool {
        !matches!(self, Tree::Log | Tree::Ids | Tree::Merkle)
    }
}
const META_SEALED: &[u8] = b"sealed_at_rest";
const META_JOURNAL_BACKUP: &[u8] = b"journal_backup";
/// Set by a restore from a bundle: own entries the relay holds beyond the bundle (written by the
/// old device after the export) are adopted at the next sync, until this device writes its own.
const META_ADOPT_OWN: &[u8] = b"adopt_own";

const META_SPACE: &[u8] = b"space";
const META_CURSOR: &[u8] = b"cursor";
const META_LEFT: &[u8] = b"left";
const META_FROZEN: &[u8] = b"frozen";
const META_ACKED: &[u8] = b"acked_own";
/// How many of the partner's log entries this person has looked at (`candor today`): local
/// only, sealed like every meta value, never synced.
const META_PARTNER_LOOKED: &[u8] = b"partner_looked";
/// Entries flagged as dated in the future when met (see `crate::evidence`): postcard list of
/// (id, ms ahead).
const META_FUTURE: &[u8] = b"future_dated";

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
    /// The read model (see [`read_model`]).
    view: SealedTree,
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
        let sealed = |tree: Tree| -> Result<SealedTree, StoreError> {
            Ok(SealedTree {
                name: tree.name(),
                tree: db.open_tree(tree.name())?,
                key: key.clone(),
            })
        };
        let store = Self {
            data_file: std::fs::File::open(dir.join("db")).ok(),
            log: db.open_tree(Tree::Log.name())?,
            ids: db.open_tree(Tree::Ids.name())?,
            meta: sealed(Tree::Meta)?,
            local: sealed(Tree::Local)?,
            evidence: sealed(Tree::Evidence)?,
            journal: sealed(Tree::Journal)?,
            merkle: db.open_tree(Tree::Merkle.name())?,
            notes: sealed(Tree::Notes)?,
            view: sealed(Tree::View)?,
            writes: Mutex::new(()),
            flush_tickets: AtomicU64::new(0),
            flushed: Mutex::new(0),
            on_applied: Mutex::new(None),
            db,
        };
        store.seal_legacy_values()?;
        // A new store's read model is the empty one, current from the first entry on.
        if store.log.is_empty() && store.view.tree.is_empty() {
            store.view.insert(b"v", &READ_MODEL_VERSION.to_be_bytes())?;
        }
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

    /// A sealed tree by name (of those a bundle carries).
    pub fn sealed_tree(&self, name: &str) -> Option<&SealedTree> {
        [&self.meta, &self.local, &self.evidence, &self.journal]
            .into_iter()
            .find(|t| t.name == name)
    }

    /// Sets (or clears) the hook called after each new incoming entry is stored.
    pub fn set_applied_hook(&self, hook: Option<AppliedHook>) {
        *self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Whether this device was restored from a bundle and has not written since (see
    /// [`judge_page`]: own entries the old device wrote later are then adopted).
    pub fn adopting_own(&self) -> Result<bool, StoreError> {
        self.meta.contains_key(META_ADOPT_OWN)
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

    /// Inserts entries (log, id index and what they add to the read model) in one
    /// transaction: all or none. `payloads` holds each entry's content if it opens under the
    /// space key (`None`: private); `me` is this device. Called under the write lock.
    fn insert_entries(
        &self,
        me: &DeviceKey,
        entries: &[Entry],
        payloads: &[Option<Payload>],
    ) -> Result<(), StoreError> {
        use sled::Transactional;
        let view_rows = if self.read_model_current()? {
            let mut batch = read_model::Batch::new(self, *me);
            for (entry, payload) in entries.iter().zip(payloads) {
                batch.add(entry, payload.as_ref())?;
            }
            batch.finish()?
        } else {
            Vec::new()
        };
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
        (&self.log, &self.ids, &self.view.tree)
            .transaction(|(log, ids, view)| {
                for (key, bytes, hash) in &rows {
                    log.insert(&key[..], bytes.as_slice())?;
                    ids.insert(&hash.0[..], &key[..])?;
                }
                for row in &view_rows {
                    view.insert(row.key.as_slice(), row.sealed.as_slice())?;
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
        nonce: impl FnMut() -> Result<[u8; 24], StoreError>,
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
        nonce: impl FnMut() -> Result<[u8; 24], StoreError>,
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
        nonce: impl FnMut() -> Result<[u8; 24], StoreError>,
    ) -> Result<Vec<Entry>, StoreError> {
        self.append_own_with(writer, |_| Ok(items), now_ms, nonce)
    }

    /// Seals the items `items` returns (called under the write lock) and appends them.
    fn append_own_with<'k>(
        &self,
        writer: &LogWriter<'_>,
        items: impl FnOnce(&Self) -> Result<Vec<(Class, Payload, EntryKeyFn<'k>)>, StoreError>,
        now_ms: u64,
        mut nonce: impl FnMut() -> Result<[u8; 24], StoreError>,
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
        // Read lazily: `own_time` stops at the first own entry not dated ahead (nearly always
        // the newest), so a write reads one entry here, not the whole log.
        let mut read_error = None;
        let own = self
            .log
            .scan_prefix(me.0)
            .values()
            .rev()
            .map_while(|item| item.map_err(|e| read_error = Some(e)).ok());
        let (time_ms, flags) = crate::evidence::own_time(now_ms, partner_ms, own);
        if let Some(e) = read_error {
            return Err(e.into());
        }
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
                nonce: nonce()?,
            };
            let entry_key = entry_key(&draft.nonce);
            let entry = Entry::seal_with(draft, &payload, &entry_key, author)?;
            head = head.advanced(entry.hash);
            written.push(entry);
        }
        let payloads = written
            .iter()
            .map(|e| e.open_readable(writer.key))
            .collect::<Result<Vec<_>, _>>()?;
        // One transaction for the whole batch (e.g. an import): a crash keeps all or none.
        self.insert_entries(&me, &written, &payloads)?;
        // Flush outside the write lock, so that concurrent writers share one flush.
        drop(guard);
        self.flush()?;
        Ok(written)
    }

    /// Verifies an entry pulled from the relay and stores it if it is new (a page of one, see
    /// [`Store::apply_incoming_page`]). Not flushed: the caller flushes once per page, before
    /// persisting the cursor.
    pub fn apply_incoming(
        &self,
        keys: &LogKeys<'_>,
        bytes: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        let applied = self.apply_incoming_page(keys, vec![precheck(keys, bytes)])?;
        match applied.refused {
            Some((_, error)) => Err(error),
            None => Ok(applied.stored.into_iter().next()),
        }
    }
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
    /// What to tell the sync session.
    pub outcome: PageOutcome,
}

impl Store {
    /// Stores what [`judge_page`] accepts of a page of pulled entries, whose log-independent
    /// checks (signature, ciphertext hash, decryption) already ran, possibly in parallel
    /// ([`candor_shared::sync::precheck_batch`]): the entries up to the first refusal, in one
    /// transaction. Not flushed: the caller flushes once per page, before persisting the cursor.
    pub fn apply_incoming_page(
        &self,
        keys: &LogKeys<'_>,
        page: Vec<Prechecked>,
    ) -> Result<PageApplied, StoreError> {
        let _guard = self.lock();
        let verdict = judge_page(self, keys, self.adopting_own()?, page)?;
        if !verdict.accepted.is_empty() {
            self.insert_entries(&keys.me, &verdict.accepted, &verdict.payloads)?;
            if let Some(hook) = &*self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) {
                for _ in &verdict.accepted {
                    hook();
                }
            }
        }
        let outcome = verdict.outcome();
        Ok(PageApplied {
            stored: verdict.accepted,
            refused: verdict.refused.map(|(index, why)| {
                let error = match why {
                    PageRefusal::Frozen => StoreError::Frozen,
                    PageRefusal::Incoming(e) => StoreError::Refused(e),
                };
                (index, error)
            }),
            outcome,
        })
    }
}

/// The store's logs as the page judgement reads them.
impl HeldLogs for Store {
    type Error = StoreError;

    fn head(&self, author: &DeviceKey) -> Result<LogHead, StoreError> {
        Store::head(self, author)
    }

    fn hash_at(&self, author: &DeviceKey, seq: u64) -> Result<Option<EntryHash>, StoreError> {
        Store::hash_at(self, author, seq)
    }

    fn is_frozen(&self, author: &DeviceKey) -> Result<bool, StoreError> {
        Store::is_frozen(self, author)
    }

    fn frontier(&self, author: &DeviceKey, count: u64) -> Result<Frontier, StoreError> {
        self.log_frontier(author, count)
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
mod tests;
