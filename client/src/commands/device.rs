//! Creating this device's identity: shared by `candor init` and the first-run page of
//! `candor ui`.

use super::random;
use crate::home::{Home, Identity};
use crate::store::Store;
use anyhow::{bail, Result};
use candor_shared::keys::DeviceSecrets;

/// Creates the home, its storage key (wrapped by `passphrase` if given), the device identity
/// named `name`, the journal key and an empty store. Returns the unlocked home and the identity.
/// Refuses, changing nothing, if the home already holds an identity.
pub fn create(home: &Home, name: &str, passphrase: Option<&[u8]>) -> Result<(Home, Identity)> {
    check(home, name)?;
    home.create()?;
    let key = home.create_storage_key(passphrase)?;
    let home = home.clone().with_key(key);
    let identity = Identity {
        name: name.trim().to_string(),
        secrets: DeviceSecrets::from_seeds(random()?, random()?),
    };
    home.write_identity(&identity)?;
    home.journal_key()?;
    drop(Store::open(&home.store_dir(), home.storage_key()?)?);
    Ok((home, identity))
}

/// Refuses a name that is empty or longer than 64 characters, and a home that already holds
/// an identity.
pub fn check(home: &Home, name: &str) -> Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        bail!("the name must be 1 to 64 characters");
    }
    if home.has_identity() {
        let existing = home.identity()?;
        bail!(
            "{} already holds the identity of {:?} (device {}); nothing changed",
            home.root().display(),
            existing.name,
            existing.secrets.device_key().short()
        );
    }
    Ok(())
}
