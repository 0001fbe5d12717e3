//! The device side of sync, without I/O: what to ask the relay, what to make of its answers.
//!
//! Two layers, both sans-IO (no sockets, no clock, no randomness: time is passed in):
//!
//! * [`SyncMachine`] (`machine.rs`) — heads → push → pull with a window of requests in flight:
//!   pushes of the next batches of a log and pulls of the next pages are pipelined; answers are
//!   applied in log and cursor order; every request is idempotent at the relay, so an answer that
//!   never comes is recovered by re-sending (a timer, [`SyncMachine::handle_timeout`]).
//! * [`SyncSession`] (`session.rs`) — one connected session of a device: the machine, plus partner
//!   discovery (checking the joiner's membership proof), what follows a refused page entry
//!   ([`judge`]: restart the pull, or keep evidence and freeze), and when to checkpoint and audit
//!   (at the end of a round, or in watch mode once the space is quiet). A driver feeds it answers,
//!   notifications, local writes and timer expiries, and performs the [`Action`]s it polls.
//!
//! Which entries of a page a device accepts (frozen logs, chain, adopt-own, checkpoint roots) is
//! [`judge_page`] (`page.rs`), over the device's logs as a [`HeldLogs`]; the driver stores what
//! it accepted.
//!
//! The simulation (`sim.rs`, tests only) drives exactly the [`SyncSession`] API on a simulated clock
//! over a network that drops, duplicates, delays and reorders messages.

mod judge;
mod machine;
mod page;
mod session;
mod verify;

pub use judge::{checkpoint_due, judge_refusal, EvidencePlan, Judgement, PartnerEntry, Refusal};
pub use machine::{SyncMachine, DEFAULT_WINDOW, RETRY_AFTER};
pub use page::{judge_page, HeldLogs, PageRefusal, PageVerdict};
pub use session::{
    Action, Applied, Mode, PageOutcome, SessionConfig, SessionError, SyncSession, CHECK_AT_LEAST,
    CHECK_QUIET,
};
pub use verify::{
    precheck, precheck_batch, verify_incoming, verify_prechecked, Incoming, IncomingError, LogKeys,
    Prechecked,
};

use crate::wire::PagedEntry;
use crate::DeviceKey;

/// Read access to the logs this device holds.
pub trait LocalLog {
    /// The store's error type.
    type Error: std::error::Error;
    /// Number of entries held of `author`'s log.
    fn count(&self, author: &DeviceKey) -> Result<u64, Self::Error>;
    /// Entries of `author`'s log in wire form, from `from_seq`, at most `limit`.
    fn entries(
        &self,
        author: &DeviceKey,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Self::Error>;
}

/// Something the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// Entries pulled from the relay, in cursor order: verify and store each.
    Pulled(Vec<PagedEntry>),
    /// Persist this pull cursor (emitted after the `Pulled` it covers).
    Cursor(u64),
    /// The relay now durably holds these entries of this device's own log (entries it lacked
    /// when sync began or after the last push): `count` entries from seq `from`. With pushes
    /// pipelined these may come out of order; the relay holds every entry before `from + count`.
    Pushed {
        /// First seq.
        from: u64,
        /// How many.
        count: u64,
    },
    /// The relay holds less of the partner's log than this device verified: it lost data (or
    /// rolled it back). The machine re-uploads the missing entries; tell the person.
    RelayBehind {
        /// The partner device.
        partner: DeviceKey,
        /// Entries this device verified.
        ours: u64,
        /// Entries the relay holds.
        relay: u64,
    },
    /// The relay again holds this many of the partner's entries that it had lost.
    Restored(u64),
    /// The relay holds `relay` entries of this device's own log, fewer than the `ours` this
    /// device holds; the missing ones will be pushed. Whether the relay had acknowledged them
    /// before (and so lost them) only the driver knows.
    OwnBehind {
        /// Entries of the own log this device holds.
        ours: u64,
        /// Entries of it the relay holds.
        relay: u64,
    },
    /// The relay's cursors no longer match this device's (it was restored from a backup or lost
    /// data): persist cursor 0; everything is pulled again and entries already held are skipped.
    CursorReset,
    /// Push and pull are complete; nothing is outstanding.
    Idle,
}

/// Why sync stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// The relay refused a request.
    #[error("relay refused: {0}")]
    Refused(String),
    /// The relay answered with something that does not fit the request.
    #[error("relay sent an unexpected answer to {0}")]
    Unexpected(&'static str),
    /// The relay refused one of the entries sent.
    #[error("relay refused the entry at seq {seq}: {reason}")]
    EntryRefused {
        /// The entry's seq.
        seq: u64,
        /// The relay's reason.
        reason: String,
    },
    /// The relay claims more of our log than we have.
    #[error(
        "the relay holds {relay} entries of this device's log but this device has only {ours}; \
         was this device restored from an old copy?"
    )]
    AheadOfUs {
        /// Our count.
        ours: u64,
        /// The relay's count.
        relay: u64,
    },
    /// Reading the local log failed.
    #[error("local store: {0}")]
    Local(String),
}

#[cfg(test)]
mod sim;
