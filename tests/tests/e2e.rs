//! End-to-end tests: real `candor-relay` and `candor` processes over QUIC on 127.0.0.1.

use anyhow::{Context as _, Result};
use candor_tests::{Device, Relay};
use std::path::Path;

fn pair(root: &Path, relay: &Relay) -> Result<(Device, Device)> {
    let alex = Device::init(root, "Alex")?;
    let sam = Device::init(root, "Sam")?;
    let invite = alex.create_space(relay)?;
    sam.ok(&["space", "join", &invite])?;
    Ok((alex, sam))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn pairing_and_entries_both_ways() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    // Safety numbers agree once both devices know each other.
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let a = alex.ok(&["space", "safety-number"])?;
    let s = sam.ok(&["space", "safety-number"])?;
    assert_eq!(a, s);
    assert_eq!(a.trim().split(' ').count(), 12);

    alex.ok(&[
        "log",
        "add",
        "--kind",
        "checkin",
        "Running late, home by 19:30",
    ])?;
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 1, pulled 0");
    sam.ok(&[
        "log",
        "add",
        "--kind",
        "plan",
        "Dinner with my sister on Friday",
    ])?;
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 1, pulled 1");
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 0, pulled 1");

    for (device, me, partner) in [(&alex, "Alex", "Sam"), (&sam, "Sam", "Alex")] {
        let entries = device.entries()?;
        assert_eq!(entries.len(), 2, "{entries:?}");
        let checkin = &entries[0];
        assert_eq!(checkin["kind"], "checkin");
        assert_eq!(checkin["text"], "Running late, home by 19:30");
        assert_eq!(checkin["seq"], 1);
        assert_eq!(checkin["author_name"], "Alex");
        assert_eq!(
            checkin["author"],
            if me == "Alex" { "me" } else { "partner" }
        );
        assert!(checkin["replaces"].is_null());
        assert!(checkin["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
        assert_eq!(checkin["id"].as_str().map(str::len), Some(64));
        assert_eq!(entries[1]["author_name"], "Sam");
        assert_eq!(
            entries[1]["author"],
            if partner == "Sam" { "partner" } else { "me" }
        );
        let verified = device.ok(&["verify"])?;
        assert!(verified.contains("intact"), "{verified}");
    }

    // A correction is a new entry naming the one it replaces; the original stays.
    let id = alex.entries()?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    alex.ok(&["log", "correct", &id[..10], "Running late, home by 20:00"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let entries = sam.entries()?;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["replaces"].as_str(), Some(id.as_str()));
    assert_eq!(entries[0]["text"], "Running late, home by 19:30");
    // After syncing, both devices hold the same history and print the same heads fingerprint.
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let fingerprint = alex.ok(&["space", "fingerprint"])?;
    assert_eq!(fingerprint, sam.ok(&["space", "fingerprint"])?);
    sam.ok(&["log", "add", "not synced yet"])?;
    assert_ne!(fingerprint, sam.ok(&["space", "fingerprint"])?);
    // Only one's own entries can be corrected.
    let partner_id = entries[1]["id"].as_str().unwrap_or_default().to_string();
    assert!(alex
        .fails(&["log", "correct", &partner_id, "nope"])?
        .contains("only correct your own"));
    Ok(())
}

#[test]
fn offline_writes_survive_an_unreachable_relay_and_go_out_later() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let addr = relay.kill();

    alex.ok(&["log", "add", "written offline"])?;
    let err = alex.fails(&["sync"])?;
    assert!(err.contains("could not reach the relay"), "{err}");
    assert!(err.contains("nothing was lost"), "{err}");
    assert_eq!(alex.texts()?, vec!["written offline"]);

    // A sync waiting on the unreachable relay holds the store; other commands still work.
    let mut waiting = alex
        .command(&["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    alex.ok(&["log", "add", "written while a sync waits"])?;
    waiting.kill()?;
    waiting.wait()?;
    assert_eq!(
        alex.texts()?,
        vec!["written offline", "written while a sync waits"]
    );

    let _relay = Relay::start_on(&data, &addr)?;
    // The offline entries go out (counts leave out introductions and checkpoints).
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 2, pulled 0");
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 0, pulled 2");
    assert_eq!(
        sam.texts()?,
        vec!["written offline", "written while a sync waits"]
    );
    Ok(())
}

#[test]
fn an_invite_works_once_and_bad_invites_get_clear_errors() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let alex = Device::init(tmp.path(), "Alex")?;
    let sam = Device::init(tmp.path(), "Sam")?;
    let mallory = Device::init(tmp.path(), "Mallory")?;
    let invite = alex.create_space(&relay)?;
    assert!(
        invite.starts_with("candor-invite:"),
        "the invite must be the last line: {invite}"
    );
    sam.ok(&["space", "join", &invite])?;

    let err = mallory.fails(&["space", "join", &invite])?;
    assert!(err.contains("already been used"), "{err}");
    // Nothing changed on the refused device...
    assert!(mallory.fails(&["log", "list"])?.contains("not in a space"));
    // ...or for the partners: the space still works and still has exactly these two members.
    sam.ok(&["log", "add", "still here"])?;
    sam.ok(&["sync"])?;
    alex.ok(&["sync"])?;
    assert_eq!(alex.texts()?, vec!["still here"]);
    assert_eq!(
        alex.ok(&["space", "safety-number"])?,
        sam.ok(&["space", "safety-number"])?
    );

    let mut damaged = invite.clone();
    damaged.truncate(invite.len() - 5);
    let err = mallory.fails(&["space", "join", &damaged])?;
    assert!(err.contains("invite is damaged"), "{err}");
    assert!(mallory
        .fails(&["space", "join", "hello"])?
        .contains("not a Candor invite"));
    Ok(())
}

#[test]
fn a_device_of_another_space_is_refused_and_has_another_safety_number() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    alex.ok(&["sync"])?;
    let other_root = tmp.path().join("others");
    let (chris, dana) = pair(&other_root, &relay)?;
    chris.ok(&["sync"])?;
    assert_ne!(
        alex.ok(&["space", "safety-number"])?,
        chris.ok(&["space", "safety-number"])?
    );
    assert_eq!(
        chris.ok(&["space", "safety-number"])?,
        dana.ok(&["space", "safety-number"])?
    );

    // Chris's device, authenticated at the relay, asks for Alex and Sam's space directly.
    let space = alex.ok(&["space", "show", "--json"])?;
    let space: serde_json::Value = serde_json::from_str(&space)?;
    let space = candor_shared::SpaceId::from_hex(space["space"].as_str().unwrap_or_default())?;
    let chris_identity = candor::home::Home::new(chris.home.clone()).identity()?;
    let fingerprint = candor_shared::invite::RelayFingerprint::parse(&relay.fingerprint)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, spaces) =
            candor::net::RelayClient::connect(&relay.addr, &fingerprint, &chris_identity.secrets)
                .await?;
        assert!(!spaces.contains(&space));
        for request in [
            candor_shared::wire::Request::Pull {
                space,
                after: 0,
                limit: 10,
            },
            candor_shared::wire::Request::Heads { space },
            candor_shared::wire::Request::Members { space },
            candor_shared::wire::Request::Push {
                space,
                entries: vec![],
            },
        ] {
            match client.request(&request).await {
                Err(candor::net::NetError::Refused { code, .. }) => {
                    assert_eq!(code, candor_shared::wire::ErrorCode::Forbidden)
                }
                other => panic!("{request:?} was not refused: {other:?}"),
            }
        }
        client.close().await;
        anyhow::Ok(())
    })?;
    let _ = sam;
    Ok(())
}

#[test]
fn the_relay_stores_no_plaintext() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let markers = [
        "MARKER-checkin-7f3a",
        "MARKER-plan-91c2",
        "MARKER-note-0d5e",
    ];
    alex.ok(&["log", "add", "--kind", "checkin", markers[0]])?;
    sam.ok(&["log", "add", "--kind", "plan", markers[1]])?;
    alex.ok(&["log", "add", markers[2]])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    alex.ok(&["sync"])?;
    assert_eq!(
        sam.texts()?.len(),
        3,
        "the entries must have gone through the relay"
    );
    drop(relay); // let sled's files settle
    let names = ["Alex", "Sam"];
    let files = files_under(&data);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file)?;
        for marker in markers.iter().chain(names.iter()) {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker} found in {}",
                file.display()
            );
        }
    }
    Ok(())
}

#[test]
fn watching_devices_exchange_entries_at_once_and_survive_a_relay_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let alex_watch = alex.watch()?;
    let sam_watch = sam.watch()?;

    // Written by another process while the watcher holds the store: forwarded, pushed at once.
    alex.ok(&["log", "add", "--kind", "checkin", "leaving work now"])?;
    alex_watch.wait_pushed().context("alex pushing")?;
    sam_watch.wait_pulled().context("sam pulling")?;
    assert_eq!(sam.texts()?, vec!["leaving work now"]);

    // The relay dies and comes back on the same address; both watchers reconnect.
    let addr = relay.kill();
    alex.ok(&["log", "add", "written while the relay was down"])?;
    let _relay = Relay::start_on(&data, &addr)?;
    sam_watch
        .wait_pulled()
        .context("sam pulling after the restart")?;
    assert_eq!(
        sam.texts()?,
        vec!["leaving work now", "written while the relay was down"]
    );
    // Every other command keeps working while the watchers hold the stores.
    assert!(sam.ok(&["verify"])?.contains("intact"));
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 0, pulled 0");
    alex_watch.stop();
    sam_watch.stop();
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[test]
fn a_relay_restored_from_an_old_backup_is_healed_by_the_devices() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let backup = tmp.path().join("backup");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    alex.ok(&["log", "add", "before the backup"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let addr = relay.kill();
    copy_dir(&data, &backup)?;

    let relay = Relay::start_on(&data, &addr)?;
    sam.ok(&["log", "add", "after the backup 1"])?;
    sam.ok(&["log", "add", "after the backup 2"])?;
    sam.ok(&["sync"])?;
    alex.ok(&["sync"])?;
    relay.kill();

    // The relay's disk is restored from the old backup: Sam's two entries are gone from it.
    std::fs::remove_dir_all(&data)?;
    copy_dir(&backup, &data)?;
    let _relay = Relay::start_on(&data, &addr)?;
    let out = alex.command(&["sync"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notice = String::from_utf8_lossy(&out.stderr);
    assert!(
        notice.contains("had lost 2 of your partner's entries"),
        "{notice}"
    );

    // Sam's device finds its log complete at the relay again, and new entries still flow.
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 0, pulled 0");
    alex.ok(&["log", "add", "after the restore"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    assert_eq!(
        sam.texts()?,
        vec![
            "before the backup",
            "after the backup 1",
            "after the backup 2",
            "after the restore"
        ]
    );
    assert!(sam.ok(&["verify"])?.contains("intact"));
    Ok(())
}

#[test]
fn a_device_whose_position_is_beyond_a_restored_relay_still_receives_everything() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let backup = tmp.path().join("backup");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    alex.ok(&["sync"])?;
    let addr = relay.kill();
    copy_dir(&data, &backup)?;

    let relay = Relay::start_on(&data, &addr)?;
    alex.ok(&["log", "add", "a1"])?;
    sam.ok(&["log", "add", "s1"])?;
    sam.ok(&["sync"])?; // Sam's position passes s1; Sam never sees a1 before the restore
    alex.ok(&["sync"])?;
    relay.kill();
    std::fs::remove_dir_all(&data)?;
    copy_dir(&backup, &data)?;
    let _relay = Relay::start_on(&data, &addr)?;

    // Alex uploads a1 again, adds two more and re-uploads s1; the relay numbers them from where
    // its old copy stopped, so a2 lands at the position after Sam's: Sam meets a2 before a1.
    alex.ok(&["log", "add", "a2"])?;
    alex.ok(&["log", "add", "a3"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    assert_eq!(sam.texts()?, vec!["a1", "s1", "a2", "a3"]);
    assert_eq!(alex.texts()?, sam.texts()?);
    Ok(())
}
