//! The relay's durable storage: [`SledStore`], a [`RelayStore`] on a sled database.
//!
//! Trees and their keys (all integers big-endian, so byte order is numeric order):
//!
//! | tree          | key                                  | value                       |
//! |---------------|--------------------------------------|-----------------------------|
//! | `spaces`      | space (16)                           | postcard [`SpaceRecord`]    |
//! | `memberships` | device (32) ‖ space (16)             | empty                       |
//! | `heads`       | space (16) ‖ author (32)             | postcard [`LogHead`]        |
//! | `hashes`      | space (16) ‖ author (32) ‖ seq (8)   | entry hash (32)             |
//! | `entries`     | space (16) ‖ cursor (8)              | the entry in wire form      |
//! | `conflicts`   | space (16) ‖ author (32) ‖ seq (8)   | entry hash (32) ‖ the entry |
//! | `usage`       | space (16)                           | entry bytes stored (u64)    |
//!
//! One conflicting entry is kept per (space, author, seq), and its bytes count in `usage`.
//! Relays before that rule keyed `conflicts` by space (16) ‖ entry hash (32) with the entry as
//! the value; such records are still listed by [`SledStore::conflicts`] but neither counted nor
//! consulted.
//!
//! Space records written before relays recorded the creation time (the `created_ms` field) are
//! still read: they decode as created at time 0, whose invite never expires. The `usage` tree
//! appeared with storage quotas; a space's entries stored before it do not count against its
//! quota.
//!
//! Cursors start at 1 in each space and are never reused: entries are never deleted, and the next
//! cursor is one past the largest stored. [`RelayStore::append`] writes the entry, the hash index,
//! the head and the usage in one multi-tree transaction. The [`candor_shared::relay::Relay`] writes only under
//! [`RelayStore::lock_space`], which for sled is one mutex for the whole database (a sled
//! database belongs to one process), so reading the last cursor just before that transaction is
//! race-free.
//!
//! Writes reach disk when sled flushes (periodically, or when the driver calls
//! [`SledStore::flush`], which it does before acknowledging anything). sled 0.34's flush writes
//! its log with `sync_file_range`, which survives a process crash but does not commit file
//! metadata or the drive's write cache; so [`SledStore::flush`] then `fdatasync`s sled's data
//! file, which does. Flushes are group commits: a caller whose writes are covered by a flush
//! already running (or just finished) does not start another, so many concurrent pushes share one
//! flush and one `fdatasync` ([`SledStore::flush`]). Corrupt records are reported as [`StoreError::Corrupt`], never a panic.

use candor_shared::chain::{LogHead, PendingHeads};
use candor_shared::entry::Entry;
use candor_shared::relay::{RelayStore, SpaceRecord};
use candor_shared::wire::PagedEntry;
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Errors of the relay's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O error, corruption detected by sled, lock held by another
    /// process, …).
    #[error("relay database error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("relay database holds a corrupt {what} record: {detail}")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// Syncing the data file to disk failed.
    #[error("could not sync the relay database to disk: {0}")]
    Sync(std::io::Error),
    /// A space has used up every cursor (2^64 - 1 entries): cannot happen in practice.
    #[error("space {0} has no cursors left")]
    CursorsExhausted(SpaceId),
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// The last `N` bytes of a key that must be exactly `len` bytes long, or a corruption error.
fn key_suffix<const N: usize>(
    key: &[u8],
    len: usize,
    what: &'static str,
) -> Result<[u8; N], StoreError> {
    key.get(len.saturating_sub(N)..)
        .filter(|_| key.len() == len)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| corrupt(what, format!("key of {} bytes, expected {len}", key.len())))
}

fn space_key(space: &SpaceId) -> [u8; 16] {
    space.0
}

fn membership_key(device: &DeviceKey, space: &SpaceId) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(&device.0);
    key[32..].copy_from_slice(&space.0);
    key
}

fn head_key(space: &SpaceId, author: &DeviceKey) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..16].copy_from_slice(&space.0);
    key[16..].copy_from_slice(&author.0);
    key
}

fn hash_key(space: &SpaceId, author: &DeviceKey, seq: u64) -> [u8; 56] {
    let mut key = [0u8; 56];
    key[..48].copy_from_slice(&head_key(space, author));
    key[48..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn entry_key(space: &SpaceId, cursor: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(&space.0);
    key[16..].copy_from_slice(&cursor.to_be_bytes());
    key
}

/// Length of a `conflicts` key of the relays that kept every conflict (space ‖ entry hash).
const LEGACY_CONFLICT_KEY: usize = 48;

fn decode_head(bytes: &[u8]) -> Result<LogHead, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| corrupt("log head", e))
}

/// The layout of [`SpaceRecord`] before it had `created_ms`.
#[derive(serde::Deserialize)]
struct LegacySpaceRecord {
    members: Vec<candor_shared::wire::MemberCard>,
    invite_verifier: [u8; 32],
    sealed_space_key: Option<Vec<u8>>,
}

pub(crate) fn decode_space(bytes: &[u8]) -> Result<SpaceRecord, StoreError> {
    match postcard::from_bytes::<SpaceRecord>(bytes) {
        Ok(record) => Ok(record),
        Err(e) => match postcard::from_bytes::<LegacySpaceRecord>(bytes) {
            Ok(legacy) => Ok(SpaceRecord {
                members: legacy.members,
                invite_verifier: legacy.invite_verifier,
                sealed_space_key: legacy.sealed_space_key,
                created_ms: 0,
            }),
            Err(_) => Err(corrupt("space", e)),
        },
    }
}

fn decode_usage(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("usage", format!("{} bytes", bytes.len())))
}

fn encode_head(head: &LogHead) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(head).map_err(|e| corrupt("new log head", e))
}

pub(crate) fn encode_space(record: &SpaceRecord) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(record).map_err(|e| corrupt("new space", e))
}

fn tx_result<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

/// Coalesces concurrent flushes into group commits.
///
/// Each caller takes a ticket (after its writes returned), then waits for the leader lock. A
/// flush started after ticket `t` was taken covers the writes of every caller holding a ticket
/// up to `t`; so the leader notes the highest ticket issued *before* it starts flushing and,
/// when the flush succeeds, marks everything up to it completed. A caller that gets the lock
/// and finds its ticket completed returns at once. A failed flush completes nothing: the next
/// caller flushes again.
#[derive(Debug, Default)]
struct GroupCommit {
    issued: AtomicU64,
    completed: AtomicU64,
    flushes: AtomicU64,
    leader: tokio::sync::Mutex<()>,
}

/// A [`RelayStore`] on a sled database. Cheap to clone (all clones share the database).
#[derive(Clone, Debug)]
pub struct SledStore {
    group: Arc<GroupCommit>,
    /// Held by the relay while it writes ([`RelayStore::lock_space`]).
    writes: Arc<std::sync::Mutex<()>>,
    db: sled::Db,
    /// sled's data file, `fdatasync`ed after each flush (absent for temporary databases).
    data_file: Option<Arc<std::fs::File>>,
    spaces: Tree,
    memberships: Tree,
    heads: Tree,
    hashes: Tree,
    entries: Tree,
    conflicts: Tree,
    usage: Tree,
}

impl SledStore {
    /// Opens (or creates) the database in directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let mut store = Self::from_db(db)?;
        // sled 0.34 keeps its log in the file named `db` inside its directory.
        store.data_file = std::fs::File::open(path.join("db")).ok().map(Arc::new);
        Ok(store)
    }

    /// Uses an already opened database (e.g. a temporary one in tests).
    pub fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            spaces: db.open_tree("spaces")?,
            memberships: db.open_tree("memberships")?,
            heads: db.open_tree("heads")?,
            hashes: db.open_tree("hashes")?,
            entries: db.open_tree("entries")?,
            conflicts: db.open_tree("conflicts")?,
            usage: db.open_tree("usage")?,
            db,
            data_file: None,
            group: Arc::default(),
            writes: Arc::default(),
        })
    }

    /// Makes every write that returned before this call durable. Call before acknowledging a
    /// write to a device. Concurrent callers share flushes (see [`GroupCommit`]).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.group.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let _leader = self.group.leader.lock().await;
        if self.group.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let covers = self.group.issued.load(Ordering::SeqCst);
        self.flush_now().await?;
        self.group.flushes.fetch_add(1, Ordering::Relaxed);
        self.group.completed.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }

    /// Flushes made so far by [`SledStore::flush`] (group commits, not calls).
    pub fn flush_count(&self) -> u64 {
        self.group.flushes.load(Ordering::Relaxed)
    }

    /// Number of spaces (counts the records: for metrics, not hot paths).
    pub fn space_count(&self) -> u64 {
        self.spaces.len() as u64
    }

    /// The database's size on disk, in bytes (0 if unknown).
    pub fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    async fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        if let Some(file) = &self.data_file {
            let file = file.clone();
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| StoreError::Sync(std::io::Error::other(e)))?
                .map_err(StoreError::Sync)?;
        }
        Ok(())
    }

    /// Conflicting entries (two different entries signed at one seq) kept as evidence for a
    /// space: those kept by earlier relays first (in entry-hash order), then one per (author,
    /// seq) in that order.
    pub fn conflicts(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut legacy = Vec::new();
        let mut current = Vec::new();
        for item in self.conflicts.scan_prefix(space_key(space)) {
            let (key, value) = item?;
            if key.len() == LEGACY_CONFLICT_KEY {
                legacy.push(value.to_vec());
            } else {
                let entry = value
                    .get(32..)
                    .ok_or_else(|| corrupt("conflict", format!("{} bytes", value.len())))?;
                current.push(entry.to_vec());
            }
        }
        legacy.extend(current);
        Ok(legacy)
    }

    /// The last cursor used in a space (0 if it has no entries).
    pub fn last_cursor(&self, space: &SpaceId) -> Result<u64, StoreError> {
        match self.entries.scan_prefix(space_key(space)).next_back() {
            None => Ok(0),
            Some(item) => {
                let (key, _) = item?;
                Ok(u64::from_be_bytes(key_suffix::<8>(&key, 24, "entry")?))
            }
        }
    }
}

impl RelayStore for SledStore {
    type Error = StoreError;
    type SpaceLock<'a> = std::sync::MutexGuard<'a, ()>;

    fn lock_space(&self, _: &SpaceId) -> Result<Self::SpaceLock<'_>, StoreError> {
        Ok(self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        self.spaces
            .get(space_key(space))?
            .map(|bytes| decode_space(&bytes))
            .transpose()
    }

    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), StoreError> {
        let encoded = encode_space(record)?;
        tx_result(
            (&self.spaces, &self.memberships).transaction(|(spaces, memberships)| {
                let previous = spaces.insert(&space_key(space)[..], encoded.as_slice())?;
                if let Some(previous) = previous {
                    let previous =
                        decode_space(&previous).map_err(ConflictableTransactionError::Abort)?;
                    for member in &previous.members {
                        memberships.remove(&membership_key(&member.public.device, space)[..])?;
                    }
                }
                for member in &record.members {
                    memberships.insert(
                        &membership_key(&member.public.device, space)[..],
                        &[] as &[u8],
                    )?;
                }
                Ok(())
            }),
        )
    }

    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, StoreError> {
        self.memberships
            .scan_prefix(device.0)
            .keys()
            .map(|key| Ok(SpaceId(key_suffix::<16>(&key?, 48, "membership")?)))
            .collect()
    }

    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, StoreError> {
        match self.heads.get(head_key(space, author))? {
            Some(bytes) => decode_head(&bytes),
            None => Ok(LogHead::default()),
        }
    }

    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, StoreError> {
        self.heads
            .scan_prefix(space_key(space))
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    DeviceKey(key_suffix::<32>(&key, 48, "log head")?),
                    decode_head(&value)?,
                ))
            })
            .collect()
    }

    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, StoreError> {
        self.hashes
            .get(hash_key(space, author, seq))?
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_ref())
                    .map(EntryHash)
                    .map_err(|_| corrupt("entry hash", format!("{} bytes", bytes.len())))
            })
            .transpose()
    }

    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, StoreError> {
        let cursors = self.append_batch(space, &[(entry.clone(), bytes.to_vec())])?;
        cursors
            .first()
            .copied()
            .ok_or(StoreError::CursorsExhausted(*space))
    }

    /// One transaction for a whole push: every entry and hash, each author's head and the space's
    /// usage written once. Fewer, larger writes are what lets concurrent pushes share flushes.
    fn append_batch(
        &self,
        space: &SpaceId,
        batch: &[(Entry, Vec<u8>)],
    ) -> Result<Vec<u64>, StoreError> {
        let first = self
            .last_cursor(space)?
            .checked_add(1)
            .ok_or(StoreError::CursorsExhausted(*space))?;
        let count = batch.len() as u64;
        first
            .checked_add(count)
            .ok_or(StoreError::CursorsExhausted(*space))?;
        let added: u64 = batch.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        tx_result(
            (&self.entries, &self.hashes, &self.heads, &self.usage).transaction(
                |(entries, hashes, heads, usage)| {
                    let mut new_heads = PendingHeads::default();
                    for (offset, (entry, bytes)) in batch.iter().enumerate() {
                        let author = entry.header.author;
                        let head = new_heads.head(&author, || {
                            match heads.get(&head_key(space, &author)[..])? {
                                Some(old) => {
                                    decode_head(&old).map_err(ConflictableTransactionError::Abort)
                                }
                                None => Ok(LogHead::default()),
                            }
                        })?;
                        new_heads.push(author, head, entry.hash);
                        entries.insert(
                            &entry_key(space, first + offset as u64)[..],
                            bytes.as_slice(),
                        )?;
                        hashes.insert(
                            &hash_key(space, &author, entry.header.seq)[..],
                            &entry.hash.0[..],
                        )?;
                    }
                    for (author, head) in new_heads.heads() {
                        let encoded =
                            encode_head(&head).map_err(ConflictableTransactionError::Abort)?;
                        heads.insert(&head_key(space, &author)[..], encoded)?;
                    }
                    let used = match usage.get(&space_key(space)[..])? {
                        Some(old) => {
                            decode_usage(&old).map_err(ConflictableTransactionError::Abort)?
                        }
                        None => 0,
                    };
                    usage.insert(
                        &space_key(space)[..],
                        &used.saturating_add(added).to_be_bytes()[..],
                    )?;
                    Ok(())
                },
            ),
        )?;
        Ok((first..first + count).collect())
    }

    fn space_bytes(&self, space: &SpaceId) -> Result<u64, StoreError> {
        match self.usage.get(space_key(space))? {
            Some(bytes) => decode_usage(&bytes),
            None => Ok(0),
        }
    }

    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, StoreError> {
        self.conflicts
            .get(hash_key(space, author, seq))?
            .map(|value| {
                value
                    .get(..32)
                    .and_then(|hash| <[u8; 32]>::try_from(hash).ok())
                    .map(EntryHash)
                    .ok_or_else(|| corrupt("conflict", format!("{} bytes", value.len())))
            })
            .transpose()
    }

    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let key = hash_key(space, &entry.header.author, entry.header.seq);
        let mut value = Vec::with_capacity(32 + bytes.len());
        value.extend_from_slice(&entry.hash.0);
        value.extend_from_slice(bytes);
        tx_result(
            (&self.conflicts, &self.usage).transaction(|(conflicts, usage)| {
                if conflicts.get(&key[..])?.is_some() {
                    return Ok(false);
                }
                conflicts.insert(&key[..], value.as_slice())?;
                let used = match usage.get(&space_key(space)[..])? {
                    Some(old) => decode_usage(&old).map_err(ConflictableTransactionError::Abort)?,
                    None => 0,
                };
                usage.insert(
                    &space_key(space)[..],
                    &used.saturating_add(bytes.len() as u64).to_be_bytes()[..],
                )?;
                Ok(true)
            }),
        )
    }

    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), StoreError> {
        let start = entry_key(space, after.saturating_add(1));
        let end = entry_key(space, u64::MAX);
        let mut range = self.entries.range(start..=end);
        let mut entries = Vec::new();
        for item in range.by_ref().take(limit as usize) {
            let (key, value) = item?;
            entries.push(PagedEntry {
                cursor: u64::from_be_bytes(key_suffix::<8>(&key, 24, "entry")?),
                entry: value.to_vec(),
            });
        }
        let more = range.next().transpose()?.is_some();
        Ok((entries, more))
    }
}
