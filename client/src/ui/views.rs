//! The plain values the pages render. [`super::data`] fills them; templates only read them, so
//! the pages do not change when the data layer underneath does.

use serde::Deserialize;
use std::collections::BTreeMap;

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

/// One entry of the shared timeline.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    /// Entry id (hex).
    pub id: String,
    /// "me" or "partner".
    pub author: String,
    /// The author's name.
    pub author_name: String,
    /// checkin, disclosure, plan, note, or a ledger kind.
    pub kind: String,
    /// The words.
    pub text: String,
    /// When it was written (RFC 3339).
    pub time: String,
    /// A check-in's expected arrival.
    pub eta: Option<String>,
    /// For own entries: whether the partner's device has it.
    pub seen_by_partner: Option<bool>,
    /// The entry this one corrects.
    pub replaces: Option<String>,
    /// Later corrections of this entry.
    #[serde(default)]
    pub corrected_by: Vec<String>,
}

/// One step in the history of a promise, agreement or support request.
#[derive(Clone, Debug, Deserialize)]
pub struct Step {
    /// "me" or "partner".
    pub author: String,
    /// When (RFC 3339).
    pub time: String,
    /// What happened, in words.
    pub what: String,
    /// Why the step was refused, if it was.
    pub invalid: Option<String>,
}

/// A partner's answer to a promise's status.
#[derive(Clone, Debug, Deserialize)]
pub struct Answer {
    /// "confirmed" or "disputed".
    pub state: String,
    /// The dispute's words.
    pub note: Option<String>,
}

/// A promise.
#[derive(Clone, Debug, Deserialize)]
pub struct Promise {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub promiser: String,
    /// The promise.
    pub text: String,
    /// When it is due (RFC 3339).
    pub due: Option<String>,
    /// open, kept, missed, renegotiated.
    pub status: String,
    /// The other partner's answer to the status.
    pub confirmation: Option<Answer>,
    /// Everything that happened to it.
    #[serde(default)]
    pub history: Vec<Step>,
}

/// A transparency agreement.
#[derive(Clone, Debug, Deserialize)]
pub struct Agreement {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub proposer: String,
    /// The agreement.
    pub text: String,
    /// Review date (RFC 3339).
    pub review: String,
    /// proposed, accepted, declined, ended.
    pub state: String,
    /// Whether the review date has come.
    pub due_for_review: bool,
    /// Everything that happened to it.
    #[serde(default)]
    pub history: Vec<Step>,
}

/// A support request.
#[derive(Clone, Debug, Deserialize)]
pub struct Support {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub requester: String,
    /// When (RFC 3339).
    pub time: String,
    /// space, talk, reassure or company.
    pub need: String,
    /// Words with the request.
    pub note: Option<String>,
    /// Replies.
    #[serde(default)]
    pub replies: Vec<Step>,
}

/// A plan.
#[derive(Clone, Debug, Deserialize)]
pub struct Plan {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub author: String,
    /// When (RFC 3339).
    pub when: String,
    /// Shared as "busy" only.
    pub busy_only: bool,
    /// The words (own busy-only plans show their private words).
    pub text: Option<String>,
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
}

/// A progress update of a goal.
#[derive(Clone, Debug, Deserialize)]
pub struct GoalUpdate {
    /// When (RFC 3339).
    pub time: String,
    /// progress, done, dropped.
    pub what: String,
    /// Words.
    pub text: Option<String>,
}

/// A weekly goal.
#[derive(Clone, Debug, Deserialize)]
pub struct Goal {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub author: String,
    /// The goal.
    pub text: String,
    /// open, done, dropped.
    pub status: String,
    /// Progress in words.
    #[serde(default)]
    pub updates: Vec<GoalUpdate>,
}

/// Promise counts of one week.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PromiseCounts {
    /// Made.
    pub made: u64,
    /// Kept.
    pub kept: u64,
    /// Missed.
    pub missed: u64,
    /// Renegotiated.
    pub renegotiated: u64,
}

/// One week of the summary.
#[derive(Clone, Debug, Deserialize)]
pub struct Week {
    /// ISO week, e.g. 2026-W49.
    pub week: String,
    /// Entries per kind.
    #[serde(default)]
    pub entries_by_kind: BTreeMap<String, u64>,
    /// Promises.
    #[serde(default)]
    pub promises: PromiseCounts,
    /// Check-ins.
    pub checkins: u64,
    /// Support requests.
    pub support_requests: u64,
    /// Support requests answered.
    pub support_answered: u64,
    /// Goals done.
    pub goals_done: u64,
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
}

/// The result of re-checking both logs.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Everything checked out.
    pub ok: bool,
    /// What the check said.
    pub lines: Vec<String>,
}
