//! Command-line behaviour of `candor` that needs no relay: identity creation, key file
//! permissions, and clear errors before pairing.

#![allow(clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn candor(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run candor")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn init_creates_private_keys_once_and_refuses_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let first = candor(&home, &["init", "--name", "Robin"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let key = std::fs::read(home.join("identity.key")).expect("identity file");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&home.join("identity.key")), 0o600);
    assert_eq!(mode(&home), 0o700);

    let second = candor(&home, &["init", "--name", "Someone else"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("nothing changed"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        std::fs::read(home.join("identity.key")).expect("identity file"),
        key
    );
}

#[test]
fn commands_before_init_or_pairing_explain_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let out = candor(&home, &["log", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("candor init"), "{}", stderr(&out));

    assert!(candor(&home, &["init", "--name", "Robin"]).status.success());
    let out = candor(&home, &["log", "add", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not in a space yet"),
        "{}",
        stderr(&out)
    );
    let out = candor(&home, &["space", "join", "candor-invite:AAAA"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invite is damaged"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn world_readable_key_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    assert!(candor(&home, &["init", "--name", "Robin"]).status.success());
    std::fs::set_permissions(
        home.join("identity.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let out = candor(&home, &["log", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("0600"), "{}", stderr(&out));
}

#[test]
fn the_store_directory_and_its_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    assert!(candor(&home, &["init", "--name", "Robin"]).status.success());
    assert!(candor(&home, &["journal", "add", "a private line"])
        .status
        .success());
    let mut checked = 0;
    let mut pending = vec![home.join("store")];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(
                std::fs::read_dir(&path)
                    .expect("read_dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
        checked += 1;
    }
    assert!(checked > 2);
}

/// An editor script that records its environment in `env.txt` beside the home, then (if
/// `hang`) waits until killed.
fn editor_script(dir: &std::path::Path, hang: bool) -> std::path::PathBuf {
    let script = dir.join("editor.sh");
    let env_file = dir.join("env.txt");
    let wait = if hang {
        "exec sleep 600"
    } else {
        "echo edited >> \"$1\""
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {tmp}.part\nmv {tmp}.part {tmp}\n{wait}\n",
            tmp = env_file.display()
        ),
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    script
}

fn edit_files(home: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(home)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".edit-"))
        .collect()
}

#[test]
fn the_editor_never_sees_candor_variables_and_its_file_goes_on_sigterm_and_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    assert!(candor(&home, &["init", "--name", "Robin"]).status.success());
    let added = candor(&home, &["journal", "add", "words to edit"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let listed = candor(&home, &["journal", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = listed[0]["id"].as_str().expect("id").to_string();

    // The editor runs with a CANDOR_ variable set for candor: it must not inherit it.
    let script = editor_script(dir.path(), false);
    let out = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("--home")
        .arg(&home)
        .args(["journal", "edit", &id])
        .env("VISUAL", &script)
        .env("CANDOR_PASSPHRASE", "not-for-the-editor")
        .output()
        .expect("run candor");
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env");
    assert!(!env.contains("CANDOR_"), "{env}");
    assert!(edit_files(&home).is_empty());

    // Killed politely while the editor is open: no plaintext stays behind.
    std::fs::remove_file(dir.path().join("env.txt")).expect("rm");
    let script = editor_script(dir.path(), true);
    let mut child = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("--home")
        .arg(&home)
        .args(["journal", "edit", &id])
        .env("VISUAL", &script)
        .spawn()
        .expect("run candor");
    let started = std::time::Instant::now();
    while !dir.path().join("env.txt").exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "editor never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(edit_files(&home).len(), 1);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(edit_files(&home).is_empty(), "{:?}", edit_files(&home));

    // Left behind by a process that no longer exists (kill -9): removed at the next start.
    let stale = home.join(".edit-2147483632-abcdef");
    std::fs::create_dir(&stale).expect("mkdir");
    std::fs::write(stale.join("text.md"), "plaintext").expect("write");
    assert!(candor(&home, &["journal", "list"]).status.success());
    assert!(!stale.exists());
}
