//! Encryption at rest on a device: the local storage key, values sealed under it, the key file
//! that holds it (plain, or wrapped by a passphrase with Argon2id), and recovery bundles.
//!
//! Every byte layout here is versioned by a magic prefix and every decoder bounds its input. The
//! caller supplies random salts and nonces (from the OS RNG).
//!
//! ```text
//! sealed value   nonce (24) | XChaCha20-Poly1305 ciphertext (value + 16)
//!                AAD = "candor v1 at-rest value" | u32 BE label length | label
//!                (the label names the tree and key the value is stored under)
//! key file       "CNDRKEY1" | mode (1)
//!                mode 0: storage key (32)                          no passphrase
//!                mode 1: m KiB, t, p (u32 BE each) | salt (16) | nonce (24) | wrapped key (48)
//!                AAD of the wrap = "candor v1 storage key wrap" | the bytes before the wrapped key
//! bundle         "CNDRBAK1" | m KiB, t, p (u32 BE each) | salt (16) | nonce (24) | ciphertext
//!                AAD = "candor v1 backup bundle" | the bytes before the ciphertext
//! ```

use crate::keys::context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Magic prefix of a storage key file.
pub const KEY_FILE_MAGIC: &[u8; 8] = b"CNDRKEY1";
/// Magic prefix of a recovery bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"CNDRBAK1";
/// Largest recovery bundle accepted (bytes).
pub const MAX_BUNDLE: usize = 1024 * 1024 * 1024;
/// Largest sealed value accepted (bytes).
pub const MAX_VALUE: usize = 64 * 1024 * 1024;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
const PARAMS_LEN: usize = 12;

/// Errors of the at-rest formats.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AtRestError {
    /// The passphrase does not open the key or bundle.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A sealed value does not open (damaged, or moved to another tree or key).
    #[error("a value stored on this device does not decrypt (damaged or tampered with)")]
    Damaged,
    /// The bytes are not in the expected format.
    #[error("not a {0} (unknown format)")]
    Format(&'static str),
    /// The bytes are larger than allowed.
    #[error("{0} is larger than allowed")]
    TooLarge(&'static str),
    /// Argon2 parameters outside the accepted bounds.
    #[error("the passphrase parameters are outside the accepted bounds")]
    BadParams,
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The parameters new wraps use: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended
    /// option for memory-constrained settings).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    fn encode(&self) -> [u8; PARAMS_LEN] {
        let mut out = [0u8; PARAMS_LEN];
        out[..4].copy_from_slice(&self.m_kib.to_be_bytes());
        out[4..8].copy_from_slice(&self.t.to_be_bytes());
        out[8..].copy_from_slice(&self.p.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, AtRestError> {
        let word = |at: usize| -> Result<u32, AtRestError> {
            let b: [u8; 4] = bytes
                .get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or(AtRestError::BadParams)?;
            Ok(u32::from_be_bytes(b))
        };
        let params = Self {
            m_kib: word(0)?,
            t: word(4)?,
            p: word(8)?,
        };
        // Bounded, so a crafted file cannot make us allocate gigabytes or spin for hours.
        if !(8..=1024 * 1024).contains(&params.m_kib)
            || !(1..=64).contains(&params.t)
            || !(1..=16).contains(&params.p)
        {
            return Err(AtRestError::BadParams);
        }
        Ok(params)
    }
}

/// Derives a 32-byte key from a passphrase with Argon2id.
pub fn passphrase_key(
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, AtRestError> {
    if passphrase.is_empty() {
        return Err(AtRestError::EmptyPassphrase);
    }
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|_| AtRestError::BadParams)?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|_| AtRestError::BadParams)?;
    Ok(out)
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// The device's local storage key: 32 bytes from the OS RNG. Zeroized when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct StorageKey([u8; 32]);

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<secret>)")
    }
}

fn value_aad(label: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context::AT_REST_VALUE.len() + 4 + label.len());
    aad.extend_from_slice(context::AT_REST_VALUE.as_bytes());
    aad.extend_from_slice(&u32::try_from(label.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(label);
    aad
}

impl StorageKey {
    /// Wraps 32 bytes of OS randomness.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Seals `value` stored under `label` (tree and key), with a fresh random `nonce`.
    pub fn seal(&self, label: &[u8], value: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ciphertext = cipher(&self.0)
            .encrypt(
                XNonce::from_slice(&nonce),
                AeadPayload {
                    msg: value,
                    aad: &value_aad(label),
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value sealed by [`StorageKey::seal`] under the same label.
    pub fn open(&self, label: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        if sealed.len() > MAX_VALUE + NONCE_LEN + TAG_LEN {
            return Err(AtRestError::TooLarge("stored value"));
        }
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(AtRestError::Damaged);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        cipher(&self.0)
            .decrypt(
                XNonce::from_slice(nonce),
                AeadPayload {
                    msg: ciphertext,
                    aad: &value_aad(label),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| AtRestError::Damaged)
    }

    /// The key file without a passphrase (the key in the clear; the file must be 0600).
    pub fn to_plain_file(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(KEY_FILE_MAGIC.to_vec());
        out.push(0);
        out.extend_from_slice(&self.0);
        out
    }

    /// The key file wrapped by a passphrase-derived key.
    pub fn to_wrapped_file(
        &self,
        passphrase: &[u8],
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        params: KdfParams,
    ) -> Result<Vec<u8>, AtRestError> {
        let wrap_key = passphrase_key(passphrase, &salt, params)?;
        let mut out = KEY_FILE_MAGIC.to_vec();
        out.push(1);
        out.extend_from_slice(&params.encode());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        let mut aad = context::STORAGE_KEY_WRAP.as_bytes().to_vec();
        aad.extend_from_slice(&out);
        let wrapped = cipher(&wrap_key)
            .encrypt(
                XNonce::from_slice(&nonce),
                AeadPayload {
                    msg: &self.0,
                    aad: &aad,
                },
            )
            .map_err(|_| AtRestError::BadParams)?;
        out.extend_from_slice(&wrapped);
        Ok(out)
    }
}

/// A decoded key file.
pub enum KeyFile {
    /// No passphrase: the key itself.
    Plain(StorageKey),
    /// Wrapped by a passphrase: [`KeyFile::unlock`] it.
    Wrapped(Vec<u8>),
}

impl KeyFile {
    /// Decodes a key file.
    pub fn decode(bytes: &[u8]) -> Result<Self, AtRestError> {
        const WRAPPED_LEN: usize = 9 + PARAMS_LEN + SALT_LEN + NONCE_LEN + 32 + TAG_LEN;
        if bytes.len() < 9 || &bytes[..8] != KEY_FILE_MAGIC {
            return Err(AtRestError::Format("storage key file"));
        }
        match (bytes[8], bytes.len()) {
            (0, 41) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes[9..]);
                Ok(Self::Plain(StorageKey(key)))
            }
            (1, WRAPPED_LEN) => Ok(Self::Wrapped(bytes.to_vec())),
            _ => Err(AtRestError::Format("storage key file")),
        }
    }

    /// Whether a passphrase is needed.
    pub fn is_wrapped(&self) -> bool {
        matches!(self, Self::Wrapped(_))
    }

    /// The storage key, opening a wrapped key with `passphrase`.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<StorageKey, AtRestError> {
        match self {
            Self::Plain(key) => Ok(key.clone()),
            Self::Wrapped(bytes) => {
                let params = KdfParams::decode(&bytes[9..9 + PARAMS_LEN])?;
                let salt_at = 9 + PARAMS_LEN;
                let nonce_at = salt_at + SALT_LEN;
                let wrapped_at = nonce_at + NONCE_LEN;
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&bytes[salt_at..nonce_at]);
                let wrap_key = passphrase_key(passphrase, &salt, params)?;
                let mut aad = context::STORAGE_KEY_WRAP.as_bytes().to_vec();
                aad.extend_from_slice(&bytes[..wrapped_at]);
                let key = Zeroizing::new(
                    cipher(&wrap_key)
                        .decrypt(
                            XNonce::from_slice(&bytes[nonce_at..wrapped_at]),
                            AeadPayload {
                                msg: &bytes[wrapped_at..],
                                aad: &aad,
                            },
                        )
                        .map_err(|_| AtRestError::WrongPassphrase)?,
                );
                let key: [u8; 32] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| AtRestError::Format("storage key file"))?;
                Ok(StorageKey(key))
            }
        }
    }
}

/// Seals a recovery bundle's plaintext under a passphrase.
pub fn seal_bundle(
    plaintext: &[u8],
    passphrase: &[u8],
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    params: KdfParams,
) -> Result<Vec<u8>, AtRestError> {
    if plaintext.len() > MAX_BUNDLE - 100 {
        return Err(AtRestError::TooLarge("recovery bundle"));
    }
    let key = passphrase_key(passphrase, &salt, params)?;
    let mut out = BUNDLE_MAGIC.to_vec();
    out.extend_from_slice(&params.encode());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let mut aad = context::BACKUP_BUNDLE.as_bytes().to_vec();
    aad.extend_from_slice(&out);
    let ciphertext = cipher(&key)
        .encrypt(
            XNonce::from_slice(&nonce),
            AeadPayload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| AtRestError::TooLarge("recovery bundle"))?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a recovery bundle; [`AtRestError::WrongPassphrase`] if the passphrase does not open it.
pub fn open_bundle(bytes: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(AtRestError::TooLarge("recovery bundle"));
    }
    let header_len = 8 + PARAMS_LEN + SALT_LEN + NONCE_LEN;
    if bytes.len() < header_len + TAG_LEN || &bytes[..8] != BUNDLE_MAGIC {
        return Err(AtRestError::Format("Candor recovery bundle"));
    }
    let params = KdfParams::decode(&bytes[8..8 + PARAMS_LEN])?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&bytes[8 + PARAMS_LEN..8 + PARAMS_LEN + SALT_LEN]);
    let key = passphrase_key(passphrase, &salt, params)?;
    let mut aad = context::BACKUP_BUNDLE.as_bytes().to_vec();
    aad.extend_from_slice(&bytes[..header_len]);
    cipher(&key)
        .decrypt(
            XNonce::from_slice(&bytes[header_len - NONCE_LEN..header_len]),
            AeadPayload {
                msg: &bytes[header_len..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| AtRestError::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn values_open_only_under_their_own_label_and_key() {
        let key = StorageKey::from_bytes([1; 32]);
        let sealed = key.seal(b"local/abc", b"secret words", [2; 24]);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(b"local/abc", &sealed).unwrap().as_slice(),
            b"secret words"
        );
        assert_eq!(key.open(b"local/abd", &sealed), Err(AtRestError::Damaged));
        let other = StorageKey::from_bytes([3; 32]);
        assert_eq!(other.open(b"local/abc", &sealed), Err(AtRestError::Damaged));
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert_eq!(key.open(b"local/abc", &flipped), Err(AtRestError::Damaged));
        assert_eq!(key.open(b"local/abc", &[0; 10]), Err(AtRestError::Damaged));
    }

    #[test]
    fn key_files_round_trip_and_refuse_a_wrong_passphrase() {
        let key = StorageKey::from_bytes([7; 32]);
        let plain = KeyFile::decode(&key.to_plain_file()).unwrap();
        assert!(!plain.is_wrapped());
        assert_eq!(plain.unlock(b"").unwrap(), key);
        let wrapped_bytes = key
            .to_wrapped_file(b"correct horse", [1; 16], [2; 24], FAST)
            .unwrap();
        assert!(!wrapped_bytes.windows(32).any(|w| w == [7; 32]));
        let wrapped = KeyFile::decode(&wrapped_bytes).unwrap();
        assert!(wrapped.is_wrapped());
        assert_eq!(wrapped.unlock(b"correct horse").unwrap(), key);
        assert!(matches!(
            wrapped.unlock(b"wrong horse"),
            Err(AtRestError::WrongPassphrase)
        ));
        assert!(matches!(
            wrapped.unlock(b""),
            Err(AtRestError::EmptyPassphrase)
        ));
        // Altered parameters are caught by the associated data, absurd ones before any work.
        let mut altered = wrapped_bytes.clone();
        altered[12] ^= 1;
        assert!(KeyFile::decode(&altered)
            .unwrap()
            .unlock(b"correct horse")
            .is_err());
        let mut absurd = wrapped_bytes.clone();
        absurd[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            KeyFile::decode(&absurd).unwrap().unlock(b"correct horse"),
            Err(AtRestError::BadParams)
        ));
        assert!(KeyFile::decode(b"CNDRKEY1").is_err());
        assert!(KeyFile::decode(&wrapped_bytes[..50]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(0u8..=255, 0..200)) {
            let key = StorageKey::from_bytes([1; 32]);
            let _ = key.open(b"label", &bytes);
            let _ = KeyFile::decode(&bytes);
            // Only what does not carry the magic: a valid header would run Argon2 for real.
            if !bytes.starts_with(BUNDLE_MAGIC) {
                proptest::prop_assert!(open_bundle(&bytes, b"pass").is_err());
            }
        }
    }

    #[test]
    fn bundles_open_only_with_their_passphrase() {
        let bundle = seal_bundle(b"all my data", b"pass", [3; 16], [4; 24], FAST).unwrap();
        assert_eq!(
            open_bundle(&bundle, b"pass").unwrap().as_slice(),
            b"all my data"
        );
        assert_eq!(
            open_bundle(&bundle, b"nope"),
            Err(AtRestError::WrongPassphrase)
        );
        assert!(matches!(
            open_bundle(&bundle[..20], b"pass"),
            Err(AtRestError::Format(_))
        ));
        assert!(matches!(
            open_bundle(b"not a bundle at all, just some text here....", b"pass"),
            Err(AtRestError::Format(_))
        ));
    }
}
