//! [`Writer`]: appends this device's entries.

use super::Paired;
use crate::store::{os_nonce, EntryKeyFn, Store};
use crate::timefmt;
use anyhow::{bail, Result};
use candor_shared::entry::{Class, Entry};
use candor_shared::payload::Payload;
use tokio::sync::Notify;

/// Writes this device's entries: the store seals, signs and chains them under its write lock
/// with nonces the writer draws from the OS random number generator (an error there writes
/// nothing), and flushes before it returns; then a running `sync --watch` is woken to push them.
pub struct Writer<'a> {
    store: &'a Store,
    paired: &'a Paired,
    wake: Option<&'a Notify>,
}

impl<'a> Writer<'a> {
    /// A writer for `paired` into `store`; `wake` is the watcher to tell (if running in it).
    pub fn new(store: &'a Store, paired: &'a Paired, wake: Option<&'a Notify>) -> Self {
        Writer {
            store,
            paired,
            wake,
        }
    }

    /// Appends `items` (class and payload each) in one transaction: all are written or none.
    /// Refused once this device has left the space.
    pub fn write(&self, items: Vec<(Class, Payload)>) -> Result<Vec<Entry>> {
        self.refuse_after_leaving()?;
        let entries =
            self.store
                .append_own(&self.paired.writer(), items, timefmt::now_ms(), os_nonce)?;
        self.wrote();
        Ok(entries)
    }

    /// Appends shared-class entries.
    pub fn write_shared(&self, payloads: Vec<Payload>) -> Result<Vec<Entry>> {
        self.write(payloads.into_iter().map(|p| (Class::Shared, p)).collect())
    }

    /// Like [`Writer::write`], each entry sealed under a key chosen from its nonce (a journal
    /// entry's, derived from the journal key).
    pub fn write_sealed(&self, items: Vec<(Class, Payload, EntryKeyFn<'_>)>) -> Result<Vec<Entry>> {
        self.refuse_after_leaving()?;
        let entries = self.store.append_own_sealed(
            &self.paired.writer(),
            items,
            timefmt::now_ms(),
            os_nonce,
        )?;
        self.wrote();
        Ok(entries)
    }

    fn refuse_after_leaving(&self) -> Result<()> {
        if let Some(at) = self.store.left_at()? {
            bail!(
                "you left this space on {}; nothing more is written to it (your copy stays readable)",
                timefmt::short(at)
            );
        }
        Ok(())
    }

    fn wrote(&self) {
        if let Some(wake) = self.wake {
            wake.notify_one();
        }
    }
}
