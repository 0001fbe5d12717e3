//! The read model: what every view shows, kept up to date as entries are stored.
//!
//! Each entry this store accepts (own or the partner's, alone or in a pulled page) is decoded
//! once ([`candor_shared::record::Record::decode`]) and what it adds to the views is written in
//! the same sled transaction as the entry itself, sealed under the storage key like every
//! local value (tree `view`). Reads then touch only what they show: `log list --limit 20` reads
//! twenty rows, `promise list` the ledger's records, never the logs, and nothing is verified or
//! decrypted twice.
//!
//! Rows of the `view` tree (keys start with one byte naming the row family):
//!
//! * `v` → the model's version ([`READ_MODEL_VERSION`]). Missing or different: the model is
//!   rebuilt from the logs ([`Store::rebuild_read_model`]) before the next read, and until then
//!   stores do not maintain it.
//! * `t` + time (8, BE) + role (1: 0 this device, 1 the partner) + seq (8, BE) → a
//!   [`TimelineRow`]: the timeline in the order `log list` shows it, paged from the newest end.
//! * `l` + author (32) + seq (8) → a trust-ledger record ([`RecordRow`]);
//!   `g` + author + seq → a weekly-goal record; the rules that turn them into state are
//!   `candor_shared::ledger::derive_records` and `candor_shared::goals::derive`, run at read
//!   time over these rows only.
//! * `w` + ISO week → the week's counters ([`candor_shared::ledger::count_entry`]).
//! * `n` + author + seq → (empty): where the note edits are (the notes index).
//! * `j` + seq → (empty): this device's private (journal) entries (the journal index).
//! * `s` → the most of this device's entries the partner has said it verified.
//!
//! It is a cache: a rebuild from the logs gives exactly what the incremental path gave
//! (property-tested in `store::tests::read_model`).

use super::{decode_log_key, log_key, SealedTree, Store, StoreError};
use candor_shared::entry::Entry;
use candor_shared::goals::{GoalEntry, GoalRecord};
use candor_shared::keys::SpaceKey;
use candor_shared::ledger::{self, count_entry, IsoWeek, LedgerEntry, WeekSummary};
use candor_shared::payload::Payload;
use candor_shared::record::Record;
use candor_shared::{DeviceKey, EntryHash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use zeroize::Zeroizing;

/// The version of the read model's layout and rules; a store holding another is rebuilt.
pub const READ_MODEL_VERSION: u32 = 1;

const VERSION: &[u8] = b"v";
const TIMELINE: u8 = b't';
const LEDGER: u8 = b'l';
const GOALS: u8 = b'g';
const WEEKS: u8 = b'w';
const NOTE_EDITS: u8 = b'n';
const PRIVATE: u8 = b'j';
const SEEN: &[u8] = b"s";
/// How many entries a rebuild writes per transaction.
const REBUILD_BATCH: usize = 2_000;

/// One entry of the timeline, as `log list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The entry's id.
    pub id: EntryHash,
    /// Its author.
    pub author: DeviceKey,
    /// Its position in the author's log.
    pub seq: u64,
    /// The author's time (ms).
    pub time_ms: u64,
    /// The kind's name.
    pub kind: String,
    /// What it says (for records: their description).
    pub text: String,
    /// The entry this one corrects.
    pub replaces: Option<EntryHash>,
    /// For imported entries, their original time (ms).
    pub original_time_ms: Option<u64>,
    /// For check-ins, the expected arrival.
    pub eta: Option<String>,
    /// The entry a record is about.
    pub refers_to: Option<EntryHash>,
    /// Later entries of the same author that correct this one, in their order.
    pub corrected_by: Vec<EntryHash>,
}

/// A ledger or goal record as the read model keeps it: where it is, and its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RecordRow {
    id: EntryHash,
    author: DeviceKey,
    seq: u64,
    time_ms: u64,
    payload: Payload,
}

fn key3(family: u8, author: &DeviceKey, seq: u64) -> Vec<u8> {
    [&[family][..], &log_key(author, seq)[..]].concat()
}

fn timeline_key(time_ms: u64, partner: bool, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(TIMELINE);
    key.extend_from_slice(&time_ms.to_be_bytes());
    key.push(u8::from(partner));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn week_key(week: IsoWeek) -> Vec<u8> {
    let mut key = vec![WEEKS];
    // Offset so that the byte order of the key is the order of the years.
    key.extend_from_slice(&(week.year as u32 ^ 0x8000_0000).to_be_bytes());
    key.push(week.week);
    key
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("read model: {e}")))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("read model: {e}")))
}

/// The timeline row of a shown entry: kind, text and what it refers to.
fn timeline_row(entry: &Entry, record: &Record, kind: &str) -> TimelineRow {
    let mut row = TimelineRow {
        id: entry.hash,
        author: entry.header.author,
        seq: entry.header.seq,
        time_ms: entry.header.time_ms,
        kind: kind.to_string(),
        text: String::new(),
        replaces: None,
        original_time_ms: None,
        eta: None,
        refers_to: None,
        corrected_by: Vec::new(),
    };
    match record {
        Record::Ledger(r) => {
            row.text = r.describe();
            row.refers_to = r.target();
        }
        Record::NoteEdit(edit) => {
            row.text = format!("edited the shared note {:?}", edit.name);
            if edit.parts > 1 {
                row.text += &format!(" (part {} of {})", edit.part + 1, edit.parts);
            }
        }
        Record::Goal { record, .. } => {
            row.text = record.describe();
            if let GoalRecord::Progress(u) | GoalRecord::Done(u) | GoalRecord::Dropped(u) = record {
                row.refers_to = Some(u.goal);
            }
        }
        Record::Text { text, .. } => {
            row.text = text.text.clone();
            row.replaces = text.replaces;
            row.original_time_ms = text.original_time_ms;
            row.eta = text.eta.clone();
        }
        Record::DamagedNote { .. } | Record::Unknown | Record::Hello | Record::Checkpoint => {}
    }
    row
}

/// A read-model row sealed for its key, ready to be written.
pub(super) struct SealedRow {
    pub(super) key: Vec<u8>,
    pub(super) sealed: Vec<u8>,
}

/// The read-model rows a batch of entries writes, accumulated in plaintext over the stored
/// rows (later entries of the batch see what earlier ones wrote).
pub(super) struct Batch<'s> {
    store: &'s Store,
    me: DeviceKey,
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    weeks: BTreeMap<IsoWeek, WeekSummary>,
    /// Entries of this batch: id → (author, seq, time).
    placed: HashMap<EntryHash, (DeviceKey, u64, u64)>,
}

impl<'s> Batch<'s> {
    /// An empty batch for the store of device `me`.
    pub(super) fn new(store: &'s Store, me: DeviceKey) -> Self {
        Batch {
            store,
            me,
            rows: BTreeMap::new(),
            weeks: BTreeMap::new(),
            placed: HashMap::new(),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.rows.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None => Ok(self.store.view.get(key)?.map(|v| v.to_vec())),
        }
    }

    /// Where the entry `id` sits: (author, seq, time), from this batch or the store.
    fn place(&self, id: &EntryHash) -> Result<Option<(DeviceKey, u64, u64)>, StoreError> {
        if let Some(place) = self.placed.get(id) {
            return Ok(Some(*place));
        }
        self.store.place(id)
    }

    /// Adds what one stored entry contributes; `payload` is its content if it opens under the
    /// space key (`None`: a private entry).
    pub(super) fn add(
        &mut self,
        entry: &Entry,
        payload: Option<&Payload>,
    ) -> Result<(), StoreError> {
        let author = entry.header.author;
        let seq = entry.header.seq;
        let partner = author != self.me;
        if partner {
            let seen = entry.header.partner_seen.count;
            let held = self.get(SEEN)?.map(|v| decode::<u64>(&v)).transpose()?;
            if held.is_none_or(|held| seen > held) {
                self.rows.insert(SEEN.to_vec(), encode(&seen)?);
            }
        }
        let Some(payload) = payload else {
            if !partner {
                let mut key = vec![PRIVATE];
                key.extend_from_slice(&seq.to_be_bytes());
                self.rows.insert(key, Vec::new());
            }
            return Ok(());
        };
        let record = Record::decode(payload);
        let Some(kind) = record.kind_name() else {
            return Ok(()); // introductions and checkpoints are not shown
        };
        let row = timeline_row(entry, &record, kind);
        if let Some(original) = row.replaces {
            self.link_correction(&original, &author, entry.hash)?;
        }
        self.placed
            .insert(entry.hash, (author, seq, entry.header.time_ms));
        self.rows.insert(
            timeline_key(entry.header.time_ms, partner, seq),
            encode(&row)?,
        );
        let ledger_record = match &record {
            Record::Ledger(r) => Some(r.clone()),
            _ => None,
        };
        let week = iso_week_of(entry.header.time_ms);
        if !self.weeks.contains_key(&week) {
            let held = match self.store.view.get(&week_key(week))? {
                Some(bytes) => decode(&bytes)?,
                None => WeekSummary::default(),
            };
            self.weeks.insert(week, held);
        }
        count_entry(
            &mut self.weeks,
            &LedgerEntry {
                id: entry.hash,
                author,
                seq,
                time_ms: entry.header.time_ms,
                kind: kind.to_string(),
                record: ledger_record,
            },
        );
        let family = match record {
            Record::Ledger(_) => Some(LEDGER),
            Record::Goal { .. } => Some(GOALS),
            Record::NoteEdit(_) => {
                self.rows.insert(key3(NOTE_EDITS, &author, seq), Vec::new());
                None
            }
            _ => None,
        };
        if let Some(family) = family {
            let row = RecordRow {
                id: entry.hash,
                author,
                seq,
                time_ms: entry.header.time_ms,
                payload: payload.clone(),
            };
            self.rows.insert(key3(family, &author, seq), encode(&row)?);
        }
        Ok(())
    }

    /// Marks `original` as corrected by `correction` if both are the same author's (only an
    /// author corrects their own entries; a "correction" of the other's is shown, not linked).
    fn link_correction(
        &mut self,
        original: &EntryHash,
        author: &DeviceKey,
        correction: EntryHash,
    ) -> Result<(), StoreError> {
        let Some((by, seq, time_ms)) = self.place(original)? else {
            return Ok(());
        };
        if by != *author {
            return Ok(());
        }
        let key = timeline_key(time_ms, by != self.me, seq);
        let Some(bytes) = self.get(&key)? else {
            return Ok(()); // not a shown entry
        };
        let mut row: TimelineRow = decode(&bytes)?;
        row.corrected_by.push(correction);
        self.rows.insert(key, encode(&row)?);
        Ok(())
    }

    /// The rows to write, sealed under their keys.
    pub(super) fn finish(mut self) -> Result<Vec<SealedRow>, StoreError> {
        for (week, summary) in std::mem::take(&mut self.weeks) {
            self.rows.insert(week_key(week), encode(&summary)?);
        }
        self.rows
            .into_iter()
            .map(|(key, value)| {
                let sealed = self.store.view.seal(&key, &value)?;
                Ok(SealedRow { key, sealed })
            })
            .collect()
    }
}

fn iso_week_of(time_ms: u64) -> IsoWeek {
    ledger::iso_week(time_ms)
}

impl SealedTree {
    /// Keys and plaintexts of the rows whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(sled::IVec, Zeroizing<Vec<u8>>), StoreError>> + '_
    {
        self.tree.scan_prefix(prefix).map(|item| {
            let (k, v) = item?;
            let plain = self.open(&k, &v)?;
            Ok((k, plain))
        })
    }
}

impl Store {
    /// Whether the read model is present and of this version (if not, stores leave it alone
    /// and readers rebuild it first).
    pub fn read_model_current(&self) -> Result<bool, StoreError> {
        Ok(self
            .view
            .get(VERSION)?
            .is_some_and(|v| v.as_slice() == READ_MODEL_VERSION.to_be_bytes()))
    }

    /// Rebuilds the read model from both logs (each entry decrypted once); `progress` is
    /// called with the number of entries done so far. Takes the write lock, so no entry is
    /// stored meanwhile.
    pub fn rebuild_read_model(
        &self,
        me: &DeviceKey,
        partner: Option<&DeviceKey>,
        key: &SpaceKey,
        mut progress: impl FnMut(u64),
    ) -> Result<(), StoreError> {
        let _guard = self.lock();
        self.view.tree.clear()?;
        let mut done = 0u64;
        for author in std::iter::once(me).chain(partner) {
            let mut batch = Batch::new(self, *me);
            let mut in_batch = 0;
            for item in self.log_entries(author, 0) {
                let (_, bytes) = item?;
                let entry = Entry::from_bytes(&bytes)?;
                let payload = entry.open_readable(key)?;
                batch.add(&entry, payload.as_ref())?;
                in_batch += 1;
                done += 1;
                if in_batch == REBUILD_BATCH {
                    self.write_view(batch.finish()?)?;
                    batch = Batch::new(self, *me);
                    in_batch = 0;
                    progress(done);
                }
            }
            self.write_view(batch.finish()?)?;
            progress(done);
        }
        self.view
            .insert(VERSION, &READ_MODEL_VERSION.to_be_bytes())?;
        self.flush()
    }

    fn write_view(&self, rows: Vec<SealedRow>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for row in rows {
            batch.insert(row.key, row.sealed);
        }
        self.view.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Where entry `id` is stored: (author, seq, time).
    fn place(&self, id: &EntryHash) -> Result<Option<(DeviceKey, u64, u64)>, StoreError> {
        let Some(location) = self.ids.get(id.0)? else {
            return Ok(None);
        };
        let (author, seq) = decode_log_key(&location)?;
        let Some(bytes) = self.log.get(&location)? else {
            return Ok(None);
        };
        let time = candor_shared::entry::peek_time(&bytes)
            .ok_or_else(|| StoreError::Corrupt("a stored entry is truncated".into()))?;
        Ok(Some((author, seq, time)))
    }

    /// The newest `limit` timeline rows (all if `None`), oldest first.
    pub fn timeline(&self, limit: Option<usize>) -> Result<Vec<TimelineRow>, StoreError> {
        let rows = self.view.scan(&[TIMELINE]).rev();
        let mut out: Vec<TimelineRow> = match limit {
            Some(n) => rows
                .take(n)
                .map(|r| decode_row(r?))
                .collect::<Result<_, _>>()?,
            None => rows.map(|r| decode_row(r?)).collect::<Result<_, _>>()?,
        };
        out.reverse();
        Ok(out)
    }

    /// The timeline rows written at or after `from_ms` (author's clock), oldest first: a range
    /// of the time-ordered index, whatever the length of the history (what `today` reads for
    /// recent check-ins).
    pub fn timeline_since(&self, from_ms: u64) -> Result<Vec<TimelineRow>, StoreError> {
        let start = timeline_key(from_ms, false, 0);
        let end = [TIMELINE + 1];
        self.view
            .tree
            .range(start..end.to_vec())
            .map(|item| {
                let (key, sealed) = item?;
                decode(&self.view.open(&key, &sealed)?)
            })
            .collect()
    }

    /// The partner's shown timeline rows from position `from_seq` of their log on, in log
    /// order (introductions, checkpoints and other hidden entries have no row and are
    /// skipped): one log read and one row read per entry since `from_seq`.
    pub fn partner_rows_from(
        &self,
        partner: &DeviceKey,
        from_seq: u64,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let mut rows = Vec::new();
        for item in self.log_entries(partner, from_seq) {
            let (seq, bytes) = item?;
            let time_ms = candor_shared::entry::peek_time(&bytes)
                .ok_or_else(|| StoreError::Corrupt("a stored entry is truncated".into()))?;
            if let Some(row) = self.view.get(&timeline_key(time_ms, true, seq))? {
                rows.push(decode(&row)?);
            }
        }
        Ok(rows)
    }

    /// The timeline row of entry `id`, if it is shown; `me` is this device.
    pub fn timeline_row(
        &self,
        me: &DeviceKey,
        id: &EntryHash,
    ) -> Result<Option<TimelineRow>, StoreError> {
        let Some((author, seq, time_ms)) = self.place(id)? else {
            return Ok(None);
        };
        self.view
            .get(&timeline_key(time_ms, author != *me, seq))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// The author of entry `id` if it is shown in the timeline (what an acknowledgement may
    /// refer to); `me` is this device.
    pub fn shown_author(
        &self,
        me: &DeviceKey,
        id: &EntryHash,
    ) -> Result<Option<DeviceKey>, StoreError> {
        Ok(self.timeline_row(me, id)?.map(|row| row.author))
    }

    /// Every trust-ledger record of both logs, as [`ledger::derive_records`] takes them.
    pub fn ledger_records(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        self.view
            .scan(&[LEDGER])
            .map(|item| {
                let (_, bytes) = item?;
                let row: RecordRow = decode(&bytes)?;
                let record = ledger::Record::from_payload(&row.payload).ok().flatten();
                Ok(LedgerEntry {
                    id: row.id,
                    author: row.author,
                    seq: row.seq,
                    time_ms: row.time_ms,
                    kind: record
                        .as_ref()
                        .map_or("unknown kind", ledger::Record::kind_name)
                        .to_string(),
                    record,
                })
            })
            .collect()
    }

    /// Every weekly-goal record of both logs, as [`candor_shared::goals::derive`] takes them.
    pub fn goal_records(&self) -> Result<Vec<GoalEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.view.scan(&[GOALS]) {
            let (_, bytes) = item?;
            let row: RecordRow = decode(&bytes)?;
            if let Ok(Some(record)) = GoalRecord::from_payload(&row.payload) {
                out.push(GoalEntry {
                    id: row.id,
                    author: row.author,
                    seq: row.seq,
                    time_ms: row.time_ms,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// The weekly summary's counters of every week that has entries.
    pub fn week_counts(&self) -> Result<BTreeMap<IsoWeek, WeekSummary>, StoreError> {
        self.view
            .scan(&[WEEKS])
            .map(|item| {
                let (key, bytes) = item?;
                let (year, week) = match key.get(1..) {
                    Some([a, b, c, d, w]) => (u32::from_be_bytes([*a, *b, *c, *d]), *w),
                    _ => return Err(StoreError::Corrupt("read model: week key".into())),
                };
                let week = IsoWeek {
                    year: (year ^ 0x8000_0000) as i32,
                    week,
                };
                Ok((week, decode(&bytes)?))
            })
            .collect()
    }

    /// The seqs of `author`'s note edits from `from_seq` on.
    pub fn note_edit_seqs(
        &self,
        author: &DeviceKey,
        from_seq: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let start = key3(NOTE_EDITS, author, from_seq);
        let end = key3(NOTE_EDITS, author, u64::MAX);
        self.view
            .tree
            .range(start..=end)
            .map(|item| {
                let (key, _) = item?;
                Ok(decode_log_key(key.get(1..).unwrap_or_default())?.1)
            })
            .collect()
    }

    /// The seqs of this device's private (journal) entries.
    pub fn private_own_seqs(&self) -> Result<Vec<u64>, StoreError> {
        self.view
            .tree
            .scan_prefix([PRIVATE])
            .map(|item| {
                let (key, _) = item?;
                key.get(1..)
                    .and_then(|k| <[u8; 8]>::try_from(k).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt("read model: journal index key".into()))
            })
            .collect()
    }

    /// How many of this device's entries the partner has said (in its entries' headers) it
    /// verified.
    pub fn partner_has_seen(&self) -> Result<u64, StoreError> {
        Ok(self
            .view
            .get(SEEN)?
            .map(|v| decode::<u64>(&v))
            .transpose()?
            .unwrap_or(0))
    }

    /// Every row of the read model in plaintext, in key order (for tests comparing a rebuild
    /// with the incremental path).
    pub fn read_model_rows(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        self.view
            .iter()
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }
}

fn decode_row((_, bytes): (sled::IVec, Zeroizing<Vec<u8>>)) -> Result<TimelineRow, StoreError> {
    decode(&bytes)
}

#[cfg(test)]
mod tests;
