//! The application core: the one API that the command line and the web app call.
//!
//! Everything a person can see or do with a paired device goes through three values:
//!
//! * [`Paired`]: this device, its space and the space key — loaded once per command or
//!   request from the home and the store ([`Paired::load`]).
//! * [`Reader`]: every view, read from the store's read model (maintained as entries are
//!   stored; rebuilt here first if it is missing or old): the timeline
//!   ([`Reader::timeline`], paged from the newest end), the trust ledger ([`Reader::ledger`]),
//!   weekly goals ([`Reader::goals`]), what needs the person now ([`Reader::today`], with
//!   [`Reader::mark_looked`]), names. Nothing is verified or decrypted again: what the
//!   store holds was verified before it was stored.
//! * [`Writer`]: appends this device's entries (each sealed, signed and chained by the store
//!   under its write lock, with a nonce drawn from the OS random number generator here, and
//!   durable before it returns), and wakes a running `sync --watch` to push them.
//!
//! Callers own presentation: the CLI renders the views as text or `--json`
//! (`crate::commands`), the web app as HTML. Both run the same calls, so both show the same
//! thing. Below this layer sit the store (`crate::store`), the home (`crate::home`) and the
//! network (`crate::net`, driven by `crate::syncer`).
//!
//! ```no_run
//! # fn demo(home: &candor::home::Home, store: &candor::store::Store) -> anyhow::Result<()> {
//! use candor::app::{Paired, Reader, Writer};
//! let paired = Paired::load(home, store)?;
//! let reader = Reader::open(store, &paired, |_done, _total| {})?;
//! for entry in reader.timeline(Some(20))? {
//!     println!("{} {} {}", entry.time, entry.kind, entry.text);
//! }
//! let open = reader.ledger(candor::timefmt::now_ms())?.promises.len();
//! # let _ = open;
//! Writer::new(store, &paired, None).write_shared(vec![/* payloads */])?;
//! # Ok(()) }
//! ```

mod reader;
mod today;
pub mod views;
mod writer;

use crate::home::{Home, Identity};
use crate::store::{LogWriter, SpaceConfig, Store};
use anyhow::{anyhow, Result};
use candor_shared::keys::SpaceKey;
use candor_shared::DeviceKey;

pub use reader::{About, Reader, TimelineEntry};
pub use today::{
    AgreementItem, OverdueCheckin, PartnerLeft, PromiseToConfirm, SupportToAnswer, Today, WeekGoal,
    NEW_ENTRIES_SHOWN,
};
pub use writer::Writer;

/// A paired device: identity, space configuration and key.
#[derive(Clone)]
pub struct Paired {
    /// This device.
    pub identity: Identity,
    /// The space.
    pub config: SpaceConfig,
    /// The space key.
    pub key: SpaceKey,
    /// The invite secret, kept by the creating device to check the joiner's proof.
    pub invite_secret: Option<candor_shared::invite::InviteSecret>,
}

impl Paired {
    /// Loads identity, space configuration and key; a clear error if not paired yet.
    pub fn load(home: &Home, store: &Store) -> Result<Paired> {
        let identity = home.identity()?;
        let config = store.space_config()?.ok_or_else(|| {
            anyhow!(
                "this device is not in a space yet: run `candor space create` (first partner) \
                 or `candor space join INVITE` (second partner)"
            )
        })?;
        let secrets = home.space_key()?.ok_or_else(|| {
            anyhow!(
                "the space key file is missing from {}",
                home.root().display()
            )
        })?;
        if secrets.space != config.space {
            return Err(anyhow!("the space key file belongs to another space"));
        }
        Ok(Paired {
            identity,
            config,
            key: secrets.key,
            invite_secret: secrets.invite_secret,
        })
    }

    /// This device's key.
    pub fn me(&self) -> DeviceKey {
        self.identity.secrets.device_key()
    }

    /// The partner's device key, once known.
    pub fn partner(&self) -> Option<DeviceKey> {
        self.config.partner.as_ref().map(|p| p.device)
    }

    /// What sealing this device's next entries needs: its keys, the space, and the partner
    /// whose verified head each entry records.
    pub fn writer(&self) -> LogWriter<'_> {
        LogWriter {
            author: &self.identity.secrets,
            space: &self.config.space,
            key: &self.key,
            partner: self.config.partner.as_ref().map(|p| &p.device),
        }
    }
}
