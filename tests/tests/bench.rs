//! The benchmark harness must keep working: `bench --quick` runs every Candor case (the
//! Syncthing peer is skipped in quick mode) against the real binaries and writes its region.

use anyhow::{Context as _, Result};
use std::process::Command;

#[test]
fn quick_benchmark_runs_every_case_and_keeps_hand_written_sections() -> Result<()> {
    // The harness finds (and if needed builds) the binaries the benchmark starts.
    candor_tests::binary("candor");
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("BENCHMARKS.md");
    std::fs::write(
        &out,
        "# Benchmarks\n\n## Hand-written\n\nkept\n\n<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n\n## Shared notes\n\nalso kept\n",
    )?;
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--quick", "--out"])
        .arg(&out)
        .output()
        .context("running bench --quick")?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bench --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let written = std::fs::read_to_string(&out)?;
    assert!(written.starts_with("# Benchmarks\n\n## Hand-written\n\nkept\n"));
    assert!(written.ends_with("<!-- bench:end -->\n\n## Shared notes\n\nalso kept\n"));
    assert!(!written.contains("old figures"));
    assert_eq!(written.matches("<!-- bench:begin -->").count(), 1);
    for row in [
        "| Ed25519 verify, batches of 256 (all cores) | **",
        "| quinn 256 B request/response, 64 in flight | **",
        "| 1. write → visible at the partner, p50",
        "| 2. sustained stream, 500 entries",
        "| 2b. the same stream written as `log import -` batches of 100",
        "| 3. catch-up of 1,000 entries",
        "| 4. relay ingest, 20 devices",
        "Not run: skipped in --quick mode.",
    ] {
        assert!(written.contains(row), "missing {row:?} in:\n{written}");
    }
    // Every measured figure is a number, not a placeholder.
    let candor = written
        .split("### Candor")
        .nth(1)
        .unwrap_or_default()
        .split("### Peer")
        .next()
        .unwrap_or_default();
    for line in candor.lines().filter(|l| {
        l.starts_with("| 1.")
            || l.starts_with("| 2.")
            || l.starts_with("| 3.")
            || l.starts_with("| 4.")
    }) {
        let figure = line.split('|').nth(2).unwrap_or_default();
        assert!(
            figure.trim() != "–"
                && figure.chars().any(|c| c.is_ascii_digit())
                && !figure.contains("NaN"),
            "no figure in {line:?}"
        );
    }
    Ok(())
}
