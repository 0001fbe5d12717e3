//! Recovery bundles: every tree's contents out ([`Store::dump`]) and into an empty store
//! ([`Store::restore`]).

use super::{log_key, Store, StoreError, META_ADOPT_OWN, META_SEALED};
use candor_shared::entry::Entry;
use serde::{Deserialize, Serialize};

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

impl Store {
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
        // The restored logs are not in the read model: it is rebuilt at the first read.
        self.view.tree.clear()?;
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
}
