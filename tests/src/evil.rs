//! A malicious relay for attack tests.
//!
//! [`EvilRelay`] is a small QUIC server on `127.0.0.1:0` that runs the real relay logic
//! ([`candor_shared::relay::Relay`] over a [`MemoryStore`]) — so honest devices cannot tell it
//! from `candor-relay` — and then, between handling a request and writing the answer, lets the
//! test rewrite what it says ([`Attack`]): drop, swap, duplicate, replace or corrupt entries of a
//! `Page`, hide an author's newest entries, or answer `Heads` with an old (rolled-back) head list.
//! Each rule applies to every device or only to one, which is how split views are staged. The
//! test can also plant entries it signed itself straight into the store ([`EvilRelay::plant`]:
//! the store trusts its caller), e.g. a backdated entry signed with a device's key loaded by
//! [`DeviceKeys`].
//!
//! It does not depend on the `candor-relay` crate. Its network driver follows
//! `docs/protocol.md`: TLS 1.3 (ring), ALPN [`candor_shared::ALPN`], a fresh self-signed
//! certificate for `candor-relay` whose SHA-256 devices pin, one [`Session`] per connection keyed
//! to the connection's TLS exporter, one request frame and one answer frame per bidirectional
//! stream, and `Notify` frames after `Subscribed`.
//!
//! Cursors: the relay shows devices *twice* the store's cursors. Devices treat cursors as opaque
//! and rely only on their order, so this changes nothing for an honest exchange, but it leaves the
//! odd numbers free: a duplicated or replayed entry is served at `2c + 1`, right after the entry
//! at `2c`, in strictly rising order as the protocol requires. A `Pull { after }` is answered from
//! store cursor `after / 2`.

use crate::Device;
use anyhow::{anyhow, Context as _, Result};
use candor_shared::chain::LogHead;
use candor_shared::entry::{id_of, peek_author_seq, Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::RelayFingerprint;
use candor_shared::keys::DeviceSecrets;
use candor_shared::payload::{kind, Payload, TextContent};
use candor_shared::relay::memory::MemoryStore;
use candor_shared::relay::{Relay, RelayStore, Session};
use candor_shared::wire::{
    decode_body, encode_frame, frame_len, PagedEntry, PushOutcome, Request, Response, MAX_FRAME,
    TLS_EXPORTER_LABEL,
};
use candor_shared::{DeviceKey, EntryHash, SpaceId, ALPN};
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::PrivatePkcs8KeyDer;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// One way of lying, applied to `Page` and/or `HeadList` answers.
#[derive(Clone, Debug)]
pub enum Attack {
    /// Leave the entry with this id out of every page (a deletion).
    Drop(EntryHash),
    /// Serve these two entries in each other's place when both are in one page (a reorder).
    Swap(EntryHash, EntryHash),
    /// Serve every entry of every page twice (the copy right after the original).
    DuplicateAll,
    /// Serve `bytes` (e.g. an old entry, or a second version of an entry) right after the entry
    /// with id `after`.
    InjectAfter {
        /// Where to inject.
        after: EntryHash,
        /// The entry in wire form.
        bytes: Vec<u8>,
    },
    /// Flip the lowest bit of byte `offset` of the entry with this id.
    FlipByte {
        /// The entry.
        id: EntryHash,
        /// Byte offset within its wire form.
        offset: usize,
    },
    /// Serve `bytes` in place of the entry with id `id`.
    Replace {
        /// The entry replaced.
        id: EntryHash,
        /// What is served instead.
        bytes: Vec<u8>,
    },
    /// Hide `author`'s entries from seq `from` on: left out of pages, and the author's head in
    /// `HeadList` cut back to `from` entries (withholding that looks consistent).
    Withhold {
        /// Whose entries.
        author: DeviceKey,
        /// First hidden seq.
        from: u64,
    },
    /// Answer `Heads` with this head list (e.g. one captured earlier: a rollback, or a replayed
    /// old head).
    ReplayHeads(Vec<(DeviceKey, LogHead)>),
}

#[derive(Debug)]
struct Rule {
    /// Only answers to this device are rewritten (`None`: everyone's).
    device: Option<DeviceKey>,
    attack: Attack,
    /// How many answers this rule changed.
    hits: u64,
}

/// The tampering rules in force; the test may change them at any time.
#[derive(Debug, Default)]
pub struct Tamper {
    rules: Vec<Rule>,
    /// Hits of rules already cleared.
    past_hits: u64,
}

fn position(entries: &[PagedEntry], id: &EntryHash) -> Option<usize> {
    entries
        .iter()
        .position(|e| id_of(&e.entry).as_ref() == Some(id))
}

impl Tamper {
    /// Adds a rule for answers to `device` (or to every device).
    pub fn add(&mut self, device: Option<DeviceKey>, attack: Attack) {
        self.rules.push(Rule {
            device,
            attack,
            hits: 0,
        });
    }

    /// Removes every rule: the relay is honest again.
    pub fn clear(&mut self) {
        self.past_hits += self.rules.iter().map(|r| r.hits).sum::<u64>();
        self.rules.clear();
    }

    /// How many answers were changed so far (by current and cleared rules).
    pub fn hits(&self) -> u64 {
        self.past_hits + self.rules.iter().map(|r| r.hits).sum::<u64>()
    }

    fn applies(rule: &Rule, asker: Option<DeviceKey>) -> bool {
        rule.device.is_none() || rule.device == asker
    }

    /// Rewrites a page whose cursors are already doubled.
    fn page(&mut self, asker: Option<DeviceKey>, entries: &mut Vec<PagedEntry>) {
        for rule in &mut self.rules {
            if !Self::applies(rule, asker) {
                continue;
            }
            let hit = match &rule.attack {
                Attack::Drop(id) => {
                    let before = entries.len();
                    entries.retain(|e| id_of(&e.entry).as_ref() != Some(id));
                    entries.len() != before
                }
                Attack::Swap(a, b) => match (position(entries, a), position(entries, b)) {
                    (Some(i), Some(j)) => {
                        // Swap the entries, keep the cursors where they were (still rising).
                        let (ci, cj) = (entries[i].cursor, entries[j].cursor);
                        entries.swap(i, j);
                        entries[i].cursor = ci;
                        entries[j].cursor = cj;
                        true
                    }
                    _ => false,
                },
                Attack::DuplicateAll => {
                    let doubled: Vec<PagedEntry> = entries
                        .iter()
                        .flat_map(|e| {
                            [
                                e.clone(),
                                PagedEntry {
                                    cursor: e.cursor + 1,
                                    entry: e.entry.clone(),
                                },
                            ]
                        })
                        .collect();
                    let hit = !entries.is_empty();
                    *entries = doubled;
                    hit
                }
                Attack::InjectAfter { after, bytes } => match position(entries, after) {
                    Some(i) => {
                        let cursor = entries[i].cursor + 1;
                        entries.insert(
                            i + 1,
                            PagedEntry {
                                cursor,
                                entry: bytes.clone(),
                            },
                        );
                        true
                    }
                    None => false,
                },
                Attack::FlipByte { id, offset } => {
                    match position(entries, id).and_then(|i| entries[i].entry.get_mut(*offset)) {
                        Some(byte) => {
                            *byte ^= 1;
                            true
                        }
                        None => false,
                    }
                }
                Attack::Replace { id, bytes } => match position(entries, id) {
                    Some(i) => {
                        entries[i].entry = bytes.clone();
                        true
                    }
                    None => false,
                },
                Attack::Withhold { author, from } => {
                    let before = entries.len();
                    entries.retain(|e| {
                        !peek_author_seq(&e.entry)
                            .is_some_and(|(a, seq)| a == *author && seq >= *from)
                    });
                    entries.len() != before
                }
                Attack::ReplayHeads(_) => false,
            };
            if hit {
                rule.hits += 1;
            }
        }
    }

    /// Rewrites a head list.
    fn heads(
        &mut self,
        asker: Option<DeviceKey>,
        store: &MemoryStore,
        space: &SpaceId,
        heads: &mut Vec<(DeviceKey, LogHead)>,
    ) {
        for rule in &mut self.rules {
            if !Self::applies(rule, asker) {
                continue;
            }
            let hit = match &rule.attack {
                Attack::ReplayHeads(old) => {
                    *heads = old.clone();
                    true
                }
                Attack::Withhold { author, from } => {
                    let mut hit = false;
                    for (device, head) in heads.iter_mut() {
                        if device == author && head.count > *from {
                            let hash = from
                                .checked_sub(1)
                                .and_then(|seq| store.hash_at(space, author, seq).ok().flatten())
                                .unwrap_or(EntryHash::ZERO);
                            *head = LogHead { count: *from, hash };
                            hit = true;
                        }
                    }
                    heads.retain(|(_, head)| head.count > 0);
                    hit
                }
                _ => false,
            };
            if hit {
                rule.hits += 1;
            }
        }
    }
}

/// Everything the connection tasks share.
struct Shared {
    relay: Relay<MemoryStore>,
    tamper: Mutex<Tamper>,
    hubs: Mutex<HashMap<SpaceId, broadcast::Sender<u64>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn hub(&self, space: SpaceId) -> broadcast::Sender<u64> {
        lock(&self.hubs)
            .entry(space)
            .or_insert_with(|| broadcast::channel(64).0)
            .clone()
    }

    /// Runs one request through the relay logic, then through the tampering rules.
    fn handle(
        &self,
        session: &Mutex<Session>,
        mut request: Request,
    ) -> (Response, Option<SpaceId>) {
        let mut nonce = [0u8; 32];
        if getrandom::getrandom(&mut nonce).is_err() {
            return (
                Response::error(
                    candor_shared::wire::ErrorCode::Internal,
                    "no randomness available",
                ),
                None,
            );
        }
        if let Request::Pull { after, .. } = &mut request {
            *after /= 2;
        }
        let heads_of = match &request {
            Request::Heads { space } => Some(*space),
            _ => None,
        };
        let (handled, asker) = {
            let mut session = lock(session);
            let handled = self.relay.handle_request(&mut session, request, nonce);
            (handled, session.device())
        };
        // The memory store is durable on every write; the ticket still has to come back.
        if let Some(ticket) = handled.flush {
            self.relay.flushed(ticket);
        }
        if let Some((space, cursor)) = handled.notify {
            // Nobody listening is fine.
            let _ = self.hub(space).send(cursor.saturating_mul(2));
        }
        let mut response = handled.response;
        let mut tamper = lock(&self.tamper);
        match &mut response {
            Response::Page { entries, .. } => {
                for entry in entries.iter_mut() {
                    entry.cursor = entry.cursor.saturating_mul(2);
                }
                tamper.page(asker, entries);
            }
            Response::HeadList { heads } => {
                if let Some(space) = heads_of {
                    tamper.heads(asker, self.relay.store(), &space, heads);
                }
            }
            Response::Pushed { outcomes } => {
                for outcome in outcomes {
                    if let PushOutcome::Stored { cursor } = outcome {
                        *cursor = cursor.saturating_mul(2);
                    }
                }
            }
            _ => {}
        }
        (response, handled.subscribe)
    }
}

/// A malicious relay on loopback; it stops when dropped.
pub struct EvilRelay {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `sha256:…`, the fingerprint devices pin.
    pub fingerprint: String,
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EvilRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvilRelay")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl EvilRelay {
    /// Starts an (initially honest) relay on an OS-assigned loopback port.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the evil relay's runtime")?;
        let certified = rcgen::generate_simple_self_signed(vec!["candor-relay".to_owned()])
            .context("making the evil relay's certificate")?;
        let cert = certified.cert.der().clone();
        let fingerprint = RelayFingerprint(Sha256::digest(cert.as_ref()).into()).to_string();
        let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicServerConfig::try_from(Arc::new(tls))?;
        let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .context("binding the evil relay")?
        };
        let addr = endpoint.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            relay: Relay::new(MemoryStore::default()),
            tamper: Mutex::new(Tamper::default()),
            hubs: Mutex::new(HashMap::new()),
        });
        runtime.spawn(accept(endpoint.clone(), Arc::clone(&shared)));
        Ok(Self {
            addr,
            fingerprint,
            shared,
            endpoint,
            runtime: Some(runtime),
        })
    }

    /// The relay logic and its store (to inspect or plant entries).
    pub fn relay(&self) -> &Relay<MemoryStore> {
        &self.shared.relay
    }

    /// Adds a tampering rule for answers to `device` (`None`: to every device).
    pub fn attack(&self, device: Option<DeviceKey>, attack: Attack) {
        lock(&self.shared.tamper).add(device, attack);
    }

    /// Removes every tampering rule.
    pub fn honest(&self) {
        lock(&self.shared.tamper).clear();
    }

    /// How many answers the tampering rules changed so far.
    pub fn hits(&self) -> u64 {
        lock(&self.shared.tamper).hits()
    }

    /// `space create` on this relay; returns the invite (the last stdout line).
    pub fn create_space(&self, device: &Device) -> Result<String> {
        let out = device.ok(&[
            "space",
            "create",
            "--relay",
            &self.addr,
            "--relay-fingerprint",
            &self.fingerprint,
        ])?;
        out.lines()
            .last()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no invite printed"))
    }

    /// Every entry the relay stores in `space`, in arrival order, decoded and verified.
    pub fn entries(&self, space: &SpaceId) -> Result<Vec<Entry>> {
        let store = self.shared.relay.store();
        let (page, _) = store.page(space, 0, u32::MAX)?;
        page.iter()
            .map(|p| Entry::from_bytes(&p.entry).context("stored entry"))
            .collect()
    }

    /// `author`'s log as the relay stores it, in seq order.
    pub fn log(&self, space: &SpaceId, author: &DeviceKey) -> Result<Vec<Entry>> {
        Ok(self
            .entries(space)?
            .into_iter()
            .filter(|e| e.header.author == *author)
            .collect())
    }

    /// The relay's true heads of `space` (what an honest `HeadList` would say now).
    pub fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>> {
        Ok(self.shared.relay.store().heads(space)?)
    }

    /// Appends `entry` to its author's log in the store, bypassing every check, and returns its
    /// (store) cursor. It is served to pulls like any other entry.
    pub fn plant(&self, space: &SpaceId, entry: &Entry) -> Result<u64> {
        let cursor = self
            .shared
            .relay
            .store()
            .append(space, entry, &entry.to_bytes())?;
        Ok(cursor)
    }
}

impl Drop for EvilRelay {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"bye");
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else {
                return;
            };
            let mut exporter = [0u8; 32];
            if conn
                .export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, b"")
                .is_err()
            {
                return;
            }
            let session = Arc::new(Mutex::new(Session::new(exporter)));
            while let Ok((send, recv)) = conn.accept_bi().await {
                let shared = Arc::clone(&shared);
                let session = Arc::clone(&session);
                tokio::spawn(async move {
                    // A failed stream only ends that stream.
                    let _ = exchange(&shared, &session, send, recv).await;
                });
            }
        });
    }
}

/// One stream: one request frame in, one answer frame out (then notifications for `Subscribe`).
async fn exchange(
    shared: &Shared,
    session: &Mutex<Session>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<()> {
    let bytes = recv.read_to_end(4 + MAX_FRAME).await?;
    let prefix: [u8; 4] = bytes
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| anyhow!("short frame"))?;
    let len = frame_len(prefix)?;
    let body = bytes
        .get(4..)
        .filter(|b| b.len() == len)
        .ok_or_else(|| anyhow!("frame length mismatch"))?;
    let request: Request = decode_body(body)?;
    let (response, subscribe) = shared.handle(session, request);
    // Subscribe before answering, so no notification falls in between.
    let mut notifications = subscribe.map(|space| shared.hub(space).subscribe());
    send.write_all(&encode_frame(&response)?).await?;
    if let Some(notifications) = &mut notifications {
        loop {
            match notifications.recv().await {
                Ok(cursor) => {
                    send.write_all(&encode_frame(&Response::Notify { cursor })?)
                        .await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    send.finish()?;
    Ok(())
}

/// A device's secret keys, loaded from its home, to sign entries as that device would
/// (forged, equivocating or backdated ones).
pub struct DeviceKeys {
    /// The device's signing and exchange keys.
    pub secrets: DeviceSecrets,
    /// The space.
    pub space: SpaceId,
    key: candor_shared::keys::SpaceKey,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("device", &self.secrets.device_key())
            .finish_non_exhaustive()
    }
}

impl DeviceKeys {
    /// Loads the keys of a paired device.
    pub fn load(device: &Device) -> Result<Self> {
        let home = candor::home::Home::new(device.home.clone());
        let secrets = home.identity()?.secrets;
        let space = home
            .space_key()?
            .ok_or_else(|| anyhow!("{} is not paired", device.home.display()))?;
        Ok(Self {
            secrets,
            space: space.space,
            key: space.key,
        })
    }

    /// The device key.
    pub fn device(&self) -> DeviceKey {
        self.secrets.device_key()
    }

    /// Seals and signs a note at `seq` of this device's log, chained to `prev`, dated `time_ms`,
    /// with the given view of the partner's log.
    pub fn note(
        &self,
        seq: u64,
        prev: EntryHash,
        time_ms: u64,
        partner_seen: PartnerSeen,
        text: &str,
    ) -> Result<Entry> {
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).map_err(|e| anyhow!("randomness: {e}"))?;
        let draft = Draft {
            class: Class::Shared,
            space: self.space,
            seq,
            prev,
            time_ms,
            partner_seen,
            nonce,
        };
        let payload = Payload::text(
            kind::NOTE,
            &TextContent {
                text: text.to_owned(),
                replaces: None,
                original_time_ms: None,
                eta: None,
            },
        );
        Ok(Entry::seal(draft, &payload, &self.key, &self.secrets)?)
    }

    /// A second, different version of `original` (same seq, previous hash, time and view),
    /// signed by this device: what an equivocating author would make.
    pub fn other_version(&self, original: &Entry, text: &str) -> Result<Entry> {
        let h = &original.header;
        self.note(h.seq, h.prev, h.time_ms, h.partner_seen, text)
    }
}
