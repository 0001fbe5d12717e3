//! "`shared/` does no I/O", checked: no dependency that does I/O, and no call in the source
//! that reads a clock, touches a file, socket or thread, or draws randomness.
//!
//! The one exception lives inside a dependency: Automerge draws a throwaway actor id from the
//! OS random number generator whenever it creates or loads a document. Candor replaces it with
//! the device's own actor (derived from its device key) before any change is made, so no random
//! byte ever reaches a change, a snapshot or an entry (`notes::tests::ids_and_actors_are_stable_and_distinct`
//! and the convergence property tests hold that). The check below names that exception.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Crates that would let `shared/` do I/O or draw randomness of its own.
const BANNED_DEPENDENCIES: [&str; 9] = [
    "tokio",
    "quinn",
    "sled",
    "mio",
    "socket2",
    "getrandom",
    "rand",
    "uuid",
    "tracing",
];

/// What the source must never call (test modules included: they pass time and bytes in too).
const BANNED_CALLS: [&str; 12] = [
    "getrandom",
    "OsRng",
    "thread_rng",
    "SystemTime",
    "Instant::now",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "std::env",
    "tokio",
    "ActorId::random",
];

fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once(['.', '=', ' ']) {
                if !name.is_empty() && !name.starts_with('#') {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

#[test]
fn shared_depends_on_nothing_that_does_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"automerge".to_string()), "{deps:?}");
    for banned in BANNED_DEPENDENCIES {
        assert!(
            !deps.iter().any(|d| d == banned),
            "shared/ must not depend on {banned}"
        );
    }
}

/// The one clock read the source may make: `std::time::Instant` has no constructor, so the
/// simulation (tests only) reads the clock once for its epoch and from then on advances its
/// clock by simulated durations alone. Each exception must occur exactly once in its file.
const ALLOWED_CALLS: [(&str, &str); 1] = [("src/sync/sim.rs", "Instant::now")];

#[test]
fn shared_source_reads_no_clock_file_socket_or_randomness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 20);
    for (path, text) in &files {
        let allowed: Vec<&str> = ALLOWED_CALLS
            .iter()
            .filter(|(file, _)| path.ends_with(file))
            .map(|(_, call)| *call)
            .collect();
        for call in &allowed {
            assert_eq!(text.matches(call).count(), 1, "{path}: `{call}` once only");
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for banned in BANNED_CALLS.iter().filter(|b| !allowed.contains(b)) {
                assert!(
                    !code.contains(banned),
                    "{path}:{}: `{banned}` in shared/ (time and randomness are passed in)",
                    n + 1
                );
            }
        }
    }
}
