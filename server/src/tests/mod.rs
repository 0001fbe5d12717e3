//! Tests of the relay driver: the sled store against the in-memory model, persistence across
//! restarts, the QUIC service end to end in process, and its limits on unauthenticated peers.

mod fixtures;
mod limits;
mod quic;
mod store_model;
mod store_reopen;
