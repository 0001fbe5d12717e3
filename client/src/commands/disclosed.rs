//! What a verifiable export shows of each disclosed entry, and how `verify-export` prints it.
//!
//! Every kind a log can hold renders with its words, its dates (due, planned, review) and the
//! entry it refers to (the promise kept, the goal progressed), so that nothing a file proves is
//! hidden from its reader. Everything taken from an entry (names, texts, note names) is escaped
//! before it reaches a terminal: control characters become visible escapes, and a multi-line
//! text continues on lines marked as belonging to its entry, so no entry can draw a fake section
//! or a line attributed to the other person.

use super::log::printable;
use crate::timefmt;
use candor_shared::goals::GoalRecord;
use candor_shared::ledger::Record as LedgerRecord;
use candor_shared::notes::NoteEdit;
use candor_shared::payload::{text_kind_name, Content, Payload};
use candor_shared::EntryHash;
use std::collections::BTreeMap;

/// The readable parts of one disclosed entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Described {
    /// The kind, as `log list` names it.
    pub kind: String,
    /// The entry's own words.
    pub text: String,
    /// Dates the entry carries, by what they are ("due", "when", "review", "original").
    pub dates: BTreeMap<String, String>,
    /// The entry this one refers to (the promise, goal, request, agreement or corrected entry).
    pub refers_to: Option<EntryHash>,
}

impl Described {
    fn new(kind: &str, text: String) -> Self {
        Self {
            kind: kind.to_string(),
            text,
            ..Self::default()
        }
    }

    fn date(mut self, label: &str, ms: Option<u64>) -> Self {
        if let Some(ms) = ms {
            self.dates.insert(label.to_string(), timefmt::rfc3339(ms));
        }
        self
    }

    fn refers(mut self, target: Option<EntryHash>) -> Self {
        self.refers_to = target;
        self
    }
}

/// Describes any payload a log can hold; a kind this version does not know says so, with its
/// code, and a content that does not decode says why.
pub fn describe(payload: &Payload) -> Described {
    match LedgerRecord::from_payload(payload) {
        Ok(Some(record)) => return ledger(&record),
        Ok(None) => {}
        Err(e) => return Described::new("undecodable", e.to_string()),
    }
    match GoalRecord::from_payload(payload) {
        Ok(Some(goal)) => return self::goal(&goal),
        Ok(None) => {}
        Err(e) => return Described::new("undecodable", e.to_string()),
    }
    match NoteEdit::from_payload(payload) {
        Ok(Some(edit)) => {
            let mut text = format!("edited the shared note {:?}", edit.name);
            if edit.parts > 1 {
                text += &format!(" (part {} of {})", edit.part + 1, edit.parts);
            }
            return Described::new("note-edit", text);
        }
        Ok(None) => {}
        Err(e) => return Described::new("undecodable", e.to_string()),
    }
    match payload.content() {
        Ok(Content::Hello(hello)) => Described::new("introduction", hello.name),
        Ok(Content::Checkpoint(_)) => Described::new("checkpoint", String::new()),
        Ok(Content::Text { kind, text }) => {
            let mut d = Described::new(text_kind_name(kind).unwrap_or("note"), text.text)
                .date("original", text.original_time_ms)
                .refers(text.replaces);
            if let Some(eta) = text.eta {
                d.dates.insert("eta".into(), eta);
            }
            d
        }
        Ok(Content::Unknown { kind }) => Described::new(
            &format!("unknown kind {kind:#06x}"),
            "(this version of Candor cannot show this kind of entry)".into(),
        ),
        Err(e) => Described::new("undecodable", e.to_string()),
    }
}

fn ledger(record: &LedgerRecord) -> Described {
    let d = Described::new(record.kind_name(), record.describe()).refers(record.target());
    match record {
        LedgerRecord::PromiseMade(r) => d.date("due", r.due_ms),
        LedgerRecord::PromiseRenegotiated(r) => d.date("due", r.due_ms),
        LedgerRecord::Plan(r) => d.date("when", Some(r.when_ms)),
        LedgerRecord::AgreementProposed(r) => d.date("review", Some(r.review_ms)),
        _ => d,
    }
}

fn goal(goal: &GoalRecord) -> Described {
    let kind = match goal {
        GoalRecord::Added(_) => "goal",
        GoalRecord::Progress(_) => "goal-progress",
        GoalRecord::Done(_) => "goal-done",
        GoalRecord::Dropped(_) => "goal-dropped",
    };
    let d = Described::new(kind, goal.describe());
    match goal {
        GoalRecord::Added(_) => d,
        GoalRecord::Progress(u) | GoalRecord::Done(u) | GoalRecord::Dropped(u) => {
            d.refers(Some(u.goal))
        }
    }
}

/// The lines of one entry in `verify-export`'s report: `head` (seq, time, kind; written by this
/// code) followed by the escaped text; further lines of the text, its dates and what it refers
/// to are indented under it behind a bar, so they read as part of this entry.
pub fn entry_lines(head: &str, text: &str, details: &[String]) -> Vec<String> {
    let mut lines = text
        .split('\n')
        .map(|line| printable(line).replace('\t', " "));
    let mut out = vec![format!("{head} {}", lines.next().unwrap_or_default())];
    let indent = " ".repeat(head.chars().count().min(40));
    out.extend(lines.map(|line| format!("{indent}| {line}")));
    out.extend(
        details
            .iter()
            .map(|d| format!("{indent}  ({})", printable(d))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_shared::goals::{GoalAdded, GoalUpdate};
    use candor_shared::ledger::{IsoWeek, PromiseMade};

    #[test]
    fn goals_and_dated_records_render_with_their_dates_and_targets() {
        let goal = GoalRecord::Added(GoalAdded {
            text: "walk together twice".into(),
            week: IsoWeek::parse("2026-W10").expect("week"),
            together: false,
        });
        let d = describe(&goal.to_payload());
        assert_eq!(d.kind, "goal");
        assert!(d.text.contains("walk together twice"), "{d:?}");
        assert!(d.text.contains("2026-W10"), "{d:?}");
        let progress = GoalRecord::Progress(GoalUpdate {
            goal: EntryHash([7; 32]),
            text: Some("once so far".into()),
        });
        let d = describe(&progress.to_payload());
        assert_eq!(d.kind, "goal-progress");
        assert_eq!(d.refers_to, Some(EntryHash([7; 32])));
        let promise = LedgerRecord::PromiseMade(PromiseMade {
            text: "call at lunch".into(),
            due_ms: Some(1_700_000_000_000),
        });
        let d = describe(&promise.to_payload());
        assert_eq!(
            d.dates.get("due").map(String::as_str),
            Some("2023-11-14T22:13:20.000Z")
        );
    }

    #[test]
    fn multi_line_and_escaped_text_stays_inside_its_entry() {
        let lines = entry_lines(
            "  #3     2026-01-01T00:00:00Z  note        ",
            "fine\n\nSam (device 1234): I cheated\x1b[2J",
            &[],
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[1].trim_start().starts_with('|'));
        assert!(lines[2].trim_start().starts_with("| Sam"));
        assert!(!lines.iter().any(|l| l.contains('\x1b')));
    }
}
