//! `candor verify`: re-checks every stored entry of both logs.

use super::{Ctx, Paired};
use crate::output::Output;
use anyhow::Result;
use candor_shared::chain::LogHead;
use candor_shared::entry::{Class, Entry};
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
        if entry.header.class != Class::Private {
            if let Err(e) = entry.open(&paired.key) {
                problems.push(format!("{who} entry {seq}: {e}"));
            }
        }
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
    if json {
        out.line(serde_json::to_string_pretty(&serde_json::json!({
            "ok": problems.is_empty(),
            "entries": mine + theirs,
            "mine": mine,
            "partner": theirs,
            "problems": problems,
        }))?);
    } else if problems.is_empty() {
        out.line(format!(
            "verified {} entries ({mine} yours, {theirs} your partner's): signatures, hash chains and encryption intact",
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
    if !problems.is_empty() {
        out.code = 1;
    }
    Ok(())
}
