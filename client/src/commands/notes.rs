//! `candor note …`: shared notes both partners edit, merged by `candor_shared::notes`.
//!
//! This module only drives: it feeds the note-edit records of both logs into
//! [`NoteDoc`]s, keeps one snapshot per note in the store's `notes` tree (with how far each log
//! was fed, so opening a note applies only entries that arrived since), and writes this
//! device's edits as entries. Merging, checks of partner bytes and history are in `shared/`.

use super::log::{partner_name, printable, write_payloads};
use super::{Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::entry::{Class, Entry};
use candor_shared::notes::{
    self, summarize, templates, Applied, LocalEdit, NoteDoc, NoteEdit, NoteId, NoteInput, NoteView,
};
use candor_shared::payload::Payload;
use candor_shared::DeviceKey;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// One note command at a time in this process (a running `sync --watch` serves several at
/// once): two edits built from the same snapshot would reuse one change number.
static NOTES: Mutex<()> = Mutex::new(());

/// The notes of this device, opened from their snapshots and brought up to date. Reading uses
/// each note's [`NoteView`] (stored at the front of its snapshot); the Automerge document is
/// loaded only for notes that receive new entries or are edited.
struct Book {
    views: BTreeMap<NoteId, NoteView>,
    docs: BTreeMap<NoteId, NoteDoc>,
    changed: BTreeSet<NoteId>,
    scanned: Vec<(DeviceKey, u64)>,
}

fn authors(paired: &Paired) -> Vec<DeviceKey> {
    std::iter::once(paired.identity.secrets.device_key())
        .chain(paired.config.partner.map(|p| p.device))
        .collect()
}

/// The note-edit records of `author`'s log from `from_seq`, decrypted (found through the read
/// model's notes index, so no other entry is read); and the log's length.
fn note_inputs(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    from_seq: u64,
) -> Result<(Vec<NoteInput>, u64)> {
    ctx.reader(paired)?; // brings the notes index up to date
    let mut inputs = Vec::new();
    let end = ctx.store.head(author)?.count.max(from_seq);
    for seq in ctx.store.note_edit_seqs(author, from_seq)? {
        let Some(item) = ctx.store.log_entries(author, seq).next() else {
            continue;
        };
        let (_, bytes) = item?;
        let entry = Entry::from_bytes(&bytes)?;
        let Some(payload) = entry.open_readable(&paired.key)? else {
            continue;
        };
        if let Ok(Some(edit)) = NoteEdit::from_payload(&payload) {
            inputs.push(NoteInput {
                id: entry.hash,
                author: *author,
                seq,
                time_ms: entry.header.time_ms,
                edit,
            });
        }
    }
    Ok((inputs, end))
}

impl Book {
    /// Reads every note's view and applies the note entries that arrived since the snapshots.
    fn open(ctx: &Ctx, paired: &Paired) -> Result<Book> {
        let mut book = Book {
            views: BTreeMap::new(),
            docs: BTreeMap::new(),
            changed: BTreeSet::new(),
            scanned: Vec::new(),
        };
        for note in ctx.store.note_ids()? {
            if let Some(bytes) = ctx.store.note_snapshot(&note)? {
                let view = NoteView::read(&bytes).with_context(|| {
                    format!("note {}: the local snapshot is damaged", note.to_hex())
                })?;
                book.views.insert(note, view);
                if !NoteView::is_current(&bytes) {
                    // Written by an older version: store it again with its conflicts.
                    book.doc(ctx, note)?;
                    book.changed.insert(note);
                }
            }
        }
        let mut new_inputs: BTreeMap<NoteId, Vec<NoteInput>> = BTreeMap::new();
        for author in authors(paired) {
            let from = ctx.store.notes_scanned(&author)?;
            let (inputs, end) = note_inputs(ctx, paired, &author, from)?;
            for input in inputs {
                new_inputs.entry(input.edit.note).or_default().push(input);
            }
            if end != from {
                book.scanned.push((author, end));
            }
        }
        for (note, inputs) in new_inputs {
            let doc = book.doc(ctx, note)?;
            if doc
                .apply_all(&inputs)
                .iter()
                .any(|(_, applied)| *applied != Applied::Duplicate)
            {
                book.changed.insert(note);
            }
        }
        book.save(ctx)?;
        Ok(book)
    }

    /// The note's document, loaded from its snapshot (or new) on first use.
    fn doc(&mut self, ctx: &Ctx, note: NoteId) -> Result<&mut NoteDoc> {
        use std::collections::btree_map::Entry as Slot;
        Ok(match self.docs.entry(note) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => slot.insert(match ctx.store.note_snapshot(&note)? {
                Some(bytes) => NoteDoc::load(&bytes).with_context(|| {
                    format!("note {}: the local snapshot is damaged", note.to_hex())
                })?,
                None => NoteDoc::new(),
            }),
        })
    }

    /// Stores the snapshots of changed notes and how far the logs were fed, in one batch.
    fn save(&mut self, ctx: &Ctx) -> Result<()> {
        if self.changed.is_empty() && self.scanned.is_empty() {
            return Ok(());
        }
        let mut snapshots = Vec::new();
        for id in &self.changed {
            if let Some(doc) = self.docs.get_mut(id) {
                snapshots.push((*id, doc.snapshot()));
                self.views.insert(*id, doc.view());
            }
        }
        ctx.store.set_note_snapshots(&snapshots, &self.scanned)?;
        self.changed.clear();
        self.scanned.clear();
        Ok(())
    }

    /// The note called `name` (or whose id starts with it).
    fn find(&self, name: &str) -> Result<NoteId> {
        let wanted = notes::normalize_name(name);
        let by_name: Vec<NoteId> = self
            .views
            .iter()
            .filter(|(_, v)| {
                v.name
                    .as_deref()
                    .is_some_and(|n| notes::normalize_name(n) == wanted)
            })
            .map(|(id, _)| *id)
            .collect();
        match by_name.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            _ => bail!(
                "{} notes are called {name:?}; give the start of its id instead (see `candor note list`)",
                by_name.len()
            ),
        }
        let prefix = name.trim().to_ascii_lowercase();
        if prefix.len() >= 4 && prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            let by_id: Vec<NoteId> = self
                .views
                .keys()
                .filter(|id| id.to_hex().starts_with(&prefix))
                .copied()
                .collect();
            if let [one] = by_id.as_slice() {
                return Ok(*one);
            }
        }
        bail!("no note is called {name:?} (see `candor note list`, or `candor note new {name}`)")
    }

    fn view(&self, note: &NoteId) -> Result<&NoteView> {
        self.views
            .get(note)
            .ok_or_else(|| anyhow!("note {} is not on this device", note.to_hex()))
    }

    /// A fresh id for a new note called `name`.
    fn new_id(&self, name: &str) -> NoteId {
        (0..)
            .map(|attempt| NoteId::for_name(name, attempt))
            .find(|id| !self.views.contains_key(id))
            .unwrap_or(NoteId::for_name(name, u32::MAX))
    }

    /// Makes this device's edit of `note` and writes it to the log as one entry (or several
    /// parts if very large), then stores the note's snapshot.
    fn write(
        &mut self,
        ctx: &Ctx,
        paired: &Paired,
        note: NoteId,
        base: Option<&[automerge_heads::Hash]>,
        edit: &LocalEdit<'_>,
    ) -> Result<Option<usize>> {
        let me = paired.identity.secrets.device_key();
        let now = timefmt::now_ms();
        let doc = self.doc(ctx, note)?;
        let Some(bytes) = doc.edit(&me, now, base, edit)? else {
            return Ok(None);
        };
        let name = doc.name().unwrap_or_default();
        let payloads: Vec<(Class, Payload)> = NoteEdit::split(note, &name, &bytes)?
            .into_iter()
            .map(|part| (Class::Shared, part.to_payload()))
            .collect();
        let parts = payloads.len();
        write_payloads(ctx, paired, payloads)?;
        // The log was fed up to its head before this edit; the new entries are in the document.
        let head = ctx.store.head(&me)?.count;
        self.scanned.retain(|(a, _)| *a != me);
        self.scanned.push((me, head));
        self.changed.insert(note);
        self.save(ctx)?;
        Ok(Some(parts))
    }
}

/// Change hashes as the hidden `--base` option and `show --json` spell them.
mod automerge_heads {
    pub use candor_shared::notes::ChangeHash as Hash;

    pub fn to_string(heads: &[Hash]) -> String {
        heads
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse(text: &str) -> anyhow::Result<Vec<Hash>> {
        text.split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                h.parse()
                    .map_err(|_| anyhow::anyhow!("--base: {h:?} is not a change hash"))
            })
            .collect()
    }
}

fn who(paired: &Paired, author: &DeviceKey) -> &'static str {
    if *author == paired.identity.secrets.device_key() {
        "me"
    } else {
        "partner"
    }
}

fn name_of(ctx: &Ctx, paired: &Paired, author: &DeviceKey) -> Result<String> {
    Ok(if who(paired, author) == "me" {
        paired.identity.name.clone()
    } else {
        partner_name(ctx, paired)?.unwrap_or_else(|| "partner".into())
    })
}

/// The display name of each note author's Automerge actor.
fn actor_names(ctx: &Ctx, paired: &Paired) -> Result<BTreeMap<Vec<u8>, String>> {
    authors(paired)
        .into_iter()
        .map(|a| {
            Ok((
                notes::actor_of(&a).to_bytes().to_vec(),
                name_of(ctx, paired, &a)?,
            ))
        })
        .collect()
}

/// The note as a person reads it: conflicts shown as both versions under their authors' names.
fn shown_text(view: &NoteView, names: &BTreeMap<Vec<u8>, String>) -> String {
    view.rendered(|actor| {
        names
            .get(actor)
            .cloned()
            .unwrap_or_else(|| "another device".into())
    })
}

fn conflicts_json(view: &NoteView, names: &BTreeMap<Vec<u8>, String>) -> Value {
    Value::Array(
        view.conflicts
            .iter()
            .map(|c| {
                json!({
                    "versions": c.versions.iter().map(|v| json!({
                        "author_name": names.get(&v.actor),
                        "text": v.text,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `word` as a shell would read it back: as is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,/".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn conflict_note(count: usize) -> String {
    format!(
        "this note has {} to resolve: both of you changed the same passage at once. \
         `candor note edit NAME` shows both versions; keep one (or write a new one) and remove \
         the marker lines",
        if count == 1 {
            "a conflict".to_string()
        } else {
            format!("{count} conflicts")
        }
    )
}

/// A note's text made safe for a terminal: line breaks and tabs kept, other control characters
/// (which could rewrite the screen) shown as escapes.
fn printable_block(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(printable)
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn valid_name(name: &str) -> Result<&str> {
    notes::valid_name(name).map_err(|e| anyhow!(e))
}

fn read_text(ctx: &Ctx, file: &std::path::Path) -> Result<String> {
    let text = if file.as_os_str() == "-" {
        match &ctx.stdin {
            Some(text) => text.clone(),
            None => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .context("reading stdin")?;
                s
            }
        }
    } else {
        let path = ctx.path(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
    };
    if text.len() > notes::MAX_TEXT_BYTES {
        bail!(
            "the text is {} bytes; a note holds at most {} (split it into several notes)",
            text.len(),
            notes::MAX_TEXT_BYTES
        );
    }
    Ok(text)
}

fn written(parts: Option<usize>) -> &'static str {
    match parts {
        None => "no changes",
        Some(1) => "saved",
        Some(_) => "saved (a large edit, written as several parts)",
    }
}

/// `candor note list`.
pub fn list(ctx: &Ctx, all: bool, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let book = Book::open(ctx, &paired)?;
    let names = actor_names(ctx, &paired)?;
    let mut rows: Vec<(String, &NoteId, &NoteView)> = book
        .views
        .iter()
        .filter(|(_, v)| all || !v.archived)
        .map(|(id, v)| (v.name.clone().unwrap_or_else(|| "(unnamed)".into()), id, v))
        .collect();
    rows.sort_by_key(|(name, id, _)| (notes::normalize_name(name), **id));
    if json_out {
        let items: Vec<Value> = rows
            .iter()
            .map(|(name, id, d)| {
                json!({
                    "id": id.to_hex(),
                    "name": name,
                    "archived": d.archived,
                    "chars": shown_text(d, &names).chars().count(),
                    "invalid_edits": d.invalid.len(),
                    "conflicts": d.conflicts.len(),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        out.line("No shared notes yet. `candor note new needs --template needs` starts one.");
    }
    for (name, id, d) in rows {
        out.line(format!(
            "{}  {:<24}  {:>6} chars{}{}",
            &id.to_hex()[..8],
            printable(&name),
            shown_text(d, &names).chars().count(),
            if d.archived { "  [archived]" } else { "" },
            match d.conflicts.len() {
                0 => String::new(),
                1 => "  [conflict to resolve]".into(),
                n => format!("  [{n} conflicts to resolve]"),
            }
        ));
    }
    Ok(())
}

/// `candor note show`.
pub fn show(ctx: &Ctx, name: &str, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let book = Book::open(ctx, &paired)?;
    let id = book.find(name)?;
    let doc = book.view(&id)?;
    let names = actor_names(ctx, &paired)?;
    let text = &shown_text(doc, &names);
    if json_out {
        let invalid: Vec<Value> = doc
            .invalid
            .iter()
            .map(|i| {
                json!({
                    "id": i.id.to_hex(),
                    "author": who(&paired, &i.author),
                    "time": timefmt::rfc3339(i.time_ms),
                    "reason": i.reason,
                })
            })
            .collect();
        let item = json!({
            "id": id.to_hex(),
            "name": doc.name,
            "archived": doc.archived,
            "text": text,
            "heads": automerge_heads::to_string(&doc.change_hashes()),
            "waiting_edits": doc.pending.len(),
            "invalid_edits": invalid,
            "conflicts": conflicts_json(doc, &names),
        });
        out.line(serde_json::to_string_pretty(&item)?);
        return Ok(());
    }
    out.stdout.push_str(&printable_block(text));
    if !text.is_empty() && !text.ends_with('\n') {
        out.line("");
    }
    if doc.archived {
        out.note("(this note is archived)");
    }
    if !doc.conflicts.is_empty() {
        out.note(conflict_note(doc.conflicts.len()).replace("NAME", &shell_word(name)));
    }
    for i in &doc.invalid {
        out.note(format!(
            "INVALID edit {} by {} ({}), not applied: {}",
            i.id.short(),
            who(&paired, &i.author),
            timefmt::short(i.time_ms),
            i.reason
        ));
    }
    if !doc.pending.is_empty() {
        out.note(format!(
            "{} edit(s) are waiting for the rest of their parts; sync again",
            doc.pending.len()
        ));
    }
    Ok(())
}

/// `candor note new`.
pub fn new(ctx: &Ctx, name: &str, template: Option<&str>, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let name = valid_name(name)?;
    let text = match template {
        Some(t) => Some(
            templates::template(t)
                .ok_or_else(|| anyhow!("no template {t:?}: use {}", templates::NAMES.join(", ")))?,
        ),
        None => None,
    };
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let mut book = Book::open(ctx, &paired)?;
    if book.find(name).is_ok() {
        bail!("a note called {name:?} exists already: `candor note edit {name}` changes it");
    }
    let id = book.new_id(name);
    let edit = LocalEdit {
        text,
        name: Some(name),
        ..LocalEdit::default()
    };
    book.write(ctx, &paired, id, None, &edit)?;
    out.line(format!(
        "created note {name:?} ({}){}",
        &id.to_hex()[..8],
        template
            .map(|t| format!(" from the {t} template"))
            .unwrap_or_default()
    ));
    Ok(())
}

/// `candor note set`.
pub fn set(
    ctx: &Ctx,
    name: &str,
    file: &std::path::Path,
    base: Option<&str>,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let text = read_text(ctx, file)?;
    if notes::conflict::has_markers(&text) {
        bail!(
            "the text still has a conflict's marker lines ({}…, {}); keep one version (or \
             write a new one), remove the marker lines and save again",
            notes::conflict::OPEN.trim_end(),
            notes::conflict::CLOSE
        );
    }
    let base = base.map(automerge_heads::parse).transpose()?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let mut book = Book::open(ctx, &paired)?;
    let (id, created) = match book.find(name) {
        Ok(id) => (id, None),
        Err(_) => {
            let name = valid_name(name)?;
            (book.new_id(name), Some(name))
        }
    };
    let edit = LocalEdit {
        text: Some(&text),
        name: created,
        ..LocalEdit::default()
    };
    let parts = book.write(ctx, &paired, id, base.as_deref(), &edit)?;
    out.line(format!(
        "{} note {name:?}: {}",
        if created.is_some() {
            "created"
        } else {
            "updated"
        },
        written(parts)
    ));
    Ok(())
}

/// `candor note rename`.
pub fn rename(ctx: &Ctx, name: &str, new_name: &str, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let new_name = valid_name(new_name)?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let mut book = Book::open(ctx, &paired)?;
    let id = book.find(name)?;
    if book.find(new_name).is_ok_and(|other| other != id) {
        bail!("another note is already called {new_name:?}");
    }
    let edit = LocalEdit {
        name: Some(new_name),
        ..LocalEdit::default()
    };
    book.write(ctx, &paired, id, None, &edit)?;
    out.line(format!("renamed {name:?} to {new_name:?}"));
    Ok(())
}

/// `candor note archive`.
pub fn archive(ctx: &Ctx, name: &str, restore: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let mut book = Book::open(ctx, &paired)?;
    let id = book.find(name)?;
    if book.view(&id)?.archived != restore {
        bail!(
            "{name:?} is {}",
            if restore {
                "not archived"
            } else {
                "already archived"
            }
        );
    }
    let edit = LocalEdit {
        archived: Some(!restore),
        ..LocalEdit::default()
    };
    book.write(ctx, &paired, id, None, &edit)?;
    out.line(if restore {
        format!("restored {name:?}")
    } else {
        format!("archived {name:?}; `candor note archive {name} --restore` brings it back")
    });
    Ok(())
}

/// `candor note history`.
pub fn history(ctx: &Ctx, name: &str, json_out: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let _one = NOTES.lock().unwrap_or_else(|p| p.into_inner());
    let book = Book::open(ctx, &paired)?;
    let id = book.find(name)?;
    let mut inputs = Vec::new();
    for author in authors(&paired) {
        let (found, _) = note_inputs(ctx, &paired, &author, 0)?;
        inputs.extend(found.into_iter().filter(|i| i.edit.note == id));
    }
    let refused: BTreeMap<_, String> = book
        .view(&id)?
        .invalid
        .iter()
        .map(|i| (i.id, i.reason.clone()))
        .collect();
    let in_conflict: BTreeSet<[u8; 32]> = book
        .view(&id)?
        .conflicts
        .iter()
        .flat_map(|c| c.changes.iter().copied())
        .collect();
    let mut edits = summarize(&inputs);
    for edit in &mut edits {
        if let Some(reason) = refused.get(&edit.id) {
            edit.invalid.get_or_insert_with(|| reason.clone());
        }
    }
    let names: BTreeMap<DeviceKey, String> = authors(&paired)
        .into_iter()
        .map(|a| name_of(ctx, &paired, &a).map(|n| (a, n)))
        .collect::<Result<_>>()?;
    if json_out {
        let items: Vec<Value> = edits
            .iter()
            .map(|e| {
                json!({
                    "id": e.id.to_hex(),
                    "author": who(&paired, &e.author),
                    "author_name": names.get(&e.author),
                    "time": timefmt::rfc3339(e.time_ms),
                    "inserted": e.inserted,
                    "deleted": e.deleted,
                    "renamed": e.renamed,
                    "archived": e.archived,
                    "invalid": e.invalid,
                    "conflict": e.change.is_some_and(|c| in_conflict.contains(&c)),
                })
            })
            .collect();
        out.line(serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    for e in &edits {
        let mut what = Vec::new();
        if e.inserted > 0 || e.deleted > 0 {
            what.push(format!("+{} -{} chars", e.inserted, e.deleted));
        }
        if let Some(new) = &e.renamed {
            what.push(format!("named it {:?}", printable(new)));
        }
        match e.archived {
            Some(true) => what.push("archived it".into()),
            Some(false) => what.push("restored it".into()),
            None => {}
        }
        if what.is_empty() {
            what.push("no change to the text".into());
        }
        let mut line = format!(
            "{}  {:<12}  {}",
            timefmt::short(e.time_ms),
            printable(names.get(&e.author).map_or("?", String::as_str)),
            what.join(", ")
        );
        if let Some(reason) = &e.invalid {
            line.push_str(&format!("  [INVALID, not applied: {reason}]"));
        }
        if e.change.is_some_and(|c| in_conflict.contains(&c)) {
            line.push_str("  [made at the same time as the other's edit: conflict to resolve]");
        }
        out.line(line);
    }
    Ok(())
}
