//! Merkle roots of the logs, with each log's cached frontier (tree `merkle`), and the check
//! of a pulled checkpoint's root.

use super::{stored_id, Store, StoreError};
use candor_shared::entry::Entry;
use candor_shared::merkle::{Frontier, TreeHash};
use candor_shared::payload::Payload;
use candor_shared::sync::IncomingError;
use candor_shared::DeviceKey;

/// Refuses a checkpoint whose Merkle root differs from the root over the entries of its author
/// that this device verified before it; other payloads pass.
pub(super) fn check_checkpoint(
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

impl Store {
    /// The Merkle root over `author`'s first `count` entries (all of which must be stored).
    /// Extends and saves the cached frontier when `count` is beyond it; recomputes from the
    /// start for an older count.
    pub fn log_root(&self, author: &DeviceKey, count: u64) -> Result<TreeHash, StoreError> {
        Ok(self.log_frontier(author, count)?.root())
    }

    /// The Merkle frontier over `author`'s first `count` stored entries (see [`Store::log_root`]).
    pub(super) fn log_frontier(
        &self,
        author: &DeviceKey,
        count: u64,
    ) -> Result<Frontier, StoreError> {
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
    pub(super) fn root_with_pending(
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
