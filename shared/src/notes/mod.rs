//! Shared notes: texts both partners edit, offline or not, merged without losing a word.
//!
//! Each note is an [Automerge](https://automerge.org) document holding one text object (the
//! note's words) and two root keys, `name` and `archived`. Every edit a partner makes becomes one
//! Automerge change, carried by a [`NoteEdit`] record in the author's own log (so it is signed,
//! encrypted and chained like every other entry). A change larger than [`PART_BYTES`] is split
//! over consecutive entries ("parts") and applies only once every part is present.
//!
//! Merging is Automerge's: concurrent insertions and deletions of both partners combine, and the
//! result depends only on the set of changes, never on the order they arrive in or how often.
//! A device's edits are diffed on word boundaries ([`words`]), so a merge never makes a word
//! neither partner wrote; where both changed the same passage concurrently, the note shows both
//! versions under their authors' names until someone edits that passage ([`conflict`]).
//! Three things make merging sound here:
//!
//! * **A shared genesis.** The text object is created by a fixed, deterministic change
//!   ([`genesis`]) that every device builds itself, so both partners' edits refer to the same
//!   object even when both created the note offline.
//! * **One actor per device.** A device's Automerge actor id is derived from its device key
//!   ([`actor_of`]); a change found in a log must carry that log author's actor.
//! * **Untrusted bytes are checked.** A change is refused (and shown as invalid) if it does not
//!   decode, is too large, is compressed, claims another actor, or touches anything other than
//!   the text, `name` or `archived`; applying it runs under a guard that restores the document
//!   if Automerge fails.
//!
//! [`NoteDoc`] is the merge engine; the client only feeds entries in and stores snapshots.

pub mod conflict;
mod doc;
mod history;
pub mod templates;
pub mod words;

#[cfg(test)]
mod conflict_tests;
#[cfg(test)]
mod tests;

pub use automerge::ChangeHash;
pub use doc::{Applied, InvalidEdit, LocalEdit, NoteDoc, NoteError, NoteView, PendingEdit, Splice};
pub use history::{summarize, EditSummary};

use crate::payload::{Payload, PayloadError};
use crate::{DeviceKey, EntryHash};
use serde::{Deserialize, Serialize};

/// Kind codes of notes and goals (reserved range 0x0060–0x006F).
pub mod code {
    /// [`super::NoteEdit`]: one part of one edit of a shared note.
    pub const NOTE_EDIT: u16 = 0x0060;
    /// A weekly goal added (see [`crate::goals`]).
    pub const GOAL: u16 = 0x0061;
    /// Progress on a goal, in words.
    pub const GOAL_PROGRESS: u16 = 0x0062;
    /// A goal done.
    pub const GOAL_DONE: u16 = 0x0063;
    /// A goal dropped.
    pub const GOAL_DROPPED: u16 = 0x0064;
    /// A shared weekly goal added, which both partners update (same content as [`GOAL`]).
    pub const GOAL_TOGETHER: u16 = 0x0065;
}

/// The largest Automerge change bytes carried by one entry; larger changes are split into parts.
pub const PART_BYTES: usize = 48 * 1024;
/// The most parts one edit may have (so one edit is at most 3 MiB of change bytes).
pub const MAX_PARTS: u16 = 64;
/// The longest note name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// The longest note text accepted from the command line, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// A note's identity: 16 bytes, stable across renames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NoteId(pub [u8; 16]);

impl NoteId {
    /// The id of a note first created under `name`, with `attempt` 0 normally and higher values
    /// when that id is already taken by a note renamed since. Partners who both create a note of
    /// the same name offline get the same id, so their texts merge into one note.
    pub fn for_name(name: &str, attempt: u32) -> NoteId {
        let mut hasher = blake3::Hasher::new_derive_key("candor 2026 note id v1");
        hasher.update(normalize_name(name).as_bytes());
        hasher.update(&attempt.to_be_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        NoteId(id)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The form of a name used to compare names: trimmed, case-folded.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Checks a name a user typed: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn valid_name(name: &str) -> Result<&str, &'static str> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a note's name cannot be empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("a note's name is at most 80 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("a note's name cannot contain control characters");
    }
    Ok(name)
}

/// The Automerge actor id of a device: derived from its device key, so two devices never share
/// one and a device keeps the same one across processes.
pub fn actor_of(device: &DeviceKey) -> automerge::ActorId {
    let mut hasher = blake3::Hasher::new_derive_key("candor 2026 note actor v1");
    hasher.update(&device.0);
    automerge::ActorId::from(&hasher.finalize().as_bytes()[..16])
}

/// The content of a [`code::NOTE_EDIT`] entry: one part of one edit's Automerge change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteEdit {
    /// The note edited.
    pub note: NoteId,
    /// The note's name as the author saw it after the edit (for listings only; the document's
    /// own `name` is authoritative).
    pub name: String,
    /// This part's index, from 0.
    pub part: u16,
    /// How many parts the edit has (1 for all but very large edits).
    pub parts: u16,
    /// This part's slice of the change's bytes.
    pub bytes: Vec<u8>,
}

impl NoteEdit {
    /// The payload carrying this record.
    pub fn to_payload(&self) -> Payload {
        Payload {
            kind: code::NOTE_EDIT,
            // postcard only fails on writer errors, which a Vec never raises.
            content: postcard::to_stdvec(self).unwrap_or_default(),
        }
    }

    /// Decodes a payload of kind [`code::NOTE_EDIT`]; `Ok(None)` for any other kind.
    pub fn from_payload(payload: &Payload) -> Result<Option<Self>, PayloadError> {
        if payload.kind != code::NOTE_EDIT {
            return Ok(None);
        }
        crate::payload::decode_exact(&payload.content).map(Some)
    }

    /// Splits one change into the records that carry it (one unless it exceeds [`PART_BYTES`]).
    pub fn split(note: NoteId, name: &str, change: &[u8]) -> Result<Vec<NoteEdit>, NoteError> {
        let chunks: Vec<&[u8]> = if change.is_empty() {
            vec![change]
        } else {
            change.chunks(PART_BYTES).collect()
        };
        let parts = u16::try_from(chunks.len())
            .ok()
            .filter(|n| *n <= MAX_PARTS)
            .ok_or(NoteError::TooLarge(change.len()))?;
        Ok(chunks
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| NoteEdit {
                note,
                name: name.to_string(),
                part: i as u16,
                parts,
                bytes: bytes.to_vec(),
            })
            .collect())
    }
}

/// A note-edit record as found in a log, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteInput {
    /// The entry's id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// Its position in the author's log.
    pub seq: u64,
    /// The author's time (ms).
    pub time_ms: u64,
    /// The record.
    pub edit: NoteEdit,
}

/// The lower-case name of a notes or goals kind code, as listings show it.
pub fn kind_name(code: u16) -> Option<&'static str> {
    match code {
        code::NOTE_EDIT => Some("note-edit"),
        code::GOAL | code::GOAL_TOGETHER => Some("goal"),
        code::GOAL_PROGRESS => Some("goal-progress"),
        code::GOAL_DONE => Some("goal-done"),
        code::GOAL_DROPPED => Some("goal-dropped"),
        _ => None,
    }
}

/// The deterministic first change of every note: it creates the text object. Every device
/// builds the same bytes (fixed actor, time 0), so it is never sent and always shared.
pub fn genesis() -> automerge::AutoCommit {
    use automerge::transaction::{CommitOptions, Transactable};
    let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from([0u8; 16]));
    // Creating an object in an empty document cannot fail.
    let _ = doc.put_object(automerge::ROOT, "text", automerge::ObjType::Text);
    doc.commit_with(CommitOptions::default().with_time(0));
    doc
}
