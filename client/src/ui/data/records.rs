//! The everyday records for the pages: the timeline, promises, agreements, support, plans,
//! shared notes, goals and the weekly summary, and the private journal.

use super::{nonempty, Data, ENTRY_KINDS};
use crate::timefmt;
use crate::ui::views::{
    Entry, Goal, JournalEntry, LedgerView, NeedsMe, Note, NoteEdit, NoteSummary, Plan, Week,
};
use anyhow::{bail, Result};

/// The note's text with conflict `conflict` replaced by its version `version` (the other
/// conflicts keep their marker lines), or `None` if there is no such conflict. The text shows
/// each conflict as `candor_shared::notes::conflict::render` writes it.
pub fn kept(note: &Note, conflict: usize, version: usize) -> Option<String> {
    use candor_shared::notes::conflict::{BETWEEN, CLOSE, OPEN};
    let chosen = note.conflicts.get(conflict)?.versions.get(version)?;
    let mut at = 0;
    for (i, c) in note.conflicts.iter().enumerate() {
        let mut block = String::new();
        for (v, version) in c.versions.iter().enumerate() {
            block.push_str(if v == 0 { OPEN } else { BETWEEN });
            block.push_str(version.author_name.as_deref().unwrap_or("another device"));
            block.push('\n');
            block.push_str(&version.text);
            block.push('\n');
        }
        block.push_str(CLOSE);
        let start = at + note.text.get(at..)?.find(&block)?;
        if i == conflict {
            let mut text = note.text[..start].to_string();
            text.push_str(&chosen.text);
            text.push_str(&note.text[start + block.len()..]);
            return Some(text);
        }
        at = start + block.len();
    }
    None
}

/// What needs this person, from the ledger's lists: the partner's promises marked and not yet
/// answered, the partner's support requests without a reply, agreements the partner proposed,
/// and agreements in force due for review.
pub fn needs_me_of(ledger: LedgerView) -> NeedsMe {
    NeedsMe {
        promises_to_answer: ledger
            .promises
            .into_iter()
            .filter(|p| p.promiser == "partner" && p.awaiting_answer)
            .collect(),
        support_to_answer: ledger
            .support
            .into_iter()
            .filter(|s| s.requester == "partner" && s.replies.is_empty())
            .collect(),
        agreements_to_answer: ledger
            .agreements
            .iter()
            .filter(|a| a.proposer == "partner" && a.state == "proposed")
            .cloned()
            .collect(),
        agreements_to_review: ledger
            .agreements
            .into_iter()
            .filter(|a| a.due_for_review && a.state == "accepted")
            .collect(),
    }
}

impl Data {
    // ---- the timeline -----------------------------------------------------------------------

    /// The latest `limit` entries of both partners, newest first.
    pub async fn timeline(&self, limit: usize) -> Result<Vec<Entry>> {
        let mut entries = self.read(move |r| r.timeline(Some(limit))).await?;
        entries.reverse();
        Ok(entries)
    }

    /// Shares a new entry of `kind` (see [`ENTRY_KINDS`]); a check-in may carry an ETA (HH:MM).
    pub async fn share(&self, kind: &str, text: &str, eta: Option<&str>) -> Result<String> {
        if !ENTRY_KINDS.iter().any(|(k, _)| *k == kind) {
            bail!("choose what kind of entry this is");
        }
        if text.trim().is_empty() {
            bail!("write something first");
        }
        match (kind, eta.map(str::trim).filter(|e| !e.is_empty())) {
            ("checkin", Some(eta)) => {
                self.act(&["checkin", &format!("--eta={eta}"), "--", text])
                    .await?;
            }
            ("checkin", None) => {
                self.act(&["checkin", "--", text]).await?;
            }
            (kind, _) => {
                self.act(&["log", "add", &format!("--kind={kind}"), "--", text])
                    .await?;
            }
        }
        Ok("Shared.".into())
    }

    /// Acknowledges one of the partner's entries.
    pub async fn acknowledge(&self, id: &str) -> Result<()> {
        self.act(&["ack", "--", id]).await.map(drop)
    }

    /// The promises, agreements and support requests, from one derivation of the ledger.
    pub async fn ledger(&self) -> Result<LedgerView> {
        self.read(|r| r.ledger_view(timefmt::now_ms())).await
    }

    /// What needs this person: answers and reviews they owe. The one call the Today screen
    /// makes for its "what needs me" section (the seam for the core's `candor today` view).
    pub async fn needs_me(&self) -> Result<NeedsMe> {
        Ok(needs_me_of(self.ledger().await?))
    }

    // ---- promises, agreements, support, plans -----------------------------------------------

    /// Makes a promise; `due` as typed (a date, or date and time).
    pub async fn promise(&self, text: &str, due: Option<&str>) -> Result<()> {
        match nonempty(due) {
            Some(due) => {
                self.act(&["promise", "add", &format!("--due={due}"), "--", text])
                    .await
            }
            None => self.act(&["promise", "add", "--", text]).await,
        }
        .map(drop)
    }

    /// The promiser marks a promise kept, missed or renegotiated (with new words).
    pub async fn promise_status(&self, id: &str, status: &str, note: Option<&str>) -> Result<()> {
        let note = nonempty(note);
        match (status, note) {
            ("kept" | "missed", Some(note)) => {
                self.act(&["promise", status, &format!("--note={note}"), "--", id])
                    .await
            }
            ("kept" | "missed", None) => self.act(&["promise", status, "--", id]).await,
            ("renegotiate", Some(text)) => {
                self.act(&["promise", "renegotiate", "--", id, text]).await
            }
            ("renegotiate", None) => bail!("write the new words of the promise"),
            _ => bail!("unknown change to a promise"),
        }
        .map(drop)
    }

    /// The partner confirms a promise's status, or disputes it with words.
    pub async fn promise_answer(&self, id: &str, dispute: Option<&str>) -> Result<()> {
        match dispute {
            None => self.act(&["promise", "confirm", "--", id]).await,
            Some(note) => match nonempty(Some(note)) {
                Some(note) => {
                    self.act(&["promise", "dispute", &format!("--note={note}"), "--", id])
                        .await
                }
                None => bail!("say in a few words what you see differently"),
            },
        }
        .map(drop)
    }

    /// Proposes an agreement with a review date.
    pub async fn propose_agreement(&self, text: &str, review: &str) -> Result<()> {
        let Some(review) = nonempty(Some(review)) else {
            bail!("choose a date to review the agreement together");
        };
        self.act(&[
            "agreement",
            "propose",
            &format!("--review={review}"),
            "--",
            text,
        ])
        .await
        .map(drop)
    }

    /// Accepts, declines or ends an agreement.
    pub async fn agreement_act(&self, id: &str, action: &str) -> Result<()> {
        match action {
            "accept" | "decline" | "end" => self.act(&["agreement", action, "--", id]).await,
            _ => bail!("unknown change to an agreement"),
        }
        .map(drop)
    }

    /// Asks for support (space, talk, reassure, company).
    pub async fn ask_support(&self, need: &str, note: Option<&str>) -> Result<()> {
        match nonempty(note) {
            Some(note) => {
                self.act(&["support", "request", &format!("--note={note}"), "--", need])
                    .await
            }
            None => self.act(&["support", "request", "--", need]).await,
        }
        .map(drop)
    }

    /// Answers the partner's support request.
    pub async fn answer_support(&self, id: &str, text: &str) -> Result<()> {
        self.act(&["support", "reply", "--", id, text])
            .await
            .map(drop)
    }

    /// Plans from `from_ms` to `to_ms`.
    pub async fn plans(&self, from_ms: u64, to_ms: u64) -> Result<Vec<Plan>> {
        self.read(move |r| r.plans(from_ms, to_ms)).await
    }

    /// Shares a plan; busy-only keeps the words on this device.
    pub async fn add_plan(&self, when: &str, text: &str, busy_only: bool) -> Result<()> {
        let when = when.trim().replace('T', " ");
        let result = if busy_only {
            self.act(&["plan", "add", "--busy-only", "--", &when, text])
                .await
        } else {
            self.act(&["plan", "add", "--", &when, text]).await
        };
        result.map(drop)
    }

    // ---- shared notes -----------------------------------------------------------------------

    /// The shared notes (archived ones too when `all`).
    pub async fn notes(&self, all: bool) -> Result<Vec<NoteSummary>> {
        if all {
            self.json(&["note", "list", "--all", "--json"]).await
        } else {
            self.json(&["note", "list", "--json"]).await
        }
    }

    /// One note.
    pub async fn note(&self, name: &str) -> Result<Note> {
        self.json(&["note", "show", "--json", "--", name]).await
    }

    /// Starts a note, from a template if one is chosen.
    pub async fn new_note(&self, name: &str, template: Option<&str>) -> Result<()> {
        match nonempty(template) {
            Some(t) => {
                self.act(&["note", "new", &format!("--template={t}"), "--", name])
                    .await
            }
            None => self.act(&["note", "new", "--", name]).await,
        }
        .map(drop)
    }

    /// Saves an edit made from the version `base` (edits made meanwhile merge with it).
    pub async fn save_note(&self, name: &str, text: &str, base: &str) -> Result<String> {
        let mut args = vec!["note", "set", "--file=-"];
        let base_arg = format!("--base={base}");
        if !base.is_empty() {
            args.push(&base_arg);
        }
        args.extend(["--", name]);
        let text = text.replace("\r\n", "\n");
        self.act_with(&args, Some(text)).await
    }

    /// Resolves conflict number `conflict` of the note by keeping version `version` of it:
    /// saved as an edit from `base`, the version the page showed.
    pub async fn keep_version(
        &self,
        name: &str,
        base: &str,
        conflict: usize,
        version: usize,
    ) -> Result<String> {
        let note = self.note(name).await?;
        if note.heads != base {
            bail!("the note changed since you opened it; look again and choose once more");
        }
        let Some(text) = kept(&note, conflict, version) else {
            bail!("that passage is no longer in conflict; look again");
        };
        self.save_note(name, &text, base).await
    }

    /// Every edit of a note.
    pub async fn note_history(&self, name: &str) -> Result<Vec<NoteEdit>> {
        self.json(&["note", "history", "--json", "--", name]).await
    }

    /// Archives a note, or restores it.
    pub async fn archive_note(&self, name: &str, restore: bool) -> Result<()> {
        let result = if restore {
            self.act(&["note", "archive", "--restore", "--", name])
                .await
        } else {
            self.act(&["note", "archive", "--", name]).await
        };
        result.map(drop)
    }

    // ---- goals and the weekly summary -------------------------------------------------------

    /// This week's goals of both partners.
    pub async fn goals(&self) -> Result<Vec<Goal>> {
        self.read(|r| r.goals_of_this_week(timefmt::now_ms())).await
    }

    /// Picks a goal for this week.
    pub async fn add_goal(&self, text: &str) -> Result<()> {
        self.act(&["goal", "add", "--", text]).await.map(drop)
    }

    /// Records progress on a goal, or marks it done or dropped.
    pub async fn update_goal(&self, id: &str, change: &str, text: Option<&str>) -> Result<()> {
        let text = nonempty(text);
        match (change, text) {
            ("progress", Some(text)) => self.act(&["goal", "progress", "--", id, text]).await,
            ("progress", None) => bail!("write a few words about the progress"),
            ("done" | "drop", Some(note)) => {
                self.act(&["goal", change, &format!("--note={note}"), "--", id])
                    .await
            }
            ("done" | "drop", None) => self.act(&["goal", change, "--", id]).await,
            _ => bail!("unknown change to a goal"),
        }
        .map(drop)
    }

    /// The last `weeks` weeks, oldest first.
    pub async fn summary(&self, weeks: u32) -> Result<Vec<Week>> {
        self.read(move |r| r.weekly_summary(weeks, timefmt::now_ms()))
            .await
    }

    // ---- the private journal ----------------------------------------------------------------

    /// Journal entries (those matching `words` if given), newest first.
    pub async fn journal(&self, words: Option<&str>) -> Result<Vec<JournalEntry>> {
        let words: Vec<&str> = words.unwrap_or_default().split_whitespace().collect();
        let mut entries: Vec<JournalEntry> = if words.is_empty() {
            self.json(&["journal", "list", "--json"]).await?
        } else {
            let mut args = vec!["journal", "search", "--json", "--"];
            args.extend(words);
            self.json(&args).await?
        };
        entries.reverse();
        Ok(entries)
    }

    /// Writes a journal entry.
    pub async fn write_journal(&self, text: &str) -> Result<()> {
        self.act_with(
            &["journal", "add", "--file=-"],
            Some(text.replace("\r\n", "\n")),
        )
        .await
        .map(drop)
    }

    /// Replaces the words of a journal entry (earlier versions stay in its history).
    pub async fn edit_journal(&self, id: &str, text: &str) -> Result<()> {
        self.act_with(
            &["journal", "edit", "--file=-", "--", id],
            Some(text.replace("\r\n", "\n")),
        )
        .await
        .map(drop)
    }

    /// Shares a correction of one of this person's own entries (the original stays, marked).
    pub async fn correct(&self, id: &str, text: &str) -> Result<()> {
        self.act(&["log", "correct", "--", id, text])
            .await
            .map(drop)
    }

    /// A reflection prompt.
    pub async fn journal_prompt(&self) -> Result<String> {
        self.line(&["journal", "prompt"]).await
    }

    /// Turns the sealed journal backup on or off.
    pub async fn journal_backup(&self, on: bool) -> Result<String> {
        self.act(&["journal", "backup", if on { "on" } else { "off" }])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::views::{ConflictVersion, NoteConflict};

    fn version(author: &str, text: &str) -> ConflictVersion {
        ConflictVersion {
            author_name: Some(author.into()),
            text: text.into(),
        }
    }

    #[test]
    fn keeping_a_version_replaces_only_its_passage() {
        let note = Note {
            name: Some("talks".into()),
            archived: false,
            text:
                "Intro\n<<<<<<< Alex\nSaturday.\n======= Sam\nMonday.\n>>>>>>> end of conflict\n\
                   Middle\n<<<<<<< Alex\nTea.\n======= Sam\nCoffee.\n>>>>>>> end of conflict\nEnd\n"
                    .into(),
            heads: "h".into(),
            waiting_edits: 0,
            invalid_edits: vec![],
            conflicts: vec![
                NoteConflict {
                    versions: vec![version("Alex", "Saturday."), version("Sam", "Monday.")],
                },
                NoteConflict {
                    versions: vec![version("Alex", "Tea."), version("Sam", "Coffee.")],
                },
            ],
        };
        let text = kept(&note, 1, 1).unwrap();
        assert!(text.ends_with("Middle\nCoffee.\nEnd\n"), "{text}");
        assert!(
            text.contains("======= Sam\nMonday.\n"),
            "the other conflict stays"
        );
        let text = kept(&note, 0, 0).unwrap();
        assert!(
            text.starts_with("Intro\nSaturday.\nMiddle\n<<<<<<< Alex\nTea."),
            "{text}"
        );
        assert_eq!(kept(&note, 2, 0), None);
        assert_eq!(kept(&note, 0, 2), None);
    }
}
