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
