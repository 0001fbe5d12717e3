//! Who changed what in a note, and when: a summary of each edit, computed from its change.

use super::{genesis, NoteInput};
use crate::{DeviceKey, EntryHash};
use automerge::{Change, ReadDoc, ROOT};
use serde::Serialize;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// One edit of a note, summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EditSummary {
    /// The (first part's) entry id.
    pub id: EntryHash,
    /// Who made it.
    pub author: DeviceKey,
    /// When (author's clock, ms).
    pub time_ms: u64,
    /// Characters inserted.
    pub inserted: u64,
    /// Characters deleted.
    pub deleted: u64,
    /// The new name, if the edit renamed the note.
    pub renamed: Option<String>,
    /// `Some(true)` if it archived the note, `Some(false)` if it restored it.
    pub archived: Option<bool>,
    /// Why the edit cannot be read, if it cannot (it is then never applied either).
    pub invalid: Option<String>,
    /// The Automerge change's hash (to match it with [`super::conflict::Conflict::changes`]).
    pub change: Option<[u8; 32]>,
}

fn text_id() -> String {
    genesis()
        .get(ROOT, "text")
        .ok()
        .flatten()
        .map(|(_, id)| id.to_string())
        .unwrap_or_default()
}

fn summarize_change(bytes: &[u8], summary: &mut EditSummary, text: &str) {
    let change = match catch_unwind(|| Change::try_from(bytes)) {
        Ok(Ok(change)) => change,
        _ => {
            summary.invalid = Some("the change does not decode".into());
            return;
        }
    };
    summary.change = Some(change.hash().0);
    let Ok(expanded) = catch_unwind(AssertUnwindSafe(|| change.decode())) else {
        summary.invalid = Some("the change's operations do not decode".into());
        return;
    };
    for op in &expanded.operations {
        let Ok(op) = serde_json::to_value(op) else {
            continue;
        };
        let action = op.get("action").and_then(|a| a.as_str());
        let obj = op.get("obj").and_then(|o| o.as_str());
        let key = op.get("key").and_then(|k| k.as_str());
        let value = op.get("value");
        match (obj, action) {
            (Some(o), Some("set")) if o == text => {
                summary.inserted += value
                    .and_then(|v| v.as_str())
                    .map_or(0, |s| s.chars().count() as u64);
            }
            (Some(o), Some("del")) if o == text => summary.deleted += 1,
            (Some("_root"), Some("set")) if key == Some("name") => {
                summary.renamed = value.and_then(|v| v.as_str()).map(str::to_string);
            }
            (Some("_root"), Some("set")) if key == Some("archived") => {
                summary.archived = value.and_then(|v| v.as_bool());
            }
            _ => {}
        }
    }
}

/// Summarises every edit among `inputs` (records of one note from both logs, any order,
/// duplicates allowed), oldest first. Multi-part edits are reassembled; an edit with missing
/// parts is left out.
pub fn summarize(inputs: &[NoteInput]) -> Vec<EditSummary> {
    let text = text_id();
    let mut sorted: Vec<&NoteInput> = inputs.iter().collect();
    sorted.sort_by_key(|i| (i.author, i.seq));
    sorted.dedup_by_key(|i| i.id);
    let mut open: BTreeMap<DeviceKey, (EditSummary, Vec<u8>, u16)> = BTreeMap::new();
    let mut out = Vec::new();
    for input in sorted {
        let edit = &input.edit;
        let fresh = || EditSummary {
            id: input.id,
            author: input.author,
            time_ms: input.time_ms,
            inserted: 0,
            deleted: 0,
            renamed: None,
            archived: None,
            invalid: None,
            change: None,
        };
        let (summary, bytes) = if edit.parts <= 1 {
            (fresh(), edit.bytes.clone())
        } else if edit.part == 0 {
            open.insert(input.author, (fresh(), edit.bytes.clone(), 1));
            continue;
        } else {
            let Some((summary, mut bytes, next)) = open.remove(&input.author) else {
                continue;
            };
            if next != edit.part {
                continue;
            }
            bytes.extend_from_slice(&edit.bytes);
            if edit.part + 1 < edit.parts {
                open.insert(input.author, (summary, bytes, next + 1));
                continue;
            }
            (summary, bytes)
        };
        let mut summary = summary;
        summarize_change(&bytes, &mut summary, &text);
        out.push(summary);
    }
    out.sort_by_key(|s| (s.time_ms, s.author, s.id));
    out
}
