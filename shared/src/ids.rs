//! Fixed-size identifiers: spaces, devices and entries, with hex text forms.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Error parsing an identifier from its hex text form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected {expected} hex characters, got {got:?}")]
pub struct ParseIdError {
    expected: usize,
    got: String,
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the identifier in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly `2 * LEN` hex characters.
            pub fn from_hex(text: &str) -> Result<Self, ParseIdError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(text.trim(), &mut out).map_err(|_| ParseIdError {
                    expected: 2 * $len,
                    got: text.chars().take(80).collect(),
                })?;
                Ok(Self(out))
            }

            /// The first eight hex characters, for compact display.
            pub fn short(&self) -> String {
                let mut hex = self.to_hex();
                hex.truncate(8);
                hex
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

byte_id!(
    /// A couple's space: 16 random bytes chosen by the creating device.
    SpaceId,
    16
);
byte_id!(
    /// A device's Ed25519 verifying key; it names the device and its log.
    DeviceKey,
    32
);
byte_id!(
    /// BLAKE3 hash of an entry's header and signature; the entry's id.
    EntryHash,
    32
);

impl EntryHash {
    /// The all-zero hash, used as "previous hash" of an author's first entry.
    pub const ZERO: EntryHash = EntryHash([0; 32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = SpaceId([0xab; 16]);
        assert_eq!(SpaceId::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(id.short(), "abababab");
        assert!(SpaceId::from_hex("abc").is_err());
        assert!(DeviceKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
