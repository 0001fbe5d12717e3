//! The trust ledger's records: what each kind code carries.
//!
//! Every record is an ordinary entry of its author's log (signed, chained, encrypted); the kind
//! code says which of these structs its content is. Records refer to earlier entries by id.

use crate::payload::{decode_exact, Payload, PayloadError};
use crate::EntryHash;
use serde::{Deserialize, Serialize};

/// A promise: "I will …", optionally by a due time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseMade {
    /// What is promised.
    pub text: String,
    /// When it is due (ms since the epoch).
    pub due_ms: Option<u64>,
}

/// A new wording or due time for an open promise (renegotiating is not failing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseRenegotiated {
    /// The promise (its `PromiseMade` entry).
    pub promise: EntryHash,
    /// The new text.
    pub text: String,
    /// The new due time.
    pub due_ms: Option<u64>,
}

/// A record about another entry, with an optional note: a promise kept or missed, a status
/// confirmed or disputed, an acknowledgement, an agreement accepted, declined or ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The entry referred to.
    pub target: EntryHash,
    /// Optional words.
    pub note: Option<String>,
}

/// What kind of support is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupportNeed {
    /// Some space, time alone.
    Space,
    /// A talk.
    Talk,
    /// Reassurance.
    Reassure,
    /// Company, being together.
    Company,
}

impl SupportNeed {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Space => "space",
            Self::Talk => "talk",
            Self::Reassure => "reassure",
            Self::Company => "company",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Space, Self::Talk, Self::Reassure, Self::Company]
            .into_iter()
            .find(|need| need.name() == name)
    }
}

/// "How can you support me right now?"
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportRequest {
    /// What would help.
    pub need: SupportNeed,
    /// Optional words.
    pub note: Option<String>,
}

/// An answer to a support request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportReply {
    /// The request.
    pub request: EntryHash,
    /// The answer.
    pub text: String,
}

/// A plan: a time and, unless shared as busy only, what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// When (ms since the epoch).
    pub when_ms: u64,
    /// What; `None` when only "busy" is shared.
    pub text: Option<String>,
}

/// A proposed agreement, with the date it should be reviewed by both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementProposed {
    /// The agreement.
    pub text: String,
    /// Review date (ms since the epoch).
    pub review_ms: u64,
}

/// Leaving the space: the author writes nothing more to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    /// Optional words.
    pub note: Option<String>,
}

/// A decoded ledger record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A promise made.
    PromiseMade(PromiseMade),
    /// A promise kept (by its promiser).
    PromiseKept(Reference),
    /// A promise missed (by its promiser).
    PromiseMissed(Reference),
    /// A promise renegotiated (by its promiser).
    PromiseRenegotiated(PromiseRenegotiated),
    /// A promise status confirmed (by the partner); the target is the status entry.
    StatusConfirmed(Reference),
    /// A promise status disputed (by the partner); the target is the status entry.
    StatusDisputed(Reference),
    /// An explicit acknowledgement of an entry.
    Ack(Reference),
    /// A support request.
    SupportRequest(SupportRequest),
    /// A reply to a support request.
    SupportReply(SupportReply),
    /// A plan.
    Plan(Plan),
    /// An agreement proposed.
    AgreementProposed(AgreementProposed),
    /// An agreement accepted (by the other partner).
    AgreementAccepted(Reference),
    /// An agreement declined (by the other partner).
    AgreementDeclined(Reference),
    /// An agreement ended (by either).
    AgreementEnded(Reference),
    /// The author left the space.
    Left(Left),
}

/// Kind codes of ledger records.
pub mod code {
    /// [`super::Record::PromiseMade`].
    pub const PROMISE: u16 = 0x0020;
    /// [`super::Record::PromiseKept`].
    pub const PROMISE_KEPT: u16 = 0x0021;
    /// [`super::Record::PromiseMissed`].
    pub const PROMISE_MISSED: u16 = 0x0022;
    /// [`super::Record::PromiseRenegotiated`].
    pub const PROMISE_RENEGOTIATED: u16 = 0x0023;
    /// [`super::Record::StatusConfirmed`].
    pub const STATUS_CONFIRMED: u16 = 0x0024;
    /// [`super::Record::StatusDisputed`].
    pub const STATUS_DISPUTED: u16 = 0x0025;
    /// [`super::Record::Ack`].
    pub const ACK: u16 = 0x0030;
    /// [`super::Record::SupportRequest`].
    pub const SUPPORT_REQUEST: u16 = 0x0031;
    /// [`super::Record::SupportReply`].
    pub const SUPPORT_REPLY: u16 = 0x0032;
    /// [`super::Record::Plan`].
    pub const PLAN_AT: u16 = 0x0033;
    /// [`super::Record::AgreementProposed`].
    pub const AGREEMENT: u16 = 0x0040;
    /// [`super::Record::AgreementAccepted`].
    pub const AGREEMENT_ACCEPTED: u16 = 0x0041;
    /// [`super::Record::AgreementDeclined`].
    pub const AGREEMENT_DECLINED: u16 = 0x0042;
    /// [`super::Record::AgreementEnded`].
    pub const AGREEMENT_ENDED: u16 = 0x0043;
    /// [`super::Record::Left`] (a control entry).
    pub const LEFT: u16 = 0x0050;
}

fn enc<T: Serialize>(kind: u16, value: &T) -> Payload {
    Payload {
        kind,
        // postcard only fails on writer errors, which a Vec never raises.
        content: postcard::to_stdvec(value).unwrap_or_default(),
    }
}

impl Record {
    /// The payload carrying this record.
    pub fn to_payload(&self) -> Payload {
        use code::*;
        match self {
            Self::PromiseMade(r) => enc(PROMISE, r),
            Self::PromiseKept(r) => enc(PROMISE_KEPT, r),
            Self::PromiseMissed(r) => enc(PROMISE_MISSED, r),
            Self::PromiseRenegotiated(r) => enc(PROMISE_RENEGOTIATED, r),
            Self::StatusConfirmed(r) => enc(STATUS_CONFIRMED, r),
            Self::StatusDisputed(r) => enc(STATUS_DISPUTED, r),
            Self::Ack(r) => enc(ACK, r),
            Self::SupportRequest(r) => enc(SUPPORT_REQUEST, r),
            Self::SupportReply(r) => enc(SUPPORT_REPLY, r),
            Self::Plan(r) => enc(PLAN_AT, r),
            Self::AgreementProposed(r) => enc(AGREEMENT, r),
            Self::AgreementAccepted(r) => enc(AGREEMENT_ACCEPTED, r),
            Self::AgreementDeclined(r) => enc(AGREEMENT_DECLINED, r),
            Self::AgreementEnded(r) => enc(AGREEMENT_ENDED, r),
            Self::Left(r) => enc(LEFT, r),
        }
    }

    /// Decodes a payload of a ledger kind; `Ok(None)` for any other kind.
    pub fn from_payload(payload: &Payload) -> Result<Option<Self>, PayloadError> {
        use code::*;
        let c = &payload.content;
        Ok(Some(match payload.kind {
            PROMISE => Self::PromiseMade(decode_exact(c)?),
            PROMISE_KEPT => Self::PromiseKept(decode_exact(c)?),
            PROMISE_MISSED => Self::PromiseMissed(decode_exact(c)?),
            PROMISE_RENEGOTIATED => Self::PromiseRenegotiated(decode_exact(c)?),
            STATUS_CONFIRMED => Self::StatusConfirmed(decode_exact(c)?),
            STATUS_DISPUTED => Self::StatusDisputed(decode_exact(c)?),
            ACK => Self::Ack(decode_exact(c)?),
            SUPPORT_REQUEST => Self::SupportRequest(decode_exact(c)?),
            SUPPORT_REPLY => Self::SupportReply(decode_exact(c)?),
            PLAN_AT => Self::Plan(decode_exact(c)?),
            AGREEMENT => Self::AgreementProposed(decode_exact(c)?),
            AGREEMENT_ACCEPTED => Self::AgreementAccepted(decode_exact(c)?),
            AGREEMENT_DECLINED => Self::AgreementDeclined(decode_exact(c)?),
            AGREEMENT_ENDED => Self::AgreementEnded(decode_exact(c)?),
            LEFT => Self::Left(decode_exact(c)?),
            _ => return Ok(None),
        }))
    }

    /// The entry this record acts on (the promise kept, the request answered, …), if any.
    pub fn target(&self) -> Option<EntryHash> {
        match self {
            Self::PromiseKept(r)
            | Self::PromiseMissed(r)
            | Self::StatusConfirmed(r)
            | Self::StatusDisputed(r)
            | Self::Ack(r)
            | Self::AgreementAccepted(r)
            | Self::AgreementDeclined(r)
            | Self::AgreementEnded(r) => Some(r.target),
            Self::PromiseRenegotiated(r) => Some(r.promise),
            Self::SupportReply(r) => Some(r.request),
            _ => None,
        }
    }

    /// A short lower-case name of the record's kind, as `log list` shows it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::PromiseMade(_) => "promise",
            Self::PromiseKept(_) => "promise-kept",
            Self::PromiseMissed(_) => "promise-missed",
            Self::PromiseRenegotiated(_) => "promise-renegotiated",
            Self::StatusConfirmed(_) => "confirmed",
            Self::StatusDisputed(_) => "disputed",
            Self::Ack(_) => "ack",
            Self::SupportRequest(_) => "support-request",
            Self::SupportReply(_) => "support-reply",
            Self::Plan(_) => "plan",
            Self::AgreementProposed(_) => "agreement",
            Self::AgreementAccepted(_) => "agreement-accepted",
            Self::AgreementDeclined(_) => "agreement-declined",
            Self::AgreementEnded(_) => "agreement-ended",
            Self::Left(_) => "left",
        }
    }

    /// The record's own words, for listings.
    pub fn describe(&self) -> String {
        let with_note = |base: &str, note: &Option<String>| match note {
            Some(note) => format!("{base}: {note}"),
            None => base.to_string(),
        };
        match self {
            Self::PromiseMade(r) => r.text.clone(),
            Self::PromiseKept(r) => with_note("kept", &r.note),
            Self::PromiseMissed(r) => with_note("missed", &r.note),
            Self::PromiseRenegotiated(r) => format!("renegotiated: {}", r.text),
            Self::StatusConfirmed(r) => with_note("confirmed", &r.note),
            Self::StatusDisputed(r) => with_note("disputed", &r.note),
            Self::Ack(r) => with_note("acknowledged", &r.note),
            Self::SupportRequest(r) => with_note(&format!("asks for {}", r.need.name()), &r.note),
            Self::SupportReply(r) => r.text.clone(),
            Self::Plan(r) => r.text.clone().unwrap_or_else(|| "busy".into()),
            Self::AgreementProposed(r) => r.text.clone(),
            Self::AgreementAccepted(r) => with_note("accepted", &r.note),
            Self::AgreementDeclined(r) => with_note("declined", &r.note),
            Self::AgreementEnded(r) => with_note("ended", &r.note),
            Self::Left(r) => with_note("left the space", &r.note),
        }
    }
}
