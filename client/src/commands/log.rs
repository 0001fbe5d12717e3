//! `candor log add | correct | list | import`: the transparency log.

use super::{random, Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::entry::{Class, Entry};
use candor_shared::goals::GoalRecord;
use candor_shared::ledger::Record as LedgerRecord;
use candor_shared::payload::{text_kind_code, text_kind_name, Content, Payload, TextContent};
use candor_shared::{DeviceKey, EntryHash};
use serde::Serialize;

/// One entry as `log list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Hex entry hash.
    pub id: String,
    /// "me" or "partner".
    pub author: &'static str,
    /// The author's chosen name.
    pub author_name: String,
    /// Position in the author's log.
    pub seq: u64,
    /// checkin, disclosure, plan, note, or "unknown kind" for kinds this version does not know.
    pub kind: String,
    /// The text (empty for unknown kinds).
    pub text: String,
    /// The author's time of writing, RFC 3339.
    pub time: String,
    /// The id of the entry this one corrects.
    pub replaces: Option<String>,
    /// For imported records, their original time.
    pub original_time: Option<String>,
    /// For check-ins: the expected arrival time of day, `HH:MM` in local time.
    pub eta: Option<String>,
    /// For check-ins: the expected arrival as RFC 3339 with the local offset (null for
    /// check-ins written before ETAs carried a date).
    pub eta_at: Option<String>,
    /// For ledger records about another entry (a kept promise, an acknowledgement…): its id.
    pub refers_to: Option<String>,
    /// For your own entries: whether your partner's device has verified it (from their signed
    /// view of your log); null for your partner's entries.
    pub seen_by_partner: Option<bool>,
    /// Ids of later entries that correct this one.
    pub corrected_by: Vec<String>,
    #[serde(skip)]
    pub(crate) time_ms: u64,
}

/// The partner's name, from their introduction entry, if received.
pub fn partner_name(ctx: &Ctx, paired: &Paired) -> Result<Option<String>> {
    let Some(partner) = paired.config.partner else {
        return Ok(None);
    };
    let Some(first) = ctx.store.log_entries(&partner.device, 0).next() else {
        return Ok(None);
    };
    let (_, bytes) = first?;
    let entry = Entry::from_bytes(&bytes)?;
    Ok(
        match entry.open_readable(&paired.key)?.map(|p| p.content()) {
            Some(Ok(Content::Hello(hello))) => Some(hello.name),
            _ => None,
        },
    )
}

fn records_of(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    who: &'static str,
    name: &str,
    seen_by_partner: Option<u64>,
    out: &mut Vec<Record>,
) -> Result<()> {
    for item in ctx.store.log_entries(author, 0) {
        let (seq, bytes) = item?;
        let entry =
            Entry::from_bytes(&bytes).with_context(|| format!("stored entry {seq} of {who}"))?;
        // Private entries (e.g. backed-up journal entries) are readable only by their author,
        // through `candor journal`; they stay in the log, verified and counted.
        let Some(payload) = entry.open_readable(&paired.key)? else {
            continue;
        };
        let mut record = Record {
            id: entry.hash.to_hex(),
            author: who,
            author_name: name.to_string(),
            seq,
            kind: String::new(),
            text: String::new(),
            time: timefmt::rfc3339(entry.header.time_ms),
            replaces: None,
            original_time: None,
            eta: None,
            eta_at: None,
            refers_to: None,
            seen_by_partner: seen_by_partner.map(|count| seq < count),
            corrected_by: Vec::new(),
            time_ms: entry.header.time_ms,
        };
        if let Some(ledger_record) = LedgerRecord::from_payload(&payload).ok().flatten() {
            record.kind = ledger_record.kind_name().to_string();
            record.text = ledger_record.describe();
            record.refers_to = ledger_target(&ledger_record).map(|h| h.to_hex());
            out.push(record);
            continue;
        }
        if let Some(kind) = candor_shared::notes::kind_name(payload.kind) {
            record.kind = kind.to_string();
            if let Ok(Some(edit)) = candor_shared::notes::NoteEdit::from_payload(&payload) {
                record.text = format!("edited the shared note {:?}", edit.name);
                if edit.parts > 1 {
                    record.text += &format!(" (part {} of {})", edit.part + 1, edit.parts);
                }
            } else if let Ok(Some(goal)) = GoalRecord::from_payload(&payload) {
                record.text = goal.describe();
                if let GoalRecord::Progress(u) | GoalRecord::Done(u) | GoalRecord::Dropped(u) =
                    &goal
                {
                    record.refers_to = Some(u.goal.to_hex());
                }
            }
            out.push(record);
            continue;
        }
        match payload.content() {
            Ok(Content::Hello(_) | Content::Checkpoint(_)) => continue,
            Ok(Content::Text { kind, text }) => {
                record.kind = text_kind_name(kind).unwrap_or("note").to_string();
                record.text = text.text;
                record.replaces = text.replaces.map(|h| h.to_hex());
                record.original_time = text.original_time_ms.map(timefmt::rfc3339);
                record.eta = text.eta.as_deref().map(timefmt::eta_time_of_day);
                record.eta_at = text.eta.as_deref().and_then(timefmt::eta_json);
            }
            Ok(Content::Unknown { .. }) | Err(_) => record.kind = "unknown kind".to_string(),
        }
        out.push(record);
    }
    Ok(())
}

/// The entry a ledger record refers to, if any.
fn ledger_target(record: &LedgerRecord) -> Option<EntryHash> {
    match record {
        LedgerRecord::PromiseKept(r)
        | LedgerRecord::PromiseMissed(r)
        | LedgerRecord::StatusConfirmed(r)
        | LedgerRecord::StatusDisputed(r)
        | LedgerRecord::Ack(r)
        | LedgerRecord::AgreementAccepted(r)
        | LedgerRecord::AgreementDeclined(r)
        | LedgerRecord::AgreementEnded(r) => Some(r.target),
        LedgerRecord::PromiseRenegotiated(r) => Some(r.promise),
        LedgerRecord::SupportReply(r) => Some(r.request),
        _ => None,
    }
}

/// How many of this device's entries the partner has verified, by their latest signed view.
fn partner_has_seen(ctx: &Ctx, partner: &DeviceKey) -> Result<u64> {
    let mut seen = 0;
    for item in ctx.store.log_entries(partner, 0) {
        let (_, bytes) = item?;
        if let Ok(entry) = Entry::from_bytes(&bytes) {
            seen = seen.max(entry.header.partner_seen.count);
        }
    }
    Ok(seen)
}

/// Both logs' user-visible entries, oldest first, with corrections linked.
pub fn records(ctx: &Ctx, paired: &Paired) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    let me = paired.identity.secrets.device_key();
    let seen = match paired.config.partner {
        Some(partner) => Some(partner_has_seen(ctx, &partner.device)?),
        None => Some(0),
    };
    records_of(
        ctx,
        paired,
        &me,
        "me",
        &paired.identity.name,
        seen,
        &mut all,
    )?;
    if let Some(partner) = paired.config.partner {
        let name = partner_name(ctx, paired)?.unwrap_or_else(|| "partner".into());
        records_of(
            ctx,
            paired,
            &partner.device,
            "partner",
            &name,
            None,
            &mut all,
        )?;
    }
    all.sort_by(|a, b| (a.time_ms, a.author, a.seq).cmp(&(b.time_ms, b.author, b.seq)));
    // Only an author can correct their own entry: a "correction" naming the other partner's
    // entry is shown as written but not linked to it.
    let corrections: Vec<(String, &'static str, String)> = all
        .iter()
        .filter_map(|r| {
            r.replaces
                .clone()
                .map(|orig| (orig, r.author, r.id.clone()))
        })
        .collect();
    for (original, author, correction) in corrections {
        if let Some(record) = all
            .iter_mut()
            .find(|r| r.id == original && r.author == author)
        {
            record.corrected_by.push(correction);
        }
    }
    Ok(all)
}

/// Seals and stores entries in this device's log, then wakes a running watcher to push them.
pub(super) fn write_payloads(
    ctx: &Ctx,
    paired: &Paired,
    payloads: Vec<(Class, Payload)>,
) -> Result<Vec<Entry>> {
    if let Some(at) = ctx.store.left_at()? {
        bail!(
            "you left this space on {}; nothing more is written to it (your copy stays readable)",
            timefmt::short(at)
        );
    }
    let nonces: Vec<[u8; 24]> = (0..payloads.len())
        .map(|_| random())
        .collect::<Result<_>>()?;
    let mut nonces = nonces.into_iter();
    let entries = ctx
        .store
        .append_own(&paired.writer(), payloads, timefmt::now_ms(), || {
            nonces.next().unwrap_or([0; 24])
        })?;
    ctx.wrote();
    Ok(entries)
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
    let original = records(ctx, &paired)?
        .into_iter()
        .find(|r| r.id == hash.to_hex())
        .ok_or_else(|| {
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
    let mut all = records(ctx, &paired)?;
    if let Some(limit) = limit {
        let skip = all.len().saturating_sub(limit);
        all.drain(..skip);
    }
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
/// earlier lines or change colours) become visible escapes; line breaks become "⏎ ".
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("⏎ "),
            '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
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
        let Ok(Content::Text { kind, text }) = jsonl[0].content() else {
            panic!()
        };
        assert_eq!(text_kind_name(kind), Some("checkin"));
        assert_eq!(text.original_time_ms, Some(1_714_552_200_000));
        assert!(parse_import("{\"text\":\"a\",\"kind\":\"diary\"}").is_err());
        assert!(parse_import("{\"nope\":1}").is_err());
    }
}
