//! The relay's data directory: where it lives, what is in it, and how files in it are written.
//!
//! ```text
//! DATA/            mode 0700 (forced at every start, even for a directory that existed)
//!   db/            the sled database (spaces, logs, heads, conflict evidence): directories
//!                  0700 and files 0600, forced at every start
//!   cert.der       the relay's self-signed TLS certificate (DER); devices pin its SHA-256
//!   key.der        the certificate's private key (PKCS#8 DER), mode 0600
//! ```
//!
//! Files are replaced atomically (write a temporary file, fsync it, rename it over the target,
//! fsync the directory), so a crash never leaves a half-written key or certificate behind.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The relay's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Uses `root` as the data directory, creating it (and missing parents) with mode 0700 if it
    /// does not exist yet; an existing directory is set to 0700.
    pub fn create(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&root)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled database directory.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The TLS certificate (DER).
    pub fn cert_path(&self) -> PathBuf {
        self.root.join("cert.der")
    }

    /// The TLS private key (PKCS#8 DER).
    pub fn key_path(&self) -> PathBuf {
        self.root.join("key.der")
    }
}

/// Whether a file written by [`write_atomic`] may be read by others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    /// Owner read/write only (0600): secrets.
    Private,
    /// Readable by everyone (0644): public material such as the certificate.
    Public,
}

/// Replaces `path` with `contents` atomically and durably: temporary file in the same directory,
/// fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: FileMode) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match mode {
            FileMode::Private => 0o600,
            FileMode::Public => 0o644,
        });
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        // A stale temporary file from a crash keeps its old mode on open: set it explicitly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let bits = match mode {
                FileMode::Private => 0o600,
                FileMode::Public => 0o644,
            };
            file.set_permissions(fs::Permissions::from_mode(bits))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Sets `dir` and every directory under it to 0700 and every file under it to 0600 (for the
/// database, whose files sled creates with the process umask). Symbolic links are left alone.
pub fn restrict_tree(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                restrict_tree(&entry.path())?;
            } else if kind.is_file() {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_directory_and_writes_files_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::create(tmp.path().join("a/b")).unwrap();
        assert!(data.root().is_dir());
        let key = data.key_path();
        write_atomic(&key, b"one", FileMode::Private).unwrap();
        write_atomic(&key, b"two", FileMode::Private).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"two");
        assert!(!data.root().join("key.der.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(data.root()), 0o700);
            assert_eq!(mode(&key), 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_open_directory_and_its_database_are_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        fs::create_dir_all(root.join("db/blobs")).unwrap();
        fs::write(root.join("db/conf"), b"x").unwrap();
        for (path, bits) in [(&root, 0o755), (&root.join("db"), 0o755)] {
            fs::set_permissions(path, fs::Permissions::from_mode(bits)).unwrap();
        }
        fs::set_permissions(root.join("db/conf"), fs::Permissions::from_mode(0o644)).unwrap();
        let data = DataDir::create(&root).unwrap();
        restrict_tree(&data.db_path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("db")), 0o700);
        assert_eq!(mode(&root.join("db/blobs")), 0o700);
        assert_eq!(mode(&root.join("db/conf")), 0o600);
    }
}
