//! `candor goal …`: weekly goals, derived afresh from both logs by `candor_shared::goals`.

use super::log::{printable, resolve, write_payloads};
use super::{Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Result};
use candor_shared::entry::Class;
use candor_shared::goals::{
    update_refused, Goal, GoalAdded, GoalRecord, GoalStatus, GoalUpdate, Goals, GENTLE_LIMIT,
};
use candor_shared::ledger::{iso_week, IsoWeek};
use candor_shared::{DeviceKey, EntryHash};
use serde_json::{json, Value};

/// Both partners' goals, now.
pub fn current(ctx: &Ctx, paired: &Paired) -> Result<Goals> {
    ctx.reader(paired)?.goals()
}

fn who(paired: &Paired, author: &DeviceKey) -> &'static str {
    if *author == paired.identity.secrets.device_key() {
        "me"
    } else {
        "partner"
    }
}

fn week_or_now(week: Option<&str>) -> Result<IsoWeek> {
    match week {
        Some(text) => IsoWeek::parse(text)
            .ok_or_else(|| anyhow!("{text:?} is not an ISO week: write it like 2026-W48")),
        None => Ok(iso_week(timefmt::now_ms())),
    }
}

fn joined(words: &[String]) -> Result<String> {
    let text = words.join(" ");
    if text.trim().is_empty() {
        bail!("the text is empty");
    }
    Ok(text)
}

fn write(ctx: &Ctx, paired: &Paired, record: GoalRecord) -> Result<EntryHash> {
    let entries = write_payloads(ctx, paired, vec![(Class::Shared, record.to_payload())])?;
    entries
        .first()
        .map(|e| e.hash)
        .ok_or_else(|| anyhow!("nothing was written"))
}

/// `candor goal add`.
pub fn add(
    ctx: &Ctx,
    text: &[String],
    week: Option<&str>,
    together: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let week = week_or_now(week)?;
    let text = joined(text)?;
    let me = paired.identity.secrets.device_key();
    let already = current(ctx, &paired)?
        .of(&me, week)
        .filter(|g| g.status != GoalStatus::Dropped)
        .count();
    let id = write(
        ctx,
        &paired,
        GoalRecord::Added(GoalAdded {
            text,
            week,
            together,
        }),
    )?;
    out.line(id.to_hex());
    if already >= GENTLE_LIMIT {
        out.note(format!(
            "note: that makes {} goals for {week}. One or two realistic goals a week tend to \
             go further than many; you can drop one with `candor goal drop ID`.",
            already + 1
        ));
    }
    Ok(())
}

fn find<'g>(goals: &'g Goals, ctx: &Ctx, paired: &Paired, id: &str) -> Result<&'g Goal> {
    let (_, hash) = resolve(ctx, id)?;
    let goal = goals.goals.iter().find(|g| g.id == hash).ok_or_else(|| {
        anyhow!(
            "entry {} is not a goal (see `candor goal list`)",
            hash.short()
        )
    })?;
    if update_refused(goal, &paired.me()).is_some() {
        bail!(
            "this is your partner's goal: only they write its progress, or mark it done or \
             dropped (a goal added with `candor goal add --together` is moved by both)"
        );
    }
    if goal.status != GoalStatus::Open {
        bail!(
            "this goal is already {}",
            if goal.status == GoalStatus::Done {
                "done"
            } else {
                "dropped"
            }
        );
    }
    Ok(goal)
}

/// What `goal progress | done | drop` records.
pub enum GoalChange {
    /// Progress, in words.
    Progress(String),
    /// Done, with optional words.
    Done(Option<String>),
    /// Dropped, with optional words.
    Dropped(Option<String>),
}

/// `candor goal progress | done | drop`.
pub fn update(ctx: &Ctx, id: &str, change: GoalChange, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let goals = current(ctx, &paired)?;
    let goal = find(&goals, ctx, &paired, id)?;
    let target = goal.id;
    let (record, said) = match change {
        GoalChange::Progress(text) => (
            GoalRecord::Progress(GoalUpdate {
                goal: target,
                text: Some(text),
            }),
            "progress noted on",
        ),
        GoalChange::Done(text) => (GoalRecord::Done(GoalUpdate { goal: target, text }), "done:"),
        GoalChange::Dropped(text) => (
            GoalRecord::Dropped(GoalUpdate { goal: target, text }),
            "dropped",
        ),
    };
    write(ctx, &paired, record)?;
    out.line(format!(
        "{said} goal {} ({})",
        target.short(),
        printable(&goal.text)
    ));
    Ok(())
}

/// `candor goal list`.
pub fn list(ctx: &Ctx, week: Option<&str>, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let week = week_or_now(week)?;
    let goals = current(ctx, &paired)?;
    let of_week: Vec<&Goal> = goals.goals.iter().filter(|g| g.week == week).collect();
    if json_out {
        let items: Vec<Value> = of_week
            .iter()
            .map(|g| {
                json!({
                    "id": g.id.to_hex(),
                    "author": who(&paired, &g.author),
                    "together": g.together,
                    "week": g.week.to_string(),
                    "text": g.text,
                    "status": g.status,
                    "added": timefmt::rfc3339(g.added_ms),
                    "updates": g.updates.iter().map(|u| json!({
                        "id": u.id.to_hex(),
                        "author": who(&paired, &u.author),
                        "time": timefmt::rfc3339(u.time_ms),
                        "what": u.what,
                        "text": u.text,
                        "invalid": u.invalid,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if of_week.is_empty() {
        out.line(format!(
            "No goals for {week}. `candor goal add \"…\"` picks one; one or two are plenty."
        ));
    }
    for g in of_week {
        out.line(format!(
            "{}  {}  {:<7}  {:?}  {}",
            &g.id.to_hex()[..8],
            g.week,
            if g.together {
                "both"
            } else {
                who(&paired, &g.author)
            },
            g.status,
            printable(&g.text)
        ));
        for u in &g.updates {
            let mut line = format!(
                "    {}  {:<7}  {}{}",
                timefmt::short(u.time_ms),
                who(&paired, &u.author),
                u.what,
                u.text
                    .as_ref()
                    .map(|t| format!(": {}", printable(t)))
                    .unwrap_or_default()
            );
            if let Some(reason) = &u.invalid {
                line.push_str(&format!("  [INVALID, not applied: {reason}]"));
            }
            out.line(line);
        }
    }
    Ok(())
}
