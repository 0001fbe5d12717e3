//! Device identities, the space key and the safety number.
//!
//! A device has two long-lived keys, both created from OS randomness by the caller:
//! an Ed25519 signing key (its [`DeviceKey`] names the device and its log) and an X25519 key for
//! key agreement. The couple's space has one symmetric key shared by both devices; it never
//! reaches the relay in any form the relay could open.

use crate::{DeviceKey, SpaceId};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Domain-separation contexts for every key derived in Candor. Changing one breaks compatibility.
pub mod context {
    /// Key that encrypts shared entries, derived from the space key.
    pub const SHARED_ENTRY_KEY: &str = "candor v1 shared entry key";
    /// Key that seals the space key inside an invite record, derived from the invite secret.
    pub const INVITE_WRAP_KEY: &str = "candor v1 invite wrap key";
    /// Token a joining device shows the relay, derived from the invite secret.
    pub const INVITE_TOKEN: &str = "candor v1 invite token";
    /// Verifier of an invite token, stored by the relay.
    pub const INVITE_VERIFIER: &str = "candor v1 invite verifier";
    /// Key of the joining device's proof that it holds the invite secret.
    pub const JOIN_PROOF_KEY: &str = "candor v1 join proof key";
    /// Key of the membership proof that a device knows the space key.
    pub const MEMBER_PROOF_KEY: &str = "candor v1 member proof key";
    /// Safety number over both devices' identity keys.
    pub const SAFETY_NUMBER: &str = "candor v1 safety number";
    /// Hash of an entry (header and signature).
    pub const ENTRY_HASH: &str = "candor v1 entry hash";
    /// Hash of an entry's ciphertext.
    pub const CIPHERTEXT_HASH: &str = "candor v1 ciphertext hash";
    /// Checksum of an invite's text form.
    pub const INVITE_CHECKSUM: &str = "candor v1 invite checksum";
    /// Key that encrypts private journal entries, derived from the personal journal key.
    pub const JOURNAL_ENTRY_KEY: &str = "candor v1 journal entry key";
    /// Key that wraps the local storage key, derived by Argon2id from a passphrase (the string
    /// is the associated data of the wrap, binding it to its purpose).
    pub const STORAGE_KEY_WRAP: &str = "candor v1 storage key wrap";
    /// Associated data prefix of every value sealed at rest on a device.
    pub const AT_REST_VALUE: &str = "candor v1 at-rest value";
    /// Associated data prefix of a recovery bundle.
    pub const BACKUP_BUNDLE: &str = "candor v1 backup bundle";
}

/// Signature prefix for entry headers.
pub const ENTRY_SIGNATURE_PREFIX: &[u8] = b"candor/v1/entry-header\0";
/// Signature prefix for a device's signature over a whole verifiable export file.
pub const EXPORT_SIGNATURE_PREFIX: &[u8] = b"candor/v1/verifiable-export\0";
/// Signature prefix for the relay's connection challenge.
pub const AUTH_SIGNATURE_PREFIX: &[u8] = b"candor/v1/relay-auth\0";

/// A device's secret keys. Zeroized when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceSecrets {
    signing_seed: [u8; 32],
    exchange_secret: [u8; 32],
}

/// The public half of a device identity: what a partner pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePublic {
    /// Ed25519 verifying key.
    pub device: DeviceKey,
    /// X25519 public key.
    pub exchange: [u8; 32],
}

impl DeviceSecrets {
    /// Builds the identity from 64 bytes of OS randomness (32 for each key).
    pub fn from_seeds(signing_seed: [u8; 32], exchange_secret: [u8; 32]) -> Self {
        Self {
            signing_seed,
            exchange_secret,
        }
    }

    /// The raw seeds, for writing the key file. Handle with care.
    pub fn seeds(&self) -> (&[u8; 32], &[u8; 32]) {
        (&self.signing_seed, &self.exchange_secret)
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.signing_seed)
    }

    /// This device's public identity.
    pub fn public(&self) -> DevicePublic {
        let exchange_secret = x25519_dalek::StaticSecret::from(self.exchange_secret);
        DevicePublic {
            device: DeviceKey(self.signing_key().verifying_key().to_bytes()),
            exchange: x25519_dalek::PublicKey::from(&exchange_secret).to_bytes(),
        }
    }

    /// The Ed25519 verifying key naming this device.
    pub fn device_key(&self) -> DeviceKey {
        DeviceKey(self.signing_key().verifying_key().to_bytes())
    }

    /// Signs `prefix || message` with the device's Ed25519 key.
    pub fn sign(&self, prefix: &[u8], message: &[u8]) -> [u8; 64] {
        let mut buf = Zeroizing::new(Vec::with_capacity(prefix.len() + message.len()));
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(message);
        self.signing_key().sign(&buf).to_bytes()
    }

    /// X25519 Diffie-Hellman with a peer's public key.
    pub fn agree(&self, peer: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let secret = x25519_dalek::StaticSecret::from(self.exchange_secret);
        Zeroizing::new(
            secret
                .diffie_hellman(&x25519_dalek::PublicKey::from(*peer))
                .to_bytes(),
        )
    }
}

/// Error verifying an Ed25519 signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key is not a valid Ed25519 point.
    #[error("the device key is not a valid Ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Invalid,
}

/// Verifies a signature made by [`DeviceSecrets::sign`] with the same prefix.
pub fn verify_signature(
    device: &DeviceKey,
    prefix: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(&device.0).map_err(|_| SignatureError::BadKey)?;
    let mut buf = Vec::with_capacity(prefix.len() + message.len());
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(message);
    key.verify_strict(&buf, &ed25519_dalek::Signature::from_bytes(signature))
        .map_err(|_| SignatureError::Invalid)
}

/// Verifies many signatures made by [`DeviceSecrets::sign`] with the same prefix at once:
/// `(device, message, signature)` each. Ed25519 batch verification (one multiscalar
/// multiplication for the whole batch, about twice as fast per signature as one by one) checks
/// the same cofactorless equation as [`verify_signature`] and refuses weak (small-order) device
/// keys as it does. `Err` means at least one signature is bad, not which: check them one by one
/// with [`verify_signature`] to find it.
pub fn verify_signatures_batch(
    prefix: &[u8],
    items: &[(&DeviceKey, &[u8], &[u8; 64])],
) -> Result<(), SignatureError> {
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(items.len());
    // Most batches hold one or two authors: decompress each distinct key once.
    let mut known: Vec<(DeviceKey, VerifyingKey)> = Vec::new();
    for (device, _, _) in items {
        let key = match known.iter().find(|(d, _)| d == *device) {
            Some((_, key)) => *key,
            None => {
                let key =
                    VerifyingKey::from_bytes(&device.0).map_err(|_| SignatureError::BadKey)?;
                if key.is_weak() {
                    return Err(SignatureError::BadKey);
                }
                known.push((**device, key));
                key
            }
        };
        keys.push(key);
    }
    let buffers: Vec<Vec<u8>> = items
        .iter()
        .map(|(_, message, _)| {
            let mut buf = Vec::with_capacity(prefix.len() + message.len());
            buf.extend_from_slice(prefix);
            buf.extend_from_slice(message);
            buf
        })
        .collect();
    let messages: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, _, signature)| ed25519_dalek::Signature::from_bytes(signature))
        .collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).map_err(|_| SignatureError::Invalid)
}

/// The couple's shared symmetric key. Zeroized when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SpaceKey([u8; 32]);

impl SpaceKey {
    /// Wraps 32 bytes of OS randomness.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for writing the key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives a purpose-specific subkey.
    pub fn derive(&self, context: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, &self.0))
    }
}

impl std::fmt::Debug for SpaceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpaceKey(<secret>)")
    }
}

/// A person's journal key: 32 bytes from the OS RNG made at `candor init`, kept only on their
/// own devices (and in recovery bundles). Journal entries that go to the relay are encrypted
/// under per-entry keys derived from it, so the partner's device cannot open them. Zeroized when
/// dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct JournalKey([u8; 32]);

impl JournalKey {
    /// Wraps 32 bytes of OS randomness.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for writing the key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of the journal entry with this nonce: BLAKE3 keyed by the journal entry key.
    pub fn entry_key(&self, nonce: &[u8; 24]) -> crate::entry::EntryKey {
        let base = Zeroizing::new(blake3::derive_key(context::JOURNAL_ENTRY_KEY, &self.0));
        crate::entry::EntryKey(*blake3::keyed_hash(&base, nonce).as_bytes())
    }
}

impl std::fmt::Debug for JournalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalKey(<secret>)")
    }
}

/// The safety number both partners compare in person: 60 digits in 12 groups of five.
///
/// It is derived from the space id and both devices' public identity keys (sorted, so both
/// devices compute the same number). A different device, a different space, or a key the relay
/// substituted gives a different number.
pub fn safety_number(space: &SpaceId, a: &DevicePublic, b: &DevicePublic) -> String {
    let (first, second) = if a.device <= b.device { (a, b) } else { (b, a) };
    let mut hasher = blake3::Hasher::new_derive_key(context::SAFETY_NUMBER);
    hasher.update(&space.0);
    for device in [first, second] {
        hasher.update(&device.device.0);
        hasher.update(&device.exchange);
    }
    let mut output = [0u8; 60];
    hasher.finalize_xof().fill(&mut output);
    let groups: Vec<String> = output
        .chunks_exact(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceSecrets {
        DeviceSecrets::from_seeds([n; 32], [n.wrapping_add(100); 32])
    }

    #[test]
    fn signatures_verify_only_with_matching_prefix_key_and_message() {
        let alice = device(1);
        let sig = alice.sign(b"p", b"hello");
        assert_eq!(
            verify_signature(&alice.device_key(), b"p", b"hello", &sig),
            Ok(())
        );
        assert!(verify_signature(&alice.device_key(), b"q", b"hello", &sig).is_err());
        assert!(verify_signature(&alice.device_key(), b"p", b"hellO", &sig).is_err());
        assert!(verify_signature(&device(2).device_key(), b"p", b"hello", &sig).is_err());
    }

    #[test]
    fn key_agreement_is_symmetric() {
        let (a, b) = (device(1), device(2));
        assert_eq!(
            *a.agree(&b.public().exchange),
            *b.agree(&a.public().exchange)
        );
    }

    #[test]
    fn safety_number_is_symmetric_and_sensitive() {
        let space = SpaceId([7; 16]);
        let (a, b, c) = (device(1).public(), device(2).public(), device(3).public());
        let n = safety_number(&space, &a, &b);
        assert_eq!(n, safety_number(&space, &b, &a));
        assert_eq!(n.len(), 12 * 5 + 11);
        assert_ne!(n, safety_number(&space, &a, &c));
        assert_ne!(n, safety_number(&SpaceId([8; 16]), &a, &b));
        let swapped_exchange = DevicePublic {
            exchange: c.exchange,
            ..b
        };
        assert_ne!(n, safety_number(&space, &a, &swapped_exchange));
    }
}
