//! [`NoteDoc`]: one note's Automerge document, fed with edit records from both logs.

use super::conflict::{self, Conflict};
use super::{actor_of, genesis, words, NoteInput, MAX_PARTS, PART_BYTES};
use crate::{DeviceKey, EntryHash};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    AutoCommit, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT,
};
use serde::{Deserialize, Serialize};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The first bytes of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk type of an uncompressed change (compressed ones, type 2, are refused: their size
/// after inflation is not bounded by their size on the wire).
const CHUNK_CHANGE: u8 = 1;
/// Largest snapshot this code loads (a snapshot is local, but bounded all the same).
const MAX_SNAPSHOT: usize = 64 * 1024 * 1024;
/// How many invalid edits a note remembers for display.
const MAX_INVALID: usize = 200;
/// How many edits may wait (for their other parts or for changes they depend on).
const MAX_PENDING: usize = 1000;
/// Snapshot format version (2 added [`NoteView::conflicts`]; version 1 snapshots still load).
const SNAPSHOT_VERSION: u8 = 2;

/// Errors of the notes engine.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// A snapshot did not decode.
    #[error("the note's snapshot is damaged: {0}")]
    Snapshot(String),
    /// Automerge refused a local operation.
    #[error("the note could not be changed: {0}")]
    Automerge(String),
    /// A change is larger than [`MAX_PARTS`] parts can carry.
    #[error("this edit is too large ({0} bytes of changes); split it into smaller notes")]
    TooLarge(usize),
    /// The heads an edit was based on are not in the document.
    #[error("the version this edit started from is unknown to this note")]
    UnknownBase,
}

/// What feeding one record did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The edit was applied (and maybe others that waited for it).
    Applied,
    /// Already applied before: nothing changed.
    Duplicate,
    /// Kept until its other parts, or the changes it depends on, arrive.
    Waiting,
    /// Refused: shown as invalid, never applied.
    Invalid(String),
}

/// An edit not applied yet: parts being assembled, or a whole change waiting for its
/// dependencies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEdit {
    /// The first part's entry id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// The author's time of the first part (ms).
    pub time_ms: u64,
    /// The seq the next part must have.
    pub next_seq: u64,
    /// How many parts the edit has.
    pub parts: u16,
    /// How many arrived.
    pub received: u16,
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

/// An edit that was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidEdit {
    /// The entry id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// The author's time (ms).
    pub time_ms: u64,
    /// Why it was refused.
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u8,
    view: NoteView,
    doc: Vec<u8>,
}

/// A version 1 snapshot: its view had no conflicts.
#[derive(Deserialize)]
struct SnapshotV1 {
    _version: u8,
    view: NoteViewV1,
    doc: Vec<u8>,
}

#[derive(Deserialize)]
struct NoteViewV1 {
    _text: String,
    _name: Option<String>,
    _archived: bool,
    _heads: Vec<[u8; 32]>,
    pending: Vec<PendingEdit>,
    invalid: Vec<InvalidEdit>,
}

/// What reading a note needs, stored at the front of its snapshot so that showing or listing
/// notes does not load the Automerge document (whose load rebuilds the whole change history).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteView {
    /// The text.
    pub text: String,
    /// The name, if set.
    pub name: Option<String>,
    /// Whether archived.
    pub archived: bool,
    /// The document's heads (change hashes).
    pub heads: Vec<[u8; 32]>,
    /// Edits waiting to apply.
    pub pending: Vec<PendingEdit>,
    /// Edits refused.
    pub invalid: Vec<InvalidEdit>,
    /// Passages both partners changed concurrently and nobody edited since, in text order.
    pub conflicts: Vec<Conflict>,
}

impl NoteView {
    /// Reads the view at the front of a snapshot, without loading the document (except for a
    /// snapshot written before conflicts were recorded: see [`NoteView::is_current`]).
    pub fn read(snapshot: &[u8]) -> Result<NoteView, NoteError> {
        if snapshot.len() > MAX_SNAPSHOT {
            return Err(NoteError::Snapshot("larger than the limit".into()));
        }
        let (version, rest): (u8, _) =
            postcard::take_from_bytes(snapshot).map_err(|e| NoteError::Snapshot(e.to_string()))?;
        match version {
            SNAPSHOT_VERSION => {
                let (view, _) = postcard::take_from_bytes(rest)
                    .map_err(|e| NoteError::Snapshot(e.to_string()))?;
                Ok(view)
            }
            1 => Ok(NoteDoc::load(snapshot)?.view()),
            _ => Err(NoteError::Snapshot(format!("unknown version {version}"))),
        }
    }

    /// Whether a snapshot is in the current format (an older one should be written again).
    pub fn is_current(snapshot: &[u8]) -> bool {
        snapshot.first() == Some(&SNAPSHOT_VERSION)
    }

    /// The text as a person reads it: each conflict's passage replaced by every author's
    /// version under marker lines (see [`conflict::render`]).
    pub fn rendered(&self, name_of: impl Fn(&[u8]) -> String) -> String {
        conflict::render(&self.text, &self.conflicts, name_of)
    }

    /// The heads as change hashes.
    pub fn change_hashes(&self) -> Vec<ChangeHash> {
        self.heads.iter().map(|h| ChangeHash(*h)).collect()
    }
}

/// A change applied since the document was loaded or saved: its bytes and, for edits that came
/// from a log, where they came from (so a change that turns out to break the document can be
/// named and refused).
#[derive(Clone)]
struct Applying {
    from: Option<(EntryHash, DeviceKey, u64)>,
    bytes: Vec<u8>,
}

/// Saves `doc` and checks the bytes load back to the same text: Automerge accepts some
/// malformed changes whose damage only shows when the document is encoded.
fn save_checked(doc: &mut AutoCommit, text: &ObjId) -> Option<Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| {
        let saved = doc.save();
        let loaded = AutoCommit::load(&saved).ok()?;
        let again = text_obj(&loaded).ok()?;
        (loaded.text(&again).ok()? == doc.text(text).ok()?).then_some(saved)
    }))
    .ok()
    .flatten()
}

/// One note: its document, the edits waiting to apply, and those refused.
pub struct NoteDoc {
    doc: AutoCommit,
    text: ObjId,
    /// The document bytes this value was loaded from, and the changes applied since: enough to
    /// rebuild the document if Automerge fails half-way through a change.
    base: Vec<u8>,
    since_base: Vec<Applying>,
    pending: Vec<PendingEdit>,
    invalid: Vec<InvalidEdit>,
}

fn text_obj(doc: &AutoCommit) -> Result<ObjId, NoteError> {
    match doc.get(ROOT, "text") {
        Ok(Some((Value::Object(ObjType::Text), id))) => Ok(id),
        _ => Err(NoteError::Snapshot("the note has no text object".into())),
    }
}

impl Default for NoteDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl NoteDoc {
    /// An empty note (just the shared genesis).
    pub fn new() -> Self {
        let doc = genesis();
        let text = text_obj(&doc).unwrap_or(ObjId::Root);
        NoteDoc {
            doc,
            text,
            base: Vec::new(),
            since_base: Vec::new(),
            pending: Vec::new(),
            invalid: Vec::new(),
        }
    }

    /// Loads a snapshot made by [`NoteDoc::snapshot`].
    pub fn load(snapshot: &[u8]) -> Result<Self, NoteError> {
        if snapshot.len() > MAX_SNAPSHOT {
            return Err(NoteError::Snapshot("larger than the limit".into()));
        }
        let snap: Snapshot = match snapshot.first() {
            Some(&SNAPSHOT_VERSION) => {
                postcard::from_bytes(snapshot).map_err(|e| NoteError::Snapshot(e.to_string()))?
            }
            Some(1) => {
                let old: SnapshotV1 = postcard::from_bytes(snapshot)
                    .map_err(|e| NoteError::Snapshot(e.to_string()))?;
                Snapshot {
                    version: 1,
                    view: NoteView {
                        pending: old.view.pending,
                        invalid: old.view.invalid,
                        ..NoteView::default()
                    },
                    doc: old.doc,
                }
            }
            _ => return Err(NoteError::Snapshot("unknown version".into())),
        };
        let doc = catch_unwind(|| AutoCommit::load(&snap.doc))
            .map_err(|_| NoteError::Snapshot("Automerge failed to load it".into()))?
            .map_err(|e| NoteError::Snapshot(e.to_string()))?;
        let text = text_obj(&doc)?;
        Ok(NoteDoc {
            doc,
            text,
            base: snap.doc,
            since_base: Vec::new(),
            pending: snap.view.pending,
            invalid: snap.view.invalid,
        })
    }

    /// Everything needed to reopen the note without replaying its history: the compacted
    /// document plus the edits still waiting and those refused.
    pub fn snapshot(&mut self) -> Vec<u8> {
        let from_logs = self.since_base.iter().any(|a| a.from.is_some());
        let saved = if from_logs {
            save_checked(&mut self.doc, &self.text)
        } else {
            catch_unwind(AssertUnwindSafe(|| self.doc.save())).ok()
        };
        let doc = match saved {
            Some(doc) => doc,
            None => self.repair(),
        };
        self.base = doc.clone();
        self.since_base.clear();
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            view: self.view(),
            doc,
        };
        postcard::to_stdvec(&snap).unwrap_or_default()
    }

    /// What reading the note needs (see [`NoteView`]).
    pub fn view(&mut self) -> NoteView {
        NoteView {
            text: self.text(),
            name: self.name(),
            archived: self.archived(),
            heads: self.heads().into_iter().map(|h| h.0).collect(),
            pending: self.pending.clone(),
            invalid: self.invalid.clone(),
            conflicts: conflict::find(&mut self.doc, &self.text),
        }
    }

    /// The note's text.
    pub fn text(&self) -> String {
        catch_unwind(AssertUnwindSafe(|| self.doc.text(&self.text)))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Rebuilds the document from its last good bytes, re-applying the changes applied since one
    /// at a time and refusing each one after which the document no longer saves and loads back.
    /// Returns the saved bytes of the repaired document.
    fn repair(&mut self) -> Vec<u8> {
        let applied = std::mem::take(&mut self.since_base);
        let mut good: Vec<Applying> = Vec::new();
        for item in applied {
            let mut trial = good.clone();
            trial.push(item.clone());
            let ok = self.rebuild_from(&trial).is_ok()
                && (item.from.is_none() || save_checked(&mut self.doc, &self.text).is_some());
            if ok {
                good = trial;
            } else if let Some((id, author, time_ms)) = item.from {
                self.refuse(
                    id,
                    author,
                    time_ms,
                    "the change damages the note's document",
                );
            }
        }
        let _ = self.rebuild_from(&good);
        self.since_base = good;
        catch_unwind(AssertUnwindSafe(|| self.doc.save())).unwrap_or_default()
    }

    /// The note's name, if any edit set one.
    pub fn name(&self) -> Option<String> {
        match self.doc.get(ROOT, "name") {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(name) => Some(name.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the note is archived.
    pub fn archived(&self) -> bool {
        matches!(
            self.doc.get(ROOT, "archived"),
            Ok(Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Boolean(true))
        )
    }

    /// The document's current heads (identify this exact version of the note).
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// How many changes the document holds (the genesis included).
    pub fn change_count(&mut self) -> usize {
        self.doc.get_changes(&[]).len()
    }

    /// Edits still waiting to apply.
    pub fn pending(&self) -> &[PendingEdit] {
        &self.pending
    }

    /// Edits refused, oldest first (the latest [`MAX_INVALID`]).
    pub fn invalid(&self) -> &[InvalidEdit] {
        &self.invalid
    }

    /// Makes this device's edit: the new text (diffed against the text at `base`, or the
    /// current text), a new name, or the archive flag. Returns the change's bytes to write to the
    /// log (`None` if nothing changed). `time_ms` is recorded in the change.
    pub fn edit(
        &mut self,
        me: &DeviceKey,
        time_ms: u64,
        base: Option<&[ChangeHash]>,
        edit: &LocalEdit<'_>,
    ) -> Result<Option<Vec<u8>>, NoteError> {
        let am = |e: automerge::AutomergeError| NoteError::Automerge(e.to_string());
        self.doc.set_actor(actor_of(me));
        let isolated = match base {
            Some(heads) if heads != self.doc.get_heads().as_slice() => {
                if heads
                    .iter()
                    .any(|h| self.doc.get_change_by_hash(h).is_none())
                {
                    return Err(NoteError::UnknownBase);
                }
                self.doc.isolate(heads);
                true
            }
            _ => false,
        };
        let result = (|| {
            if let Some(text) = edit.text {
                // Diffed on word boundaries, never letter by letter (see `words`).
                let old = match base {
                    Some(heads) if isolated => self.doc.text_at(&self.text, heads),
                    _ => self.doc.text(&self.text),
                }
                .map_err(am)?;
                for s in words::diff(&old, text).iter().rev() {
                    self.doc
                        .splice_text(&self.text, s.pos, s.delete as isize, &s.insert)
                        .map_err(am)?;
                }
            }
            if let Some(splice) = &edit.splice {
                let len = match base {
                    Some(heads) if isolated => self.doc.length_at(&self.text, heads),
                    _ => self.doc.length(&self.text),
                };
                if splice.pos + splice.delete > len {
                    return Err(NoteError::Automerge(
                        "the splice is outside the text".into(),
                    ));
                }
                self.doc
                    .splice_text(
                        &self.text,
                        splice.pos,
                        splice.delete as isize,
                        splice.insert,
                    )
                    .map_err(am)?;
            }
            if let Some(name) = edit.name {
                self.doc.put(ROOT, "name", name).map_err(am)?;
            }
            if let Some(archived) = edit.archived {
                self.doc.put(ROOT, "archived", archived).map_err(am)?;
            }
            Ok::<(), NoteError>(())
        })();
        if let Err(e) = result {
            self.doc.rollback();
            if isolated {
                self.doc.integrate();
            }
            return Err(e);
        }
        let hash = self
            .doc
            .commit_with(CommitOptions::default().with_time((time_ms / 1000) as i64));
        if isolated {
            self.doc.integrate();
        }
        let Some(hash) = hash else {
            return Ok(None);
        };
        let bytes = self
            .doc
            .get_change_by_hash(&hash)
            .map(|c| c.raw_bytes().to_vec())
            .ok_or_else(|| NoteError::Automerge("the new change is missing".into()))?;
        self.since_base.push(Applying {
            from: None,
            bytes: bytes.clone(),
        });
        Ok(Some(bytes))
    }

    /// Feeds one record of either log. Records of one author must come in that author's log
    /// order; the two authors' records may interleave in any way, and a record may come twice.
    pub fn apply(&mut self, input: &NoteInput) -> Applied {
        let result = self.assemble(input);
        if let Applied::Invalid(reason) = &result {
            self.refuse(input.id, input.author, input.time_ms, reason);
        }
        result
    }

    /// Feeds many records of both logs at once (any arrival order, duplicates allowed), in an
    /// order that respects causality: each author's records in that author's log order, taking
    /// from whichever author's next change has its dependencies present. This is how a device
    /// catches up on a whole history without parking thousands of changes as waiting.
    pub fn apply_all(&mut self, inputs: &[NoteInput]) -> Vec<(EntryHash, Applied)> {
        let mut sorted: Vec<&NoteInput> = inputs.iter().collect();
        sorted.sort_by_key(|i| (i.author, i.seq));
        sorted.dedup_by_key(|i| i.id);
        let mut queues: Vec<std::collections::VecDeque<&NoteInput>> = Vec::new();
        for input in sorted {
            match queues.last_mut() {
                Some(q) if q.back().is_some_and(|last| last.author == input.author) => {
                    q.push_back(input)
                }
                _ => queues.push(std::iter::once(input).collect()),
            }
        }
        let mut results = Vec::with_capacity(inputs.len());
        loop {
            let mut progressed = false;
            for queue in &mut queues {
                while let Some(input) = queue.front() {
                    if !self.ready(input) {
                        break;
                    }
                    results.push((input.id, self.apply(input)));
                    queue.pop_front();
                    progressed = true;
                }
            }
            if !progressed {
                // Only changes whose dependencies are in no log remain: they wait.
                for queue in &mut queues {
                    if let Some(input) = queue.pop_front() {
                        results.push((input.id, self.apply(input)));
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return results;
            }
        }
    }

    /// Whether feeding `input` now would not leave it waiting for a dependency.
    fn ready(&mut self, input: &NoteInput) -> bool {
        if input.edit.parts != 1 {
            return true; // parts are assembled first; a complete edit that cannot apply waits
        }
        match catch_unwind(|| Change::try_from(input.edit.bytes.as_slice())) {
            Ok(Ok(change)) => change
                .deps()
                .iter()
                .all(|d| self.doc.get_change_by_hash(d).is_some()),
            _ => true, // refused when fed
        }
    }

    fn refuse(&mut self, id: EntryHash, author: DeviceKey, time_ms: u64, reason: &str) {
        if self.invalid.iter().any(|i| i.id == id) {
            return;
        }
        self.invalid.push(InvalidEdit {
            id,
            author,
            time_ms,
            reason: reason.to_string(),
        });
        if self.invalid.len() > MAX_INVALID {
            self.invalid.remove(0);
        }
    }

    fn assemble(&mut self, input: &NoteInput) -> Applied {
        let edit = &input.edit;
        if edit.parts == 0 || edit.parts > MAX_PARTS || edit.part >= edit.parts {
            return Applied::Invalid("the edit's part numbers are impossible".into());
        }
        if edit.bytes.len() > PART_BYTES {
            return Applied::Invalid("a part of the edit is larger than the limit".into());
        }
        if edit.parts == 1 {
            return self.apply_change(input.id, input.author, input.time_ms, edit.bytes.clone());
        }
        let open = self
            .pending
            .iter()
            .position(|p| p.author == input.author && p.received < p.parts);
        if let Some(i) = open {
            let p = &self.pending[i];
            if input.seq < p.next_seq && input.seq + u64::from(p.received) >= p.next_seq {
                return Applied::Duplicate; // a part delivered again
            }
        }
        if edit.part == 0 {
            if let Some(i) = open {
                let stale = self.pending.remove(i);
                self.refuse(
                    stale.id,
                    stale.author,
                    stale.time_ms,
                    "an edit whose later parts never came",
                );
            }
            if self.pending.len() >= MAX_PENDING {
                return Applied::Invalid("too many edits are waiting".into());
            }
            self.pending.push(PendingEdit {
                id: input.id,
                author: input.author,
                time_ms: input.time_ms,
                next_seq: input.seq + 1,
                parts: edit.parts,
                received: 1,
                bytes: edit.bytes.clone(),
            });
            return Applied::Waiting;
        }
        let Some(i) = open else {
            return Applied::Invalid("a later part of an edit whose first part is missing".into());
        };
        let p = &mut self.pending[i];
        if p.next_seq != input.seq || p.received != edit.part || p.parts != edit.parts {
            return Applied::Invalid("a part out of place in a multi-part edit".into());
        }
        p.bytes.extend_from_slice(&edit.bytes);
        p.received += 1;
        p.next_seq += 1;
        if p.received < p.parts {
            return Applied::Waiting;
        }
        let done = self.pending.remove(i);
        let result = self.apply_change(done.id, done.author, done.time_ms, done.bytes);
        if let Applied::Invalid(reason) = &result {
            // Recorded under the first part's id.
            self.refuse(done.id, done.author, done.time_ms, reason);
        }
        result
    }

    /// Checks and applies one whole change.
    fn apply_change(
        &mut self,
        id: EntryHash,
        author: DeviceKey,
        time_ms: u64,
        bytes: Vec<u8>,
    ) -> Applied {
        if let Ok(Ok(change)) = catch_unwind(|| Change::try_from(bytes.as_slice())) {
            // Our own edits come back from our log: recognise them before checking them again.
            if self.doc.get_change_by_hash(&change.hash()).is_some() {
                return Applied::Duplicate;
            }
        }
        let change = match self.check(&author, &bytes) {
            Ok(change) => change,
            Err(reason) => return Applied::Invalid(reason),
        };
        let ready = change
            .deps()
            .iter()
            .all(|d| self.doc.get_change_by_hash(d).is_some());
        if !ready {
            if self
                .pending
                .iter()
                .any(|p| p.received == p.parts && p.bytes == bytes)
            {
                return Applied::Duplicate;
            }
            if self.pending.len() >= MAX_PENDING {
                return Applied::Invalid("too many edits are waiting".into());
            }
            self.pending.push(PendingEdit {
                id,
                author,
                time_ms,
                next_seq: 0,
                parts: 1,
                received: 1,
                bytes,
            });
            return Applied::Waiting;
        }
        if let Err(reason) = self.apply_checked(change) {
            return Applied::Invalid(reason);
        }
        self.since_base.push(Applying {
            from: Some((id, author, time_ms)),
            bytes,
        });
        self.apply_waiting();
        Applied::Applied
    }

    /// Applies whole changes that were waiting for dependencies, as long as any becomes ready.
    fn apply_waiting(&mut self) {
        loop {
            if !self.pending.iter().any(|p| p.received == p.parts) {
                return;
            }
            let ready = self.pending.iter().position(|p| {
                p.received == p.parts
                    && Change::try_from(p.bytes.as_slice()).is_ok_and(|c| {
                        c.deps()
                            .iter()
                            .all(|d| self.doc.get_change_by_hash(d).is_some())
                    })
            });
            let Some(i) = ready else { return };
            let p = self.pending.remove(i);
            match self.check(&p.author, &p.bytes) {
                Ok(change) if self.doc.get_change_by_hash(&change.hash()).is_some() => {}
                Ok(change) => match self.apply_checked(change) {
                    Ok(()) => self.since_base.push(Applying {
                        from: Some((p.id, p.author, p.time_ms)),
                        bytes: p.bytes,
                    }),
                    Err(reason) => self.refuse(p.id, p.author, p.time_ms, &reason),
                },
                Err(reason) => self.refuse(p.id, p.author, p.time_ms, &reason),
            }
        }
    }

    /// Decodes a partner's (or our own) change and checks it may be applied.
    fn check(&self, author: &DeviceKey, bytes: &[u8]) -> Result<Change, String> {
        if bytes.len() > PART_BYTES * usize::from(MAX_PARTS) {
            return Err("the edit is larger than the limit".into());
        }
        if bytes.len() < 9 || bytes[..4] != MAGIC || bytes[8] != CHUNK_CHANGE {
            return Err("not an uncompressed Automerge change".into());
        }
        let change = catch_unwind(|| Change::try_from(bytes))
            .map_err(|_| "the change does not decode".to_string())?
            .map_err(|e| format!("the change does not decode: {e}"))?;
        if *change.actor_id() != actor_of(author) {
            return Err("the change is signed into this log but made by another device".into());
        }
        let expanded = catch_unwind(AssertUnwindSafe(|| change.decode()))
            .map_err(|_| "the change's operations do not decode".to_string())?;
        let text = self.text.to_string();
        for op in &expanded.operations {
            let op = serde_json::to_value(op)
                .map_err(|_| "the change's operations do not decode".to_string())?;
            if !allowed_op(&op, &text) {
                return Err(
                    "the change touches something other than the note's text, name or archive flag"
                        .into(),
                );
            }
        }
        Ok(change)
    }

    /// Applies a checked change; if Automerge fails (or panics) half-way, the document is rebuilt
    /// as it was before.
    fn apply_checked(&mut self, change: Change) -> Result<(), String> {
        let hash = change.hash();
        let doc = &mut self.doc;
        let outcome = catch_unwind(AssertUnwindSafe(|| doc.apply_changes([change])));
        let reason = match outcome {
            Ok(Ok(())) => {
                // Automerge queues a change it cannot apply yet: that must not happen here.
                if self.doc.get_change_by_hash(&hash).is_some() {
                    return Ok(());
                }
                "the change could not be applied".to_string()
            }
            Ok(Err(e)) => format!("the change could not be applied: {e}"),
            Err(_) => "the change could not be applied".to_string(),
        };
        self.rebuild()?;
        Err(reason)
    }

    fn rebuild(&mut self) -> Result<(), String> {
        let applied = self.since_base.clone();
        self.rebuild_from(&applied)
    }

    fn rebuild_from(&mut self, applied: &[Applying]) -> Result<(), String> {
        let mut doc = if self.base.is_empty() {
            genesis()
        } else {
            AutoCommit::load(&self.base).map_err(|e| e.to_string())?
        };
        let changes = applied
            .iter()
            .map(|a| Change::try_from(a.bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        catch_unwind(AssertUnwindSafe(|| doc.apply_changes(changes)))
            .map_err(|_| "the change could not be applied".to_string())?
            .map_err(|e| e.to_string())?;
        self.text = text_obj(&doc).map_err(|e| e.to_string())?;
        self.doc = doc;
        Ok(())
    }
}

/// Whether one operation (in Automerge's JSON form) only inserts or deletes characters of the
/// text, or sets or clears the `name` or `archived` root keys.
fn allowed_op(op: &serde_json::Value, text: &str) -> bool {
    let field = |name: &str| op.get(name);
    let action = field("action").and_then(|a| a.as_str());
    let insert = field("insert").and_then(|i| i.as_bool()).unwrap_or(false);
    let value = field("value");
    match field("obj").and_then(|o| o.as_str()) {
        Some(obj) if obj == text => match action {
            Some("set") => insert && value.is_some_and(|v| v.is_string()),
            Some("del") => !insert,
            _ => false,
        },
        Some("_root") => {
            let key = field("key").and_then(|k| k.as_str());
            match (key, action) {
                (Some("name"), Some("set")) => !insert && value.is_some_and(|v| v.is_string()),
                (Some("archived"), Some("set")) => !insert && value.is_some_and(|v| v.is_boolean()),
                (Some("name" | "archived"), Some("del")) => !insert,
                _ => false,
            }
        }
        _ => false,
    }
}

/// What a local edit changes.
#[derive(Clone, Debug, Default)]
pub struct LocalEdit<'a> {
    /// The whole new text (turned into character insertions and deletions).
    pub text: Option<&'a str>,
    /// Or: delete and insert characters at one position.
    pub splice: Option<Splice<'a>>,
    /// A new name.
    pub name: Option<&'a str>,
    /// Archive (true) or restore (false).
    pub archived: Option<bool>,
}

/// Deleting `delete` characters at `pos` (counted in Unicode scalar values) and inserting
/// `insert` there.
#[derive(Clone, Debug)]
pub struct Splice<'a> {
    /// Where, in characters from the start.
    pub pos: usize,
    /// How many characters to delete.
    pub delete: usize,
    /// What to insert.
    pub insert: &'a str,
}
