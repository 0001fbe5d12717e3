//! Auditing both logs for what a hash chain alone cannot catch: split views, backdating and
//! withholding. Pure: the caller passes the headers it holds and the current time.
//!
//! Every entry carries its author's verified view of the partner's log (`partner_seen`: how many
//! entries, and the id of the last). That turns each partner entry into a signed statement about
//! *my* log, which this device can check against what it actually wrote:
//!
//! * **Split view.** The partner's device claims to have verified an entry of mine whose id differs
//!   from the one I hold, or more entries than I wrote: someone (the relay, or a forged copy)
//!   showed it a different history. The partner's signed entry is the proof.
//! * **Rewritten partner log.** One of my entries recorded the id of the partner's entry I had
//!   verified; if the partner's log I hold now has a different entry there, the partner's history
//!   changed after I saw it.
//! * **Backdating.** An author's times go backwards within their log, or an entry claims to be
//!   written before an entry of mine it had already verified (clocks drift, so a tolerance
//!   applies and these are flagged, not refused).
//! * **Dated in the future.** An entry dated beyond the tolerance past the clock of the device
//!   that met it (the partner's on receipt, its own when it next writes): flagged once, by the
//!   device that saw it, in [`future_dated`]. Such an entry is blamed alone: it sets no bar for
//!   the entries after it in its log, nor for the other log's entries that acknowledge it, so an
//!   honest partner is never called a backdater for answering it.
//! * **A view that goes back.** An author's `partner_seen` count falls within their log: a
//!   later entry claims to have seen less of the other log than an earlier one, which would let
//!   an author date an answer before the question it answers.
//! * **Withholding.** My entries that the partner's device has still not confirmed after a while:
//!   "your partner has not seen anything from you since …".

use crate::entry::Header;
use crate::{DeviceKey, EntryHash};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far an author's clock may run behind before an entry is flagged as backdated.
pub const CLOCK_TOLERANCE_MS: u64 = 5 * 60 * 1000;
/// How far past a device's clock an entry it meets may be dated before it is flagged.
pub const FUTURE_TOLERANCE_MS: u64 = CLOCK_TOLERANCE_MS;
/// How long entries may stay unconfirmed by the partner's device before a notice.
pub const WITHHOLDING_NOTICE_MS: u64 = 24 * 60 * 60 * 1000;

/// One verified entry's header and id, as the audit sees it.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// The entry id.
    pub id: EntryHash,
    /// Its public header.
    pub header: Header,
}

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The partner's device was shown a different history of my log.
    SplitView,
    /// The partner's log differs from what I verified earlier.
    RewrittenHistory,
    /// Times run backwards, or before something the author had seen.
    Backdated,
    /// My entries are not confirmed by the partner's device for a long time (a notice).
    Withheld,
    /// An entry was dated beyond the tolerance past this device's clock when it met it.
    FutureDated,
    /// An author's view of the other log went back within their log.
    ViewWentBack,
}

/// How far past `now_ms` (this device's clock) an entry dated `time_ms` is, if beyond
/// [`FUTURE_TOLERANCE_MS`]: the check a device makes when it receives a partner entry, and
/// before it writes after its own last entry.
pub fn future_dated(time_ms: u64, now_ms: u64) -> Option<u64> {
    let ahead = time_ms.saturating_sub(now_ms);
    (ahead > FUTURE_TOLERANCE_MS).then_some(ahead)
}

/// A problem, explained, with the entries that prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// Plain-language explanation.
    pub explanation: String,
    /// Ids of the entries that are the evidence.
    pub evidence: Vec<EntryHash>,
    /// A notice (worth knowing) rather than proof of tampering.
    pub notice: bool,
}

/// Checks what each log says about the other. `mine` and `theirs` are the two logs in seq order.
pub fn audit(mine: &[AuditEntry], theirs: &[AuditEntry], now_ms: u64) -> Vec<Finding> {
    audit_with(mine, theirs, now_ms, &BTreeMap::new())
}

/// [`audit`], with the entries this device flagged as dated in the future when it met them
/// (id → how far ahead, in ms; see [`future_dated`]).
pub fn audit_with(
    mine: &[AuditEntry],
    theirs: &[AuditEntry],
    now_ms: u64,
    future: &BTreeMap<EntryHash, u64>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (log, whose) in [(mine, "your"), (theirs, "your partner's")] {
        for entry in log.iter().filter(|e| future.contains_key(&e.id)) {
            let ahead = future.get(&entry.id).copied().unwrap_or(0);
            findings.push(Finding {
                kind: FindingKind::FutureDated,
                explanation: format!(
                    "{whose} entry {} is dated {} ahead of this device's clock when it arrived: \
                     its author's clock was wrong, or it was dated in the future on purpose; it \
                     sets no bar for the entries written after it",
                    entry.header.seq,
                    describe_ms(ahead)
                ),
                evidence: vec![entry.id],
                notice: true,
            });
        }
        let mut highest_seen: Option<&AuditEntry> = None;
        for entry in log {
            if let Some(before) = highest_seen {
                if entry.header.partner_seen.count < before.header.partner_seen.count {
                    findings.push(Finding {
                        kind: FindingKind::ViewWentBack,
                        explanation: format!(
                            "{whose} entry {} says it had seen {} entries of the other log, but \
                             entry {} before it had already seen {}: an author's view never goes \
                             back, so one of them misstates what was seen when",
                            entry.header.seq,
                            entry.header.partner_seen.count,
                            before.header.seq,
                            before.header.partner_seen.count
                        ),
                        evidence: vec![before.id, entry.id],
                        notice: false,
                    });
                    continue;
                }
            }
            highest_seen = Some(entry);
        }
    }
    views_of(
        mine,
        theirs,
        "your partner's device",
        "your",
        FindingKind::SplitView,
        &mut findings,
    );
    views_of(
        theirs,
        mine,
        "your device",
        "your partner's",
        FindingKind::RewrittenHistory,
        &mut findings,
    );
    for (log, whose) in [(mine, "your"), (theirs, "your partner's")] {
        // Each entry against the latest-dated earlier entry of its log, leaving out entries
        // flagged as dated in the future (blamed alone, above).
        let mut latest: Option<&AuditEntry> = None;
        for entry in log {
            if future.contains_key(&entry.id) {
                continue;
            }
            match latest {
                Some(before)
                    if entry.header.time_ms + CLOCK_TOLERANCE_MS < before.header.time_ms =>
                {
                    findings.push(Finding {
                        kind: FindingKind::Backdated,
                        explanation: format!(
                            "{whose} entry {} is dated {} ms before an entry that precedes it \
                             ({}): the clock went backwards or the entry was backdated",
                            entry.header.seq,
                            before.header.time_ms - entry.header.time_ms,
                            before.header.seq
                        ),
                        evidence: vec![before.id, entry.id],
                        notice: false,
                    });
                }
                Some(before) if before.header.time_ms >= entry.header.time_ms => {}
                _ => latest = Some(entry),
            }
        }
    }
    for (log, other, whose) in [(theirs, mine, "your partner's"), (mine, theirs, "your")] {
        for entry in log {
            let seen = entry.header.partner_seen.count;
            let Some(seen_entry) = seen.checked_sub(1).and_then(|i| other.get(i as usize)) else {
                continue;
            };
            if future.contains_key(&seen_entry.id) {
                continue;
            }
            if entry.header.time_ms + CLOCK_TOLERANCE_MS < seen_entry.header.time_ms {
                findings.push(Finding {
                    kind: FindingKind::Backdated,
                    explanation: format!(
                        "{whose} entry {} is dated before an entry it had already seen (seq {} of \
                         the other log): it was backdated or its clock is far behind",
                        entry.header.seq, seen_entry.header.seq
                    ),
                    evidence: vec![seen_entry.id, entry.id],
                    notice: false,
                });
            }
        }
    }
    // Several entries may carry the same wrong view: explain each problem once, with all of the
    // entries that show it as evidence.
    let mut merged: Vec<Finding> = Vec::new();
    for finding in findings {
        match merged
            .iter_mut()
            .find(|m| m.kind == finding.kind && m.explanation == finding.explanation)
        {
            Some(m) => {
                for id in finding.evidence {
                    if !m.evidence.contains(&id) {
                        m.evidence.push(id);
                    }
                }
            }
            None => merged.push(finding),
        }
    }
    let mut findings = merged;
    let confirmed = theirs
        .iter()
        .map(|e| e.header.partner_seen.count)
        .max()
        .unwrap_or(0);
    if let Some(first_unseen) = mine.get(confirmed as usize) {
        if first_unseen.header.time_ms + WITHHOLDING_NOTICE_MS < now_ms {
            findings.push(Finding {
                kind: FindingKind::Withheld,
                explanation: format!(
                    "your partner's device has not confirmed seeing {} of your entries, the oldest \
                     written more than a day ago: they may not have synced, or the relay may be \
                     withholding them",
                    mine.len() as u64 - confirmed
                ),
                evidence: vec![first_unseen.id],
                notice: true,
            });
        }
    }
    findings
}

/// A duration in plain words, for explanations.
fn describe_ms(ms: u64) -> String {
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    // Rounded to the nearest unit: an entry three days ahead, met a moment later, is still
    // "3 days" ahead.
    match ms {
        ms if ms >= 2 * DAY => format!("{} days", (ms + DAY / 2) / DAY),
        ms if ms >= 2 * HOUR => format!("{} hours", (ms + HOUR / 2) / HOUR),
        ms => format!("{} minutes", ms.div_ceil(MINUTE)),
    }
}

/// Checks the views `viewers` recorded of `viewed`.
fn views_of(
    viewed: &[AuditEntry],
    viewers: &[AuditEntry],
    viewer_name: &str,
    viewed_name: &str,
    kind: FindingKind,
    findings: &mut Vec<Finding>,
) {
    for viewer in viewers {
        let seen = viewer.header.partner_seen;
        if seen.count == 0 {
            continue;
        }
        match viewed.get((seen.count - 1) as usize) {
            None if kind == FindingKind::SplitView => findings.push(Finding {
                kind,
                explanation: format!(
                    "{viewer_name} signed that it verified {} of {viewed_name} entries, but only {} \
                     exist: it was shown entries that were never written here",
                    seen.count,
                    viewed.len()
                ),
                evidence: vec![viewer.id],
                notice: false,
            }),
            // This device may simply not have received those entries yet.
            None => {}
            Some(held) if held.id != seen.head => findings.push(Finding {
                kind,
                explanation: format!(
                    "{viewer_name} signed that {viewed_name} entry {} has id {}, but the entry \
                     held here has id {}: the two devices were shown different histories",
                    seen.count - 1,
                    seen.head.short(),
                    held.id.short()
                ),
                evidence: vec![viewer.id, held.id],
                notice: false,
            }),
            Some(_) => {}
        }
    }
}

/// A short fingerprint of both logs' heads, which partners compare in person after syncing:
/// eight groups of five digits.
pub fn heads_fingerprint(space: &crate::SpaceId, heads: &[(DeviceKey, u64, EntryHash)]) -> String {
    let mut sorted = heads.to_vec();
    sorted.sort_by_key(|(device, _, _)| *device);
    let mut hasher = blake3::Hasher::new_derive_key("candor v1 heads fingerprint");
    hasher.update(&space.0);
    for (device, count, hash) in &sorted {
        hasher.update(&device.0);
        hasher.update(&count.to_be_bytes());
        hasher.update(&hash.0);
    }
    let mut output = [0u8; 40];
    hasher.finalize_xof().fill(&mut output);
    output
        .chunks_exact(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
