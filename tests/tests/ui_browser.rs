//! `candor ui` in real browsers: two partners, each with their own home, `candor ui` process
//! and headless Chromium, pair through the pages alone and use every screen. Every screen is
//! photographed at a laptop and a phone size (target/ui-screenshots/), audited with axe-core
//! (no serious or critical violation) and checked for console errors.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use anyhow::Result;
use candor_tests::browser::{Browser, Chromedriver, Ui};
use candor_tests::Relay;

const SAM_PASSPHRASE: &str = "purple kettle under rain";
const SECRET: &str = "a private thought about trust";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_partners_use_candor_in_their_browsers() -> Result<()> {
    let root = tempfile::tempdir()?;
    let relay = Relay::start(&root.path().join("relay"))?;
    let alex_ui = Ui::start(&root.path().join("alex"))?;
    let sam_ui = Ui::start(&root.path().join("sam"))?;
    let driver = Chromedriver::start()?;
    let alex = Browser::open(&driver).await?;
    let sam = Browser::open(&driver).await?;

    // Onboarding, through the pages alone.
    alex.goto(&alex_ui.launch).await?;
    assert_eq!(alex.path().await?, "/welcome");
    alex.check_screen("welcome").await?;
    alex.fill("name", "Alex").await?;
    alex.press("Start").await?;
    alex.wait_for_path("/pair").await?;
    alex.check_screen("pair").await?;
    alex.fill("relay", &relay.addr).await?;
    alex.fill("fingerprint", &relay.fingerprint).await?;
    alex.press("Create our space").await?;
    alex.wait_for("//textarea[@id='invite-text']").await?;
    alex.check_screen("invite").await?;
    let invite = alex
        .client
        .find(fantoccini::Locator::Id("invite-text"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    assert!(invite.starts_with("candor-invite:"), "{invite}");

    sam.goto(&sam_ui.launch).await?;
    sam.fill("name", "Sam").await?;
    sam.fill("passphrase", SAM_PASSPHRASE).await?;
    sam.wait_for("//p[@id='strength' and contains(., 'strong')]")
        .await?;
    sam.fill("passphrase_again", SAM_PASSPHRASE).await?;
    sam.press("Start").await?;
    sam.wait_for_path("/pair").await?;
    sam.fill("invite", &invite).await?;
    sam.press("Join").await?;
    sam.wait_for_path("/safety").await?;
    sam.check_screen("safety").await?;
    // Alex's invite page moves on by itself once Sam has joined.
    alex.wait_for_path("/safety").await?;
    let number = |text: String| {
        text.lines()
            .find(|l| l.chars().filter(char::is_ascii_digit).count() >= 30)
            .map(str::to_string)
    };
    let alex_number = number(alex.text().await?);
    assert!(alex_number.is_some());
    assert_eq!(
        alex_number,
        number(sam.text().await?),
        "both see one safety number"
    );

    // A check-in written in one browser appears live in the other.
    alex.goto(&alex_ui.at("/today")).await?;
    sam.goto(&sam_ui.at("/today")).await?;
    alex.fill("entry", "Running late, home by 19:30").await?;
    alex.choose("kind", "checkin").await?;
    alex.press("Share").await?;
    alex.wait_for("//section[@id='timeline']//p[contains(., 'Running late')]")
        .await?;
    sam.wait_for("//section[@id='timeline']//p[contains(., 'Running late')]")
        .await?;
    sam.check_screen("today").await?;
    alex.check_screen("today-writer").await?;

    // A promise made in one browser, confirmed in the other.
    alex.goto(&alex_ui.at("/promises")).await?;
    alex.fill("promise-text", "Call when I leave work").await?;
    alex.press("Make this promise").await?;
    alex.press("Kept").await?;
    sam.wait_for("//section[@id='needs']//q[contains(., 'Call when I leave work')]")
        .await?;
    sam.check_screen("today-needs-you").await?;
    sam.press("Confirm").await?;
    alex.wait_for("//section[@id='promise-list']//p[contains(., 'confirmed')]")
        .await?;
    alex.check_screen("promises").await?;

    // The journal never appears in the partner's browser.
    sam.goto(&sam_ui.at("/journal")).await?;
    sam.fill("journal-text", SECRET).await?;
    sam.press("Keep it in my journal").await?;
    sam.wait_for(&format!(
        "//section[@id='journal-entries']//p[contains(., '{SECRET}')]"
    ))
    .await?;
    sam.check_screen("journal").await?;

    // The other screens.
    alex.goto(&alex_ui.at("/plans")).await?;
    alex.fill("plan-text", "Dinner with my sister").await?;
    alex.client
        .execute(
            "document.getElementById('plan-when').value = arguments[0];",
            vec![serde_json::json!(tomorrow_evening())],
        )
        .await?;
    alex.press("Share plan").await?;
    alex.wait_for("//section[@id='week-plans']//li[contains(., 'Dinner with my sister')]")
        .await?;
    alex.check_screen("plans").await?;
    alex.goto(&alex_ui.at("/week")).await?;
    alex.fill("goal", "Share my plans each morning").await?;
    alex.press("Set goal").await?;
    alex.wait_for("//section[@id='goals']//p[contains(., 'Share my plans')]")
        .await?;
    alex.check_screen("week").await?;
    alex.goto(&alex_ui.at("/settings")).await?;
    alex.check_screen("settings").await?;
    // A verifiable record of one entry, saved from the page (the partner's device countersigns
    // it first: the page says so, and the second try writes the file).
    let record = root.path().join("for-our-counsellor.json");
    let record_path = record.display().to_string();
    save_record(&alex, "Running late", &record_path).await?;
    if !record.exists() {
        let deadline = std::time::Instant::now() + candor_tests::browser::WAIT;
        while !record.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            alex.goto(&alex_ui.at("/settings")).await?;
            save_record(&alex, "Running late", &record_path).await?;
        }
    }
    let saved = std::fs::read_to_string(&record)?;
    assert!(
        saved.contains("Running late"),
        "the record holds the chosen entry"
    );
    assert!(!saved.contains(SECRET), "the record holds nothing private");
    alex.wait_for("//p[contains(@class, 'flash') and contains(., 'Saved the record')]")
        .await?;
    alex.press("Check our record").await?;
    alex.wait_for("//p[contains(., 'Everything checks out')]")
        .await?;
    alex.check_screen("settings-verified").await?;

    // Shared notes: both edit offline (the relay is down), then see the merge.
    alex.goto(&alex_ui.at("/notes")).await?;
    alex.fill("note-name", "Our needs").await?;
    alex.choose("template", "needs").await?;
    alex.press("Start note").await?;
    alex.wait_for("//textarea[@id='note-text']").await?;
    sam.goto(&sam_ui.at("/notes")).await?;
    sam.wait_for("//a[normalize-space()='Our needs']").await?;
    sam.check_screen("notes").await?;
    sam.press("Our needs").await?;
    sam.wait_for("//textarea[@id='note-text']").await?;
    let relay_addr = relay.kill();
    append_to_note(&alex, "Alex: an evening to talk each week").await?;
    append_to_note(&sam, "Sam: a walk together on Sundays").await?;
    let relay = Relay::start_on(&root.path().join("relay"), &relay_addr)?;
    for browser in [&alex, &sam] {
        wait_for_note(browser, &["an evening to talk", "a walk together"]).await?;
    }
    // Both added a line at the same place at once: each sees both versions under the name
    // of who wrote it, until one is chosen.
    for browser in [&alex, &sam] {
        browser
            .wait_for("//section[@id='conflicts']//figcaption[contains(., 'Alex wrote')]")
            .await?;
        browser
            .wait_for("//section[@id='conflicts']//figcaption[contains(., 'Sam wrote')]")
            .await?;
    }
    alex.check_screen("note-conflict").await?;
    alex.press("Keep the version Sam wrote").await?;
    alex.wait_for("//p[contains(@class, 'flash') and contains(., 'version you chose')]")
        .await?;
    let kept = note_text(&alex).await?;
    assert!(
        kept.contains("a walk together") && !kept.contains("<<<<<<<"),
        "{kept}"
    );
    alex.check_screen("note").await?;
    alex.press("History of this note").await?;
    alex.check_screen("note-history").await?;

    // Nothing of Sam's journal reached Alex's browser, on any screen.
    for path in [
        "/today",
        "/promises",
        "/plans",
        "/notes",
        "/week",
        "/journal",
        "/settings",
    ] {
        alex.goto(&alex_ui.at(path)).await?;
        let source = alex.source().await?;
        assert!(
            !source.contains(SECRET),
            "Sam's journal showed on Alex's {path}"
        );
        assert!(
            alex.console_errors().await?.is_empty(),
            "console errors on {path}"
        );
    }

    // A passphrase-protected home asks for it in the page after a restart.
    sam_ui.stop()?;
    let sam_ui = Ui::start(&root.path().join("sam"))?;
    sam.goto(&sam_ui.launch).await?;
    assert_eq!(sam.path().await?, "/unlock");
    sam.check_screen("unlock").await?;
    sam.fill("passphrase", SAM_PASSPHRASE).await?;
    sam.press("Unlock").await?;
    // Unlocking runs Argon2id: wait for the page rather than read the address at once.
    sam.wait_for_path("/today").await?;
    assert!(sam.text().await?.contains("Running late"));

    alex.close().await?;
    sam.close().await?;
    drop(relay);
    Ok(())
}

/// Adds a line at the end of the open note and saves it.
async fn append_to_note(browser: &Browser, line: &str) -> Result<()> {
    let area = browser
        .client
        .find(fantoccini::Locator::Id("note-text"))
        .await?;
    let text = area.prop("value").await?.unwrap_or_default();
    browser
        .fill("note-text", &format!("{text}\n{line}\n"))
        .await?;
    browser.press("Save").await?;
    browser.wait_for("//p[contains(@class, 'flash')]").await?;
    Ok(())
}

/// Ticks the entry holding `words` on the settings screen and saves a verifiable record of it.
async fn save_record(browser: &Browser, words: &str, path: &str) -> Result<()> {
    browser
        .client
        .find(fantoccini::Locator::XPath(&format!(
            "//label[contains(., '{words}')]/preceding-sibling::input"
        )))
        .await?
        .click()
        .await?;
    browser.fill("export-path", path).await?;
    browser.press("Save the record").await?;
    browser.wait_for("//p[contains(@class, 'flash')]").await?;
    Ok(())
}

/// The text in the open note's editor.
async fn note_text(browser: &Browser) -> Result<String> {
    let area = browser
        .client
        .find(fantoccini::Locator::Id("note-text"))
        .await?;
    Ok(area.prop("value").await?.unwrap_or_default())
}

/// Reloads the note until its text holds every one of `words` (the watchers reconnect to the
/// restarted relay with backoff).
async fn wait_for_note(browser: &Browser, words: &[&str]) -> Result<()> {
    let deadline = std::time::Instant::now() + candor_tests::browser::WAIT;
    loop {
        browser.client.refresh().await?;
        let area = browser
            .client
            .find(fantoccini::Locator::Id("note-text"))
            .await?;
        let text = area.prop("value").await?.unwrap_or_default();
        if words.iter().all(|w| text.contains(w)) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the note never showed both edits: {text:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Tomorrow at 19:00 UTC, as a datetime-local value.
fn tomorrow_evening() -> String {
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    format!(
        "{:04}-{:02}-{:02}T19:00",
        tomorrow.year(),
        u8::from(tomorrow.month()),
        tomorrow.day()
    )
}
