//! Sans-IO simulation: two devices and the relay logic driven in memory over a network that
//! drops, duplicates and reorders messages. Both devices must end with the same two logs.

use super::*;
use crate::audit::{audit, AuditEntry};
use crate::chain::LogHead;
use crate::entry::{Class, Draft, Entry, PartnerSeen};
use crate::invite::{member_proof, InviteSecret};
use crate::keys::{DeviceSecrets, SpaceKey, AUTH_SIGNATURE_PREFIX};
use crate::merkle::Frontier;
use crate::payload::{kind, Checkpoint, Payload, TextContent};
use crate::relay::memory::MemoryStore;
use crate::relay::{Relay, RelayStore, Session};
use crate::wire::{auth_message, MemberCard, Request, Response};
use crate::EntryHash;
use crate::{DeviceKey, SpaceId};
use proptest::prelude::*;
use std::convert::Infallible;
use std::time::{Duration, Instant};

const SPACE: SpaceId = SpaceId([3; 16]);
const INVITE: [u8; 32] = [4; 32];

/// A small deterministic PRNG so a failing case replays from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Device {
    secrets: DeviceSecrets,
    own: Vec<Entry>,
    partner: Vec<Entry>,
    partner_key: Option<DeviceKey>,
    cursor: u64,
    session: Session,
    /// Partner entries this device re-uploaded to a relay that had lost them.
    restored: u64,
    /// Checkpoints this device wrote.
    checkpoints: u64,
}

impl LocalLog for Device {
    type Error = Infallible;
    fn count(&self, author: &DeviceKey) -> Result<u64, Infallible> {
        Ok(self.log_of(author).len() as u64)
    }
    fn entries(
        &self,
        author: &DeviceKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Infallible> {
        Ok(self
            .log_of(author)
            .iter()
            .skip(from as usize)
            .take(limit)
            .map(Entry::to_bytes)
            .collect())
    }
}

impl Device {
    fn new(n: u8) -> Self {
        Self {
            secrets: DeviceSecrets::from_seeds([n; 32], [n + 1; 32]),
            own: Vec::new(),
            partner: Vec::new(),
            partner_key: None,
            cursor: 0,
            session: Session::new([n; 32]),
            restored: 0,
            checkpoints: 0,
        }
    }

    fn write(&mut self, key: &SpaceKey, text: &str) {
        let payload = Payload::text(
            kind::NOTE,
            &TextContent {
                text: text.into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        );
        self.append(key, Class::Shared, &payload);
    }

    /// Writes a checkpoint (committing to the own log's Merkle root) when
    /// [`checkpoint_due`] says the own log owes the partner one, as the client does.
    fn checkpoint_if_due(&mut self, key: &SpaceKey) -> bool {
        let recorded = self.own.last().map_or(0, |e| e.header.partner_seen.count);
        let unacknowledged = self.partner.iter().skip(recorded as usize).map(|e| {
            Ok::<_, Infallible>(PartnerEntry {
                control: e.header.class == Class::Control,
                asks_countersign: false,
            })
        });
        if !checkpoint_due(self.partner_key.is_some(), false, unacknowledged).unwrap() {
            return false;
        }
        let ids: Vec<EntryHash> = self.own.iter().map(|e| e.hash).collect();
        let checkpoint = Checkpoint {
            own_root: crate::merkle::root(&ids),
            countersign: false,
        };
        self.append(key, Class::Control, &Payload::checkpoint(&checkpoint));
        true
    }

    fn append(&mut self, key: &SpaceKey, class: Class, payload: &Payload) {
        let seq = self.own.len() as u64;
        let draft = Draft {
            class,
            space: SPACE,
            seq,
            prev: self.own.last().map_or(EntryHash::ZERO, |e| e.hash),
            time_ms: 1_000 + seq,
            partner_seen: PartnerSeen {
                count: self.partner.len() as u64,
                head: self.partner.last().map_or(EntryHash::ZERO, |e| e.hash),
            },
            nonce: [seq as u8; 24],
        };
        self.own
            .push(Entry::seal(draft, payload, key, &self.secrets).unwrap());
    }

    fn log_of(&self, author: &DeviceKey) -> &Vec<Entry> {
        if *author == self.secrets.device_key() {
            &self.own
        } else {
            &self.partner
        }
    }

    /// Verifies and stores pulled entries as the client's store does: the page's prechecks,
    /// then [`judge_page`], storing what it accepted.
    fn apply(&mut self, key: &SpaceKey, page: &[crate::wire::PagedEntry]) -> PageOutcome {
        let keys = LogKeys {
            space: SPACE,
            key,
            me: self.secrets.device_key(),
            partner: self.partner_key,
        };
        let bytes: Vec<&[u8]> = page.iter().map(|p| p.entry.as_slice()).collect();
        let verdict = judge_page(&*self, &keys, false, precheck_batch(&keys, &bytes)).unwrap();
        let me = self.secrets.device_key();
        for entry in &verdict.accepted {
            assert_ne!(entry.header.author, me, "no adoption without a restore");
        }
        let outcome = verdict.outcome();
        self.partner.extend(verdict.accepted);
        outcome
    }
}

/// A simulated device's logs as the page judgement reads them (no log is ever frozen: the
/// relay is honest).
impl HeldLogs for Device {
    type Error = Infallible;
    fn head(&self, author: &DeviceKey) -> Result<LogHead, Infallible> {
        let log = self.log_of(author);
        Ok(LogHead {
            count: log.len() as u64,
            hash: log.last().map_or(EntryHash::ZERO, |e| e.hash),
        })
    }
    fn hash_at(&self, author: &DeviceKey, seq: u64) -> Result<Option<EntryHash>, Infallible> {
        Ok(self.log_of(author).get(seq as usize).map(|e| e.hash))
    }
    fn is_frozen(&self, _: &DeviceKey) -> Result<bool, Infallible> {
        Ok(false)
    }
    fn frontier(&self, author: &DeviceKey, count: u64) -> Result<Frontier, Infallible> {
        let mut frontier = Frontier::default();
        for entry in self.log_of(author).iter().take(count as usize) {
            frontier.push(&entry.hash);
        }
        Ok(frontier)
    }
}

fn authenticate(relay: &Relay<MemoryStore>, device: &mut Device, exporter: [u8; 32]) {
    let Response::Challenge { nonce } = relay
        .handle_request(&mut device.session, Request::Hello { version: 1 }, [9; 32])
        .response
    else {
        panic!("no challenge")
    };
    let me = device.secrets.device_key();
    let signature = device
        .secrets
        .sign(AUTH_SIGNATURE_PREFIX, &auth_message(&nonce, &exporter, &me))
        .to_vec();
    relay.handle_request(
        &mut device.session,
        Request::Authenticate {
            device: me,
            signature,
        },
        [0; 32],
    );
    assert_eq!(device.session.device(), Some(me));
}

fn pair(relay: &Relay<MemoryStore>, a: &mut Device, b: &mut Device, key: &SpaceKey) {
    authenticate(relay, a, [1; 32]);
    authenticate(relay, b, [2; 32]);
    let secret = InviteSecret(INVITE);
    let card_a = MemberCard {
        public: a.secrets.public(),
        proof: member_proof(key, &SPACE, &a.secrets.public()),
    };
    // The joiner proves it holds the invite; the creator checks that when it learns of it.
    let card_b = MemberCard {
        public: b.secrets.public(),
        proof: secret.join_proof(&SPACE, &b.secrets.public()),
    };
    let created = relay.handle_request(
        &mut a.session,
        Request::CreateSpace {
            space: SPACE,
            invite_verifier: secret.verifier(),
            sealed_space_key: secret.seal_space_key(&SPACE, key, [0; 24]),
            member: card_a,
        },
        [0; 32],
    );
    assert_eq!(created.response, Response::SpaceCreated);
    let joined = relay.handle_request(
        &mut b.session,
        Request::Join {
            space: SPACE,
            token: secret.token(),
            member: card_b,
        },
        [0; 32],
    );
    assert!(matches!(joined.response, Response::Joined { .. }));
    // The creator learns of the joiner from the relay's member list, in its first session.
    b.partner_key = Some(a.secrets.device_key());
}

enum Message {
    ToRelay {
        device: usize,
        id: u64,
        request: Request,
    },
    ToDevice {
        device: usize,
        id: u64,
        response: Response,
    },
}

impl Message {
    fn copy(&self) -> Self {
        match self {
            Message::ToRelay {
                device,
                id,
                request,
            } => Message::ToRelay {
                device: *device,
                id: *id,
                request: request.clone(),
            },
            Message::ToDevice {
                device,
                id,
                response,
            } => Message::ToDevice {
                device: *device,
                id: *id,
                response: response.clone(),
            },
        }
    }
}

/// Performs every action a device's session asks for at `now`, the way the client driver does.
fn drive(
    session: &mut SyncSession,
    device: &mut Device,
    index: usize,
    key: &SpaceKey,
    network: &mut Vec<(Instant, Message)>,
    now: Instant,
    rng: &mut Rng,
) {
    while let Some(action) = session.poll_action(device, now).unwrap() {
        match action {
            Action::Send { id, request } => {
                // One-way latency of 1–30 ms: answers overtake each other.
                let at = now + Duration::from_millis(1 + rng.next() % 30);
                network.push((
                    at,
                    Message::ToRelay {
                        device: index,
                        id,
                        request,
                    },
                ));
            }
            Action::PartnerJoined(public) => device.partner_key = Some(public.device),
            Action::Apply(page) => {
                let outcome = device.apply(key, &page);
                assert_eq!(
                    session.handle_applied(&page, outcome, now),
                    Applied::Continue,
                    "an honest relay's page was refused"
                );
            }
            Action::Event(SyncEvent::Cursor(c)) => device.cursor = c,
            Action::Event(SyncEvent::Restored(n)) => device.restored += n,
            Action::Event(SyncEvent::CursorReset) => device.cursor = 0,
            Action::Event(_) | Action::Drained | Action::Audit | Action::RoundDone => {}
            Action::Checkpoint => {
                let written = device.checkpoint_if_due(key);
                if written {
                    device.checkpoints += 1;
                }
                session.handle_checkpoint(written);
            }
        }
    }
}

/// The simulated clock's starting point: the only clock read in `shared/` (std's `Instant` has
/// no constructor); every later moment is this plus simulated durations.
fn epoch() -> Instant {
    Instant::now()
}

/// Runs sync rounds (`Mode::Once`) for the given devices concurrently over a faulty network on
/// a simulated clock until all are done. `writes` are (device index, text) written at random
/// moments during the round.
fn run_round(
    relay: &Relay<MemoryStore>,
    devices: &mut [Device; 2],
    key: &SpaceKey,
    rng: &mut Rng,
    which: &[usize],
    mut writes: Vec<(usize, String)>,
) {
    let start = epoch();
    let mut now = start;
    let mut sessions: Vec<Option<SyncSession>> = (0..2)
        .map(|i| {
            which.contains(&i).then(|| {
                SyncSession::new(SessionConfig {
                    space: SPACE,
                    me: devices[i].secrets.device_key(),
                    partner: devices[i].partner_key,
                    invite: Some(InviteSecret(INVITE)),
                    cursor: devices[i].cursor,
                    adopt_own: false,
                    mode: Mode::Once,
                    window: 1 + (rng.next() % 8) as usize,
                })
            })
        })
        .collect();
    let mut network: Vec<(Instant, Message)> = Vec::new();
    for _ in 0..100_000 {
        now += Duration::from_millis(1);
        if !writes.is_empty() && rng.chance(30) {
            let (device, text) = writes.remove(0);
            devices[device].write(key, &text);
            if let Some(s) = sessions[device].as_mut() {
                s.local_written();
            }
        }
        for (i, session) in sessions.iter_mut().enumerate() {
            if let Some(session) = session.as_mut() {
                drive(session, &mut devices[i], i, key, &mut network, now, rng);
            }
        }
        let due: Vec<usize> = (0..network.len())
            .filter(|&i| network[i].0 <= now)
            .collect();
        if network.is_empty() {
            let done = sessions.iter().flatten().all(SyncSession::is_done);
            if done && writes.is_empty() {
                return;
            }
            // Nothing on the wire: whatever is unanswered was lost; jump to the next timer.
            for session in sessions.iter_mut().flatten() {
                if let Some(at) = session.poll_timeout() {
                    now = now.max(at);
                }
            }
            for session in sessions.iter_mut().flatten() {
                session.handle_timeout(now);
            }
            continue;
        }
        let Some(&pick) = due.get((rng.next() % due.len().max(1) as u64) as usize) else {
            continue; // everything on the wire is still travelling
        };
        let message = if rng.chance(15) {
            network[pick].1.copy() // duplicate: deliver a copy and keep the original in flight
        } else {
            network.remove(pick).1
        };
        if rng.chance(20) {
            continue; // dropped
        }
        match message {
            Message::ToRelay {
                device,
                id,
                request,
            } => {
                let handled = relay.handle_request(&mut devices[device].session, request, [0; 32]);
                let at = now + Duration::from_millis(1 + rng.next() % 30);
                network.push((
                    at,
                    Message::ToDevice {
                        device,
                        id,
                        response: handled.response,
                    },
                ));
            }
            Message::ToDevice {
                device,
                id,
                response,
            } => {
                if let Some(session) = sessions[device].as_mut() {
                    session
                        .handle_response(id, response, &devices[device])
                        .unwrap();
                }
            }
        }
    }
    panic!("sync did not converge");
}

fn ids(log: &[Entry]) -> Vec<EntryHash> {
    log.iter().map(|e| e.hash).collect()
}

fn simulate(seed: u64, writes_a: usize, writes_b: usize) {
    let mut rng = Rng(seed | 1);
    let relay = Relay::new(MemoryStore::default());
    let key = SpaceKey::from_bytes([8; 32]);
    let (mut a, mut b) = (Device::new(1), Device::new(2));
    pair(&relay, &mut a, &mut b, &key);
    let mut devices = [a, b];
    let mut writes: Vec<(usize, String)> = (0..writes_a).map(|i| (0, format!("a{i}"))).collect();
    writes.extend((0..writes_b).map(|i| (1, format!("b{i}"))));
    // Interleave the two devices' writes.
    writes.sort_by_key(|(device, text)| (text[1..].parse::<usize>().unwrap_or(0), *device));
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], writes);
    // Offline writes, then each side syncs alone, then both again.
    devices[0].write(&key, "offline a");
    devices[1].write(&key, "offline b");
    run_round(&relay, &mut devices, &key, &mut rng, &[1], vec![]);
    run_round(&relay, &mut devices, &key, &mut rng, &[0], vec![]);
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], vec![]);
    // The checkpoints of that round reach the partner, which owes none for them.
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], vec![]);
    let [a, b] = &devices;
    assert_eq!(
        ids(&a.own),
        ids(&b.partner),
        "B is missing or misordering A's entries"
    );
    assert_eq!(
        ids(&b.own),
        ids(&a.partner),
        "A is missing or misordering B's entries"
    );
    let written = |d: &Device| {
        d.own
            .iter()
            .filter(|e| e.header.class == Class::Shared)
            .count()
    };
    assert_eq!(written(a), writes_a + 1);
    assert_eq!(written(b), writes_b + 1);
    // Each device's last entry says it saw the partner's whole log of writing: the checkpoint
    // schedule acknowledges everything, and only checkpoints follow.
    for (d, other) in [(a, b), (b, a)] {
        let seen = d.own.last().map_or(0, |e| e.header.partner_seen.count) as usize;
        assert!(
            other.own[seen.min(other.own.len())..]
                .iter()
                .all(|e| e.header.class == Class::Control),
            "a partner entry was never acknowledged by a checkpoint"
        );
    }
    assert_eq!(a.restored + b.restored, 0, "an honest relay lost nothing");
    // Honest schedules never raise a finding on either device.
    let view = |log: &Vec<Entry>| -> Vec<AuditEntry> {
        log.iter()
            .map(|e| AuditEntry {
                id: e.hash,
                header: e.header.clone(),
            })
            .collect()
    };
    assert_eq!(audit(&view(&a.own), &view(&a.partner), 10_000), vec![]);
    assert_eq!(audit(&view(&b.own), &view(&b.partner), 10_000), vec![]);
}

#[test]
fn recovers_when_the_relay_is_restored_from_an_old_backup() {
    let mut rng = Rng(99);
    let relay = Relay::new(MemoryStore::default());
    let key = SpaceKey::from_bytes([8; 32]);
    let (mut a, mut b) = (Device::new(1), Device::new(2));
    pair(&relay, &mut a, &mut b, &key);
    let mut devices = [a, b];
    let writes = vec![(0, "a0".to_string()), (1, "b0".to_string())];
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], writes);
    let backup = relay.store().snapshot();
    let b_key = devices[1].secrets.device_key();
    let count_of = |relay: &Relay<MemoryStore>, author: &DeviceKey| {
        let heads = relay.store().heads(&SPACE).unwrap();
        heads
            .iter()
            .find(|(k, _)| k == author)
            .map_or(0, |(_, h)| h.count)
    };
    let b_in_backup = count_of(&relay, &b_key);
    let later = vec![
        (0, "a1".to_string()),
        (1, "b1".to_string()),
        (1, "b2".to_string()),
    ];
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], later);
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], vec![]);
    let shared = |log: &[Entry]| {
        log.iter()
            .filter(|e| e.header.class == Class::Shared)
            .count()
    };
    assert_eq!(shared(&devices[0].partner), 3, "A holds all of B's log");
    // B goes offline for good; the relay is restored from the backup and loses a1, b1, b2.
    let restored = Relay::new(backup);
    run_round(&restored, &mut devices, &key, &mut rng, &[0], vec![]);
    // B's entries since the backup: b1, b2 and its checkpoints.
    let b_total = devices[0].partner.len() as u64;
    assert!(b_total - b_in_backup >= 2);
    assert_eq!(
        devices[0].restored,
        b_total - b_in_backup,
        "A re-uploads B's entries the relay lost"
    );
    assert_eq!(
        count_of(&restored, &b_key),
        b_total,
        "the relay again holds all of B's log"
    );
    let a_key = devices[0].secrets.device_key();
    assert_eq!(count_of(&restored, &a_key), devices[0].own.len() as u64);
    // The relay is restored again, from a backup older than everything B wrote since.
    let second_backup = restored.store().snapshot();
    for i in 3..8 {
        devices[1].write(&key, &format!("b{i}"));
    }
    run_round(&restored, &mut devices, &key, &mut rng, &[1], vec![]);
    let again = Relay::new(second_backup);
    // A writes one entry on the restored relay; B comes back with a cursor beyond everything the
    // relay has numbered since, re-uploads its own entries, and must still receive A's.
    devices[0].write(&key, "a2");
    run_round(&again, &mut devices, &key, &mut rng, &[0], vec![]);
    run_round(&again, &mut devices, &key, &mut rng, &[1], vec![]);
    run_round(&again, &mut devices, &key, &mut rng, &[0], vec![]);
    run_round(&again, &mut devices, &key, &mut rng, &[1], vec![]); // A's last checkpoint
    let [a, b] = &devices;
    assert_eq!(
        ids(&a.own),
        ids(&b.partner),
        "B received all of A's log after the restore"
    );
    assert_eq!(ids(&b.own), ids(&a.partner));
}

#[test]
fn converges_without_faults_in_the_simplest_case() {
    simulate(12345, 3, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn converges_despite_drops_duplicates_and_reordering(seed in any::<u64>(), wa in 0usize..40, wb in 0usize..40) {
        simulate(seed, wa, wb);
    }
}

/// Counts only: enough for the machine's decisions when nothing is to be pushed.
struct Counts(Vec<(DeviceKey, u64)>);

impl LocalLog for Counts {
    type Error = Infallible;
    fn count(&self, author: &DeviceKey) -> Result<u64, Infallible> {
        Ok(self
            .0
            .iter()
            .find(|(a, _)| a == author)
            .map_or(0, |(_, n)| *n))
    }
    fn entries(&self, _: &DeviceKey, _: u64, _: usize) -> Result<Vec<Vec<u8>>, Infallible> {
        Ok(Vec::new())
    }
}

#[test]
fn newer_heads_after_a_stale_notification_lead_to_a_pull_not_a_full_re_pull() {
    let (me, partner) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
    let local = Counts(vec![(partner, 5)]);
    let mut machine = SyncMachine::new(SPACE, me, Some(partner), 10);
    let now = epoch();
    let head = |count| LogHead {
        count,
        hash: EntryHash([9; 32]),
    };
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }));
    let heads = vec![(partner, head(5))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    let page = Response::Page {
        entries: Vec::new(),
        more: false,
    };
    machine.handle_response(id, page, &local).unwrap();
    assert_eq!(machine.poll_request(&local, now).unwrap(), None);
    while machine.poll_event().is_some() {}
    // A notification overtaken by our own pulls makes the machine ask for heads; meanwhile two
    // more partner entries landed, whose notification is still on its way.
    machine.handle_notify(3);
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }));
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (_, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(
        matches!(request, Request::Pull { after: 10, .. }),
        "expected a pull from the cursor, got {request:?}"
    );
    while let Some(event) = machine.poll_event() {
        assert_ne!(event, SyncEvent::CursorReset);
    }
}

#[test]
fn a_shortfall_is_rechecked_with_fresh_heads_before_pulling_everything_again() {
    let (me, partner) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
    let local = Counts(vec![(partner, 5)]);
    let mut machine = SyncMachine::new(SPACE, me, Some(partner), 10);
    let now = epoch();
    let head = |count| LogHead {
        count,
        hash: EntryHash([9; 32]),
    };
    let empty = || Response::Page {
        entries: Vec::new(),
        more: false,
    };
    let (id, _) = machine.poll_request(&local, now).unwrap().unwrap();
    // The relay counts 7 entries, but has flushed (and so serves) only 5 of them.
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    machine.handle_response(id, empty(), &local).unwrap();
    // First shortfall: ask for heads again instead of starting over.
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }), "got {request:?}");
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    machine.handle_response(id, empty(), &local).unwrap();
    // Still short of the counts seen a round earlier: the relay's cursors changed; start over.
    let (_, request) = machine.poll_request(&local, now).unwrap().unwrap();
    assert!(
        matches!(request, Request::Pull { after: 0, .. }),
        "got {request:?}"
    );
    let mut reset = false;
    while let Some(event) = machine.poll_event() {
        reset |= event == SyncEvent::CursorReset;
    }
    assert!(reset);
}

fn watch_session(partner: Option<DeviceKey>, cursor: u64) -> SyncSession {
    SyncSession::new(SessionConfig {
        space: SPACE,
        me: DeviceKey([1; 32]),
        partner,
        invite: Some(InviteSecret(INVITE)),
        cursor,
        adopt_own: false,
        mode: Mode::Watch,
        window: DEFAULT_WINDOW,
    })
}

#[test]
fn a_partner_without_a_valid_join_proof_is_refused() {
    let local = Counts(Vec::new());
    let now = epoch();
    let mut session = watch_session(None, 0);
    let Some(Action::Send { id, request }) = session.poll_action(&local, now).unwrap() else {
        panic!("expected the member list to be asked for first");
    };
    assert_eq!(request, Request::Members { space: SPACE });
    assert_eq!(
        session.poll_action(&local, now).unwrap(),
        None,
        "members go alone"
    );
    let stranger = DeviceSecrets::from_seeds([7; 32], [8; 32]).public();
    let members = vec![MemberCard {
        public: stranger,
        proof: [0; 32],
    }];
    assert_eq!(
        session.handle_response(id, Response::MemberList { members }, &local),
        Err(SessionError::UnprovenMember(stranger.device.short()))
    );
    // With the proof only the invite's holder can make, the partner is accepted and persisted.
    let mut session = watch_session(None, 0);
    let Some(Action::Send { id, .. }) = session.poll_action(&local, now).unwrap() else {
        panic!("expected a member list request");
    };
    let members = vec![MemberCard {
        public: stranger,
        proof: InviteSecret(INVITE).join_proof(&SPACE, &stranger),
    }];
    session
        .handle_response(id, Response::MemberList { members }, &local)
        .unwrap();
    assert_eq!(
        session.poll_action(&local, now).unwrap(),
        Some(Action::PartnerJoined(stranger))
    );
}

#[test]
fn a_watching_session_checkpoints_once_the_space_is_quiet() {
    let partner = DeviceKey([2; 32]);
    let local = Counts(vec![(partner, 1)]);
    let start = epoch();
    let mut session = watch_session(Some(partner), 0);
    let Some(Action::Send { id, .. }) = session.poll_action(&local, start).unwrap() else {
        panic!("expected heads");
    };
    let heads = vec![(
        partner,
        LogHead {
            count: 1,
            hash: EntryHash([9; 32]),
        },
    )];
    session
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let Some(Action::Send { id, request }) = session.poll_action(&local, start).unwrap() else {
        panic!("expected a pull");
    };
    assert!(matches!(request, Request::Pull { after: 0, .. }));
    let page = vec![crate::wire::PagedEntry {
        cursor: 1,
        entry: vec![0; 8],
    }];
    let response = Response::Page {
        entries: page.clone(),
        more: false,
    };
    session.handle_response(id, response, &local).unwrap();
    assert_eq!(
        session.poll_action(&local, start).unwrap(),
        Some(Action::Apply(page.clone()))
    );
    let stored = PageOutcome {
        stored: 1,
        refused: None,
    };
    assert_eq!(
        session.handle_applied(&page, stored, start),
        Applied::Continue
    );
    assert_eq!(
        session.poll_action(&local, start).unwrap(),
        Some(Action::Event(SyncEvent::Cursor(1)))
    );
    assert_eq!(
        session.poll_action(&local, start).unwrap(),
        Some(Action::Drained)
    );
    assert_eq!(session.poll_action(&local, start).unwrap(), None);
    // A notification during the quiet window restarts it.
    let quiet = start + CHECK_QUIET;
    assert_eq!(session.poll_timeout(), Some(quiet));
    session.handle_notify(1);
    assert_eq!(session.poll_timeout(), None);
    let later = start + Duration::from_millis(2);
    assert_eq!(
        session.poll_action(&local, later).unwrap(),
        Some(Action::Drained)
    );
    assert_eq!(session.poll_timeout(), Some(later + CHECK_QUIET));
    session.handle_timeout(later + CHECK_QUIET);
    assert_eq!(
        session.poll_action(&local, later).unwrap(),
        Some(Action::Checkpoint)
    );
    session.handle_checkpoint(false);
    assert_eq!(
        session.poll_action(&local, later).unwrap(),
        Some(Action::Audit)
    );
    assert_eq!(
        session.poll_action(&local, later).unwrap(),
        Some(Action::RoundDone)
    );
    assert_eq!(session.poll_action(&local, later).unwrap(), None);
    assert_eq!(session.poll_timeout(), None, "nothing waits to be checked");
}
