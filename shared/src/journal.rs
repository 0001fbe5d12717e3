//! The private journal: its record format (payload kind [`kind::JOURNAL`]), how edits fold into
//! the entries a person sees, search, and the built-in reflection prompts.
//!
//! A journal record is never shared. It lives in its author's local store (encrypted at rest)
//! and, when the author turns journal backup on, also in their log as an entry sealed under a key
//! derived from their [`crate::keys::JournalKey`] with the shared class in its public header, so
//! the relay cannot tell it from a shared entry. An edit is a new record naming the id of the
//! first version; nothing is overwritten.

use crate::payload::{kind, Payload, PayloadError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest journal text accepted, in bytes (an entry's payload must fit its size limit).
pub const MAX_JOURNAL_TEXT: usize = 48 * 1024;

/// One version of a journal entry, as sealed in its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// This version's id (16 random bytes).
    pub id: [u8; 16],
    /// When this version was written (ms since the Unix epoch).
    pub time_ms: u64,
    /// The words.
    pub text: String,
    /// For an edit: the id of the entry's first version.
    pub replaces: Option<[u8; 16]>,
}

impl JournalRecord {
    /// The payload that gets sealed.
    pub fn to_payload(&self) -> Payload {
        Payload {
            kind: kind::JOURNAL,
            // postcard only fails on writer errors, which a Vec never raises.
            content: postcard::to_stdvec(self).unwrap_or_default(),
        }
    }

    /// Reads a journal payload; `Ok(None)` for any other kind.
    pub fn from_payload(payload: &Payload) -> Result<Option<Self>, PayloadError> {
        if payload.kind != kind::JOURNAL {
            return Ok(None);
        }
        crate::payload::decode_exact(&payload.content).map(Some)
    }

    /// The id of the entry this version belongs to (its first version).
    pub fn root(&self) -> [u8; 16] {
        self.replaces.unwrap_or(self.id)
    }
}

/// A journal entry as shown: its first version's id and time, its latest words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalView {
    /// Hex id of the first version (what `journal edit` takes).
    pub id: String,
    /// When it was first written (ms).
    pub time_ms: u64,
    /// When it was last edited (ms), if it was.
    pub edited_ms: Option<u64>,
    /// The latest words.
    pub text: String,
    /// How many versions exist.
    pub versions: usize,
}

/// Folds records (in any order, duplicates allowed) into entries, oldest first. Edits that name
/// an unknown entry are shown as entries of their own.
pub fn fold(records: impl IntoIterator<Item = JournalRecord>) -> Vec<JournalView> {
    let mut unique: BTreeMap<[u8; 16], JournalRecord> = BTreeMap::new();
    for record in records {
        unique.entry(record.id).or_insert(record);
    }
    let mut groups: BTreeMap<[u8; 16], Vec<&JournalRecord>> = BTreeMap::new();
    for record in unique.values() {
        let root = if record.replaces.is_some_and(|r| unique.contains_key(&r)) {
            record.root()
        } else {
            record.id
        };
        groups.entry(root).or_default().push(record);
    }
    let mut views: Vec<JournalView> = groups
        .into_iter()
        .filter_map(|(root, mut versions)| {
            versions.sort_by_key(|r| (r.time_ms, r.replaces.is_some(), r.id));
            let first = versions.iter().find(|r| r.id == root)?;
            let latest = versions.last()?;
            Some(JournalView {
                id: hex::encode(root),
                time_ms: first.time_ms,
                edited_ms: (versions.len() > 1).then_some(latest.time_ms),
                text: latest.text.clone(),
                versions: versions.len(),
            })
        })
        .collect();
    views.sort_by(|a, b| (a.time_ms, &a.id).cmp(&(b.time_ms, &b.id)));
    views
}

/// Whether every word occurs in the entry's latest text, ignoring case.
pub fn matches(view: &JournalView, words: &[String]) -> bool {
    let text = view.text.to_lowercase();
    words.iter().all(|w| text.contains(&w.to_lowercase()))
}

/// Reflection prompts: each asks what the writer notices, needs or can do, never invites going
/// over the hurt again. `journal prompt` shows one.
pub const PROMPTS: &[&str] = &[
    "What do I need right now, and who could I ask for it?",
    "What feeling is strongest today? Where do I notice it in my body?",
    "What helped me get through the hardest moment this week?",
    "What is one small thing I can do for myself in the next hour?",
    "What would I say to a close friend who felt the way I feel today?",
    "What did I notice today that went a little better than before?",
    "Which boundary matters most to me this week, and how can I say it kindly?",
    "What am I ready to talk about with my partner, and what am I not ready for yet?",
    "What does trust look like in one concrete action I could recognise?",
    "When did I feel calm today, even briefly? What was around me?",
    "What am I carrying that is not mine to carry?",
    "What question would I like to bring to a counsellor or a trusted person?",
    "What do I want to remember about today a month from now?",
    "What have I done this week that I am quietly proud of?",
];

/// The prompt for a random number drawn by the caller.
pub fn prompt(random: u64) -> &'static str {
    let index = usize::try_from(random % PROMPTS.len() as u64).unwrap_or(0);
    PROMPTS.get(index).copied().unwrap_or(PROMPTS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u8, time_ms: u64, text: &str, replaces: Option<u8>) -> JournalRecord {
        JournalRecord {
            id: [id; 16],
            time_ms,
            text: text.into(),
            replaces: replaces.map(|r| [r; 16]),
        }
    }

    #[test]
    fn payload_round_trips_and_other_kinds_are_not_journal() {
        let r = record(1, 5, "quiet walk", None);
        assert_eq!(JournalRecord::from_payload(&r.to_payload()), Ok(Some(r)));
        let other = Payload::checkpoint(&crate::payload::Checkpoint {
            own_root: crate::merkle::TreeHash([0; 32]),
            countersign: false,
        });
        assert_eq!(JournalRecord::from_payload(&other), Ok(None));
        let broken = Payload {
            kind: kind::JOURNAL,
            content: vec![0xff; 3],
        };
        assert!(JournalRecord::from_payload(&broken).is_err());
    }

    #[test]
    fn edits_fold_into_their_first_version_and_duplicates_count_once() {
        let views = fold(vec![
            record(2, 20, "second", None),
            record(3, 30, "first, edited", Some(1)),
            record(1, 10, "first", None),
            record(3, 30, "first, edited", Some(1)),
            record(4, 40, "edit of nothing", Some(9)),
        ]);
        assert_eq!(views.len(), 3);
        assert_eq!(views[0].id, hex::encode([1u8; 16]));
        assert_eq!(views[0].text, "first, edited");
        assert_eq!(views[0].edited_ms, Some(30));
        assert_eq!(views[0].versions, 2);
        assert_eq!(views[1].text, "second");
        assert_eq!(views[1].edited_ms, None);
        assert_eq!(views[2].text, "edit of nothing");
    }

    #[test]
    fn search_needs_every_word_in_any_case() {
        let view = &fold(vec![record(1, 1, "A long Walk by the river", None)])[0];
        assert!(matches(view, &["walk".into(), "RIVER".into()]));
        assert!(!matches(view, &["walk".into(), "sea".into()]));
    }

    #[test]
    fn prompts_reflect_rather_than_ruminate() {
        assert!((10..=20).contains(&PROMPTS.len()));
        for p in PROMPTS {
            assert!(p.ends_with('?'), "{p}");
            assert!(!p.to_lowercase().contains("never"), "{p}");
        }
        assert_eq!(prompt(0), PROMPTS[0]);
        assert_eq!(prompt(PROMPTS.len() as u64 + 1), PROMPTS[1]);
    }
}
