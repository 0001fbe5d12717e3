//! Fan-out of "an entry landed" events to the streams subscribed to a space.
//!
//! Each space with at least one subscriber has a [`tokio::sync::broadcast`] channel carrying the
//! space's newest cursor. Subscribers only ever need the latest cursor (they then pull everything
//! after the last one they saw), so a subscriber that lags behind loses nothing by skipping
//! intermediate values. Channels without subscribers are dropped.

use candor_shared::SpaceId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Cursors buffered per space before a slow subscriber lags (and then just gets the latest).
const CHANNEL_CAPACITY: usize = 16;

/// Per-space notification channels.
#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<HashMap<SpaceId, broadcast::Sender<u64>>>,
}

impl Hub {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<SpaceId, broadcast::Sender<u64>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts receiving the cursors of entries that land in `space` from now on.
    pub fn subscribe(&self, space: SpaceId) -> broadcast::Receiver<u64> {
        let mut channels = self.channels();
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels
            .entry(space)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Tells the space's subscribers, if any, that an entry landed at `cursor`.
    pub fn publish(&self, space: SpaceId, cursor: u64) {
        let mut channels = self.channels();
        if let Some(sender) = channels.get(&space) {
            if sender.send(cursor).is_err() {
                // Nobody listens any more.
                channels.remove(&space);
            }
        }
    }

    /// The spaces that have subscribers now.
    pub fn spaces_subscribed(&self) -> Vec<SpaceId> {
        let mut channels = self.channels();
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels.keys().copied().collect()
    }

    /// Number of spaces with a live channel (for tests and diagnostics).
    pub fn spaces(&self) -> usize {
        let mut channels = self.channels();
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_subscribers_of_the_space_only_and_forgets_idle_channels() {
        let hub = Hub::default();
        let (a, b) = (SpaceId([1; 16]), SpaceId([2; 16]));
        hub.publish(a, 1); // no subscribers: dropped
        let mut rx_a = hub.subscribe(a);
        let mut rx_b = hub.subscribe(b);
        hub.publish(a, 2);
        assert_eq!(rx_a.recv().await.unwrap(), 2);
        assert!(rx_b.try_recv().is_err());
        drop(rx_b);
        assert_eq!(hub.spaces(), 1);
        drop(rx_a);
        hub.publish(a, 3);
        assert_eq!(hub.spaces(), 0);
    }
}
