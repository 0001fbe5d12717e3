//! `candor log add | correct | list | import`: the transparency log.

use super::{Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::entry::{Class, Entry};
use candor_shared::payload::{text_kind_code, Payload, TextContent};
use candor_shared::{DeviceKey, EntryHash};

/// One entry as `log list` shows it (the application core's timeline entry).
pub use crate::app::TimelineEntry as Record;

/// The partner's name, from their introduction entry, if received.
pub fn partner_name(ctx: &Ctx, paired: &Paired) -> Result<Option<String>> {
    ctx.reader(paired)?.partner_name()
}

/// Both logs' user-visible entries, oldest first, with corrections linked.
pub fn records(ctx: &Ctx, paired: &Paired) -> Result<Vec<Record>> {
    ctx.reader(paired)?.timeline(None)
}

/// Seals and stores entries in this device's log, then wakes a running watcher to push them.
pub(super) fn write_payloads(
    ctx: &Ctx,
    paired: &Paired,
    payloads: Vec<(Class, Payload)>,
) -> Result<Vec<Entry>> {
    ctx.writer(paired).write(payloads)
}

fn write_own(ctx: &Ctx, paired: &Paired, payloads: Vec<Payload>) -> Result<Vec<Entry>> {
    write_payloads(
        ctx,
        paired,
        payloads.into_iter().map(|p| (Class::Shared, p)).collect(),
    )
}

fn text_payload(
    kind: &str,
    text: &str,
    replaces: Option<EntryHash>,
    original_time_ms: Option<u64>,
) -> Result<Payload> {
    let code = text_kind_code(kind)
        .ok_or_else(|| anyhow!("unknown kind {kind:?}: use checkin, disclosure, plan or note"))?;
    if text.trim().is_empty() {
        bail!("the entry's text is empty");
    }
    Ok(Payload::text(
        code,
        &TextContent {
            text: text.to_string(),
            replaces,
            original_time_ms,
            eta: None,
        },
    ))
}

/// `candor log add`.
pub fn add(ctx: &Ctx, kind: &str, text: &str, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let entries = write_own(ctx, &paired, vec![text_payload(kind, text, None, None)?])?;
    for entry in entries {
        out.line(format!(
            "added {kind} {} (seq {})",
            entry.hash, entry.header.seq
        ));
    }
    Ok(())
}

/// Finds the one entry whose id starts with the hex `id` (at least 4 characters).
pub(super) fn resolve(ctx: &Ctx, id: &str) -> Result<(DeviceKey, EntryHash)> {
    let id = id.trim();
    if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "an entry id is hexadecimal: give at least 4 of its characters (see `candor log list`)"
        );
    }
    let matches = ctx.store.find_by_prefix(id)?;
    match matches.as_slice() {
        [] => bail!("no entry has an id starting with {id:?} (see `candor log list`)"),
        [(author, _, hash)] => Ok((*author, *hash)),
        _ => bail!(
            "{} entries have ids starting with {id:?}; give more characters",
            matches.len()
        ),
    }
}

/// `candor log correct`.
pub fn correct(ctx: &Ctx, id: &str, text: &str, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let id = id.trim();
    if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "an entry id is hexadecimal: give at least 4 of its characters (see `candor log list`)"
        );
    }
    let me = paired.identity.secrets.device_key();
    let matches = ctx.store.find_by_prefix(id)?;
    let (author, _, hash) = match matches.as_slice() {
        [] => bail!("no entry has an id starting with {id:?} (see `candor log list`)"),
        [one] => *one,
        _ => bail!(
            "{} entries have ids starting with {id:?}; give more characters",
            matches.len()
        ),
    };
    if author != me {
        bail!("you can only correct your own entries; this one is your partner's");
    }
    let original = ctx.reader(&paired)?.entry(&hash)?.ok_or_else(|| {
        anyhow!(
            "entry {} is not a text entry and cannot be corrected",
            hash.short()
        )
    })?;
    if original.kind == "unknown kind" {
        bail!(
            "entry {} is of a kind this version cannot correct",
            hash.short()
        );
    }
    let entries = write_own(
        ctx,
        &paired,
        vec![text_payload(&original.kind, text, Some(hash), None)?],
    )?;
    for entry in entries {
        out.line(format!("added correction {} of {}", entry.hash, hash));
    }
    Ok(())
}

/// `candor log list`.
pub fn list(ctx: &Ctx, json: bool, limit: Option<usize>, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let all = ctx.reader(&paired)?.timeline(limit)?;
    if json {
        out.line(serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() && limit != Some(0) {
        out.line("No entries yet. Add one with `candor log add TEXT`.");
    }
    for r in &all {
        let who = if r.author == "me" {
            format!("{} (me)", r.author_name)
        } else {
            r.author_name.clone()
        };
        let mut line = format!(
            "{}  {:<16} {:<10} {}  {}",
            timefmt::short(r.time_ms),
            printable(&who),
            r.kind,
            r.id.get(..8).unwrap_or(&r.id),
            printable(&r.text)
        );
        if let Some(about) = &r.about {
            line.push_str(&format!(
                "  [{} \"{}\"]",
                printable(&about.kind),
                printable(&about.text)
            ));
        }
        if let Some(original) = &r.replaces {
            line.push_str(&format!(
                "  [corrects {}]",
                original.get(..8).unwrap_or(original)
            ));
        }
        if !r.corrected_by.is_empty() {
            line.push_str("  [corrected later]");
        }
        if let Some(t) = &r.original_time {
            line.push_str(&format!("  [imported, originally {t}]"));
        }
        if let Some(eta) = r.eta_at.as_ref().or(r.eta.as_ref()) {
            line.push_str(&format!(
                "  [home by {}]",
                printable(&timefmt::eta_display(eta, timefmt::now_ms()))
            ));
        }
        if r.seen_by_partner == Some(true) {
            line.push_str("  [seen by partner]");
        }
        out.line(line);
    }
    Ok(())
}

/// Text safe to print on a terminal: control characters (which could move the cursor, rewrite
/// earlier lines or change colours) and the invisible characters that reorder or hide text
/// (bidirectional overrides, zero-width marks, line and paragraph separators) become visible
/// escapes; line breaks become "⏎ ".
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("⏎ "),
            '\t' => out.push(' '),
            c if c.is_control() || invisible(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Characters that change how the text around them is shown without showing themselves.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[derive(serde::Deserialize)]
struct ImportLine {
    text: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    time: Option<serde_json::Value>,
}

/// Parses an import file into payloads; JSON Lines if the first non-empty line is an object.
pub fn parse_import(content: &str) -> Result<Vec<Payload>> {
    let lines: Vec<(usize, &str)> = content
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let json_lines = lines
        .first()
        .is_some_and(|(_, l)| l.trim_start().starts_with('{'));
    lines
        .into_iter()
        .map(|(n, line)| {
            let n = n + 1;
            if !json_lines {
                return text_payload("note", line.trim_end(), None, None)
                    .with_context(|| format!("line {n}"));
            }
            let item: ImportLine = serde_json::from_str(line)
                .with_context(|| format!("line {n} is not a JSON object with a \"text\" field"))?;
            let time = match &item.time {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Number(ms)) => ms.as_u64(),
                Some(serde_json::Value::String(s)) => Some(timefmt::parse(s).ok_or_else(|| {
                    anyhow!("line {n}: time {s:?} is not RFC 3339 or YYYY-MM-DD")
                })?),
                Some(other) => bail!("line {n}: time {other} is not a string or number"),
            };
            text_payload(
                item.kind.as_deref().unwrap_or("note"),
                &item.text,
                None,
                time,
            )
            .with_context(|| format!("line {n}"))
        })
        .collect()
}

/// `candor log import`.
pub fn import(ctx: &Ctx, file: &std::path::Path, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let content = if let (true, Some(forwarded)) = (file.as_os_str() == "-", &ctx.stdin) {
        forwarded.clone()
    } else if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        let path = ctx.path(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
    };
    let payloads = parse_import(&content)?;
    if payloads.is_empty() {
        bail!("nothing to import: the file has no non-empty lines");
    }
    let count = payloads.len();
    write_own(ctx, &paired, payloads)?;
    out.line(format!("imported {count} entries"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_neutralises_terminal_escapes() {
        assert_eq!(printable("ok\u{1b}[2Jgone"), "ok\\u{1b}[2Jgone");
        assert_eq!(printable("two\nlines"), "two⏎ lines");
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn import_reads_plain_lines_and_json_lines() {
        let plain = parse_import("first\n\n second line \n").unwrap();
        assert_eq!(plain.len(), 2);
        let jsonl = parse_import(
            "{\"text\":\"a\",\"kind\":\"checkin\",\"time\":\"2024-05-01T08:30:00Z\"}\n{\"text\":\"b\"}\n",
        )
        .unwrap();
        let Ok(candor_shared::payload::Content::Text { kind, text }) = jsonl[0].content() else {
            panic!()
        };
        assert_eq!(
            candor_shared::payload::text_kind_name(kind),
            Some("checkin")
        );
        assert_eq!(text.original_time_ms, Some(1_714_552_200_000));
        assert!(parse_import("{\"text\":\"a\",\"kind\":\"diary\"}").is_err());
        assert!(parse_import("{\"nope\":1}").is_err());
    }
}
