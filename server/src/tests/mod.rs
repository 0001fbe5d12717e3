//! Tests of the relay driver: the sled store against the in-memory model, persistence across
//! restarts, and the QUIC service end to end in process.

mod fixtures;
mod quic;
mod store_model;
mod store_reopen;
