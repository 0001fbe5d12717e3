//! End-to-end tests of the trust ledger across two devices and the real relay.

use anyhow::{Context as _, Result};
use candor_tests::{pair, sync_both, Device, Relay};
use serde_json::Value;

fn json(device: &Device, args: &[&str]) -> Result<Value> {
    let out = device.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} did not print JSON: {out}"))
}

#[test]
fn a_promise_lives_its_whole_life_across_both_devices() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let id = alex.ok(&[
        "promise",
        "add",
        "Call at lunch every day",
        "--due",
        "2030-01-01",
    ])?;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "promise add prints the id: {id}");
    sync_both(&alex, &sam)?;
    let open = json(&sam, &["promise", "list", "--json"])?;
    assert_eq!(open[0]["status"], "open");
    assert_eq!(open[0]["promiser"], "partner");

    // Only the promiser changes status; only the partner confirms.
    let err = sam.fails(&["promise", "kept", &id])?;
    assert!(err.contains("only the partner who made a promise"), "{err}");
    assert!(sam
        .fails(&["promise", "confirm", &id])?
        .contains("nothing to answer yet"));
    alex.ok(&["promise", "renegotiate", &id, "Call at lunch on weekdays"])?;
    alex.ok(&["promise", "kept", &id, "--note", "every weekday this week"])?;
    assert!(alex
        .fails(&["promise", "confirm", &id])?
        .contains("only your partner"));
    assert!(alex
        .fails(&["promise", "missed", &id])?
        .contains("already closed"));
    sync_both(&alex, &sam)?;
    sam.ok(&["promise", "confirm", &id[..10]])?;
    sync_both(&alex, &sam)?;

    for device in [&alex, &sam] {
        let all = json(device, &["promise", "list", "--all", "--json"])?;
        let promise = &all[0];
        assert_eq!(promise["status"], "kept");
        assert_eq!(promise["text"], "Call at lunch on weekdays");
        assert_eq!(promise["renegotiated"], 1);
        assert_eq!(promise["confirmation"]["state"], "confirmed");
        assert_eq!(promise["history"].as_array().map(Vec::len), Some(4));
        assert!(promise["history"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|h| h["invalid"].is_null()));
        // Closed promises are not listed by default.
        assert_eq!(
            json(device, &["promise", "list", "--json"])?,
            Value::Array(vec![])
        );
    }
    // Sam's device has verified Alex's entries, and says so in Alex's log list.
    sam.ok(&["log", "add", "thank you"])?;
    sync_both(&alex, &sam)?;
    let entries = alex.entries()?;
    let promise_entry = entries
        .iter()
        .find(|e| e["id"] == id.as_str())
        .context("promise entry")?;
    assert_eq!(promise_entry["kind"], "promise");
    assert_eq!(promise_entry["seen_by_partner"], true);
    Ok(())
}

#[test]
fn agreements_support_plans_and_the_summary_agree_on_both_devices() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let agreement = sam.ok(&[
        "agreement",
        "propose",
        "Share plans a day ahead",
        "--review",
        "2020-01-01",
    ])?;
    let agreement = agreement.trim().to_string();
    assert!(sam
        .fails(&["agreement", "accept", &agreement])?
        .contains("only your partner"));
    sync_both(&sam, &alex)?;
    alex.ok(&["agreement", "accept", &agreement])?;
    sync_both(&alex, &sam)?;
    for device in [&alex, &sam] {
        let list = json(device, &["agreement", "list", "--json"])?;
        assert_eq!(list[0]["state"], "accepted");
        assert_eq!(
            list[0]["due_for_review"], true,
            "its review date has passed"
        );
    }

    let request = sam.ok(&["support", "request", "talk", "--note", "after dinner?"])?;
    alex.ok(&["checkin", "Leaving work now", "--eta", "19:30"])?;
    alex.ok(&["plan", "add", "2030-05-01 18:00", "Dinner with my sister"])?;
    alex.ok(&[
        "plan",
        "add",
        "2030-05-02 18:00",
        "Therapy session",
        "--busy-only",
    ])?;
    sync_both(&sam, &alex)?;
    alex.ok(&[
        "support",
        "reply",
        request.trim(),
        "Yes, let's walk after dinner",
    ])?;
    let checkin = sam
        .entries()?
        .into_iter()
        .find(|e| e["kind"] == "checkin")
        .context("checkin")?;
    assert_eq!(checkin["eta"], "19:30");
    sync_both(&alex, &sam)?;

    let plans = json(&sam, &["plan", "list", "--json"])?;
    assert_eq!(plans[0]["text"], "Dinner with my sister");
    assert_eq!(plans[1]["busy_only"], true);
    assert!(
        plans[1]["text"].is_null(),
        "busy-only plans share no details"
    );
    assert_eq!(
        json(&alex, &["plan", "list", "--json"])?[1]["text"],
        "Therapy session"
    );
    let support = json(&sam, &["support", "list", "--json"])?;
    assert_eq!(support[0]["replies"].as_array().map(Vec::len), Some(1));

    let summary_alex = json(&alex, &["summary", "--weeks", "2", "--json"])?;
    let summary_sam = json(&sam, &["summary", "--weeks", "2", "--json"])?;
    assert_eq!(summary_alex, summary_sam);
    let this_week = &summary_alex[1];
    assert_eq!(this_week["checkins"], 1);
    assert_eq!(this_week["support_answered"], 1);
    assert!(alex.ok(&["summary"])?.contains("Promises kept per week"));

    // Leaving keeps the full local copy and stops writing.
    sam.ok(&["space", "leave"])?;
    assert!(sam
        .fails(&["log", "add", "anything"])?
        .contains("you left this space"));
    assert!(sam.entries()?.len() >= 6);
    alex.ok(&["sync"])?;
    assert!(alex.entries()?.iter().any(|e| e["kind"] == "left"));
    Ok(())
}
