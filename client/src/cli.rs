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
    /// Promises, big and small: made, kept, missed or renegotiated, confirmed by the partner.
    #[command(subcommand)]
    Promise(PromiseCommand),
    /// Check in ("running late, home by 19:30").
    Checkin {
        /// What is happening.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// Expected arrival, HH:MM.
        #[arg(long, value_name = "HH:MM")]
        eta: Option<String>,
    },
    /// Plans, shared before being asked.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Acknowledge one of your partner's entries ("I saw this, thank you").
    Ack {
        /// The entry's id (or a unique prefix of at least 4 characters).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Ask for support, answer a request, list them.
    #[command(subcommand)]
    Support(SupportCommand),
    /// Transparency agreements, each consented to by the partner and with a review date.
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Shared notes both partners edit, offline too: needs, boundaries, agreements, prep sheets.
    ///
    /// Every edit is an entry of its author's log (signed, encrypted, tamper-evident). Edits made
    /// by both partners at the same time, even offline, merge character by character on sync:
    /// both devices end with the same text and nobody's words are lost or brought back.
    #[command(subcommand)]
    Note(NoteCommand),
    /// Weekly goals: one or two realistic goals each, progress in words, done or dropped.
    #[command(subcommand)]
    Goal(GoalCommand),
    /// Weekly summary: what happened, and promises kept per week. Never a streak that resets.
    Summary {
        /// How many ISO weeks, ending with this one.
        #[arg(long, default_value_t = 4, value_name = "N")]
        weeks: u32,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// Print a short fingerprint of both logs' heads: after syncing, both devices print the same
    /// number exactly when they hold the same history. Compare it in person.
    Fingerprint,
    /// Print the safety number to compare with your partner in person.
    ///
    /// Both devices print the same number only if each holds the other's real keys.
    SafetyNumber,
    /// Leave the space: nothing more is written to it. This device keeps its full copy, readable
    /// with `candor log list` (and `--json` to export it).
    Leave {
        /// Optional words for your partner.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
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

/// `candor promise …`
#[derive(Debug, Subcommand)]
pub enum PromiseCommand {
    /// Make a promise; prints its id.
    Add {
        /// What you promise.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// When it is due (2026-12-01, "2026-12-01 18:00" UTC, or RFC 3339).
        #[arg(long, value_name = "WHEN")]
        due: Option<String>,
    },
    /// Mark your promise kept.
    Kept {
        /// The promise's id (or a unique prefix).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Mark your promise missed. Saying so is part of keeping trust.
    Missed {
        /// The promise's id (or a unique prefix).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Change an open promise's words or due time (renegotiating is not failing).
    Renegotiate {
        /// The promise's id (or a unique prefix).
        id: String,
        /// The new words.
        #[arg(required = true, num_args = 1.., value_name = "NEWTEXT")]
        text: Vec<String>,
        /// The new due time.
        #[arg(long, value_name = "WHEN")]
        due: Option<String>,
    },
    /// Confirm your partner's latest status of their promise.
    Confirm {
        /// The promise's id (or a unique prefix).
        id: String,
    },
    /// Dispute your partner's latest status of their promise.
    Dispute {
        /// The promise's id (or a unique prefix).
        id: String,
        /// What you saw differently.
        #[arg(long, value_name = "T")]
        note: String,
    },
    /// List promises with status, due date, confirmation and history.
    List {
        /// Only open promises (the default).
        #[arg(long, conflicts_with = "all")]
        open: bool,
        /// All promises.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor plan …`
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Share a plan before being asked.
    Add {
        /// When (2026-12-01, "2026-12-01 18:00" UTC, or RFC 3339).
        when: String,
        /// What.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// Share only that the time is taken: the text stays on this device.
        #[arg(long)]
        busy_only: bool,
    },
    /// List both partners' plans.
    List {
        /// From this time.
        #[arg(long, value_name = "WHEN")]
        from: Option<String>,
        /// Up to this time.
        #[arg(long, value_name = "WHEN")]
        to: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor support …`
#[derive(Debug, Subcommand)]
pub enum SupportCommand {
    /// "How can you support me right now?"
    Request {
        /// What would help.
        #[arg(value_parser = ["space", "talk", "reassure", "company"])]
        need: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Answer your partner's request.
    Reply {
        /// The request's id (or a unique prefix).
        id: String,
        /// Your answer.
        #[arg(required = true, num_args = 1.., value_name = "T")]
        text: Vec<String>,
    },
    /// List requests and replies.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor agreement …`
#[derive(Debug, Subcommand)]
pub enum AgreementCommand {
    /// Propose an agreement; it applies only once your partner accepts it.
    Propose {
        /// The agreement.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// When you will both review it (e.g. 2026-12-31).
        #[arg(long, value_name = "DATE")]
        review: String,
    },
    /// Accept your partner's proposal.
    Accept {
        /// The proposal's id (or a unique prefix).
        id: String,
    },
    /// Decline your partner's proposal.
    Decline {
        /// The proposal's id (or a unique prefix).
        id: String,
    },
    /// End an agreement (either partner, at any time).
    End {
        /// The agreement's id (or a unique prefix).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// List agreements and which are due for review.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor note …`
#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// List the shared notes (archived ones only with --all).
    List {
        /// Include archived notes.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a note's text.
    Show {
        /// The note's name (or the start of its id).
        name: String,
        /// Print as JSON (with its id, heads and any edit that was refused).
        #[arg(long)]
        json: bool,
    },
    /// Start a note, empty or from a starter structure.
    ///
    /// Templates: needs (I-statements: "I feel … when … it would help me if …"), boundaries
    /// (each boundary and what the partner agreed), agreements (what each will do, review date),
    /// conversation-prep (a sheet to fill in before a hard talk).
    New {
        /// The note's name, e.g. "needs".
        name: String,
        /// Start from a template.
        #[arg(long, value_parser = ["needs", "boundaries", "agreements", "conversation-prep"])]
        template: Option<String>,
    },
    /// Replace a note's text with a file's (- for stdin); only the differences are recorded,
    /// so your partner's concurrent edits still merge. Creates the note if it does not exist.
    Set {
        /// The note's name.
        name: String,
        /// The file with the new text, or - for stdin.
        #[arg(long, value_name = "F")]
        file: PathBuf,
        /// The version (heads, comma-separated) the new text was based on; used by `note edit`.
        #[arg(long, hide = true)]
        base: Option<String>,
    },
    /// Edit a note in $VISUAL or $EDITOR; saving records your changes as one edit.
    ///
    /// The text is written to a private temporary file (0600, in the candor home) that is
    /// removed afterwards. Changes your partner made while you were editing are kept.
    Edit {
        /// The note's name.
        name: String,
    },
    /// Who changed what, and when.
    History {
        /// The note's name.
        name: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename a note (the note keeps its id and history).
    Rename {
        /// The note's current name.
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Archive a note: hidden from `note list`, kept whole (`--restore` brings it back).
    Archive {
        /// The note's name.
        name: String,
        /// Bring an archived note back instead.
        #[arg(long)]
        restore: bool,
    },
}

/// `candor goal …`
#[derive(Debug, Subcommand)]
pub enum GoalCommand {
    /// Add a goal for a week (this ISO week unless --week); prints its id.
    ///
    /// One or two realistic goals a week work better than many: above two you get a gentle
    /// warning (the goal is still added).
    Add {
        /// The goal.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// The ISO week, e.g. 2026-W48.
        #[arg(long, value_name = "YYYY-Www")]
        week: Option<String>,
    },
    /// Write how a goal is going, in words.
    Progress {
        /// The goal's id (or a unique prefix).
        id: String,
        /// What happened.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
    },
    /// Mark your goal done.
    Done {
        /// The goal's id (or a unique prefix).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Drop your goal (letting a goal go is allowed).
    Drop {
        /// The goal's id (or a unique prefix).
        id: String,
        /// Optional words.
        #[arg(long, value_name = "T")]
        note: Option<String>,
    },
    /// Both partners' goals for a week, with their updates.
    List {
        /// The ISO week (default: this week).
        #[arg(long, value_name = "YYYY-Www")]
        week: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}
