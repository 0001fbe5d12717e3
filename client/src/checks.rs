//! The consistency checks both `candor sync` and `candor verify` run over the stored logs (see
//! `candor_shared::audit`), and the checkpoint a device writes so its partner learns what it
//! has verified.

use crate::commands::{random, Paired};
use crate::store::{Store, StoreError};
use candor_shared::audit::{audit_with, AuditEntry, Finding};
use candor_shared::entry::{id_of, Entry, Header, HEADER_LEN};
use candor_shared::payload::{Checkpoint, Content};
use candor_shared::sync::{checkpoint_due, PartnerEntry};
use candor_shared::DeviceKey;

/// The headers and ids of a stored log. Stored entries were verified before they were stored,
/// so this only decodes headers (no signature checks), keeping the audit cheap enough to run
/// after every sync round.
fn audit_log(store: &Store, author: &DeviceKey) -> Result<Vec<AuditEntry>, StoreError> {
    store
        .log_entries(author, 0)
        .map(|item| {
            let (_, bytes) = item?;
            let corrupt = || StoreError::Corrupt("a stored entry is truncated".into());
            let header: &[u8; HEADER_LEN] = bytes
                .get(..HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(corrupt)?;
            Ok(AuditEntry {
                id: id_of(&bytes).ok_or_else(corrupt)?,
                header: Header::decode(header)
                    .map_err(|e| StoreError::Corrupt(format!("stored entry: {e}")))?,
            })
        })
        .collect()
}

/// What the two logs' signed views say about each other, now.
pub fn findings(store: &Store, paired: &Paired, now_ms: u64) -> Result<Vec<Finding>, StoreError> {
    let mine = audit_log(store, &paired.identity.secrets.device_key())?;
    let theirs = match paired.config.partner {
        Some(partner) => audit_log(store, &partner.device)?,
        None => Vec::new(),
    };
    Ok(audit_with(&mine, &theirs, now_ms, &store.future_dated()?))
}

/// Writes a checkpoint if one is due ([`checkpoint_due`]: this device has verified partner
/// entries that its own log does not yet say it has seen). Returns whether it wrote one.
pub fn checkpoint_if_behind(store: &Store, paired: &Paired) -> anyhow::Result<bool> {
    let Some(partner) = paired.config.partner else {
        return Ok(false);
    };
    let me = paired.identity.secrets.device_key();
    let own = store.head(&me)?;
    let recorded = match own.count.checked_sub(1) {
        Some(last) => store
            .log_entries(&me, last)
            .next()
            .transpose()?
            .and_then(|(_, bytes)| {
                let header: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
                Header::decode(header).ok()
            })
            .map_or(0, |h| h.partner_seen.count),
        None => 0,
    };
    let unacknowledged = store.log_entries(&partner.device, recorded).map(|item| {
        item.map(|(_, bytes)| PartnerEntry {
            control: candor_shared::entry::peek_is_control(&bytes),
            asks_countersign: asks_countersign(&bytes, paired),
        })
    });
    if !checkpoint_due(true, store.left_at()?.is_some(), unacknowledged)? {
        return Ok(false);
    }
    write_checkpoint(store, paired, false)?;
    Ok(true)
}

/// Whether a stored partner entry is a checkpoint asking this device to countersign it.
fn asks_countersign(bytes: &[u8], paired: &Paired) -> bool {
    let Ok(entry) = Entry::from_bytes(bytes) else {
        return false;
    };
    matches!(
        entry.open(&paired.key).map(|p| p.content()),
        Ok(Ok(Content::Checkpoint(Some(Checkpoint {
            countersign: true,
            ..
        }))))
    )
}

/// Appends a checkpoint to this device's log: its header records the partner head this device
/// verified, its content the Merkle root of the own log before it.
pub fn write_checkpoint(
    store: &Store,
    paired: &Paired,
    countersign: bool,
) -> anyhow::Result<Entry> {
    let nonce = random::<24>()?;
    Ok(store.append_checkpoint(
        &paired.writer(),
        countersign,
        crate::timefmt::now_ms(),
        || Ok(nonce),
    )?)
}
