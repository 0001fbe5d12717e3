//! `candor`: the device side of Candor — identity, local store, sync driver and CLI.
//!
//! The protocol itself (entry format, crypto, wire messages, the sync state machine) lives in
//! `candor-shared`; this crate adds the I/O around it:
//!
//! * [`app`]: the application core the CLI and the web app call: the paired context, the
//!   reader over the read model, the writer.
//! * [`home`]: where a device keeps its files, and its key files (0600, written atomically).
//! * [`store`]: the sled database of both logs, written only with verified entries.
//! * [`net`]: the QUIC connection to the relay, with its certificate pinned by fingerprint.
//! * [`syncer`]: drives `candor_shared::sync::SyncMachine` over [`net`] and [`store`].
//! * [`daemon`]: the local socket through which other `candor` processes reach a running
//!   `sync --watch`, which holds the database open.
//! * [`checks`]: the consistency audit of both logs, and checkpoints.
//! * [`editor`]: the person's editor on a short-lived private temporary file.
//! * [`evidence`]: bounds on what a device keeps of what it refused, and future-dated flags.
//! * [`files`]: files written where the person names (never replaced without `--force`).
//! * [`secret`]: passphrases and unlocking the storage key; [`progress`]: terminal progress.
//! * [`cli`] and [`commands`]: the command line.
//! * [`ui`]: `candor ui`, the same in a web browser.

pub mod app;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod editor;
pub mod evidence;
pub mod files;
pub mod home;
pub mod net;
pub mod output;
pub mod progress;
pub mod secret;
pub mod store;
pub mod syncer;
pub mod timefmt;
pub mod ui;
