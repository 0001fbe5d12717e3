//! Passphrases: read from the environment (for scripts) or typed without echo on a terminal,
//! kept zeroized, and used to unlock a home's storage key.

use crate::home::Home;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::at_rest::{AtRestError, KeyFile};
use std::io::IsTerminal as _;
use zeroize::Zeroizing;

/// The current passphrase of this device's data.
pub const ENV_PASSPHRASE: &str = "CANDOR_PASSPHRASE";
/// A new passphrase (`passphrase change`, or `set` / `init --passphrase` when it is the first).
pub const ENV_NEW_PASSPHRASE: &str = "CANDOR_NEW_PASSPHRASE";
/// The passphrase of a recovery bundle.
pub const ENV_BACKUP_PASSPHRASE: &str = "CANDOR_BACKUP_PASSPHRASE";

fn from_env(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name).ok().map(Zeroizing::new)
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        rpassword::prompt_password(text).context("reading the passphrase from the terminal")?,
    ))
}

/// An existing passphrase: from the environment variable `env`, else typed on a terminal.
pub fn existing(env: &str, what: &str) -> Result<Zeroizing<String>> {
    if let Some(pass) = from_env(env) {
        return Ok(pass);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what} is needed: set {env} or run this on a terminal");
    }
    prompt(&format!("{what}: "))
}

/// A new passphrase: from the first set environment variable of `envs`, else typed twice on a
/// terminal. Never empty.
pub fn new(envs: &[&str], what: &str) -> Result<Zeroizing<String>> {
    let pass = match envs.iter().find_map(|e| from_env(e)) {
        Some(pass) => pass,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "a new {what} is needed: set {} or run this on a terminal",
                    envs.first().copied().unwrap_or(ENV_NEW_PASSPHRASE)
                );
            }
            eprintln!(
                "Choose a {what}. If you lose it, what it protects is lost: nobody can recover it."
            );
            let first = prompt(&format!("New {what}: "))?;
            let second = prompt(&format!("New {what} again: "))?;
            if *first != *second {
                bail!("the two passphrases differ; nothing changed");
            }
            first
        }
    };
    if pass.is_empty() {
        bail!("the {what} is empty; nothing changed");
    }
    Ok(pass)
}

/// Turns a wrong passphrase into a clear error.
pub fn explain(e: AtRestError) -> anyhow::Error {
    match e {
        AtRestError::WrongPassphrase => {
            anyhow!("wrong passphrase; nothing was read or changed")
        }
        other => anyhow!(other),
    }
}

/// Unlocks the home's storage key, asking for the passphrase if one is set. A home made before
/// encryption at rest gets a storage key (no passphrase) and its key files sealed.
pub fn unlock(home: &Home) -> Result<Home> {
    if !home.has_storage_key() {
        let key = home.create_storage_key(None)?;
        let home = home.clone().with_key(key);
        home.seal_legacy_files()?;
        return Ok(home);
    }
    match home.key_file()? {
        KeyFile::Plain(key) => Ok(home.clone().with_key(key)),
        file @ KeyFile::Wrapped(_) => {
            let pass = existing(ENV_PASSPHRASE, "Passphrase of this device's data")?;
            let key = file.unlock(pass.as_bytes()).map_err(explain)?;
            Ok(home.clone().with_key(key))
        }
    }
}
