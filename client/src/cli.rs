//! The command line: argument definitions (clap) and their help texts.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Quick start (two devices on one machine, a relay on loopback):
  FP=$(candor-relay fingerprint --data ./relay)
  candor-relay serve --listen 127.0.0.1:4433 --data ./relay &
  candor --home ./alex init --name Alex
  candor --home ./sam  init --name Sam
  INVITE=$(candor --home ./alex space create --relay 127.0.0.1:4433 --relay-fingerprint $FP | tail -n1)
  candor --home ./sam space join \"$INVITE\"
  candor --home ./alex log add --kind checkin \"Running late, home by 19:30\"
  candor --home ./alex sync && candor --home ./sam sync
  candor --home ./sam log list";

/// Candor: an end-to-end encrypted, tamper-evident record for two partners rebuilding trust.
///
/// Each partner's device keeps a signed, hash-chained log of check-ins, plans, disclosures and
/// notes. Devices sync through a self-hosted relay that only ever sees ciphertext.
#[derive(Debug, Parser)]
#[command(name = "candor", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Directory holding this device's keys and data (default: the platform data dir).
    #[arg(long, env = "CANDOR_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's identity (an Ed25519 signing key and an X25519 key).
    ///
    /// Run once per device. Keys are drawn from the OS random number generator and stored in
    /// 0600 files under --home. Running it again refuses and changes nothing.
    Init {
        /// The name your partner will see next to your entries.
        #[arg(long)]
        name: String,
    },
    /// Create, join or inspect the couple's shared space.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// Write and read the transparency log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Push this device's new entries to the relay and pull the partner's.
    ///
    /// Prints "pushed N, pulled M". If the relay is unreachable nothing is lost: entries stay
    /// local and go out next time. With --watch, stays connected, sends entries as they are
    /// written (also by other candor commands on this device) and receives the partner's at once.
    Sync(SyncArgs),
    /// Re-check every stored entry of both logs: signatures, hash chains, decryption.
    ///
    /// Exits 0 with a one-line summary, or non-zero naming each problem.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor sync` options.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Stay connected and sync continuously (reconnects when the relay restarts).
    #[arg(long)]
    pub watch: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `candor space …`
#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Create the couple's space on a relay and print a one-time invite for your partner.
    ///
    /// The invite is the last line of output. Give it to your partner over a channel you trust
    /// (in person, or a message you can verify); it works once.
    Create {
        /// The relay's address, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        relay: String,
        /// The relay's certificate fingerprint, as printed by `candor-relay fingerprint`.
        #[arg(long, value_name = "FP")]
        relay_fingerprint: String,
    },
    /// Join your partner's space with the invite they gave you.
    Join {
        /// The invite line (starts with "candor-invite:").
        invite: String,
    },
    /// Print the invite again (on the device that created the space, until the partner joins).
    Invite,
    /// Print the safety number to compare with your partner in person.
    ///
    /// Both devices print the same number only if each holds the other's real keys.
    SafetyNumber,
    /// Show the space, relay and partner this device is paired with.
    Show {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor log …`
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Add an entry to your log (written locally at once, relay or no relay).
    Add {
        /// checkin, disclosure, plan or note.
        #[arg(long, default_value = "note", value_parser = ["checkin", "disclosure", "plan", "note"])]
        kind: String,
        /// The text of the entry.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
    /// Correct one of your entries: adds a new entry that says which one it replaces.
    ///
    /// Entries are never edited or deleted; the original stays visible with its correction.
    Correct {
        /// The id (or a unique prefix of it, at least 4 characters) of the entry to correct.
        id: String,
        /// The corrected text.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
    /// List both partners' entries, oldest first.
    List {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
        /// Show only the latest N entries.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Import notes: one entry per line of a text file, or per object of a JSON Lines file.
    ///
    /// JSON Lines objects have "text" and optionally "kind" (checkin, disclosure, plan, note)
    /// and "time" (RFC 3339 or a date); the original time is kept in the entry. Use - for stdin.
    Import {
        /// The file to import.
        file: PathBuf,
    },
}
