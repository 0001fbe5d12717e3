//! The plaintext inside an entry: a versioned, extensible payload, padded before encryption.
//!
//! Layout of the plaintext that gets sealed:
//!
//! ```text
//! u32 BE body length | body | zero padding to a multiple of 256 bytes
//! body = format version (1 byte, = 1) | postcard(Payload)
//! ```
//!
//! A [`Payload`] is a kind code plus kind-specific bytes. A device that meets a kind code it does
//! not know keeps the entry, verifies it, and lists it as "unknown kind" — it never drops it, so an
//! older client survives a newer partner.

use crate::merkle::TreeHash;
use crate::EntryHash;
use serde::{Deserialize, Serialize};

/// Plaintexts are padded to a multiple of this many bytes so sizes leak only a coarse bucket.
pub const PAD_BLOCK: usize = 256;
/// Largest payload body accepted (before padding).
pub const MAX_BODY: usize = 60 * 1024;
/// Version byte at the start of every body.
pub const BODY_FORMAT: u8 = 1;

/// Errors decoding a plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The padded plaintext is shorter than its own length prefix claims.
    #[error("padded plaintext is malformed")]
    BadPadding,
    /// The body is larger than [`MAX_BODY`].
    #[error("payload of {0} bytes exceeds the limit of {MAX_BODY}")]
    TooLarge(usize),
    /// The body's format version is not one this build reads.
    #[error("payload format {0} is not supported by this version")]
    UnknownFormat(u8),
    /// The body does not decode.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// A valid encoding is followed by bytes it does not account for.
    #[error("payload has {0} trailing bytes after its encoding")]
    Trailing(usize),
}

/// Decodes postcard bytes that must hold exactly one value: trailing bytes are refused, so that
/// one byte string has one meaning and every implementation agrees on what is valid.
pub fn decode_exact<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, PayloadError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| PayloadError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PayloadError::Trailing(rest.len()));
    }
    Ok(value)
}

/// Kind codes of payloads this version understands. Codes are never reused.
pub mod kind {
    /// Control: the first entry of every log, introducing its device to the partner.
    pub const HELLO: u16 = 0x0001;
    /// Control: a signed checkpoint, written after a sync that verified new partner entries, so
    /// the partner learns (from its header's partner view) what this device has verified. Its
    /// content ([`super::Checkpoint`]) commits to the author's own log so far.
    pub const CHECKPOINT: u16 = 0x0002;
    /// A free-form note in the transparency log.
    pub const NOTE: u16 = 0x0010;
    /// A check-in ("running late, home by 19:30").
    pub const CHECKIN: u16 = 0x0011;
    /// A disclosure shared before being asked.
    pub const DISCLOSURE: u16 = 0x0012;
    /// A plan.
    pub const PLAN: u16 = 0x0013;
    /// A private journal entry (see `crate::journal`); only ever sealed under a journal key.
    pub const JOURNAL: u16 = 0x0070;
}

/// One decoded payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// What the content is; see [`kind`].
    pub kind: u16,
    /// Kind-specific postcard bytes.
    pub content: Vec<u8>,
}

/// Content of a hello entry: how a device introduces itself inside the encrypted log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The name the person chose at `candor init`.
    pub name: String,
    /// The device's X25519 public key.
    pub exchange: [u8; 32],
}

/// Content of a checkpoint entry at seq `n`.
///
/// Checkpoints written before version 0.2 have empty content; they decode as
/// `Content::Checkpoint(None)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Merkle root (see [`crate::merkle`]) over the ids of the author's own entries at seqs
    /// `0..n`, which the partner recomputes before acknowledging this checkpoint.
    pub own_root: TreeHash,
    /// The author asks the partner's device to answer with a checkpoint of its own, even if this
    /// is the only new entry: that answer's header acknowledges this checkpoint, which a
    /// verifiable export needs (`candor export --verifiable`).
    pub countersign: bool,
}

/// Content of text entries (note, check-in, disclosure, plan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextContent {
    /// The words.
    pub text: String,
    /// The entry this one corrects, if it is a correction.
    pub replaces: Option<EntryHash>,
    /// The original time (ms since the epoch) of an imported record, if it differs from the
    /// entry's own time.
    pub original_time_ms: Option<u64>,
    /// For check-ins: the expected arrival time as the author wrote it (e.g. "19:30").
    pub eta: Option<String>,
}

/// A decoded, typed view of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A device introducing itself.
    Hello(Hello),
    /// A checkpoint: its header says what the author had verified; its content commits to the
    /// author's own log (`None` for the empty checkpoints of older versions).
    Checkpoint(Option<Checkpoint>),
    /// A text entry of the given kind code.
    Text {
        /// The kind code (one of the text kinds in [`kind`]).
        kind: u16,
        /// The text and its metadata.
        text: TextContent,
    },
    /// A kind this version does not know: kept and verified, shown as unknown.
    Unknown {
        /// The unrecognised kind code.
        kind: u16,
    },
}

/// The lower-case name of a text kind code, as used on the command line and in JSON.
pub fn text_kind_name(code: u16) -> Option<&'static str> {
    match code {
        kind::NOTE => Some("note"),
        kind::CHECKIN => Some("checkin"),
        kind::DISCLOSURE => Some("disclosure"),
        kind::PLAN => Some("plan"),
        _ => None,
    }
}

/// The kind code of a text kind name.
pub fn text_kind_code(name: &str) -> Option<u16> {
    match name {
        "note" => Some(kind::NOTE),
        "checkin" => Some(kind::CHECKIN),
        "disclosure" => Some(kind::DISCLOSURE),
        "plan" => Some(kind::PLAN),
        _ => None,
    }
}

impl Payload {
    /// A hello payload.
    pub fn hello(hello: &Hello) -> Self {
        Self::encode_content(kind::HELLO, hello)
    }

    /// A checkpoint payload.
    pub fn checkpoint(checkpoint: &Checkpoint) -> Self {
        Self::encode_content(kind::CHECKPOINT, checkpoint)
    }

    /// A text payload of the given kind code.
    pub fn text(kind: u16, text: &TextContent) -> Self {
        Self::encode_content(kind, text)
    }

    fn encode_content<T: Serialize>(kind: u16, value: &T) -> Self {
        Self {
            kind,
            // postcard only fails on writer errors, which a Vec never raises.
            content: postcard::to_stdvec(value).unwrap_or_default(),
        }
    }

    /// Interprets the content according to the kind code.
    pub fn content(&self) -> Result<Content, PayloadError> {
        match self.kind {
            kind::HELLO => Ok(Content::Hello(decode_exact(&self.content)?)),
            kind::CHECKPOINT if self.content.is_empty() => Ok(Content::Checkpoint(None)),
            kind::CHECKPOINT => Ok(Content::Checkpoint(Some(decode_exact(&self.content)?))),
            code if text_kind_name(code).is_some() => Ok(Content::Text {
                kind: code,
                text: decode_exact(&self.content)?,
            }),
            code => Ok(Content::Unknown { kind: code }),
        }
    }

    /// Encodes and pads the payload into the plaintext that gets sealed.
    pub fn to_padded(&self) -> Result<Vec<u8>, PayloadError> {
        let mut body = vec![BODY_FORMAT];
        body.extend(postcard::to_stdvec(self).map_err(|e| PayloadError::Decode(e.to_string()))?);
        if body.len() > MAX_BODY {
            return Err(PayloadError::TooLarge(body.len()));
        }
        Ok(pad(&body))
    }

    /// Decodes a padded plaintext produced by [`Payload::to_padded`].
    pub fn from_padded(padded: &[u8]) -> Result<Self, PayloadError> {
        let body = unpad(padded)?;
        let (&format, rest) = body.split_first().ok_or(PayloadError::BadPadding)?;
        if format != BODY_FORMAT {
            return Err(PayloadError::UnknownFormat(format));
        }
        decode_exact(rest)
    }
}

/// Prefixes `body` with its length and pads with zeros to a multiple of [`PAD_BLOCK`].
pub fn pad(body: &[u8]) -> Vec<u8> {
    let unpadded = 4 + body.len();
    let padded = unpadded.div_ceil(PAD_BLOCK) * PAD_BLOCK;
    let mut out = Vec::with_capacity(padded);
    // MAX_BODY keeps lengths far below u32::MAX; saturate rather than panic if misused.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(padded, 0);
    out
}

/// Reverses [`pad`]: checks the length prefix, the block size, and that padding is all zeros.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PayloadError> {
    if padded.len() < 4 || padded.len() % PAD_BLOCK != 0 {
        return Err(PayloadError::BadPadding);
    }
    let (len_bytes, rest) = padded.split_at(4);
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    if len > rest.len() || len > MAX_BODY {
        return Err(PayloadError::BadPadding);
    }
    let (body, padding) = rest.split_at(len);
    if padding.len() >= PAD_BLOCK || padding.iter().any(|b| *b != 0) {
        return Err(PayloadError::BadPadding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padding_hits_block_boundaries() {
        assert_eq!(pad(&[]).len(), 256);
        assert_eq!(pad(&[1; 252]).len(), 256);
        assert_eq!(pad(&[1; 253]).len(), 512);
        assert_eq!(unpad(&pad(b"abc")), Ok(&b"abc"[..]));
    }

    #[test]
    fn nonzero_or_oversized_padding_is_rejected() {
        let mut padded = pad(b"abc");
        padded[200] = 1;
        assert_eq!(unpad(&padded), Err(PayloadError::BadPadding));
        let mut extra = pad(b"abc");
        extra.extend([0u8; 256]);
        assert_eq!(unpad(&extra), Err(PayloadError::BadPadding));
    }

    #[test]
    fn unknown_kinds_decode_as_unknown() {
        let payload = Payload {
            kind: 0x7777,
            content: vec![1, 2, 3],
        };
        let decoded = Payload::from_padded(&payload.to_padded().unwrap()).unwrap();
        assert_eq!(decoded.content(), Ok(Content::Unknown { kind: 0x7777 }));
    }

    #[test]
    fn trailing_bytes_are_refused_in_the_body_and_in_the_content() {
        let text = TextContent {
            text: "hello".into(),
            replaces: None,
            original_time_ms: None,
            eta: None,
        };
        let mut payload = Payload::text(kind::NOTE, &text);
        // In the body: the payload's encoding followed by a stray byte.
        let mut body = vec![BODY_FORMAT];
        body.extend(postcard::to_stdvec(&payload).unwrap());
        body.push(0);
        assert_eq!(
            Payload::from_padded(&pad(&body)),
            Err(PayloadError::Trailing(1))
        );
        // In the content: a text whose encoding is followed by two bytes.
        payload.content.extend([0, 0]);
        let back = Payload::from_padded(&payload.to_padded().unwrap()).unwrap();
        assert_eq!(back.content(), Err(PayloadError::Trailing(2)));
    }

    #[test]
    fn text_kind_names_round_trip() {
        for name in ["note", "checkin", "disclosure", "plan"] {
            assert_eq!(text_kind_name(text_kind_code(name).unwrap()), Some(name));
        }
        assert_eq!(text_kind_code("journal"), None);
    }

    proptest! {
        #[test]
        fn text_payload_round_trips(text in ".{0,600}", replaces in proptest::option::of(any::<[u8; 32]>()), t in proptest::option::of(any::<u64>())) {
            let content = TextContent { text, replaces: replaces.map(EntryHash), original_time_ms: t, eta: None };
            let payload = Payload::text(kind::CHECKIN, &content);
            let padded = payload.to_padded().unwrap();
            prop_assert_eq!(padded.len() % PAD_BLOCK, 0);
            let back = Payload::from_padded(&padded).unwrap();
            prop_assert_eq!(back.content().unwrap(), Content::Text { kind: kind::CHECKIN, text: content });
        }

        #[test]
        fn payload_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Ok(p) = Payload::from_padded(&bytes) {
                let _ = p.content();
            }
        }
    }
}
