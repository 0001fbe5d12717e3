//! [`RelayDb`]: the store a relay runs on, chosen at start — sled in the data directory (the
//! default, nothing else to install) or PostgreSQL (`--store postgres://…`), which several relay
//! processes can share.
//!
//! Both go through the same [`RelayStore`] contract; what differs is durability (sled is flushed
//! before an acknowledgement, PostgreSQL commits every write) and who else may write (a sled
//! database belongs to one process; a PostgreSQL database to every relay pointed at it, which
//! also hear each other's appends through [`crate::pg_notify`]).

use crate::postgres::{PgError, PgSpaceLock, PgStore};
use crate::store::{SledStore, StoreError};
use candor_shared::chain::LogHead;
use candor_shared::entry::Entry;
use candor_shared::relay::{RelayStore, SpaceRecord};
use candor_shared::wire::PagedEntry;
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use std::sync::MutexGuard;

/// The relay's store: sled or PostgreSQL.
#[derive(Clone, Debug)]
pub enum RelayDb {
    /// An embedded sled database in the data directory.
    Sled(SledStore),
    /// A PostgreSQL database, possibly shared with other relay processes.
    Postgres(PgStore),
}

/// An error of either store.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// From sled.
    #[error(transparent)]
    Sled(#[from] StoreError),
    /// From PostgreSQL.
    #[error(transparent)]
    Postgres(#[from] PgError),
}

/// A held space lock of either store.
pub enum DbLock<'a> {
    /// sled's process-wide write mutex.
    Sled(MutexGuard<'a, ()>),
    /// PostgreSQL's advisory lock on the space.
    Postgres(Box<PgSpaceLock>),
}

impl From<SledStore> for RelayDb {
    fn from(store: SledStore) -> Self {
        Self::Sled(store)
    }
}

impl From<PgStore> for RelayDb {
    fn from(store: PgStore) -> Self {
        Self::Postgres(store)
    }
}

impl RelayDb {
    /// Makes every write that returned before this call durable (PostgreSQL: already is).
    pub async fn flush(&self) -> Result<(), DbError> {
        match self {
            Self::Sled(store) => Ok(store.flush().await?),
            Self::Postgres(_) => Ok(()),
        }
    }

    /// The sled store, if that is what this is (tests, metrics).
    pub fn as_sled(&self) -> Option<&SledStore> {
        match self {
            Self::Sled(store) => Some(store),
            Self::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, if that is what this is.
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match self {
            Self::Sled(_) => None,
            Self::Postgres(store) => Some(store),
        }
    }

    /// Conflicting entries kept as evidence for a space.
    pub async fn conflicts(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, DbError> {
        match self {
            Self::Sled(store) => Ok(store.conflicts(space)?),
            Self::Postgres(store) => Ok(store.conflicts(space).await?),
        }
    }
}

/// Calls the same method on whichever store this is, converting its error.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            RelayDb::Sled($store) => $call.map_err(DbError::from),
            RelayDb::Postgres($store) => $call.map_err(DbError::from),
        }
    };
}

impl RelayStore for RelayDb {
    type Error = DbError;
    type SpaceLock<'a> = DbLock<'a>;

    fn lock_space(&self, space: &SpaceId) -> Result<DbLock<'_>, DbError> {
        match self {
            Self::Sled(store) => Ok(DbLock::Sled(store.lock_space(space)?)),
            Self::Postgres(store) => Ok(DbLock::Postgres(Box::new(store.lock_space(space)?))),
        }
    }

    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, DbError> {
        each!(self, s => s.space(space))
    }

    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), DbError> {
        each!(self, s => s.put_space(space, record))
    }

    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, DbError> {
        each!(self, s => s.spaces_of(device))
    }

    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, DbError> {
        each!(self, s => s.head(space, author))
    }

    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, DbError> {
        each!(self, s => s.heads(space))
    }

    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, DbError> {
        each!(self, s => s.hash_at(space, author, seq))
    }

    fn space_bytes(&self, space: &SpaceId) -> Result<u64, DbError> {
        each!(self, s => s.space_bytes(space))
    }

    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, DbError> {
        each!(self, s => s.append(space, entry, bytes))
    }

    fn append_batch(
        &self,
        space: &SpaceId,
        entries: &[(Entry, Vec<u8>)],
    ) -> Result<Vec<u64>, DbError> {
        each!(self, s => s.append_batch(space, entries))
    }

    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, DbError> {
        each!(self, s => s.conflict_at(space, author, seq))
    }

    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, DbError> {
        each!(self, s => s.record_conflict(space, entry, bytes))
    }

    fn durable_on_write(&self) -> bool {
        match self {
            Self::Sled(store) => store.durable_on_write(),
            Self::Postgres(store) => store.durable_on_write(),
        }
    }

    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), DbError> {
        each!(self, s => s.page(space, after, limit))
    }
}
