//! Attack tests: the real `candor` binary against a malicious relay ([`candor_tests::evil`]).
//!
//! One test per attack of SECURITY.md's threat model: each stages the attack, then asserts that
//! the devices detect it, explain it in plain words with the evidence (`candor sync` and
//! `candor verify` fail, naming the entries), and that what they hold is not corrupted — plus one
//! test that honest use through the same relay never raises an alarm.

use anyhow::{anyhow, ensure, Context as _, Result};
use candor_shared::entry::{Entry, HEADER_LEN, SIGNATURE_LEN};
use candor_shared::{DeviceKey, EntryHash, SpaceId};
use candor_tests::evil::{Attack, DeviceKeys, EvilRelay};
use candor_tests::Device;
use std::process::Output;

/// Two paired devices on a (so far honest) evil relay.
struct Couple {
    evil: EvilRelay,
    alex: Device,
    sam: Device,
    /// Alex's keys, to sign entries as Alex's device would.
    alex_keys: DeviceKeys,
    sam_key: DeviceKey,
    space: SpaceId,
    _tmp: tempfile::TempDir,
}

impl Couple {
    /// Pairs Alex (creator) and Sam through a fresh evil relay, and syncs both once.
    fn new() -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let evil = EvilRelay::start()?;
        let alex = Device::init(tmp.path(), "Alex")?;
        let sam = Device::init(tmp.path(), "Sam")?;
        let invite = evil.create_space(&alex)?;
        sam.ok(&["space", "join", &invite])?;
        quiet_sync(&alex)?;
        quiet_sync(&sam)?;
        let alex_keys = DeviceKeys::load(&alex)?;
        let sam_key = DeviceKeys::load(&sam)?.device();
        let space = alex_keys.space;
        Ok(Self {
            evil,
            alex,
            sam,
            alex_keys,
            sam_key,
            space,
            _tmp: tmp,
        })
    }

    fn alex_key(&self) -> DeviceKey {
        self.alex_keys.device()
    }

    /// Alex's log as the relay stores it.
    fn alex_log(&self) -> Result<Vec<Entry>> {
        self.evil.log(&self.space, &self.alex_key())
    }

    /// Alex writes these notes and pushes them.
    fn alex_writes(&self, texts: &[&str]) -> Result<()> {
        for text in texts {
            self.alex.ok(&["log", "add", text])?;
        }
        quiet_sync(&self.alex)?;
        Ok(())
    }

    fn fingerprints(&self) -> Result<(String, String)> {
        Ok((
            self.alex.ok(&["space", "fingerprint"])?,
            self.sam.ok(&["space", "fingerprint"])?,
        ))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `candor sync`, which must succeed without any notice; returns stdout.
fn quiet_sync(device: &Device) -> Result<String> {
    let out = device.run(&["sync"])?;
    ensure!(
        out.status.success() && out.stderr.is_empty(),
        "sync of {} was not clean ({}): {}{}",
        device.home.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// `candor sync`, which must fail; returns stderr.
fn failing_sync(device: &Device) -> Result<String> {
    let stderr = device.fails(&["sync"])?;
    eprintln!("--- sync of {}:\n{stderr}", device.home.display());
    Ok(stderr)
}

/// `candor verify`, which must exit with 1 (problems found); returns stderr.
fn verify_problems(device: &Device) -> Result<String> {
    let out: Output = device.run(&["verify"])?;
    ensure!(
        out.status.code() == Some(1),
        "verify should have found problems ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    eprintln!("--- verify of {}:\n{stderr}", device.home.display());
    Ok(stderr)
}

/// `candor verify`, which must find everything intact.
fn verify_clean(device: &Device) -> Result<()> {
    let out = device.run(&["verify"])?;
    ensure!(
        out.status.success() && text(&out.stdout).contains("intact"),
        "verify should pass ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}

/// The id of the entry `device` lists with this text.
fn id_of(device: &Device, wanted: &str) -> Result<EntryHash> {
    let entries = device.entries()?;
    let entry = entries
        .iter()
        .find(|e| e["text"] == wanted)
        .ok_or_else(|| anyhow!("no entry {wanted:?} in {entries:?}"))?;
    let hex = entry["id"].as_str().unwrap_or_default();
    EntryHash::from_hex(hex).map_err(|e| anyhow!("bad id {hex}: {e:?}"))
}

/// The 16-hex-digit prefix under which `candor verify` names evidence.
fn short16(id: &EntryHash) -> String {
    id.to_hex()[..16].to_string()
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "expected {needle:?} in:\n{haystack}"
        );
    }
}

#[test]
fn flipped_byte_is_refused_and_kept_as_evidence() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["Home by seven", "I was at the gym, not at work"])?;
    let honest = id_of(&c.alex, "Home by seven")?;
    let target = id_of(&c.alex, "I was at the gym, not at work")?;
    // One bit of the ciphertext: the header and signature (and so the id) are untouched.
    c.evil.attack(
        Some(c.sam_key),
        Attack::FlipByte {
            id: target,
            offset: HEADER_LEN + SIGNATURE_LEN + 40,
        },
    );

    let refused = failing_sync(&c.sam)?;
    assert!(c.evil.hits() > 0, "the attack never took effect");
    assert_contains(
        &refused,
        &["refused the entry", "damaged or forged", "kept as evidence"],
    );
    let texts = c.sam.texts()?;
    assert!(
        !texts.iter().any(|t| t.contains("gym")),
        "a damaged entry is shown: {texts:?}"
    );

    let problems = verify_problems(&c.sam)?;
    assert_contains(
        &problems,
        &["refused at sync", "damaged or forged", &short16(&target)],
    );
    assert!(!problems.contains(&short16(&honest)), "{problems}");

    // Once the relay serves the real entry, it arrives intact; the evidence stays on record.
    c.evil.honest();
    quiet_sync(&c.sam)?;
    assert_eq!(
        c.sam.texts()?,
        ["Home by seven", "I was at the gym, not at work"]
    );
    let problems = verify_problems(&c.sam)?;
    assert_contains(&problems, &["1 problem(s)", &short16(&target)]);
    quiet_sync(&c.alex)?;
    let (a, s) = c.fingerprints()?;
    assert_eq!(a, s);
    Ok(())
}

#[test]
fn deleted_entry_leaves_a_gap_that_is_refused() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one", "two: the entry the relay deletes", "three"])?;
    let deleted = id_of(&c.alex, "two: the entry the relay deletes")?;
    let after = id_of(&c.alex, "three")?;
    c.evil.attack(Some(c.sam_key), Attack::Drop(deleted));

    let refused = failing_sync(&c.sam)?;
    assert!(c.evil.hits() > 0);
    assert_contains(
        &refused,
        &["refused the entry", "seq gap", "kept as evidence"],
    );
    let texts = c.sam.texts()?;
    assert!(
        !texts.iter().any(|t| t.starts_with("two") || t == "three"),
        "entries at or after the gap are shown: {texts:?}"
    );

    let problems = verify_problems(&c.sam)?;
    assert_contains(&problems, &["refused at sync", "seq gap", &short16(&after)]);

    c.evil.honest();
    quiet_sync(&c.sam)?;
    assert_eq!(
        c.sam.texts()?,
        ["one", "two: the entry the relay deletes", "three"]
    );
    Ok(())
}

#[test]
fn reordered_entries_are_refused() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["first", "second", "third"])?;
    let second = id_of(&c.alex, "second")?;
    let third = id_of(&c.alex, "third")?;
    c.evil.attack(Some(c.sam_key), Attack::Swap(second, third));

    let refused = failing_sync(&c.sam)?;
    assert!(c.evil.hits() > 0);
    assert_contains(
        &refused,
        &["refused the entry", "does not fit", "kept as evidence"],
    );
    let texts = c.sam.texts()?;
    assert!(
        !texts.iter().any(|t| t == "second" || t == "third"),
        "reordered entries are shown: {texts:?}"
    );
    let problems = verify_problems(&c.sam)?;
    assert_contains(&problems, &["refused at sync", &short16(&third)]);

    c.evil.honest();
    quiet_sync(&c.sam)?;
    assert_eq!(c.sam.texts()?, ["first", "second", "third"]);
    Ok(())
}

#[test]
fn duplicated_and_replayed_entries_are_harmless() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one", "two"])?;
    // Every entry served twice, to both devices.
    c.evil.attack(None, Attack::DuplicateAll);
    let out = quiet_sync(&c.sam)?;
    assert!(c.evil.hits() > 0);
    assert_eq!(out.trim(), "pushed 0, pulled 2");
    assert_eq!(c.sam.texts()?, ["one", "two"]);
    c.alex_writes(&["three"])?;

    // An old entry replayed among new ones, to both devices.
    c.evil.honest();
    let hits = c.evil.hits();
    let one = id_of(&c.alex, "one")?;
    let old = c
        .alex_log()?
        .into_iter()
        .find(|e| e.hash == one)
        .context("entry one at the relay")?;
    c.evil.attack(
        None,
        Attack::InjectAfter {
            after: id_of(&c.alex, "three")?,
            bytes: old.to_bytes(),
        },
    );
    let out = quiet_sync(&c.sam)?;
    assert!(c.evil.hits() > hits);
    assert_eq!(out.trim(), "pushed 0, pulled 1");
    quiet_sync(&c.alex)?;
    quiet_sync(&c.sam)?;
    for device in [&c.alex, &c.sam] {
        assert_eq!(device.texts()?, ["one", "two", "three"]);
        verify_clean(device)?;
    }
    let (a, s) = c.fingerprints()?;
    assert_eq!(a, s);
    Ok(())
}

#[test]
fn rolled_back_heads_are_a_notice_and_healed() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    // The head list of this moment, replayed later: a relay rolled back to an old state.
    let old_heads = c.evil.heads(&c.space)?;
    c.alex_writes(&["two", "three"])?;
    quiet_sync(&c.sam)?;
    quiet_sync(&c.alex)?;
    let before = c.fingerprints()?;
    assert_eq!(before.0, before.1);

    c.evil
        .attack(Some(c.sam_key), Attack::ReplayHeads(old_heads.clone()));
    let out = c.sam.run(&["sync"])?;
    assert!(c.evil.hits() > 0);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(text(&out.stdout).trim(), "pushed 0, pulled 0");
    assert_contains(
        &stderr,
        &[
            "held only 2 of your partner's entries",
            "has verified 4",
            "had lost 2 of your partner's entries",
            "uploaded its copies again",
        ],
    );

    // Nothing changed on either device; the relay still (again) holds everything.
    c.evil.honest();
    assert_eq!(c.sam.texts()?, ["one", "two", "three"]);
    verify_clean(&c.sam)?;
    assert_eq!(c.fingerprints()?, before);
    assert_eq!(quiet_sync(&c.alex)?.trim(), "pushed 0, pulled 0");
    assert_eq!(quiet_sync(&c.sam)?.trim(), "pushed 0, pulled 0");
    Ok(())
}

#[test]
fn split_view_is_caught_by_the_signed_views() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    quiet_sync(&c.sam)?;
    c.alex_writes(&["I told you everything about Friday"])?;
    let real = c
        .alex_log()?
        .pop()
        .context("Alex's newest entry at the relay")?;
    assert_eq!(
        real.hash,
        id_of(&c.alex, "I told you everything about Friday")?
    );
    let fake = c
        .alex_keys
        .other_version(&real, "Friday was nothing worth mentioning")?;
    // Sam alone is shown another version of Alex's entry.
    c.evil.attack(
        Some(c.sam_key),
        Attack::Replace {
            id: real.hash,
            bytes: fake.to_bytes(),
        },
    );
    quiet_sync(&c.sam)?;
    assert!(c.evil.hits() > 0);
    assert_eq!(
        c.sam.texts()?,
        ["one", "Friday was nothing worth mentioning"]
    );
    c.sam.ok(&["log", "add", "Thanks for telling me"])?;
    quiet_sync(&c.sam)?;
    let reply = id_of(&c.sam, "Thanks for telling me")?;

    // Sam's signed entries record the version Sam verified; Alex holds another one.
    let refused = failing_sync(&c.alex)?;
    assert_contains(
        &refused,
        &[
            "inconsistent",
            "the two devices were shown different histories",
            &real.hash.short(),
            &fake.hash.short(),
            "candor verify",
        ],
    );
    let problems = verify_problems(&c.alex)?;
    assert_contains(
        &problems,
        &[
            "different histories",
            &short16(&real.hash),
            &short16(&reply),
        ],
    );
    // Alex's own history is untouched.
    assert_eq!(
        c.alex.texts()?,
        [
            "one",
            "I told you everything about Friday",
            "Thanks for telling me"
        ]
    );
    Ok(())
}

#[test]
fn author_equivocation_is_kept_as_proof_and_freezes_the_log() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    quiet_sync(&c.sam)?;
    c.alex_writes(&["I will be home by nine"])?;
    let real = c.alex_log()?.pop().context("Alex's newest entry")?;
    let second = c
        .alex_keys
        .other_version(&real, "I never said when I'd be home")?;
    c.evil.attack(
        Some(c.sam_key),
        Attack::InjectAfter {
            after: real.hash,
            bytes: second.to_bytes(),
        },
    );

    let refused = failing_sync(&c.sam)?;
    assert!(c.evil.hits() > 0);
    assert_contains(
        &refused,
        &[
            "signed two different entries at seq",
            &real.hash.short(),
            &second.hash.short(),
            "kept as evidence",
        ],
    );
    let problems = verify_problems(&c.sam)?;
    assert_contains(
        &problems,
        &[
            "signed two different entries",
            &short16(&real.hash),
            &short16(&second.hash),
        ],
    );

    // Alex's log is frozen on Sam's device: nothing more of it is accepted, even honestly served.
    c.evil.honest();
    c.alex_writes(&["Later entry"])?;
    let refused = failing_sync(&c.sam)?;
    assert_contains(&refused, &["frozen", "two different entries"]);
    let texts = c.sam.texts()?;
    assert!(
        !texts
            .iter()
            .any(|t| t == "Later entry" || t.starts_with("I never said")),
        "{texts:?}"
    );
    let problems = verify_problems(&c.sam)?;
    assert_contains(&problems, &[&short16(&second.hash)]);
    // Alex's device was never shown anything wrong.
    assert_eq!(
        c.alex.texts()?,
        ["one", "I will be home by nine", "Later entry"]
    );
    verify_clean(&c.alex)?;
    Ok(())
}

#[test]
fn backdated_entry_is_flagged() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    quiet_sync(&c.sam)?;
    let last = c.alex_log()?.pop().context("Alex's newest entry")?;
    let three_hours = 3 * 60 * 60 * 1000;
    let backdated = c.alex_keys.note(
        last.header.seq + 1,
        last.hash,
        last.header.time_ms - three_hours,
        last.header.partner_seen,
        "I already told you this last week",
    )?;
    c.evil.plant(&c.space, &backdated)?;

    let refused = failing_sync(&c.sam)?;
    assert_contains(&refused, &["inconsistent", "backdated"]);
    let problems = verify_problems(&c.sam)?;
    assert_contains(
        &problems,
        &["backdated", &short16(&last.hash), &short16(&backdated.hash)],
    );
    Ok(())
}

#[test]
fn an_entry_dated_days_ahead_is_flagged_on_receipt_and_blamed_alone() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    quiet_sync(&c.sam)?;
    let last = c.alex_log()?.pop().context("Alex's newest entry")?;
    let three_days = 3 * 24 * 60 * 60 * 1000;
    let ahead = c.alex_keys.note(
        last.header.seq + 1,
        last.hash,
        last.header.time_ms + three_days,
        last.header.partner_seen,
        "See you on Friday",
    )?;
    c.evil.plant(&c.space, &ahead)?;

    // Sam's device accepts it, says at once that it is dated ahead, and keeps syncing: its own
    // answers (the checkpoint acknowledging it, a reply) are not called backdated.
    let out = c.sam.run(&["sync"])?;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_contains(
        &stderr,
        &["notice", "ahead of this device's clock", "3 days"],
    );
    c.sam.ok(&["log", "add", "Friday works"])?;
    let out = c.sam.run(&["sync"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("backdated"),
        "{}",
        text(&out.stderr)
    );
    let verified = c.sam.run(&["verify"])?;
    let report = format!("{}{}", text(&verified.stdout), text(&verified.stderr));
    assert!(!report.contains("backdated"), "{report}");
    assert_contains(
        &report,
        &["ahead of this device's clock", &short16(&ahead.hash)],
    );
    Ok(())
}

#[test]
fn withheld_entries_show_in_the_fingerprint() -> Result<()> {
    let c = Couple::new()?;
    c.alex_writes(&["one"])?;
    quiet_sync(&c.sam)?;
    quiet_sync(&c.alex)?;
    let (a, s) = c.fingerprints()?;
    assert_eq!(a, s);

    // From now on the relay keeps Alex's new entries from Sam, consistently in pages and heads.
    let from = c.alex_log()?.len() as u64;
    c.evil.attack(
        Some(c.sam_key),
        Attack::Withhold {
            author: c.alex_key(),
            from,
        },
    );
    c.alex_writes(&["two", "three"])?;
    assert_eq!(quiet_sync(&c.sam)?.trim(), "pushed 0, pulled 0");
    assert!(c.evil.hits() > 0);
    assert_eq!(c.sam.texts()?, ["one"]);
    let (a, s) = c.fingerprints()?;
    assert_ne!(a, s, "fingerprints agree although Sam lacks Alex's entries");

    // Sam's signed view lags behind Alex's log: Alex's device holds the proof. (After a day of
    // this, Alex's sync and verify add a withholding notice: unit tests in audit/tests.rs.)
    c.sam.ok(&["log", "add", "Anything new?"])?;
    quiet_sync(&c.sam)?;
    quiet_sync(&c.alex)?;
    let sam_log = c.evil.log(&c.space, &c.sam_key)?;
    let newest = sam_log.last().context("Sam's newest entry")?;
    assert_eq!(newest.header.partner_seen.count, from);
    assert!(c.alex_log()?.len() as u64 > from + 1);
    verify_clean(&c.alex)?;

    // Served again, the entries arrive. Sam's cursor had moved past their positions (Sam's own
    // entry came later), so the device sees from the heads that it missed some and re-reads the
    // relay's history once: a notice, not an error.
    c.evil.honest();
    let out = c.sam.run(&["sync"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "pushed 0, pulled 2");
    assert_contains(&text(&out.stderr), &["pulling everything again"]);
    quiet_sync(&c.alex)?;
    let (a, s) = c.fingerprints()?;
    assert_eq!(a, s);
    assert_eq!(c.sam.texts()?, c.alex.texts()?);
    Ok(())
}

#[test]
fn honest_exchanges_never_raise_an_alarm() -> Result<()> {
    let c = Couple::new()?;
    for round in 0..4 {
        c.alex.ok(&["log", "add", &format!("Alex {round}")])?;
        if round % 2 == 0 {
            c.alex
                .ok(&["log", "add", "--kind", "checkin", "On my way"])?;
        }
        quiet_sync(&c.alex)?;
        c.sam.ok(&["log", "add", &format!("Sam {round}")])?;
        quiet_sync(&c.sam)?;
        quiet_sync(&c.alex)?;
        quiet_sync(&c.sam)?;
        verify_clean(&c.alex)?;
        verify_clean(&c.sam)?;
        let (a, s) = c.fingerprints()?;
        assert_eq!(a, s, "round {round}");
    }
    assert_eq!(c.alex.texts()?, c.sam.texts()?);
    assert_eq!(c.alex.texts()?.len(), 10);
    assert_eq!(c.evil.hits(), 0);
    Ok(())
}

/// Rollback of this device's *own* log: re-uploaded, reported as a notice, not counted as news.
#[test]
fn rolled_back_own_log_is_reported() -> Result<()> {
    let c = Couple::new()?;
    let old_heads = c.evil.heads(&c.space)?;
    c.sam.ok(&["log", "add", "Sam's note"])?;
    assert_eq!(quiet_sync(&c.sam)?.trim(), "pushed 1, pulled 0");

    c.evil
        .attack(Some(c.sam_key), Attack::ReplayHeads(old_heads));
    let out = c.sam.run(&["sync"])?;
    assert!(c.evil.hits() > 0);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Sam wrote nothing since the last sync: the re-upload is a repair, told as a notice.
    assert_eq!(c.sam.texts()?, ["Sam's note"]);
    assert_eq!(text(&out.stdout).trim(), "pushed 0, pulled 0");
    assert_contains(&stderr, &["notice", "lost"]);
    Ok(())
}
