//! `candor export --verifiable` and `candor verify-export`: chosen entries with what a third
//! party needs to check them offline (see `candor_shared::proof` for what is proven).
//!
//! The file is JSON. Its binary parts (entries, keys, paths) are what gets verified; its
//! readable parts (names, times, kinds, texts) are recomputed from them on verification, and the
//! whole file must then be byte-for-byte what this version writes, so any change to it — even to
//! a readable field — fails verification.

use super::disclosed::{describe, entry_lines};
use super::log::printable;
use super::{log::resolve, Ctx, Paired};
use crate::checks::write_checkpoint;
use crate::output::Output;
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use candor_shared::entry::{
    peek_is_control, Class, Entry, EntryKey, Header, HEADER_LEN, SIGNATURE_LEN,
};
use candor_shared::keys::{safety_number, verify_signature, DevicePublic, EXPORT_SIGNATURE_PREFIX};
use candor_shared::merkle::{inclusion_proof, TreeHash};
use candor_shared::payload::Content;
use candor_shared::proof::{verify_log, Disclosure, LogProof, ProvenLog};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The format tag of the file. Version 2 always holds both logs (each with its author's
/// introduction, so the space's safety number can be computed from the file) and renders every
/// kind with its dates and the entry it refers to.
pub const FORMAT: &str = "candor verifiable export 2";
/// Largest export file `verify-export` reads.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The file.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    format: String,
    /// What this file is, for a reader who opens it without Candor.
    about: String,
    space: String,
    logs: Vec<LogSection>,
    /// The device that wrote the file: one of the devices in it.
    exported_by: String,
    /// Its Ed25519 signature (prefix `candor/v1/verifiable-export\0`) over this file as written
    /// with this field empty, so removing or reordering anything is caught too.
    signature: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct LogSection {
    author: String,
    /// From the author's introduction (seq 0), which every export discloses.
    author_name: Option<String>,
    /// Entries in the log before the checkpoint; the left-out ones are revealed only as this count.
    entries_in_log: u64,
    checkpoint: CheckpointPart,
    countersigned_by: Countersignature,
    entries: Vec<EntryPart>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CheckpointPart {
    id: String,
    time: String,
    entry: String,
    entry_key: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Countersignature {
    device: String,
    seq: u64,
    time: String,
    signed_header: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct EntryPart {
    seq: u64,
    id: String,
    time: String,
    kind: String,
    text: String,
    /// Dates the entry carries (due, when, review, original, eta), RFC 3339.
    dates: BTreeMap<String, String>,
    /// The id of the entry this one refers to (promise, goal, request, agreement, correction).
    refers_to: Option<String>,
    entry: String,
    entry_key: String,
    path: Vec<String>,
}

const ABOUT: &str = "Entries chosen from a Candor space, each signed by its author's device and \
    proven (by a Merkle audit path) to sit at its place in that device's log, whose head the \
    partner's device acknowledged in a signed header. Check it with `candor verify-export FILE`.";

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// Where a log's proof stands.
enum Anchor {
    /// A checkpoint covering the chosen entries and the partner header acknowledging it.
    Ready {
        checkpoint: Box<Entry>,
        counter: Vec<u8>,
    },
    /// Not yet: the message says what happens next.
    Pending(String),
}

/// `candor export --verifiable --select IDS --out FILE [--force]`.
pub fn export_verifiable(
    ctx: &Ctx,
    select: &str,
    out_path: &Path,
    force: bool,
    out: &mut Output,
) -> Result<()> {
    let paired = ctx.paired()?;
    let me = paired.identity.secrets.device_key();
    let partner = paired.config.partner.map(|p| p.device).ok_or_else(|| {
        anyhow!("a verifiable export needs your partner's countersignature: pair first")
    })?;
    let path = ctx.path(out_path);
    refuse_overwrite(&path, force)?;

    // The chosen entries, grouped by author; both logs are always in the file, so that it
    // introduces both people and their keys (from which the reader computes the safety number).
    let mut chosen: BTreeMap<[u8; 32], Vec<u64>> = BTreeMap::new();
    chosen.insert(me.0, Vec::new());
    chosen.insert(partner.0, Vec::new());
    for id in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (author, hash) = resolve(ctx, id)?;
        let seq = ctx
            .store
            .find_by_prefix(&hash.to_hex())?
            .first()
            .map(|(_, seq, _)| *seq)
            .ok_or_else(|| anyhow!("entry {id} vanished from the store"))?;
        let bytes = entry_bytes(ctx, &author, seq)?;
        if peek_is_control(&bytes) {
            bail!(
                "{id} is protocol bookkeeping, not a record; choose entries from `candor log list`"
            );
        }
        let entry = Entry::from_bytes(&bytes)?;
        if entry.header.class == Class::Private || entry.open_readable(&paired.key)?.is_none() {
            bail!("{id} is a private journal entry; only entries both partners can read can be disclosed");
        }
        chosen.entry(author.0).or_default().push(seq);
    }
    if chosen.values().all(Vec::is_empty) {
        bail!("choose at least one entry: --select ID,ID… (ids from `candor log list`)");
    }

    let mut sections = Vec::new();
    let mut pending = Vec::new();
    for (author, seqs) in &mut chosen {
        let author = DeviceKey(*author);
        let other = if author == me { partner } else { me };
        seqs.sort_unstable();
        seqs.dedup();
        // Every export introduces the author: disclose the hello entry too.
        if seqs.first() != Some(&0) {
            seqs.insert(0, 0);
        }
        let last = seqs.last().copied().unwrap_or(0);
        match anchor(ctx, &paired, &author, &other, last)? {
            Anchor::Ready {
                checkpoint,
                counter,
            } => sections.push(section(ctx, &paired, &author, seqs, &checkpoint, &counter)?),
            Anchor::Pending(message) => pending.push(message),
        }
    }
    if !pending.is_empty() {
        ctx.wrote();
        for message in pending {
            out.note(message);
        }
        out.note(
            "Nothing was exported yet. Sync both devices (here, then your partner's, then here \
             again; a running `candor sync --watch` does this by itself), then run the same \
             export again.",
        );
        out.code = 3;
        return Ok(());
    }

    let mut file = ExportFile {
        format: FORMAT.into(),
        about: ABOUT.into(),
        space: paired.config.space.to_hex(),
        logs: sections,
        exported_by: me.to_hex(),
        signature: String::new(),
    };
    let unsigned = render(&file)?;
    file.signature = hex::encode(
        paired
            .identity
            .secrets
            .sign(EXPORT_SIGNATURE_PREFIX, unsigned.as_bytes()),
    );
    let text = render(&file)?;
    // Check what we wrote with the same code a third party runs.
    verify_text(&text).context("the export failed its own verification (a bug)")?;
    write_file(&path, text.as_bytes(), force)?;
    let disclosed: usize = file.logs.iter().map(|l| l.entries.len()).sum();
    out.line(format!(
        "Wrote a verifiable export of {disclosed} entries to {}",
        path.display()
    ));
    out.line(
        "It contains the plaintext of those entries (and each author's name), and nothing of the \
         others but their number. Anyone can check it with `candor verify-export FILE`.",
    );
    Ok(())
}

fn entry_bytes(ctx: &Ctx, author: &DeviceKey, seq: u64) -> Result<Vec<u8>> {
    Ok(ctx
        .store
        .log_entries(author, seq)
        .next()
        .transpose()?
        .filter(|(s, _)| *s == seq)
        .ok_or_else(|| anyhow!("entry {seq} of {} is missing", author.short()))?
        .1
        .to_vec())
}

/// The checkpoint of `author` after seq `last` that `other` acknowledged exactly, if any.
fn find_anchor(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    other: &DeviceKey,
    last: u64,
) -> Result<Option<(Entry, Vec<u8>)>> {
    // Headers of `other` by the (count, head) of `author`'s log they acknowledge.
    let mut acknowledging: HashMap<(u64, EntryHash), Vec<u8>> = HashMap::new();
    for item in ctx.store.log_entries(other, 0) {
        let (_, bytes) = item?;
        let Some(signed) = bytes.get(..HEADER_LEN + SIGNATURE_LEN) else {
            continue;
        };
        let seen = stored_header(&bytes)?.partner_seen;
        acknowledging
            .entry((seen.count, seen.head))
            .or_insert_with(|| signed.to_vec());
    }
    for item in ctx.store.log_entries(author, last + 1) {
        let (seq, bytes) = item?;
        if !peek_is_control(&bytes) {
            continue;
        }
        let entry = Entry::from_bytes(&bytes)?;
        if !matches!(
            entry.open(&paired.key)?.content(),
            Ok(Content::Checkpoint(Some(_)))
        ) {
            continue;
        }
        if let Some(counter) = acknowledging.get(&(seq + 1, entry.hash)) {
            return Ok(Some((entry, counter.clone())));
        }
    }
    Ok(None)
}

/// Finds the checkpoint and countersignature for `author`'s entries up to `last`, writing a
/// checkpoint of this device where that is what is missing.
fn anchor(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    other: &DeviceKey,
    last: u64,
) -> Result<Anchor> {
    if let Some((checkpoint, counter)) = find_anchor(ctx, paired, author, other, last)? {
        return Ok(Anchor::Ready {
            checkpoint: Box::new(checkpoint),
            counter,
        });
    }
    let me = paired.identity.secrets.device_key();
    let partner_name = "your partner's device";
    if *author != me {
        // The partner's log: if its latest entry is a checkpoint covering the chosen entries,
        // this device countersigns it right now.
        let head = ctx.store.head(author)?;
        if let Some(top) = head.count.checked_sub(1).filter(|&top| top > last) {
            let entry = Entry::from_bytes(&entry_bytes(ctx, author, top)?)?;
            if matches!(
                entry.open(&paired.key)?.content(),
                Ok(Content::Checkpoint(Some(_)))
            ) {
                ensure_writable(ctx)?;
                write_checkpoint(&ctx.store, paired, false)?;
                if let Some((checkpoint, counter)) = find_anchor(ctx, paired, author, other, last)?
                {
                    return Ok(Anchor::Ready {
                        checkpoint: Box::new(checkpoint),
                        counter,
                    });
                }
            }
        }
    }
    // Ask the partner's device for a checkpoint (which also acknowledges ours), unless an earlier
    // request is still unanswered.
    if !request_pending(ctx, paired, other)? {
        ensure_writable(ctx)?;
        write_checkpoint(&ctx.store, paired, true)?;
    }
    Ok(Anchor::Pending(if *author == me {
        format!(
            "Your entries are not provable yet: this device wrote a checkpoint of your log and \
             asked {partner_name} to acknowledge it."
        )
    } else {
        format!(
            "Your partner's entries are not provable yet: this device asked {partner_name} for a \
             checkpoint of their log, which this device will then acknowledge."
        )
    }))
}

/// Whether this device has a checkpoint asking for a countersignature that the partner has not
/// answered yet (the partner's log acknowledges nothing at or after it).
fn request_pending(ctx: &Ctx, paired: &Paired, partner: &DeviceKey) -> Result<bool> {
    let me = paired.identity.secrets.device_key();
    let mut latest_request = None;
    for item in ctx.store.log_entries(&me, 0) {
        let (seq, bytes) = item?;
        if !peek_is_control(&bytes) {
            continue;
        }
        let entry = Entry::from_bytes(&bytes)?;
        if let Ok(Content::Checkpoint(Some(c))) = entry.open(&paired.key)?.content() {
            if c.countersign {
                latest_request = Some(seq);
            }
        }
    }
    let Some(request) = latest_request else {
        return Ok(false);
    };
    for item in ctx.store.log_entries(partner, 0) {
        let (_, bytes) = item?;
        if stored_header(&bytes)?.partner_seen.count > request {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The header of an entry this store verified before storing it.
fn stored_header(bytes: &[u8]) -> Result<Header> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| anyhow!("a stored entry is truncated"))?;
    Ok(Header::decode(header)?)
}

fn ensure_writable(ctx: &Ctx) -> Result<()> {
    if ctx.store.left_at()?.is_some() {
        bail!("you left this space, so this device writes no more entries (not even the checkpoint a verifiable export needs)");
    }
    Ok(())
}

fn section(
    ctx: &Ctx,
    paired: &Paired,
    author: &DeviceKey,
    seqs: &[u64],
    checkpoint: &Entry,
    counter: &[u8],
) -> Result<LogSection> {
    let size = checkpoint.header.seq;
    let mut ids = Vec::with_capacity(size as usize);
    for item in ctx.store.log_entries(author, 0).take(size as usize) {
        let (_, bytes) = item?;
        ids.push(
            candor_shared::entry::id_of(&bytes)
                .ok_or_else(|| anyhow!("a stored entry is truncated"))?,
        );
    }
    let mut disclosed = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let entry = Entry::from_bytes(&entry_bytes(ctx, author, seq)?)?;
        let index = usize::try_from(seq)?;
        disclosed.push(Disclosure {
            entry_key: entry.entry_key(&paired.key),
            path: inclusion_proof(&ids, index)
                .ok_or_else(|| anyhow!("entry {seq} is beyond the checkpoint"))?,
            entry: entry.to_bytes(),
        });
    }
    let proof = LogProof {
        checkpoint: checkpoint.to_bytes(),
        checkpoint_key: checkpoint.entry_key(&paired.key),
        countersignature: counter.to_vec(),
        entries: disclosed,
    };
    let proven = verify_log(&paired.config.space, &proof)?;
    Ok(render_section(&proof, &proven))
}

/// The file section of a verified log proof: binary parts from `proof`, readable parts from
/// what verification established.
fn render_section(proof: &LogProof, proven: &ProvenLog) -> LogSection {
    let entries: Vec<EntryPart> = proof
        .entries
        .iter()
        .zip(&proven.entries)
        .map(|(d, p)| {
            let described = describe(&p.payload);
            EntryPart {
                seq: p.seq,
                id: p.id.to_hex(),
                time: timefmt::rfc3339(p.time_ms),
                kind: described.kind,
                text: described.text,
                dates: described.dates,
                refers_to: described.refers_to.map(|h| h.to_hex()),
                entry: B64.encode(&d.entry),
                entry_key: hex::encode(d.entry_key.0),
                path: d.path.iter().map(TreeHash::to_hex).collect(),
            }
        })
        .collect();
    let author_name = proven
        .entries
        .iter()
        .find_map(|e| match e.payload.content() {
            Ok(Content::Hello(hello)) if e.seq == 0 => Some(hello.name),
            _ => None,
        });
    LogSection {
        author: proven.author.to_hex(),
        author_name,
        entries_in_log: proven.size,
        checkpoint: CheckpointPart {
            id: proven.checkpoint.to_hex(),
            time: timefmt::rfc3339(proven.checkpoint_time_ms),
            entry: B64.encode(&proof.checkpoint),
            entry_key: hex::encode(proof.checkpoint_key.0),
        },
        countersigned_by: Countersignature {
            device: proven.countersigner.to_hex(),
            seq: proven.countersigner_seq,
            time: timefmt::rfc3339(proven.countersigned_time_ms),
            signed_header: B64.encode(&proof.countersignature),
        },
        entries,
    }
}

fn render(file: &ExportFile) -> Result<String> {
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    Ok(text)
}

fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    crate::files::write_new(path, bytes, force)
}

fn refuse_overwrite(path: &Path, force: bool) -> Result<()> {
    crate::files::refuse_overwrite(path, force)
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What a verified export holds.
pub struct Verified {
    space: SpaceId,
    exported_by: String,
    logs: Vec<LogSection>,
    /// The space's safety number, computed from the space id and both introductions in the file.
    safety_number: String,
}

fn decode_b64(what: &str, text: &str) -> Result<Vec<u8>> {
    B64.decode(text)
        .map_err(|e| anyhow!("{what} is not valid base64: {e}"))
}

fn decode_key(what: &str, text: &str) -> Result<EntryKey> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).map_err(|_| anyhow!("{what} is not 64 hex digits"))?;
    Ok(EntryKey(key))
}

fn decode_hash(text: &str) -> Result<TreeHash> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash)
        .map_err(|_| anyhow!("an audit path hash is not 64 hex digits"))?;
    Ok(TreeHash(hash))
}

/// Verifies the text of an export file.
pub fn verify_text(text: &str) -> Result<Verified> {
    let file: ExportFile = serde_json::from_str(text)
        .map_err(|e| anyhow!("this is not a Candor verifiable export: {e}"))?;
    if file.format != FORMAT {
        bail!(
            "unknown export format {:?} (this version reads {FORMAT:?})",
            file.format
        );
    }
    let space = SpaceId::from_hex(&file.space).map_err(|e| anyhow!("space: {e}"))?;
    if file.logs.len() != 2 {
        bail!(
            "an export holds both partners' logs, this one {}",
            file.logs.len()
        );
    }
    let mut sections = Vec::with_capacity(file.logs.len());
    let mut people = Vec::with_capacity(2);
    for log in &file.logs {
        let proof = LogProof {
            checkpoint: decode_b64("the checkpoint", &log.checkpoint.entry)?,
            checkpoint_key: decode_key("the checkpoint's key", &log.checkpoint.entry_key)?,
            countersignature: decode_b64(
                "the countersignature",
                &log.countersigned_by.signed_header,
            )?,
            entries: log
                .entries
                .iter()
                .map(|e| {
                    Ok(Disclosure {
                        entry: decode_b64("an entry", &e.entry)?,
                        entry_key: decode_key("an entry key", &e.entry_key)?,
                        path: e
                            .path
                            .iter()
                            .map(|h| decode_hash(h))
                            .collect::<Result<_>>()?,
                    })
                })
                .collect::<Result<_>>()?,
        };
        let proven = verify_log(&space, &proof)?;
        people.push(introduction(&proven)?);
        sections.push(render_section(&proof, &proven));
    }
    let ([a, b], [first, second]) = (sections.as_slice(), people.as_slice()) else {
        bail!("an export holds both partners' logs");
    };
    if a.author == b.author || a.countersigned_by.device != b.author {
        bail!("the two logs are not two partners' logs countersigned by each other");
    }
    let safety_number = safety_number(&space, first, second);
    let exporter =
        DeviceKey::from_hex(&file.exported_by).map_err(|e| anyhow!("exported_by: {e}"))?;
    let exporter_hex = exporter.to_hex();
    if !sections
        .iter()
        .any(|l| l.author == exporter_hex || l.countersigned_by.device == exporter_hex)
    {
        bail!("the file claims to be exported by a device that is not in it");
    }
    let mut canonical = ExportFile {
        format: FORMAT.into(),
        about: ABOUT.into(),
        space: space.to_hex(),
        logs: sections,
        exported_by: exporter_hex,
        signature: String::new(),
    };
    let unsigned = render(&canonical)?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&file.signature, &mut signature)
        .map_err(|_| anyhow!("the file's signature is not 128 hex digits"))?;
    verify_signature(
        &exporter,
        EXPORT_SIGNATURE_PREFIX,
        unsigned.as_bytes(),
        &signature,
    )
    .map_err(|_| {
        anyhow!("the file was changed after it was written: its signature does not match")
    })?;
    canonical.signature = file.signature.clone();
    if render(&canonical)? != text {
        bail!(
            "the file was changed after it was written: its readable parts do not match the \
             signed entries they claim to show"
        );
    }
    Ok(Verified {
        space,
        exported_by: canonical.exported_by,
        logs: canonical.logs,
        safety_number,
    })
}

/// The author's public keys from the introduction (seq 0) a log section must disclose.
fn introduction(proven: &ProvenLog) -> Result<DevicePublic> {
    proven
        .entries
        .iter()
        .find_map(|e| match e.payload.content() {
            Ok(Content::Hello(hello)) if e.seq == 0 => Some(DevicePublic {
                device: proven.author,
                exchange: hello.exchange,
            }),
            _ => None,
        })
        .ok_or_else(|| {
            anyhow!(
                "the log of device {} does not disclose its introduction (seq 0)",
                proven.author.short()
            )
        })
}

/// `candor verify-export FILE`: needs no identity, store or key.
pub fn verify_export(path: &Path, json: bool) -> Result<Output> {
    let mut out = Output::default();
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_FILE {
        bail!("{} is {size} bytes, larger than any export", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let verified = match verify_text(&text) {
        Ok(verified) => verified,
        Err(e) => {
            if json {
                out.line(
                    serde_json::json!({"valid": false, "error": format!("{e:#}")}).to_string(),
                );
            }
            out.note(format!("INVALID: {e:#}"));
            out.code = 1;
            return Ok(out);
        }
    };
    if json {
        out.line(serde_json::to_string_pretty(&json_report(&verified))?);
        return Ok(out);
    }
    human_report(&verified, &mut out);
    Ok(out)
}

fn json_report(verified: &Verified) -> serde_json::Value {
    serde_json::json!({
        "valid": true,
        "space": verified.space.to_hex(),
        "safety_number": verified.safety_number,
        "exported_by": verified.exported_by,
        "logs": verified.logs.iter().map(|l| serde_json::json!({
            "author": l.author,
            "author_name": l.author_name,
            "entries_in_log": l.entries_in_log,
            "countersigned_by": l.countersigned_by.device,
            "countersigned_at": l.countersigned_by.time,
            "entries": l.entries.iter().map(|e| serde_json::json!({
                "seq": e.seq, "id": e.id, "time": e.time, "kind": e.kind, "text": e.text,
                "dates": e.dates, "refers_to": e.refers_to,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A person's name as the file shows it, escaped, with the device it belongs to.
fn person(verified: &Verified, device: &str) -> String {
    let name = verified
        .logs
        .iter()
        .find(|l| l.author == device)
        .and_then(|l| l.author_name.as_deref())
        .map(|name| printable(name).replace('"', "\\\""))
        .unwrap_or_else(|| "(unnamed)".into());
    format!("\"{name}\" (device {})", &device[..16.min(device.len())])
}

fn human_report(verified: &Verified, out: &mut Output) {
    let [first, second] = [&verified.logs[0].author, &verified.logs[1].author];
    out.line(format!(
        "VALID: every entry below is signed by its author's device and sits at its place in that \
         device's log in space {}; the file is exactly as device {} wrote it.",
        verified.space.short(),
        &verified.exported_by[..16]
    ));
    out.line(format!(
        "The two people: {} and {}.",
        person(verified, first),
        person(verified, second)
    ));
    out.line(format!("Safety number: {}", verified.safety_number));
    out.line(
        "VALID proves the entries are signed by these two devices, not who holds them: anyone \
         can make up a space with fresh keys. Ask both partners to read the safety number from \
         their own devices (`candor space safety-number`): only if both match this one are these \
         their devices and their space.",
    );
    for log in &verified.logs {
        out.line(String::new());
        out.line(format!(
            "{}: {} of {} entries disclosed; the log up to its checkpoint of {} was acknowledged \
             by {} at {}.",
            person(verified, &log.author),
            log.entries.len(),
            log.entries_in_log,
            log.checkpoint.time,
            person(verified, &log.countersigned_by.device),
            log.countersigned_by.time,
        ));
        for e in &log.entries {
            let head = format!("  #{:<5} {}  {:<12}", e.seq, e.time, e.kind);
            let mut details: Vec<String> =
                e.dates.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            if let Some(target) = &e.refers_to {
                details.push(refers_to(verified, target));
            }
            for line in entry_lines(&head, &e.text, &details) {
                out.line(line);
            }
        }
    }
}

/// What an entry refers to: the referred entry itself when the file discloses it.
fn refers_to(verified: &Verified, target: &str) -> String {
    for log in &verified.logs {
        if let Some(e) = log.entries.iter().find(|e| e.id == target) {
            let name = log.author_name.as_deref().unwrap_or("(unnamed)");
            let mut text: String = e.text.chars().take(60).collect();
            if text.len() < e.text.len() {
                text.push('…');
            }
            return format!(
                "refers to {}'s {} #{}: {:?}",
                printable(name),
                e.kind,
                e.seq,
                printable(&text)
            );
        }
    }
    format!(
        "refers to entry {} (not disclosed in this file)",
        &target[..16.min(target.len())]
    )
}
