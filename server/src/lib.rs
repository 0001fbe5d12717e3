//! `candor-relay`: the self-hosted QUIC relay of Candor.
//!
//! The relay stores only what it cannot read — signed, encrypted, hash-chained log entries —
//! and forwards them between the two devices of a couple. All protocol decisions (who may do
//! what, which entries fit which log) live in [`candor_shared::relay::Relay`]; this crate is the
//! thin driver around it:
//!
//! * [`data`]: the data directory layout and atomic file writes.
//! * [`store`]: [`store::SledStore`], the durable [`candor_shared::relay::RelayStore`] on sled.
//! * [`postgres`]: [`postgres::PgStore`], the same contract on PostgreSQL, shared by several
//!   relay processes; [`pg_notify`] carries their appends to each other's subscribers.
//! * [`backend`]: [`backend::RelayDb`], whichever of the two the relay was started on.
//! * [`tls`]: the self-signed certificate devices pin, and the QUIC/TLS server configuration.
//! * [`hub`]: per-space notification channels for `Subscribe` streams.
//! * [`service`]: binding the endpoint and serving connections and streams until shutdown.
//!
//! The `candor-relay` binary (`serve`, `fingerprint`) is a small CLI over these modules.

// Tests may unwrap; the library itself may not (checked by the non-test build of this crate).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
pub mod config;
pub mod data;
pub mod hub;
pub mod metrics;
pub mod pg_notify;
pub mod postgres;
pub mod service;
pub mod store;
pub mod tls;

#[cfg(test)]
mod tests;
