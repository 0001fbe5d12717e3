//! Files a command writes where the person told it to: never over an existing file unless they
//! said `--force`, always whole (a temporary file in the same directory, fsynced, then moved into
//! place, so a crash leaves the old file or the new one), and readable by the owner only (0600).
//! Also [`restrict_tree`], which keeps the store's directory private.

use anyhow::{bail, Context as _, Result};
use std::path::Path;

/// Refuses early (before any work) if `path` exists and `force` is not set.
pub fn refuse_overwrite(path: &Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{} already exists; choose a new file name, or add --force to replace it",
            path.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600, durably; replaces an existing file only with `force`
/// (and even then atomically). Without `force`, a file created at `path` meanwhile is not
/// replaced either: the final move refuses to clobber.
pub fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    refuse_overwrite(path, force)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    // tempfile creates its files 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    if force {
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
    } else {
        tmp.persist_noclobber(path).with_context(|| {
            format!(
                "writing {} (it must not exist yet; add --force to replace it)",
                path.display()
            )
        })?;
    }
    if let Ok(dir) = std::fs::File::open(dir) {
        // Make the new name durable too; a failure here does not undo the write.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Sets `dir` and every directory under it to 0700 and every file under it to 0600: sled creates
/// the store's files with the process umask. Symbolic links are left alone.
pub fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_kept_unless_forced() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bundle");
        std::fs::write(&path, b"precious")?;
        let err = write_new(&path, b"new", false).unwrap_err();
        assert!(format!("{err:#}").contains("--force"), "{err:#}");
        assert_eq!(std::fs::read(&path)?, b"precious");
        write_new(&path, b"new", true)?;
        assert_eq!(std::fs::read(&path)?, b"new");
        let fresh = dir.path().join("fresh");
        write_new(&fresh, b"x", false)?;
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&fresh)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }
}
