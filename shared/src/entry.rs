//! The log entry: a fixed-layout public header, an Ed25519 signature, and a padded ciphertext.
//!
//! ```text
//! offset len  field
//!      0   1  version (= 1)
//!      1   1  class (0 shared, 1 private, 2 control)
//!      2  16  space id
//!     18  32  author: the device's Ed25519 public key
//!     50   8  seq, u64 big-endian: 0, 1, 2, … with no gaps
//!     58  32  hash of the author's previous entry (zeros at seq 0)
//!     90   8  author time, u64 big-endian milliseconds since the Unix epoch
//!     98   8  partner entries verified by the author so far (0 = none)
//!    106  32  hash of the last of those partner entries (zeros if none)
//!    138  24  XChaCha20-Poly1305 nonce
//!    162   4  ciphertext length, u32 big-endian
//!    166  32  BLAKE3 hash of the ciphertext
//!    198      end of header
//! ```
//!
//! The wire form of an entry is `header (198) | signature (64) | ciphertext`. The signature is
//! Ed25519 over [`ENTRY_SIGNATURE_PREFIX`] followed by the 198 header bytes. The entry's id is
//! BLAKE3 (derive-key mode) over header and signature. The AEAD associated data is the header up to
//! (not including) the ciphertext hash, so it binds every header field; the ciphertext hash then
//! commits the signature to the exact ciphertext.

use crate::keys::{
    context, verify_signature, DeviceSecrets, SignatureError, SpaceKey, ENTRY_SIGNATURE_PREFIX,
};
use crate::payload::{Payload, PayloadError};
use crate::{DeviceKey, EntryHash, SpaceId, PROTOCOL_VERSION};
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Length of the encoded header.
pub const HEADER_LEN: usize = 198;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of the header covered by the AEAD associated data.
pub const AAD_LEN: usize = 166;
/// Largest ciphertext any device or relay accepts.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// Largest encoded entry.
pub const MAX_ENTRY: usize = HEADER_LEN + SIGNATURE_LEN + MAX_CIPHERTEXT;

/// Who may read an entry's ciphertext. Only the class is public; the fine-grained kind is inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Encrypted under the space key; both partners read it.
    Shared = 0,
    /// Encrypted under a key only its author's devices hold.
    Private = 1,
    /// Protocol bookkeeping (introductions, checkpoints), encrypted under the space key.
    Control = 2,
}

impl Class {
    fn from_byte(byte: u8) -> Result<Self, EntryError> {
        match byte {
            0 => Ok(Self::Shared),
            1 => Ok(Self::Private),
            2 => Ok(Self::Control),
            other => Err(EntryError::UnknownClass(other)),
        }
    }
}

/// What an author had verified of the partner's log when writing an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PartnerSeen {
    /// Number of partner entries verified (the next seq expected from the partner).
    pub count: u64,
    /// Hash of partner entry `count - 1`, or zeros when `count` is 0.
    pub head: EntryHash,
}

/// The public header of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Protocol version; always [`PROTOCOL_VERSION`] for entries this build writes.
    pub version: u8,
    /// Who can read the ciphertext.
    pub class: Class,
    /// The couple's space.
    pub space: SpaceId,
    /// The writing device.
    pub author: DeviceKey,
    /// Position in the author's log.
    pub seq: u64,
    /// Hash of the author's entry at `seq - 1`; zeros at seq 0.
    pub prev: EntryHash,
    /// Author's clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The author's verified view of the partner's log.
    pub partner_seen: PartnerSeen,
    /// AEAD nonce.
    pub nonce: [u8; 24],
    /// Length of the ciphertext.
    pub ciphertext_len: u32,
    /// BLAKE3 hash of the ciphertext.
    pub ciphertext_hash: [u8; 32],
}

/// Errors decoding or verifying an entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// Fewer bytes than a header and signature.
    #[error("entry is truncated ({0} bytes)")]
    Truncated(usize),
    /// More bytes than any entry may have.
    #[error("entry of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// A header version this build does not speak.
    #[error("unsupported entry version {0}")]
    UnknownVersion(u8),
    /// A class byte outside the known classes.
    #[error("unknown entry class {0}")]
    UnknownClass(u8),
    /// The ciphertext length in the header does not match the bytes that follow.
    #[error("ciphertext length does not match the header")]
    LengthMismatch,
    /// The ciphertext hash in the header does not match the ciphertext.
    #[error("ciphertext does not match the hash its author signed")]
    CiphertextHashMismatch,
    /// The header signature is invalid.
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),
    /// The ciphertext does not open under the given key (wrong key or tampered bytes).
    #[error("ciphertext does not decrypt under this space's key")]
    Decrypt,
    /// The entry belongs to another space.
    #[error("entry belongs to space {found}, expected {expected}")]
    WrongSpace {
        /// The space this device is in.
        expected: SpaceId,
        /// The space named in the header.
        found: SpaceId,
    },
    /// The plaintext is malformed.
    #[error("payload: {0}")]
    Payload(#[from] PayloadError),
    /// The class cannot be sealed with the given key type.
    #[error("entries of class {0:?} are not sealed with the space key")]
    WrongClass(Class),
}

impl Header {
    /// Encodes the header into its fixed 198-byte layout.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.version;
        out[1] = self.class as u8;
        out[2..18].copy_from_slice(&self.space.0);
        out[18..50].copy_from_slice(&self.author.0);
        out[50..58].copy_from_slice(&self.seq.to_be_bytes());
        out[58..90].copy_from_slice(&self.prev.0);
        out[90..98].copy_from_slice(&self.time_ms.to_be_bytes());
        out[98..106].copy_from_slice(&self.partner_seen.count.to_be_bytes());
        out[106..138].copy_from_slice(&self.partner_seen.head.0);
        out[138..162].copy_from_slice(&self.nonce);
        out[162..166].copy_from_slice(&self.ciphertext_len.to_be_bytes());
        out[166..198].copy_from_slice(&self.ciphertext_hash);
        out
    }

    /// Decodes a header from exactly [`HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, EntryError> {
        if bytes[0] != PROTOCOL_VERSION {
            return Err(EntryError::UnknownVersion(bytes[0]));
        }
        let arr = |range: std::ops::Range<usize>| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[range]);
            out
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut space = [0u8; 16];
        space.copy_from_slice(&bytes[2..18]);
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&bytes[138..162]);
        Ok(Self {
            version: bytes[0],
            class: Class::from_byte(bytes[1])?,
            space: SpaceId(space),
            author: DeviceKey(arr(18..50)),
            seq: u64_at(50),
            prev: EntryHash(arr(58..90)),
            time_ms: u64_at(90),
            partner_seen: PartnerSeen {
                count: u64_at(98),
                head: EntryHash(arr(106..138)),
            },
            nonce,
            ciphertext_len: u32::from_be_bytes([bytes[162], bytes[163], bytes[164], bytes[165]]),
            ciphertext_hash: arr(166..198),
        })
    }
}

/// Reads author and seq from an entry's header without verifying anything (for bookkeeping
/// only: never trust the result before [`Entry::from_bytes`] has checked the entry).
pub fn peek_author_seq(bytes: &[u8]) -> Option<(DeviceKey, u64)> {
    let author: [u8; 32] = bytes.get(18..50)?.try_into().ok()?;
    let seq: [u8; 8] = bytes.get(50..58)?.try_into().ok()?;
    Some((DeviceKey(author), u64::from_be_bytes(seq)))
}

/// Checks a header and its signature alone (`header | signature`, exactly 262 bytes, no
/// ciphertext), as a verifiable export carries the entry that countersigns a checkpoint; returns
/// the header and the entry's id.
pub fn verify_signed_header(bytes: &[u8]) -> Result<(Header, EntryHash), EntryError> {
    if bytes.len() != HEADER_LEN + SIGNATURE_LEN {
        return Err(if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            EntryError::Truncated(bytes.len())
        } else {
            EntryError::TooLarge(bytes.len())
        });
    }
    let mut encoded = [0u8; HEADER_LEN];
    encoded.copy_from_slice(&bytes[..HEADER_LEN]);
    let mut signature = [0u8; SIGNATURE_LEN];
    signature.copy_from_slice(&bytes[HEADER_LEN..]);
    let header = Header::decode(&encoded)?;
    verify_signature(&header.author, ENTRY_SIGNATURE_PREFIX, &encoded, &signature)?;
    Ok((header, entry_hash(&encoded, &signature)))
}

/// Whether an entry's header says it is a control entry (protocol bookkeeping, such as
/// introductions and checkpoints), without verifying anything.
pub fn peek_is_control(bytes: &[u8]) -> bool {
    bytes.get(1) == Some(&(Class::Control as u8))
}

/// Reads the author time from an entry's header without verifying anything.
pub fn peek_time(bytes: &[u8]) -> Option<u64> {
    let time: [u8; 8] = bytes.get(90..98)?.try_into().ok()?;
    Some(u64::from_be_bytes(time))
}

/// The id of an entry in wire form, computed without verifying it: for entries a store already
/// verified. `None` if the bytes are shorter than a header and signature.
pub fn id_of(bytes: &[u8]) -> Option<EntryHash> {
    let header: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    let signature: &[u8; SIGNATURE_LEN] = bytes
        .get(HEADER_LEN..HEADER_LEN + SIGNATURE_LEN)?
        .try_into()
        .ok()?;
    Some(entry_hash(header, signature))
}

/// A decoded entry whose signature and ciphertext hash have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The public header.
    pub header: Header,
    /// Ed25519 signature over the header.
    pub signature: [u8; 64],
    /// The sealed, padded payload.
    pub ciphertext: Vec<u8>,
    /// The entry's id.
    pub hash: EntryHash,
}

/// Everything needed to write the next entry of a log, except the payload and key.
#[derive(Clone, Debug)]
pub struct Draft {
    /// Who can read it.
    pub class: Class,
    /// The space.
    pub space: SpaceId,
    /// Position in the author's log.
    pub seq: u64,
    /// Hash of the previous entry (zeros at seq 0).
    pub prev: EntryHash,
    /// Author time in ms (the caller reads the clock).
    pub time_ms: u64,
    /// The author's verified view of the partner's log.
    pub partner_seen: PartnerSeen,
    /// Fresh random nonce (the caller draws it from the OS RNG).
    pub nonce: [u8; 24],
}

fn ciphertext_hash(ciphertext: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context::CIPHERTEXT_HASH);
    hasher.update(ciphertext);
    *hasher.finalize().as_bytes()
}

fn entry_hash(header: &[u8; HEADER_LEN], signature: &[u8; 64]) -> EntryHash {
    let mut hasher = blake3::Hasher::new_derive_key(context::ENTRY_HASH);
    hasher.update(header);
    hasher.update(signature);
    EntryHash(*hasher.finalize().as_bytes())
}

/// A key that opens exactly one entry: BLAKE3 keyed by the space's shared entry key, over the
/// entry's nonce. Handing it to someone (e.g. in a verifiable export) discloses that entry and
/// nothing else.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop, PartialEq, Eq)]
pub struct EntryKey(pub [u8; 32]);

impl std::fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntryKey(<secret>)")
    }
}

impl EntryKey {
    /// The key of the entry with this nonce in the space with this key.
    pub fn derive(key: &SpaceKey, nonce: &[u8; 24]) -> Self {
        let shared = key.derive(context::SHARED_ENTRY_KEY);
        Self(*blake3::keyed_hash(&shared, nonce).as_bytes())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl Entry {
    /// Seals `payload` under the space key and signs the header: the only way entries are made.
    pub fn seal(
        draft: Draft,
        payload: &Payload,
        key: &SpaceKey,
        author: &DeviceSecrets,
    ) -> Result<Self, EntryError> {
        if draft.class == Class::Private {
            return Err(EntryError::WrongClass(draft.class));
        }
        let entry_key = EntryKey::derive(key, &draft.nonce);
        Self::seal_with(draft, payload, &entry_key, author)
    }

    /// Seals `payload` under a given per-entry key and signs the header. Used for private journal
    /// entries (key from [`crate::keys::JournalKey::entry_key`]), which carry the shared class in
    /// their public header so the relay cannot tell them from shared entries; same padding.
    pub fn seal_with(
        draft: Draft,
        payload: &Payload,
        entry_key: &EntryKey,
        author: &DeviceSecrets,
    ) -> Result<Self, EntryError> {
        let padded = zeroize::Zeroizing::new(payload.to_padded()?);
        let ciphertext_len =
            u32::try_from(padded.len() + 16).map_err(|_| EntryError::TooLarge(padded.len()))?;
        let mut header = Header {
            version: PROTOCOL_VERSION,
            class: draft.class,
            space: draft.space,
            author: author.device_key(),
            seq: draft.seq,
            prev: draft.prev,
            time_ms: draft.time_ms,
            partner_seen: draft.partner_seen,
            nonce: draft.nonce,
            ciphertext_len,
            ciphertext_hash: [0; 32],
        };
        let aad = header.encode();
        let ciphertext = entry_key
            .cipher()
            .encrypt(
                XNonce::from_slice(&draft.nonce),
                AeadPayload {
                    msg: &padded,
                    aad: &aad[..AAD_LEN],
                },
            )
            .map_err(|_| EntryError::Decrypt)?;
        header.ciphertext_hash = ciphertext_hash(&ciphertext);
        let encoded = header.encode();
        let signature = author.sign(ENTRY_SIGNATURE_PREFIX, &encoded);
        Ok(Self {
            hash: entry_hash(&encoded, &signature),
            header,
            signature,
            ciphertext,
        })
    }

    /// The wire form: header, signature, ciphertext.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + SIGNATURE_LEN + self.ciphertext.len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Decodes an entry and checks what anyone can check without a key: layout, bounds,
    /// ciphertext hash and the author's signature. Does not check chain position or decrypt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        let entry = Self::decode_unsigned(bytes)?;
        let encoded = entry.header.encode();
        verify_signature(
            &entry.header.author,
            ENTRY_SIGNATURE_PREFIX,
            &encoded,
            &entry.signature,
        )?;
        Ok(entry)
    }

    /// [`Entry::from_bytes`] for many entries at once, with one batch signature verification
    /// for all entries that decode. If the batch fails, each signature is checked on its own,
    /// so the result for every entry (and its error) is exactly what `from_bytes` gives.
    pub fn from_bytes_batch(items: &[&[u8]]) -> Vec<Result<Self, EntryError>> {
        let mut decoded: Vec<Result<Self, EntryError>> = items
            .iter()
            .map(|bytes| Self::decode_unsigned(bytes))
            .collect();
        let headers: Vec<(usize, [u8; HEADER_LEN])> = decoded
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().ok().map(|e| (i, e.header.encode())))
            .collect();
        let batch: Vec<(&DeviceKey, &[u8], &[u8; 64])> = headers
            .iter()
            .filter_map(|(i, encoded)| {
                let entry = decoded.get(*i)?.as_ref().ok()?;
                Some((&entry.header.author, &encoded[..], &entry.signature))
            })
            .collect();
        if batch.is_empty()
            || crate::keys::verify_signatures_batch(ENTRY_SIGNATURE_PREFIX, &batch).is_ok()
        {
            return decoded;
        }
        // Someone in the batch is bad: find who, one by one, with the single-entry check.
        for (i, encoded) in &headers {
            let Some(slot) = decoded.get_mut(*i) else {
                continue;
            };
            if let Ok(entry) = slot {
                if let Err(e) = verify_signature(
                    &entry.header.author,
                    ENTRY_SIGNATURE_PREFIX,
                    encoded,
                    &entry.signature,
                ) {
                    *slot = Err(e.into());
                }
            }
        }
        decoded
    }

    /// Everything [`Entry::from_bytes`] checks except the signature. Private: an `Entry` promises
    /// a checked signature, so only the two callers above, which check it, may use this.
    fn decode_unsigned(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(EntryError::Truncated(bytes.len()));
        }
        let (header_bytes, rest) = bytes.split_at(HEADER_LEN);
        let (signature_bytes, ciphertext) = rest.split_at(SIGNATURE_LEN);
        let mut encoded = [0u8; HEADER_LEN];
        encoded.copy_from_slice(header_bytes);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(signature_bytes);
        let header = Header::decode(&encoded)?;
        if header.ciphertext_len as usize != ciphertext.len() {
            return Err(EntryError::LengthMismatch);
        }
        if ciphertext_hash(ciphertext) != header.ciphertext_hash {
            return Err(EntryError::CiphertextHashMismatch);
        }
        Ok(Self {
            hash: entry_hash(&encoded, &signature),
            header,
            signature,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Decrypts a shared or control entry under the space key and decodes its payload.
    pub fn open(&self, key: &SpaceKey) -> Result<Payload, EntryError> {
        if self.header.class == Class::Private {
            return Err(EntryError::WrongClass(self.header.class));
        }
        self.open_with(&self.entry_key(key))
    }

    /// Decrypts what the space key can open. A shared-class entry whose ciphertext does not open
    /// under the space key is its author's private journal entry (its signature and ciphertext
    /// hash were checked when it was decoded, so nobody but its author made it): `Ok(None)`, as
    /// for the private class. Control entries must open. Other failures are errors.
    pub fn open_readable(&self, key: &SpaceKey) -> Result<Option<Payload>, EntryError> {
        match self.header.class {
            Class::Private => Ok(None),
            Class::Control => self.open(key).map(Some),
            Class::Shared => match self.open(key) {
                Ok(payload) => Ok(Some(payload)),
                Err(EntryError::Decrypt) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// This entry's own key (see [`EntryKey`]).
    pub fn entry_key(&self, key: &SpaceKey) -> EntryKey {
        EntryKey::derive(key, &self.header.nonce)
    }

    /// Decrypts with this entry's own key, e.g. one disclosed in a verifiable export.
    pub fn open_with(&self, entry_key: &EntryKey) -> Result<Payload, EntryError> {
        let aad = self.header.encode();
        let padded = zeroize::Zeroizing::new(
            entry_key
                .cipher()
                .decrypt(
                    XNonce::from_slice(&self.header.nonce),
                    AeadPayload {
                        msg: &self.ciphertext,
                        aad: &aad[..AAD_LEN],
                    },
                )
                .map_err(|_| EntryError::Decrypt)?,
        );
        Ok(Payload::from_padded(&padded)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{kind, TextContent};

    pub(crate) fn sample() -> (DeviceSecrets, SpaceKey, Entry) {
        let author = DeviceSecrets::from_seeds([1; 32], [2; 32]);
        let key = SpaceKey::from_bytes([3; 32]);
        let draft = Draft {
            class: Class::Shared,
            space: SpaceId([4; 16]),
            seq: 0,
            prev: EntryHash::ZERO,
            time_ms: 1_700_000_000_000,
            partner_seen: PartnerSeen::default(),
            nonce: [5; 24],
        };
        let payload = Payload::text(
            kind::NOTE,
            &TextContent {
                text: "hello".into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        );
        let entry = Entry::seal(draft, &payload, &key, &author).unwrap();
        (author, key, entry)
    }

    #[test]
    fn journal_entries_look_shared_open_only_with_the_journal_key_and_read_as_private() {
        let (author, key, shared) = sample();
        let journal = crate::keys::JournalKey::from_bytes([8; 32]);
        let draft = Draft {
            class: Class::Shared,
            space: SpaceId([4; 16]),
            seq: 1,
            prev: shared.hash,
            time_ms: 1_700_000_000_001,
            partner_seen: PartnerSeen::default(),
            nonce: [6; 24],
        };
        let payload = Payload::checkpoint(&crate::payload::Checkpoint {
            own_root: crate::merkle::TreeHash([0; 32]),
            countersign: false,
        });
        let private = Entry::seal_with(
            draft.clone(),
            &payload,
            &journal.entry_key(&[6; 24]),
            &author,
        )
        .unwrap();
        assert_eq!(private.header.class, Class::Shared);
        assert_eq!(private.ciphertext.len(), shared.ciphertext.len());
        let decoded = Entry::from_bytes(&private.to_bytes()).unwrap();
        assert_eq!(decoded.open(&key), Err(EntryError::Decrypt));
        assert_eq!(decoded.open_readable(&key), Ok(None));
        assert_eq!(
            decoded.open_with(&journal.entry_key(&decoded.header.nonce)),
            Ok(payload.clone())
        );
        let other = crate::keys::JournalKey::from_bytes([9; 32]);
        assert!(decoded
            .open_with(&other.entry_key(&decoded.header.nonce))
            .is_err());
        assert_eq!(shared.open_readable(&key).unwrap(), shared.open(&key).ok());
        // A control entry that does not open is an error, never a private entry.
        let control = Entry::seal_with(
            Draft {
                class: Class::Control,
                ..draft
            },
            &payload,
            &journal.entry_key(&[6; 24]),
            &author,
        )
        .unwrap();
        assert_eq!(control.open_readable(&key), Err(EntryError::Decrypt));
    }

    #[test]
    fn seal_then_open_round_trips() {
        let (_, key, entry) = sample();
        let bytes = entry.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + SIGNATURE_LEN + 256 + 16);
        let decoded = Entry::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, entry);
        let payload = decoded.open(&key).unwrap();
        assert_eq!(payload.kind, kind::NOTE);
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let (_, key, entry) = sample();
        let bytes = entry.to_bytes();
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[index] ^= 1 << bit;
                let accepted = Entry::from_bytes(&tampered).and_then(|e| e.open(&key));
                assert!(
                    accepted.is_err(),
                    "flip of bit {bit} at byte {index} was accepted"
                );
            }
        }
    }

    #[test]
    fn ids_and_peeks_match_the_decoded_entry() {
        let (_, _, entry) = sample();
        let bytes = entry.to_bytes();
        assert_eq!(id_of(&bytes), Some(entry.hash));
        assert_eq!(peek_time(&bytes), Some(entry.header.time_ms));
        assert_eq!(peek_author_seq(&bytes), Some((entry.header.author, 0)));
        assert_eq!(id_of(&bytes[..100]), None);
    }

    #[test]
    fn an_entry_key_opens_its_entry_and_no_other() {
        let (author, key, entry) = sample();
        let entry_key = entry.entry_key(&key);
        assert_eq!(entry.open_with(&entry_key), entry.open(&key));
        let mut draft_nonce = entry.header.nonce;
        draft_nonce[0] ^= 1;
        let other = Entry::seal(
            Draft {
                class: Class::Shared,
                space: entry.header.space,
                seq: 1,
                prev: entry.hash,
                time_ms: 1,
                partner_seen: PartnerSeen::default(),
                nonce: draft_nonce,
            },
            &entry.open(&key).unwrap(),
            &key,
            &author,
        )
        .unwrap();
        assert_eq!(other.open_with(&entry_key), Err(EntryError::Decrypt));
    }

    #[test]
    fn wrong_space_key_cannot_open() {
        let (_, _, entry) = sample();
        assert_eq!(
            entry.open(&SpaceKey::from_bytes([9; 32])),
            Err(EntryError::Decrypt)
        );
    }

    #[test]
    fn re_signing_by_another_author_is_rejected() {
        let (_, _, entry) = sample();
        let mut header = entry.header.encode();
        let mallory = DeviceSecrets::from_seeds([8; 32], [8; 32]);
        let forged_sig = mallory.sign(ENTRY_SIGNATURE_PREFIX, &header);
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&forged_sig);
        bytes.extend_from_slice(&entry.ciphertext);
        assert!(matches!(
            Entry::from_bytes(&bytes),
            Err(EntryError::Signature(_))
        ));
        // Claiming Mallory as author makes the signature verify but the AEAD binds the author.
        header[18..50].copy_from_slice(&mallory.device_key().0);
        let sig = mallory.sign(ENTRY_SIGNATURE_PREFIX, &header);
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(&entry.ciphertext);
        let forged = Entry::from_bytes(&bytes).unwrap();
        assert_eq!(
            forged.open(&SpaceKey::from_bytes([3; 32])),
            Err(EntryError::Decrypt)
        );
    }

    #[test]
    fn batch_decoding_gives_each_entry_the_verdict_of_decoding_it_alone() {
        let (author, key, first) = sample();
        let payload = first.open(&key).unwrap();
        let mut good = vec![first.to_bytes()];
        let mut prev = first.hash;
        for seq in 1..6 {
            let entry = Entry::seal(
                Draft {
                    class: Class::Shared,
                    space: first.header.space,
                    seq,
                    prev,
                    time_ms: 1,
                    partner_seen: PartnerSeen::default(),
                    nonce: [seq as u8; 24],
                },
                &payload,
                &key,
                &author,
            )
            .unwrap();
            prev = entry.hash;
            good.push(entry.to_bytes());
        }
        let refs: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
        let all: Vec<_> = Entry::from_bytes_batch(&refs);
        assert!(all.iter().all(Result::is_ok));
        // A forged signature (bit flip in the signature), a bad ciphertext hash and a truncated
        // entry among good ones: each verdict must match the single-entry check.
        let mut mixed = good.clone();
        mixed[1][HEADER_LEN + 3] ^= 1;
        mixed[3][HEADER_LEN - 1] ^= 1;
        mixed[4].truncate(50);
        let refs: Vec<&[u8]> = mixed.iter().map(Vec::as_slice).collect();
        let batch = Entry::from_bytes_batch(&refs);
        let single: Vec<_> = mixed.iter().map(|b| Entry::from_bytes(b)).collect();
        assert_eq!(batch, single);
        assert!(matches!(batch[1], Err(EntryError::Signature(_))));
        assert!(batch[0].is_ok() && batch[2].is_ok() && batch[5].is_ok());
    }

    #[test]
    fn truncated_and_oversized_inputs_are_rejected() {
        let (_, _, entry) = sample();
        let bytes = entry.to_bytes();
        assert!(matches!(
            Entry::from_bytes(&bytes[..100]),
            Err(EntryError::Truncated(100))
        ));
        assert_eq!(
            Entry::from_bytes(&bytes[..bytes.len() - 1]),
            Err(EntryError::LengthMismatch)
        );
        assert!(matches!(
            Entry::from_bytes(&vec![1u8; MAX_ENTRY + 1]),
            Err(EntryError::TooLarge(_))
        ));
    }
}
