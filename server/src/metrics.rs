//! Counters for operators, and an optional Prometheus text-format endpoint serving them.
//!
//! The endpoint is off unless configured (`[metrics] listen` or `--metrics-listen`), and is meant
//! for loopback or a private network: it shows counts only — never a key, a device or space id,
//! or anything of an entry. It is a deliberately tiny HTTP/1.1 responder: `GET /metrics` gets
//! the counters, anything else 404; one request per connection; requests are read with a
//! deadline and a size cap.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// The relay's counters. All methods are cheap and lock-free except refusals (a small map).
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    requests_total: AtomicU64,
    entries_stored_total: AtomicU64,
    entry_bytes_stored_total: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

/// Values read from the store when the metrics are rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreGauges {
    /// Spaces held.
    pub spaces: u64,
    /// Flushes (group commits) made since start.
    pub flushes: u64,
    /// Size of the database on disk, in bytes.
    pub disk_bytes: u64,
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request was handled.
    pub fn request(&self) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries were stored (durably acknowledged).
    pub fn stored(&self, entries: u64, bytes: u64) {
        self.entries_stored_total
            .fetch_add(entries, Ordering::Relaxed);
        self.entry_bytes_stored_total
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Something was refused, for `reason` (a fixed label such as `rate_limited`).
    pub fn refused(&self, reason: &'static str) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *refusals.entry(reason).or_insert(0) += 1;
    }

    /// Refusals so far for `reason`.
    pub fn refusals(&self, reason: &str) -> u64 {
        let refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals.get(reason).copied().unwrap_or(0)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, store: StoreGauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "candor_relay_connections",
            "gauge",
            "Connections open now.",
            self.connections_open(),
        );
        metric(
            "candor_relay_connections_total",
            "counter",
            "Connections accepted since start.",
            self.connections_total.load(Ordering::Relaxed),
        );
        metric(
            "candor_relay_requests_total",
            "counter",
            "Requests handled since start.",
            self.requests_total.load(Ordering::Relaxed),
        );
        metric(
            "candor_relay_spaces",
            "gauge",
            "Spaces stored.",
            store.spaces,
        );
        metric(
            "candor_relay_entries_stored_total",
            "counter",
            "Entries stored and durably acknowledged since start.",
            self.entries_stored_total.load(Ordering::Relaxed),
        );
        metric(
            "candor_relay_entry_bytes_stored_total",
            "counter",
            "Bytes of entries stored since start.",
            self.entry_bytes_stored_total.load(Ordering::Relaxed),
        );
        metric(
            "candor_relay_flushes_total",
            "counter",
            "Database flushes (group commits) since start.",
            store.flushes,
        );
        metric(
            "candor_relay_database_bytes",
            "gauge",
            "Size of the database on disk.",
            store.disk_bytes,
        );
        let _ = writeln!(
            out,
            "# HELP candor_relay_refusals_total Requests and connections refused, by reason."
        );
        let _ = writeln!(out, "# TYPE candor_relay_refusals_total counter");
        let refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, count) in refusals.iter() {
            let _ = writeln!(
                out,
                "candor_relay_refusals_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out
    }
}

/// Largest HTTP request head read from a metrics client.
const MAX_HTTP_REQUEST: usize = 8 * 1024;
/// How long a metrics client may take to send its request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the metrics endpoint on `addr` (returns the bound address), then serves it in the
/// background for the life of the runtime.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    gauges: Arc<dyn Fn() -> StoreGauges + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        warn!(addr = %local, "the metrics endpoint listens beyond loopback; firewall it");
    }
    info!(addr = %local, "metrics endpoint listening");
    tokio::spawn(async move {
        // At most a few scrapes at once: a flood of metrics clients cannot pile up tasks.
        let slots = Arc::new(tokio::sync::Semaphore::new(8));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let metrics = Arc::clone(&metrics);
            let gauges = Arc::clone(&gauges);
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &metrics, &*gauges).await {
                    debug!(%peer, error = %e, "metrics request failed");
                }
                drop(slot);
            });
        }
    });
    Ok(local)
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    metrics: &Metrics,
    gauges: &(dyn Fn() -> StoreGauges + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(HTTP_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next(), parts.next());
    let (status, body, content_type) = match (method, path) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            metrics.render(gauges()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (Some("GET"), _) => (
            "404 Not Found",
            "only /metrics is served here\n".to_owned(),
            "text/plain; charset=utf-8",
        ),
        _ => (
            "405 Method Not Allowed",
            "GET /metrics\n".to_owned(),
            "text/plain; charset=utf-8",
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(HTTP_TIMEOUT, stream.write_all(response.as_bytes()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client too slow"))??;
    stream.shutdown().await
}

/// The metrics label of a refusal with this error code.
pub fn reason(code: candor_shared::wire::ErrorCode) -> &'static str {
    use candor_shared::wire::ErrorCode as C;
    match code {
        C::NotAuthenticated => "not_authenticated",
        C::AuthFailed => "auth_failed",
        C::Forbidden => "forbidden",
        C::UnknownSpace => "unknown_space",
        C::SpaceExists => "space_exists",
        C::InviteUsed => "invite_used",
        C::InviteInvalid => "invite_invalid",
        C::SpaceFull => "space_full",
        C::BadRequest => "bad_request",
        C::Internal => "internal",
        C::LimitExceeded => "limit_exceeded",
        C::RateLimited => "rate_limited",
        C::QuotaExceeded => "quota_exceeded",
        C::InviteExpired => "invite_expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_prometheus_text_on_get_metrics_only() {
        let metrics = Arc::new(Metrics::default());
        metrics.connection_opened();
        metrics.stored(3, 900);
        metrics.refused("rate_limited");
        metrics.refused("rate_limited");
        let gauges: Arc<dyn Fn() -> StoreGauges + Send + Sync> = Arc::new(|| StoreGauges {
            spaces: 7,
            flushes: 2,
            disk_bytes: 4096,
        });
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics, gauges)
            .await
            .unwrap();
        let get = |request: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        };
        let page = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        for line in [
            "candor_relay_connections 1",
            "candor_relay_spaces 7",
            "candor_relay_entries_stored_total 3",
            "candor_relay_entry_bytes_stored_total 900",
            "candor_relay_flushes_total 2",
            "candor_relay_refusals_total{reason=\"rate_limited\"} 2",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line}: {page}");
        }
        assert!(get("GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 405"));
    }
}
