//! The consistency checks both `candor sync` and `candor verify` run over the stored logs (see
//! `candor_shared::audit`), and the checkpoint a device writes so its partner learns what it
//! has verified.

use crate::commands::{random, Paired};
use crate::store::{LogWriter, Store, StoreError};
use candor_shared::audit::{audit, AuditEntry, Finding};
use candor_shared::entry::{Class, Entry};
use candor_shared::payload::Payload;
use candor_shared::DeviceKey;

fn audit_log(store: &Store, author: &DeviceKey) -> Result<Vec<AuditEntry>, StoreError> {
    store
        .log_entries(author, 0)
        .map(|item| {
            let (_, bytes) = item?;
            let entry = Entry::from_bytes(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("stored entry: {e}")))?;
            Ok(AuditEntry {
                id: entry.hash,
                header: entry.header,
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
    Ok(audit(&mine, &theirs, now_ms))
}

/// Writes a checkpoint if this device has verified partner entries that its own log does not
/// yet say it has seen. Returns whether it wrote one.
pub fn checkpoint_if_behind(store: &Store, paired: &Paired) -> anyhow::Result<bool> {
    let Some(partner) = paired.config.partner else {
        return Ok(false);
    };
    if store.left_at()?.is_some() {
        return Ok(false);
    }
    let me = paired.identity.secrets.device_key();
    let own = store.head(&me)?;
    let recorded = match own.count.checked_sub(1) {
        Some(last) => store
            .log_entries(&me, last)
            .next()
            .transpose()?
            .and_then(|(_, bytes)| Entry::from_bytes(&bytes).ok())
            .map_or(0, |e| e.header.partner_seen.count),
        None => 0,
    };
    // Only entries the partner wrote (not their own checkpoints) call for a checkpoint; otherwise
    // two devices would answer each other's checkpoints for ever.
    let mut unacknowledged = false;
    for item in store.log_entries(&partner.device, recorded) {
        let (_, bytes) = item?;
        if !candor_shared::entry::peek_is_control(&bytes) {
            unacknowledged = true;
            break;
        }
    }
    if !unacknowledged {
        return Ok(false);
    }
    let nonce = random::<24>()?;
    store.append_own(
        &LogWriter {
            author: &paired.identity.secrets,
            space: &paired.config.space,
            key: &paired.key,
            partner: Some(&partner.device),
        },
        vec![(Class::Control, Payload::checkpoint())],
        crate::timefmt::now_ms(),
        || nonce,
    )?;
    Ok(true)
}
