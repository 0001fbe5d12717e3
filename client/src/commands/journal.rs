//! `candor journal add | edit | list | search | backup | prompt`: the private journal.
//!
//! Records live in the local `journal` tree (sealed at rest). With backup on they are also
//! appended to this device's log, sealed under keys derived from the personal journal key, with
//! the shared class in the public header: the relay cannot tell them from shared entries, and
//! the partner's device keeps them as private entries it cannot open. Nothing here needs the
//! space key unless backup is on.

use super::{random, Ctx, Paired};
use crate::output::Output;
use crate::store::StoredJournal;
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::entry::{Class, Entry};
use candor_shared::journal::{self, JournalRecord, JournalView, MAX_JOURNAL_TEXT};
use candor_shared::keys::JournalKey;
use serde_json::json;
use std::path::Path;

/// The words of an add or edit: TEXT, `-` (standard input) or `--file F`.
pub fn input_text(ctx: &Ctx, text: &[String], file: Option<&Path>) -> Result<String> {
    let from_stdin = || {
        ctx.stdin
            .clone()
            .ok_or_else(|| anyhow!("standard input was not read"))
    };
    let words = match file {
        Some(path) if path.as_os_str() == "-" => from_stdin()?,
        Some(path) => std::fs::read_to_string(ctx.path(path))
            .with_context(|| format!("reading {}", path.display()))?,
        None if text.len() == 1 && text[0] == "-" => from_stdin()?,
        None => text.join(" "),
    };
    let words = words.trim_end_matches(['\n', '\r']).to_string();
    if words.trim().is_empty() {
        bail!("the journal entry is empty");
    }
    if words.len() > MAX_JOURNAL_TEXT {
        bail!(
            "the journal entry has {} bytes; the limit is {MAX_JOURNAL_TEXT}",
            words.len()
        );
    }
    Ok(words)
}

/// Journal records this device's own log holds (backed up entries), opened with the journal
/// key.
fn from_own_log(ctx: &Ctx, paired: &Paired, key: &JournalKey) -> Result<Vec<JournalRecord>> {
    let me = paired.identity.secrets.device_key();
    let mut out = Vec::new();
    // The read model's journal index names the own entries that do not open under the space key.
    ctx.reader(paired)?; // brings the journal index up to date
    for seq in ctx.store.private_own_seqs()? {
        let Some(item) = ctx.store.log_entries(&me, seq).next() else {
            continue;
        };
        let (_, bytes) = item?;
        let entry = Entry::from_bytes(&bytes).with_context(|| format!("own entry {seq}"))?;
        if let Some(payload) = open_journal_entry(&entry, key) {
            if let Some(record) = JournalRecord::from_payload(&payload)? {
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// Opens one of this person's journal entries from the log, if it is one.
pub fn open_journal_entry(
    entry: &Entry,
    key: &JournalKey,
) -> Option<candor_shared::payload::Payload> {
    if entry.header.class != Class::Shared {
        return None;
    }
    entry.open_with(&key.entry_key(&entry.header.nonce)).ok()
}

/// Every journal entry, oldest first: the local records and any found in the own log.
pub fn views(ctx: &Ctx) -> Result<Vec<JournalView>> {
    let mut records: Vec<JournalRecord> = ctx
        .store
        .journal_records()?
        .into_iter()
        .map(|s| s.record)
        .collect();
    if ctx.store.space_config()?.is_some() {
        let paired = ctx.paired()?;
        let key = ctx.home.journal_key()?;
        records.extend(from_own_log(ctx, &paired, &key)?);
    }
    Ok(journal::fold(records))
}

/// Uploads journal records not yet backed up, if backup is on and this device is in a space.
/// Returns how many were appended to the log.
pub fn upload_pending(ctx: &Ctx) -> Result<usize> {
    if !ctx.store.journal_backup()? || ctx.store.space_config()?.is_none() {
        return Ok(0);
    }
    if ctx.store.left_at()?.is_some() {
        return Ok(0);
    }
    let paired = ctx.paired()?;
    let key = ctx.home.journal_key()?;
    let pending: Vec<StoredJournal> = ctx
        .store
        .journal_records()?
        .into_iter()
        .filter(|s| s.backed_up.is_none())
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    let items = pending
        .iter()
        .map(|s| {
            let key = &key;
            (
                Class::Shared,
                s.record.to_payload(),
                Box::new(move |n: &[u8; 24]| key.entry_key(n)) as crate::store::EntryKeyFn<'_>,
            )
        })
        .collect();
    let entries = ctx.writer(&paired).write_sealed(items)?;
    // A crash here uploads the same records again next time; they fold into one by their id.
    for (stored, entry) in pending.into_iter().zip(&entries) {
        ctx.store.put_journal(&StoredJournal {
            record: stored.record,
            backed_up: Some(entry.hash),
        })?;
    }
    Ok(entries.len())
}

fn save(ctx: &Ctx, record: JournalRecord) -> Result<&'static str> {
    // Make sure the journal key exists before anything depends on it.
    ctx.home.journal_key()?;
    ctx.store.put_journal(&StoredJournal {
        record,
        backed_up: None,
    })?;
    Ok(if upload_pending(ctx)? > 0 {
        "kept on this device and sealed for backup (goes to the relay at the next sync)"
    } else if ctx.store.journal_backup()? {
        "kept on this device (backup is on: it goes to the relay once this device is in a space)"
    } else {
        "kept on this device only"
    })
}

/// `candor journal add`.
pub fn add(ctx: &Ctx, text: &[String], file: Option<&Path>, out: &mut Output) -> Result<()> {
    ctx.identity()?;
    let words = input_text(ctx, text, file)?;
    let record = JournalRecord {
        id: random()?,
        time_ms: timefmt::now_ms(),
        text: words,
        replaces: None,
    };
    let id = hex::encode(record.id);
    let where_ = save(ctx, record)?;
    out.line(format!("journal entry {id} written, {where_}"));
    Ok(())
}

/// `candor journal edit`.
pub fn edit(
    ctx: &Ctx,
    id: &str,
    text: &[String],
    file: Option<&Path>,
    out: &mut Output,
) -> Result<()> {
    ctx.identity()?;
    let id = id.trim().to_ascii_lowercase();
    if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("a journal id is hexadecimal: give at least 4 of its characters (see `candor journal list`)");
    }
    let all = views(ctx)?;
    let found: Vec<&JournalView> = all.iter().filter(|v| v.id.starts_with(&id)).collect();
    let view = match found.as_slice() {
        [] => bail!("no journal entry has an id starting with {id:?} (see `candor journal list`)"),
        [one] => *one,
        more => bail!(
            "{} journal entries have ids starting with {id:?}; give more characters",
            more.len()
        ),
    };
    let words = input_text(ctx, text, file)?;
    let root: [u8; 16] = hex::decode(&view.id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("journal id {} is malformed", view.id))?;
    let record = JournalRecord {
        id: random()?,
        time_ms: timefmt::now_ms().max(view.edited_ms.unwrap_or(view.time_ms)),
        text: words,
        replaces: Some(root),
    };
    let where_ = save(ctx, record)?;
    out.line(format!(
        "journal entry {} edited (the earlier version is kept), {where_}",
        view.id
    ));
    Ok(())
}

fn print(views: &[JournalView], json_out: bool, out: &mut Output) {
    if json_out {
        let items: Vec<_> = views
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
            .collect();
        out.line(serde_json::Value::Array(items).to_string());
        return;
    }
    if views.is_empty() {
        out.line("no journal entries");
        return;
    }
    for v in views {
        let edited = v
            .edited_ms
            .map(|ms| format!(" (edited {})", timefmt::short(ms)))
            .unwrap_or_default();
        out.line(format!(
            "{}  {}{edited}\n  {}",
            timefmt::short(v.time_ms),
            &v.id[..12],
            v.text.replace('\n', "\n  ")
        ));
    }
}

/// Parses a `--since` date.
pub fn since_ms(since: Option<&str>) -> Result<u64> {
    match since {
        None => Ok(0),
        Some(text) => timefmt::parse(text)
            .ok_or_else(|| anyhow!("--since {text:?}: use a date like 2026-12-01 or RFC 3339")),
    }
}

/// `candor journal list`.
pub fn list(ctx: &Ctx, json_out: bool, since: Option<&str>, out: &mut Output) -> Result<()> {
    ctx.identity()?;
    let from = since_ms(since)?;
    let views: Vec<JournalView> = views(ctx)?
        .into_iter()
        .filter(|v| v.time_ms >= from)
        .collect();
    print(&views, json_out, out);
    Ok(())
}

/// `candor journal search`.
pub fn search(ctx: &Ctx, words: &[String], json_out: bool, out: &mut Output) -> Result<()> {
    ctx.identity()?;
    let views: Vec<JournalView> = views(ctx)?
        .into_iter()
        .filter(|v| journal::matches(v, words))
        .collect();
    print(&views, json_out, out);
    Ok(())
}

/// `candor journal backup on|off`.
pub fn backup(ctx: &Ctx, on: bool, out: &mut Output) -> Result<()> {
    ctx.identity()?;
    ctx.store.set_journal_backup(on)?;
    if !on {
        out.line(
            "journal backup is off: new entries stay on this device only (entries already at \
             the relay stay there, sealed; the relay cannot read them)",
        );
        return Ok(());
    }
    let uploaded = upload_pending(ctx)?;
    if ctx.store.space_config()?.is_none() {
        out.line("journal backup is on: entries go to the relay once this device is in a space");
    } else {
        out.line(format!(
            "journal backup is on: {uploaded} earlier entr{} sealed for the relay (sent at the \
             next sync); your partner's device can never open them",
            if uploaded == 1 { "y" } else { "ies" }
        ));
    }
    out.note(
        "to read a backed-up journal on a new device you need a recovery bundle \
         (`candor backup export`), which holds your journal key",
    );
    Ok(())
}

/// `candor journal prompt`.
pub fn prompt(out: &mut Output) -> Result<()> {
    out.line(journal::prompt(u64::from_be_bytes(random()?)));
    Ok(())
}
