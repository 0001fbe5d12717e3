//! Typed views of the trust ledger and the weekly goals, as the web app shows them (and in the
//! shapes of the CLI's `--json` output: `promise list`, `agreement list`, `support list`,
//! `plan list`, `goal list`, `summary`), built from one [`Reader`] without running a command.
//!
//! Who wrote what is "me" or "partner"; times are RFC 3339 in local time with their offset
//! (`crate::timefmt`), with the instant in milliseconds beside them (not serialized).

use super::Reader;
use crate::timefmt;
use anyhow::Result;
use candor_shared::goals::Goals;
use candor_shared::ledger::{self, iso_week, Confirmation, HistoryItem, Ledger};
use candor_shared::DeviceKey;
use serde::Serialize;
use std::collections::BTreeMap;

/// One step in the history of a promise, agreement or support request.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// "me" or "partner".
    pub author: &'static str,
    /// When (RFC 3339, local offset).
    pub time: String,
    /// What happened, in words.
    pub what: String,
    /// Why the step was refused, if it was.
    pub invalid: Option<String>,
}

/// A partner's answer to a promise's status.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// "confirmed" or "disputed".
    pub state: &'static str,
    /// When.
    pub time: String,
    /// The dispute's words.
    pub note: Option<String>,
}

/// A promise.
#[derive(Clone, Debug, Serialize)]
pub struct Promise {
    /// Entry id (hex).
    pub id: String,
    /// "me" or "partner".
    pub promiser: &'static str,
    /// The promise.
    pub text: String,
    /// When it is due (RFC 3339).
    pub due: Option<String>,
    /// open, kept, missed, renegotiated.
    pub status: String,
    /// Whether the promiser marked it (kept, missed or renegotiated) and it awaits an answer.
    pub awaiting_answer: bool,
    /// The other partner's answer to the status.
    pub confirmation: Option<Answer>,
    /// Everything that happened to it.
    pub history: Vec<Step>,
}

/// A transparency agreement.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub proposer: &'static str,
    /// The agreement.
    pub text: String,
    /// Review date (RFC 3339).
    pub review: String,
    /// proposed, accepted, declined, ended.
    pub state: String,
    /// Whether the review date has come.
    pub due_for_review: bool,
    /// Everything that happened to it.
    pub history: Vec<Step>,
}

/// A support request.
#[derive(Clone, Debug, Serialize)]
pub struct Support {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub requester: &'static str,
    /// When (RFC 3339).
    pub time: String,
    /// space, talk, reassure or company.
    pub need: String,
    /// Words with the request.
    pub note: Option<String>,
    /// Replies.
    pub replies: Vec<Step>,
}

/// A plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub author: &'static str,
    /// When (RFC 3339).
    pub when: String,
    /// Shared as "busy" only.
    pub busy_only: bool,
    /// The words (own busy-only plans show their private words, kept on this device).
    pub text: Option<String>,
    /// When (ms).
    #[serde(skip)]
    pub when_ms: u64,
}

/// The ledger's lists, as the pages show them.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerView {
    /// Every promise, open ones first.
    pub promises: Vec<Promise>,
    /// Every agreement.
    pub agreements: Vec<Agreement>,
    /// Every support request.
    pub support: Vec<Support>,
}

/// A progress update of a goal.
#[derive(Clone, Debug, Serialize)]
pub struct GoalUpdate {
    /// When (RFC 3339).
    pub time: String,
    /// progress, done, dropped.
    pub what: String,
    /// Words.
    pub text: Option<String>,
}

/// A weekly goal.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// Entry id.
    pub id: String,
    /// "me" or "partner".
    pub author: &'static str,
    /// The goal.
    pub text: String,
    /// open, done, dropped.
    pub status: String,
    /// Progress in words.
    pub updates: Vec<GoalUpdate>,
}

/// Promise counts of one week.
#[derive(Clone, Debug, Default, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct Week {
    /// ISO week, e.g. 2026-W49.
    pub week: String,
    /// Entries per kind.
    pub entries_by_kind: BTreeMap<String, u64>,
    /// Promises.
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

/// A serde unit variant's name (`"open"`, `"accepted"`…), as the `--json` output spells it.
fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl Reader<'_> {
    fn who(&self, author: &DeviceKey) -> &'static str {
        if *author == self.paired().me() {
            "me"
        } else {
            "partner"
        }
    }

    fn steps(&self, history: &[HistoryItem]) -> Vec<Step> {
        history
            .iter()
            .map(|h| Step {
                author: self.who(&h.author),
                time: timefmt::rfc3339(h.time_ms),
                what: h.what.clone(),
                invalid: h.invalid.clone(),
            })
            .collect()
    }

    /// Promises, agreements and support requests from one derivation of the ledger as of
    /// `now_ms`.
    pub fn ledger_view(&self, now_ms: u64) -> Result<LedgerView> {
        Ok(self.ledger_view_of(&self.ledger(now_ms)?))
    }

    /// [`Reader::ledger_view`] of a ledger already derived.
    pub fn ledger_view_of(&self, ledger: &Ledger) -> LedgerView {
        let mut promises: Vec<Promise> = ledger
            .promises
            .iter()
            .map(|p| Promise {
                id: p.id.to_hex(),
                promiser: self.who(&p.promiser),
                text: p.text.clone(),
                due: p.due_ms.map(timefmt::rfc3339),
                status: word(&p.status),
                awaiting_answer: p.status_entry.is_some()
                    && matches!(p.confirmation, Confirmation::None),
                confirmation: match &p.confirmation {
                    Confirmation::None => None,
                    Confirmation::Confirmed { time_ms } => Some(Answer {
                        state: "confirmed",
                        time: timefmt::rfc3339(*time_ms),
                        note: None,
                    }),
                    Confirmation::Disputed { time_ms, note } => Some(Answer {
                        state: "disputed",
                        time: timefmt::rfc3339(*time_ms),
                        note: note.clone(),
                    }),
                },
                history: self.steps(&p.history),
            })
            .collect();
        promises.sort_by_key(|p| p.status != "open");
        LedgerView {
            promises,
            agreements: ledger
                .agreements
                .iter()
                .map(|a| Agreement {
                    id: a.id.to_hex(),
                    proposer: self.who(&a.proposer),
                    text: a.text.clone(),
                    review: timefmt::rfc3339(a.review_ms),
                    state: word(&a.state),
                    due_for_review: a.due_for_review,
                    history: self.steps(&a.history),
                })
                .collect(),
            support: ledger
                .support
                .iter()
                .map(|s| Support {
                    id: s.id.to_hex(),
                    requester: self.who(&s.requester),
                    time: timefmt::rfc3339(s.time_ms),
                    need: s.need.to_string(),
                    note: s.note.clone(),
                    replies: self.steps(&s.replies),
                })
                .collect(),
        }
    }

    /// Plans from `from_ms` to `to_ms` (inclusive); this device's busy-only plans carry the
    /// words kept on this device.
    pub fn plans(&self, from_ms: u64, to_ms: u64) -> Result<Vec<Plan>> {
        let ledger = self.ledger(timefmt::now_ms())?;
        let mut plans = Vec::new();
        for p in ledger
            .plans
            .iter()
            .filter(|p| p.when_ms >= from_ms && p.when_ms <= to_ms)
        {
            let author = self.who(&p.author);
            let text = match (&p.text, author) {
                (Some(text), _) => Some(text.clone()),
                (None, "me") => self.store().local_note(&p.id)?,
                (None, _) => None,
            };
            plans.push(Plan {
                id: p.id.to_hex(),
                author,
                when: timefmt::rfc3339(p.when_ms),
                busy_only: p.text.is_none(),
                text,
                when_ms: p.when_ms,
            });
        }
        Ok(plans)
    }

    /// Both partners' goals of the week `now_ms` falls in.
    pub fn goals_of_this_week(&self, now_ms: u64) -> Result<Vec<Goal>> {
        let week = iso_week(now_ms);
        Ok(self
            .goals()?
            .goals
            .iter()
            .filter(|g| g.week == week)
            .map(|g| Goal {
                id: g.id.to_hex(),
                author: self.who(&g.author),
                text: g.text.clone(),
                status: word(&g.status),
                updates: g
                    .updates
                    .iter()
                    .map(|u| GoalUpdate {
                        time: timefmt::rfc3339(u.time_ms),
                        what: u.what.to_string(),
                        text: u.text.clone(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// The last `weeks` weeks up to the one `now_ms` falls in, oldest first.
    pub fn weekly_summary(&self, weeks: u32, now_ms: u64) -> Result<Vec<Week>> {
        let ledger = self.ledger(now_ms)?;
        let goals: Goals = self.goals()?;
        let empty = ledger::WeekSummary::default();
        Ok((0..weeks.clamp(1, 520))
            .rev()
            .map(|back| iso_week(now_ms.saturating_sub(u64::from(back) * 7 * 86_400_000)))
            .map(|w| {
                let s = ledger.weeks.get(&w).unwrap_or(&empty);
                Week {
                    week: w.to_string(),
                    entries_by_kind: s.entries_by_kind.clone(),
                    promises: PromiseCounts {
                        made: s.promises_made,
                        kept: s.promises_kept,
                        missed: s.promises_missed,
                        renegotiated: s.promises_renegotiated,
                    },
                    checkins: s.checkins,
                    support_requests: s.support_requests,
                    support_answered: s.support_answered,
                    goals_done: goals.done_in(w),
                }
            })
            .collect())
    }
}
