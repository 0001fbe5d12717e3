//! [`PgStore`]: the [`RelayStore`] on PostgreSQL, which several relay processes can share.
//!
//! Tables (schema version [`SCHEMA_VERSION`], created and migrated by [`PgStore::connect`] under a
//! transaction-scoped advisory lock, so relays starting together migrate once):
//!
//! | table          | key                        | columns                                   |
//! |----------------|----------------------------|-------------------------------------------|
//! | `candor_schema`| (one row)                  | `version`                                 |
//! | `spaces`       | `space`                    | `record` (postcard [`SpaceRecord`])       |
//! | `memberships`  | `device`, `space`          |                                           |
//! | `usage`        | `space`                    | `last_cursor`, `bytes` (log + conflicts)  |
//! | `heads`        | `space`, `author`          | `count`, `hash`                           |
//! | `entries`      | `space`, `cursor`          | `author`, `seq` (unique with space), `hash`, `entry` |
//! | `conflicts`    | `space`, `author`, `seq`   | `hash`, `entry`                           |
//!
//! # Several processes, one database
//! * **Writes to a space are serialized across processes** by a session advisory lock on the
//!   space ([`RelayStore::lock_space`]); it is released when the guard drops or, if the process
//!   dies, when PostgreSQL ends its session. The lock connection comes from a pool of its own,
//!   so a writer holding a lock can always get a connection for its reads and writes.
//! * **The chain rule holds even without the lock**: [`RelayStore::append_batch`] locks the
//!   authors' `heads` rows (`FOR UPDATE`) and checks that every entry extends its head, and
//!   `(space, author, seq)` is unique; a cursor comes from an update of the space's `usage` row,
//!   whose row lock is held until commit, so cursors are gap-free in commit order.
//! * **Durable on write**: every write commits before its method returns (PostgreSQL's
//!   `synchronous_commit`, on by default, makes a commit durable), so the relay acknowledges and
//!   serves only committed entries and [`crate::backend::RelayDb::flush`] has nothing to do.
//! * **Live across processes**: each append's transaction sends `NOTIFY candor_entries` with
//!   `<space hex>:<cursor>`, delivered at commit to every relay listening
//!   ([`crate::pg_notify`]).
//!
//! Methods are synchronous (the relay state machine calls them) and block on the runtime handle
//! the store was created with: call them from a blocking thread (`spawn_blocking`) or a thread
//! outside the runtime, never from an async task.

use crate::store::{decode_space, encode_space};
use candor_shared::chain::{Fit, LogHead, PendingHeads};
use candor_shared::entry::Entry;
use candor_shared::relay::{RelayStore, SpaceRecord};
use candor_shared::wire::PagedEntry;
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::future::Future;
use tokio::runtime::Handle;
use tokio_postgres::NoTls;

/// The schema version this relay creates and understands.
pub const SCHEMA_VERSION: i32 = 1;
/// The channel of `NOTIFY` messages announcing appended entries.
pub const NOTIFY_CHANNEL: &str = "candor_entries";
/// Advisory lock key taken (per transaction) while migrating the schema.
const MIGRATION_LOCK: i64 = 0x6361_6e64_6f72_0001;
/// Connections for reads and writes, per process.
const WORK_CONNECTIONS: usize = 16;
/// Connections holding space locks, per process: pushes to that many spaces write at once.
const LOCK_CONNECTIONS: usize = 8;

/// Migrations, in order: `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = ["
    CREATE TABLE spaces (
        space BYTEA PRIMARY KEY,
        record BYTEA NOT NULL
    );
    CREATE TABLE memberships (
        device BYTEA NOT NULL,
        space BYTEA NOT NULL REFERENCES spaces (space),
        PRIMARY KEY (device, space)
    );
    CREATE TABLE usage (
        space BYTEA PRIMARY KEY,
        last_cursor BIGINT NOT NULL CHECK (last_cursor >= 0),
        bytes BIGINT NOT NULL CHECK (bytes >= 0)
    );
    CREATE TABLE heads (
        space BYTEA NOT NULL,
        author BYTEA NOT NULL,
        count BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (space, author)
    );
    CREATE TABLE entries (
        space BYTEA NOT NULL,
        cursor BIGINT NOT NULL,
        author BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        entry BYTEA NOT NULL,
        PRIMARY KEY (space, cursor),
        UNIQUE (space, author, seq)
    );
    CREATE TABLE conflicts (
        space BYTEA NOT NULL,
        author BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        entry BYTEA NOT NULL,
        PRIMARY KEY (space, author, seq)
    );
"];

/// Errors of the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A query failed, or the connection did.
    #[error("PostgreSQL error: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("could not get a PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The store address or password is unusable.
    #[error("PostgreSQL store: {0}")]
    Config(String),
    /// A stored record does not decode.
    #[error("PostgreSQL store holds a corrupt {what} record: {detail}")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The database was migrated by a newer relay.
    #[error(
        "the database's schema is version {found}, this relay knows versions up to {known}: \
         run the newer relay"
    )]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest this relay knows.
        known: i32,
    },
    /// An entry no longer extends its author's head: someone wrote the space without its lock.
    #[error("space {0} was written concurrently without its lock; nothing was stored")]
    Raced(SpaceId),
    /// A number does not fit PostgreSQL's BIGINT.
    #[error("{0} is out of range for the database")]
    Range(&'static str),
}

fn corrupt(what: &'static str, detail: impl ToString) -> PgError {
    PgError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn big(value: u64, what: &'static str) -> Result<i64, PgError> {
    i64::try_from(value).map_err(|_| PgError::Range(what))
}

fn unsigned(value: i64, what: &'static str) -> Result<u64, PgError> {
    u64::try_from(value).map_err(|_| corrupt(what, format!("negative value {value}")))
}

fn array<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], PgError> {
    <[u8; N]>::try_from(bytes).map_err(|_| corrupt(what, format!("{} bytes", bytes.len())))
}

/// The advisory lock key of a space (its first 8 bytes: spaces are random, so keys of two
/// spaces rarely meet, and if they do those spaces merely share a lock).
fn lock_key(space: &SpaceId) -> i64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&space.0[..8]);
    i64::from_be_bytes(key)
}

/// The payload of the `NOTIFY` for an entry appended at `cursor`.
pub fn notify_payload(space: &SpaceId, cursor: u64) -> String {
    format!("{}:{cursor}", hex::encode(space.0))
}

/// The space and cursor of a `NOTIFY` payload, if it is one.
pub fn parse_notify_payload(payload: &str) -> Option<(SpaceId, u64)> {
    let (space, cursor) = payload.split_once(':')?;
    let space = <[u8; 16]>::try_from(hex::decode(space).ok()?).ok()?;
    Some((SpaceId(space), cursor.parse().ok()?))
}

/// A [`RelayStore`] on PostgreSQL. Cheap to clone (clones share the pools).
#[derive(Clone)]
pub struct PgStore {
    work: Pool,
    locks: Pool,
    config: tokio_postgres::Config,
    handle: Handle,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the password: show where, never how.
        f.debug_struct("PgStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

/// Holds a space's advisory lock; unlocks when dropped.
pub struct PgSpaceLock {
    client: Option<Object>,
    key: i64,
    handle: Handle,
}

impl Drop for PgSpaceLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let unlocked = self
            .handle
            .block_on(client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]));
        if unlocked.is_err() {
            // Ending the session is what releases the lock for sure: never reuse it.
            drop(Object::take(client));
        }
    }
}

impl PgStore {
    /// Connects to the database `config` names, creating or migrating the schema. Sync methods
    /// will block on `handle`.
    pub async fn connect(config: tokio_postgres::Config, handle: Handle) -> Result<Self, PgError> {
        let pool = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .build()
                .map_err(|e| PgError::Config(e.to_string()))
        };
        let store = Self {
            work: pool(WORK_CONNECTIONS)?,
            locks: pool(LOCK_CONNECTIONS)?,
            config,
            handle,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection settings (for the `LISTEN` connection of [`crate::pg_notify`]).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    async fn migrate(&self) -> Result<(), PgError> {
        let mut client = self.work.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS candor_schema (
                 only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                 version INTEGER NOT NULL
             )",
        )
        .await?;
        let found: i32 = match tx
            .query_opt("SELECT version FROM candor_schema", &[])
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(PgError::SchemaTooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for migration in MIGRATIONS.iter().skip(found.max(0) as usize) {
            tx.batch_execute(migration).await?;
        }
        tx.execute(
            "INSERT INTO candor_schema (version) VALUES ($1)
             ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA_VERSION],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `future` to completion on the store's runtime (see the module docs).
    fn block<T>(&self, future: impl Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
        self.handle.block_on(future)
    }

    /// Number of spaces.
    pub async fn space_count(&self) -> Result<u64, PgError> {
        let client = self.work.get().await?;
        let row = client.query_one("SELECT count(*) FROM spaces", &[]).await?;
        unsigned(row.try_get(0)?, "space count")
    }

    /// The database's size on disk, in bytes.
    pub async fn disk_bytes(&self) -> Result<u64, PgError> {
        let client = self.work.get().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?;
        unsigned(row.try_get(0)?, "database size")
    }

    /// Conflicting entries kept for a space, in (author, seq) order.
    pub async fn conflicts(&self, space: &SpaceId) -> Result<Vec<Vec<u8>>, PgError> {
        let client = self.work.get().await?;
        let rows = client
            .query(
                "SELECT entry FROM conflicts WHERE space = $1 ORDER BY author, seq",
                &[&&space.0[..]],
            )
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<_, Vec<u8>>(0)?))
            .collect()
    }

    /// The hash column of `table` (`entries` or `conflicts`) at (space, author, seq).
    fn hash_by_seq(
        &self,
        table: &'static str,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, PgError> {
        let seq = big(seq, "seq")?;
        let query =
            format!("SELECT hash FROM {table} WHERE space = $1 AND author = $2 AND seq = $3");
        self.block(async {
            let client = self.work.get().await?;
            let statement = client.prepare_cached(&query).await?;
            let row = client
                .query_opt(&statement, &[&&space.0[..], &&author.0[..], &seq])
                .await?;
            row.map(|row| Ok(EntryHash(array(row.try_get(0)?, table)?)))
                .transpose()
        })
    }

    async fn head_of(
        client: &impl tokio_postgres::GenericClient,
        space: &SpaceId,
        author: &DeviceKey,
        for_update: bool,
    ) -> Result<LogHead, PgError> {
        let query = if for_update {
            "SELECT count, hash FROM heads WHERE space = $1 AND author = $2 FOR UPDATE"
        } else {
            "SELECT count, hash FROM heads WHERE space = $1 AND author = $2"
        };
        let row = client
            .query_opt(query, &[&&space.0[..], &&author.0[..]])
            .await?;
        match row {
            None => Ok(LogHead::default()),
            Some(row) => Ok(LogHead {
                count: unsigned(row.try_get(0)?, "log head")?,
                hash: EntryHash(array(row.try_get::<_, &[u8]>(1)?, "log head")?),
            }),
        }
    }
}

impl RelayStore for PgStore {
    type Error = PgError;
    type SpaceLock<'a> = PgSpaceLock;

    fn lock_space(&self, space: &SpaceId) -> Result<PgSpaceLock, PgError> {
        let key = lock_key(space);
        self.block(async {
            let client = self.locks.get().await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&key])
                .await?;
            Ok(PgSpaceLock {
                client: Some(client),
                key,
                handle: self.handle.clone(),
            })
        })
    }

    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, PgError> {
        self.block(async {
            let client = self.work.get().await?;
            let row = client
                .query_opt(
                    "SELECT record FROM spaces WHERE space = $1",
                    &[&&space.0[..]],
                )
                .await?;
            match row {
                None => Ok(None),
                Some(row) => decode_space(row.try_get(0)?)
                    .map(Some)
                    .map_err(|e| corrupt("space", e)),
            }
        })
    }

    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), PgError> {
        let encoded = encode_space(record).map_err(|e| corrupt("new space", e))?;
        self.block(async {
            let mut client = self.work.get().await?;
            let tx = client.transaction().await?;
            let id = &space.0[..];
            tx.execute(
                "INSERT INTO spaces (space, record) VALUES ($1, $2)
                 ON CONFLICT (space) DO UPDATE SET record = EXCLUDED.record",
                &[&id, &encoded],
            )
            .await?;
            tx.execute("DELETE FROM memberships WHERE space = $1", &[&id])
                .await?;
            for member in &record.members {
                tx.execute(
                    "INSERT INTO memberships (device, space) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&&member.public.device.0[..], &id],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, PgError> {
        self.block(async {
            let client = self.work.get().await?;
            let rows = client
                .query(
                    "SELECT space FROM memberships WHERE device = $1 ORDER BY space",
                    &[&&device.0[..]],
                )
                .await?;
            rows.iter()
                .map(|row| Ok(SpaceId(array(row.try_get(0)?, "membership")?)))
                .collect()
        })
    }

    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, PgError> {
        self.block(async {
            let client = self.work.get().await?;
            Self::head_of(&**client, space, author, false).await
        })
    }

    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, PgError> {
        self.block(async {
            let client = self.work.get().await?;
            let rows = client
                .query(
                    "SELECT author, count, hash FROM heads WHERE space = $1 ORDER BY author",
                    &[&&space.0[..]],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        DeviceKey(array(row.try_get(0)?, "log head")?),
                        LogHead {
                            count: unsigned(row.try_get(1)?, "log head")?,
                            hash: EntryHash(array(row.try_get(2)?, "log head")?),
                        },
                    ))
                })
                .collect()
        })
    }

    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, PgError> {
        self.hash_by_seq("entries", space, author, seq)
    }

    fn space_bytes(&self, space: &SpaceId) -> Result<u64, PgError> {
        self.block(async {
            let client = self.work.get().await?;
            let row = client
                .query_opt("SELECT bytes FROM usage WHERE space = $1", &[&&space.0[..]])
                .await?;
            match row {
                None => Ok(0),
                Some(row) => unsigned(row.try_get(0)?, "usage"),
            }
        })
    }

    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, PgError> {
        let cursors = self.append_batch(space, &[(entry.clone(), bytes.to_vec())])?;
        cursors
            .first()
            .copied()
            .ok_or_else(|| corrupt("usage", "no cursor assigned"))
    }

    /// One transaction per push: heads checked under row locks, cursors from the usage row,
    /// all entries in one statement, a `NOTIFY` delivered at commit.
    fn append_batch(
        &self,
        space: &SpaceId,
        batch: &[(Entry, Vec<u8>)],
    ) -> Result<Vec<u64>, PgError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let count = big(batch.len() as u64, "batch size")?;
        let added = big(
            batch.iter().map(|(_, bytes)| bytes.len() as u64).sum(),
            "batch bytes",
        )?;
        self.block(async {
            let mut client = self.work.get().await?;
            let tx = client.transaction().await?;
            let id = &space.0[..];
            let mut heads = PendingHeads::default();
            let (mut authors, mut seqs, mut hashes, mut entries) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (entry, bytes) in batch {
                let author = entry.header.author;
                let head = match heads.get(&author) {
                    Some(head) => head,
                    None => Self::head_of(&*tx, space, &author, true).await?,
                };
                if head.classify(space, &entry.header) != Ok(Fit::Next) {
                    return Err(PgError::Raced(*space));
                }
                heads.push(author, head, entry.hash);
                authors.push(author.0.to_vec());
                seqs.push(big(entry.header.seq, "seq")?);
                hashes.push(entry.hash.0.to_vec());
                entries.push(bytes.as_slice());
            }
            let row = tx
                .query_one(
                    "INSERT INTO usage (space, last_cursor, bytes) VALUES ($1, $2, $3)
                     ON CONFLICT (space) DO UPDATE SET
                         last_cursor = usage.last_cursor + EXCLUDED.last_cursor,
                         bytes = usage.bytes + EXCLUDED.bytes
                     RETURNING last_cursor",
                    &[&id, &count, &added],
                )
                .await?;
            let last = unsigned(row.try_get(0)?, "usage")?;
            let first = last + 1 - batch.len() as u64;
            let cursors: Vec<i64> = (first..=last)
                .map(|c| big(c, "cursor"))
                .collect::<Result<_, _>>()?;
            tx.execute(
                "INSERT INTO entries (space, cursor, author, seq, hash, entry)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BIGINT[], $5::BYTEA[],
                                          $6::BYTEA[])",
                &[&id, &cursors, &authors, &seqs, &hashes, &entries],
            )
            .await?;
            for (author, head) in heads.heads() {
                tx.execute(
                    "INSERT INTO heads (space, author, count, hash) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (space, author) DO UPDATE SET
                         count = EXCLUDED.count, hash = EXCLUDED.hash",
                    &[
                        &id,
                        &&author.0[..],
                        &big(head.count, "log head")?,
                        &&head.hash.0[..],
                    ],
                )
                .await?;
            }
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&NOTIFY_CHANNEL, &notify_payload(space, last)],
            )
            .await?;
            tx.commit().await?;
            Ok((first..=last).collect())
        })
    }

    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, PgError> {
        self.hash_by_seq("conflicts", space, author, seq)
    }

    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, PgError> {
        let seq = big(entry.header.seq, "seq")?;
        let len = big(bytes.len() as u64, "entry size")?;
        self.block(async {
            let mut client = self.work.get().await?;
            let tx = client.transaction().await?;
            let id = &space.0[..];
            let kept = tx
                .execute(
                    "INSERT INTO conflicts (space, author, seq, hash, entry)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &id,
                        &&entry.header.author.0[..],
                        &seq,
                        &&entry.hash.0[..],
                        &bytes,
                    ],
                )
                .await?
                == 1;
            if kept {
                tx.execute(
                    "INSERT INTO usage (space, last_cursor, bytes) VALUES ($1, 0, $2)
                     ON CONFLICT (space) DO UPDATE SET bytes = usage.bytes + EXCLUDED.bytes",
                    &[&id, &len],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(kept)
        })
    }

    fn durable_on_write(&self) -> bool {
        true
    }

    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), PgError> {
        let after = big(after.min(i64::MAX as u64), "cursor")?;
        let fetch = i64::from(limit) + 1;
        self.block(async {
            let client = self.work.get().await?;
            let rows = client
                .query(
                    "SELECT cursor, entry FROM entries WHERE space = $1 AND cursor > $2
                     ORDER BY cursor LIMIT $3",
                    &[&&space.0[..], &after, &fetch],
                )
                .await?;
            let more = rows.len() > limit as usize;
            let entries = rows
                .iter()
                .take(limit as usize)
                .map(|row| {
                    Ok(PagedEntry {
                        cursor: unsigned(row.try_get(0)?, "entry")?,
                        entry: row.try_get(1)?,
                    })
                })
                .collect::<Result<_, PgError>>()?;
            Ok((entries, more))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_payloads_round_trip_and_junk_is_ignored() {
        let space = SpaceId([0xA5; 16]);
        let payload = notify_payload(&space, 42);
        assert_eq!(parse_notify_payload(&payload), Some((space, 42)));
        for junk in ["", "zz:1", "a5a5:1", &format!("{}:x", hex::encode(space.0))] {
            assert_eq!(parse_notify_payload(junk), None, "{junk:?}");
        }
    }
}
