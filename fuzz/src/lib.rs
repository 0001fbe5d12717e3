//! The fuzz targets' bodies. They live in `targets.rs` so that the stable test suite
//! (`shared/tests/fuzz_regressions.rs`) runs exactly the same code over the committed corpus.

#[path = "targets.rs"]
pub mod targets;
