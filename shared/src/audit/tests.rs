//! Tests of the audit: each finding, and silence on honest histories.

use super::*;
use crate::entry::{Class, PartnerSeen};
use crate::SpaceId;

const ME: DeviceKey = DeviceKey([1; 32]);
const THEM: DeviceKey = DeviceKey([2; 32]);
const HOUR: u64 = 3_600_000;
const T0: u64 = 1_764_000_000_000;

fn entry(author: DeviceKey, seq: u64, time_ms: u64, seen: (u64, EntryHash)) -> AuditEntry {
    let mut id = [0u8; 32];
    id[0] = author.0[0];
    id[1..9].copy_from_slice(&seq.to_be_bytes());
    AuditEntry {
        id: EntryHash(id),
        header: Header {
            version: 1,
            class: Class::Shared,
            space: SpaceId([0; 16]),
            author,
            seq,
            prev: EntryHash::ZERO,
            time_ms,
            partner_seen: PartnerSeen {
                count: seen.0,
                head: seen.1,
            },
            nonce: [0; 24],
            ciphertext_len: 0,
            ciphertext_hash: [0; 32],
        },
    }
}

/// An honest exchange: each entry records the other log's head at the time.
fn honest() -> (Vec<AuditEntry>, Vec<AuditEntry>) {
    let m0 = entry(ME, 0, T0, (0, EntryHash::ZERO));
    let t0 = entry(THEM, 0, T0 + 1, (1, m0.id));
    let m1 = entry(ME, 1, T0 + 2, (1, t0.id));
    let t1 = entry(THEM, 1, T0 + 3, (2, m1.id));
    (vec![m0, m1], vec![t0, t1])
}

#[test]
fn honest_histories_raise_nothing() {
    let (mine, theirs) = honest();
    assert_eq!(audit(&mine, &theirs, T0 + HOUR), vec![]);
}

#[test]
fn a_split_view_is_proved_by_the_partners_signed_view() {
    let (mine, mut theirs) = honest();
    theirs[1].header.partner_seen.head = EntryHash([9; 32]); // they saw another entry 1 of mine
    let findings = audit(&mine, &theirs, T0 + HOUR);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::SplitView);
    assert_eq!(findings[0].evidence, vec![theirs[1].id, mine[1].id]);

    let (mine, mut theirs) = honest();
    theirs[1].header.partner_seen.count = 5;
    assert_eq!(
        audit(&mine, &theirs, T0 + HOUR)[0].kind,
        FindingKind::SplitView
    );
}

#[test]
fn a_partner_log_rewritten_after_i_saw_it_is_caught() {
    let (mine, mut theirs) = honest();
    theirs[0].id = EntryHash([7; 32]); // their entry 0 is not the one my entry 1 recorded
    let findings = audit(&mine, &theirs, T0 + HOUR);
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::RewrittenHistory));
}

#[test]
fn backdating_is_flagged_beyond_the_clock_tolerance() {
    let (mine, mut theirs) = honest();
    theirs[1].header.time_ms = T0 - HOUR; // before their own entry 0, and before my entry 1
    let findings = audit(&mine, &theirs, T0 + HOUR);
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.kind == FindingKind::Backdated)
            .count(),
        2
    );
    let (mine, mut theirs) = honest();
    theirs[1].header.time_ms = T0; // a little drift is fine
    assert_eq!(audit(&mine, &theirs, T0 + HOUR), vec![]);
}

#[test]
fn long_unconfirmed_entries_raise_a_notice() {
    let (mut mine, theirs) = honest();
    mine.push(entry(ME, 2, T0 + 4, (2, theirs[1].id)));
    assert_eq!(audit(&mine, &theirs, T0 + HOUR), vec![]);
    let findings = audit(&mine, &theirs, T0 + 25 * HOUR);
    assert_eq!(findings.len(), 1);
    assert!(findings[0].notice);
    assert_eq!(findings[0].kind, FindingKind::Withheld);
}

#[test]
fn the_heads_fingerprint_changes_with_any_head() {
    let space = SpaceId([3; 16]);
    let a = heads_fingerprint(
        &space,
        &[(ME, 2, EntryHash([1; 32])), (THEM, 3, EntryHash([2; 32]))],
    );
    let b = heads_fingerprint(
        &space,
        &[(THEM, 3, EntryHash([2; 32])), (ME, 2, EntryHash([1; 32]))],
    );
    assert_eq!(a, b, "order of the heads does not matter");
    assert_ne!(
        a,
        heads_fingerprint(
            &space,
            &[(ME, 2, EntryHash([1; 32])), (THEM, 3, EntryHash([4; 32]))]
        )
    );
    assert_eq!(a.split(' ').count(), 8);
}

#[test]
fn the_same_wrong_view_is_explained_once_with_all_its_evidence() {
    let (mine, mut theirs) = honest();
    theirs[1].header.partner_seen.head = EntryHash([9; 32]);
    let mut again = theirs[1].clone();
    again.id = EntryHash([8; 32]);
    again.header.seq = 2;
    theirs.push(again);
    let findings = audit(&mine, &theirs, T0 + HOUR);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].evidence,
        vec![theirs[1].id, mine[1].id, theirs[2].id]
    );
}

#[test]
fn an_entry_dated_in_the_future_is_blamed_alone() {
    // Their entry 1 is dated three days ahead; their entry 2 (honest again) and my entry that
    // acknowledges entry 1 carry ordinary times.
    let m0 = entry(ME, 0, T0, (0, EntryHash::ZERO));
    let t0 = entry(THEM, 0, T0 + 1, (1, m0.id));
    let t1 = entry(THEM, 1, T0 + 72 * HOUR, (1, m0.id));
    let m1 = entry(ME, 1, T0 + 2, (2, t1.id));
    let t2 = entry(THEM, 2, T0 + 3, (2, m1.id));
    let (mine, theirs) = (vec![m0, m1], vec![t0, t1.clone(), t2]);
    // Without the flag, the honest entries after it are blamed.
    let unflagged = audit(&mine, &theirs, T0 + HOUR);
    assert!(unflagged.iter().any(|f| f.kind == FindingKind::Backdated));
    let flagged = BTreeMap::from([(t1.id, 72 * HOUR - 1)]);
    let findings = audit_with(&mine, &theirs, T0 + HOUR, &flagged);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, FindingKind::FutureDated);
    assert_eq!(findings[0].evidence, vec![t1.id]);
    assert!(findings[0].notice);
    assert!(
        findings[0].explanation.contains("3 days"),
        "{}",
        findings[0].explanation
    );
    // It hides no real backdating after it.
    let mut theirs = theirs;
    theirs[2].header.time_ms = T0 - 2 * HOUR;
    let findings = audit_with(&mine, &theirs, T0 + HOUR, &flagged);
    assert!(findings.iter().any(
        |f| f.kind == FindingKind::Backdated && f.evidence == vec![theirs[0].id, theirs[2].id]
    ));
}

#[test]
fn a_view_of_the_other_log_that_goes_back_is_flagged() {
    let (mine, mut theirs) = honest();
    let m2 = entry(ME, 2, T0 + 4, (2, theirs[1].id));
    let mine = [mine, vec![m2]].concat();
    let t2 = entry(THEM, 2, T0 + 5, (1, mine[0].id)); // saw 2 of mine before, now claims 1
    theirs.push(t2);
    let findings = audit(&mine, &theirs, T0 + HOUR);
    let back: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::ViewWentBack)
        .collect();
    assert_eq!(back.len(), 1, "{findings:?}");
    assert_eq!(back[0].evidence, vec![theirs[1].id, theirs[2].id]);
    assert!(!back[0].notice);
}

#[test]
fn future_dating_is_judged_against_the_local_clock_with_a_tolerance() {
    assert_eq!(future_dated(T0 + FUTURE_TOLERANCE_MS, T0), None);
    assert_eq!(
        future_dated(T0 + FUTURE_TOLERANCE_MS + 1, T0),
        Some(FUTURE_TOLERANCE_MS + 1)
    );
    assert_eq!(future_dated(T0 - HOUR, T0), None);
}
