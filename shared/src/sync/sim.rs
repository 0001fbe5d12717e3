//! Sans-IO simulation: two devices and the relay logic driven in memory over a network that
//! drops, duplicates and reorders messages. Both devices must end with the same two logs.

use super::*;
use crate::audit::{audit, AuditEntry};
use crate::entry::{Class, Draft, Entry, PartnerSeen};
use crate::invite::{member_proof, InviteSecret};
use crate::keys::{DeviceSecrets, SpaceKey, AUTH_SIGNATURE_PREFIX};
use crate::payload::{kind, Payload, TextContent};
use crate::relay::memory::MemoryStore;
use crate::relay::{Relay, RelayStore, Session};
use crate::wire::{auth_message, MemberCard};
use crate::EntryHash;
use proptest::prelude::*;
use std::convert::Infallible;

const SPACE: SpaceId = SpaceId([3; 16]);

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
        }
    }

    fn write(&mut self, key: &SpaceKey, text: &str) {
        let seq = self.own.len() as u64;
        let draft = Draft {
            class: Class::Shared,
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
        let payload = Payload::text(
            kind::NOTE,
            &TextContent {
                text: text.into(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        );
        self.own
            .push(Entry::seal(draft, &payload, key, &self.secrets).unwrap());
    }

    fn log_of(&self, author: &DeviceKey) -> &Vec<Entry> {
        if *author == self.secrets.device_key() {
            &self.own
        } else {
            &self.partner
        }
    }

    /// Verifies and stores pulled entries exactly as a real device must.
    fn apply(&mut self, key: &SpaceKey, entries: Vec<crate::wire::PagedEntry>) {
        for paged in entries {
            let keys = LogKeys {
                space: SPACE,
                key,
                me: self.secrets.device_key(),
                partner: self.partner_key,
            };
            let verdict = verify_incoming(
                &keys,
                &paged.entry,
                |author| {
                    let log = self.log_of(author);
                    LogHead {
                        count: log.len() as u64,
                        hash: log.last().map_or(EntryHash::ZERO, |e| e.hash),
                    }
                },
                |author, seq| self.log_of(author).get(seq as usize).map(|e| e.hash),
            )
            .unwrap();
            if let Incoming::New { entry, .. } = verdict {
                self.partner.push(*entry);
            }
        }
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
    let secret = InviteSecret([4; 32]);
    let card = |d: &Device| MemberCard {
        public: d.secrets.public(),
        proof: member_proof(key, &SPACE, &d.secrets.public()),
    };
    let (card_a, card_b) = (card(a), card(b));
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
    a.partner_key = Some(b.secrets.device_key());
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

/// Runs sync rounds for the given devices concurrently over a faulty network until all are idle.
/// `writes` are (device index, text) written at random moments during the round.
fn run_round(
    relay: &Relay<MemoryStore>,
    devices: &mut [Device; 2],
    key: &SpaceKey,
    rng: &mut Rng,
    which: &[usize],
    mut writes: Vec<(usize, String)>,
) {
    let mut machines: Vec<Option<SyncMachine>> = (0..2)
        .map(|i| {
            which.contains(&i).then(|| {
                SyncMachine::new(
                    SPACE,
                    devices[i].secrets.device_key(),
                    devices[i].partner_key,
                    devices[i].cursor,
                )
            })
        })
        .collect();
    let mut network: Vec<Message> = Vec::new();
    for _ in 0..100_000 {
        if !writes.is_empty() && rng.chance(30) {
            let (device, text) = writes.remove(0);
            devices[device].write(key, &text);
            if let Some(m) = machines[device].as_mut() {
                m.local_written();
            }
        }
        for i in 0..2 {
            let Some(machine) = machines[i].as_mut() else {
                continue;
            };
            while let Some((id, request)) = machine.poll_request(&devices[i]).unwrap() {
                network.push(Message::ToRelay {
                    device: i,
                    id,
                    request,
                });
            }
        }
        if network.is_empty() {
            let mut all_idle = true;
            for machine in machines.iter_mut().flatten() {
                if !machine.is_idle() {
                    all_idle = false;
                    machine.handle_timeout(); // the message was lost
                }
            }
            if all_idle && writes.is_empty() {
                return;
            }
            continue;
        }
        let index = (rng.next() % network.len() as u64) as usize; // reorder
        let message = if rng.chance(15) {
            // duplicate: deliver a copy and keep the original in flight
            match &network[index] {
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
        } else {
            network.remove(index)
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
                network.push(Message::ToDevice {
                    device,
                    id,
                    response: handled.response,
                });
            }
            Message::ToDevice {
                device,
                id,
                response,
            } => {
                let Some(machine) = machines[device].as_mut() else {
                    continue;
                };
                machine
                    .handle_response(id, response, &devices[device])
                    .unwrap();
                while let Some(event) = machine.poll_event() {
                    match event {
                        SyncEvent::Pulled(entries) => devices[device].apply(key, entries),
                        SyncEvent::Cursor(c) => devices[device].cursor = c,
                        SyncEvent::Restored(n) => devices[device].restored += n,
                        SyncEvent::RelayBehind { .. } => {}
                        SyncEvent::CursorReset => devices[device].cursor = 0,
                        SyncEvent::Pushed { .. }
                        | SyncEvent::OwnBehind { .. }
                        | SyncEvent::Idle => {}
                    }
                }
            }
        }
    }
    panic!("sync did not converge");
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
    let [a, b] = &devices;
    assert_eq!(a.own, b.partner, "B is missing or misordering A's entries");
    assert_eq!(b.own, a.partner, "A is missing or misordering B's entries");
    assert_eq!(a.own.len(), writes_a + 1);
    assert_eq!(b.own.len(), writes_b + 1);
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
    let later = vec![
        (0, "a1".to_string()),
        (1, "b1".to_string()),
        (1, "b2".to_string()),
    ];
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], later);
    run_round(&relay, &mut devices, &key, &mut rng, &[0, 1], vec![]);
    assert_eq!(devices[0].partner.len(), 3, "A holds all of B's log");
    // B goes offline for good; the relay is restored from the backup and loses a1, b1, b2.
    let restored = Relay::new(backup);
    run_round(&restored, &mut devices, &key, &mut rng, &[0], vec![]);
    assert_eq!(
        devices[0].restored, 2,
        "A re-uploads B's entries the relay lost"
    );
    let relay_heads = restored.store().heads(&SPACE).unwrap();
    let b_key = devices[1].secrets.device_key();
    let b_count = relay_heads
        .iter()
        .find(|(k, _)| *k == b_key)
        .map(|(_, h)| h.count);
    assert_eq!(b_count, Some(3), "the relay again holds all of B's log");
    let a_count = relay_heads
        .iter()
        .find(|(k, _)| *k != b_key)
        .map(|(_, h)| h.count);
    assert_eq!(a_count, Some(2));
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
    let [a, b] = &devices;
    assert_eq!(
        a.own, b.partner,
        "B received all of A's log after the restore"
    );
    assert_eq!(b.own, a.partner);
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
    let head = |count| LogHead {
        count,
        hash: EntryHash([9; 32]),
    };
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }));
    let heads = vec![(partner, head(5))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    let page = Response::Page {
        entries: Vec::new(),
        more: false,
    };
    machine.handle_response(id, page, &local).unwrap();
    assert_eq!(machine.poll_request(&local).unwrap(), None);
    while machine.poll_event().is_some() {}
    // A notification overtaken by our own pulls makes the machine ask for heads; meanwhile two
    // more partner entries landed, whose notification is still on its way.
    machine.handle_notify(3);
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }));
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (_, request) = machine.poll_request(&local).unwrap().unwrap();
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
    let head = |count| LogHead {
        count,
        hash: EntryHash([9; 32]),
    };
    let empty = || Response::Page {
        entries: Vec::new(),
        more: false,
    };
    let (id, _) = machine.poll_request(&local).unwrap().unwrap();
    // The relay counts 7 entries, but has flushed (and so serves) only 5 of them.
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    machine.handle_response(id, empty(), &local).unwrap();
    // First shortfall: ask for heads again instead of starting over.
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Heads { .. }), "got {request:?}");
    let heads = vec![(partner, head(7))];
    machine
        .handle_response(id, Response::HeadList { heads }, &local)
        .unwrap();
    let (id, request) = machine.poll_request(&local).unwrap().unwrap();
    assert!(matches!(request, Request::Pull { after: 10, .. }));
    machine.handle_response(id, empty(), &local).unwrap();
    // Still short of the counts seen a round earlier: the relay's cursors changed; start over.
    let (_, request) = machine.poll_request(&local).unwrap().unwrap();
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
