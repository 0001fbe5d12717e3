//! The trust ledger: promises, plans, acknowledgements, support requests and consented
//! agreements, as records in both partners' logs, and the state derived from them.
//!
//! Nothing here is stored as state: [`derive`] recomputes everything from the records both
//! devices hold, so both devices derive the same ledger from the same logs, whatever order the
//! records arrived in, and no history is ever lost. Rules that depend on who wrote what (only
//! the promiser changes a promise's status; only the other partner confirms it or answers a
//! proposal) are checked here; a record that breaks them is kept and shown as invalid, never
//! applied.

mod derive;
mod records;
mod week;

pub use derive::{
    count_entry, derive, derive_records, status_change_refused, Agreement, AgreementState,
    Confirmation, Departure, HistoryItem, Invalid, Ledger, LedgerEntry, PlanView, Promise,
    PromiseStatus, Support, WeekSummary, ALREADY_ACKNOWLEDGED, ALREADY_ANSWERED,
};
pub use records::{
    code, AgreementProposed, Left, Plan, PromiseMade, PromiseRenegotiated, Record, Reference,
    SupportNeed, SupportReply, SupportRequest,
};
pub use week::{iso_week, IsoWeek};
