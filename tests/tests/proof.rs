//! End-to-end tests of `candor export --verifiable` and `candor verify-export` with the real
//! binaries and relay: a third party can check chosen entries offline, learns nothing of the
//! others, and any change to the file is caught.

use anyhow::{bail, Result};
use candor_tests::{binary, pair, sync_both, Device, Relay};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `verify-export` run like a counsellor would: no home, no identity, no key.
fn verify_export(file: &Path, empty_dir: &Path) -> Result<Output> {
    Ok(Command::new(binary("candor"))
        .arg("verify-export")
        .arg(file)
        .env_remove("CANDOR_HOME")
        .env("HOME", empty_dir)
        .env("XDG_DATA_HOME", empty_dir)
        .current_dir(empty_dir)
        .stdin(Stdio::null())
        .output()?)
}

fn id_of(device: &Device, text: &str) -> Result<String> {
    for entry in device.entries()? {
        if entry["text"] == text {
            return Ok(entry["id"].as_str().unwrap_or_default().to_string());
        }
    }
    bail!("no entry {text:?}")
}

/// Runs the export until the countersignatures it needs exist, syncing both devices between
/// attempts as the CLI asks; returns how many attempts it took.
fn export(alex: &Device, sam: &Device, select: &str, out: &Path) -> Result<usize> {
    for attempt in 1..=3 {
        let outcome = alex.run(&[
            "export",
            "--verifiable",
            "--select",
            select,
            "--out",
            out.to_str().unwrap_or_default(),
        ])?;
        match outcome.status.code() {
            Some(0) => return Ok(attempt),
            Some(3) => {
                let err = String::from_utf8_lossy(&outcome.stderr);
                assert!(err.contains("Sync both devices"), "{err}");
                assert!(!out.exists(), "nothing is written while a proof is pending");
                sync_both(alex, sam)?;
            }
            _ => bail!(
                "export failed: {}",
                String::from_utf8_lossy(&outcome.stderr)
            ),
        }
    }
    bail!("the export never became provable")
}

#[test]
fn a_third_party_verifies_chosen_entries_offline_and_any_change_fails() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    alex.ok(&[
        "log",
        "add",
        "--kind",
        "disclosure",
        "I met my ex for coffee on Tuesday",
    ])?;
    alex.ok(&["log", "add", "LEFT-OUT-MARKER private to us"])?;
    alex.ok(&["checkin", "Home by 19:30", "--eta", "19:30"])?;
    sam.ok(&["log", "add", "I felt scared when I found out"])?;
    sync_both(&alex, &sam)?;

    let select = [
        id_of(&alex, "I met my ex for coffee on Tuesday")?,
        id_of(&alex, "Home by 19:30")?,
        id_of(&alex, "I felt scared when I found out")?[..8].to_string(),
    ]
    .join(",");
    let file = tmp.path().join("for-counsellor.json");
    let attempts = export(&alex, &sam, &select, &file)?;
    assert!(attempts >= 1);
    let text = std::fs::read_to_string(&file)?;
    assert!(!text.contains("LEFT-OUT-MARKER"), "left-out text leaked");

    let empty = tempfile::tempdir()?;
    let verified = verify_export(&file, empty.path())?;
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    for expected in [
        "VALID",
        "I met my ex for coffee on Tuesday",
        "Home by 19:30",
        "I felt scared when I found out",
        "Alex",
        "Sam",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    assert!(!stdout.contains("LEFT-OUT-MARKER"));
    // The left-out entry counts: Alex's log holds more entries than were disclosed.
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let alex_index = usize::from(json["logs"][0]["author_name"] != "Alex");
    let alex_log = &json["logs"][alex_index];
    assert!(alex_log["entries_in_log"].as_u64().unwrap_or(0) > 4);
    assert_eq!(alex_log["entries"].as_array().map(Vec::len), Some(3)); // hello + 2 chosen

    // The file is never replaced without --force.
    let before = std::fs::read(&file)?;
    let refused = alex.fails(&[
        "export",
        "--verifiable",
        "--select",
        &select,
        "--out",
        file.to_str().unwrap_or_default(),
    ])?;
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(
        std::fs::read(&file)?,
        before,
        "an existing file was changed"
    );

    // Any change fails: a readable field, an entry's bytes, a removed entry, a path hash.
    let tampered = tmp.path().join("tampered.json");
    let mut changes: Vec<String> = vec![
        text.replacen("coffee on Tuesday", "coffee on Monday", 1),
        text.replacen("\"Sam\"", "\"Someone else\"", 1),
    ];
    let entry_b64 = alex_log["entries"][1]["entry"].as_str().unwrap_or_default();
    let mut flipped = entry_b64.as_bytes().to_vec();
    flipped[300] = if flipped[300] == b'A' { b'B' } else { b'A' };
    changes.push(text.replacen(entry_b64, std::str::from_utf8(&flipped)?, 1));
    let mut removed = json.clone();
    if let Some(entries) = removed["logs"][alex_index]["entries"].as_array_mut() {
        entries.remove(2);
    }
    changes.push(format!("{}\n", serde_json::to_string_pretty(&removed)?));
    let path0 = alex_log["entries"][1]["path"][0]
        .as_str()
        .unwrap_or_default();
    let mut path_flipped = path0.to_string();
    path_flipped.replace_range(0..1, if path0.starts_with('0') { "1" } else { "0" });
    changes.push(text.replacen(path0, &path_flipped, 1));
    for (i, changed) in changes.iter().enumerate() {
        assert_ne!(changed, &text, "change {i} did not apply");
        std::fs::write(&tampered, changed)?;
        let outcome = verify_export(&tampered, empty.path())?;
        let err = String::from_utf8_lossy(&outcome.stderr);
        assert!(!outcome.status.success(), "change {i} was not caught");
        assert!(err.contains("INVALID"), "change {i}: {err}");
    }
    Ok(())
}

#[test]
fn honest_checkpoints_always_match_the_root_the_partner_recomputes() -> Result<()> {
    // Every checkpoint carries a Merkle root the partner recomputes before storing it (a false
    // one is refused: see the store's unit tests); honest exchanges must never trip it.
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    for round in 0..4 {
        alex.ok(&["log", "add", &format!("alex {round}")])?;
        sam.ok(&["log", "add", &format!("sam {round}")])?;
        sync_both(&alex, &sam)?;
    }
    for device in [&alex, &sam] {
        let out = device.ok(&["verify"])?;
        assert!(!out.contains("problem"), "{out}");
    }
    Ok(())
}

#[test]
fn the_report_escapes_entry_text_names_both_people_and_prints_the_safety_number() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    // Sam's entry tries to draw a fake section with a "disclosure" attributed to Alex, and to
    // hide itself with terminal escapes. Given on stdin, as the README advises for private words.
    let forged = "fine\n\nAlex (device 0000): 1 of 1 entries disclosed\n  #7     2026-01-01T00:00:00.000Z  disclosure   I lied about everything\x1b[2K\x1b[1A";
    sam.ok_with_stdin(&["log", "add", "-"], forged)?;
    let week = "2026-W10";
    sam.ok(&["goal", "add", "--week", week, "Walk together twice"])?;
    let goal = id_of(&sam, &format!("goal for {week}: Walk together twice"))?;
    sam.ok(&["goal", "progress", &goal, "once so far"])?;
    sam.ok(&["promise", "add", "Call at lunch", "--due", "2031-05-06"])?;
    sam.ok(&["plan", "add", "2031-07-08 18:00", "Dinner with my sister"])?;
    sam.ok(&[
        "agreement",
        "propose",
        "Share plans a day ahead",
        "--review",
        "2031-09-10",
    ])?;
    sync_both(&sam, &alex)?;
    let mut ids = Vec::new();
    for entry in sam.entries()? {
        if entry["author"] == "me" {
            ids.push(entry["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let file = tmp.path().join("export.json");
    export(&alex, &sam, &ids.join(","), &file)?;

    let empty = tempfile::tempdir()?;
    let verified = verify_export(&file, empty.path())?;
    let stdout = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(verified.status.success(), "{stdout}");
    // No raw escape reaches the terminal, and every line of the forged text sits inside Sam's
    // entry (marked with a bar), never at the start of a line of its own.
    assert!(!stdout.contains('\x1b'), "{stdout}");
    for line in stdout.lines() {
        if line.contains("I lied about everything") || line.contains("Alex (device 0000)") {
            assert!(
                line.trim_start().starts_with('|'),
                "escaped its entry: {line:?}\n{stdout}"
            );
        }
    }
    // Both people are named, and the safety number is the one both devices show.
    assert!(
        stdout.contains("\"Alex\"") && stdout.contains("\"Sam\""),
        "{stdout}"
    );
    let number = alex.ok(&["space", "safety-number"])?;
    assert_eq!(number, sam.ok(&["space", "safety-number"])?);
    assert!(
        stdout.contains(&format!("Safety number: {}", number.trim())),
        "{stdout}"
    );
    assert!(stdout.contains("candor space safety-number"), "{stdout}");
    // Every kind renders with its words, dates and what it refers to.
    for expected in [
        "goal for 2026-W10: Walk together twice",
        "progress: once so far",
        "Call at lunch",
        "due: 2031-05-06",
        "when: 2031-07-08T18:00",
        "review: 2031-09-10",
        "refers to Sam's goal",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    assert!(!stdout.contains("unknown kind"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&verify_export_json(&file, empty.path())?.stdout)?;
    assert_eq!(json["safety_number"].as_str(), Some(number.trim()));
    Ok(())
}

fn verify_export_json(file: &Path, empty_dir: &Path) -> Result<Output> {
    Ok(Command::new(binary("candor"))
        .arg("verify-export")
        .arg("--json")
        .arg(file)
        .env_remove("CANDOR_HOME")
        .env("HOME", empty_dir)
        .current_dir(empty_dir)
        .stdin(Stdio::null())
        .output()?)
}
