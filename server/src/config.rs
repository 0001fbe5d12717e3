//! The relay's configuration file (`candor-relay serve --config relay.toml`).
//!
//! Every setting is optional; a missing one takes its default, and a command-line flag overrides
//! the file. Unknown keys are an error, so a typo never silently leaves a default in place.
//! [`EXAMPLE`] (printed by `candor-relay config example`) documents every key with its default,
//! and a test checks that it parses to exactly [`Config::default`].

use crate::service::Limits;
use candor_shared::relay::{Rate, RelayLimits};
use candor_shared::wire::MAX_FRAME;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the relay writes its logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for journald, Loki, …).
    Json,
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// UDP address to listen on (default `0.0.0.0:4433`).
    pub listen: Option<SocketAddr>,
    /// Data directory (default: the platform data directory).
    pub data: Option<PathBuf>,
    /// Where entries are stored: unset or `sled` for the data directory's embedded database,
    /// `postgres://…` for a PostgreSQL database (shown with its password masked).
    #[serde(serialize_with = "serialize_masked")]
    pub store: Option<String>,
    /// File holding the PostgreSQL password (its first line), when the store URL has none.
    pub store_password_file: Option<PathBuf>,
    /// Log format (default text).
    pub log_format: Option<LogFormat>,
    /// Limits.
    pub limits: LimitsConfig,
    /// The optional metrics endpoint.
    pub metrics: MetricsConfig,
}

/// `postgres://user:secret@host/db` with the secret masked (`postgres://user:***@host/db`).
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn serialize_masked<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&mask_password(url)),
        None => s.serialize_none(),
    }
}

/// `[metrics]`: a Prometheus text-format endpoint, off unless `listen` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// TCP address serving `GET /metrics` (e.g. `127.0.0.1:9464`); unset: no endpoint.
    pub listen: Option<SocketAddr>,
}

/// `[limits]`: everything that bounds what peers can make the relay do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one IP address (IPv6: one /64).
    pub max_connections_per_address: usize,
    /// New connections per second from one address, sustained (0: unlimited).
    pub address_connections_per_second: f64,
    /// New connections from one address allowed at once.
    pub address_connection_burst: u32,
    /// Seconds a connection has to authenticate.
    pub auth_timeout_secs: u64,
    /// Seconds without any packet from a device (it answers the relay's keep-alives) before its
    /// connection is closed.
    pub idle_timeout_secs: u64,
    /// Largest request frame, in bytes (at most the protocol's 4 MiB).
    pub max_frame_bytes: usize,
    /// Largest entry in a push, in bytes (at most the protocol's 65,798).
    pub max_entry_bytes: usize,
    /// Most entries per push (at most 256).
    pub max_push_entries: usize,
    /// Most entries per pull page (at most 512).
    pub max_page_entries: u32,
    /// Entry storage per space, in MiB (0: unlimited).
    pub space_quota_mib: u64,
    /// Hours an invite stays valid after its space was created (0: forever).
    pub invite_expiry_hours: u64,
    /// Requests per second per device, sustained (0: unlimited).
    pub device_requests_per_second: f64,
    /// Requests per device allowed at once.
    pub device_request_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let service = Limits::default();
        let relay = RelayLimits::default();
        Self {
            max_connections: service.connections,
            max_connections_per_address: service.connections_per_ip,
            address_connections_per_second: service.address_connections.per_second,
            address_connection_burst: service.address_connections.burst,
            auth_timeout_secs: service.auth_deadline.as_secs(),
            idle_timeout_secs: service.idle_timeout.as_secs(),
            max_frame_bytes: service.max_frame,
            max_entry_bytes: relay.max_entry_bytes,
            max_push_entries: relay.max_push_entries,
            max_page_entries: relay.max_page_entries,
            space_quota_mib: relay.space_quota_bytes / (1024 * 1024),
            invite_expiry_hours: relay.invite_expiry_ms / 3_600_000,
            device_requests_per_second: relay.device_requests.per_second,
            device_request_burst: relay.device_requests.burst,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.limits.check()?;
        Ok(config)
    }
}

impl LimitsConfig {
    /// Refuses values that would make the relay unusable or exceed the protocol.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let relay = RelayLimits::default();
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            return invalid(
                "limits.max_connections and max_connections_per_address must be at least 1".into(),
            );
        }
        if self.auth_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return invalid(
                "limits.auth_timeout_secs and idle_timeout_secs must be at least 1".into(),
            );
        }
        if self.idle_timeout_secs > 24 * 3600 {
            return invalid("limits.idle_timeout_secs must be at most 86400".into());
        }
        if !(1024..=MAX_FRAME).contains(&self.max_frame_bytes) {
            return invalid(format!(
                "limits.max_frame_bytes must be between 1024 and {MAX_FRAME}"
            ));
        }
        if !(1..=relay.max_entry_bytes).contains(&self.max_entry_bytes) {
            return invalid(format!(
                "limits.max_entry_bytes must be between 1 and {}",
                relay.max_entry_bytes
            ));
        }
        if !(1..=relay.max_push_entries).contains(&self.max_push_entries) {
            return invalid(format!(
                "limits.max_push_entries must be between 1 and {}",
                relay.max_push_entries
            ));
        }
        if !(1..=relay.max_page_entries).contains(&self.max_page_entries) {
            return invalid(format!(
                "limits.max_page_entries must be between 1 and {}",
                relay.max_page_entries
            ));
        }
        for (name, value) in [
            (
                "address_connections_per_second",
                self.address_connections_per_second,
            ),
            (
                "device_requests_per_second",
                self.device_requests_per_second,
            ),
        ] {
            if !value.is_finite() || value < 0.0 {
                return invalid(format!("limits.{name} must be a number, 0 or more"));
            }
        }
        Ok(())
    }

    /// The driver's limits.
    pub fn service(&self) -> Limits {
        Limits {
            connections: self.max_connections,
            connections_per_ip: self.max_connections_per_address,
            address_connections: Rate::new(
                self.address_connections_per_second,
                self.address_connection_burst,
            ),
            auth_deadline: Duration::from_secs(self.auth_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_frame: self.max_frame_bytes,
            ..Limits::default()
        }
    }

    /// The relay logic's limits.
    pub fn relay(&self) -> RelayLimits {
        RelayLimits {
            max_entry_bytes: self.max_entry_bytes,
            max_push_entries: self.max_push_entries,
            max_page_entries: self.max_page_entries,
            space_quota_bytes: self.space_quota_mib.saturating_mul(1024 * 1024),
            invite_expiry_ms: self.invite_expiry_hours.saturating_mul(3_600_000),
            device_requests: Rate::new(self.device_requests_per_second, self.device_request_burst),
        }
    }
}

/// A commented configuration with every default, printed by `candor-relay config example`.
pub const EXAMPLE: &str = r#"# candor-relay configuration. Every key is optional; the values below are the defaults.
# Use with: candor-relay serve --config /etc/candor-relay/relay.toml
# Command-line flags (--listen, --data, --log-format, --metrics-listen) override this file.

# UDP address for QUIC. Open this UDP port in the firewall.
# listen = "0.0.0.0:4433"

# Database, TLS certificate and key. Back this directory up; never lose key.der.
# data = "/var/lib/candor-relay"

# Where entries are stored: "sled" (the data directory's embedded database) or a PostgreSQL
# URL, which several relay processes may share (give them all the same cert.der and key.der).
# The password may be in this URL (keep the file 0600), in store_password_file, or in the
# PGPASSWORD environment variable; never on the command line.
# store = "sled"
# store = "postgres://candor@db.internal/candor"
# store_password_file = "/etc/candor-relay/pg-password"

# "text" or "json" (one object per line). Logs never contain keys, tokens or entry bytes.
# log_format = "text"

[limits]
# Connections served at once, in all and per IP address (IPv6: per /64).
max_connections = 1024
max_connections_per_address = 64
# New connections per address: sustained rate per second, and how many at once.
address_connections_per_second = 2.0
address_connection_burst = 30
# Seconds a connection has to complete the handshake and authenticate.
auth_timeout_secs = 10
# Seconds without a packet from a device (devices answer the relay's keep-alives)
# before its connection is closed.
idle_timeout_secs = 60
# Largest request frame in bytes (the protocol allows at most 4194304).
max_frame_bytes = 4194304
# Largest entry in bytes (protocol maximum 65798: header, signature, 64 KiB of ciphertext).
max_entry_bytes = 65798
# Entries per push (at most 256) and per pull page (at most 512).
max_push_entries = 256
max_page_entries = 512
# Entry storage per space in MiB (0: unlimited).
space_quota_mib = 256
# Hours an invite can be used after the space was created (0: forever).
invite_expiry_hours = 168
# Requests per device across its connections: sustained rate per second, and burst.
device_requests_per_second = 20.0
device_request_burst = 200

[metrics]
# Prometheus text format on GET /metrics. Off unless set; keep it on loopback
# (or behind a firewall): it shows counts, never contents.
# listen = "127.0.0.1:9464"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_passwords_are_masked_when_shown() {
        assert_eq!(
            mask_password("postgres://candor:s3cret@db:5432/candor?host=/x"),
            "postgres://candor:***@db:5432/candor?host=/x"
        );
        assert_eq!(
            mask_password("postgres://candor@db/c"),
            "postgres://candor@db/c"
        );
        let config = Config::parse("store = \"postgres://u:hunter2@h/d\"").unwrap();
        let shown = toml::to_string(&config).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/d"), "{shown}");
    }

    #[test]
    fn example_is_exactly_the_defaults() {
        let parsed = Config::parse(EXAMPLE).unwrap();
        assert_eq!(parsed, Config::default());
        assert_eq!(parsed.limits.service(), Limits::default());
        assert_eq!(parsed.limits.relay(), RelayLimits::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_name() {
        let typo = Config::parse("[limits]\nmax_conections = 3\n").unwrap_err();
        assert!(typo.to_string().contains("max_conections"), "{typo}");
        let big = Config::parse("[limits]\nmax_frame_bytes = 99999999\n").unwrap_err();
        assert!(big.to_string().contains("max_frame_bytes"), "{big}");
        let negative = Config::parse("[limits]\ndevice_requests_per_second = -1.0\n").unwrap_err();
        assert!(negative.to_string().contains("device_requests_per_second"));
        let ok = Config::parse(
            "listen = \"127.0.0.1:7000\"\nlog_format = \"json\"\n[limits]\nspace_quota_mib = 1\n\
             [metrics]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap();
        assert_eq!(ok.log_format, Some(LogFormat::Json));
        assert_eq!(ok.limits.relay().space_quota_bytes, 1024 * 1024);
        assert_eq!(ok.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    }
}
