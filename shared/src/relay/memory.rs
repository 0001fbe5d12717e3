//! An in-memory [`RelayStore`], for tests and simulations of the relay without disk.

use super::{RelayStore, SpaceRecord};
use crate::chain::LogHead;
use crate::entry::Entry;
use crate::wire::PagedEntry;
use crate::{DeviceKey, EntryHash, SpaceId};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default, Clone)]
struct Inner {
    spaces: HashMap<SpaceId, SpaceRecord>,
    heads: HashMap<(SpaceId, DeviceKey), LogHead>,
    hashes: HashMap<(SpaceId, DeviceKey, u64), EntryHash>,
    entries: HashMap<SpaceId, BTreeMap<u64, Vec<u8>>>,
    /// One conflicting entry per (space, author, seq): its hash and bytes.
    conflicts: BTreeMap<(SpaceId, DeviceKey, u64), (EntryHash, Vec<u8>)>,
    bytes: HashMap<SpaceId, u64>,
}

/// A relay store held entirely in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Held by the relay while it writes (to any space: one process owns this store).
    writes: Mutex<()>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of everything stored, as a backup taken now would hold.
    pub fn snapshot(&self) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(self.lock().clone()),
            writes: Mutex::new(()),
        }
    }

    /// Conflicting entries kept as evidence, in (space, author, seq) order.
    pub fn conflicts(&self) -> Vec<(SpaceId, Vec<u8>)> {
        self.lock()
            .conflicts
            .iter()
            .map(|((space, _, _), (_, bytes))| (*space, bytes.clone()))
            .collect()
    }
}

impl RelayStore for MemoryStore {
    type Error = Infallible;
    type SpaceLock<'a> = MutexGuard<'a, ()>;

    fn lock_space(&self, _: &SpaceId) -> Result<MutexGuard<'_, ()>, Infallible> {
        Ok(self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn durable_on_write(&self) -> bool {
        true
    }

    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, Infallible> {
        Ok(self.lock().spaces.get(space).cloned())
    }

    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), Infallible> {
        self.lock().spaces.insert(*space, record.clone());
        Ok(())
    }

    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, Infallible> {
        let inner = self.lock();
        let mut spaces: Vec<SpaceId> = inner
            .spaces
            .iter()
            .filter(|(_, r)| r.members.iter().any(|m| m.public.device == *device))
            .map(|(id, _)| *id)
            .collect();
        spaces.sort();
        Ok(spaces)
    }

    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, Infallible> {
        Ok(self
            .lock()
            .heads
            .get(&(*space, *author))
            .copied()
            .unwrap_or_default())
    }

    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, Infallible> {
        let inner = self.lock();
        let mut heads: Vec<(DeviceKey, LogHead)> = inner
            .heads
            .iter()
            .filter(|((s, _), _)| s == space)
            .map(|((_, author), head)| (*author, *head))
            .collect();
        heads.sort_by_key(|(author, _)| *author);
        Ok(heads)
    }

    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Infallible> {
        Ok(self.lock().hashes.get(&(*space, *author, seq)).copied())
    }

    fn space_bytes(&self, space: &SpaceId) -> Result<u64, Infallible> {
        Ok(self.lock().bytes.get(space).copied().unwrap_or(0))
    }

    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, Infallible> {
        let mut inner = self.lock();
        let author = entry.header.author;
        let log = inner.entries.entry(*space).or_default();
        let cursor = log.keys().next_back().copied().unwrap_or(0) + 1;
        log.insert(cursor, bytes.to_vec());
        *inner.bytes.entry(*space).or_default() += bytes.len() as u64;
        inner
            .hashes
            .insert((*space, author, entry.header.seq), entry.hash);
        let head = inner.heads.entry((*space, author)).or_default();
        *head = head.advanced(entry.hash);
        Ok(cursor)
    }

    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Infallible> {
        Ok(self
            .lock()
            .conflicts
            .get(&(*space, *author, seq))
            .map(|(hash, _)| *hash))
    }

    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, Infallible> {
        let mut inner = self.lock();
        let key = (*space, entry.header.author, entry.header.seq);
        if inner.conflicts.contains_key(&key) {
            return Ok(false);
        }
        inner.conflicts.insert(key, (entry.hash, bytes.to_vec()));
        *inner.bytes.entry(*space).or_default() += bytes.len() as u64;
        Ok(true)
    }

    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), Infallible> {
        let inner = self.lock();
        let Some(log) = inner.entries.get(space) else {
            return Ok((Vec::new(), false));
        };
        let mut range = log.range(after.saturating_add(1)..);
        let entries: Vec<PagedEntry> = range
            .by_ref()
            .take(limit as usize)
            .map(|(cursor, entry)| PagedEntry {
                cursor: *cursor,
                entry: entry.clone(),
            })
            .collect();
        Ok((entries, range.next().is_some()))
    }
}
