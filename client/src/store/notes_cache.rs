//! The shared notes' cache (tree `notes`): snapshots per note and how far each log was fed.

use super::{decode_u64, Store, StoreError};
use candor_shared::notes::NoteId;
use candor_shared::DeviceKey;

const NOTE_DOC: &[u8] = b"doc/";

const NOTE_SCAN: &[u8] = b"scan/";

fn note_doc_key(note: &NoteId) -> Vec<u8> {
    [NOTE_DOC, &note.0[..]].concat()
}

fn note_scan_key(author: &DeviceKey) -> Vec<u8> {
    [NOTE_SCAN, &author.0[..]].concat()
}

impl Store {
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
}
