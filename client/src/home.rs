//! A device's home directory and the key files in it.
//!
//! ```text
//! HOME/               mode 0700
//!   storage.key       0600  the local storage key: in the clear, or wrapped by a passphrase
//!                           with Argon2id (see `candor_shared::at_rest`)
//!   identity.key      0600  device name, Ed25519 seed, X25519 secret   } sealed under the
//!   space.key         0600  space id and space key, once paired         } storage key
//!   journal.key       0600  the personal journal key                    }
//!   store/            sled database (see `store`), its values sealed under the storage key
//!   candor.sock       local socket of a running `sync --watch`
//! ```
//!
//! Key files are written atomically (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old file or the new one, never a torn key. The secret key files are
//! `CNDRSEAL` followed by a value sealed under the storage key (label: the file name); files
//! written by earlier versions (plain postcard) are still read, and sealed on the next
//! [`Home::seal_legacy_files`].

use candor_shared::at_rest::{AtRestError, KdfParams, KeyFile, StorageKey};
use candor_shared::invite::InviteSecret;
use candor_shared::keys::{DeviceSecrets, JournalKey, SpaceKey};
use candor_shared::SpaceId;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Errors reading or writing the home directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file operation failed.
    #[error("could not {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No identity yet.
    #[error("no device identity in {0}: run `candor init --name NAME` first")]
    NoIdentity(PathBuf),
    /// A key file does not decode.
    #[error("key file {0} is damaged")]
    Damaged(PathBuf),
    /// The storage key is wrapped by a passphrase and this process has not unlocked it.
    #[error("this device's data is locked with a passphrase")]
    Locked,
    /// A sealed file or the storage key file does not open.
    #[error("{path}: {source}")]
    Sealed {
        /// The file.
        path: PathBuf,
        /// Why.
        source: AtRestError,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// A key file is readable by others.
    #[error("key file {path} has permissions {mode:o}; it must be 0600 (run `chmod 600 {path}`)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HomeError + 'a {
    move |source| HomeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The identity as stored on disk. Zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct IdentityFile {
    format: u8,
    name: String,
    signing_seed: [u8; 32],
    exchange_secret: [u8; 32],
}

/// The space key as stored on disk. Zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SpaceKeyFile {
    format: u8,
    space: [u8; 16],
    key: [u8; 32],
    /// Kept by the creating device to check the joiner's proof.
    invite_secret: Option<[u8; 32]>,
}

/// The space key file's contents.
pub struct SpaceSecrets {
    /// The space.
    pub space: SpaceId,
    /// The space key.
    pub key: SpaceKey,
    /// The invite secret, on the creating device.
    pub invite_secret: Option<InviteSecret>,
}

/// A device's identity: its name and secret keys.
#[derive(Clone)]
pub struct Identity {
    /// The name chosen at `candor init`.
    pub name: String,
    /// The secret keys.
    pub secrets: DeviceSecrets,
}

/// The journal key as stored on disk. Zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct JournalKeyFile {
    format: u8,
    key: [u8; 32],
}

/// Magic prefix of a key file sealed under the storage key.
const SEALED_MAGIC: &[u8; 8] = b"CNDRSEAL";

/// Names of the secret key files a recovery bundle carries.
pub const KEY_FILES: [&str; 3] = ["identity.key", "space.key", "journal.key"];

/// A key file's name and plaintext (zeroized when dropped).
pub type KeyFilePlain = (String, zeroize::Zeroizing<Vec<u8>>);

/// A device's home directory, and its storage key once unlocked.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    key: Option<Arc<StorageKey>>,
}

fn random<const N: usize>() -> Result<[u8; N], HomeError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| HomeError::Random)?;
    Ok(bytes)
}

impl Home {
    /// The home at `root` (not created yet, or not unlocked yet).
    pub fn new(root: PathBuf) -> Self {
        Self { root, key: None }
    }

    /// This home with its storage key unlocked.
    pub fn with_key(mut self, key: StorageKey) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    fn storage_key_path(&self) -> PathBuf {
        self.root.join("storage.key")
    }

    /// Whether the storage key file exists (homes made before encryption at rest lack it).
    pub fn has_storage_key(&self) -> bool {
        self.storage_key_path().exists()
    }

    /// The storage key file, decoded (still wrapped if a passphrase is set).
    pub fn key_file(&self) -> Result<KeyFile, HomeError> {
        let path = self.storage_key_path();
        let bytes = read_secret_file(&path)?;
        KeyFile::decode(&bytes).map_err(|source| HomeError::Sealed { path, source })
    }

    /// The storage key: the unlocked one, or the key file's if no passphrase is set.
    pub fn storage_key(&self) -> Result<Arc<StorageKey>, HomeError> {
        if let Some(key) = &self.key {
            return Ok(key.clone());
        }
        match self.key_file()? {
            KeyFile::Plain(key) => Ok(Arc::new(key)),
            KeyFile::Wrapped(_) => Err(HomeError::Locked),
        }
    }

    /// Writes the storage key file for `key`: wrapped by `passphrase` (Argon2id) if given, else
    /// in the clear (0600). Replaces any existing file atomically; the data stays sealed under
    /// the same key, so only this file changes.
    pub fn write_storage_key(
        &self,
        key: &StorageKey,
        passphrase: Option<&[u8]>,
    ) -> Result<(), HomeError> {
        let path = self.storage_key_path();
        let bytes = match passphrase {
            None => key.to_plain_file(),
            Some(passphrase) => zeroize::Zeroizing::new(
                key.to_wrapped_file(passphrase, random()?, random()?, KdfParams::DEFAULT)
                    .map_err(|source| HomeError::Sealed {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        write_secret_file(&path, &bytes, true)
    }

    /// Creates a new storage key from the OS RNG and its key file.
    pub fn create_storage_key(&self, passphrase: Option<&[u8]>) -> Result<StorageKey, HomeError> {
        let key = StorageKey::from_bytes(random()?);
        self.write_storage_key(&key, passphrase)?;
        Ok(key)
    }

    fn seal_file(
        &self,
        path: &Path,
        plain: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, HomeError> {
        let key = self.storage_key()?;
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        let mut out = SEALED_MAGIC.to_vec();
        out.extend(key.seal(name, plain, random()?));
        Ok(zeroize::Zeroizing::new(out))
    }

    /// Reads a key file's plaintext, opening it under the storage key if sealed.
    fn read_key_file(&self, path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, HomeError> {
        let bytes = read_secret_file(path)?;
        match bytes.strip_prefix(SEALED_MAGIC.as_slice()) {
            Some(sealed) => {
                let key = self.storage_key()?;
                let name = path
                    .file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default();
                key.open(name, sealed).map_err(|source| HomeError::Sealed {
                    path: path.to_path_buf(),
                    source,
                })
            }
            None => Ok(bytes),
        }
    }

    /// Seals key files written in the clear by versions before encryption at rest.
    pub fn seal_legacy_files(&self) -> Result<(), HomeError> {
        for name in KEY_FILES {
            let path = self.root.join(name);
            if !path.exists() {
                continue;
            }
            let bytes = read_secret_file(&path)?;
            if !bytes.starts_with(SEALED_MAGIC) {
                let sealed = self.seal_file(&path, &bytes)?;
                write_secret_file(&path, &sealed, true)?;
            }
        }
        Ok(())
    }

    /// The plaintext of every secret key file present, for a recovery bundle.
    pub fn export_key_files(&self) -> Result<Vec<KeyFilePlain>, HomeError> {
        let mut out = Vec::new();
        for name in KEY_FILES {
            let path = self.root.join(name);
            if path.exists() {
                out.push((name.to_string(), self.read_key_file(&path)?));
            }
        }
        Ok(out)
    }

    /// Writes a key file from a recovery bundle, sealed under this home's storage key. Only the
    /// names in [`KEY_FILES`] are accepted.
    pub fn import_key_file(&self, name: &str, plain: &[u8]) -> Result<(), HomeError> {
        let Some(name) = KEY_FILES.iter().find(|n| **n == name) else {
            return Err(HomeError::Damaged(self.root.join(name)));
        };
        let path = self.root.join(name);
        let sealed = self.seal_file(&path, plain)?;
        write_secret_file(&path, &sealed, true)
    }

    fn journal_key_path(&self) -> PathBuf {
        self.root.join("journal.key")
    }

    /// The personal journal key, created from the OS RNG on first use (at `candor init`, or on
    /// first journal use for homes made before the journal existed).
    pub fn journal_key(&self) -> Result<JournalKey, HomeError> {
        let path = self.journal_key_path();
        if !path.exists() {
            let file = JournalKeyFile {
                format: 1,
                key: random()?,
            };
            let bytes = zeroize::Zeroizing::new(postcard::to_stdvec(&file).unwrap_or_default());
            let sealed = self.seal_file(&path, &bytes)?;
            // Never replaces: if two processes race, the first key wins and both read it.
            match write_secret_file(&path, &sealed, false) {
                Ok(()) => {}
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        let bytes = self.read_key_file(&path)?;
        let file: JournalKeyFile =
            postcard::from_bytes(&bytes).map_err(|_| HomeError::Damaged(path.clone()))?;
        if file.format != 1 {
            return Err(HomeError::Damaged(path));
        }
        Ok(JournalKey::from_bytes(file.key))
    }

    /// The platform's default home (e.g. `~/.local/share/candor` on Linux).
    pub fn default_root() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "candor").map(|d| d.data_dir().to_path_buf())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled database directory.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The local socket of a running `sync --watch`.
    pub fn socket_path(&self) -> PathBuf {
        self.root.join("candor.sock")
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    fn space_key_path(&self) -> PathBuf {
        self.root.join("space.key")
    }

    /// Creates the directory (mode 0700) if missing.
    pub fn create(&self) -> Result<(), HomeError> {
        fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(io("set permissions of", &self.root))
    }

    /// Whether an identity exists.
    pub fn has_identity(&self) -> bool {
        self.identity_path().exists()
    }

    /// Writes a new identity; fails if one exists.
    pub fn write_identity(&self, identity: &Identity) -> Result<(), HomeError> {
        let (signing_seed, exchange_secret) = identity.secrets.seeds();
        let file = IdentityFile {
            format: 1,
            name: identity.name.clone(),
            signing_seed: *signing_seed,
            exchange_secret: *exchange_secret,
        };
        let bytes = zeroize::Zeroizing::new(postcard::to_stdvec(&file).unwrap_or_default());
        let path = self.identity_path();
        write_secret_file(&path, &self.seal_file(&path, &bytes)?, false)
    }

    /// Reads the identity.
    pub fn identity(&self) -> Result<Identity, HomeError> {
        let path = self.identity_path();
        if !path.exists() {
            return Err(HomeError::NoIdentity(self.root.clone()));
        }
        let bytes = self.read_key_file(&path)?;
        let file: IdentityFile =
            postcard::from_bytes(&bytes).map_err(|_| HomeError::Damaged(path.clone()))?;
        if file.format != 1 {
            return Err(HomeError::Damaged(path));
        }
        Ok(Identity {
            name: file.name.clone(),
            secrets: DeviceSecrets::from_seeds(file.signing_seed, file.exchange_secret),
        })
    }

    /// Writes the space key file (replacing any).
    pub fn write_space_key(
        &self,
        space: &SpaceId,
        key: &SpaceKey,
        invite_secret: Option<&InviteSecret>,
    ) -> Result<(), HomeError> {
        let file = SpaceKeyFile {
            format: 1,
            space: space.0,
            key: *key.as_bytes(),
            invite_secret: invite_secret.map(|s| s.0),
        };
        let bytes = zeroize::Zeroizing::new(postcard::to_stdvec(&file).unwrap_or_default());
        let path = self.space_key_path();
        write_secret_file(&path, &self.seal_file(&path, &bytes)?, true)
    }

    /// Reads the space key, if the device is paired.
    pub fn space_key(&self) -> Result<Option<SpaceSecrets>, HomeError> {
        let path = self.space_key_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = self.read_key_file(&path)?;
        let file: SpaceKeyFile =
            postcard::from_bytes(&bytes).map_err(|_| HomeError::Damaged(path.clone()))?;
        if file.format != 1 {
            return Err(HomeError::Damaged(path));
        }
        Ok(Some(SpaceSecrets {
            space: SpaceId(file.space),
            key: SpaceKey::from_bytes(file.key),
            invite_secret: file.invite_secret.map(InviteSecret),
        }))
    }
}

fn read_secret_file(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, HomeError> {
    let mode = fs::metadata(path)
        .map_err(io("read", path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(HomeError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(zeroize::Zeroizing::new(
        fs::read(path).map_err(io("read", path))?,
    ))
}

/// Writes `bytes` to `path` with mode 0600, atomically and durably.
fn write_secret_file(path: &Path, bytes: &[u8], replace: bool) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    drop(file);
    if replace {
        fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    } else {
        // A hard link fails if the target exists, so two racing writers cannot both succeed.
        let linked = fs::hard_link(&tmp, path).map_err(io("create", path));
        let _ = fs::remove_file(&tmp);
        linked?;
    }
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("h"));
        home.create().unwrap();
        home.create_storage_key(None).unwrap();
        let identity = Identity {
            name: "Sam".into(),
            secrets: DeviceSecrets::from_seeds([1; 32], [2; 32]),
        };
        home.write_identity(&identity).unwrap();
        let back = home.identity().unwrap();
        assert_eq!(back.name, "Sam");
        assert_eq!(back.secrets.device_key(), identity.secrets.device_key());
        let mode = fs::metadata(home.identity_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(home.root()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // A second identity is refused and the first stays.
        let other = Identity {
            name: "Other".into(),
            secrets: DeviceSecrets::from_seeds([3; 32], [4; 32]),
        };
        assert!(home.write_identity(&other).is_err());
        assert_eq!(home.identity().unwrap().name, "Sam");
    }

    #[test]
    fn key_files_are_sealed_and_need_the_unlocked_key_when_a_passphrase_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let locked = Home::new(dir.path().to_path_buf());
        let key = locked.create_storage_key(Some(b"pass")).unwrap();
        let home = locked.clone().with_key(key);
        home.write_identity(&Identity {
            name: "MarkerName".into(),
            secrets: DeviceSecrets::from_seeds([1; 32], [2; 32]),
        })
        .unwrap();
        let raw = fs::read(home.identity_path()).unwrap();
        assert!(raw.starts_with(SEALED_MAGIC));
        assert!(!raw.windows(10).any(|w| w == b"MarkerName"));
        assert!(!raw.windows(32).any(|w| w == [1; 32]));
        assert_eq!(home.identity().unwrap().name, "MarkerName");
        assert!(matches!(locked.identity(), Err(HomeError::Locked)));
        let journal = home.journal_key().unwrap();
        assert_eq!(home.journal_key().unwrap(), journal);
        let files = home.export_key_files().unwrap();
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn readable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        home.create_storage_key(None).unwrap();
        home.write_space_key(&SpaceId([1; 16]), &SpaceKey::from_bytes([2; 32]), None)
            .unwrap();
        fs::set_permissions(home.space_key_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            home.space_key(),
            Err(HomeError::Permissions { .. })
        ));
    }
}
