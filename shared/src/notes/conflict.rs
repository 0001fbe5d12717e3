//! Conflicts: passages both partners changed concurrently, found in the merged document.
//!
//! Automerge merges concurrent edits of one passage by keeping both insertions and both
//! deletions, which reads as a mix of two sentences. Words are never mixed (edits are on word
//! boundaries, see [`super::words`]), but the passage must still be shown as what it is: two
//! versions. This module finds such passages and renders them as both versions, one after the
//! other, each under its author's name:
//!
//! ```text
//! <<<<<<< Alex
//! We will talk every Saturday morning before breakfast.
//! ======= Sam
//! We will talk every Monday night.
//! >>>>>>> end of conflict
//! ```
//!
//! Everything here is a pure function of the set of changes in the document (never of the order
//! they arrived in), so both devices show the same conflicts and the same text:
//!
//! 1. Each change *touches* the characters it deletes and the characters its insertions are
//!    anchored after (Automerge's element ids). Two changes of different authors that are
//!    concurrent (neither knew the other, by vector clock) and touch a common character are in
//!    conflict; conflicting changes are grouped transitively.
//! 2. A group is resolved once some later change (one that knew every change of the group)
//!    touches any character the group inserted, deleted or anchored on: someone edited that
//!    passage.
//! 3. An open group is shown by lines: for each author, the note as that author last had it
//!    before seeing the other authors' changes of the group; the passage is the run of lines
//!    around the changed characters, bounded by line breaks present in every one of these
//!    versions and in the merged text. Overlapping passages are merged into one.

use automerge::{AutoCommit, ChangeHash, ObjId, ReadDoc, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The line that opens a conflict, followed by the first version's author.
pub const OPEN: &str = "<<<<<<< ";
/// The line between two versions, followed by the next version's author.
pub const BETWEEN: &str = "======= ";
/// The line that closes a conflict.
pub const CLOSE: &str = ">>>>>>> end of conflict";

/// A passage both partners changed concurrently, not yet edited since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Where the passage starts in the merged text, in characters.
    pub start: usize,
    /// Where it ends (exclusive), in characters.
    pub end: usize,
    /// Each author's version of the passage, authors in a fixed order.
    pub versions: Vec<Version>,
    /// The changes in conflict (so history can point at them).
    pub changes: Vec<[u8; 32]>,
}

/// One author's version of a conflicting passage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The author's Automerge actor id (see [`super::actor_of`]).
    pub actor: Vec<u8>,
    /// The passage as this author left it.
    pub text: String,
}

/// `text` with each conflict's passage replaced by its versions under marker lines, naming each
/// author with `name_of(actor)`.
pub fn render(text: &str, conflicts: &[Conflict], name_of: impl Fn(&[u8]) -> String) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for c in conflicts {
        if c.start < at || c.end > chars.len() || c.start > c.end {
            continue; // impossible for conflicts computed from this text
        }
        out.extend(&chars[at..c.start]);
        for (i, v) in c.versions.iter().enumerate() {
            out.push_str(if i == 0 { OPEN } else { BETWEEN });
            out.push_str(&name_of(&v.actor));
            out.push('\n');
            out.push_str(&v.text);
            out.push('\n');
        }
        out.push_str(CLOSE);
        at = c.end;
    }
    out.extend(&chars[at..]);
    out
}

/// Whether `text` still holds a conflict's marker lines (an edit that keeps them would write
/// them into the note).
pub fn has_markers(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with(OPEN.trim_end()) || l.starts_with(CLOSE))
}

/// A character of the text: (op counter, actor index); `None` stands for the text's start.
type Elem = Option<(u64, usize)>;

struct Info {
    hash: ChangeHash,
    actor: usize,
    seq: u64,
    /// The author's time (seconds), which orders the versions shown.
    time: i64,
    /// Highest seq of each actor this change knew (itself included).
    clock: Vec<u64>,
    inserted: Vec<Elem>,
    deleted: Vec<Elem>,
    /// Deleted characters and the anchors of insertions outside its own insertions.
    touched: Vec<Elem>,
}

impl Info {
    /// Whether this change knew `other` (or is it).
    fn knew(&self, other: &Info) -> bool {
        self.clock[other.actor] >= other.seq
    }
}

/// The open conflicts of a document's text, in text order.
pub fn find(doc: &mut AutoCommit, text: &ObjId) -> Vec<Conflict> {
    catch_unwind(AssertUnwindSafe(|| find_inner(doc, text))).unwrap_or_default()
}

fn find_inner(doc: &mut AutoCommit, text: &ObjId) -> Vec<Conflict> {
    let (infos, actors) = infos(doc, text);
    let groups = open_groups(&infos);
    if groups.is_empty() {
        return Vec::new();
    }
    let now = elements(doc, text, None, &actors);
    // Passages, merged while any two overlap.
    let mut groups = groups;
    loop {
        let mut spans: Vec<(usize, usize, usize, Vec<Version>)> = groups
            .iter()
            .enumerate()
            .filter_map(|(g, members)| {
                let (s, e, v) = passage(doc, text, &infos, &actors, members, &now)?;
                Some((s, e, g, v))
            })
            .collect();
        spans.sort_by_key(|(s, e, g, _)| (*s, *e, *g));
        let overlap = spans
            .windows(2)
            .find(|w| w[1].0 <= w[0].1)
            .map(|w| (w[0].2, w[1].2));
        match overlap {
            Some((a, b)) => {
                let moved = std::mem::take(&mut groups[b]);
                groups[a].extend(moved);
                groups.remove(b);
            }
            None => {
                return spans
                    .into_iter()
                    .map(|(start, end, g, versions)| Conflict {
                        start,
                        end,
                        versions,
                        changes: groups[g].iter().map(|&i| infos[i].hash.0).collect(),
                    })
                    .collect()
            }
        }
    }
}

/// Every change of the document, decoded, with vector clocks, in an order where each change
/// comes after its dependencies; and the index of each actor.
fn infos(doc: &mut AutoCommit, text: &ObjId) -> (Vec<Info>, HashMap<Vec<u8>, usize>) {
    let text = text.to_string();
    let changes: Vec<automerge::Change> = doc.get_changes(&[]).into_iter().cloned().collect();
    let actors: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| c.actor_id().to_bytes().to_vec())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let actor_index: HashMap<String, usize> = actors
        .iter()
        .enumerate()
        .map(|(i, a)| (hex::encode(a), i))
        .collect();
    let elem = |s: &str| -> Option<Elem> {
        if s == "_head" {
            return Some(None);
        }
        let (counter, actor) = s.split_once('@')?;
        Some(Some((counter.parse().ok()?, *actor_index.get(actor)?)))
    };
    let mut out: Vec<Info> = Vec::with_capacity(changes.len());
    let mut by_hash: HashMap<ChangeHash, usize> = HashMap::new();
    for change in &changes {
        let actor = actor_index
            .get(&hex::encode(change.actor_id().to_bytes()))
            .copied()
            .unwrap_or(0);
        let mut clock = vec![0u64; actors.len()];
        for dep in change.deps() {
            if let Some(&d) = by_hash.get(dep) {
                for (mine, theirs) in clock.iter_mut().zip(&out[d].clock) {
                    *mine = (*mine).max(*theirs);
                }
            }
        }
        clock[actor] = clock[actor].max(change.seq());
        let mut info = Info {
            hash: change.hash(),
            actor,
            seq: change.seq(),
            time: change.timestamp(),
            clock,
            inserted: Vec::new(),
            deleted: Vec::new(),
            touched: Vec::new(),
        };
        let start = change.start_op().get();
        let expanded = change.decode();
        for (k, op) in expanded.operations.iter().enumerate() {
            let Ok(op) = serde_json::to_value(op) else {
                continue;
            };
            if op.get("obj").and_then(|o| o.as_str()) != Some(text.as_str()) {
                continue;
            }
            let Some(target) = op.get("elemId").and_then(|e| e.as_str()).and_then(elem) else {
                continue;
            };
            let insert = op.get("insert").and_then(|i| i.as_bool()).unwrap_or(false);
            match op.get("action").and_then(|a| a.as_str()) {
                Some("set") if insert => {
                    let id = Some((start + k as u64, actor));
                    // An anchor among this change's own earlier insertions touches nothing.
                    let own = target
                        .is_some_and(|(c, a)| a == actor && (start..start + k as u64).contains(&c));
                    if !own {
                        info.touched.push(target);
                    }
                    info.inserted.push(id);
                }
                Some("del") => {
                    info.deleted.push(target);
                    info.touched.push(target);
                }
                _ => {}
            }
        }
        by_hash.insert(info.hash, out.len());
        out.push(info);
    }
    let by_bytes = actors
        .into_iter()
        .enumerate()
        .map(|(i, a)| (a, i))
        .collect();
    (out, by_bytes)
}

/// Groups of changes in conflict that no later change resolved, each sorted, in a fixed order.
fn open_groups(infos: &[Info]) -> Vec<Vec<usize>> {
    let mut touching: HashMap<Elem, Vec<usize>> = HashMap::new();
    for (i, info) in infos.iter().enumerate() {
        for e in &info.touched {
            let list = touching.entry(*e).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut parent: Vec<usize> = (0..infos.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut in_conflict = vec![false; infos.len()];
    for list in touching.values() {
        for (x, &a) in list.iter().enumerate() {
            for &b in &list[x + 1..] {
                let (ia, ib) = (&infos[a], &infos[b]);
                if ia.actor != ib.actor && !ia.knew(ib) && !ib.knew(ia) {
                    let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                    parent[ra.max(rb)] = ra.min(rb);
                    in_conflict[a] = true;
                    in_conflict[b] = true;
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in (0..infos.len()).filter(|&i| in_conflict[i]) {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups
        .into_values()
        .filter(|members| !resolved(infos, members))
        .collect()
}

/// Whether a change that knew every member of the group edited the group's passage.
fn resolved(infos: &[Info], members: &[usize]) -> bool {
    let passage: HashSet<Elem> = members
        .iter()
        .flat_map(|&m| infos[m].inserted.iter().chain(&infos[m].touched))
        .copied()
        .collect();
    infos.iter().any(|d| {
        members
            .iter()
            .all(|&m| d.knew(&infos[m]) && d.hash != infos[m].hash)
            && d.touched.iter().any(|e| passage.contains(e))
    })
}

/// The visible characters of a text (now, or at `heads`) with their element ids.
fn elements(
    doc: &AutoCommit,
    text: &ObjId,
    heads: Option<&[ChangeHash]>,
    actors: &HashMap<Vec<u8>, usize>,
) -> Vec<(Elem, char)> {
    let item = |item: automerge::iter::ListRangeItem<'_>| {
        let c = match &item.value {
            Value::Scalar(s) => s.to_str().and_then(|s| s.chars().next())?,
            _ => return None,
        };
        match item.id {
            ObjId::Id(counter, actor, _) => {
                Some((Some((counter, *actors.get(actor.to_bytes())?)), c))
            }
            ObjId::Root => None,
        }
    };
    match heads {
        Some(heads) => doc
            .list_range_at(text, .., heads)
            .filter_map(item)
            .collect(),
        None => doc.list_range(text, ..).filter_map(item).collect(),
    }
}

/// The passage of one group in the merged text (`now`), and each author's version of it; `None`
/// if every version reads as the merged text already does.
fn passage(
    doc: &AutoCommit,
    text: &ObjId,
    infos: &[Info],
    actors: &HashMap<Vec<u8>, usize>,
    members: &[usize],
    now: &[(Elem, char)],
) -> Option<(usize, usize, Vec<Version>)> {
    // Authors in the order of their first change in the group (then by actor id).
    let mut sides: Vec<(i64, usize)> = Vec::new();
    for &m in members {
        let (time, actor) = (infos[m].time, infos[m].actor);
        match sides.iter_mut().find(|(_, a)| *a == actor) {
            Some(side) => side.0 = side.0.min(time),
            None => sides.push((time, actor)),
        }
    }
    // Actor indices follow the actors' byte order.
    sides.sort_unstable();
    let sides: Vec<usize> = sides.into_iter().map(|(_, a)| a).collect();
    let changed: HashSet<Elem> = members
        .iter()
        .flat_map(|&m| infos[m].inserted.iter().chain(&infos[m].deleted))
        .copied()
        .collect();
    let mut views: Vec<(usize, Vec<(Elem, char)>)> = Vec::new();
    for &side in &sides {
        // The note as this author last had it before seeing the other authors' side.
        let Some(last) = infos
            .iter()
            .filter(|c| {
                c.actor == side
                    && members
                        .iter()
                        .all(|&m| infos[m].actor == side || !c.knew(&infos[m]))
            })
            .max_by_key(|c| c.seq)
        else {
            continue;
        };
        let heads = [last.hash];
        views.push((side, elements(doc, text, Some(&heads), actors)));
    }
    let mut stable: HashSet<Elem> = now.iter().map(|(e, _)| *e).collect();
    for (_, view) in &views {
        let present: HashSet<Elem> = view.iter().map(|(e, _)| *e).collect();
        stable.retain(|e| present.contains(e));
    }
    let at_now: HashMap<Elem, usize> = now.iter().enumerate().map(|(i, (e, _))| (*e, i)).collect();
    // The line breaks around the changed characters, in the merged text's positions.
    let (mut left, mut right): (Option<usize>, Option<usize>) = (None, None);
    let (mut from_start, mut to_end, mut any) = (false, false, false);
    for view in views.iter().map(|(_, v)| v.as_slice()).chain([now]) {
        let is_break = |i: usize| view[i].1 == '\n' && stable.contains(&view[i].0);
        let mut hits = (0..view.len()).filter(|&i| changed.contains(&view[i].0));
        let Some(first) = hits.next() else { continue };
        let last = hits.next_back().unwrap_or(first);
        any = true;
        match (0..first).rev().find(|&i| is_break(i)) {
            Some(i) => {
                let at = at_now[&view[i].0];
                left = Some(left.map_or(at, |l| l.min(at)));
            }
            None => from_start = true,
        }
        match (last + 1..view.len()).find(|&i| is_break(i)) {
            Some(i) => right = right.max(Some(at_now[&view[i].0])),
            None => to_end = true,
        }
    }
    if !any {
        return None;
    }
    let start = if from_start {
        0
    } else {
        left.map_or(0, |l| l + 1)
    };
    let end = if to_end {
        now.len()
    } else {
        right.unwrap_or(now.len())
    };
    let (start_elem, end_elem) = (
        (start > 0).then(|| now[start - 1].0),
        (end < now.len()).then(|| now[end].0),
    );
    let merged: String = now[start..end].iter().map(|(_, c)| c).collect();
    let versions: Vec<Version> = views
        .iter()
        .map(|(side, view)| {
            let from = start_elem
                .and_then(|e| view.iter().position(|(x, _)| *x == e))
                .map_or(0, |i| i + 1);
            let to = end_elem
                .and_then(|e| view.iter().position(|(x, _)| *x == e))
                .unwrap_or(view.len());
            Version {
                actor: actor_bytes(actors, *side),
                text: view[from.min(to)..to].iter().map(|(_, c)| c).collect(),
            }
        })
        .collect();
    if versions.iter().all(|v| v.text == merged) {
        return None;
    }
    Some((start, end, versions))
}

fn actor_bytes(actors: &HashMap<Vec<u8>, usize>, index: usize) -> Vec<u8> {
    actors
        .iter()
        .find(|(_, &i)| i == index)
        .map(|(a, _)| a.clone())
        .unwrap_or_default()
}
