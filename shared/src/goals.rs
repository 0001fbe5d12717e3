//! Weekly goals: each partner picks one or two realistic goals for an ISO week, writes progress
//! in words, and marks them done or drops them.
//!
//! Goals are records in their author's log (kind codes in [`crate::notes::code`]); like the
//! ledger, their state is derived afresh from both logs by [`derive`], processing each author's
//! records in that author's order. Only a goal's author may add progress to it, mark it done or
//! drop it, unless it is a shared goal (added "together"), which either partner moves; a record
//! that breaks that rule is kept and shown as invalid, never applied.

use crate::ledger::IsoWeek;
use crate::notes::code;
use crate::payload::{decode_exact, Payload, PayloadError};
use crate::{DeviceKey, EntryHash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// More goals than this in one week earn a gentle warning.
pub const GENTLE_LIMIT: usize = 2;

/// A goal for a week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalAdded {
    /// The goal, in the author's words.
    pub text: String,
    /// The ISO week it is for.
    pub week: IsoWeek,
    /// A shared goal: both partners update it. Carried by the kind code
    /// ([`code::GOAL_TOGETHER`] rather than [`code::GOAL`]), not in the content, so goals
    /// written before shared goals existed read as they were.
    #[serde(skip)]
    pub together: bool,
}

/// Progress on, completion of, or dropping a goal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalUpdate {
    /// The goal (its `GoalAdded` entry).
    pub goal: EntryHash,
    /// Words (required for progress, optional otherwise).
    pub text: Option<String>,
}

/// A decoded goal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GoalRecord {
    /// A goal added.
    Added(GoalAdded),
    /// Progress, in words.
    Progress(GoalUpdate),
    /// Done.
    Done(GoalUpdate),
    /// Dropped.
    Dropped(GoalUpdate),
}

fn enc<T: Serialize>(kind: u16, value: &T) -> Payload {
    Payload {
        kind,
        // postcard only fails on writer errors, which a Vec never raises.
        content: postcard::to_stdvec(value).unwrap_or_default(),
    }
}

impl GoalRecord {
    /// The payload carrying this record.
    pub fn to_payload(&self) -> Payload {
        match self {
            Self::Added(r) if r.together => enc(code::GOAL_TOGETHER, r),
            Self::Added(r) => enc(code::GOAL, r),
            Self::Progress(r) => enc(code::GOAL_PROGRESS, r),
            Self::Done(r) => enc(code::GOAL_DONE, r),
            Self::Dropped(r) => enc(code::GOAL_DROPPED, r),
        }
    }

    /// Decodes a payload of a goal kind; `Ok(None)` for any other kind.
    pub fn from_payload(payload: &Payload) -> Result<Option<Self>, PayloadError> {
        let c = &payload.content;
        Ok(Some(match payload.kind {
            code::GOAL => Self::Added(decode_exact(c)?),
            code::GOAL_TOGETHER => Self::Added(GoalAdded {
                together: true,
                ..decode_exact(c)?
            }),
            code::GOAL_PROGRESS => Self::Progress(decode_exact(c)?),
            code::GOAL_DONE => Self::Done(decode_exact(c)?),
            code::GOAL_DROPPED => Self::Dropped(decode_exact(c)?),
            _ => return Ok(None),
        }))
    }

    /// The record's words, for listings.
    pub fn describe(&self) -> String {
        let with = |base: &str, text: &Option<String>| match text {
            Some(t) => format!("{base}: {t}"),
            None => base.to_string(),
        };
        match self {
            Self::Added(r) if r.together => format!("shared goal for {}: {}", r.week, r.text),
            Self::Added(r) => format!("goal for {}: {}", r.week, r.text),
            Self::Progress(r) => with("progress", &r.text),
            Self::Done(r) => with("done", &r.text),
            Self::Dropped(r) => with("dropped", &r.text),
        }
    }
}

/// One goal record of either log, as the derivation takes it.
#[derive(Clone, Debug)]
pub struct GoalEntry {
    /// The entry's id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// Its position in the author's log.
    pub seq: u64,
    /// The author's time (ms).
    pub time_ms: u64,
    /// The record.
    pub record: GoalRecord,
}

/// Where a goal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalStatus {
    /// Still being worked on.
    Open,
    /// Done.
    Done,
    /// Dropped (letting a goal go is allowed).
    Dropped,
}

/// One update of a goal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoalHistoryItem {
    /// The record's entry id.
    pub id: EntryHash,
    /// Who wrote it.
    pub author: DeviceKey,
    /// When (ms).
    pub time_ms: u64,
    /// `progress`, `done` or `dropped`.
    pub what: &'static str,
    /// The words.
    pub text: Option<String>,
    /// Why it was not applied, if it was not.
    pub invalid: Option<String>,
}

/// A goal and its updates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Goal {
    /// The `GoalAdded` entry's id.
    pub id: EntryHash,
    /// Who added it.
    pub author: DeviceKey,
    /// A shared goal, which both partners update (else only its author does).
    pub together: bool,
    /// The week it is for.
    pub week: IsoWeek,
    /// The goal.
    pub text: String,
    /// When it was added (ms).
    pub added_ms: u64,
    /// Where it stands.
    pub status: GoalStatus,
    /// Updates, oldest first, valid or not.
    pub updates: Vec<GoalHistoryItem>,
}

/// A goal record that broke a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvalidGoalRecord {
    /// The record's entry id.
    pub id: EntryHash,
    /// Who wrote it.
    pub author: DeviceKey,
    /// Why it was not applied.
    pub reason: String,
}

/// All goals of both partners.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Goals {
    /// Goals, by week then time added.
    pub goals: Vec<Goal>,
    /// Records that broke a rule.
    pub invalid: Vec<InvalidGoalRecord>,
}

impl Goals {
    /// How many goals of `week` are done (either partner's).
    pub fn done_in(&self, week: IsoWeek) -> u64 {
        self.goals
            .iter()
            .filter(|g| g.week == week && g.status == GoalStatus::Done)
            .count() as u64
    }

    /// The goals of `week` of one author.
    pub fn of(&self, author: &DeviceKey, week: IsoWeek) -> impl Iterator<Item = &Goal> + '_ {
        let author = *author;
        self.goals
            .iter()
            .filter(move |g| g.author == author && g.week == week)
    }
}

/// Whether `author` may update `goal` (progress, done, dropped); `Some(reason)` if not. A goal
/// is its author's to move, unless it was added as a shared goal (`goal add --together`),
/// which either partner moves.
pub fn update_refused(goal: &Goal, author: &DeviceKey) -> Option<&'static str> {
    if goal.together || goal.author == *author {
        None
    } else {
        Some("only the partner whose goal it is updates it")
    }
}

/// Derives every goal from the goal records of both logs; the result does not depend on the
/// order of `entries`, and a record delivered twice counts once.
pub fn derive(entries: &[GoalEntry]) -> Goals {
    let mut sorted: Vec<&GoalEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.author, e.seq, e.id));
    sorted.dedup_by_key(|e| e.id);
    let mut goals: BTreeMap<EntryHash, Goal> = BTreeMap::new();
    let mut invalid = Vec::new();
    for e in &sorted {
        if let GoalRecord::Added(added) = &e.record {
            goals.insert(
                e.id,
                Goal {
                    id: e.id,
                    author: e.author,
                    together: added.together,
                    week: added.week,
                    text: added.text.clone(),
                    added_ms: e.time_ms,
                    status: GoalStatus::Open,
                    updates: Vec::new(),
                },
            );
        }
    }
    // Updates are applied in time order: a shared goal is moved by both partners, so one
    // author's whole log before the other's would close a goal before an earlier update from
    // the other partner and call that update late.
    let mut updates = sorted.clone();
    updates.sort_by_key(|e| (e.time_ms, e.author, e.seq, e.id));
    for e in &updates {
        let (update, what, status) = match &e.record {
            GoalRecord::Added(_) => continue,
            GoalRecord::Progress(u) => (u, "progress", None),
            GoalRecord::Done(u) => (u, "done", Some(GoalStatus::Done)),
            GoalRecord::Dropped(u) => (u, "dropped", Some(GoalStatus::Dropped)),
        };
        let mut refuse = |reason: &str| {
            invalid.push(InvalidGoalRecord {
                id: e.id,
                author: e.author,
                reason: reason.to_string(),
            });
            Some(reason.to_string())
        };
        let Some(goal) = goals.get_mut(&update.goal) else {
            refuse("refers to a goal that does not exist");
            continue;
        };
        let problem = if let Some(reason) = update_refused(goal, &e.author) {
            refuse(reason)
        } else if goal.status != GoalStatus::Open {
            refuse("the goal was already closed")
        } else if what == "progress" && update.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            refuse("progress without words")
        } else {
            None
        };
        if problem.is_none() {
            if let Some(status) = status {
                goal.status = status;
            }
        }
        goal.updates.push(GoalHistoryItem {
            id: e.id,
            author: e.author,
            time_ms: e.time_ms,
            what,
            text: update.text.clone(),
            invalid: problem,
        });
    }
    let mut goals: Vec<Goal> = goals.into_values().collect();
    for goal in &mut goals {
        goal.updates.sort_by_key(|u| (u.time_ms, u.author, u.id));
    }
    goals.sort_by_key(|g| (g.week, g.added_ms, g.id));
    invalid.sort_by_key(|i| i.id);
    Goals { goals, invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(author: u8, seq: u64, record: GoalRecord) -> GoalEntry {
        GoalEntry {
            id: EntryHash([author.wrapping_mul(100).wrapping_add(seq as u8); 32]),
            author: DeviceKey([author; 32]),
            seq,
            time_ms: seq * 1000,
            record,
        }
    }

    fn update(goal: &GoalEntry, text: Option<&str>) -> GoalUpdate {
        GoalUpdate {
            goal: goal.id,
            text: text.map(str::to_string),
        }
    }

    #[test]
    fn only_the_author_moves_a_goal_and_closed_goals_stay_closed() {
        let week = IsoWeek {
            year: 2026,
            week: 48,
        };
        let add = entry(
            1,
            0,
            GoalRecord::Added(GoalAdded {
                text: "Walk together twice".into(),
                week,
                together: false,
            }),
        );
        let entries = vec![
            add.clone(),
            entry(
                1,
                1,
                GoalRecord::Progress(update(&add, Some("once so far"))),
            ),
            entry(2, 0, GoalRecord::Done(update(&add, None))),
            entry(1, 2, GoalRecord::Done(update(&add, Some("twice!")))),
            entry(1, 3, GoalRecord::Dropped(update(&add, None))),
            entry(1, 4, GoalRecord::Progress(update(&add, None))),
        ];
        let mut reversed = entries.clone();
        reversed.reverse();
        reversed.push(entries[1].clone()); // duplicated delivery
        let goals = derive(&entries);
        assert_eq!(goals, derive(&reversed));
        let goal = &goals.goals[0];
        assert_eq!(goal.status, GoalStatus::Done);
        assert_eq!(goal.updates.len(), 5);
        assert_eq!(goals.invalid.len(), 3);
        assert_eq!(goals.done_in(week), 1);
        assert_eq!(goals.of(&DeviceKey([1; 32]), week).count(), 1);
        let round = GoalRecord::from_payload(&entries[1].record.to_payload()).unwrap();
        assert_eq!(round, Some(entries[1].record.clone()));
    }

    #[test]
    fn a_shared_goal_is_moved_by_both_and_reads_back_as_shared() {
        let week = IsoWeek {
            year: 2026,
            week: 49,
        };
        let add = entry(
            1,
            0,
            GoalRecord::Added(GoalAdded {
                text: "Walk together twice".into(),
                week,
                together: true,
            }),
        );
        let payload = add.record.to_payload();
        assert_eq!(payload.kind, code::GOAL_TOGETHER);
        assert_eq!(
            GoalRecord::from_payload(&payload).unwrap(),
            Some(add.record.clone())
        );
        // The content is the same bytes a goal of one partner has: old readers' layout.
        let alone = GoalRecord::Added(GoalAdded {
            together: false,
            text: "Walk together twice".into(),
            week,
        });
        assert_eq!(alone.to_payload().content, payload.content);
        let entries = vec![
            add.clone(),
            entry(2, 0, GoalRecord::Progress(update(&add, Some("first walk")))),
            entry(
                1,
                1,
                GoalRecord::Progress(update(&add, Some("second walk"))),
            ),
            entry(2, 1, GoalRecord::Done(update(&add, None))),
        ];
        let goals = derive(&entries);
        assert!(goals.invalid.is_empty(), "{:?}", goals.invalid);
        let goal = &goals.goals[0];
        assert!(goal.together);
        assert_eq!(goal.status, GoalStatus::Done);
        let authors: Vec<u8> = goal.updates.iter().map(|u| u.author.0[0]).collect();
        assert_eq!(authors, vec![2, 1, 2], "each update keeps who wrote it");
    }
}
