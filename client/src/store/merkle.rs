//! Merkle roots of the logs, with each log's cached frontier (tree `merkle`); the check of a
//! pulled checkpoint's root reads them through [`candor_shared::sync::HeldLogs::frontier`].

use super::{stored_id, Store, StoreError};
use candor_shared::merkle::{Frontier, TreeHash};
use candor_shared::DeviceKey;

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
}
