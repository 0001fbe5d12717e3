//! Verification of an entry pulled from the relay, before a device stores or shows it.

use crate::chain::{ChainError, Fit, LogHead};
use crate::entry::{Class, Entry, EntryError};
use crate::keys::SpaceKey;
use crate::payload::Payload;
use crate::{DeviceKey, EntryHash, SpaceId};

/// What a device knows that lets it judge incoming entries.
#[derive(Debug, Clone, Copy)]
pub struct LogKeys<'a> {
    /// The space.
    pub space: SpaceId,
    /// The space key.
    pub key: &'a SpaceKey,
    /// This device.
    pub me: DeviceKey,
    /// The partner's device, once known.
    pub partner: Option<DeviceKey>,
}

/// A verified incoming entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// It extends its author's log: store it.
    New {
        /// The entry (boxed: it is much larger than the other variant).
        entry: Box<Entry>,
        /// Its decrypted payload; `None` for private entries, which only their author's
        /// devices can open (they are verified and kept all the same).
        payload: Option<Payload>,
    },
    /// This device already holds exactly this entry.
    AlreadyHeld,
}

/// Why an incoming entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IncomingError {
    /// It does not decode or its signature or ciphertext hash is wrong.
    #[error("entry is damaged or forged: {0}")]
    Damaged(#[from] EntryError),
    /// Its author is neither this device nor the partner.
    #[error("entry is signed by device {0}, which is not a member of this space")]
    Stranger(String),
    /// It does not extend its author's log.
    #[error("entry does not fit its author's log: {0}")]
    Chain(#[from] ChainError),
    /// A different entry is held at the same seq: the author signed two histories.
    #[error("author {author} signed two different entries at seq {seq} ({held} and {got})")]
    Equivocation {
        /// The author.
        author: String,
        /// The seq.
        seq: u64,
        /// The hash held.
        held: String,
        /// The hash received.
        got: String,
    },
    /// An entry of our own log that this device never wrote.
    #[error("the relay served an entry at seq {seq} of this device's own log that this device does not hold")]
    UnknownOwnEntry {
        /// The seq.
        seq: u64,
    },
    /// A checkpoint whose Merkle root is not the root of the log its author signed before it:
    /// the author vouched for a history other than the one this device verified.
    #[error("{author}'s checkpoint at seq {seq} commits to a history that differs from the log this device verified")]
    FalseCheckpoint {
        /// The author.
        author: String,
        /// The checkpoint's seq.
        seq: u64,
    },
    /// It does not decrypt with the space key.
    #[error("entry does not decrypt with this space's key: {0}")]
    Undecryptable(EntryError),
}

/// An incoming entry after the checks that need no knowledge of the logs (layout, ciphertext
/// hash, signature, decryption), before the chain checks of [`verify_prechecked`]. These checks
/// are the expensive part and independent per entry, so a driver may run them for a page of
/// entries in parallel ([`precheck_batch`]) and then judge the page in order.
#[derive(Debug)]
pub struct Prechecked {
    checked: Result<Checked, EntryError>,
}

#[derive(Debug)]
struct Checked {
    entry: Entry,
    /// The decryption result, for shared and control entries of the partner; `None` for
    /// private entries and entries of other authors (never decrypted, as in
    /// [`verify_incoming`]).
    opened: Option<Result<Payload, EntryError>>,
}

impl Prechecked {
    fn new(keys: &LogKeys<'_>, decoded: Result<Entry, EntryError>) -> Self {
        let checked = decoded.map(|entry| {
            let opened = (Some(entry.header.author) == keys.partner
                && entry.header.author != keys.me
                && entry.header.class != Class::Private)
                .then(|| entry.open(keys.key));
            Checked { entry, opened }
        });
        Self { checked }
    }

    /// Author and seq, if the entry decoded and its signature verified.
    pub fn author_seq(&self) -> Option<(DeviceKey, u64)> {
        self.checked
            .as_ref()
            .ok()
            .map(|c| (c.entry.header.author, c.entry.header.seq))
    }

    /// The entry, if it decoded and its signature verified.
    pub fn entry(&self) -> Option<&Entry> {
        self.checked.as_ref().ok().map(|c| &c.entry)
    }
}

/// The log-independent checks of one entry (see [`Prechecked`]).
pub fn precheck(keys: &LogKeys<'_>, bytes: &[u8]) -> Prechecked {
    Prechecked::new(keys, Entry::from_bytes(bytes))
}

/// The log-independent checks of many entries, with one batch signature verification
/// ([`Entry::from_bytes_batch`]); the results, in order, are the same as [`precheck`] on each.
pub fn precheck_batch(keys: &LogKeys<'_>, items: &[&[u8]]) -> Vec<Prechecked> {
    Entry::from_bytes_batch(items)
        .into_iter()
        .map(|decoded| Prechecked::new(keys, decoded))
        .collect()
}

/// Judges an incoming entry against its author's verified `head` in this device's store, and
/// `held`, the hash this device holds at the entry's seq (if any). Decrypts new entries.
pub fn verify_incoming(
    keys: &LogKeys<'_>,
    bytes: &[u8],
    head: impl FnOnce(&DeviceKey) -> LogHead,
    held: impl FnOnce(&DeviceKey, u64) -> Option<EntryHash>,
) -> Result<Incoming, IncomingError> {
    verify_prechecked(keys, precheck(keys, bytes), head, held)
}

/// [`verify_incoming`] for an entry whose log-independent checks ran in [`precheck`] or
/// [`precheck_batch`]: membership, chain position, equivocation, and the decryption result.
pub fn verify_prechecked(
    keys: &LogKeys<'_>,
    prechecked: Prechecked,
    head: impl FnOnce(&DeviceKey) -> LogHead,
    held: impl FnOnce(&DeviceKey, u64) -> Option<EntryHash>,
) -> Result<Incoming, IncomingError> {
    let Checked { entry, opened } = prechecked.checked?;
    let author = entry.header.author;
    if author != keys.me && Some(author) != keys.partner {
        return Err(IncomingError::Stranger(author.short()));
    }
    match head(&author).classify(&keys.space, &entry.header)? {
        Fit::AlreadyHeld => {
            let seq = entry.header.seq;
            match held(&author, seq) {
                Some(hash) if hash == entry.hash => Ok(Incoming::AlreadyHeld),
                Some(hash) => Err(IncomingError::Equivocation {
                    author: author.short(),
                    seq,
                    held: hash.short(),
                    got: entry.hash.short(),
                }),
                None => Err(IncomingError::UnknownOwnEntry { seq }),
            }
        }
        Fit::Next if author == keys.me => Err(IncomingError::UnknownOwnEntry {
            seq: entry.header.seq,
        }),
        Fit::Next => {
            // A shared-class entry that does not open under the space key is the partner's
            // private journal entry: kept and chained, never shown (see `Entry::open_readable`).
            let payload = match (entry.header.class, opened) {
                (Class::Private, _) | (Class::Shared, Some(Err(EntryError::Decrypt))) => None,
                (Class::Shared | Class::Control, Some(opened)) => {
                    Some(opened.map_err(IncomingError::Undecryptable)?)
                }
                (Class::Shared | Class::Control, None) => entry
                    .open_readable(keys.key)
                    .map_err(IncomingError::Undecryptable)?,
            };
            Ok(Incoming::New {
                entry: Box::new(entry),
                payload,
            })
        }
    }
}
