//! The trust ledger's commands: promises, check-ins, plans, acknowledgements, support,
//! agreements, leaving the space, and the weekly summary.
//!
//! Each command writes one record to this device's log; every view is derived afresh from both
//! logs by `candor_shared::ledger::derive`, so both devices show the same state.

use super::log::{printable, resolve, write_payloads};
use super::{Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Result};
use candor_shared::entry::Class;
use candor_shared::ledger::{
    iso_week, status_change_refused, AgreementProposed, AgreementState, Confirmation, HistoryItem,
    Ledger, Left, Plan, PromiseMade, PromiseRenegotiated, PromiseStatus, Record, Reference,
    SupportNeed, SupportReply, SupportRequest,
};
use candor_shared::payload::{kind, Payload, TextContent};
use candor_shared::{DeviceKey, EntryHash};
use serde_json::{json, Value};

/// The derived ledger, now.
pub fn current(ctx: &Ctx, paired: &Paired) -> Result<Ledger> {
    ctx.reader(paired)?.ledger(timefmt::now_ms())
}

fn who(paired: &Paired, author: &DeviceKey) -> &'static str {
    if *author == paired.identity.secrets.device_key() {
        "me"
    } else {
        "partner"
    }
}

fn write(ctx: &Ctx, paired: &Paired, class: Class, payload: Payload) -> Result<EntryHash> {
    let entries = write_payloads(ctx, paired, vec![(class, payload)])?;
    entries
        .first()
        .map(|e| e.hash)
        .ok_or_else(|| anyhow!("nothing was written"))
}

fn record(ctx: &Ctx, paired: &Paired, record: Record) -> Result<EntryHash> {
    write(ctx, paired, Class::Shared, record.to_payload())
}

fn joined(words: &[String]) -> Result<String> {
    let text = words.join(" ");
    if text.trim().is_empty() {
        bail!("the text is empty");
    }
    Ok(text)
}

fn not_a_time(text: &str) -> anyhow::Error {
    anyhow!(
        "{text:?} is not a time: use \"2026-12-01 18:00\" or 18:00 (local time), 2026-12-01, \
         or RFC 3339"
    )
}

/// A time typed by a person (local time; a date alone is the start of that day).
fn when(text: &str) -> Result<u64> {
    timefmt::parse(text).ok_or_else(|| not_a_time(text))
}

/// The end of a range typed by a person (a date alone includes that whole day).
fn until(text: &str) -> Result<u64> {
    timefmt::parse_end(text).ok_or_else(|| not_a_time(text))
}

/// A due time typed by a person (a date alone is the end of that day); one in the past only
/// with `yes` (the terminal asks first; see `main.rs`).
pub fn due(text: &str, yes: bool) -> Result<u64> {
    let due_ms = until(text)?;
    if due_ms < timefmt::now_ms() && !yes {
        bail!(
            "the due time {} is in the past; pass --yes to record it anyway",
            timefmt::short(due_ms)
        );
    }
    Ok(due_ms)
}

fn history_json(paired: &Paired, history: &[HistoryItem]) -> Value {
    Value::Array(
        history
            .iter()
            .map(|h| {
                json!({
                    "id": h.id.to_hex(),
                    "author": who(paired, &h.author),
                    "time": timefmt::rfc3339(h.time_ms),
                    "what": h.what,
                    "invalid": h.invalid,
                })
            })
            .collect(),
    )
}

fn history_lines(paired: &Paired, history: &[HistoryItem], out: &mut Output) {
    for h in history {
        let mut line = format!(
            "    {}  {:<7}  {}",
            timefmt::short(h.time_ms),
            who(paired, &h.author),
            printable(&h.what)
        );
        if let Some(reason) = &h.invalid {
            line.push_str(&format!("  [INVALID, not applied: {reason}]"));
        }
        out.line(line);
    }
}

// ---- promises -------------------------------------------------------------------------------

fn find_promise<'l>(
    ledger: &'l Ledger,
    ctx: &Ctx,
    id: &str,
) -> Result<&'l candor_shared::ledger::Promise> {
    let (_, hash) = resolve(ctx, id)?;
    ledger
        .promises
        .iter()
        .find(|p| p.id == hash)
        .ok_or_else(|| {
            anyhow!(
                "entry {} is not a promise (see `candor promise list`)",
                hash.short()
            )
        })
}

/// `candor promise add`.
pub fn promise_add(
    ctx: &Ctx,
    text: &[String],
    due_at: Option<&str>,
    yes: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let due_ms = due_at.map(|d| due(d, yes)).transpose()?;
    let id = record(
        ctx,
        &paired,
        Record::PromiseMade(PromiseMade {
            text: joined(text)?,
            due_ms,
        }),
    )?;
    out.line(id.to_hex());
    Ok(())
}

/// `candor promise kept | missed | renegotiate`.
pub fn promise_status(
    ctx: &Ctx,
    id: &str,
    new: PromiseStatusChange,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let promise = find_promise(&ledger, ctx, id)?;
    if promise.promiser != paired.identity.secrets.device_key() {
        bail!(
            "only the partner who made a promise changes its status; you can confirm or dispute it"
        );
    }
    let renegotiating = matches!(new, PromiseStatusChange::Renegotiated { .. });
    if let Some(reason) = status_change_refused(promise.status, renegotiating) {
        let hint = match promise.status {
            PromiseStatus::Missed => format!(
                " (`candor promise renegotiate {} TEXT`)",
                promise.id.short()
            ),
            _ => String::new(),
        };
        bail!("{reason}{hint}");
    }
    let target = promise.id;
    let (record_, said) = match new {
        PromiseStatusChange::Kept(note) => {
            (Record::PromiseKept(Reference { target, note }), "kept")
        }
        PromiseStatusChange::Missed(note) => {
            (Record::PromiseMissed(Reference { target, note }), "missed")
        }
        PromiseStatusChange::Renegotiated { text, due: at, yes } => (
            Record::PromiseRenegotiated(PromiseRenegotiated {
                promise: target,
                text,
                due_ms: at.as_deref().map(|d| due(d, yes)).transpose()?,
            }),
            "renegotiated",
        ),
    };
    let status = record(ctx, &paired, record_)?;
    out.line(format!(
        "promise {} {said} ({})",
        target.short(),
        status.short()
    ));
    Ok(())
}

/// A status change the promiser makes.
pub enum PromiseStatusChange {
    /// Kept, with an optional note.
    Kept(Option<String>),
    /// Missed, with an optional note.
    Missed(Option<String>),
    /// New words and due time.
    Renegotiated {
        /// The new words.
        text: String,
        /// The new due time, as typed.
        due: Option<String>,
        /// A due time in the past is meant.
        yes: bool,
    },
}

/// `candor promise confirm | dispute`.
pub fn promise_answer(
    ctx: &Ctx,
    id: &str,
    dispute: Option<String>,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let promise = find_promise(&ledger, ctx, id)?;
    if promise.promiser == paired.identity.secrets.device_key() {
        bail!("you made this promise: only your partner confirms or disputes it");
    }
    let Some(target) = promise.status_entry else {
        bail!("nothing to answer yet: your partner has not marked this promise kept, missed or renegotiated");
    };
    // Only the partner answers, and only once per status: any answer held is this device's.
    let answered = !matches!(promise.confirmation, Confirmation::None);
    if answered {
        bail!(
            "you already answered this promise's current status ({}); each status is \
             confirmed or disputed once",
            match &promise.confirmation {
                Confirmation::Disputed { .. } => "disputed",
                _ => "confirmed",
            }
        );
    }
    let confirmed = dispute.is_none();
    let reference = Reference {
        target,
        note: dispute,
    };
    record(
        ctx,
        &paired,
        if confirmed {
            Record::StatusConfirmed(reference)
        } else {
            Record::StatusDisputed(reference)
        },
    )?;
    out.line(format!(
        "{} promise {}",
        if confirmed { "confirmed" } else { "disputed" },
        promise.id.short()
    ));
    Ok(())
}

/// Whether a promise's current status (kept, missed or renegotiated) waits for the partner's
/// confirmation or dispute: listed by `promise list` until answered.
fn awaiting_answer(p: &candor_shared::ledger::Promise) -> bool {
    p.status_entry.is_some() && p.confirmation == Confirmation::None
}

/// `candor promise list`.
pub fn promise_list(
    ctx: &Ctx,
    open_only: bool,
    all: bool,
    json_out: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let promises: Vec<_> = ledger
        .promises
        .iter()
        .filter(|p| all || p.status == PromiseStatus::Open || (!open_only && awaiting_answer(p)))
        .collect();
    if json_out {
        let items: Vec<Value> = promises
            .iter()
            .map(|p| {
                json!({
                    "id": p.id.to_hex(),
                    "promiser": who(&paired, &p.promiser),
                    "text": p.text,
                    "made": timefmt::rfc3339(p.made_ms),
                    "due": p.due_ms.map(timefmt::rfc3339),
                    "status": p.status,
                    "renegotiated": p.renegotiated,
                    "confirmation": match &p.confirmation {
                        Confirmation::None => json!(null),
                        Confirmation::Confirmed { time_ms } => json!({"state": "confirmed", "time": timefmt::rfc3339(*time_ms)}),
                        Confirmation::Disputed { time_ms, note } => json!({"state": "disputed", "time": timefmt::rfc3339(*time_ms), "note": note}),
                    },
                    "history": history_json(&paired, &p.history),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if promises.is_empty() {
        out.line(if all {
            "No promises yet."
        } else {
            "No open promises."
        });
    }
    for p in promises {
        let due = p
            .due_ms
            .map(|d| format!(", due {}", timefmt::short(d)))
            .unwrap_or_default();
        let answer = match &p.confirmation {
            Confirmation::None if p.status_entry.is_some() => {
                if p.promiser == paired.me() {
                    ", waiting for your partner's answer".to_string()
                } else {
                    ", waiting for your answer (`candor promise confirm ID` or `dispute ID`)"
                        .to_string()
                }
            }
            Confirmation::None => String::new(),
            Confirmation::Confirmed { .. } => ", confirmed".into(),
            Confirmation::Disputed { note, .. } => format!(
                ", disputed{}",
                note.as_ref()
                    .map(|n| format!(": {}", printable(n)))
                    .unwrap_or_default()
            ),
        };
        out.line(format!(
            "{}  {:?} by {}{}{}  {}",
            &p.id.to_hex()[..8],
            p.status,
            who(&paired, &p.promiser),
            due,
            answer,
            printable(&p.text)
        ));
        history_lines(&paired, &p.history, out);
    }
    Ok(())
}

// ---- check-ins, plans, acknowledgements -----------------------------------------------------

/// `candor checkin`.
pub fn checkin(ctx: &Ctx, text: &[String], eta: Option<String>, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let now = timefmt::now_ms();
    let eta = eta
        .map(|e| {
            timefmt::eta(&e, now)
                .ok_or_else(|| anyhow!("--eta takes a local time of day as HH:MM, e.g. 19:30"))
        })
        .transpose()?;
    let payload = Payload::text(
        kind::CHECKIN,
        &TextContent {
            text: joined(text)?,
            replaces: None,
            original_time_ms: None,
            eta: eta.clone(),
        },
    );
    let id = write(ctx, &paired, Class::Shared, payload)?;
    out.line(format!(
        "checked in{} ({})",
        eta.map(|e| format!(", home by {}", timefmt::eta_display(&e, now)))
            .unwrap_or_default(),
        id.short()
    ));
    Ok(())
}

/// `candor plan add`.
pub fn plan_add(
    ctx: &Ctx,
    at: &str,
    text: &[String],
    busy_only: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let when_ms = when(at)?;
    let text = joined(text)?;
    let id = record(
        ctx,
        &paired,
        Record::Plan(Plan {
            when_ms,
            text: (!busy_only).then(|| text.clone()),
        }),
    )?;
    if busy_only {
        ctx.store.set_local_note(&id, &text)?;
        out.line(format!(
            "shared that {} is taken; the details stay on this device ({})",
            timefmt::short(when_ms),
            id.short()
        ));
    } else {
        out.line(format!(
            "plan for {} shared ({})",
            timefmt::short(when_ms),
            id.short()
        ));
    }
    Ok(())
}

/// `candor plan list`.
pub fn plan_list(
    ctx: &Ctx,
    from: Option<&str>,
    to: Option<&str>,
    json_out: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let (from, to) = (from.map(when).transpose()?, to.map(until).transpose()?);
    let ledger = current(ctx, &paired)?;
    let mut rows = Vec::new();
    for plan in ledger
        .plans
        .iter()
        .filter(|p| from.is_none_or(|f| p.when_ms >= f) && to.is_none_or(|t| p.when_ms <= t))
    {
        let mine = who(&paired, &plan.author) == "me";
        let private = if mine && plan.text.is_none() {
            ctx.store.local_note(&plan.id)?
        } else {
            None
        };
        rows.push((plan, private));
    }
    if json_out {
        let items: Vec<Value> = rows
            .iter()
            .map(|(p, private)| {
                json!({
                    "id": p.id.to_hex(),
                    "author": who(&paired, &p.author),
                    "when": timefmt::rfc3339(p.when_ms),
                    "busy_only": p.text.is_none(),
                    "text": p.text.clone().or_else(|| private.clone()),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        out.line("No plans in that range.");
    }
    for (p, private) in rows {
        let what = match (&p.text, private) {
            (Some(text), _) => printable(text),
            (None, Some(text)) => format!("{} (shared as busy only)", printable(&text)),
            (None, None) => "busy".into(),
        };
        out.line(format!(
            "{}  {:<7}  {}",
            timefmt::short(p.when_ms),
            who(&paired, &p.author),
            what
        ));
    }
    Ok(())
}

/// `candor ack`.
pub fn ack(ctx: &Ctx, id: &str, note: Option<String>, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let (author, target) = resolve(ctx, id)?;
    if author == paired.identity.secrets.device_key() {
        bail!("that entry is yours; you acknowledge your partner's entries");
    }
    let me = paired.me();
    if current(ctx, &paired)?
        .acks
        .iter()
        .any(|(acked, by)| *acked == target && by.author == me)
    {
        bail!(
            "you already acknowledged {}; an entry is acknowledged once",
            target.short()
        );
    }
    record(ctx, &paired, Record::Ack(Reference { target, note }))?;
    out.line(format!("acknowledged {}", target.short()));
    Ok(())
}

// ---- support --------------------------------------------------------------------------------

/// `candor support request`.
pub fn support_request(
    ctx: &Ctx,
    need: &str,
    note: Option<String>,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let need = SupportNeed::parse(need)
        .ok_or_else(|| anyhow!("ask for space, talk, reassure or company"))?;
    let id = record(
        ctx,
        &paired,
        Record::SupportRequest(SupportRequest { need, note }),
    )?;
    out.line(id.to_hex());
    Ok(())
}

/// `candor support reply`.
pub fn support_reply(ctx: &Ctx, id: &str, text: &[String], out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let (_, hash) = resolve(ctx, id)?;
    let request = ledger
        .support
        .iter()
        .find(|s| s.id == hash)
        .ok_or_else(|| anyhow!("entry {} is not a support request", hash.short()))?;
    if request.requester == paired.identity.secrets.device_key() {
        bail!("this is your own request; your partner answers it");
    }
    record(
        ctx,
        &paired,
        Record::SupportReply(SupportReply {
            request: hash,
            text: joined(text)?,
        }),
    )?;
    out.line(format!("replied to {}", hash.short()));
    Ok(())
}

/// `candor support list`.
pub fn support_list(ctx: &Ctx, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    if json_out {
        let items: Vec<Value> = ledger
            .support
            .iter()
            .map(|s| {
                json!({
                    "id": s.id.to_hex(),
                    "requester": who(&paired, &s.requester),
                    "time": timefmt::rfc3339(s.time_ms),
                    "need": s.need,
                    "note": s.note,
                    "replies": history_json(&paired, &s.replies),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if ledger.support.is_empty() {
        out.line("No support requests yet. `candor support request talk` asks for a talk.");
    }
    for s in &ledger.support {
        out.line(format!(
            "{}  {}  {} asks for {}{}{}",
            &s.id.to_hex()[..8],
            timefmt::short(s.time_ms),
            who(&paired, &s.requester),
            s.need,
            s.note
                .as_ref()
                .map(|n| format!(": {}", printable(n)))
                .unwrap_or_default(),
            if s.replies.is_empty() {
                "  [not answered yet]"
            } else {
                ""
            }
        ));
        history_lines(&paired, &s.replies, out);
    }
    Ok(())
}

// ---- agreements -----------------------------------------------------------------------------

fn find_agreement<'l>(
    ledger: &'l Ledger,
    ctx: &Ctx,
    id: &str,
) -> Result<&'l candor_shared::ledger::Agreement> {
    let (_, hash) = resolve(ctx, id)?;
    ledger
        .agreements
        .iter()
        .find(|a| a.id == hash)
        .ok_or_else(|| {
            anyhow!(
                "entry {} is not an agreement (see `candor agreement list`)",
                hash.short()
            )
        })
}

/// `candor agreement propose`.
pub fn agreement_propose(ctx: &Ctx, text: &[String], review: &str, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let review_ms = when(review)?;
    let id = record(
        ctx,
        &paired,
        Record::AgreementProposed(AgreementProposed {
            text: joined(text)?,
            review_ms,
        }),
    )?;
    out.line(id.to_hex());
    Ok(())
}

/// What a partner does to an agreement.
pub enum AgreementAction {
    /// Accept a proposal.
    Accept,
    /// Decline a proposal.
    Decline,
    /// End it, with optional words.
    End(Option<String>),
}

/// `candor agreement accept | decline | end`.
pub fn agreement_act(ctx: &Ctx, id: &str, action: AgreementAction, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let agreement = find_agreement(&ledger, ctx, id)?;
    let mine = agreement.proposer == paired.identity.secrets.device_key();
    let target = agreement.id;
    let (rec, said) = match action {
        AgreementAction::Accept | AgreementAction::Decline => {
            if mine {
                bail!("you proposed this agreement: only your partner accepts or declines it");
            }
            if agreement.state != AgreementState::Proposed {
                bail!("this proposal was already answered ({:?})", agreement.state);
            }
            let reference = Reference { target, note: None };
            if matches!(action, AgreementAction::Accept) {
                (Record::AgreementAccepted(reference), "accepted")
            } else {
                (Record::AgreementDeclined(reference), "declined")
            }
        }
        AgreementAction::End(note) => {
            if matches!(
                agreement.state,
                AgreementState::Declined | AgreementState::Ended
            ) {
                bail!("this agreement is not in force ({:?})", agreement.state);
            }
            (Record::AgreementEnded(Reference { target, note }), "ended")
        }
    };
    record(ctx, &paired, rec)?;
    out.line(format!("agreement {} {said}", target.short()));
    Ok(())
}

/// `candor agreement list`.
pub fn agreement_list(ctx: &Ctx, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    if json_out {
        let items: Vec<Value> = ledger
            .agreements
            .iter()
            .map(|a| {
                json!({
                    "id": a.id.to_hex(),
                    "proposer": who(&paired, &a.proposer),
                    "text": a.text,
                    "review": timefmt::rfc3339(a.review_ms),
                    "state": a.state,
                    "due_for_review": a.due_for_review,
                    "history": history_json(&paired, &a.history),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if ledger.agreements.is_empty() {
        out.line("No agreements yet. Each one is proposed, consented to, and reviewed on a date you choose.");
    }
    for a in &ledger.agreements {
        out.line(format!(
            "{}  {:?}, proposed by {}, review {}{}  {}",
            &a.id.to_hex()[..8],
            a.state,
            who(&paired, &a.proposer),
            timefmt::short(a.review_ms),
            if a.due_for_review {
                "  [DUE FOR REVIEW]"
            } else {
                ""
            },
            printable(&a.text)
        ));
        history_lines(&paired, &a.history, out);
    }
    Ok(())
}

// ---- leaving, summary -----------------------------------------------------------------------

/// `candor space leave`.
pub async fn leave(ctx: &Ctx, note: Option<String>, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    write(
        ctx,
        &paired,
        Class::Control,
        Record::Left(Left { note }).to_payload(),
    )?;
    let synced = crate::syncer::sync_once(&ctx.store, &paired).await;
    ctx.store.set_left(timefmt::now_ms())?;
    out.line("You left the space. Nothing more will be written to it from this device.");
    out.line("Your full copy stays here: `candor log list` shows it, `candor log list --json` exports it.");
    if let Err(e) = synced {
        out.note(format!(
            "note: your partner's device could not be told yet ({e:#}); it learns it when this device next reaches the relay"
        ));
    }
    Ok(())
}

/// `candor summary`.
pub fn summary(ctx: &Ctx, weeks: u32, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let ledger = current(ctx, &paired)?;
    let goals = super::goals::current(ctx, &paired)?;
    let now = timefmt::now_ms();
    let wanted: Vec<_> = (0..weeks.clamp(1, 520))
        .rev()
        .map(|back| iso_week(now.saturating_sub(u64::from(back) * 7 * 86_400_000)))
        .collect();
    let empty = candor_shared::ledger::WeekSummary::default();
    let rows: Vec<_> = wanted
        .iter()
        .map(|w| (w, ledger.weeks.get(w).unwrap_or(&empty)))
        .collect();
    if json_out {
        let items: Vec<Value> = rows
            .iter()
            .map(|(w, s)| {
                json!({
                    "week": w.to_string(),
                    "entries_by_kind": s.entries_by_kind,
                    "promises": {
                        "made": s.promises_made,
                        "kept": s.promises_kept,
                        "missed": s.promises_missed,
                        "renegotiated": s.promises_renegotiated,
                    },
                    "checkins": s.checkins,
                    "support_requests": s.support_requests,
                    "support_answered": s.support_answered,
                    "goals_done": goals.done_in(**w),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    for (w, s) in &rows {
        let kinds: Vec<String> = s
            .entries_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        out.line(format!(
            "{w}  promises made {} / kept {} / missed {} / renegotiated {}, check-ins {}, support answered {} of {}, goals done {}",
            s.promises_made,
            s.promises_kept,
            s.promises_missed,
            s.promises_renegotiated,
            s.checkins,
            s.support_answered,
            s.support_requests,
            goals.done_in(**w)
        ));
        if !kinds.is_empty() {
            out.line(format!("          entries: {}", kinds.join(", ")));
        }
    }
    out.line("");
    out.line("Promises kept per week:");
    let max = rows
        .iter()
        .map(|(_, s)| s.promises_kept)
        .max()
        .unwrap_or(0)
        .max(1);
    for (w, s) in &rows {
        let width = (s.promises_kept * 30).div_ceil(max) as usize;
        out.line(format!(
            "  {w}  {:<30} {}",
            "█".repeat(width),
            s.promises_kept
        ));
    }
    Ok(())
}
