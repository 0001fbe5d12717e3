//! The relay's request handling, as a state machine over a storage trait.
//!
//! [`Relay::handle_request`] takes one decoded [`Request`] of an authenticated (or not yet
//! authenticated) [`Session`] and returns a [`Handled`]: the response plus what the driver must do
//! around it. The driver (tokio + quinn + sled in `candor-relay`, plain memory in tests) owns
//! sockets, the clock, randomness and durability:
//!
//! * it passes a fresh random nonce with every request (used only by `Hello`);
//! * when [`Handled::flush`] holds a ticket it must make the store durable *before* sending the
//!   response, because the response acknowledges stored entries, and then hand the ticket back
//!   with [`Relay::flushed`] so that pulls may serve those entries (never before they are
//!   durable: a crash could otherwise reuse their cursors for other entries);
//! * it then wakes subscribers of [`Handled::notify`] and, for [`Handled::subscribe`], keeps the
//!   stream open for `Notify` frames.
//!
//! Invariants enforced here, whatever the store: a device reads and writes only spaces it is a
//! member of; every stored entry verifies (signature, ciphertext hash) and extends its author's log
//! by exactly one; a re-push of a held entry is a no-op; a different entry at a held seq is never
//! stored in the log but kept as evidence.
//!
//! Limits ([`RelayLimits`]) are enforced here too, each answered with an `Error` whose code and
//! message name the limit: entry size and entries per push ([`ErrorCode::LimitExceeded`]), the
//! per-space storage quota ([`ErrorCode::QuotaExceeded`]), the per-device request rate
//! ([`ErrorCode::RateLimited`]) and the invite lifetime ([`ErrorCode::InviteExpired`]). The last
//! two need the time, which the driver sets on the session with [`Session::set_now`] before each
//! request.

use crate::chain::{Fit, LogHead, PendingHeads};
use crate::entry::Entry;
use crate::invite::token_matches;
use crate::keys::{verify_signature, AUTH_SIGNATURE_PREFIX};
use crate::wire::{
    auth_message, ErrorCode, MemberCard, PagedEntry, PushOutcome, Request, Response,
    MAX_PAGE_BYTES, MAX_PAGE_ENTRIES, MAX_PUSH_ENTRIES,
};
use crate::{DeviceKey, EntryHash, SpaceId, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

pub mod limits;
pub use limits::{Rate, RelayLimits, TokenBucket};

/// Most per-device rate-limit buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_DEVICES: usize = 4096;

/// Most devices in one space: one per partner.
pub const MAX_MEMBERS: usize = 2;

/// What the relay keeps about a space besides its entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRecord {
    /// Member devices, creator first.
    pub members: Vec<MemberCard>,
    /// Verifier of the invite token (kept after use, to tell "used" from "wrong").
    pub invite_verifier: [u8; 32],
    /// The sealed space key, present until the invite is used.
    pub sealed_space_key: Option<Vec<u8>>,
    /// When the space was created, in milliseconds since the Unix epoch (0: unknown, e.g. a
    /// space created before relays recorded it; its invite never expires).
    pub created_ms: u64,
}

impl SpaceRecord {
    fn is_member(&self, device: &DeviceKey) -> bool {
        self.members.iter().any(|m| m.public.device == *device)
    }
}

/// Storage the relay logic needs: sled in `candor-relay`, memory in tests; a server database could
/// implement it too.
///
/// # Contract
///
/// * **Serialized writes per space.** [`Relay`] calls the writing methods ([`put_space`],
///   [`append`], [`append_batch`], [`record_conflict`]) for a space only while it holds that
///   space's [`lock_space`] guard, and it makes the reads that decide those writes (record, heads,
///   hashes, usage, conflicts) under the same guard. The guard must exclude every other writer of
///   the space *sharing the store*: a mutex is enough for a store one process owns (sled, memory);
///   a database shared by several relay processes needs a lock in the database (PostgreSQL: an
///   advisory lock). Reads may run concurrently with a write and must see either all or none of
///   it.
/// * **Atomic appends.** [`append`] stores the entry under its cursor, the author's hash at that
///   seq, the author's new head and the space's byte usage all together or not at all, even
///   across a crash.
/// * **Ordering.** Cursors of a space start at 1, rise by one per append and are never reused,
///   because entries are never deleted. [`page`] returns entries in cursor order. Since the relay
///   appends an entry only when it extends its author's log, cursor order is consistent with every
///   log's seq order.
/// * **Conflicts.** At most one conflicting entry is kept per (space, author, seq):
///   [`record_conflict`] keeps it only if none is held there (and says whether it did), and its
///   bytes count in [`space_bytes`] from then on, atomically with keeping it.
/// * **Durability.** Writes need not be durable when a method returns. The driver makes them
///   durable with a store-specific flush *before* it acknowledges them to a device; after that
///   they must survive a crash of the process (and, as far as the platform allows, a power
///   loss). A flush covers every write that returned before it started. A store that is durable on
///   every write says so with [`durable_on_write`]. After a crash, the store may have lost writes
///   that were never flushed, but only a suffix: never an entry while keeping a later one.
/// * **Idempotency** is the relay's job, not the store's: the relay checks heads and hashes
///   before appending, so re-pushes of held entries never reach [`append`]. [`put_space`] replaces
///   the record, so repeating it is harmless.
/// * **Errors** are reported, never panics; a corrupt record is an error.
///
/// [`put_space`]: RelayStore::put_space
/// [`append`]: RelayStore::append
/// [`record_conflict`]: RelayStore::record_conflict
/// [`append_batch`]: RelayStore::append_batch
/// [`lock_space`]: RelayStore::lock_space
/// [`space_bytes`]: RelayStore::space_bytes
/// [`page`]: RelayStore::page
/// [`durable_on_write`]: RelayStore::durable_on_write
pub trait RelayStore {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What [`RelayStore::lock_space`] returns: writes to the space are excluded until it drops.
    type SpaceLock<'a>
    where
        Self: 'a;

    /// Waits until no other writer (of this process or, for a shared database, of any process)
    /// holds `space`, and excludes them until the guard drops.
    fn lock_space(&self, space: &SpaceId) -> Result<Self::SpaceLock<'_>, Self::Error>;

    /// The space's record, if the space exists.
    fn space(&self, space: &SpaceId) -> Result<Option<SpaceRecord>, Self::Error>;
    /// Creates or replaces the space's record (and indexes its members' spaces).
    fn put_space(&self, space: &SpaceId, record: &SpaceRecord) -> Result<(), Self::Error>;
    /// Spaces the device is a member of.
    fn spaces_of(&self, device: &DeviceKey) -> Result<Vec<SpaceId>, Self::Error>;
    /// Head of one author's log in a space (default when the author has no entries).
    fn head(&self, space: &SpaceId, author: &DeviceKey) -> Result<LogHead, Self::Error>;
    /// Heads of all logs in a space.
    fn heads(&self, space: &SpaceId) -> Result<Vec<(DeviceKey, LogHead)>, Self::Error>;
    /// Hash of the author's entry at `seq`, if held.
    fn hash_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Self::Error>;
    /// Entry bytes stored in the space: its log and the conflicting entries kept (what counts
    /// against its quota).
    fn space_bytes(&self, space: &SpaceId) -> Result<u64, Self::Error>;
    /// Appends an entry that extends its author's log; returns its cursor (1, 2, …).
    fn append(&self, space: &SpaceId, entry: &Entry, bytes: &[u8]) -> Result<u64, Self::Error>;
    /// Appends entries (each extending its author's log, in order) as one atomic write; returns
    /// their cursors. The default appends one by one; stores override it to write a push in a
    /// single transaction.
    fn append_batch(
        &self,
        space: &SpaceId,
        entries: &[(Entry, Vec<u8>)],
    ) -> Result<Vec<u64>, Self::Error> {
        entries
            .iter()
            .map(|(entry, bytes)| self.append(space, entry, bytes))
            .collect()
    }
    /// Hash of the conflicting entry kept at the author's `seq`, if one is.
    fn conflict_at(
        &self,
        space: &SpaceId,
        author: &DeviceKey,
        seq: u64,
    ) -> Result<Option<EntryHash>, Self::Error>;
    /// Keeps a conflicting entry (a second entry at a held seq) as evidence, counting its bytes
    /// in [`RelayStore::space_bytes`], unless one is already kept at its (author, seq); true if
    /// it was kept.
    fn record_conflict(
        &self,
        space: &SpaceId,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<bool, Self::Error>;
    /// Whether every write is durable as soon as it returns (true only for stores that are never
    /// flushed, like the in-memory one); if false, the relay serves appended entries only after
    /// the driver reports them flushed.
    fn durable_on_write(&self) -> bool {
        false
    }
    /// Entries with cursor greater than `after`, at most `limit`, and whether more follow.
    fn page(
        &self,
        space: &SpaceId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<PagedEntry>, bool), Self::Error>;
}

/// Per-connection state, owned by the driver.
#[derive(Debug)]
pub struct Session {
    tls_exporter: [u8; 32],
    challenge: Option<[u8; 32]>,
    device: Option<DeviceKey>,
    now_ms: Option<u64>,
}

impl Session {
    /// A new, unauthenticated session on a connection whose TLS exporter output (label
    /// [`crate::wire::TLS_EXPORTER_LABEL`]) is `tls_exporter`.
    pub fn new(tls_exporter: [u8; 32]) -> Self {
        Self {
            tls_exporter,
            challenge: None,
            device: None,
            now_ms: None,
        }
    }

    /// Sets the current time (milliseconds since the Unix epoch) for the next requests: used for
    /// rate limits and invite expiry. A session that never had a time set is exempt from both.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = Some(now_ms);
    }

    /// The authenticated device, if any.
    pub fn device(&self) -> Option<DeviceKey> {
        self.device
    }
}

/// The outcome of one request.
#[derive(Debug)]
pub struct Handled {
    /// The response to send.
    pub response: Response,
    /// The store must be flushed before the response is sent; then pass this to
    /// [`Relay::flushed`].
    pub flush: Option<FlushTicket>,
    /// Subscribers of this space should be told about this cursor.
    pub notify: Option<(SpaceId, u64)>,
    /// The stream becomes a subscription to this space.
    pub subscribe: Option<SpaceId>,
}

impl Handled {
    fn reply(response: Response) -> Self {
        Self {
            response,
            flush: None,
            notify: None,
            subscribe: None,
        }
    }
}

/// The relay logic, generic over its store.
#[derive(Debug)]
pub struct Relay<S> {
    store: S,
    limits: RelayLimits,
    durability: Mutex<Durability>,
    device_rates: Mutex<HashMap<DeviceKey, TokenBucket>>,
}

/// Which appended entries are durable, so that pulls never serve an entry a crash could still
/// take back (its cursor would then be reused for another entry).
#[derive(Debug, Default)]
struct Durability {
    /// Last cursor appended per space by this process.
    appended: std::collections::HashMap<SpaceId, u64>,
    /// Last cursor known flushed per space.
    durable: std::collections::HashMap<SpaceId, u64>,
}

/// What a flush is about to cover; see [`Relay::begin_flush`].
#[derive(Debug)]
pub struct FlushTicket(Vec<(SpaceId, u64)>);

fn error(code: ErrorCode, message: impl Into<String>) -> Handled {
    Handled::reply(Response::error(code, message))
}

/// The one answer to any request about a space `device` is not in, whether or not it exists.
fn not_member(device: &DeviceKey, space: &SpaceId) -> Handled {
    error(
        ErrorCode::Forbidden,
        format!(
            "device {} is not a member of space {}",
            device.short(),
            space.short()
        ),
    )
}

impl<S: RelayStore> Relay<S> {
    /// Wraps a store, with the default [`RelayLimits`].
    pub fn new(store: S) -> Self {
        Self::with_limits(store, RelayLimits::default())
    }

    /// Wraps a store, enforcing `limits` (clamped to the protocol's maxima).
    pub fn with_limits(store: S, limits: RelayLimits) -> Self {
        Self {
            store,
            limits: limits.clamped(),
            durability: Mutex::new(Durability::default()),
            device_rates: Mutex::new(HashMap::new()),
        }
    }

    /// The limits this relay enforces.
    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    /// Charges one request to `device`'s rate at `now_ms`; the refusal if it has none left.
    fn rate_limit(&self, device: &DeviceKey, now_ms: u64) -> Option<Handled> {
        let rate = self.limits.device_requests;
        if !rate.is_limited() {
            return None;
        }
        let mut buckets = self.device_rates.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_DEVICES && !buckets.contains_key(device) {
            buckets.retain(|_, bucket| !bucket.is_full(&rate, now_ms));
        }
        let bucket = buckets
            .entry(*device)
            .or_insert_with(|| TokenBucket::new(&rate, now_ms));
        let wait = bucket.take(&rate, now_ms).err()?;
        Some(error(
            ErrorCode::RateLimited,
            format!(
                "rate limit: this relay allows a device {} requests per second (bursts of {}); \
                 retry in {wait} ms",
                rate.per_second, rate.burst
            ),
        ))
    }

    /// What a flush started after this call covers: everything appended so far.
    fn flush_ticket(&self) -> FlushTicket {
        let durability = self.durability.lock().unwrap_or_else(|p| p.into_inner());
        FlushTicket(durability.appended.iter().map(|(s, c)| (*s, *c)).collect())
    }

    /// The flush a [`Handled::flush`] asked for succeeded: the entries it covers may be served.
    pub fn flushed(&self, ticket: FlushTicket) {
        let mut durability = self.durability.lock().unwrap_or_else(|p| p.into_inner());
        for (space, cursor) in ticket.0 {
            let durable = durability.durable.entry(space).or_insert(0);
            *durable = (*durable).max(cursor);
        }
    }

    /// The highest cursor of `space` that may be served, if some appended entries are not yet
    /// durable (entries stored before this process started are all durable).
    fn servable(&self, space: &SpaceId) -> Option<u64> {
        if self.store.durable_on_write() {
            return None;
        }
        let durability = self.durability.lock().unwrap_or_else(|p| p.into_inner());
        let appended = *durability.appended.get(space)?;
        let durable = durability.durable.get(space).copied().unwrap_or(0);
        (durable < appended).then_some(durable)
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one request. `fresh_nonce` must be 32 bytes from the OS RNG.
    pub fn handle_request(
        &self,
        session: &mut Session,
        request: Request,
        fresh_nonce: [u8; 32],
    ) -> Handled {
        match self.dispatch(session, request, fresh_nonce) {
            Ok(handled) => handled,
            Err(e) => error(ErrorCode::Internal, format!("relay storage error: {e}")),
        }
    }

    fn dispatch(
        &self,
        session: &mut Session,
        request: Request,
        fresh_nonce: [u8; 32],
    ) -> Result<Handled, S::Error> {
        if let Request::Hello { version } = request {
            if version != PROTOCOL_VERSION {
                return Ok(error(
                    ErrorCode::BadRequest,
                    format!("protocol version {version} is not supported (relay speaks {PROTOCOL_VERSION})"),
                ));
            }
            session.challenge = Some(fresh_nonce);
            return Ok(Handled::reply(Response::Challenge { nonce: fresh_nonce }));
        }
        if let Request::Authenticate { device, signature } = request {
            return self.authenticate(session, device, &signature);
        }
        let Some(device) = session.device else {
            return Ok(error(
                ErrorCode::NotAuthenticated,
                "authenticate first (Hello, then Authenticate)",
            ));
        };
        if let Some(now_ms) = session.now_ms {
            if let Some(refused) = self.rate_limit(&device, now_ms) {
                return Ok(refused);
            }
        }
        match request {
            Request::Hello { .. } | Request::Authenticate { .. } => {
                Ok(error(ErrorCode::BadRequest, "already handled"))
            }
            Request::CreateSpace {
                space,
                invite_verifier,
                sealed_space_key,
                member,
            } => self.create_space(
                device,
                space,
                invite_verifier,
                sealed_space_key,
                member,
                session.now_ms.unwrap_or(0),
            ),
            Request::Join {
                space,
                token,
                member,
            } => self.join(device, space, token, member, session.now_ms),
            Request::Members { space } => Ok(match self.member_space(&device, &space)? {
                Ok(record) => Handled::reply(Response::MemberList {
                    members: record.members,
                }),
                Err(refused) => refused,
            }),
            Request::Heads { space } => Ok(match self.member_space(&device, &space)? {
                Ok(_) => Handled::reply(Response::HeadList {
                    heads: self.store.heads(&space)?,
                }),
                Err(refused) => refused,
            }),
            Request::Push { space, entries } => self.push(device, space, entries, session.now_ms),
            Request::Pull {
                space,
                after,
                limit,
            } => Ok(match self.member_space(&device, &space)? {
                Ok(_) => {
                    let limit = limit.clamp(1, self.limits.max_page_entries.min(MAX_PAGE_ENTRIES));
                    let (mut entries, more) = self.store.page(&space, after, limit)?;
                    let cut = fit_page(&mut entries);
                    let mut held_back = false;
                    if let Some(servable) = self.servable(&space) {
                        let before = entries.len();
                        entries.retain(|e| e.cursor <= servable);
                        held_back = entries.len() != before;
                    }
                    Handled::reply(Response::Page {
                        entries,
                        // Entries held back until durable are announced with `Notify` then.
                        more: (more || cut) && !held_back,
                    })
                }
                Err(refused) => refused,
            }),
            Request::Subscribe { space } => Ok(match self.member_space(&device, &space)? {
                Ok(_) => Handled {
                    subscribe: Some(space),
                    ..Handled::reply(Response::Subscribed)
                },
                Err(refused) => refused,
            }),
        }
    }

    fn authenticate(
        &self,
        session: &mut Session,
        device: DeviceKey,
        signature: &[u8],
    ) -> Result<Handled, S::Error> {
        let Some(nonce) = session.challenge.take() else {
            return Ok(error(
                ErrorCode::AuthFailed,
                "no challenge outstanding: send Hello first",
            ));
        };
        let Ok(signature) = <[u8; 64]>::try_from(signature) else {
            return Ok(error(ErrorCode::AuthFailed, "signature must be 64 bytes"));
        };
        let message = auth_message(&nonce, &session.tls_exporter, &device);
        if verify_signature(&device, AUTH_SIGNATURE_PREFIX, &message, &signature).is_err() {
            return Ok(error(
                ErrorCode::AuthFailed,
                "challenge signature does not verify for this device on this connection",
            ));
        }
        session.device = Some(device);
        Ok(Handled::reply(Response::Authenticated {
            spaces: self.store.spaces_of(&device)?,
        }))
    }

    /// The space's record if `device` is a member, or the refusal to send.
    fn member_space(
        &self,
        device: &DeviceKey,
        space: &SpaceId,
    ) -> Result<Result<SpaceRecord, Handled>, S::Error> {
        Ok(match self.store.space(space)? {
            Some(record) if record.is_member(device) => Ok(record),
            // Same answer for "no such space" and "not yours": do not confirm a space exists.
            _ => Err(not_member(device, space)),
        })
    }

    fn create_space(
        &self,
        device: DeviceKey,
        space: SpaceId,
        invite_verifier: [u8; 32],
        sealed_space_key: Vec<u8>,
        member: MemberCard,
        now_ms: u64,
    ) -> Result<Handled, S::Error> {
        if member.public.device != device {
            return Ok(error(
                ErrorCode::BadRequest,
                "member card names another device",
            ));
        }
        if sealed_space_key.len() > 256 {
            return Ok(error(
                ErrorCode::BadRequest,
                "sealed space key is too large",
            ));
        }
        let _guard = self.store.lock_space(&space)?;
        if let Some(existing) = self.store.space(&space)? {
            // Its creator asking again (a lost answer) gets the same answer; anyone else gets
            // the answer every request about a space one is not in gets.
            if existing.members.first() == Some(&member)
                && existing.invite_verifier == invite_verifier
            {
                return Ok(Handled {
                    flush: Some(self.flush_ticket()),
                    ..Handled::reply(Response::SpaceCreated)
                });
            }
            return Ok(not_member(&device, &space));
        }
        let record = SpaceRecord {
            members: vec![member],
            invite_verifier,
            sealed_space_key: Some(sealed_space_key),
            created_ms: now_ms,
        };
        self.store.put_space(&space, &record)?;
        Ok(Handled {
            flush: Some(self.flush_ticket()),
            ..Handled::reply(Response::SpaceCreated)
        })
    }

    fn join(
        &self,
        device: DeviceKey,
        space: SpaceId,
        token: [u8; 32],
        member: MemberCard,
        now_ms: Option<u64>,
    ) -> Result<Handled, S::Error> {
        if member.public.device != device {
            return Ok(error(
                ErrorCode::BadRequest,
                "member card names another device",
            ));
        }
        let _guard = self.store.lock_space(&space)?;
        // One answer for "no such space" and "wrong invite": do not confirm a space exists.
        let invalid = || {
            error(
                ErrorCode::InviteInvalid,
                "the invite does not match a space on this relay",
            )
        };
        let Some(mut record) = self.store.space(&space)? else {
            return Ok(invalid());
        };
        if !token_matches(&token, &record.invite_verifier) {
            return Ok(invalid());
        }
        let joined = record.members.len() >= MAX_MEMBERS;
        // The same device joining again because its first answer was lost: answer again, until
        // its first stored entry shows it got the key (see `push`).
        let retry = joined && record.members.last() == Some(&member);
        let sealed_space_key = match &record.sealed_space_key {
            Some(sealed) if !joined || retry => sealed.clone(),
            _ => {
                return Ok(error(
                    ErrorCode::InviteUsed,
                    "this invite has already been used",
                ))
            }
        };
        let expiry = self.limits.invite_expiry_ms;
        if let Some(now_ms) = now_ms {
            if !retry
                && expiry > 0
                && record.created_ms > 0
                && now_ms.saturating_sub(record.created_ms) > expiry
            {
                return Ok(error(
                    ErrorCode::InviteExpired,
                    format!(
                        "this invite has expired: invites on this relay are valid for {} after \
                         the space is created; ask your partner to create a new space",
                        describe_ms(expiry)
                    ),
                ));
            }
        }
        if retry {
            return Ok(Handled::reply(Response::Joined {
                sealed_space_key,
                members: record.members,
            }));
        }
        if record.is_member(&device) {
            return Ok(error(
                ErrorCode::BadRequest,
                "this device is already a member",
            ));
        }
        record.members.push(member);
        self.store.put_space(&space, &record)?;
        Ok(Handled {
            flush: Some(self.flush_ticket()),
            ..Handled::reply(Response::Joined {
                sealed_space_key,
                members: record.members,
            })
        })
    }

    fn push(
        &self,
        device: DeviceKey,
        space: SpaceId,
        entries: Vec<Vec<u8>>,
        now_ms: Option<u64>,
    ) -> Result<Handled, S::Error> {
        let record = match self.member_space(&device, &space)? {
            Ok(record) => record,
            Err(refused) => return Ok(refused),
        };
        let max_push = self.limits.max_push_entries.min(MAX_PUSH_ENTRIES);
        if entries.len() > max_push {
            return Ok(error(
                ErrorCode::LimitExceeded,
                format!(
                    "entries per push: {} sent, this relay accepts at most {max_push}",
                    entries.len()
                ),
            ));
        }
        let max_entry = self.limits.max_entry_bytes;
        if let Some(big) = entries.iter().find(|e| e.len() > max_entry) {
            return Ok(error(
                ErrorCode::LimitExceeded,
                format!(
                    "entry size: an entry of {} bytes exceeds this relay's limit of {max_entry} \
                     bytes",
                    big.len()
                ),
            ));
        }
        // Signature and hash checks are the expensive part: do them before taking the write lock,
        // so that pushes to different spaces verify in parallel, with one batch signature check
        // per push (the same verdict per entry as checking each alone).
        let items: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let checked = Entry::from_bytes_batch(&items);
        let parsed: Vec<(Vec<u8>, Result<Entry, String>)> = entries
            .into_iter()
            .zip(checked)
            .map(|(bytes, entry)| (bytes, entry.map_err(|e| e.to_string())))
            .collect();
        let _guard = self.store.lock_space(&space)?;
        let mut outcomes = Vec::with_capacity(parsed.len());
        let mut last_cursor = None;
        let mut flush = false;
        let quota = self.limits.space_quota_bytes;
        let mut used = if quota > 0 {
            self.store.space_bytes(&space)?
        } else {
            0
        };
        // A refusal (quota, rate) that ends the push; entries classified before it are kept.
        let mut refusal: Option<Response> = None;
        let over_quota = |used: u64, len: usize| {
            Response::error(
                ErrorCode::QuotaExceeded,
                format!(
                    "storage quota: this space holds {used} bytes of entries and this relay \
                     allows {quota} per space; an entry of {len} bytes does not fit"
                ),
            )
        };
        // Classify every entry against the heads as they will be once the earlier entries of
        // this push are stored, then store all that fit in one write.
        let mut pending: Vec<(Entry, Vec<u8>)> = Vec::new();
        let mut pending_heads = PendingHeads::default();
        for (bytes, entry) in parsed {
            let outcome = match entry {
                Err(reason) => PushOutcome::Rejected { reason },
                Ok(entry) => {
                    let author = entry.header.author;
                    if !record.is_member(&author) {
                        PushOutcome::Rejected {
                            reason: format!(
                                "author {} is not a member of this space",
                                author.short()
                            ),
                        }
                    } else {
                        let head =
                            pending_heads.head(&author, || self.store.head(&space, &author))?;
                        match head.classify(&space, &entry.header) {
                            Ok(Fit::Next) => {
                                if quota > 0 && used.saturating_add(bytes.len() as u64) > quota {
                                    refusal = Some(over_quota(used, bytes.len()));
                                    break;
                                }
                                used = used.saturating_add(bytes.len() as u64);
                                pending_heads.push(author, head, entry.hash);
                                pending.push((entry, bytes));
                                // The cursor is filled in once the batch is stored.
                                PushOutcome::Stored { cursor: 0 }
                            }
                            Ok(Fit::AlreadyHeld) => {
                                let seq = entry.header.seq;
                                let held = match pending_heads.hash_at(&author, seq) {
                                    Some(hash) => Some(hash),
                                    None => self.store.hash_at(&space, &author, seq)?,
                                };
                                if held == Some(entry.hash) {
                                    PushOutcome::Duplicate
                                } else if self
                                    .store
                                    .conflict_at(&space, &author, entry.header.seq)?
                                    .is_some()
                                {
                                    // One conflict per (author, seq) is the whole proof: others
                                    // are answered alike but not kept.
                                    PushOutcome::Conflict
                                } else {
                                    // Keeping evidence costs storage: it counts against the
                                    // quota and each entry kept is charged as a request.
                                    let len = bytes.len() as u64;
                                    if quota > 0 && used.saturating_add(len) > quota {
                                        refusal = Some(over_quota(used, bytes.len()));
                                        break;
                                    }
                                    if let Some(refused) =
                                        now_ms.and_then(|now| self.rate_limit(&device, now))
                                    {
                                        refusal = Some(refused.response);
                                        break;
                                    }
                                    if self.store.record_conflict(&space, &entry, &bytes)? {
                                        used = used.saturating_add(len);
                                    }
                                    PushOutcome::Conflict
                                }
                            }
                            Err(e) => PushOutcome::Rejected {
                                reason: e.to_string(),
                            },
                        }
                    }
                }
            };
            if matches!(outcome, PushOutcome::Conflict | PushOutcome::Duplicate) {
                // A duplicate may be the retry of a push whose flush has not completed yet: it
                // is acknowledged as held, so it too waits for a flush.
                flush = true;
            }
            outcomes.push(outcome);
        }
        if !pending.is_empty() {
            let cursors = self.store.append_batch(&space, &pending)?;
            let mut cursors = cursors.into_iter();
            for outcome in outcomes.iter_mut() {
                if let PushOutcome::Stored { cursor } = outcome {
                    *cursor = cursors.next().unwrap_or(0);
                    last_cursor = Some(*cursor);
                }
            }
            flush = true;
        }
        if let Some(cursor) = last_cursor {
            let mut durability = self.durability.lock().unwrap_or_else(|p| p.into_inner());
            durability.appended.insert(space, cursor);
        }
        // The joiner's first stored entry proves it holds the space key: the sealed copy the
        // relay kept for a retried join is no longer needed.
        if last_cursor.is_some()
            && record.sealed_space_key.is_some()
            && record.members.len() == MAX_MEMBERS
            && record
                .members
                .last()
                .is_some_and(|m| m.public.device == device)
        {
            let mut record = record;
            record.sealed_space_key = None;
            self.store.put_space(&space, &record)?;
        }
        // Entries stored before a refusal are kept (and announced once durable); the device
        // learns of them as duplicates when it retries.
        let response = refusal.unwrap_or(Response::Pushed { outcomes });
        Ok(Handled {
            flush: flush.then(|| self.flush_ticket()),
            notify: last_cursor.map(|cursor| (space, cursor)),
            ..Handled::reply(response)
        })
    }
}

/// A duration in the largest whole unit that describes it (for messages).
fn describe_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    for (unit, name) in UNITS {
        if ms >= unit && ms % unit == 0 {
            let n = ms / unit;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} ms")
}

/// Cuts a page to [`MAX_PAGE_BYTES`] of entries (keeping at least one); true if it cut any.
fn fit_page(entries: &mut Vec<PagedEntry>) -> bool {
    let mut used = 0usize;
    let keep = entries
        .iter()
        .take_while(|e| {
            used += e.entry.len() + 16; // + postcard overhead of cursor and length
            used <= MAX_PAGE_BYTES
        })
        .count()
        .max(1);
    let cut = keep < entries.len();
    entries.truncate(keep);
    cut
}

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod memory;

#[cfg(test)]
mod tests;
