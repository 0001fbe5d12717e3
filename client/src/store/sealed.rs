//! Values sealed at rest: [`SealedTree`], the one path through which every local plaintext is
//! written and read, and [`os_nonce`].

use super::StoreError;
use candor_shared::at_rest::StorageKey;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A nonce from the OS random number generator: what every write path passes as its nonce
/// source outside tests (an error there seals nothing).
pub fn os_nonce() -> Result<[u8; 24], StoreError> {
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
    pub(super) name: &'static str,
    pub(super) tree: sled::Tree,
    pub(super) key: Arc<StorageKey>,
}

impl SealedTree {
    /// Seals a value for `key` in this tree.
    pub fn seal(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.key.seal(&label(self.name, key), value, os_nonce()?))
    }

    pub(super) fn open(&self, key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
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
