//! `candor verify`: re-checks every stored entry of both logs.

use super::{Ctx, Paired};
use crate::output::Output;
use crate::timefmt;
use anyhow::Result;
use candor_shared::chain::LogHead;
use candor_shared::entry::Entry;
use candor_shared::merkle::Frontier;
use candor_shared::payload::Content;
use candor_shared::DeviceKey;

/// Checks one log from seq 0: decoding, signature, ciphertext hash, author, space, chain and
/// decryption. Returns the number of entries and a description of each problem.
pub fn check_log(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    who: &str,
) -> Result<(u64, Vec<String>)> {
    let mut problems = Vec::new();
    let mut head = LogHead::default();
    let mut frontier = Frontier::default();
    for item in ctx.store.log_entries(author, 0) {
        let (seq, bytes) = item?;
        let entry = match Entry::from_bytes(&bytes) {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("{who} entry {seq}: {e}"));
                continue;
            }
        };
        if entry.header.author != *author || entry.header.seq != seq {
            problems.push(format!(
                "{who} entry {seq}: stored under the wrong author or position"
            ));
        }
        if let Err(e) = head.classify(&paired.config.space, &entry.header) {
            problems.push(format!("{who} entry {seq}: {e}"));
        }
        // A signed shared-class entry that the space key does not open is its author's private
        // journal entry, not a problem (see `Entry::open_readable`).
        match entry.open_readable(&paired.key) {
            Err(e) => problems.push(format!("{who} entry {seq}: {e}")),
            // On the author's own device, a private entry must open under the journal key.
            Ok(None) if *author == paired.identity.secrets.device_key() => {
                let key = ctx.home.journal_key()?;
                if super::journal::open_journal_entry(&entry, &key).is_none() {
                    problems.push(format!(
                        "{who} entry {seq}: opens under neither the space key nor your journal key"
                    ));
                }
            }
            Ok(Some(payload)) => {
                if let Ok(Content::Checkpoint(Some(checkpoint))) = payload.content() {
                    if frontier.size() == seq && checkpoint.own_root != frontier.root() {
                        problems.push(format!(
                            "{who} entry {seq}: a checkpoint whose Merkle root is not the root \
                             of the entries before it"
                        ));
                    }
                }
            }
            Ok(_) => {}
        }
        frontier.push(&entry.hash);
        head = LogHead {
            count: seq + 1,
            hash: entry.hash,
        };
    }
    Ok((head.count, problems))
}

/// `candor verify`.
pub fn verify(ctx: &Ctx, json: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let me = paired.identity.secrets.device_key();
    let (mine, mut problems) = check_log(ctx, &paired, &me, "your")?;
    let theirs = match paired.config.partner {
        Some(partner) => {
            let (count, more) = check_log(ctx, &paired, &partner.device, "partner's")?;
            problems.extend(more);
            count
        }
        None => 0,
    };
    // What each log's signed views say about the other (split views, backdating, withholding).
    let findings = crate::checks::findings(&ctx.store, &paired, timefmt::now_ms())?;
    let mut notices = Vec::new();
    let mut evidence_ids: Vec<Vec<String>> = Vec::new();
    for finding in &findings {
        let ids: Vec<String> = finding.evidence.iter().map(|h| h.to_hex()).collect();
        let line = format!(
            "{} (evidence: {})",
            finding.explanation,
            ids.iter()
                .map(|id| &id[..16])
                .collect::<Vec<_>>()
                .join(", ")
        );
        if finding.notice {
            notices.push(line);
        } else {
            problems.push(line);
            evidence_ids.push(ids);
        }
    }
    // Entries refused at sync, kept as proof.
    let kept = ctx.store.evidence()?;
    for evidence in &kept {
        let ids: Vec<String> = evidence
            .entries
            .iter()
            .filter_map(|bytes| candor_shared::entry::id_of(bytes))
            .map(|h| h.to_hex())
            .collect();
        problems.push(format!(
            "refused at sync on {}: {} (kept as evidence: {})",
            timefmt::short(evidence.time_ms),
            evidence.reason,
            ids.iter()
                .map(|id| &id[..16])
                .collect::<Vec<_>>()
                .join(", ")
        ));
        evidence_ids.push(ids);
    }
    if crate::evidence::is_full(kept.len()) {
        problems.push(format!(
            "the evidence kept here reached its limit of {} records: later refusals were \
             refused but not kept",
            crate::evidence::MAX_RECORDS
        ));
    }
    if json {
        out.line(serde_json::to_string_pretty(&serde_json::json!({
            "ok": problems.is_empty(),
            "entries": mine + theirs,
            "mine": mine,
            "partner": theirs,
            "problems": problems,
            "evidence": evidence_ids,
            "notices": notices,
        }))?);
    } else if problems.is_empty() {
        out.line(format!(
            "verified {} entries ({mine} yours, {theirs} your partner's): signatures, hash chains, encryption and both devices' views intact",
            mine + theirs
        ));
    } else {
        for problem in &problems {
            out.note(format!("problem: {problem}"));
        }
        out.note(format!(
            "{} problem(s) found in {} entries",
            problems.len(),
            mine + theirs
        ));
    }
    if !json {
        for notice in &notices {
            out.note(format!("notice: {notice}"));
        }
    }
    if !problems.is_empty() {
        out.code = 1;
    }
    Ok(())
}

/// `candor space fingerprint`: a short number over both logs' heads, to compare in person.
pub fn fingerprint(ctx: &Ctx, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let me = paired.identity.secrets.device_key();
    let mut heads = Vec::new();
    for author in std::iter::once(me).chain(paired.config.partner.map(|p| p.device)) {
        let head = ctx.store.head(&author)?;
        heads.push((author, head.count, head.hash));
    }
    out.line(candor_shared::audit::heads_fingerprint(
        &paired.config.space,
        &heads,
    ));
    Ok(())
}
