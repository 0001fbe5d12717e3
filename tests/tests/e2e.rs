//! End-to-end tests: real `candor-relay` and `candor` processes over QUIC on 127.0.0.1.

use anyhow::Result;
use candor_tests::{Device, Relay};
use std::path::Path;

fn pair(root: &Path, relay: &Relay) -> Result<(Device, Device)> {
    let alex = Device::init(root, "Alex")?;
    let sam = Device::init(root, "Sam")?;
    let invite = alex.create_space(relay)?;
    sam.ok(&["space", "join", &invite])?;
    Ok((alex, sam))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn pairing_and_entries_both_ways() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let relay = Relay::start(&tmp.path().join("relay"))?;
    let (alex, sam) = pair(tmp.path(), &relay)?;

    // Safety numbers agree once both devices know each other.
    alex.ok(&["sync"])?;
    let a = alex.ok(&["space", "safety-number"])?;
    let s = sam.ok(&["space", "safety-number"])?;
    assert_eq!(a, s);
    assert_eq!(a.trim().split(' ').count(), 12);

    alex.ok(&["log", "add", "--kind", "checkin", "Running late, home by 19:30"])?;
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 1, pulled 0");
    sam.ok(&["log", "add", "--kind", "plan", "Dinner with my sister on Friday"])?;
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 1, pulled 1");
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 0, pulled 1");

    for (device, me, partner) in [(&alex, "Alex", "Sam"), (&sam, "Sam", "Alex")] {
        let entries = device.entries()?;
        assert_eq!(entries.len(), 2, "{entries:?}");
        let checkin = &entries[0];
        assert_eq!(checkin["kind"], "checkin");
        assert_eq!(checkin["text"], "Running late, home by 19:30");
        assert_eq!(checkin["seq"], 1);
        assert_eq!(checkin["author_name"], "Alex");
        assert_eq!(checkin["author"], if me == "Alex" { "me" } else { "partner" });
        assert!(checkin["replaces"].is_null());
        assert!(checkin["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')));
        assert_eq!(checkin["id"].as_str().map(str::len), Some(64));
        assert_eq!(entries[1]["author_name"], "Sam");
        assert_eq!(entries[1]["author"], if partner == "Sam" { "partner" } else { "me" });
        let verified = device.ok(&["verify"])?;
        assert!(verified.contains("verified 4 entries"), "{verified}");
    }

    // A correction is a new entry naming the one it replaces; the original stays.
    let id = alex.entries()?[0]["id"].as_str().unwrap_or_default().to_string();
    alex.ok(&["log", "correct", &id[..10], "Running late, home by 20:00"])?;
    alex.ok(&["sync"])?;
    sam.ok(&["sync"])?;
    let entries = sam.entries()?;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["replaces"].as_str(), Some(id.as_str()));
    assert_eq!(entries[0]["text"], "Running late, home by 19:30");
    // Only one's own entries can be corrected.
    let partner_id = entries[1]["id"].as_str().unwrap_or_default().to_string();
    assert!(alex.fails(&["log", "correct", &partner_id, "nope"])?.contains("only correct your own"));
    Ok(())
}

#[test]
fn offline_writes_survive_an_unreachable_relay_and_go_out_later() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("relay");
    let relay = Relay::start(&data)?;
    let (alex, sam) = pair(tmp.path(), &relay)?;
    let addr = relay.kill();

    alex.ok(&["log", "add", "written offline"])?;
    let err = alex.fails(&["sync"])?;
    assert!(err.contains("could not reach the relay"), "{err}");
    assert!(err.contains("nothing was lost"), "{err}");
    assert_eq!(alex.texts()?, vec!["written offline"]);

    let _relay = Relay::start_on(&data, &addr)?;
    // The offline entry goes out; Sam's introduction (pushed when Sam joined) comes in.
    assert_eq!(alex.ok(&["sync"])?.trim(), "pushed 1, pulled 1");
    assert_eq!(sam.ok(&["sync"])?.trim(), "pushed 0, pulled 1");
    assert_eq!(sam.texts()?, vec!["written offline"]);
    Ok(())
}
