//! The `candor-relay` binary: its stdout contract, `fingerprint`, and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_candor-relay");

fn relay(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("CANDOR_RELAY_LISTEN")
        .env_remove("CANDOR_RELAY_DATA")
        .output()
        .unwrap()
}

fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn fingerprint(data: &Path) -> String {
    let out = relay(&["fingerprint", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "one line only: {stdout:?}");
    assert!(is_fingerprint(line), "{line:?}");
    line.to_string()
}

#[test]
fn fingerprint_is_created_once_and_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay");
    let first = fingerprint(&data);
    assert!(data.join("cert.der").is_file() && data.join("key.der").is_file());
    assert_eq!(fingerprint(&data), first);
}

#[test]
fn help_teaches_and_errors_exit_1() {
    let out = relay(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Examples:") && help.contains("candor-relay serve"));
    let out = relay(&["serve", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--listen") && help.contains("CANDOR_RELAY_DATA"));

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = relay(&["fingerprint", "--data", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr).unwrap().contains("error:"));
}

#[cfg(unix)]
#[test]
fn serve_prints_address_and_fingerprint_then_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("CANDOR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("candor-relay listening on ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let printed = line
        .strip_prefix("fingerprint ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected second line {line:?}"));
    assert!(is_fingerprint(printed), "{printed:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let exit = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(exit) => exit.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the relay did not stop after SIGTERM");
        }
    };
    waiter.join().unwrap();
    assert!(exit.success(), "{exit:?}");
    // Nothing else was printed on stdout, and the fingerprint matches the stored certificate.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "");
    assert_eq!(fingerprint(&data), printed);
}

#[test]
fn a_store_password_on_the_command_line_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        dir.path().to_str().unwrap(),
        "--store",
        "postgres://candor:hunter2@127.0.0.1:1/candor",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must not carry a password"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(out.stdout.is_empty());
}
