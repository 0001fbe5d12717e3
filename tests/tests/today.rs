//! End-to-end tests of the everyday flow across two devices and the real relay: `candor today`
//! (what needs me, what is new since I last looked), promises awaiting an answer, the promise
//! flow (missed then agreed anew, answers given once, log lines naming what they act on),
//! shared goals, and a partner's leaving.

use anyhow::{Context as _, Result};
use candor_tests::{pair, sync_both, Device, Relay};
use serde_json::Value;

fn json(device: &Device, args: &[&str]) -> Result<Value> {
    let out = device.ok(args)?;
    serde_json::from_str(&out).with_context(|| format!("{args:?} did not print JSON: {out}"))
}

fn id(out: String) -> String {
    out.trim().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn today_shows_what_waits_for_me_and_what_is_new_since_i_last_looked() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let quiet = alex.ok(&["today"])?;
    assert!(quiet.contains("Nothing waits for you"), "{quiet}");

    // Alex promises and marks it kept; Sam asks for support and proposes an agreement.
    let promise = id(alex.ok(&["promise", "add", "Call at lunch"])?);
    alex.ok(&["promise", "kept", &promise])?;
    let request = id(sam.ok(&["support", "request", "talk", "--note", "after dinner?"])?);
    let proposal = id(sam.ok(&[
        "agreement",
        "propose",
        "Share plans a day ahead",
        "--review",
        "2030-01-01",
    ])?);
    let reviewed = id(alex.ok(&[
        "agreement",
        "propose",
        "Phones away at dinner",
        "--review",
        "2020-01-01",
    ])?);
    let goal = id(sam.ok(&["goal", "add", "Walk together twice", "--together"])?);
    let own_goal = id(sam.ok(&["goal", "add", "Read a chapter"])?);
    alex.ok(&["goal", "add", "Cook on Friday"])?;
    sam.ok(&["log", "add", "Thinking of you"])?;
    sync_both(&alex, &sam)?;
    sync_both(&sam, &alex)?;
    sam.ok(&["agreement", "accept", &reviewed])?;

    // Sam: the kept promise waits for Sam's answer, in `promise list` too.
    let waiting = json(&sam, &["promise", "list", "--json"])?;
    assert_eq!(ids(&waiting), vec![promise.clone()]);
    assert_eq!(waiting[0]["status"], "kept");
    let listed = sam.ok(&["promise", "list"])?;
    assert!(listed.contains("waiting for your answer"), "{listed}");

    let today = json(&sam, &["today", "--json"])?;
    assert_eq!(ids(&today["promises_to_confirm"]), vec![promise.clone()]);
    assert_eq!(today["promises_to_confirm"][0]["text"], "Call at lunch");
    assert_eq!(today["promises_to_confirm"][0]["status"], "kept");
    assert_eq!(
        today["support_to_answer"],
        Value::Array(vec![]),
        "Sam asked"
    );
    assert_eq!(
        today["agreements_proposed"],
        Value::Array(vec![]),
        "Sam proposed it"
    );
    assert_eq!(ids(&today["agreements_to_review"]), vec![reviewed.clone()]);
    assert_eq!(
        ids(&today["goals"]),
        vec![goal.clone(), own_goal.clone()],
        "Sam's goals and the shared one, not Alex's own"
    );
    assert_eq!(today["goals"][0]["together"], true);
    assert_eq!(today["partner_name"], "Alex");
    // Alex's promise, its kept status, the agreement and the goal: the introduction and
    // checkpoints are not entries to a person.
    assert_eq!(today["partner_new_count"], 4, "{today:#}");
    let new_kinds: Vec<&str> = today["partner_new"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(new_kinds, ["promise", "promise-kept", "agreement", "goal"]);
    // Looked at: the next look shows nothing new, until Alex writes again.
    let again = json(&sam, &["today", "--json"])?;
    assert_eq!(again["partner_new_count"], 0);
    assert_eq!(again["partner_new"], Value::Array(vec![]));

    // Alex: Sam's request and proposal wait for Alex; the new entries are Sam's.
    let text = alex.ok(&["today"])?;
    assert!(text.contains("Waiting for your answer:"), "{text}");
    assert!(text.contains("Sam asks for talk: after dinner?"), "{text}");
    assert!(text.contains("Share plans a day ahead"), "{text}");
    assert!(
        text.contains("New from Sam since you last looked"),
        "{text}"
    );
    assert!(text.contains("Thinking of you"), "{text}");
    assert!(text.contains("Cook on Friday"), "Alex's goal: {text}");
    let today = json(&alex, &["today", "--json"])?;
    assert_eq!(ids(&today["support_to_answer"]), vec![request.clone()]);
    assert_eq!(ids(&today["agreements_proposed"]), vec![proposal.clone()]);
    assert_eq!(
        today["partner_new_count"], 0,
        "the text form marked them seen"
    );

    // Answering clears them.
    alex.ok(&["support", "reply", &request, "Yes, after dinner"])?;
    alex.ok(&["agreement", "accept", &proposal])?;
    sam.ok(&["promise", "confirm", &promise])?;
    let alex_today = json(&alex, &["today", "--json"])?;
    assert_eq!(alex_today["support_to_answer"], Value::Array(vec![]));
    assert_eq!(alex_today["agreements_proposed"], Value::Array(vec![]));
    assert_eq!(
        json(&sam, &["today", "--json"])?["promises_to_confirm"],
        Value::Array(vec![])
    );
    assert_eq!(
        json(&sam, &["promise", "list", "--json"])?,
        Value::Array(vec![]),
        "confirmed: no longer listed by default"
    );
    Ok(())
}

#[test]
fn missed_then_agreed_anew_answers_once_and_log_lines_name_what_they_act_on() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let promise = id(alex.ok(&["promise", "add", "Walk on Sunday"])?);
    alex.ok(&["promise", "missed", &promise, "--note", "it rained"])?;
    let err = alex.fails(&["promise", "kept", &promise])?;
    assert!(err.contains("renegotiate"), "{err}");
    sync_both(&alex, &sam)?;
    sam.ok(&["promise", "dispute", &promise, "--note", "we could have"])?;
    let err = sam.fails(&["promise", "confirm", &promise])?;
    assert!(err.contains("already answered"), "{err}");
    let err = sam.fails(&["promise", "dispute", &promise, "--note", "twice"])?;
    assert!(err.contains("already answered"), "{err}");
    sam.ok(&["ack", &promise])?;
    let err = sam.fails(&["ack", &promise])?;
    assert!(err.contains("already acknowledged"), "{err}");
    sync_both(&sam, &alex)?;

    // Missed, then agreed anew: open again, with the new words, and then kept.
    alex.ok(&["promise", "renegotiate", &promise, "Walk on Saturday"])?;
    let open = json(&alex, &["promise", "list", "--json"])?;
    assert_eq!(open[0]["status"], "open");
    assert_eq!(open[0]["text"], "Walk on Saturday");
    alex.ok(&["promise", "kept", &promise])?;
    sync_both(&alex, &sam)?;
    sam.ok(&["promise", "confirm", &promise])?;
    sync_both(&sam, &alex)?;
    for device in [&alex, &sam] {
        let all = json(device, &["promise", "list", "--all", "--json"])?;
        assert_eq!(all[0]["status"], "kept");
        assert_eq!(all[0]["confirmation"]["state"], "confirmed");
        assert!(
            all[0]["history"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|h| h["invalid"].is_null()),
            "{all:#}"
        );
    }

    // Every ledger line names the promise it acts on, by its text.
    let entries = sam.entries()?;
    for kind in [
        "promise-missed",
        "disputed",
        "ack",
        "promise-renegotiated",
        "promise-kept",
        "confirmed",
    ] {
        let entry = entries
            .iter()
            .find(|e| e["kind"] == kind)
            .with_context(|| format!("no {kind} entry"))?;
        assert_eq!(entry["about"]["kind"], "promise", "{entry:#}");
        assert_eq!(entry["about"]["text"], "Walk on Sunday", "{entry:#}");
        assert_eq!(entry["about"]["id"], promise.as_str());
    }
    let lines = sam.ok(&["log", "list"])?;
    let confirmed = lines
        .lines()
        .find(|l| l.contains(" confirmed "))
        .context("a confirmed line")?;
    assert!(
        confirmed.contains("[promise \"Walk on Sunday\"]"),
        "{confirmed}"
    );
    Ok(())
}

#[test]
fn shared_goals_are_moved_by_both_and_list_whose_updates_are_whose() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    let shared = id(alex.ok(&["goal", "add", "Walk together twice", "--together"])?);
    let own = id(alex.ok(&["goal", "add", "Call my sister"])?);
    sync_both(&alex, &sam)?;
    sam.ok(&["goal", "progress", &shared, "first walk, by the river"])?;
    let err = sam.fails(&["goal", "progress", &own, "not mine to move"])?;
    assert!(err.contains("your partner's goal"), "{err}");
    sync_both(&sam, &alex)?;
    alex.ok(&["goal", "done", &shared, "--note", "second walk"])?;
    sync_both(&alex, &sam)?;

    for (device, me) in [(&alex, "me"), (&sam, "partner")] {
        let list = json(device, &["goal", "list", "--json"])?;
        let goal = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["id"] == shared.as_str())
            .context("the shared goal")?;
        assert_eq!(goal["together"], true);
        assert_eq!(goal["status"], "done");
        assert_eq!(goal["author"], me);
        let updates: Vec<(&str, &str)> = goal["updates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| {
                (
                    u["author"].as_str().unwrap_or(""),
                    u["what"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let partner = if me == "me" { "partner" } else { "me" };
        assert_eq!(updates, vec![(partner, "progress"), (me, "done")]);
        assert!(goal["updates"][0]["invalid"].is_null());
    }
    let text = sam.ok(&["goal", "list"])?;
    let progress = text
        .lines()
        .find(|l| l.contains("first walk"))
        .context("the progress line")?;
    assert!(progress.contains("me "), "Sam wrote it: {progress}");
    assert!(text.contains("both"), "a shared goal says so: {text}");
    Ok(())
}

#[test]
fn a_partner_leaving_is_a_notice_at_the_next_sync_and_in_space_show() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    sam.ok(&["log", "add", "one"])?;
    sam.ok(&["log", "add", "two"])?;
    sync_both(&sam, &alex)?;
    sam.ok(&["space", "leave", "--note", "I need time apart"])?;

    let out = alex.run(&["sync"])?;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The leaving record is bookkeeping, not an entry to count.
    assert!(stdout.contains("pulled 0"), "{stdout}");
    assert!(
        stderr.contains("your partner left the space"),
        "the sync says so: {stderr}"
    );
    let show = alex.ok(&["space", "show"])?;
    assert!(show.contains("left the space"), "{show}");
    assert!(show.contains("I need time apart"), "{show}");
    let shown = json(&alex, &["space", "show", "--json"])?;
    assert_eq!(shown["partner_left"]["note"], "I need time apart");
    let today = json(&alex, &["today", "--json"])?;
    assert_eq!(today["partner_left"]["note"], "I need time apart");
    // The next sync does not repeat it.
    let out = alex.run(&["sync"])?;
    assert!(!String::from_utf8_lossy(&out.stderr).contains("left the space"));
    Ok(())
}
