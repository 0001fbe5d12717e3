//! Command implementations. Each takes a [`Ctx`] and returns an [`Output`], so it runs the same
//! in its own process or inside a running `sync --watch` that holds the store.

pub mod backup;
pub mod device;
mod disclosed;
mod export;
mod goals;
pub mod journal;
mod ledger;
mod log;
mod notes;
pub mod proof;
mod space;
mod today;
mod verify;

use crate::cli::{
    AgreementCommand, BackupCommand, Command, GoalCommand, JournalCommand, LogCommand, NoteCommand,
    PlanCommand, PromiseCommand, SpaceCommand, SupportCommand,
};
use crate::home::{Home, Identity};
use crate::output::Output;
use crate::store::Store;
use anyhow::{anyhow, Context as _, Result};
use ledger::{AgreementAction, PromiseStatusChange};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

pub use crate::app::{Paired, Reader, Writer};
pub use space::{create_space, join_space};

/// What a command runs against.
pub struct Ctx {
    /// The device's home.
    pub home: Home,
    /// The open store.
    pub store: Arc<Store>,
    /// The working directory of the process that typed the command (for relative paths).
    pub cwd: PathBuf,
    /// Standard input forwarded by another process (`log import -`), if any.
    pub stdin: Option<String>,
    /// Set when running inside `sync --watch`: wake it after local writes.
    pub watch: Option<Arc<Notify>>,
    /// A passphrase the typing process read for this command (`backup export`'s bundle
    /// passphrase), so it can run inside `sync --watch` too.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
    /// Whether progress may be drawn (the command runs in the process the person typed it in,
    /// and its standard error is a terminal).
    pub interactive: bool,
}

impl Ctx {
    /// This device's identity.
    pub fn identity(&self) -> Result<Identity> {
        Ok(self.home.identity()?)
    }

    /// Identity, space and key; a clear error if the device is not paired yet.
    pub fn paired(&self) -> Result<Paired> {
        Paired::load(&self.home, &self.store)
    }

    /// Resolves a path the user typed relative to their working directory.
    pub fn path(&self, path: &std::path::Path) -> PathBuf {
        self.cwd.join(path)
    }

    /// The reader of this device's views; rebuilds the read model first if it is missing or
    /// old (with a progress bar on a terminal).
    pub fn reader<'a>(&'a self, paired: &'a Paired) -> Result<Reader<'a>> {
        let bar = crate::progress::bar(self.interactive, 0, "indexing entries for reading");
        let reader = Reader::open(&self.store, paired, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?;
        bar.finish_and_clear();
        Ok(reader)
    }

    /// The writer of this device's entries (waking a running `sync --watch` after writes).
    pub fn writer<'a>(&'a self, paired: &'a Paired) -> Writer<'a> {
        Writer::new(&self.store, paired, self.watch.as_deref())
    }

    /// Tells a running `sync --watch` that local entries were written.
    pub fn wrote(&self) {
        if let Some(watch) = &self.watch {
            watch.notify_one();
        }
    }
}

/// Runs a command, turning errors into `error: …` on stderr and exit code 1.
pub async fn execute(ctx: &Ctx, command: Command) -> Output {
    match run(ctx, command).await {
        Ok(output) => output,
        Err(err) => Output {
            stderr: format!("error: {err:#}\n"),
            code: 1,
            ..Output::default()
        },
    }
}

async fn run(ctx: &Ctx, mut command: Command) -> Result<Output> {
    let mut out = Output::default();
    if let Some(words) = command.text_mut().filter(|w| w.len() == 1 && w[0] == "-") {
        let text = ctx
            .stdin
            .as_deref()
            .ok_or_else(|| anyhow!("standard input was not read"))?;
        *words = vec![text.trim_end_matches(['\n', '\r']).to_string()];
    }
    match command {
        Command::Init { .. } => {
            return Err(anyhow!(
                "this device already has an identity in {}; nothing changed",
                ctx.home.root().display()
            ))
        }
        Command::Passphrase(_) | Command::Backup(BackupCommand::Import { .. }) | Command::Ui { .. } => {
            return Err(anyhow!(
                "this command runs on its own, not inside `candor sync --watch`"
            ))
        }
        Command::Journal(command) => match command {
            JournalCommand::Add { text, file } => {
                journal::add(ctx, &text, file.as_deref(), &mut out)?
            }
            JournalCommand::Edit { id, text, file } => {
                journal::edit(ctx, &id, &text, file.as_deref(), &mut out)?
            }
            JournalCommand::List { json, since } => {
                journal::list(ctx, json, since.as_deref(), &mut out)?
            }
            JournalCommand::Search { words, json } => {
                journal::search(ctx, &words, json, &mut out)?
            }
            JournalCommand::Backup { state } => journal::backup(ctx, state == "on", &mut out)?,
            JournalCommand::Prompt => journal::prompt(&mut out)?,
        },
        Command::Backup(BackupCommand::Export { out: path, force }) => {
            backup::export(ctx, &path, force, &mut out)?
        }
        Command::Export(args) => match (args.verifiable, &args.select, &args.out) {
            (true, Some(select), Some(file)) => {
                proof::export_verifiable(ctx, select, file, args.force, &mut out)?
            }
            (true, _, _) => {
                return Err(anyhow!(
                    "use `candor export --verifiable --select ID,… --out FILE`"
                ))
            }
            _ => export::export(ctx, &args, &mut out)?,
        },
        Command::Space(SpaceCommand::Create { .. } | SpaceCommand::Join { .. }) => {
            return Err(anyhow!(
                "`candor sync --watch` is running on this device; stop it before creating or joining a space"
            ))
        }
        Command::Space(SpaceCommand::SafetyNumber) => space::safety_number(ctx, &mut out)?,
        Command::Space(SpaceCommand::Invite) => space::invite(ctx, &mut out)?,
        Command::Space(SpaceCommand::Fingerprint) => verify::fingerprint(ctx, &mut out)?,
        Command::Space(SpaceCommand::Show { json }) => space::show(ctx, json, &mut out)?,
        Command::Log(LogCommand::Add { kind, text }) => log::add(ctx, &kind, &text.join(" "), &mut out)?,
        Command::Log(LogCommand::Correct { id, text }) => {
            log::correct(ctx, &id, &text.join(" "), &mut out)?
        }
        Command::Log(LogCommand::List { json, limit }) => log::list(ctx, json, limit, &mut out)?,
        Command::Log(LogCommand::Import { file }) => log::import(ctx, &file, &mut out)?,
        Command::Sync(args) => {
            if args.watch {
                return Err(anyhow!("`candor sync --watch` is already running on this device"));
            }
            let paired = ctx.paired()?;
            journal::upload_pending(ctx)?;
            // A first sync of many entries shows a running count on a terminal.
            let spinner = (ctx.interactive && ctx.store.cursor()? == 0)
                .then(|| crate::progress::spinner(true, "entries verified and stored"));
            if let Some(spinner) = &spinner {
                let counter = spinner.clone();
                ctx.store
                    .set_applied_hook(Some(Box::new(move || counter.inc(1))));
            }
            let report = crate::syncer::sync_once(&ctx.store, &paired).await;
            if let Some(spinner) = spinner {
                ctx.store.set_applied_hook(None);
                spinner.finish_and_clear();
            }
            let report =
                report.context("sync failed; nothing was lost, local entries go out next time")?;
            report.print(args.json, &mut out);
        }
        Command::Verify { json } => verify::verify(ctx, json, &mut out)?,
        Command::VerifyExport { file, json } => {
            return proof::verify_export(&ctx.path(&file), json)
        }
        Command::Space(SpaceCommand::Leave { note }) => ledger::leave(ctx, note, &mut out).await?,
        Command::Space(SpaceCommand::Relay { address }) => {
            space::move_relay(ctx, &address, &mut out).await?
        }
        Command::Promise(command) => match command {
            PromiseCommand::Add { text, due, yes } => {
                ledger::promise_add(ctx, &text, due.as_deref(), yes, &mut out)?
            }
            PromiseCommand::Kept { id, note } => {
                ledger::promise_status(ctx, &id, PromiseStatusChange::Kept(note), &mut out)?
            }
            PromiseCommand::Missed { id, note } => {
                ledger::promise_status(ctx, &id, PromiseStatusChange::Missed(note), &mut out)?
            }
            PromiseCommand::Renegotiate { id, text, due, yes } => ledger::promise_status(
                ctx,
                &id,
                PromiseStatusChange::Renegotiated {
                    text: text.join(" "),
                    due,
                    yes,
                },
                &mut out,
            )?,
            PromiseCommand::Confirm { id } => ledger::promise_answer(ctx, &id, None, &mut out)?,
            PromiseCommand::Dispute { id, note } => {
                ledger::promise_answer(ctx, &id, Some(note), &mut out)?
            }
            PromiseCommand::List { open, all, json } => {
                ledger::promise_list(ctx, open, all, json, &mut out)?
            }
        },
        Command::Checkin { text, eta } => ledger::checkin(ctx, &text, eta, &mut out)?,
        Command::Plan(PlanCommand::Add {
            when,
            text,
            busy_only,
        }) => ledger::plan_add(ctx, &when, &text, busy_only, &mut out)?,
        Command::Plan(PlanCommand::List { from, to, json }) => {
            ledger::plan_list(ctx, from.as_deref(), to.as_deref(), json, &mut out)?
        }
        Command::Ack { id, note } => ledger::ack(ctx, &id, note, &mut out)?,
        Command::Support(SupportCommand::Request { need, note }) => {
            ledger::support_request(ctx, &need, note, &mut out)?
        }
        Command::Support(SupportCommand::Reply { id, text }) => {
            ledger::support_reply(ctx, &id, &text, &mut out)?
        }
        Command::Support(SupportCommand::List { json }) => {
            ledger::support_list(ctx, json, &mut out)?
        }
        Command::Agreement(command) => match command {
            AgreementCommand::Propose { text, review } => {
                ledger::agreement_propose(ctx, &text, &review, &mut out)?
            }
            AgreementCommand::Accept { id } => {
                ledger::agreement_act(ctx, &id, AgreementAction::Accept, &mut out)?
            }
            AgreementCommand::Decline { id } => {
                ledger::agreement_act(ctx, &id, AgreementAction::Decline, &mut out)?
            }
            AgreementCommand::End { id, note } => {
                ledger::agreement_act(ctx, &id, AgreementAction::End(note), &mut out)?
            }
            AgreementCommand::List { json } => ledger::agreement_list(ctx, json, &mut out)?,
        },
        Command::Today { json } => today::show(ctx, json, &mut out)?,
        Command::Summary { weeks, json } => ledger::summary(ctx, weeks, json, &mut out)?,
        Command::Note(command) => match command {
            NoteCommand::List { all, json } => notes::list(ctx, all, json, &mut out)?,
            NoteCommand::Show { name, json } => notes::show(ctx, &name, json, &mut out)?,
            NoteCommand::New { name, template } => {
                notes::new(ctx, &name, template.as_deref(), &mut out)?
            }
            NoteCommand::Set { name, file, base } => {
                notes::set(ctx, &name, &file, base.as_deref(), &mut out)?
            }
            NoteCommand::Edit { .. } => {
                return Err(anyhow!(
                    "`note edit` opens an editor in your terminal; run it directly, not through another program"
                ))
            }
            NoteCommand::History { name, json } => notes::history(ctx, &name, json, &mut out)?,
            NoteCommand::Rename { name, new_name } => {
                notes::rename(ctx, &name, &new_name, &mut out)?
            }
            NoteCommand::Archive { name, restore } => {
                notes::archive(ctx, &name, restore, &mut out)?
            }
        },
        Command::Goal(command) => match command {
            GoalCommand::Add {
                text,
                week,
                together,
            } => goals::add(ctx, &text, week.as_deref(), together, &mut out)?,
            GoalCommand::Progress { id, text } => goals::update(
                ctx,
                &id,
                goals::GoalChange::Progress(text.join(" ")),
                &mut out,
            )?,
            GoalCommand::Done { id, note } => {
                goals::update(ctx, &id, goals::GoalChange::Done(note), &mut out)?
            }
            GoalCommand::Drop { id, note } => {
                goals::update(ctx, &id, goals::GoalChange::Dropped(note), &mut out)?
            }
            GoalCommand::List { week, json } => {
                goals::list(ctx, week.as_deref(), json, &mut out)?
            }
        },
    }
    Ok(out)
}

/// Draws `N` bytes from the OS random number generator.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow!("the OS random number generator failed: {e}"))?;
    Ok(bytes)
}
