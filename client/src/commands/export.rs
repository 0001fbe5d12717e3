//! `candor export --format md|json [--journal] [--since DATE] [--out FILE]`: the person's own
//! records in a readable form (e.g. to bring to a counsellor). Only what this person wrote: the
//! entries of their own log and, with `--journal`, their journal. The partner's entries are not
//! theirs to hand on.

use super::journal;
use super::log::{records, Record};
use super::Ctx;
use crate::cli::ExportArgs;
use crate::output::Output;
use crate::progress;
use crate::timefmt;
use anyhow::{bail, Result};
use candor_shared::journal::JournalView;
use serde_json::json;
use std::fmt::Write as _;

fn markdown(
    name: &str,
    since: Option<&str>,
    log: &[Record],
    journal: Option<&[JournalView]>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Candor: records of {name}\n");
    let _ = writeln!(
        md,
        "Exported {}{}. Only the records {name} wrote.\n",
        timefmt::short(timefmt::now_ms()),
        since.map(|s| format!(", since {s}")).unwrap_or_default()
    );
    let _ = writeln!(md, "## Log ({} entries)\n", log.len());
    if log.is_empty() {
        let _ = writeln!(md, "_No entries._\n");
    }
    for r in log {
        let mut extra = Vec::new();
        if let Some(eta) = r.eta_at.as_ref().or(r.eta.as_ref()) {
            extra.push(format!("eta {eta}"));
        }
        if let Some(original) = &r.original_time {
            extra.push(format!("originally {original}"));
        }
        if let Some(replaces) = &r.replaces {
            extra.push(format!("corrects {}", &replaces[..12.min(replaces.len())]));
        }
        if !r.corrected_by.is_empty() {
            extra.push("corrected later".to_string());
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        };
        let _ = writeln!(
            md,
            "- **{}** · {}{extra}: {}",
            timefmt::short(r.time_ms),
            r.kind,
            r.text.replace('\n', " ")
        );
    }
    if let Some(journal) = journal {
        let _ = writeln!(md, "\n## Journal ({} entries, private)\n", journal.len());
        if journal.is_empty() {
            let _ = writeln!(md, "_No entries._\n");
        }
        for v in journal {
            let edited = v
                .edited_ms
                .map(|ms| format!(" (edited {})", timefmt::short(ms)))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "### {}{edited}\n\n{}\n",
                timefmt::short(v.time_ms),
                v.text
            );
        }
    }
    md
}

/// `candor export`.
pub fn export(ctx: &Ctx, args: &ExportArgs, out: &mut Output) -> Result<()> {
    let identity = ctx.identity()?;
    let from = journal::since_ms(args.since.as_deref())?;
    let paired = match ctx.store.space_config()? {
        Some(_) => Some(ctx.paired()?),
        None => None,
    };
    if paired.is_none() && !args.journal {
        bail!("this device is in no space yet, so it has no log to export; add --journal to export your journal");
    }
    let bar = progress::spinner(ctx.interactive, "collecting records");
    let log: Vec<Record> = match &paired {
        Some(paired) => records(ctx, paired)?
            .into_iter()
            .filter(|r| r.author == "me" && r.time_ms >= from)
            .collect(),
        None => Vec::new(),
    };
    bar.set_position(log.len() as u64);
    let journal = if args.journal {
        Some(
            journal::views(ctx)?
                .into_iter()
                .filter(|v| v.time_ms >= from)
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    bar.finish_and_clear();
    let text = match args.format.as_str() {
        "json" => {
            let journal_json = journal.as_ref().map(|views| {
                views
                    .iter()
                    .map(|v| {
                        json!({
                            "id": v.id,
                            "time": timefmt::rfc3339(v.time_ms),
                            "edited": v.edited_ms.map(timefmt::rfc3339),
                            "versions": v.versions,
                            "text": v.text,
                        })
                    })
                    .collect::<Vec<_>>()
            });
            let mut value = json!({
                "name": identity.name,
                "exported_at": timefmt::rfc3339(timefmt::now_ms()),
                "since": args.since.as_deref().map(|_| timefmt::rfc3339(from)),
                "log": log,
            });
            if let Some(journal_json) = journal_json {
                value["journal"] = serde_json::Value::Array(journal_json);
            }
            format!("{value:#}\n")
        }
        _ => markdown(
            &identity.name,
            args.since.as_deref(),
            &log,
            journal.as_deref(),
        ),
    };
    match &args.out {
        Some(path) => {
            let path = ctx.path(path);
            crate::files::write_new(&path, text.as_bytes(), args.force)?;
            out.line(format!(
                "wrote {} log entries{} to {} (plain text: keep it safe, delete it when done)",
                log.len(),
                journal
                    .as_ref()
                    .map(|j| format!(" and {} journal entries", j.len()))
                    .unwrap_or_default(),
                path.display()
            ));
        }
        None => out.stdout.push_str(&text),
    }
    Ok(())
}
