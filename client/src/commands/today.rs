//! `candor today`: the [`crate::app::Today`] view (computed by the application core), rendered
//! as text or `--json` from the one value; showing it marks the partner's entries seen.

use super::log::printable;
use super::Ctx;
use crate::app::Today;
use crate::output::Output;
use crate::timefmt;
use anyhow::Result;
use candor_shared::goals::GoalStatus;
use candor_shared::ledger::PromiseStatus;

/// `candor today`.
pub fn show(ctx: &Ctx, json: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let reader = ctx.reader(&paired)?;
    let today = reader.today(timefmt::now_ms())?;
    if json {
        out.line(serde_json::to_string_pretty(&today)?);
    } else {
        render(&today, out);
    }
    reader.mark_looked(&today)
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn time(rfc3339: &str) -> String {
    timefmt::parse(rfc3339).map_or_else(|| rfc3339.to_string(), timefmt::short)
}

fn section(out: &mut Output, title: &str, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    out.line("");
    out.line(title);
    for line in lines {
        out.line(format!("  {line}"));
    }
}

/// The text form: one section per kind of thing, only those that hold something.
fn render(today: &Today, out: &mut Output) {
    let partner = printable(today.partner_name.as_deref().unwrap_or("your partner"));
    out.line(format!("Today, {} ({})", time(&today.time), today.week));
    if let Some(left) = &today.partner_left {
        out.line("");
        out.line(format!(
            "{partner} left the space on {}{}. Nothing new will come from them; your copy \
             stays here.",
            time(&left.time),
            left.note
                .as_ref()
                .map(|n| format!(" (\"{}\")", printable(n)))
                .unwrap_or_default()
        ));
    }
    let mut waiting = Vec::new();
    for p in &today.promises_to_confirm {
        let said = match p.status {
            PromiseStatus::Kept => "kept",
            PromiseStatus::Missed => "missed",
            PromiseStatus::Open => "renegotiated",
        };
        waiting.push(format!(
            "promise {}  {partner} marked \"{}\" {said}: `candor promise confirm {}` or \
             `candor promise dispute {} --note T`",
            short(&p.id),
            printable(&p.text),
            short(&p.id),
            short(&p.id)
        ));
    }
    for s in &today.support_to_answer {
        waiting.push(format!(
            "support {}  {partner} asks for {}{} ({}): `candor support reply {} TEXT`",
            short(&s.id),
            s.need,
            s.note
                .as_ref()
                .map(|n| format!(": {}", printable(n)))
                .unwrap_or_default(),
            time(&s.time),
            short(&s.id)
        ));
    }
    for a in &today.agreements_proposed {
        waiting.push(format!(
            "agreement {}  {partner} proposes \"{}\": `candor agreement accept {}` or \
             `candor agreement decline {}`",
            short(&a.id),
            printable(&a.text),
            short(&a.id),
            short(&a.id)
        ));
    }
    section(out, "Waiting for your answer:", waiting);
    section(
        out,
        "Agreements due for review (talk them over; `candor agreement end ID` if one no longer fits):",
        today
            .agreements_to_review
            .iter()
            .map(|a| {
                format!(
                    "agreement {}  \"{}\", review was {}",
                    short(&a.id),
                    printable(&a.text),
                    time(&a.review)
                )
            })
            .collect(),
    );
    section(
        out,
        "Check-ins past their expected arrival:",
        today
            .checkins_overdue
            .iter()
            .map(|c| {
                let who = if c.author == "me" {
                    "you".to_string()
                } else {
                    partner.clone()
                };
                format!(
                    "{who}: \"{}\", expected by {} ({})",
                    printable(&c.text),
                    time(&c.eta_at),
                    short(&c.id)
                )
            })
            .collect(),
    );
    section(
        out,
        &format!("Your goals for {}:", today.week),
        today
            .goals
            .iter()
            .map(|g| {
                let status = match g.status {
                    GoalStatus::Open => "open",
                    GoalStatus::Done => "done",
                    GoalStatus::Dropped => "dropped",
                };
                format!(
                    "goal {}  {status}{}  {}",
                    short(&g.id),
                    if g.together { ", together" } else { "" },
                    printable(&g.text)
                )
            })
            .collect(),
    );
    if today.partner_new_count > 0 {
        let count = today.partner_new_count;
        let title = format!(
            "New from {partner} since you last looked ({count} {}{}):",
            if count == 1 { "entry" } else { "entries" },
            if count > today.partner_new.len() as u64 {
                format!(", the newest {} shown", today.partner_new.len())
            } else {
                String::new()
            }
        );
        section(
            out,
            &title,
            today
                .partner_new
                .iter()
                .map(|e| {
                    format!(
                        "{}  {:<10} {}  {}",
                        timefmt::short(e.time_ms),
                        e.kind,
                        short(&e.id),
                        printable(&e.text)
                    )
                })
                .collect(),
        );
    }
    if today.is_quiet() {
        out.line("");
        out.line(format!(
            "Nothing waits for you, and nothing new from {partner} since you last looked."
        ));
    }
}
