//! Every payload kind a reader shows, decoded once.
//!
//! A payload's kind code says which module's record it carries (text entries, the trust
//! ledger, weekly goals, shared-note edits, introductions, checkpoints). [`Record::decode`] is
//! the one place that tries them in order, so that the timeline, the ledger, the goals and the
//! notes agree on what an entry is and what its kind is called.

use crate::goals::GoalRecord;
use crate::ledger;
use crate::notes::{self, NoteEdit};
use crate::payload::{text_kind_name, Content, Payload, TextContent};

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A device's introduction (not shown in the timeline).
    Hello,
    /// A checkpoint (not shown in the timeline).
    Checkpoint,
    /// A text entry: check-in, disclosure, plan or note.
    Text {
        /// The text kind code.
        kind: u16,
        /// The text and its metadata.
        text: TextContent,
    },
    /// A trust-ledger record.
    Ledger(ledger::Record),
    /// A weekly-goal record.
    Goal {
        /// The kind code (goal, goal-progress, goal-done, goal-dropped).
        kind: u16,
        /// The record.
        record: GoalRecord,
    },
    /// An edit of a shared note.
    NoteEdit(NoteEdit),
    /// A shared-notes or goals kind whose content does not decode.
    DamagedNote {
        /// The kind code.
        kind: u16,
    },
    /// A kind this version does not know, or whose content does not decode.
    Unknown,
}

impl Record {
    /// Decodes `payload`. Never fails: what does not decode is [`Record::Unknown`] (or
    /// [`Record::DamagedNote`]), shown as such.
    pub fn decode(payload: &Payload) -> Record {
        if let Ok(Some(record)) = ledger::Record::from_payload(payload) {
            return Record::Ledger(record);
        }
        if notes::kind_name(payload.kind).is_some() {
            if let Ok(Some(edit)) = NoteEdit::from_payload(payload) {
                return Record::NoteEdit(edit);
            }
            if let Ok(Some(record)) = GoalRecord::from_payload(payload) {
                return Record::Goal {
                    kind: payload.kind,
                    record,
                };
            }
            return Record::DamagedNote { kind: payload.kind };
        }
        match payload.content() {
            Ok(Content::Hello(_)) => Record::Hello,
            Ok(Content::Checkpoint(_)) => Record::Checkpoint,
            Ok(Content::Text { kind, text }) => Record::Text { kind, text },
            Ok(Content::Unknown { .. }) | Err(_) => Record::Unknown,
        }
    }

    /// The kind's name as the timeline, the summary and `--json` show it; `None` for what is
    /// never shown (introductions, checkpoints).
    pub fn kind_name(&self) -> Option<&'static str> {
        Some(match self {
            Record::Hello | Record::Checkpoint => return None,
            Record::Text { kind, .. } => text_kind_name(*kind).unwrap_or("note"),
            Record::Ledger(record) => record.kind_name(),
            Record::NoteEdit(_) => {
                notes::kind_name(notes::code::NOTE_EDIT).unwrap_or("unknown kind")
            }
            Record::Goal { kind, .. } | Record::DamagedNote { kind } => {
                notes::kind_name(*kind).unwrap_or("unknown kind")
            }
            Record::Unknown => "unknown kind",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::kind;

    #[test]
    fn each_family_decodes_to_its_own_variant() {
        let text = Payload::text(
            kind::CHECKIN,
            &TextContent {
                text: "home soon".into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        );
        assert_eq!(Record::decode(&text).kind_name(), Some("checkin"));
        let unknown = Payload {
            kind: 0x7fff,
            content: vec![1, 2, 3],
        };
        assert_eq!(Record::decode(&unknown), Record::Unknown);
        assert_eq!(Record::decode(&unknown).kind_name(), Some("unknown kind"));
    }
}
