//! A device's home directory and the key files in it.
//!
//! ```text
//! HOME/               mode 0700
//!   identity.key      0600  device name, Ed25519 seed, X25519 secret
//!   space.key         0600  space id and space key, once paired
//!   store/            sled database (see `store`)
//!   candor.sock       local socket of a running `sync --watch`
//! ```
//!
//! Key files are written atomically (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old file or the new one, never a torn key.

use candor_shared::invite::InviteSecret;
use candor_shared::keys::{DeviceSecrets, SpaceKey};
use candor_shared::SpaceId;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
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

/// A device's home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root` (not created yet).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
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
        write_secret_file(&self.identity_path(), &bytes, false)
    }

    /// Reads the identity.
    pub fn identity(&self) -> Result<Identity, HomeError> {
        let path = self.identity_path();
        if !path.exists() {
            return Err(HomeError::NoIdentity(self.root.clone()));
        }
        let bytes = read_secret_file(&path)?;
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
        write_secret_file(&self.space_key_path(), &bytes, true)
    }

    /// Reads the space key, if the device is paired.
    pub fn space_key(&self) -> Result<Option<SpaceSecrets>, HomeError> {
        let path = self.space_key_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_secret_file(&path)?;
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
    fn readable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        home.write_space_key(&SpaceId([1; 16]), &SpaceKey::from_bytes([2; 32]), None)
            .unwrap();
        fs::set_permissions(home.space_key_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            home.space_key(),
            Err(HomeError::Permissions { .. })
        ));
    }
}
