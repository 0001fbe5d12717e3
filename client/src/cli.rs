//! The command line: argument definitions (clap) and their help texts. The commands also
//! derive `Serialize`/`Deserialize`: a command typed in one process runs in the one holding
//! the store as this typed value (see `daemon`), never as re-parsed argv.

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
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
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum Command {
    /// Create this device's identity (an Ed25519 signing key and an X25519 key).
    ///
    /// Run once per device. Keys are drawn from the OS random number generator and stored in
    /// 0600 files under --home. Running it again refuses and changes nothing.
    ///
    /// Also creates the local storage key that encrypts everything this device keeps, and your
    /// personal journal key. With --passphrase the storage key is wrapped by a passphrase
    /// (Argon2id): you type it on a terminal (or set CANDOR_NEW_PASSPHRASE / CANDOR_PASSPHRASE
    /// in scripts) and every later command asks for it (or reads CANDOR_PASSPHRASE). If you lose
    /// the passphrase, the data on this device is lost: nobody can recover it.
    Init {
        /// The name your partner will see next to your entries.
        #[arg(long)]
        name: String,
        /// Protect this device's data with a passphrase (recommended on a shared device).
        #[arg(long)]
        passphrase: bool,
    },
    /// Set, change or remove the passphrase that protects this device's data.
    ///
    /// Without a passphrase, the storage key sits in a 0600 file beside the data: anyone who can
    /// read this device's disk can read everything. With one, they see sizes, counts and times,
    /// never your words or keys. A lost passphrase means lost data: keep a recovery bundle
    /// (`candor backup export`). In scripts: CANDOR_PASSPHRASE is the current passphrase,
    /// CANDOR_NEW_PASSPHRASE the new one.
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Your private journal: for you alone, never readable by your partner.
    ///
    /// Works right after `candor init`, with no space and no relay. Entries stay on this device
    /// (encrypted at rest) unless you turn `candor journal backup on`.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Encrypted recovery bundles: everything this device holds, protected by a passphrase.
    ///
    /// A lost bundle passphrase means the bundle cannot be opened by anyone, you included.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Write your own records in a readable form (Markdown or JSON), or a proof of chosen
    /// entries a third party can check (--verifiable), e.g. for a counsellor.
    ///
    /// Without --verifiable: the entries of your own log (not your partner's) and, with
    /// --journal, your journal. The output is plain text: keep it somewhere safe and delete it
    /// when done.
    ///
    /// With --verifiable --select IDS --out FILE: the file proves to anyone, offline and with no
    /// key (`candor verify-export FILE`), that each chosen entry — yours or your partner's — was
    /// signed by its author's device and sits at its place in one unbroken log whose head the
    /// other partner's device acknowledged. It reveals the chosen entries' text and each author's
    /// name, and of the entries left out only their number. The proof needs a checkpoint of each
    /// log that the other device acknowledged; if there is none yet, the export writes a
    /// checkpoint asking for one and exits with code 3: sync both devices (a running
    /// `sync --watch` does it by itself) and run it again.
    #[command(
        after_help = "Examples:\n  candor export --format md --journal --since 2026-11-01 --out for-me.md\n  candor export --verifiable --select 3f2a9c,81be04 --out for-our-counsellor.json\n  candor verify-export for-our-counsellor.json"
    )]
    Export(ExportArgs),
    /// Create, join or inspect the couple's shared space.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// What needs you now: answers your partner waits for, reviews due, late check-ins, this
    /// week's goals, and what your partner wrote since you last looked.
    ///
    /// Lists promises your partner marked kept, missed or renegotiated that you have not
    /// confirmed or disputed, support requests you have not answered, agreements proposed to
    /// you or due for review, check-ins whose expected arrival passed, your (and your shared)
    /// goals of this week, and your partner's entries since you last ran `candor today`
    /// (which marks them seen, on this device only).
    #[command(after_help = "Examples:\n  candor today\n  candor today --json")]
    Today {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
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
        /// Expected arrival, HH:MM in local time (its next occurrence).
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
    /// Open Candor in your web browser: everything the command line does, in plain words.
    ///
    /// Serves the pages on this machine only (loopback), prints the address to open (it holds a
    /// one-time key, so it works once, in one browser) and opens your browser. While it runs it
    /// also syncs, like `sync --watch`, and other `candor` commands on this device keep working.
    /// Asks for the passphrase in the page; the unlocked key stays in memory only.
    #[command(
        after_help = "Examples:\n  candor ui\n  candor ui --listen 127.0.0.1:8765 --no-open"
    )]
    Ui {
        /// Where to listen: a loopback address and port (default 127.0.0.1, any free port).
        #[arg(long, value_name = "127.0.0.1:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Print the address but do not open a browser.
        #[arg(long)]
        no_open: bool,
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
    /// Check a file written by `candor export --verifiable`: offline, with no identity or key.
    ///
    /// Exits 0 and lists the proven entries if every signature, audit path and countersignature
    /// holds and the file is exactly as written; exits 1 naming the first problem otherwise.
    VerifyExport {
        /// The export file.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor sync` options.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SyncArgs {
    /// Stay connected and sync continuously (reconnects when the relay restarts).
    #[arg(long)]
    pub watch: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `candor space …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
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
        /// The invite line (starts with "candor-invite:"), or - to read it from standard input
        /// (keeps it off the command line, where other local users could read it).
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
    /// Use another address of the same relay: it moved host, or it is another relay process
    /// sharing the database and certificate. The relay at the new address must present the
    /// pinned fingerprint and know this space; nothing else changes.
    ///
    /// Example: candor space relay relay2.example.net:4433
    Relay {
        /// The relay's new address, HOST:PORT.
        #[arg(value_name = "HOST:PORT")]
        address: String,
    },
    /// Show the space, relay and partner this device is paired with.
    Show {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor log …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum LogCommand {
    /// Add an entry to your log (written locally at once, relay or no relay).
    Add {
        /// checkin, disclosure, plan or note.
        #[arg(long, default_value = "note", value_parser = ["checkin", "disclosure", "plan", "note"])]
        kind: String,
        /// The text of the entry, or - to read it from standard input (keeps it off the
        /// command line, where other local users could read it; works for every TEXT).
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
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum PromiseCommand {
    /// Make a promise; prints its id.
    Add {
        /// What you promise.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// When it is due, in local time: "2026-12-01 18:00", or 2026-12-01 (the end of that
        /// day), or RFC 3339.
        #[arg(long, value_name = "WHEN")]
        due: Option<String>,
        /// Record a due time in the past without asking.
        #[arg(long)]
        yes: bool,
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
        /// The new due time, in local time (as for `promise add --due`).
        #[arg(long, value_name = "WHEN")]
        due: Option<String>,
        /// Record a due time in the past without asking.
        #[arg(long)]
        yes: bool,
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
    ///
    /// By default: open promises, and closed ones whose kept or missed status still waits for
    /// the partner's confirmation.
    List {
        /// Only open promises.
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
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum PlanCommand {
    /// Share a plan before being asked.
    Add {
        /// When, in local time: "2026-12-01 18:00", 18:00 (today), 2026-12-01, or RFC 3339.
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
        /// From this local time (a date alone: from the start of that day).
        #[arg(long, value_name = "WHEN")]
        from: Option<String>,
        /// Up to this local time (a date alone: to the end of that day).
        #[arg(long, value_name = "WHEN")]
        to: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `candor support …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
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

/// `candor passphrase …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum PassphraseCommand {
    /// Protect this device's data with a passphrase (asked twice on a terminal).
    Set,
    /// Change the passphrase (asks for the current one, then the new one twice).
    Change,
    /// Remove the passphrase: the storage key goes back to a 0600 file readable by anyone with
    /// this device's disk.
    Remove,
}

/// `candor journal …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum JournalCommand {
    /// Write a journal entry: TEXT, or --file F, or - to read standard input.
    Add {
        /// The words (or - for standard input).
        #[arg(num_args = 0.., value_name = "TEXT", required_unless_present = "file")]
        text: Vec<String>,
        /// Read the entry from this file (- for standard input).
        #[arg(long, value_name = "F", conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Rewrite a journal entry; the earlier version is kept, and the list shows the latest.
    Edit {
        /// The entry's id (or a unique prefix of at least 4 characters).
        id: String,
        /// The new words (or - for standard input); without them (and without --file) the
        /// entry opens in $VISUAL / $EDITOR.
        #[arg(num_args = 0.., value_name = "TEXT")]
        text: Vec<String>,
        /// Read the new words from this file (- for standard input).
        #[arg(long, value_name = "F", conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// List journal entries, oldest first.
    List {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
        /// Only entries written on or after this date (2026-12-01, or RFC 3339).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
    /// Find journal entries containing all the given words (any case).
    Search {
        /// The words.
        #[arg(required = true, num_args = 1.., value_name = "WORDS")]
        words: Vec<String>,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Back journal entries up to the relay (on) or keep them on this device only (off).
    ///
    /// When on, entries (also those written earlier) go to the relay sealed under your
    /// personal journal key, looking like any other entry to the relay: same size buckets, same
    /// public class. Your partner's device receives them as ciphertext it cannot open. Only a
    /// recovery bundle (`candor backup export`) holds the key that reads them back. Off by
    /// default; turning it off stops new uploads (entries already uploaded stay, sealed).
    Backup {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Print one reflection prompt: a question about what you notice and need.
    Prompt,
}

/// `candor backup …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum BackupCommand {
    /// Write an encrypted recovery bundle of this device: keys (identity, space, journal) and
    /// all data (both logs, journal, local notes).
    ///
    /// The bundle is protected by a passphrase you choose (asked twice on a terminal, or
    /// CANDOR_BACKUP_PASSPHRASE). A lost bundle passphrase means a lost bundle: nobody can
    /// open it. Anyone with the bundle and its passphrase can act as this device.
    Export {
        /// Where to write the bundle (must not exist yet, unless --force).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a recovery bundle into a new, empty home (--home DIR), then `candor sync`.
    ///
    /// The restored device carries on the same log: do not keep using the old device. Asks for
    /// the bundle's passphrase (or CANDOR_BACKUP_PASSPHRASE); a wrong one is refused and nothing
    /// is created.
    Import {
        /// The bundle written by `candor backup export`.
        file: PathBuf,
        /// Protect the restored device's data with a passphrase (as `candor init --passphrase`).
        #[arg(long)]
        passphrase: bool,
    },
}

/// `candor export` options.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct ExportArgs {
    /// md (Markdown, for reading) or json (for tools).
    #[arg(long, value_parser = ["md", "json"], default_value = "md")]
    pub format: String,
    /// Include your private journal.
    #[arg(long)]
    pub journal: bool,
    /// Only records written on or after this date (2026-12-01, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Write to this file (created 0600) instead of standard output; required with --verifiable.
    /// It must not exist yet, unless --force.
    #[arg(long, value_name = "FILE", required_if_eq("verifiable", "true"))]
    pub out: Option<PathBuf>,
    /// Replace the --out FILE if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Write a file a third party can verify (`candor verify-export`) instead.
    #[arg(long, requires = "select", conflicts_with_all = ["journal", "since"])]
    pub verifiable: bool,
    /// With --verifiable: the entries to disclose, ids or id prefixes from `candor log list`,
    /// comma-separated.
    #[arg(long, value_name = "ID,ID…", requires = "verifiable")]
    pub select: Option<String>,
}

/// `candor note …`
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
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
        /// A shared goal: both partners write its progress and mark it done or dropped.
        #[arg(long)]
        together: bool,
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

impl Command {
    /// The words of a command that writes an entry (`TEXT…`), where a lone `-` means "read them
    /// from standard input" so they never appear on the command line (which every local user
    /// can read with `ps`). `None` for commands without such words.
    pub fn text_mut(&mut self) -> Option<&mut Vec<String>> {
        match self {
            Command::Checkin { text, .. }
            | Command::Log(LogCommand::Add { text, .. } | LogCommand::Correct { text, .. })
            | Command::Promise(
                PromiseCommand::Add { text, .. } | PromiseCommand::Renegotiate { text, .. },
            )
            | Command::Plan(PlanCommand::Add { text, .. })
            | Command::Support(SupportCommand::Reply { text, .. })
            | Command::Agreement(AgreementCommand::Propose { text, .. })
            | Command::Goal(GoalCommand::Add { text, .. } | GoalCommand::Progress { text, .. }) => {
                Some(text)
            }
            _ => None,
        }
    }

    /// Whether this command takes something from standard input (`TEXT` given as `-`, or
    /// `space join -`), which the process the person typed it in reads and forwards.
    pub fn reads_stdin_text(&mut self) -> bool {
        let dash = |words: &Vec<String>| words.len() == 1 && words[0] == "-";
        match self {
            Command::Space(SpaceCommand::Join { invite }) => invite == "-",
            other => other.text_mut().is_some_and(|t| dash(t)),
        }
    }
}
