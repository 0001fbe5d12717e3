//! Live notifications across relay processes: `LISTEN candor_entries` on PostgreSQL, each
//! notification published to this process's [`Hub`].
//!
//! Every append's transaction sends `NOTIFY candor_entries, '<space hex>:<cursor>'`
//! ([`crate::postgres`]); PostgreSQL delivers it, after the commit, to every listening session,
//! so a device subscribed on relay 2 hears of an entry pushed through relay 1. The listener owns
//! one dedicated connection (not pooled: a pooled connection could be recycled, silently
//! dropping the `LISTEN`). If that connection fails, the listener reconnects with a growing
//! delay, and when it is back it wakes every subscriber of this process with the newest cursor
//! of their spaces, so that nothing committed while it was away goes unannounced.

use crate::hub::Hub;
use crate::postgres::{parse_notify_payload, NOTIFY_CHANNEL};
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};
use tracing::{debug, info, warn};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens until the task is dropped (aborted), reconnecting whenever the connection fails.
pub async fn listen(config: tokio_postgres::Config, hub: Arc<Hub>) {
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        match listen_once(&config, &hub, reconnecting).await {
            Ok(()) => info!("PostgreSQL notification connection closed; reconnecting"),
            Err(e) => warn!(error = %e, "PostgreSQL notification connection failed; reconnecting"),
        }
        reconnecting = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    hub: &Hub,
    reconnecting: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection yields notifications only while it is polled; it runs beside the client.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await?;
    debug!("listening for entries appended by other relays");
    if reconnecting {
        // Entries may have landed while nobody listened: announce each subscribed space's
        // newest cursor, so that its subscribers pull.
        let spaces: Vec<Vec<u8>> = hub
            .spaces_subscribed()
            .iter()
            .map(|s| s.0.to_vec())
            .collect();
        let rows = client
            .query(
                "SELECT space, last_cursor FROM usage WHERE space = ANY($1)",
                &[&spaces],
            )
            .await?;
        for row in rows {
            let space: Vec<u8> = row.try_get(0)?;
            let cursor: i64 = row.try_get(1)?;
            if let (Ok(space), Ok(cursor)) = (<[u8; 16]>::try_from(space), u64::try_from(cursor)) {
                hub.publish(candor_shared::SpaceId(space), cursor);
            }
        }
    }
    while let Some(payload) = rx.recv().await {
        match parse_notify_payload(&payload) {
            Some((space, cursor)) => hub.publish(space, cursor),
            None => warn!("ignoring a malformed notification on {NOTIFY_CHANNEL}"),
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
