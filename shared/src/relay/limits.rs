//! The limits the relay logic enforces, and the token bucket behind its rate limits.
//!
//! Everything here is sans-IO: time is a number of milliseconds the driver passes in (see
//! [`super::Session::set_now`]). A session whose driver never set a time is not rate limited and
//! its invites never expire (the in-memory simulations and unit tests rely on that).

use crate::entry::MAX_ENTRY;
use crate::wire::{MAX_PAGE_ENTRIES, MAX_PUSH_ENTRIES};
use serde::{Deserialize, Serialize};

/// A token-bucket rate: `per_second` tokens are added each second, up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained rate, in events per second (0 disables the limit).
    pub per_second: f64,
    /// Events allowed at once after a quiet period.
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with room for `burst` at once.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// Whether this rate limits anything.
    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
    }
}

/// A token bucket. Starts full; each event takes one token; tokens come back at
/// [`Rate::per_second`] up to [`Rate::burst`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ms`.
    pub fn new(rate: &Rate, now_ms: u64) -> Self {
        Self {
            tokens: f64::from(rate.burst.max(1)),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: &Rate, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(f64::from(rate.burst.max(1)));
        // A clock that goes backwards never refills twice.
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Takes one token at `now_ms`: `Ok(())`, or `Err(ms)` with how long until one is available.
    pub fn take(&mut self, rate: &Rate, now_ms: u64) -> Result<(), u64> {
        if !rate.is_limited() {
            return Ok(());
        }
        self.refill(rate, now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - self.tokens) / rate.per_second * 1000.0).ceil();
            Err(wait.max(1.0) as u64)
        }
    }

    /// Whether the bucket is full again at `now_ms` (so forgetting it changes nothing).
    pub fn is_full(&self, rate: &Rate, now_ms: u64) -> bool {
        let mut copy = *self;
        copy.refill(rate, now_ms);
        copy.tokens >= f64::from(rate.burst.max(1))
    }
}

/// Limits of the relay logic. [`Default`] gives the production defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimits {
    /// Largest entry (header, signature and ciphertext) accepted in a push, in bytes; at most
    /// the protocol's [`MAX_ENTRY`].
    pub max_entry_bytes: usize,
    /// Most entries in one push; at most the protocol's [`MAX_PUSH_ENTRIES`].
    pub max_push_entries: usize,
    /// Most entries in one pull page; at most the protocol's [`MAX_PAGE_ENTRIES`].
    pub max_page_entries: u32,
    /// Most entry bytes stored per space (0: unlimited).
    pub space_quota_bytes: u64,
    /// How long an invite can be used after its space was created, in milliseconds (0: forever).
    pub invite_expiry_ms: u64,
    /// Requests per authenticated device, across all its connections.
    pub device_requests: Rate,
}

/// Default per-space storage quota: 256 MiB of entries (a couple writing a hundred long entries
/// a day would need decades to reach it).
pub const DEFAULT_SPACE_QUOTA_BYTES: u64 = 256 * 1024 * 1024;
/// Default invite lifetime: 7 days.
pub const DEFAULT_INVITE_EXPIRY_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Default per-device request rate: 20 per second sustained, bursts of 200.
pub const DEFAULT_DEVICE_REQUESTS: Rate = Rate::new(20.0, 200);

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_entry_bytes: MAX_ENTRY,
            max_push_entries: MAX_PUSH_ENTRIES,
            max_page_entries: MAX_PAGE_ENTRIES,
            space_quota_bytes: DEFAULT_SPACE_QUOTA_BYTES,
            invite_expiry_ms: DEFAULT_INVITE_EXPIRY_MS,
            device_requests: DEFAULT_DEVICE_REQUESTS,
        }
    }
}

impl RelayLimits {
    /// The same limits with every value clamped to what the protocol allows (a relay cannot
    /// promise more than devices may send or read).
    pub fn clamped(mut self) -> Self {
        self.max_entry_bytes = self.max_entry_bytes.clamp(1, MAX_ENTRY);
        self.max_push_entries = self.max_push_entries.clamp(1, MAX_PUSH_ENTRIES);
        self.max_page_entries = self.max_page_entries.clamp(1, MAX_PAGE_ENTRIES);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let rate = Rate::new(10.0, 3);
        let mut bucket = TokenBucket::new(&rate, 1_000);
        for _ in 0..3 {
            assert_eq!(bucket.take(&rate, 1_000), Ok(()));
        }
        assert_eq!(bucket.take(&rate, 1_000), Err(100));
        assert_eq!(bucket.take(&rate, 1_050), Err(50));
        assert_eq!(bucket.take(&rate, 1_100), Ok(()));
        assert!(!bucket.is_full(&rate, 1_100));
        assert!(bucket.is_full(&rate, 10_000));
        // Time going backwards neither refills nor panics.
        assert!(bucket.take(&rate, 0).is_err());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let rate = Rate::new(0.0, 0);
        let mut bucket = TokenBucket::new(&rate, 0);
        for _ in 0..10_000 {
            assert_eq!(bucket.take(&rate, 0), Ok(()));
        }
    }

    #[test]
    fn clamped_respects_protocol_maxima() {
        let limits = RelayLimits {
            max_entry_bytes: usize::MAX,
            max_push_entries: 0,
            max_page_entries: u32::MAX,
            ..RelayLimits::default()
        }
        .clamped();
        assert_eq!(limits.max_entry_bytes, MAX_ENTRY);
        assert_eq!(limits.max_push_entries, 1);
        assert_eq!(limits.max_page_entries, MAX_PAGE_ENTRIES);
    }
}
