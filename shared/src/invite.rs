//! Pairing: the one-line invite, the sealed space key it unlocks, and membership proofs.
//!
//! The creating device draws a space id, a space key and an invite secret. It gives the relay
//! only a *verifier* of the secret and the space key *sealed* under a key derived from the secret.
//! The invite line (handed to the partner in person or over a channel they trust) carries the
//! secret, the relay's address and certificate fingerprint, and the creator's public keys. To
//! join, the partner shows the secret to the relay, which checks it against the verifier, hands
//! over the sealed key once, and forgets it. The relay never holds anything that opens the key
//! without the secret, and a used invite is worthless even to someone who later finds it.
//!
//! Each member also publishes a proof with its member card that the relay cannot compute, so it
//! cannot slip its own key into a space: the creator a MAC of its public keys under a key derived
//! from the space key ([`member_proof`], checked by the joiner), the joiner a MAC under a key
//! derived from the invite secret ([`InviteSecret::join_proof`], checked by the creator).

use crate::keys::{context, DevicePublic, SpaceKey};
use crate::SpaceId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Text prefix of every invite line.
pub const INVITE_PREFIX: &str = "candor-invite:";
/// Longest invite line accepted (bounds the decoder).
pub const MAX_INVITE_LEN: usize = 2048;
const INVITE_FORMAT: u8 = 1;
const SEALED_KEY_LEN: usize = 24 + 32 + 16;

/// Errors parsing an invite or opening what it unlocks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    /// Not of the form `candor-invite:…`.
    #[error("not a Candor invite (it should start with {INVITE_PREFIX:?})")]
    MissingPrefix,
    /// Too long to be an invite.
    #[error("invite is too long to be valid")]
    TooLong,
    /// The text is not valid base64url.
    #[error("invite is damaged: it contains characters that do not belong in an invite")]
    BadEncoding,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("invite is damaged: its checksum does not match (was it copied completely?)")]
    BadChecksum,
    /// The invite was made by a newer Candor.
    #[error("invite format {0} is not supported by this version of Candor")]
    UnknownFormat(u8),
    /// The contents do not decode.
    #[error("invite is damaged: its contents do not decode")]
    BadContents,
    /// The sealed space key does not open with this invite's secret.
    #[error("the relay returned a space key that does not match this invite")]
    WrongKey,
}

/// The SHA-256 fingerprint of a relay's TLS certificate, which devices pin.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayFingerprint(pub [u8; 32]);

/// Error parsing a fingerprint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a relay fingerprint is 64 hex characters (optionally prefixed \"sha256:\", colons allowed)"
)]
pub struct FingerprintParseError;

impl RelayFingerprint {
    /// Parses `sha256:ab12…`, `AB:12:…` or plain hex.
    pub fn parse(text: &str) -> Result<Self, FingerprintParseError> {
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix("sha256:").unwrap_or(trimmed);
        let cleaned: String = trimmed.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(cleaned, &mut out).map_err(|_| FingerprintParseError)?;
        Ok(Self(out))
    }
}

impl fmt::Display for RelayFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for RelayFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The secret inside an invite. Zeroized when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct InviteSecret(pub [u8; 32]);

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(<secret>)")
    }
}

impl InviteSecret {
    /// What the joining device shows the relay. Derived independently of the wrap key, so the
    /// relay learns nothing that opens the sealed space key.
    pub fn token(&self) -> [u8; 32] {
        blake3::derive_key(context::INVITE_TOKEN, &self.0)
    }

    /// The joining device's proof that it holds this invite's secret: a MAC of the space id and
    /// its public keys. The relay only ever sees the token, so it cannot forge this proof; the
    /// creating device keeps the secret to check it.
    pub fn join_proof(&self, space: &SpaceId, device: &DevicePublic) -> [u8; 32] {
        let key = Zeroizing::new(blake3::derive_key(context::JOIN_PROOF_KEY, &self.0));
        mac_device(&key, space, device)
    }

    /// Checks a [`InviteSecret::join_proof`] in constant time.
    pub fn verify_join_proof(
        &self,
        space: &SpaceId,
        device: &DevicePublic,
        proof: &[u8; 32],
    ) -> bool {
        blake3::Hash::from(self.join_proof(space, device)) == blake3::Hash::from(*proof)
    }

    /// What the relay stores to recognise the token later: [`token_verifier`] of the token.
    pub fn verifier(&self) -> [u8; 32] {
        token_verifier(&self.token())
    }

    fn wrap_cipher(&self) -> XChaCha20Poly1305 {
        let key = Zeroizing::new(blake3::derive_key(context::INVITE_WRAP_KEY, &self.0));
        XChaCha20Poly1305::new(key.as_ref().into())
    }

    /// Seals the space key for the relay to hold until the invite is used: `nonce | ciphertext`.
    pub fn seal_space_key(&self, space: &SpaceId, key: &SpaceKey, nonce: [u8; 24]) -> Vec<u8> {
        let mut out = nonce.to_vec();
        // Encryption with a 32-byte key and message cannot fail.
        let sealed = self
            .wrap_cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                AeadPayload {
                    msg: key.as_bytes(),
                    aad: &space.0,
                },
            )
            .unwrap_or_default();
        out.extend(sealed);
        out
    }

    /// Opens what [`InviteSecret::seal_space_key`] produced.
    pub fn open_space_key(&self, space: &SpaceId, sealed: &[u8]) -> Result<SpaceKey, InviteError> {
        if sealed.len() != SEALED_KEY_LEN {
            return Err(InviteError::WrongKey);
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let plain = Zeroizing::new(
            self.wrap_cipher()
                .decrypt(
                    XNonce::from_slice(nonce),
                    AeadPayload {
                        msg: ciphertext,
                        aad: &space.0,
                    },
                )
                .map_err(|_| InviteError::WrongKey)?,
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(&plain);
        let space_key = SpaceKey::from_bytes(key);
        key.zeroize();
        Ok(space_key)
    }
}

/// The verifier of an invite token, as the relay computes it on join.
pub fn token_verifier(token: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(context::INVITE_VERIFIER, token)
}

/// Compares a presented token with a stored verifier in constant time.
pub fn token_matches(token: &[u8; 32], verifier: &[u8; 32]) -> bool {
    blake3::Hash::from(token_verifier(token)) == blake3::Hash::from(*verifier)
}

/// Everything a partner's device needs to join a space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The relay's address, `HOST:PORT`.
    pub relay: String,
    /// The relay's certificate fingerprint.
    pub relay_fingerprint: RelayFingerprint,
    /// The space to join.
    pub space: SpaceId,
    /// The one-time secret.
    pub secret: InviteSecret,
    /// The creating device's public identity, pinned by the joiner.
    pub creator: DevicePublic,
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let hash = blake3::derive_key(context::INVITE_CHECKSUM, body);
    [hash[0], hash[1], hash[2], hash[3]]
}

impl Invite {
    /// The one-line text form: `candor-invite:` + base64url(format | postcard | checksum).
    pub fn to_line(&self) -> String {
        let mut body = Zeroizing::new(vec![INVITE_FORMAT]);
        body.extend(postcard::to_stdvec(self).unwrap_or_default());
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        format!("{INVITE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&*body))
    }

    /// Parses an invite line, explaining precisely what is wrong with a bad one.
    pub fn parse(line: &str) -> Result<Self, InviteError> {
        let line = line.trim();
        if line.len() > MAX_INVITE_LEN {
            return Err(InviteError::TooLong);
        }
        let encoded = line
            .strip_prefix(INVITE_PREFIX)
            .ok_or(InviteError::MissingPrefix)?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| InviteError::BadEncoding)?,
        );
        if bytes.len() < 5 {
            return Err(InviteError::BadChecksum);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 4);
        if checksum(body) != sum {
            return Err(InviteError::BadChecksum);
        }
        if body[0] != INVITE_FORMAT {
            return Err(InviteError::UnknownFormat(body[0]));
        }
        postcard::from_bytes(&body[1..]).map_err(|_| InviteError::BadContents)
    }
}

fn mac_device(key: &[u8; 32], space: &SpaceId, device: &DevicePublic) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(&space.0);
    hasher.update(&device.device.0);
    hasher.update(&device.exchange);
    *hasher.finalize().as_bytes()
}

/// The creating device's proof that it knows the space key (a MAC of its public keys).
pub fn member_proof(key: &SpaceKey, space: &SpaceId, device: &DevicePublic) -> [u8; 32] {
    mac_device(&key.derive(context::MEMBER_PROOF_KEY), space, device)
}

/// Checks a membership proof in constant time.
pub fn verify_member_proof(
    key: &SpaceKey,
    space: &SpaceId,
    device: &DevicePublic,
    proof: &[u8; 32],
) -> bool {
    // blake3::Hash's equality is constant-time.
    blake3::Hash::from(member_proof(key, space, device)) == blake3::Hash::from(*proof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKey;
    use proptest::prelude::*;

    fn invite() -> Invite {
        Invite {
            relay: "127.0.0.1:4433".into(),
            relay_fingerprint: RelayFingerprint([7; 32]),
            space: SpaceId([1; 16]),
            secret: InviteSecret([2; 32]),
            creator: DevicePublic {
                device: DeviceKey([3; 32]),
                exchange: [4; 32],
            },
        }
    }

    #[test]
    fn invite_line_round_trips_and_is_one_line() {
        let line = invite().to_line();
        assert!(line.starts_with(INVITE_PREFIX));
        assert!(!line.contains(char::is_whitespace));
        assert_eq!(Invite::parse(&line), Ok(invite()));
        assert_eq!(Invite::parse(&format!("  {line}\n")), Ok(invite()));
    }

    #[test]
    fn damaged_invites_get_precise_errors() {
        let line = invite().to_line();
        assert_eq!(Invite::parse("hello"), Err(InviteError::MissingPrefix));
        assert_eq!(
            Invite::parse(&line[..line.len() - 3]),
            Err(InviteError::BadChecksum)
        );
        assert_eq!(
            Invite::parse(&format!("{INVITE_PREFIX}!!!")),
            Err(InviteError::BadEncoding)
        );
        let mut typo = line.clone().into_bytes();
        let at = typo.len() - 10;
        typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Invite::parse(&String::from_utf8(typo).unwrap()),
            Err(InviteError::BadChecksum)
        );
        assert_eq!(Invite::parse(&"x".repeat(5000)), Err(InviteError::TooLong));
    }

    #[test]
    fn sealed_space_key_opens_only_with_the_secret_and_space() {
        let space = SpaceId([1; 16]);
        let key = SpaceKey::from_bytes([9; 32]);
        let secret = InviteSecret([2; 32]);
        let sealed = secret.seal_space_key(&space, &key, [5; 24]);
        assert_eq!(secret.open_space_key(&space, &sealed), Ok(key.clone()));
        assert!(InviteSecret([3; 32])
            .open_space_key(&space, &sealed)
            .is_err());
        assert!(secret.open_space_key(&SpaceId([0; 16]), &sealed).is_err());
        assert!(token_matches(&secret.token(), &secret.verifier()));
        assert!(!token_matches(&secret.0, &secret.verifier()));
        assert_ne!(secret.token(), secret.0, "the token must not be the secret");
    }

    #[test]
    fn member_proofs_bind_key_space_and_device() {
        let space = SpaceId([1; 16]);
        let key = SpaceKey::from_bytes([9; 32]);
        let device = invite().creator;
        let proof = member_proof(&key, &space, &device);
        assert!(verify_member_proof(&key, &space, &device, &proof));
        assert!(!verify_member_proof(
            &SpaceKey::from_bytes([8; 32]),
            &space,
            &device,
            &proof
        ));
        let other = DevicePublic {
            exchange: [5; 32],
            ..device
        };
        assert!(!verify_member_proof(&key, &space, &other, &proof));
    }

    #[test]
    fn join_proofs_need_the_invite_secret() {
        let space = SpaceId([1; 16]);
        let device = invite().creator;
        let secret = InviteSecret([2; 32]);
        let proof = secret.join_proof(&space, &device);
        assert!(secret.verify_join_proof(&space, &device, &proof));
        assert!(!InviteSecret([3; 32]).verify_join_proof(&space, &device, &proof));
        assert_ne!(
            proof,
            secret.token(),
            "the relay sees the token; it must not be the proof"
        );
        let other = DevicePublic {
            exchange: [9; 32],
            ..device
        };
        assert!(!secret.verify_join_proof(&space, &other, &proof));
    }

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let fp = RelayFingerprint([0xab; 32]);
        assert_eq!(RelayFingerprint::parse(&fp.to_string()), Ok(fp));
        assert_eq!(RelayFingerprint::parse(&"AB".repeat(32)), Ok(fp));
        assert_eq!(RelayFingerprint::parse(&vec!["ab"; 32].join(":")), Ok(fp));
        assert!(RelayFingerprint::parse("abc").is_err());
    }

    proptest! {
        #[test]
        fn invite_parser_never_panics(text in ".{0,400}") {
            let _ = Invite::parse(&text);
            let _ = Invite::parse(&format!("{INVITE_PREFIX}{text}"));
        }
    }
}
