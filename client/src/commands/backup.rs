//! `candor backup export | import`: encrypted recovery bundles.
//!
//! A bundle holds the plaintext of the device's secret key files (identity, space key, journal
//! key) and every tree of its store, encoded with postcard and sealed under a key derived from
//! the bundle passphrase with Argon2id (layout in `candor_shared::at_rest`). Import writes it
//! into a new home under a fresh storage key, so the restored device carries on the same log:
//! its next entry continues the seq, and the relay, which already holds the entries, stores no
//! duplicate.

use super::Ctx;
use crate::home::{Home, KEY_FILES};
use crate::output::Output;
use crate::progress;
use crate::secret;
use crate::store::{Store, TreeDump};
use crate::timefmt;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::at_rest::{self, KdfParams, MAX_BUNDLE};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Format version of the bundle's plaintext.
const BUNDLE_FORMAT: u8 = 1;

/// The sealed contents of a recovery bundle. Zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Bundle {
    format: u8,
    created_ms: u64,
    /// Secret key files by name (plaintext).
    files: Vec<(String, Vec<u8>)>,
    /// Every tree of the store.
    trees: Vec<TreeDump>,
}

/// `candor backup export --out FILE [--force]`. The bundle passphrase was read by the process
/// the person typed the command in (see `Ctx::passphrase`).
pub fn export(ctx: &Ctx, out_path: &Path, force: bool, out: &mut Output) -> Result<()> {
    let pass = ctx.passphrase.clone().ok_or_else(|| {
        anyhow!(
            "a bundle passphrase is needed: set {} or run this on a terminal",
            secret::ENV_BACKUP_PASSPHRASE
        )
    })?;
    let path = ctx.path(out_path);
    crate::files::refuse_overwrite(&path, force)?;
    let spinner = progress::spinner(ctx.interactive, "collecting records");
    let files = ctx
        .home
        .export_key_files()?
        .into_iter()
        .map(|(name, bytes)| (name, bytes.to_vec()))
        .collect();
    let trees = ctx.store.dump()?;
    let entries: usize = trees
        .iter()
        .filter(|t| t.name == "log")
        .map(|t| t.rows.len())
        .sum();
    spinner.set_position(entries as u64);
    let bundle = Bundle {
        format: BUNDLE_FORMAT,
        created_ms: timefmt::now_ms(),
        files,
        trees,
    };
    let plain = Zeroizing::new(
        postcard::to_stdvec(&bundle).map_err(|e| anyhow!("encoding the bundle: {e}"))?,
    );
    spinner.set_message("sealing the bundle (Argon2id)");
    let sealed = at_rest::seal_bundle(
        &plain,
        pass.as_bytes(),
        super::random()?,
        super::random()?,
        KdfParams::DEFAULT,
    )
    .map_err(secret::explain)?;
    crate::files::write_new(&path, &sealed, force)?;
    spinner.finish_and_clear();
    out.line(format!(
        "wrote the recovery bundle {} ({entries} log entries, {} bytes)",
        path.display(),
        sealed.len()
    ));
    out.note(
        "keep it and its passphrase apart; a lost passphrase means the bundle is lost, and \
         anyone with both can act as this device",
    );
    Ok(())
}

fn home_is_empty(home: &Home) -> Result<bool> {
    match std::fs::read_dir(home.root()) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", home.root().display())),
    }
}

/// `candor backup import FILE`: restores a bundle into the new, empty `home`. Runs on its own
/// (no store is open yet). Nothing is created if the passphrase is wrong or the bundle damaged.
pub fn import(home: &Home, file: &Path, protect: bool, interactive: bool) -> Result<Output> {
    restore(
        home,
        file,
        || secret::existing(secret::ENV_BACKUP_PASSPHRASE, "Passphrase of the bundle"),
        || {
            protect
                .then(|| {
                    secret::new(
                        &[secret::ENV_NEW_PASSPHRASE, secret::ENV_PASSPHRASE],
                        "passphrase for this device's data",
                    )
                })
                .transpose()
        },
        interactive,
    )
}

/// [`import`] with the passphrases from the caller (the web app's form): `bundle_pass` opens
/// the bundle, `device_pass` (asked once the bundle opened) protects the restored data.
pub fn restore(
    home: &Home,
    file: &Path,
    bundle_pass: impl FnOnce() -> Result<Zeroizing<String>>,
    device_pass: impl FnOnce() -> Result<Option<Zeroizing<String>>>,
    interactive: bool,
) -> Result<Output> {
    if !home_is_empty(home)? {
        bail!(
            "{} is not empty; restore only into a new home (pass --home DIR with a new directory)",
            home.root().display()
        );
    }
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > MAX_BUNDLE as u64 {
        bail!("{} is larger than any Candor bundle", file.display());
    }
    let sealed = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let pass = bundle_pass()?;
    let spinner = progress::spinner(interactive, "opening the bundle (Argon2id)");
    let plain = at_rest::open_bundle(&sealed, pass.as_bytes()).map_err(secret::explain)?;
    spinner.finish_and_clear();
    let bundle: Bundle = postcard::from_bytes(&plain)
        .map_err(|_| anyhow!("the bundle is damaged (its contents do not decode)"))?;
    if bundle.format != BUNDLE_FORMAT {
        bail!(
            "the bundle has format {}; this version reads format {BUNDLE_FORMAT}",
            bundle.format
        );
    }
    if !bundle.files.iter().any(|(name, _)| name == "identity.key")
        || bundle
            .files
            .iter()
            .any(|(name, _)| !KEY_FILES.contains(&name.as_str()))
    {
        bail!("the bundle is damaged (its key files are missing or unknown)");
    }
    let device_pass = device_pass()?;
    let existed = home.root().exists();
    let result = (|| -> Result<Output> {
        home.create()?;
        let key = home.create_storage_key(device_pass.as_ref().map(|p| p.as_bytes()))?;
        let home = home.clone().with_key(key);
        for (name, bytes) in &bundle.files {
            home.import_key_file(name, bytes)?;
        }
        let identity = home.identity()?;
        let store = Store::open(&home.store_dir(), home.storage_key()?)?;
        let rows: u64 = bundle.trees.iter().map(|t| t.rows.len() as u64).sum();
        let bar = progress::bar(interactive, rows, "restoring");
        store.restore(&bundle.trees, |done| bar.set_position(done))?;
        bar.finish_and_clear();
        let me = identity.secrets.device_key();
        let own = store.head(&me)?.count;
        let mut out = Output::default();
        out.line(format!(
            "restored the device of {} ({}) in {}: {own} entries of your log, written {}",
            identity.name,
            me.short(),
            home.root().display(),
            timefmt::short(bundle.created_ms)
        ));
        out.line(
            "Next: run `candor sync` before writing anything: it also takes back entries the \
             old device wrote after this bundle. Do not keep using the old device.",
        );
        Ok(out)
    })();
    if result.is_err() {
        // The home was empty: leave nothing half-restored behind.
        let _ = std::fs::remove_dir_all(home.root());
        if existed {
            let _ = std::fs::create_dir(home.root());
        }
    }
    result
}
