//! [`Reader`]: every view of a paired device, from the store's read model.

use super::Paired;
use crate::store::{Store, TimelineRow};
use crate::timefmt;
use anyhow::{Context as _, Result};
use candor_shared::entry::Entry;
use candor_shared::goals::{self, Goals};
use candor_shared::ledger::{self, Ledger, Record};
use candor_shared::payload::Content;
use candor_shared::{DeviceKey, EntryHash};
use serde::Serialize;
use std::collections::HashMap;

/// One entry of the timeline, as `log list` (text and `--json`) and the web app show it.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
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
    /// For records about another entry: what they act on, named by its text — the promise,
    /// agreement, support request, goal or entry (for a confirmation of a promise's status,
    /// the promise itself); null otherwise or if that entry is not held.
    pub about: Option<About>,
    /// For your own entries: whether your partner's device has verified it (from their signed
    /// view of your log); null for your partner's entries.
    pub seen_by_partner: Option<bool>,
    /// Ids of later entries that correct this one.
    pub corrected_by: Vec<String>,
    /// The author's time (ms).
    #[serde(skip)]
    pub time_ms: u64,
}

/// What a record acts on, as a timeline entry names it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct About {
    /// Its id.
    pub id: String,
    /// Its kind (`promise`, `agreement`, `support-request`, `goal`, `checkin`, …).
    pub kind: String,
    /// Its text.
    pub text: String,
}

/// Reads the views of a paired device. Cheap to open: it only checks (and, once, rebuilds)
/// the read model.
pub struct Reader<'a> {
    pub(super) store: &'a Store,
    pub(super) paired: &'a Paired,
}

impl<'a> Reader<'a> {
    /// A reader over `store`. If the read model is missing or of an older version it is first
    /// rebuilt from both logs, calling `progress(done, total)` as entries are indexed.
    pub fn open(
        store: &'a Store,
        paired: &'a Paired,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Self> {
        if !store.read_model_current()? {
            let me = paired.me();
            let partner = paired.partner();
            let mut total = store.head(&me)?.count;
            if let Some(partner) = &partner {
                total += store.head(partner)?.count;
            }
            store
                .rebuild_read_model(&me, partner.as_ref(), &paired.key, |done| {
                    progress(done, total)
                })
                .context("rebuilding the read model from the logs")?;
        }
        Ok(Reader { store, paired })
    }

    /// The newest `limit` entries of both logs (all if `None`), oldest first, corrections
    /// linked. Reads `limit` rows, whatever the length of the history.
    pub fn timeline(&self, limit: Option<usize>) -> Result<Vec<TimelineEntry>> {
        let rows = self.store.timeline(limit)?;
        self.named(rows)
    }

    /// The timeline entry `id`, if it is one that the timeline shows.
    pub fn entry(&self, id: &EntryHash) -> Result<Option<TimelineEntry>> {
        let Some(row) = self.store.timeline_row(&self.paired.me(), id)? else {
            return Ok(None);
        };
        Ok(self.named(vec![row])?.pop())
    }

    /// The trust ledger (promises, agreements, support, plans, acknowledgements, invalid
    /// records, weekly summary), as of `now_ms` (which agreements are due for review), derived
    /// by the same rules as from both logs (`candor_shared::ledger::derive_records`).
    pub fn ledger(&self, now_ms: u64) -> Result<Ledger> {
        let records = self.store.ledger_records()?;
        let me = self.paired.me();
        // What acknowledgements refer to may be any shown entry: look those up, once each.
        let mut authors: HashMap<EntryHash, Option<DeviceKey>> = HashMap::new();
        for r in &records {
            if let Some(Record::Ack(reference)) = &r.record {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    authors.entry(reference.target)
                {
                    slot.insert(self.store.shown_author(&me, &reference.target)?);
                }
            }
        }
        Ok(ledger::derive_records(
            &records,
            |id| authors.get(id).copied().flatten(),
            self.store.week_counts()?,
            now_ms,
        ))
    }

    /// Both partners' weekly goals (`candor_shared::goals::derive` over the goal records).
    pub fn goals(&self) -> Result<Goals> {
        Ok(goals::derive(&self.store.goal_records()?))
    }

    /// The partner's name, from their introduction entry, if received.
    pub fn partner_name(&self) -> Result<Option<String>> {
        let Some(partner) = self.paired.partner() else {
            return Ok(None);
        };
        let Some(first) = self.store.log_entries(&partner, 0).next() else {
            return Ok(None);
        };
        let (_, bytes) = first?;
        let entry = Entry::from_bytes(&bytes)?;
        Ok(
            match entry.open_readable(&self.paired.key)?.map(|p| p.content()) {
                Some(Ok(Content::Hello(hello))) => Some(hello.name),
                _ => None,
            },
        )
    }

    /// The device this reader reads for.
    pub(super) fn paired(&self) -> &Paired {
        self.paired
    }

    /// The store this reader reads.
    pub(super) fn store(&self) -> &Store {
        self.store
    }

    /// What the entry `target` is, named by its text; if it is itself a record about another
    /// (a promise's kept or missed status, which a confirmation answers), that other one.
    /// At most two row reads.
    fn about(&self, target: &EntryHash) -> Result<Option<About>> {
        let me = self.paired.me();
        let Some(row) = self.store.timeline_row(&me, target)? else {
            return Ok(None);
        };
        let row = match row.refers_to {
            Some(next) => match self.store.timeline_row(&me, &next)? {
                Some(inner) => inner,
                None => row,
            },
            None => row,
        };
        Ok(Some(About {
            id: row.id.to_hex(),
            kind: row.kind,
            text: row.text,
        }))
    }

    /// Turns timeline rows into entries, naming the authors.
    pub(super) fn named(&self, rows: Vec<TimelineRow>) -> Result<Vec<TimelineEntry>> {
        let me = self.paired.me();
        let seen = match self.paired.partner() {
            Some(_) => self.store.partner_has_seen()?,
            None => 0,
        };
        let partner = match rows.iter().any(|r| r.author != me) {
            true => self.partner_name()?.unwrap_or_else(|| "partner".into()),
            false => String::new(),
        };
        let mut abouts: HashMap<EntryHash, Option<About>> = HashMap::new();
        for row in &rows {
            if let Some(target) = row.refers_to {
                if let std::collections::hash_map::Entry::Vacant(slot) = abouts.entry(target) {
                    slot.insert(self.about(&target)?);
                }
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let mine = row.author == me;
                TimelineEntry {
                    id: row.id.to_hex(),
                    author: if mine { "me" } else { "partner" },
                    author_name: if mine {
                        self.paired.identity.name.clone()
                    } else {
                        partner.clone()
                    },
                    seq: row.seq,
                    kind: row.kind,
                    text: row.text,
                    time: timefmt::rfc3339(row.time_ms),
                    replaces: row.replaces.map(|h| h.to_hex()),
                    original_time: row.original_time_ms.map(timefmt::rfc3339),
                    eta: row.eta.as_deref().map(timefmt::eta_time_of_day),
                    eta_at: row.eta.as_deref().and_then(timefmt::eta_json),
                    refers_to: row.refers_to.map(|h| h.to_hex()),
                    about: row
                        .refers_to
                        .and_then(|t| abouts.get(&t).cloned().flatten()),
                    seen_by_partner: mine.then_some(row.seq < seen),
                    corrected_by: row.corrected_by.iter().map(|h| h.to_hex()).collect(),
                    time_ms: row.time_ms,
                }
            })
            .collect())
    }
}
