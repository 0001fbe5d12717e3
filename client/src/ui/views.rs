//! The plain values the pages render. [`super::data`] fills them; templates only read them, so
//! the pages do not change when the data layer underneath does. The timeline and the ledger's
//! views are the application core's own types (`crate::app`); the rest are filled from it.

use serde::Deserialize;

pub use crate::app::views::{Agreement, Goal, LedgerView, Plan, Promise, Step, Support, Week};
pub use crate::app::TimelineEntry as Entry;

/// What the person has to do before the everyday screens make sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// No identity on this device yet: the first-run screen.
    Welcome,
    /// The device's data is protected by a passphrase not yet typed in this session.
    Locked,
    /// Unlocked, but not in a space with a partner yet.
    Unpaired,
    /// In a space (the partner may not have joined yet).
    Paired,
}

/// Where pairing stands.
#[derive(Clone, Debug)]
pub enum Pairing {
    /// No space yet.
    None,
    /// This device created the space; the partner has not joined.
    WaitingForPartner {
        /// The one-time invite to hand over.
        invite: String,
    },
    /// Both partners are in the space.
    Paired {
        /// The partner's name, once their first entry arrived.
        partner_name: Option<String>,
    },
}

/// The space as `space show --json` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Space {
    /// This person's name.
    pub name: String,
    /// The relay's address.
    pub relay: String,
    /// The relay's certificate fingerprint.
    pub relay_fingerprint: String,
    /// The partner's name, if known.
    pub partner_name: Option<String>,
    /// The partner's device key, if joined.
    pub partner_device: Option<String>,
}

/// A shared note in the list.
#[derive(Clone, Debug, Deserialize)]
pub struct NoteSummary {
    /// Note id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Archived notes are hidden by default.
    pub archived: bool,
    /// Length in characters.
    pub chars: usize,
    /// Passages both partners changed at once, not yet resolved.
    #[serde(default)]
    pub conflicts: usize,
}

/// An edit of a shared note that was refused.
#[derive(Clone, Debug, Deserialize)]
pub struct RefusedEdit {
    /// "me" or "partner".
    pub author: String,
    /// When (RFC 3339).
    pub time: String,
    /// Why.
    pub reason: String,
}

/// A shared note, open.
#[derive(Clone, Debug, Deserialize)]
pub struct Note {
    /// Its name.
    pub name: Option<String>,
    /// Archived?
    pub archived: bool,
    /// The merged text.
    pub text: String,
    /// The version the editor started from (sent back with an edit so concurrent edits merge).
    pub heads: String,
    /// Edits waiting for the rest of their parts.
    pub waiting_edits: usize,
    /// Edits refused.
    #[serde(default)]
    pub invalid_edits: Vec<RefusedEdit>,
    /// Passages both partners changed at once (the text shows each version under marker
    /// lines), until someone edits them.
    #[serde(default)]
    pub conflicts: Vec<NoteConflict>,
}

/// A passage both partners changed at once.
#[derive(Clone, Debug, Deserialize)]
pub struct NoteConflict {
    /// Each author's version of the passage.
    pub versions: Vec<ConflictVersion>,
}

/// One author's version of a conflicting passage.
#[derive(Clone, Debug, Deserialize)]
pub struct ConflictVersion {
    /// Who wrote it.
    pub author_name: Option<String>,
    /// The passage as they left it.
    pub text: String,
}

/// One edit in a note's history.
#[derive(Clone, Debug, Deserialize)]
pub struct NoteEdit {
    /// The author's name.
    pub author_name: Option<String>,
    /// When (RFC 3339).
    pub time: String,
    /// Characters added.
    pub inserted: usize,
    /// Characters removed.
    pub deleted: usize,
    /// New name, if renamed.
    pub renamed: Option<String>,
    /// Archived (true) or restored (false).
    pub archived: Option<bool>,
    /// Why it was refused, if it was.
    pub invalid: Option<String>,
    /// Made at the same time as the other's edit of the same passage, not yet resolved.
    #[serde(default)]
    pub conflict: bool,
}

/// A private journal entry.
#[derive(Clone, Debug, Deserialize)]
pub struct JournalEntry {
    /// Id of its first version.
    pub id: String,
    /// When first written (RFC 3339).
    pub time: String,
    /// When last edited.
    pub edited: Option<String>,
    /// How many versions.
    pub versions: usize,
    /// The latest words.
    pub text: String,
}

/// What needs this person on the Today screen.
#[derive(Clone, Debug, Default)]
pub struct NeedsMe {
    /// The partner's promises marked kept/missed/renegotiated, not yet answered.
    pub promises_to_answer: Vec<Promise>,
    /// The partner's support requests without a reply.
    pub support_to_answer: Vec<Support>,
    /// Agreements the partner proposed, waiting for an answer.
    pub agreements_to_answer: Vec<Agreement>,
    /// Agreements in force whose review date has come.
    pub agreements_to_review: Vec<Agreement>,
}

/// Everything the settings screen shows.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This person's name.
    pub name: String,
    /// Whether a passphrase protects this device's data.
    pub passphrase_set: bool,
    /// The space, if any.
    pub space: Option<Space>,
    /// The safety number, once the partner joined.
    pub safety_number: Option<String>,
    /// The space fingerprint.
    pub fingerprint: Option<String>,
    /// Whether journal entries are backed up (sealed) to the relay.
    pub journal_backup: bool,
    /// When this device left the space, if it did.
    pub left: bool,
    /// The latest shared entries, newest first, to choose from for a verifiable record.
    pub recent: Vec<Entry>,
}

/// The result of re-checking both logs.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Everything checked out.
    pub ok: bool,
    /// What the check said.
    pub lines: Vec<String>,
}
