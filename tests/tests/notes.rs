//! End-to-end tests of shared notes and weekly goals across two devices and the real relay.

use anyhow::{bail, Context as _, Result};
use candor_tests::{pair, sync_both, Device, Relay};
use serde_json::Value;
use std::io::Write as _;
use std::process::Stdio;

fn json(device: &Device, args: &[&str]) -> Result<Value> {
    let out = device.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} did not print JSON: {out}"))
}

fn text(device: &Device, name: &str) -> Result<String> {
    let note = json(device, &["note", "show", name, "--json"])?;
    Ok(note["text"].as_str().context("text")?.to_string())
}

/// Runs `candor ARGS` with `input` on stdin and extra environment; must succeed.
fn ok_with(device: &Device, args: &[&str], input: &str, env: &[(&str, &str)]) -> Result<String> {
    let out = run_with(device, args, input, env)?;
    if !out.status.success() {
        bail!(
            "candor {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `candor ARGS` with `input` on stdin and extra environment.
fn run_with(
    device: &Device,
    args: &[&str],
    input: &str,
    env: &[(&str, &str)],
) -> Result<std::process::Output> {
    let mut command = device.command(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}

#[test]
fn both_partners_edit_one_note_offline_and_get_the_same_text_with_both_edits() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    alex.ok(&["note", "new", "needs", "--template", "needs"])?;
    assert!(alex
        .fails(&["note", "new", "Needs"])?
        .contains("exists already"));
    sync_both(&alex, &sam)?;
    let start = text(&sam, "needs")?;
    assert!(
        start.contains("I feel … when … it would help me if …"),
        "{start}"
    );
    assert_eq!(start, text(&alex, "needs")?);

    // Offline, both edit the same note in different places.
    let alex_version = start.replacen(
        "## My needs (first partner)\n\n- I feel … when … it would help me if …",
        "## My needs (first partner)\n\n- I feel lonely when plans change late; it would help me if you told me by noon",
        1,
    );
    assert_ne!(alex_version, start);
    ok_with(
        &alex,
        &["note", "set", "needs", "--file", "-"],
        &alex_version,
        &[],
    )?;
    // Sam uses the editor path: a script stands in for the editor.
    ok_with(
        &sam,
        &["note", "edit", "needs"],
        "",
        &[
            ("VISUAL", ""),
            (
                "EDITOR",
                "sed -i 's/^## Needs we share$/## Needs we share\\n\\n- A quiet evening together each week/'",
            ),
        ],
    )?;
    assert!(text(&sam, "needs")?.contains("A quiet evening together"));
    // The editor's temporary file is gone.
    assert!(std::fs::read_dir(&sam.home)?
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with(".edit-")));

    sync_both(&alex, &sam)?;
    let merged = text(&alex, "needs")?;
    assert_eq!(
        merged,
        text(&sam, "needs")?,
        "both devices show the same text"
    );
    assert!(
        merged.contains("I feel lonely when plans change late"),
        "{merged}"
    );
    assert!(
        merged.contains("A quiet evening together each week"),
        "{merged}"
    );
    assert_eq!(merged.matches("## Needs we share").count(), 1, "{merged}");

    // History: who changed what.
    for device in [&alex, &sam] {
        let history = json(device, &["note", "history", "needs", "--json"])?;
        let history = history.as_array().context("array")?;
        assert_eq!(history.len(), 3, "{history:?}");
        let authors: Vec<&str> = history
            .iter()
            .filter_map(|h| h["author_name"].as_str())
            .collect();
        assert_eq!(authors, ["Alex", "Alex", "Sam"]);
        assert!(history.iter().all(|h| h["invalid"].is_null()));
        assert!(history[2]["inserted"].as_u64() > Some(10));
    }

    // Rename and archive travel too.
    alex.ok(&["note", "rename", "needs", "our needs"])?;
    sync_both(&alex, &sam)?;
    assert_eq!(text(&sam, "our needs")?, merged);
    sam.ok(&["note", "archive", "our needs"])?;
    sync_both(&sam, &alex)?;
    assert_eq!(
        json(&alex, &["note", "list", "--json"])?,
        Value::Array(vec![])
    );
    let all = json(&alex, &["note", "list", "--all", "--json"])?;
    assert_eq!(all[0]["name"], "our needs");
    assert_eq!(all[0]["archived"], true);
    Ok(())
}

#[test]
fn a_100_kb_note_syncs_and_notes_work_while_sync_watch_runs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let big: String = (0..2_000)
        .map(|i| format!("line {i:05}: what I need, said plainly, on a note both of us keep.\n"))
        .collect();
    assert!(big.len() > 100_000);
    let file = tmp.path().join("big.md");
    std::fs::write(&file, &big)?;
    alex.ok(&[
        "note",
        "set",
        "boundaries",
        "--file",
        &file.to_string_lossy(),
    ])?;
    let parts = alex
        .entries()?
        .iter()
        .filter(|e| e["kind"] == "note-edit")
        .count();
    assert!(parts >= 2, "a 100 KB edit is written in parts ({parts})");
    sync_both(&alex, &sam)?;
    assert_eq!(text(&sam, "boundaries")?, big);

    // While `sync --watch` holds Sam's store, note commands are forwarded to it.
    let watch = sam.watch()?;
    let edited = big.replacen("line 00000", "line zero", 1);
    ok_with(
        &sam,
        &["note", "set", "boundaries", "--file", "-"],
        &edited,
        &[],
    )?;
    watch.wait_pushed()?;
    assert_eq!(text(&sam, "boundaries")?, edited);
    watch.stop();
    alex.ok(&["sync"])?;
    assert_eq!(text(&alex, "boundaries")?, edited);
    Ok(())
}

#[test]
fn goals_and_their_progress_show_on_both_devices() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let id = alex.ok(&["goal", "add", "Walk", "together", "twice"])?;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "goal add prints the id: {id}");
    sync_both(&alex, &sam)?;
    let list = json(&sam, &["goal", "list", "--json"])?;
    assert_eq!(list[0]["author"], "partner");
    assert_eq!(list[0]["text"], "Walk together twice");
    assert_eq!(list[0]["status"], "open");
    assert!(sam
        .fails(&["goal", "progress", &id, "nice"])?
        .contains("your partner's goal"));

    alex.ok(&["goal", "progress", &id[..10], "once so far, by the river"])?;
    alex.ok(&["goal", "done", &id])?;
    assert!(alex.fails(&["goal", "drop", &id])?.contains("already done"));
    sync_both(&alex, &sam)?;
    for device in [&alex, &sam] {
        let list = json(device, &["goal", "list", "--json"])?;
        assert_eq!(list[0]["status"], "done");
        let updates = list[0]["updates"].as_array().context("updates")?;
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0]["text"], "once so far, by the river");
        let summary = json(device, &["summary", "--weeks", "1", "--json"])?;
        assert_eq!(summary[0]["goals_done"], 1);
    }

    // A gentle warning above two goals a week, and goals of another week stay apart.
    alex.ok(&["goal", "add", "Cook on Sunday"])?;
    let third = alex.run(&["goal", "add", "Read together"])?;
    assert!(third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("3 goals for"));
    alex.ok(&["goal", "add", "Plan a trip", "--week", "2030-W02"])?;
    let later = json(&alex, &["goal", "list", "--week", "2030-W02", "--json"])?;
    assert_eq!(later.as_array().map(Vec::len), Some(1));
    assert!(alex
        .fails(&["goal", "add", "x", "--week", "2030-W60"])?
        .contains("ISO week"));
    Ok(())
}

#[test]
fn hostile_note_edits_from_the_partner_are_shown_invalid_and_change_nothing() -> Result<()> {
    use automerge::transaction::{CommitOptions, Transactable};
    use candor::home::Home;
    use candor::store::{LogWriter, Store};
    use candor_shared::entry::Class;
    use candor_shared::notes::{actor_of, genesis, NoteEdit, NoteId};

    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    ok_with(
        &alex,
        &["note", "set", "needs", "--file", "-"],
        "keep these words\n",
        &[],
    )?;
    sync_both(&alex, &sam)?;

    // Sam's device writes, signed and encrypted like any entry, edits no honest client makes:
    // bytes that are no Automerge change, and a change that writes a key other than the text.
    {
        let home = Home::new(sam.home.clone());
        let secrets = home.identity()?.secrets;
        let space = home.space_key()?.context("paired")?;
        let store = Store::open(&home.store_dir(), home.storage_key()?)?;
        let partner = store
            .space_config()?
            .and_then(|c| c.partner)
            .context("partner")?;
        let mut evil = genesis().with_actor(actor_of(&secrets.device_key()));
        evil.put(automerge::ROOT, "owner", "sam")?;
        evil.commit_with(CommitOptions::default().with_time(1));
        let hostile = evil
            .get_last_local_change()
            .context("change")?
            .raw_bytes()
            .to_vec();
        let note = NoteId::for_name("needs", 0);
        let payloads = [b"not a change".to_vec(), hostile]
            .into_iter()
            .map(|bytes| {
                let edit = NoteEdit {
                    note,
                    name: "needs".into(),
                    part: 0,
                    parts: 1,
                    bytes,
                };
                (Class::Shared, edit.to_payload())
            })
            .collect();
        let writer = LogWriter {
            author: &secrets,
            space: &space.space,
            key: &space.key,
            partner: Some(&partner.device),
        };
        let mut n = 0u8;
        store.append_own(&writer, payloads, 1_795_000_000_000, || {
            n += 1;
            Ok([n; 24])
        })?;
    }
    sync_both(&sam, &alex)?;
    for device in [&alex, &sam] {
        let note = json(device, &["note", "show", "needs", "--json"])?;
        assert_eq!(note["text"], "keep these words\n");
        let invalid = note["invalid_edits"].as_array().context("invalid")?;
        assert_eq!(invalid.len(), 2, "{note}");
        let shown = device.run(&["note", "show", "needs"])?;
        assert!(String::from_utf8_lossy(&shown.stderr).contains("INVALID edit"));
    }
    let history = json(&alex, &["note", "history", "needs", "--json"])?;
    let invalid = history
        .as_array()
        .context("array")?
        .iter()
        .filter(|h| !h["invalid"].is_null())
        .count();
    assert_eq!(invalid, 2, "{history}");

    // Honest edits still merge afterwards.
    ok_with(
        &sam,
        &["note", "set", "needs", "--file", "-"],
        "keep these words\nand these\n",
        &[],
    )?;
    sync_both(&sam, &alex)?;
    assert_eq!(text(&alex, "needs")?, "keep these words\nand these\n");
    Ok(())
}

#[test]
fn both_replacing_one_sentence_offline_shows_both_versions_until_one_is_kept() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let set = |device: &Device, text: &str| {
        ok_with(device, &["note", "set", "talks", "--file", "-"], text, &[])
    };
    set(&alex, "We will talk every Sunday evening after dinner.\n")?;
    sync_both(&alex, &sam)?;
    // Offline, both replace the same sentence.
    set(
        &alex,
        "We will talk every Saturday morning before breakfast.\n",
    )?;
    set(&sam, "We will talk every Monday night.\n")?;
    sync_both(&alex, &sam)?;
    sync_both(&alex, &sam)?;

    let shown = text(&alex, "talks")?;
    assert_eq!(
        shown,
        text(&sam, "talks")?,
        "both devices show the same text"
    );
    for version in [
        "Alex\nWe will talk every Saturday morning before breakfast.\n",
        "Sam\nWe will talk every Monday night.\n",
    ] {
        assert!(shown.contains(version), "{shown}");
    }
    // No word that neither wrote.
    let allowed = "We will talk every Sunday evening after dinner Saturday morning before \
                   breakfast Monday night. dinner. breakfast.";
    for line in shown.lines().filter(|l| {
        !l.starts_with("<<<<<<<") && !l.starts_with("=======") && !l.starts_with(">>>>>>>")
    }) {
        for word in line.split_whitespace() {
            assert!(
                allowed.split_whitespace().any(|w| w == word),
                "{word:?} in {shown}"
            );
        }
    }
    for device in [&alex, &sam] {
        let note = json(device, &["note", "show", "talks", "--json"])?;
        assert_eq!(
            note["conflicts"].as_array().map(Vec::len),
            Some(1),
            "{note}"
        );
        let list = json(device, &["note", "list", "--json"])?;
        assert_eq!(list[0]["conflicts"], 1, "{list}");
        assert!(device
            .ok(&["note", "list"])?
            .contains("[conflict to resolve]"));
        let history = json(device, &["note", "history", "talks", "--json"])?;
        let in_conflict = history
            .as_array()
            .context("array")?
            .iter()
            .filter(|h| h["conflict"] == true)
            .count();
        assert_eq!(in_conflict, 2, "{history}");
    }
    let stderr = String::from_utf8_lossy(&sam.run(&["note", "show", "talks"])?.stderr).into_owned();
    assert!(stderr.contains("conflict to resolve"), "{stderr}");

    // Saving the text with its marker lines is refused; keeping one version resolves it.
    let refused = run_with(&sam, &["note", "set", "talks", "--file", "-"], &shown, &[])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("marker lines"));
    set(
        &sam,
        "We will talk every Saturday morning before breakfast.\n",
    )?;
    sync_both(&sam, &alex)?;
    for device in [&alex, &sam] {
        assert_eq!(
            text(device, "talks")?,
            "We will talk every Saturday morning before breakfast.\n"
        );
        let note = json(device, &["note", "show", "talks", "--json"])?;
        assert_eq!(note["conflicts"], Value::Array(vec![]));
    }
    Ok(())
}
