//! End-to-end tests of local time: what a person types is read in the device's time zone (`TZ`),
//! times are shown in it, and `--json` gives RFC 3339 with the local offset.

use anyhow::{bail, Context as _, Result};
use candor_tests::{pair, Device, Relay};
use serde_json::Value;

/// Runs `candor ARGS` with `TZ` set; must succeed; returns stdout.
fn in_tz(device: &Device, tz: &str, args: &[&str]) -> Result<String> {
    let out = device.command(args).env("TZ", tz).output()?;
    if !out.status.success() {
        bail!(
            "TZ={tz} candor {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_in(device: &Device, tz: &str, args: &[&str]) -> Result<Value> {
    let out = in_tz(device, tz, args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} did not print JSON: {out}"))
}

const NEW_YORK: &str = "America/New_York";
const KOLKATA: &str = "Asia/Kolkata";

#[test]
fn typed_times_are_local_and_shown_in_the_devices_zone() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, _sam) = pair(tmp.path(), &relay)?;

    // A plan typed in New York at 18:00 is 23:00 UTC and 04:30 the next day in Kolkata.
    in_tz(
        &alex,
        NEW_YORK,
        &["plan", "add", "2030-12-05 18:00", "Dinner"],
    )?;
    let plans = json_in(&alex, "UTC", &["plan", "list", "--json"])?;
    assert_eq!(plans[0]["when"], "2030-12-05T23:00:00.000Z");
    let plans = json_in(&alex, NEW_YORK, &["plan", "list", "--json"])?;
    assert_eq!(plans[0]["when"], "2030-12-05T18:00:00.000-05:00");
    let listed = in_tz(&alex, KOLKATA, &["plan", "list"])?;
    assert!(listed.contains("2030-12-06 04:30"), "{listed}");

    // A date alone in a range is the whole local day.
    let to = |tz: &str, day: &str| -> Result<usize> {
        Ok(
            json_in(&alex, tz, &["plan", "list", "--to", day, "--json"])?
                .as_array()
                .map_or(0, Vec::len),
        )
    };
    assert_eq!(to(NEW_YORK, "2030-12-05")?, 1, "--to includes that evening");
    assert_eq!(
        to(KOLKATA, "2030-12-05")?,
        0,
        "in Kolkata it is already the 6th"
    );
    assert_eq!(to(KOLKATA, "2030-12-06")?, 1);
    let from = json_in(
        &alex,
        NEW_YORK,
        &["plan", "list", "--from", "2030-12-06", "--json"],
    )?;
    assert_eq!(from.as_array().map(Vec::len), Some(0));

    // A due date alone is the end of that local day.
    in_tz(
        &alex,
        NEW_YORK,
        &["promise", "add", "Fix the bike", "--due", "2030-01-01"],
    )?;
    let promises = json_in(&alex, NEW_YORK, &["promise", "list", "--json"])?;
    assert_eq!(promises[0]["due"], "2030-01-01T23:59:59.999-05:00");
    let promises = json_in(&alex, KOLKATA, &["promise", "list", "--json"])?;
    assert_eq!(promises[0]["due"], "2030-01-02T10:29:59.999+05:30");
    Ok(())
}

#[test]
fn an_eta_is_a_local_time_and_a_past_due_date_needs_a_yes() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, _sam) = pair(tmp.path(), &relay)?;

    let said = in_tz(
        &alex,
        KOLKATA,
        &["checkin", "Leaving now", "--eta", "18:00"],
    )?;
    assert!(said.contains("home by"), "{said}");
    let checkin = |tz: &str| -> Result<Value> {
        json_in(&alex, tz, &["log", "list", "--json"])?
            .as_array()
            .and_then(|a| a.iter().find(|e| e["kind"] == "checkin").cloned())
            .context("checkin")
    };
    let local = checkin(KOLKATA)?;
    assert_eq!(local["eta"], "18:00");
    let at = local["eta_at"].as_str().context("eta_at")?;
    assert!(at.ends_with("T18:00:00+05:30"), "{at}");
    // The same instant, read in UTC: 12:30.
    let utc = checkin("UTC")?;
    assert_eq!(utc["eta"], "12:30");
    assert!(utc["eta_at"]
        .as_str()
        .is_some_and(|a| a.ends_with("T12:30:00Z")));

    // A due date in the past is refused without --yes (no terminal to ask at), kept with it.
    let out = alex
        .command(&["promise", "add", "Call mum", "--due", "2020-01-01"])
        .env("TZ", NEW_YORK)
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in the past") && stderr.contains("--yes"),
        "{stderr}"
    );
    assert_eq!(
        json_in(&alex, NEW_YORK, &["promise", "list", "--json"])?
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    in_tz(
        &alex,
        NEW_YORK,
        &["promise", "add", "Call mum", "--due", "2020-01-01", "--yes"],
    )?;
    let promises = json_in(&alex, NEW_YORK, &["promise", "list", "--all", "--json"])?;
    assert_eq!(promises[0]["due"], "2020-01-01T23:59:59.999-05:00");
    Ok(())
}
