//! End-to-end tests of the private journal, encryption at rest and recovery bundles, across two
//! devices and the real relay.

use anyhow::{anyhow, bail, Context as _, Result};
use candor::home::Home;
use candor::store::Store;
use candor_shared::entry::{Class, Entry, EntryError};
use candor_tests::{Device, Relay};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PASS: &str = "correct horse battery staple";

fn pair(root: &Path, relay: &Relay) -> Result<(Device, Device)> {
    let alex = Device::init(root, "Alex")?;
    let sam = Device::init(root, "Sam")?;
    let invite = alex.create_space(relay)?;
    sam.ok(&["space", "join", &invite])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    Ok((alex, sam))
}

fn json(device: &Device, args: &[&str]) -> Result<Value> {
    let out = device.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} did not print JSON: {out}"))
}

/// Runs a command with environment variables set; returns the output whatever the exit code.
fn run_env(device: &Device, env: &[(&str, &str)], args: &[&str]) -> Result<std::process::Output> {
    let mut command = device.command(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(std::process::Stdio::null())
        .output()
        .context("running candor")
}

fn ok_env(device: &Device, env: &[(&str, &str)], args: &[&str]) -> Result<String> {
    let out = run_env(device, env, args)?;
    if !out.status.success() {
        bail!(
            "candor {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every regular file under `root`, recursively, with its bytes.
fn all_files(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.insert(entry.path(), std::fs::read(entry.path())?);
            }
        }
    }
    Ok(out)
}

/// The markers found in any file under `root`.
fn markers_in(root: &Path, markers: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for (path, bytes) in all_files(root)? {
        for marker in markers {
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push((marker.clone(), path.clone()));
            }
        }
    }
    Ok(found)
}

/// Alex's entries as Sam's device holds them, read from Sam's store (no sync running).
fn entries_held_by(holder: &Device, author: &Device) -> Result<Vec<Entry>> {
    let home = Home::new(holder.home.clone());
    let author_key = Home::new(author.home.clone())
        .identity()?
        .secrets
        .device_key();
    let store = Store::open(&home.store_dir(), home.storage_key()?)?;
    store
        .log_entries(&author_key, 0)
        .map(|item| {
            let (_, bytes) = item?;
            Ok(Entry::from_bytes(&bytes)?)
        })
        .collect()
}

#[test]
fn the_journal_works_without_a_space_and_stays_on_the_device_with_backup_off() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    // Right after init, no space, no relay.
    let alex = Device::init(tmp.path(), "Alex")?;
    alex.ok(&["journal", "add", "Walked by the river; felt steadier"])?;
    let prompt = alex.ok(&["journal", "prompt"])?;
    assert!(prompt.trim().ends_with('?'), "{prompt}");
    let listed = json(&alex, &["journal", "list", "--json"])?;
    assert_eq!(listed[0]["text"], "Walked by the river; felt steadier");

    // Pairing later changes nothing about where the journal lives.
    let sam = Device::init(tmp.path(), "Sam")?;
    let invite = alex.create_space(&relay)?;
    sam.ok(&["space", "join", &invite])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let before = json(&sam, &["verify", "--json"])?;
    let id = listed[0]["id"].as_str().unwrap_or_default().to_string();
    alex.ok(&["journal", "add", "private-marker-no-backup"])?;
    alex.ok(&[
        "journal",
        "edit",
        &id[..6],
        "Walked by the river; steadier, and hungry",
    ])?;
    let pushed = alex.ok(&["sync"])?;
    assert!(pushed.contains("pushed 0"), "{pushed}");
    sam.ok(&["sync"])?;
    let after = json(&sam, &["verify", "--json"])?;
    assert_eq!(
        before["partner"], after["partner"],
        "Sam's device received nothing new"
    );
    assert_eq!(after["ok"], true);
    let found = markers_in(&sam.home, &["private-marker-no-backup".to_string()])?;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(
        entries_held_by(&sam, &alex)?.len() as u64,
        before["partner"].as_u64().unwrap_or(0)
    );

    let listed = json(&alex, &["journal", "list", "--json"])?;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(
        listed[0]["text"],
        "Walked by the river; steadier, and hungry"
    );
    assert_eq!(listed[0]["versions"], 2);
    let found = json(&alex, &["journal", "search", "RIVER", "hungry", "--json"])?;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let none = json(
        &alex,
        &["journal", "list", "--json", "--since", "2999-01-01"],
    )?;
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // `journal edit ID` alone opens the entry in the editor (a script stands in for it).
    let edited = alex
        .command(&["journal", "edit", &id[..6]])
        .env("VISUAL", "")
        .env("EDITOR", "sed -i 's/and hungry/and fed/'")
        .output()?;
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let listed = json(&alex, &["journal", "list", "--json"])?;
    assert_eq!(listed[0]["text"], "Walked by the river; steadier, and fed");
    assert_eq!(listed[0]["versions"], 3);
    assert!(std::fs::read_dir(&alex.home)?
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with(".edit-")));
    Ok(())
}

#[test]
fn backed_up_journal_entries_reach_the_partner_only_as_ciphertext_and_restore_from_a_bundle(
) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    alex.ok(&["log", "add", "Home by seven"])?;
    alex.ok(&[
        "journal",
        "add",
        "journal-marker-one, written before backup",
    ])?;
    let on = alex.ok(&["journal", "backup", "on"])?;
    assert!(on.contains("1 earlier entry"), "{on}");
    alex.ok(&[
        "journal",
        "add",
        "journal-marker-two, written with backup on",
    ])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    alex.ok(&["sync"])?;

    // Sam's device holds both journal entries, verified and chained, and cannot open them.
    let held = entries_held_by(&sam, &alex)?;
    let sam_space_key = Home::new(sam.home.clone())
        .space_key()?
        .ok_or_else(|| anyhow!("Sam is paired"))?
        .key;
    let sam_journal_key = Home::new(sam.home.clone()).journal_key()?;
    let alex_journal_key = Home::new(alex.home.clone()).journal_key()?;
    let mut private = 0;
    for entry in &held {
        // The relay sees every entry alike: the shared class, a 256-byte padding bucket.
        assert_ne!(entry.header.class, Class::Private);
        assert_eq!((entry.ciphertext.len() - 16) % 256, 0);
        if entry.open(&sam_space_key) == Err(EntryError::Decrypt) {
            private += 1;
            assert!(
                candor::commands::journal::open_journal_entry(entry, &sam_journal_key).is_none()
            );
            let opened = candor::commands::journal::open_journal_entry(entry, &alex_journal_key)
                .ok_or_else(|| anyhow!("Alex's journal key opens Alex's entry"))?;
            let record = candor_shared::journal::JournalRecord::from_payload(&opened)?
                .ok_or_else(|| anyhow!("not a journal record"))?;
            assert!(record.text.starts_with("journal-marker-"));
        }
    }
    assert_eq!(private, 2);
    let sam_verify = json(&sam, &["verify", "--json"])?;
    assert_eq!(sam_verify["ok"], true, "{sam_verify}");
    assert_eq!(sam_verify["problems"], Value::Array(vec![]));
    let sam_texts = sam.texts()?;
    assert!(
        sam_texts.iter().all(|t| !t.contains("journal-marker")),
        "{sam_texts:?}"
    );
    assert!(sam_texts.contains(&"Home by seven".to_string()));
    let found = markers_in(&sam.home, &["journal-marker".to_string()])?;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(json(&alex, &["verify", "--json"])?["ok"], true);

    // Restore Alex's device from a bundle into a fresh home.
    let bundle = tmp.path().join("alex.bundle");
    let env = [("CANDOR_BACKUP_PASSPHRASE", PASS)];
    ok_env(
        &alex,
        &env,
        &[
            "backup",
            "export",
            "--out",
            bundle.to_str().unwrap_or_default(),
        ],
    )?;
    // The old device writes on after the export; the restored one takes these from the relay.
    alex.ok(&["log", "add", "Written after the bundle"])?;
    alex.ok(&["journal", "add", "journal-marker-four, after the bundle"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    alex.ok(&["sync"])?;
    let restored = Device {
        home: tmp.path().join("alex-restored"),
    };
    // A wrong bundle passphrase is refused and creates nothing.
    let wrong = run_env(
        &restored,
        &[("CANDOR_BACKUP_PASSPHRASE", "not it")],
        &["backup", "import", bundle.to_str().unwrap_or_default()],
    )?;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    assert!(!restored.home.exists());
    ok_env(
        &restored,
        &env,
        &["backup", "import", bundle.to_str().unwrap_or_default()],
    )?;
    // A non-empty home is refused.
    let again = run_env(
        &alex,
        &env,
        &["backup", "import", bundle.to_str().unwrap_or_default()],
    )?;
    assert!(!again.status.success());

    let first = restored.ok(&["sync"])?;
    assert!(first.contains("pushed 0"), "nothing is sent twice: {first}");
    assert_eq!(alex.entries()?, restored.entries()?);
    let journal = json(&restored, &["journal", "list", "--json"])?;
    assert_eq!(json(&alex, &["journal", "list", "--json"])?, journal);
    assert_eq!(journal.as_array().map(Vec::len), Some(3));
    assert_eq!(
        alex.ok(&["space", "fingerprint"])?,
        restored.ok(&["space", "fingerprint"])?
    );
    restored.ok(&["log", "add", "Written on the restored device"])?;
    restored.ok(&["journal", "add", "journal-marker-three, after restore"])?;
    let pushed = restored.ok(&["sync"])?;
    // The new log entry and the journal entry (which the relay cannot tell apart).
    assert!(pushed.contains("pushed 2"), "{pushed}");
    sam.ok(&["sync"])?;
    let texts = sam.texts()?;
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == "Written on the restored device")
            .count(),
        1
    );
    let sam_verify = json(&sam, &["verify", "--json"])?;
    assert_eq!(sam_verify["ok"], true, "{sam_verify}");
    assert_eq!(sam_verify["notices"], Value::Array(vec![]), "{sam_verify}");
    assert_eq!(
        json(&restored, &["journal", "list", "--json"])?
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // The readable export holds the person's own records, and the journal only when asked.
    let md = restored.ok(&["export", "--format", "md"])?;
    assert!(md.contains("Written on the restored device"));
    assert!(!md.contains("journal-marker"));
    let exported = json(&restored, &["export", "--format", "json", "--journal"])?;
    assert_eq!(exported["journal"].as_array().map(Vec::len), Some(4));
    assert!(exported["log"]
        .as_array()
        .map(|log| log.iter().all(|r| r["author"] == "me"))
        .unwrap_or(false));
    Ok(())
}

#[test]
fn a_wrong_passphrase_is_refused_clearly_and_changes_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let alex = Device {
        home: tmp.path().join("alex"),
    };
    let env = [("CANDOR_PASSPHRASE", PASS)];
    ok_env(&alex, &env, &["init", "--name", "Alex", "--passphrase"])?;
    ok_env(&alex, &env, &["journal", "add", "a quiet morning"])?;
    let before = all_files(&alex.home)?;

    let locked = alex.run(&["journal", "list"])?;
    assert!(!locked.status.success());
    assert!(String::from_utf8_lossy(&locked.stderr).contains("CANDOR_PASSPHRASE"));
    for args in [
        &["journal", "list"][..],
        &["journal", "add", "should not be written"],
        &["passphrase", "change"],
        &["passphrase", "remove"],
    ] {
        let out = run_env(
            &alex,
            &[
                ("CANDOR_PASSPHRASE", "wrong"),
                ("CANDOR_NEW_PASSPHRASE", "other"),
            ],
            args,
        )?;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong passphrase"), "{args:?}: {err}");
    }
    assert_eq!(before, all_files(&alex.home)?, "nothing changed on disk");

    // The right one still works; a change takes effect and the old one stops working.
    ok_env(
        &alex,
        &[
            ("CANDOR_PASSPHRASE", PASS),
            ("CANDOR_NEW_PASSPHRASE", "new one"),
        ],
        &["passphrase", "change"],
    )?;
    assert!(!run_env(&alex, &env, &["journal", "list"])?.status.success());
    let listed = ok_env(
        &alex,
        &[("CANDOR_PASSPHRASE", "new one")],
        &["journal", "list"],
    )?;
    assert!(listed.contains("a quiet morning"));
    ok_env(
        &alex,
        &[("CANDOR_PASSPHRASE", "new one")],
        &["passphrase", "remove"],
    )?;
    assert!(alex.ok(&["journal", "list"])?.contains("a quiet morning"));
    Ok(())
}

#[test]
fn with_a_passphrase_no_stored_text_is_readable_on_disk() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let env = [("CANDOR_PASSPHRASE", PASS)];
    let markers: Vec<String> = (0..20).map(|i| format!("qzmarker{i:02}x")).collect();
    let m = |i: usize| markers[i].as_str();
    let alex = Device {
        home: tmp.path().join("alex"),
    };
    let sam = Device {
        home: tmp.path().join("sam"),
    };
    ok_env(&alex, &env, &["init", "--name", m(0), "--passphrase"])?;
    ok_env(&sam, &env, &["init", "--name", m(1), "--passphrase"])?;
    let invite = ok_env(
        &alex,
        &env,
        &[
            "space",
            "create",
            "--relay",
            &relay.addr,
            "--relay-fingerprint",
            &relay.fingerprint,
        ],
    )?;
    let invite = invite.lines().last().unwrap_or_default().to_string();
    ok_env(&sam, &env, &["space", "join", &invite])?;
    ok_env(&alex, &env, &["sync"])?;
    ok_env(&alex, &env, &["log", "add", m(2)])?;
    ok_env(&alex, &env, &["log", "add", "--kind", "disclosure", m(3)])?;
    ok_env(&alex, &env, &["checkin", m(4), "--eta", "19:30"])?;
    ok_env(
        &alex,
        &env,
        &["promise", "add", m(5), "--due", "2030-01-01"],
    )?;
    ok_env(&alex, &env, &["plan", "add", "2030-01-02", m(6)])?;
    ok_env(
        &alex,
        &env,
        &["plan", "add", "2030-01-03", m(7), "--busy-only"],
    )?;
    ok_env(&alex, &env, &["support", "request", "talk", "--note", m(8)])?;
    ok_env(
        &alex,
        &env,
        &["agreement", "propose", m(9), "--review", "2030-06-01"],
    )?;
    ok_env(&alex, &env, &["journal", "add", m(10)])?;
    let listed: Value =
        serde_json::from_str(&ok_env(&alex, &env, &["journal", "list", "--json"])?)?;
    let id = listed[0]["id"].as_str().unwrap_or_default().to_string();
    ok_env(&alex, &env, &["journal", "edit", &id, m(11)])?;
    // Shared notes and weekly goals.
    ok_env(&alex, &env, &["note", "new", m(15), "--template", "needs"])?;
    let note_file = tmp.path().join("note.txt");
    std::fs::write(&note_file, format!("I feel {} when we talk late\n", m(16)))?;
    ok_env(
        &alex,
        &env,
        &[
            "note",
            "set",
            m(15),
            "--file",
            note_file.to_str().unwrap_or_default(),
        ],
    )?;
    let goal = ok_env(&alex, &env, &["goal", "add", m(17)])?;
    ok_env(&alex, &env, &["goal", "progress", goal.trim(), m(18)])?;
    ok_env(&sam, &env, &["log", "add", m(12)])?;
    ok_env(&sam, &env, &["journal", "add", m(13)])?;
    ok_env(&sam, &env, &["journal", "backup", "on"])?;
    ok_env(&sam, &env, &["sync"])?;
    ok_env(&alex, &env, &["sync"])?;
    ok_env(&sam, &env, &["sync"])?;
    let shown = ok_env(&sam, &env, &["note", "show", m(15)])?;
    assert!(shown.contains(m(16)), "{shown}");
    let goals = ok_env(&sam, &env, &["goal", "list"])?;
    assert!(goals.contains(m(18)), "{goals}");
    let entries = ok_env(&alex, &env, &["log", "list"])?;
    assert!(
        entries.contains(m(2)) && entries.contains(m(12)),
        "{entries}"
    );

    // The test would see a marker written in the clear.
    let probe = tmp.path().join("probe");
    std::fs::create_dir_all(probe.join("nested"))?;
    std::fs::write(probe.join("nested").join("file"), format!("xx{}yy", m(14)))?;
    assert_eq!(markers_in(&probe, &markers)?.len(), 1);

    for device in [&alex, &sam] {
        let found = markers_in(&device.home, &markers)?;
        assert!(found.is_empty(), "readable on disk: {found:?}");
        assert!(all_files(&device.home)?.len() > 3);
    }
    Ok(())
}
