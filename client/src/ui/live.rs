//! Live updates: one task watches the data version (both logs' lengths and the journal's) and
//! every open page's event stream (`GET /events`) hears `changed` when it moves. The page's
//! script then fetches the same page again and swaps in its live parts.

use super::data::Data;
use axum::response::sse::{Event, KeepAlive, Sse};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt as _};

/// How often the version is read: entries arriving show within a second.
const POLL: Duration = Duration::from_millis(200);

/// The change feed.
pub struct Live {
    version: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Starts watching `data`.
    pub fn start(data: Arc<Data>) -> Live {
        let (send, version) = watch::channel(data.version());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POLL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = data.version();
                send.send_if_modified(|seen| {
                    let changed = *seen != now;
                    *seen = now;
                    changed
                });
            }
        });
        Live { version, task }
    }

    /// The event stream of one page: the current version at once, then every change.
    pub fn events(&self) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let stream = WatchStream::new(self.version.clone())
            .map(|version| Ok(Event::default().event("changed").data(version.to_string())));
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }

    /// Stops watching.
    pub fn stop(&self) {
        self.task.abort();
    }
}
