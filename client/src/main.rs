//! The `candor` command: parses arguments, then runs the command here or in a running
//! `sync --watch` that holds this device's store.

use anyhow::{anyhow, bail, Context as _, Result};
use candor::cli::{
    BackupCommand, Cli, Command, JournalCommand, LogCommand, NoteCommand, PassphraseCommand,
    PromiseCommand, SpaceCommand,
};
use candor::commands::{self, Ctx};
use candor::daemon::{self, Forwarded};
use candor::home::Home;
use candor::output::Output;
use candor::secret;
use candor::store::{Store, StoreError};
use clap::Parser as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANDOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
    // Checking an export needs no identity, store or key.
    if let Command::VerifyExport { file, json } = &cli.command {
        let output = commands::proof::verify_export(file, *json)?;
        output.emit();
        return Ok(output.code);
    }
    let root = cli.home.or_else(Home::default_root).ok_or_else(|| {
        anyhow!("no --home given and no platform data directory found; pass --home DIR")
    })?;
    let home = Home::new(root);
    // Plaintext an editor session left behind when its process was killed.
    candor::editor::sweep(home.root());
    match cli.command {
        Command::Init { name, passphrase } => init(&home, &name, passphrase),
        Command::Passphrase(command) => passphrase(&home, command),
        Command::Backup(BackupCommand::Import { file, passphrase }) => {
            let output = commands::backup::import(
                &home,
                &file,
                passphrase,
                candor::progress::stderr_is_terminal(),
            )?;
            output.emit();
            Ok(output.code)
        }
        Command::Sync(args) if args.watch => watch(&home).await,
        Command::Ui { listen, no_open } => {
            candor::ui::run(home, listen, !no_open, shutdown_signal()).await
        }
        Command::Note(NoteCommand::Edit { name }) => note_edit(&home, &name).await,
        Command::Journal(JournalCommand::Edit {
            id,
            text,
            file: None,
        }) if text.is_empty() => journal_edit(&home, &id).await,
        command => run_elsewhere_or_here(&home, command).await,
    }
}

fn passphrase(home: &Home, command: PassphraseCommand) -> Result<i32> {
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let wrapped = home.has_storage_key() && home.key_file()?.is_wrapped();
    let mut out = Output::default();
    match command {
        PassphraseCommand::Set => {
            if wrapped {
                bail!(
                    "a passphrase is already set; use `candor passphrase change`; nothing changed"
                );
            }
            let home = secret::unlock(home)?;
            let new = secret::new(
                &[secret::ENV_NEW_PASSPHRASE, secret::ENV_PASSPHRASE],
                "passphrase for this device's data",
            )?;
            home.write_storage_key(&*home.storage_key()?, Some(new.as_bytes()))?;
            out.line("passphrase set: this device's data now opens only with it");
            out.note("if you lose the passphrase, the data on this device is lost; keep a recovery bundle (`candor backup export`)");
        }
        PassphraseCommand::Change => {
            if !wrapped {
                bail!("no passphrase is set; use `candor passphrase set`; nothing changed");
            }
            let home = secret::unlock(home)?;
            let new = secret::new(
                &[secret::ENV_NEW_PASSPHRASE],
                "passphrase for this device's data",
            )?;
            home.write_storage_key(&*home.storage_key()?, Some(new.as_bytes()))?;
            out.line("passphrase changed");
        }
        PassphraseCommand::Remove => {
            if !wrapped {
                bail!("no passphrase is set; nothing changed");
            }
            let home = secret::unlock(home)?;
            home.write_storage_key(&*home.storage_key()?, None)?;
            out.line("passphrase removed");
            out.note("the storage key is now in a 0600 file beside the data: anyone who can read this device's disk can read everything");
        }
    }
    out.emit();
    Ok(0)
}

fn init(home: &Home, name: &str, protect: bool) -> Result<i32> {
    commands::device::check(home, name)?;
    let pass = if protect {
        Some(secret::new(
            &[secret::ENV_NEW_PASSPHRASE, secret::ENV_PASSPHRASE],
            "passphrase for this device's data",
        )?)
    } else {
        None
    };
    let (home, identity) =
        commands::device::create(home, name, pass.as_ref().map(|p| p.as_bytes()))?;
    let name = &identity.name;
    let mut out = Output::default();
    out.line(format!(
        "Created the identity of {name} in {}",
        home.root().display()
    ));
    out.line(format!("device key {}", identity.secrets.device_key()));
    if protect {
        out.line("This device's data is protected by your passphrase. If you lose it, the data is lost: keep a recovery bundle (`candor backup export`).");
    } else {
        out.line("No passphrase: anyone who can read this device's disk can read your data (`candor passphrase set` to change that).");
    }
    out.line("Your private journal is ready: `candor journal add TEXT`.");
    out.line("Next: `candor space create --relay HOST:PORT --relay-fingerprint FP`, or `candor space join INVITE`.");
    out.emit();
    Ok(0)
}

enum Opened {
    Here(Box<Store>, Home),
    Elsewhere(Output),
}

/// Opens the store, or forwards to a running `sync --watch`. Another short-lived command may
/// hold the store for a moment, so a locked store is retried for a few seconds.
fn open_or_forward(home: &Home, forwarded: &Forwarded) -> Result<Opened> {
    let mut unlocked: Option<Home> = None;
    until_unlocked(|| {
        if let Some(output) = daemon::forward(home, forwarded)? {
            return Ok(Ok(Opened::Elsewhere(output)));
        }
        // Only a command that opens the store here needs the storage key (and the passphrase):
        // a running `sync --watch` holds it unlocked.
        let here = match &unlocked {
            Some(home) => home.clone(),
            None => {
                let home = secret::unlock(home)?;
                unlocked = Some(home.clone());
                home
            }
        };
        let opened = Store::open(&here.store_dir(), here.storage_key()?);
        Ok(opened.map(|store| Opened::Here(Box::new(store), here)))
    })
}

/// Calls `attempt` until the store it opens is not locked by another `candor` process (a
/// short-lived command may hold it for a moment), for up to five seconds.
fn until_unlocked<T>(mut attempt: impl FnMut() -> Result<Result<T, StoreError>>) -> Result<T> {
    for _ in 0..100 {
        match attempt()? {
            Ok(value) => return Ok(value),
            Err(StoreError::Locked) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e).context("opening the local store"),
        }
    }
    bail!("the local store stayed locked by another candor process for 5 seconds; try again")
}

async fn run_elsewhere_or_here(home: &Home, mut command: Command) -> Result<i32> {
    let text_on_stdin = command.reads_stdin_text();
    let stdin = match &command {
        Command::Log(LogCommand::Import { file })
        | Command::Note(NoteCommand::Set { file, .. })
        | Command::Journal(
            JournalCommand::Add {
                file: Some(file), ..
            }
            | JournalCommand::Edit {
                file: Some(file), ..
            },
        ) if file.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading stdin")?;
            Some(text)
        }
        Command::Journal(
            JournalCommand::Add { text, file: None }
            | JournalCommand::Edit {
                text, file: None, ..
            },
        ) if text.len() == 1 && text[0] == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading stdin")?;
            Some(text)
        }
        _ if text_on_stdin => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading stdin")?;
            Some(text)
        }
        _ => None,
    };
    let args = std::env::args_os()
        .map(|arg| {
            arg.into_string().map_err(|arg| {
                anyhow!("argument {arg:?} is not valid UTF-8; rename the file or pass it on stdin")
            })
        })
        .collect::<Result<Vec<String>>>()?;
    let mut args = args;
    if !confirm_past_due(&command, &mut args)? {
        eprintln!("nothing recorded");
        return Ok(1);
    }
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let passphrase = match &command {
        Command::Backup(BackupCommand::Export { .. }) => Some(secret::new(
            &[secret::ENV_BACKUP_PASSPHRASE],
            "passphrase for the recovery bundle",
        )?),
        _ => None,
    };
    drop(args);
    let forwarded = Forwarded {
        command: command.clone(),
        cwd: std::env::current_dir().context("reading the working directory")?,
        stdin,
        passphrase: passphrase
            .as_ref()
            .map(|p| daemon::Passphrase(p.to_string())),
    };
    let (store, home) = match open_or_forward(home, &forwarded)? {
        Opened::Elsewhere(output) => {
            output.emit();
            return Ok(output.code);
        }
        Opened::Here(store, home) => (store, home),
    };
    let home = &home;
    let ctx = Ctx {
        home: home.clone(),
        store: Arc::new(*store),
        cwd: forwarded.cwd.clone(),
        stdin: forwarded.stdin.clone(),
        watch: None,
        passphrase,
        interactive: candor::progress::stderr_is_terminal(),
    };
    // Commands that wait on the network hold the store for a while: meanwhile, serve other
    // `candor` commands on this home over the local socket, as `sync --watch` does.
    let serving = matches!(
        command,
        Command::Sync(_) | Command::Space(SpaceCommand::Create { .. } | SpaceCommand::Join { .. })
    )
    .then(|| daemon::bind(home).ok())
    .flatten()
    .map(|bound| {
        let wake = Arc::new(tokio::sync::Notify::new());
        daemon::spawn(bound, home.clone(), ctx.store.clone(), wake)
    });
    let mut out = Output::default();
    let output = match command {
        Command::Space(SpaceCommand::Create {
            relay,
            relay_fingerprint,
        }) => commands::create_space(&ctx, &relay, &relay_fingerprint, &mut out)
            .await
            .map(|()| out),
        Command::Space(SpaceCommand::Join { invite }) => {
            let invite = match (invite.as_str(), &ctx.stdin) {
                ("-", Some(line)) => line.trim().to_string(),
                _ => invite,
            };
            commands::join_space(&ctx, &invite, &mut out)
                .await
                .map(|()| out)
        }
        other => Ok(commands::execute(&ctx, other).await),
    };
    drop(serving);
    let output = output?;
    output.emit();
    Ok(output.code)
}

/// Runs one command given as arguments (here, or in a running `sync --watch`) and returns
/// what it would print.
async fn run_captured(home: &Home, args: Vec<String>, stdin: Option<String>) -> Result<Output> {
    let cli =
        Cli::try_parse_from(&args).map_err(|e| anyhow!("internal command did not parse: {e}"))?;
    let forwarded = Forwarded {
        command: cli.command.clone(),
        cwd: std::env::current_dir().context("reading the working directory")?,
        stdin,
        passphrase: None,
    };
    match open_or_forward(home, &forwarded)? {
        Opened::Elsewhere(output) => Ok(output),
        Opened::Here(store, home) => {
            let ctx = Ctx {
                home,
                store: Arc::new(*store),
                cwd: forwarded.cwd.clone(),
                stdin: forwarded.stdin.clone(),
                watch: None,
                passphrase: None,
                interactive: false,
            };
            Ok(commands::execute(&ctx, cli.command).await)
        }
    }
}

/// A promise's due time typed in the past: asked about at a terminal (a yes adds `--yes` to the
/// arguments run); elsewhere the command itself refuses without `--yes`. False if declined.
fn confirm_past_due(command: &Command, args: &mut Vec<String>) -> Result<bool> {
    let due = match command {
        Command::Promise(
            PromiseCommand::Add {
                due: Some(due),
                yes: false,
                ..
            }
            | PromiseCommand::Renegotiate {
                due: Some(due),
                yes: false,
                ..
            },
        ) => due,
        _ => return Ok(true),
    };
    let Some(due_ms) = candor::timefmt::parse_end(due) else {
        return Ok(true); // the command explains
    };
    if due_ms >= candor::timefmt::now_ms() || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(true);
    }
    eprint!(
        "The due time {} is in the past. Record it anyway? [y/N] ",
        candor::timefmt::short(due_ms)
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the answer")?;
    let yes = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes");
    if yes {
        args.push("--yes".into());
    }
    Ok(yes)
}

/// `candor note edit`: the editor runs here, in the user's terminal, while reading the note and
/// recording the edit run like any other command (possibly inside a running `sync --watch`).
async fn note_edit(home: &Home, name: &str) -> Result<i32> {
    let shown = run_captured(home, args(&["note", "show", name, "--json"]), None).await?;
    if shown.code != 0 {
        shown.emit();
        return Ok(shown.code);
    }
    let note: serde_json::Value =
        serde_json::from_str(&shown.stdout).context("reading the note")?;
    let before = note["text"].as_str().unwrap_or_default().to_string();
    let heads = note["heads"].as_str().unwrap_or_default().to_string();
    let Some(after) =
        edit_in_editor(home, &before, &format!("candor note set {name} --file F")).await?
    else {
        println!("no changes");
        return Ok(0);
    };
    let mut set = args(&["note", "set", name, "--file", "-"]);
    if !heads.is_empty() {
        set.push(format!("--base={heads}"));
    }
    let output = run_captured(home, set, Some(after)).await?;
    output.emit();
    Ok(output.code)
}

/// `candor journal edit ID` with no new text: the entry's latest version opens in the editor.
async fn journal_edit(home: &Home, id: &str) -> Result<i32> {
    let listed = run_captured(home, args(&["journal", "list", "--json"]), None).await?;
    if listed.code != 0 {
        listed.emit();
        return Ok(listed.code);
    }
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&listed.stdout).context("reading the journal")?;
    let wanted = id.trim().to_ascii_lowercase();
    let found: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| wanted.len() >= 4 && e["id"].as_str().is_some_and(|i| i.starts_with(&wanted)))
        .collect();
    let entry = match found.as_slice() {
        [one] => one,
        [] => bail!("no journal entry has an id starting with {id:?} (see `candor journal list`)"),
        _ => bail!(
            "{} journal entries have ids starting with {id:?}; give more characters",
            found.len()
        ),
    };
    let before = entry["text"].as_str().unwrap_or_default().to_string();
    let full_id = entry["id"].as_str().unwrap_or_default().to_string();
    let Some(after) =
        edit_in_editor(home, &before, &format!("candor journal edit {id} --file F")).await?
    else {
        println!("no changes");
        return Ok(0);
    };
    let output = run_captured(
        home,
        args(&["journal", "edit", &full_id, "--file", "-"]),
        Some(after),
    )
    .await?;
    output.emit();
    Ok(output.code)
}

/// Command-line arguments of a captured `candor` run.
fn args(rest: &[&str]) -> Vec<String> {
    std::iter::once("candor")
        .chain(rest.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Opens the editor on `before` (see `candor::editor`); returns the edited text, or `None` if
/// it did not change.
async fn edit_in_editor(home: &Home, before: &str, instead: &str) -> Result<Option<String>> {
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    candor::editor::edit(home.root(), before, instead).await
}

async fn watch(home: &Home) -> Result<i32> {
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let home = &secret::unlock(home)?;
    let bound = daemon::bind(home)?;
    let store = Arc::new(until_unlocked(|| {
        Ok(Store::open(&home.store_dir(), home.storage_key()?))
    })?);
    commands::Paired::load(home, &store)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let server = daemon::spawn(bound, home.clone(), store.clone(), wake.clone());
    eprintln!("watching; press Ctrl-C to stop");
    let result = candor::syncer::watch(home, &store, &wake, shutdown_signal()).await;
    drop(server);
    store.flush()?;
    result.map(|()| 0)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
