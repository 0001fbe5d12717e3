//! The only place the web app reads or writes Candor data.
//!
//! Today it runs the CLI's own commands against the store this process holds open (their
//! `--json` output is a documented contract) and turns what they print into the plain values
//! of [`super::views`]; it also owns the open store, the local socket other `candor` commands
//! forward to, and the sync watcher. When the client core's typed API lands, only this module
//! changes. [`records`] holds the everyday records (timeline, ledger, notes, goals, journal);
//! this file the store, unlocking, pairing, settings and the plumbing.

mod records;

pub use records::needs_me_of;

use super::views::{Pairing, Settings, Space, Stage, Verified};
use crate::app::{Paired, Reader};
use crate::cli::Cli;
use crate::commands::{self, Ctx};
use crate::daemon;
use crate::home::Home;
use crate::output::Output;
use crate::store::{Store, StoreError};
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::at_rest::KeyFile;
use clap::Parser as _;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// The open store and what runs beside it.
struct Opened {
    home: Home,
    store: Arc<Store>,
    wake: Arc<Notify>,
    daemon: JoinHandle<()>,
}

/// This device's data, as the pages see it.
pub struct Data {
    home: Home,
    opened: RwLock<Option<Arc<Opened>>>,
    watcher: Mutex<Option<(JoinHandle<()>, Arc<Notify>)>>,
}

/// How many of the latest entries the settings screen offers for a verifiable record.
const RECENT: usize = 15;

/// The kinds of entry the composer offers, with their plain names.
pub const ENTRY_KINDS: &[(&str, &str)] = &[
    ("checkin", "Check-in"),
    ("plan", "Plan"),
    ("disclosure", "Disclosure"),
    ("note", "Note"),
];

impl Data {
    /// The data of `home`; opened at once if no passphrase protects it.
    pub async fn new(home: Home) -> Result<Data> {
        let data = Data {
            home,
            opened: RwLock::new(None),
            watcher: Mutex::new(None),
        };
        if data.home.has_identity() {
            let plain = !data.home.has_storage_key() || !data.home.key_file()?.is_wrapped();
            if plain {
                let home = crate::secret::unlock(&data.home)?;
                data.open(home).await?;
            }
        }
        Ok(data)
    }

    /// What the person has to do next.
    pub fn stage(&self) -> Stage {
        let Some(opened) = self.opened() else {
            return if self.home.has_identity() {
                Stage::Locked
            } else {
                Stage::Welcome
            };
        };
        match opened.store.space_config() {
            Ok(Some(_)) => Stage::Paired,
            _ => Stage::Unpaired,
        }
    }

    /// A number that changes whenever either log or the journal grows.
    pub fn version(&self) -> u64 {
        let Some(opened) = self.opened() else {
            return 0;
        };
        let Ok(Some(config)) = opened.store.space_config() else {
            return opened.store.journal_records().map_or(0, |j| j.len() as u64);
        };
        let me = self
            .home
            .identity()
            .map(|i| i.secrets.device_key())
            .ok()
            .and_then(|me| opened.store.head(&me).ok())
            .map_or(0, |h| h.count);
        let partner = config
            .partner
            .and_then(|p| opened.store.head(&p.device).ok())
            .map_or(0, |h| h.count);
        let joined = u64::from(config.partner.is_some());
        let journal = opened.store.journal_records().map_or(0, |j| j.len() as u64);
        me.wrapping_mul(1_000_003)
            .wrapping_add(partner.wrapping_mul(7_919))
            .wrapping_add(journal.wrapping_mul(31))
            .wrapping_add(joined)
    }

    /// Closes everything: the watcher, the local socket, the store (flushed).
    pub async fn stop(&self) {
        self.stop_watcher().await;
        let opened = self
            .opened
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(opened) = opened {
            opened.daemon.abort();
            let _ = std::fs::remove_file(opened.home.socket_path());
            let _ = opened.store.flush();
        }
    }

    // ---- first run, unlocking, pairing ------------------------------------------------------

    /// Creates this device's identity (first run).
    pub async fn create_identity(&self, name: &str, passphrase: Option<&str>) -> Result<()> {
        if let Some(pass) = passphrase {
            check_new_passphrase(pass)?;
        }
        let (home, _) = commands::device::create(&self.home, name, passphrase.map(str::as_bytes))?;
        self.open(home).await
    }

    /// Restores a recovery bundle into this (new, empty) home (`candor backup import`), then
    /// opens it: protected by `device_pass` if one is given.
    pub async fn restore_bundle(
        &self,
        path: &str,
        bundle_pass: Zeroizing<String>,
        device_pass: Option<Zeroizing<String>>,
    ) -> Result<String> {
        let path = std::path::PathBuf::from(path.trim());
        if !path.is_absolute() {
            bail!("give the full path of the bundle file, e.g. /home/you/candor-recovery.bundle");
        }
        if let Some(pass) = &device_pass {
            check_new_passphrase(pass)?;
        }
        let home = self.home.clone();
        let device = device_pass.clone();
        tokio::task::spawn_blocking(move || {
            commands::backup::restore(&home, &path, || Ok(bundle_pass), || Ok(device), false)
        })
        .await
        .context("the restore stopped")??;
        match device_pass {
            Some(pass) => self.unlock(&pass).await?,
            None => self.open(crate::secret::unlock(&self.home)?).await?,
        }
        Ok(
            "Restored. Your partner's new entries arrive as soon as the relay is reached; do not \
            keep using the old device."
                .into(),
        )
    }

    /// Unlocks the data with the passphrase typed in the page.
    pub async fn unlock(&self, passphrase: &str) -> Result<()> {
        if self.opened().is_some() {
            return Ok(());
        }
        let file = self.home.key_file()?;
        let key = file
            .unlock(passphrase.as_bytes())
            .map_err(crate::secret::explain)?;
        self.open(self.home.clone().with_key(key)).await
    }

    /// Where pairing stands.
    pub async fn pairing(&self) -> Result<Pairing> {
        let opened = self.require()?;
        let Some(config) = opened.store.space_config()? else {
            return Ok(Pairing::None);
        };
        if config.partner.is_none() {
            let invite = self.line(&["space", "invite"]).await?;
            return Ok(Pairing::WaitingForPartner { invite });
        }
        Ok(Pairing::Paired {
            partner_name: self.read(|r| r.partner_name()).await?,
        })
    }

    /// Creates the space on the relay (first partner).
    pub async fn create_space(&self, relay: &str, fingerprint: &str) -> Result<()> {
        let ctx = self.ctx(None)?;
        let mut out = Output::default();
        commands::create_space(&ctx, relay.trim(), fingerprint.trim(), &mut out).await?;
        self.start_watcher().await
    }

    /// Joins the partner's space with their invite (second partner).
    pub async fn join_space(&self, invite: &str) -> Result<()> {
        let invite: String = invite.split_whitespace().collect();
        let ctx = self.ctx(None)?;
        let mut out = Output::default();
        commands::join_space(&ctx, &invite, &mut out).await?;
        self.start_watcher().await
    }

    /// The number both partners compare in person, once the partner has joined.
    pub async fn safety_number(&self) -> Result<Option<String>> {
        match self.require()?.store.space_config()? {
            Some(config) if config.partner.is_some() => {
                Ok(Some(self.line(&["space", "safety-number"]).await?))
            }
            _ => Ok(None),
        }
    }

    // ---- safety and settings ----------------------------------------------------------------

    /// What the settings screen shows.
    pub async fn settings(&self) -> Result<Settings> {
        let opened = self.require()?;
        let identity = opened.home.identity()?;
        let config = opened.store.space_config()?;
        let recent = match &config {
            Some(c) if c.partner.is_some() => {
                let mut recent = self.timeline(RECENT).await?;
                recent.reverse();
                recent
            }
            _ => Vec::new(),
        };
        let (space, fingerprint) = match &config {
            Some(_) => (
                Some(self.json::<Space>(&["space", "show", "--json"]).await?),
                Some(self.line(&["space", "fingerprint"]).await?),
            ),
            None => (None, None),
        };
        Ok(Settings {
            name: identity.name,
            passphrase_set: opened.home.key_file()?.is_wrapped(),
            space,
            safety_number: self.safety_number().await?,
            fingerprint,
            journal_backup: opened.store.journal_backup()?,
            left: opened.store.left_at()?.is_some(),
            recent,
        })
    }

    /// Re-checks every stored entry of both logs.
    pub async fn verify(&self) -> Result<Verified> {
        let out = self.run(&["verify"], None).await?;
        let lines = out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .map(|l| l.trim_start_matches("error: ").to_string())
            .filter(|l| !l.trim().is_empty())
            .collect();
        Ok(Verified {
            ok: out.code == 0,
            lines,
        })
    }

    /// Sets, changes or removes the passphrase (`new` empty removes it). The current one is
    /// checked first when one is set.
    pub async fn set_passphrase(&self, current: &str, new: Option<&str>) -> Result<String> {
        let opened = self.require()?;
        if let KeyFile::Wrapped(_) = opened.home.key_file()? {
            opened
                .home
                .key_file()?
                .unlock(current.as_bytes())
                .map_err(crate::secret::explain)?;
        }
        let key = opened.home.storage_key()?;
        match new {
            Some(new) => {
                check_new_passphrase(new)?;
                opened.home.write_storage_key(&key, Some(new.as_bytes()))?;
                Ok("Passphrase saved: this device's data now opens only with it.".into())
            }
            None => {
                opened.home.write_storage_key(&key, None)?;
                Ok("Passphrase removed.".into())
            }
        }
    }

    /// Writes a recovery bundle (sealed with `passphrase`) to `path`.
    pub async fn export_bundle(&self, path: &str, passphrase: &str) -> Result<String> {
        check_new_passphrase(passphrase)?;
        let path = std::path::PathBuf::from(path.trim());
        if !path.is_absolute() {
            bail!("give the full path of the file to write, e.g. /home/you/candor-recovery.bundle");
        }
        let mut ctx = self.ctx(None)?;
        ctx.passphrase = Some(Zeroizing::new(passphrase.to_string()));
        let out = tokio::task::spawn_blocking(move || {
            let mut out = Output::default();
            commands::backup::export(&ctx, &path, false, &mut out).map(|()| out)
        })
        .await
        .context("the export stopped")??;
        Ok(first_line(&out.stdout))
    }

    /// Writes a verifiable record of the entries `ids` to `path` (`candor export
    /// --verifiable`): their words, provably unchanged and countersigned by the partner's
    /// device. The first try may ask the partner's device to countersign and write nothing yet.
    pub async fn export_verifiable(&self, ids: &[String], path: &str) -> Result<String> {
        if ids.is_empty() {
            bail!("tick at least one entry to put in the record");
        }
        let path = path.trim();
        if !std::path::Path::new(path).is_absolute() {
            bail!(
                "give the full path of the file to write, e.g. /home/you/for-our-counsellor.json"
            );
        }
        let select = ids.join(",");
        let out = self
            .run(
                &["export", "--verifiable", "--select", &select, "--out", path],
                None,
            )
            .await?;
        match out.code {
            0 => Ok(format!(
                "Saved the record of {} to {path}. Anyone can check it with candor verify-export.",
                match ids.len() {
                    1 => "one entry".to_string(),
                    n => format!("{n} entries"),
                }
            )),
            3 => Ok(
                "Your partner's device was asked to countersign these entries. Keep this \
                     window open until it has synced (a few seconds while both are online), \
                     then save again."
                    .into(),
            ),
            _ => Err(anyhow!(plain_error(&out.stderr))),
        }
    }

    /// Leaves the space; this device keeps its copy.
    pub async fn leave(&self) -> Result<()> {
        self.act(&["space", "leave"]).await?;
        self.stop_watcher().await;
        Ok(())
    }

    // ---- plumbing ---------------------------------------------------------------------------

    fn opened(&self) -> Option<Arc<Opened>> {
        self.opened
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn require(&self) -> Result<Arc<Opened>> {
        self.opened()
            .ok_or_else(|| anyhow!("this device's data is still locked"))
    }

    async fn open(&self, home: Home) -> Result<()> {
        let listener = daemon::bind(&home).context(
            "another candor (`sync --watch` or `candor ui`) is using this device's data; stop it first",
        )?;
        let store = match Store::open(&home.store_dir(), home.storage_key()?) {
            Ok(store) => Arc::new(store),
            Err(StoreError::Locked) => {
                let _ = std::fs::remove_file(home.socket_path());
                bail!("another candor process holds this device's data; stop it and try again")
            }
            Err(e) => {
                let _ = std::fs::remove_file(home.socket_path());
                return Err(e).context("opening the local store");
            }
        };
        let wake = Arc::new(Notify::new());
        let daemon = tokio::spawn(daemon::serve(
            listener,
            home.clone(),
            store.clone(),
            wake.clone(),
        ));
        *self.opened.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Opened {
            home,
            store,
            wake,
            daemon,
        }));
        self.start_watcher().await
    }

    /// Starts the sync watcher if this device is in a space it has not left.
    async fn start_watcher(&self) -> Result<()> {
        let opened = self.require()?;
        if opened.store.space_config()?.is_none() || opened.store.left_at()?.is_some() {
            return Ok(());
        }
        Paired::load(&opened.home, &opened.store)?;
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.is_some() {
            return Ok(());
        }
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move { stopped.notified().await };
            if let Err(e) =
                crate::syncer::watch(&opened.home, &opened.store, &opened.wake, shutdown).await
            {
                eprintln!("candor: sync stopped: {e:#}");
            }
        });
        *watcher = Some((task, stop));
        Ok(())
    }

    async fn stop_watcher(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((task, stop)) = watcher {
            stop.notify_one();
            let _ = task.await;
        }
    }

    fn ctx(&self, stdin: Option<String>) -> Result<Ctx> {
        let opened = self.require()?;
        Ok(Ctx {
            home: opened.home.clone(),
            store: opened.store.clone(),
            cwd: opened.home.root().to_path_buf(),
            stdin,
            watch: Some(opened.wake.clone()),
            passphrase: None,
            interactive: false,
        })
    }

    /// Runs one command against the open store, off the async workers (it waits on the disk).
    async fn run(&self, args: &[&str], stdin: Option<String>) -> Result<Output> {
        let argv = std::iter::once("candor").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow!("internal command: {e}"))?;
        let ctx = self.ctx(stdin)?;
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(commands::execute(&ctx, cli.command)))
            .await
            .context("the command stopped")
    }

    /// Runs `read` over this device's [`Reader`] (the application core's views), off the async
    /// workers (it waits on the disk).
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let opened = self.require()?;
        tokio::task::spawn_blocking(move || {
            let paired = Paired::load(&opened.home, &opened.store)?;
            let reader = Reader::open(&opened.store, &paired, |_, _| {})?;
            read(&reader)
        })
        .await
        .context("reading stopped")?
    }

    async fn act_with(&self, args: &[&str], stdin: Option<String>) -> Result<String> {
        let out = self.run(args, stdin).await?;
        if out.code != 0 {
            return Err(anyhow!(plain_error(&out.stderr)));
        }
        Ok(first_line(&out.stdout))
    }

    async fn act(&self, args: &[&str]) -> Result<String> {
        self.act_with(args, None).await
    }

    async fn line(&self, args: &[&str]) -> Result<String> {
        let out = self.act(args).await?;
        Ok(out.trim().to_string())
    }

    async fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let out = self.run(args, None).await?;
        if out.code != 0 {
            return Err(anyhow!(plain_error(&out.stderr)));
        }
        serde_json::from_str(&out.stdout).context("reading the command's answer")
    }
}

fn nonempty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// A command's error, without the terminal's `error: ` prefix.
fn plain_error(stderr: &str) -> String {
    let text = stderr.trim().trim_start_matches("error: ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Something went wrong; nothing was changed.".into(),
    }
}

/// A new passphrase must be long enough to resist guessing by someone who takes the disk.
pub fn check_new_passphrase(pass: &str) -> Result<()> {
    if pass.chars().count() < 8 {
        bail!("choose a passphrase of at least 8 characters (a few unrelated words are best)");
    }
    Ok(())
}

/// A plain-words hint of how hard a passphrase is to guess.
pub fn strength_hint(pass: &str) -> &'static str {
    let length = pass.chars().count();
    let words = pass.split_whitespace().count();
    let kinds = [
        pass.chars().any(|c| c.is_lowercase()),
        pass.chars().any(|c| c.is_uppercase()),
        pass.chars().any(|c| c.is_ascii_digit()),
        pass.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    match (length, words, kinds) {
        (0..=7, _, _) => "too short",
        (_, 4.., _) | (20.., _, _) => "strong",
        (12.., _, 2..) | (_, 3, _) => "fair",
        _ => "weak: add a few more words",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_hints_grow_with_length_and_words() {
        assert_eq!(strength_hint("abc"), "too short");
        assert_eq!(strength_hint("password"), "weak: add a few more words");
        assert_eq!(strength_hint("Summer2026-ok"), "fair");
        assert_eq!(strength_hint("purple kettle under rain"), "strong");
    }

    #[test]
    fn command_errors_read_as_sentences() {
        assert_eq!(
            plain_error("error: the text is empty\n"),
            "The text is empty"
        );
        assert_eq!(
            plain_error(""),
            "Something went wrong; nothing was changed."
        );
    }
}
