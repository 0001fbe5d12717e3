//! The person's editor (`$VISUAL`, else `$EDITOR`) on a plaintext temporary file, for
//! `note edit` and `journal edit`.
//!
//! The file is the one place plaintext touches the disk outside a sealed value, so it is kept
//! short-lived and private:
//!
//! * it is created 0600 in a directory of its own (0700) in the home (0700), named
//!   `.edit-<pid>-<random>/` after the process that owns it — so whatever the editor writes
//!   beside it (swap and backup files) goes with it — and the directory is removed when the
//!   editor returns;
//! * if `candor` is told to stop meanwhile (SIGTERM, SIGHUP) it stops the editor (which runs as
//!   `exec`, so it is the very process `candor` started), removes the directory and exits;
//!   SIGINT (Ctrl-C on the terminal) reaches the editor too, which decides — as git does,
//!   `candor` waits for it and then removes the directory;
//! * a directory left behind by a process that no longer exists (kill -9, power loss) is removed
//!   by the next `candor` command on that home ([`sweep`]);
//! * the editor's environment has no `CANDOR_*` variable, so it never sees the passphrase.

use anyhow::{anyhow, bail, Context as _, Result};
use std::path::Path;
use tokio::signal::unix::{signal, SignalKind};

/// Prefix of the temporary directories.
pub const TEMP_PREFIX: &str = ".edit-";

/// Removes temporary edit directories (and the plain files of older versions) in `root` whose
/// owning process is gone. Best effort: what cannot be removed stays for the next try.
pub fn sweep(root: &Path) {
    let Ok(dir) = std::fs::read_dir(root) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        // Files of older versions carry no pid: nobody can still be editing one safely after
        // an upgrade, so they go too.
        let owner = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if owner.is_none_or(|pid| !alive(pid)) {
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    }
}

/// Whether a process with this id exists (Linux: `/proc/PID`); elsewhere, assume it does.
fn alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// The editor command the person chose.
fn editor(instead: &str) -> Result<String> {
    ["VISUAL", "EDITOR"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .ok_or_else(|| {
            anyhow!("set $VISUAL or $EDITOR to your editor (e.g. EDITOR=nano), or use `{instead}`")
        })
}

/// Opens the editor on `before` in a temporary file in `root`; returns the edited text, or
/// `None` if it did not change. `instead` names the command to use without an editor.
pub async fn edit(root: &Path, before: &str, instead: &str) -> Result<Option<String>> {
    let editor = editor(instead)?;
    // tempfile creates the directory 0700 and removes it (with anything in it) when dropped.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempdir_in(root)
        .context("creating the temporary directory")?;
    let file = dir.path().join("text.md");
    write_private(&file, before).context("writing the temporary file")?;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("exec {editor} \"$1\""))
        .arg("sh")
        .arg(&file)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CANDOR_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    let mut term = signal(SignalKind::terminate()).context("watching for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("watching for SIGHUP")?;
    // Registering a handler keeps Ctrl-C from killing this process while the editor runs.
    let mut interrupt = signal(SignalKind::interrupt()).context("watching for SIGINT")?;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the editor")?,
            _ = interrupt.recv() => continue,
            _ = term.recv() => return stopped(child, dir, "SIGTERM").await,
            _ = hangup.recv() => return stopped(child, dir, "SIGHUP").await,
        }
    };
    if !status.success() {
        bail!("the editor exited with {status}; nothing was recorded");
    }
    let after = std::fs::read_to_string(&file).context("reading the edited text")?;
    drop(dir);
    Ok((after != before).then_some(after))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())
}

/// Stops the editor and removes the temporary directory after a signal; never returns normally.
async fn stopped(
    mut child: tokio::process::Child,
    dir: tempfile::TempDir,
    signal: &str,
) -> Result<Option<String>> {
    let _ = child.kill().await;
    drop(dir);
    bail!("stopped by {signal} while the editor was open; nothing was recorded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_files_of_dead_processes_only() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mine = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}-abc", std::process::id()));
        // Pid 0x7fff_fff0 is above Linux's pid_max: no such process.
        let dead = dir.path().join(format!("{TEMP_PREFIX}2147483632-abc"));
        for path in [&mine, &dead] {
            std::fs::create_dir(path)?;
            std::fs::write(path.join("text.md"), b"x")?;
            std::fs::write(path.join(".text.md.swp"), b"x")?;
        }
        let legacy = dir.path().join(format!("{TEMP_PREFIX}abcdef.md"));
        let other = dir.path().join("identity.key");
        for path in [&legacy, &other] {
            std::fs::write(path, b"x")?;
        }
        sweep(dir.path());
        assert!(mine.exists());
        assert!(!dead.exists());
        assert!(!legacy.exists());
        assert!(other.exists());
        Ok(())
    }
}
