//! Messages between devices and the relay, and their framing.
//!
//! Every QUIC bidirectional stream carries one exchange: the device writes one [`Request`] frame,
//! the relay answers with one [`Response`] frame — except `Subscribe`, after whose `Subscribed`
//! answer the relay keeps writing `Notify` frames on the same stream. A frame is a u32 big-endian
//! length followed by that many bytes of postcard. Message flow of a session:
//!
//! 1. `Hello` → `Challenge { nonce }` — a fresh random nonce for this connection.
//! 2. `Authenticate { device, signature }` → `Authenticated { spaces }` — the device signs the
//!    nonce together with TLS keying material exported from this connection (see
//!    [`auth_message`]), so the answer cannot be replayed on another connection.
//! 3. `CreateSpace` / `Join` → `SpaceCreated` / `Joined` — pairing (see [`crate::invite`]).
//! 4. `Heads` → `HeadList` — which entries of each log the relay holds.
//! 5. `Push { entries }` → `Pushed { outcomes }` — sent only after the relay made them durable.
//! 6. `Pull { after, limit }` → `Page { entries, more }` — entries in arrival order by cursor.
//! 7. `Subscribe` → `Subscribed`, then `Notify { cursor }` whenever an entry lands in the space.
//!
//! Any request may instead be answered with `Error { code, message }`.

use crate::chain::LogHead;
use crate::keys::DevicePublic;
use crate::{DeviceKey, SpaceId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest frame either side reads; anything larger is refused before it is buffered.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Most entries a device sends in one `Push`.
pub const MAX_PUSH_ENTRIES: usize = 256;
/// Most entries the relay returns in one `Page`.
pub const MAX_PAGE_ENTRIES: u32 = 512;
/// Most entry bytes in one `Page` (well under [`MAX_FRAME`]); a page always holds at least one
/// entry, and any entry fits since entries are bounded by `entry::MAX_ENTRY`.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;
/// Most entry bytes a device sends in one `Push` (again well under [`MAX_FRAME`]).
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;

/// A member of a space as the relay records it: public keys and the proof of knowing the space key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCard {
    /// The device's public keys.
    pub public: DevicePublic,
    /// [`crate::invite::member_proof`] over them.
    pub proof: [u8; 32],
}

/// A request from a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Opens a session; answered with a challenge.
    Hello {
        /// The device's protocol version.
        version: u8,
    },
    /// Proves possession of the device key.
    Authenticate {
        /// The device's key.
        device: DeviceKey,
        /// 64-byte Ed25519 signature over [`auth_message`].
        signature: Vec<u8>,
    },
    /// Creates a space with this device as its first member.
    CreateSpace {
        /// The new space's id.
        space: SpaceId,
        /// Verifier of the invite token.
        invite_verifier: [u8; 32],
        /// The space key sealed under the invite secret.
        sealed_space_key: Vec<u8>,
        /// The creator's member card.
        member: MemberCard,
    },
    /// Joins a space with an invite.
    Join {
        /// The space.
        space: SpaceId,
        /// The invite token ([`crate::invite::InviteSecret::token`]).
        token: [u8; 32],
        /// The joiner's member card.
        member: MemberCard,
    },
    /// Lists a space's members.
    Members {
        /// The space.
        space: SpaceId,
    },
    /// Lists the relay's head of every log in a space.
    Heads {
        /// The space.
        space: SpaceId,
    },
    /// Stores entries (each in wire form).
    Push {
        /// The space.
        space: SpaceId,
        /// Encoded entries, in log order.
        entries: Vec<Vec<u8>>,
    },
    /// Reads entries that arrived after a cursor.
    Pull {
        /// The space.
        space: SpaceId,
        /// Return entries with cursor greater than this (0: from the start).
        after: u64,
        /// At most this many (capped at [`MAX_PAGE_ENTRIES`]).
        limit: u32,
    },
    /// Asks to be told whenever an entry lands in the space.
    Subscribe {
        /// The space.
        space: SpaceId,
    },
}

/// Why the relay refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request needs an authenticated session.
    NotAuthenticated,
    /// The challenge response did not verify.
    AuthFailed,
    /// The device is not a member of that space.
    Forbidden,
    /// No such space.
    UnknownSpace,
    /// A space with that id exists.
    SpaceExists,
    /// The invite was already used.
    InviteUsed,
    /// The invite token does not match.
    InviteInvalid,
    /// The space already has two members.
    SpaceFull,
    /// The request is malformed or violates a limit.
    BadRequest,
    /// The relay failed internally (e.g. storage error).
    Internal,
    /// The request exceeds one of the relay's configured limits (frame size, entry size,
    /// entries per push); the message names the limit and its value.
    LimitExceeded,
    /// Too many requests or connections in a short time; the message says when to retry.
    RateLimited,
    /// The space has used its storage quota on this relay.
    QuotaExceeded,
    /// The invite is older than the relay's invite lifetime.
    InviteExpired,
}

/// What became of one pushed entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOutcome {
    /// Stored durably at this cursor.
    Stored {
        /// Its position in the space's arrival order.
        cursor: u64,
    },
    /// The relay already holds this exact entry.
    Duplicate,
    /// A different entry holds this seq: kept as evidence, not stored in the log.
    Conflict,
    /// Refused: it does not verify or does not fit the author's log.
    Rejected {
        /// Human-readable reason.
        reason: String,
    },
}

/// One entry of a page, with its cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagedEntry {
    /// Position in the space's arrival order (starts at 1).
    pub cursor: u64,
    /// The entry in wire form.
    pub entry: Vec<u8>,
}

/// A response from the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A fresh nonce to sign.
    Challenge {
        /// 32 random bytes.
        nonce: [u8; 32],
    },
    /// The session is authenticated.
    Authenticated {
        /// Spaces this device belongs to.
        spaces: Vec<SpaceId>,
    },
    /// The space exists now.
    SpaceCreated,
    /// The device joined.
    Joined {
        /// The sealed space key from the invite record (deleted from the relay now).
        sealed_space_key: Vec<u8>,
        /// All members, the joiner included.
        members: Vec<MemberCard>,
    },
    /// A space's members.
    MemberList {
        /// The members.
        members: Vec<MemberCard>,
    },
    /// The relay's heads for a space.
    HeadList {
        /// One per author with at least one entry.
        heads: Vec<(DeviceKey, LogHead)>,
    },
    /// Push results, one per pushed entry, in order.
    Pushed {
        /// The outcomes.
        outcomes: Vec<PushOutcome>,
    },
    /// A page of entries.
    Page {
        /// Entries in cursor order.
        entries: Vec<PagedEntry>,
        /// Whether more entries follow.
        more: bool,
    },
    /// The subscription is open.
    Subscribed,
    /// An entry landed at this cursor.
    Notify {
        /// The latest cursor of the space.
        cursor: u64,
    },
    /// The request was refused.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

impl Response {
    /// Shorthand for an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// The bytes a device signs to authenticate: nonce, exported TLS keying material, device key.
pub fn auth_message(nonce: &[u8; 32], tls_exporter: &[u8; 32], device: &DeviceKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(nonce);
    out.extend_from_slice(tls_exporter);
    out.extend_from_slice(&device.0);
    out
}

/// Label for the TLS keying-material exporter used in [`auth_message`].
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-candor-v1-auth";

/// Errors encoding or decoding frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    FrameTooLarge(usize),
    /// The frame body does not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes a message as a length-prefixed frame.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let body = postcard::to_stdvec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(WireError::FrameTooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend(body);
    Ok(out)
}

/// Reads a length prefix and checks it against [`MAX_FRAME`] before anything is buffered.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(WireError::FrameTooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body (without its prefix); trailing bytes are an error.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// Decodes one frame from the front of `buf`: `Ok(None)` if more bytes are needed, otherwise the
/// message and the number of bytes consumed (check → parse → advance).
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = frame_len([prefix[0], prefix[1], prefix[2], prefix[3]])?;
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryHash;
    use proptest::prelude::*;

    fn arb_space() -> impl Strategy<Value = SpaceId> {
        any::<[u8; 16]>().prop_map(SpaceId)
    }
    fn arb_device() -> impl Strategy<Value = DeviceKey> {
        any::<[u8; 32]>().prop_map(DeviceKey)
    }
    fn arb_card() -> impl Strategy<Value = MemberCard> {
        (arb_device(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
            |(device, exchange, proof)| MemberCard {
                public: DevicePublic { device, exchange },
                proof,
            },
        )
    }
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            any::<u8>().prop_map(|version| Request::Hello { version }),
            (arb_device(), bytes())
                .prop_map(|(device, signature)| Request::Authenticate { device, signature }),
            (arb_space(), any::<[u8; 32]>(), bytes(), arb_card()).prop_map(
                |(space, invite_verifier, sealed_space_key, member)| Request::CreateSpace {
                    space,
                    invite_verifier,
                    sealed_space_key,
                    member
                }
            ),
            (arb_space(), any::<[u8; 32]>(), arb_card()).prop_map(|(space, token, member)| {
                Request::Join {
                    space,
                    token,
                    member,
                }
            }),
            arb_space().prop_map(|space| Request::Members { space }),
            arb_space().prop_map(|space| Request::Heads { space }),
            (arb_space(), proptest::collection::vec(bytes(), 0..4))
                .prop_map(|(space, entries)| Request::Push { space, entries }),
            (arb_space(), any::<u64>(), any::<u32>()).prop_map(|(space, after, limit)| {
                Request::Pull {
                    space,
                    after,
                    limit,
                }
            }),
            arb_space().prop_map(|space| Request::Subscribe { space }),
        ]
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        let outcome = prop_oneof![
            any::<u64>().prop_map(|cursor| PushOutcome::Stored { cursor }),
            Just(PushOutcome::Duplicate),
            Just(PushOutcome::Conflict),
            ".{0,40}".prop_map(|reason| PushOutcome::Rejected { reason }),
        ];
        let head = (any::<u64>(), any::<[u8; 32]>()).prop_map(|(count, hash)| LogHead {
            count,
            hash: EntryHash(hash),
        });
        prop_oneof![
            any::<[u8; 32]>().prop_map(|nonce| Response::Challenge { nonce }),
            proptest::collection::vec(arb_space(), 0..3)
                .prop_map(|spaces| Response::Authenticated { spaces }),
            Just(Response::SpaceCreated),
            (bytes(), proptest::collection::vec(arb_card(), 0..3)).prop_map(
                |(sealed_space_key, members)| Response::Joined {
                    sealed_space_key,
                    members
                }
            ),
            proptest::collection::vec(arb_card(), 0..3)
                .prop_map(|members| Response::MemberList { members }),
            proptest::collection::vec((arb_device(), head), 0..3)
                .prop_map(|heads| Response::HeadList { heads }),
            proptest::collection::vec(outcome, 0..4)
                .prop_map(|outcomes| Response::Pushed { outcomes }),
            (
                proptest::collection::vec(
                    (any::<u64>(), bytes())
                        .prop_map(|(cursor, entry)| PagedEntry { cursor, entry }),
                    0..3
                ),
                any::<bool>()
            )
                .prop_map(|(entries, more)| Response::Page { entries, more }),
            Just(Response::Subscribed),
            any::<u64>().prop_map(|cursor| Response::Notify { cursor }),
            ".{0,40}".prop_map(|m| Response::error(ErrorCode::Forbidden, m)),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(request in arb_request()) {
            let frame = encode_frame(&request).unwrap();
            let (back, used) = decode_frame::<Request>(&frame).unwrap().unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, request);
        }

        #[test]
        fn responses_round_trip(response in arb_response()) {
            let frame = encode_frame(&response).unwrap();
            let (back, used) = decode_frame::<Response>(&frame).unwrap().unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, response);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_frame::<Request>(&bytes);
            let _ = decode_frame::<Response>(&bytes);
            let _ = decode_body::<Request>(&bytes);
            let _ = crate::entry::Entry::from_bytes(&bytes);
        }
    }

    #[test]
    fn partial_and_oversized_frames() {
        let frame = encode_frame(&Request::Hello { version: 1 }).unwrap();
        assert_eq!(decode_frame::<Request>(&frame[..2]), Ok(None));
        assert_eq!(decode_frame::<Request>(&frame[..frame.len() - 1]), Ok(None));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert_eq!(
            decode_frame::<Request>(&huge),
            Err(WireError::FrameTooLarge(MAX_FRAME + 1))
        );
        let mut trailing = frame[4..].to_vec();
        trailing.push(0);
        assert!(decode_body::<Request>(&trailing).is_err());
    }
}
