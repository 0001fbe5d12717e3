//! The `candor` command: parses arguments, then runs the command here or in a running
//! `sync --watch` that holds this device's store.

use anyhow::{anyhow, bail, Context as _, Result};
use candor::cli::{Cli, Command, LogCommand, NoteCommand, SpaceCommand};
use candor::commands::{self, random, Ctx};
use candor::daemon::{self, Forwarded};
use candor::home::{Home, Identity};
use candor::output::Output;
use candor::store::{Store, StoreError};
use candor_shared::keys::DeviceSecrets;
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
    let root = cli.home.or_else(Home::default_root).ok_or_else(|| {
        anyhow!("no --home given and no platform data directory found; pass --home DIR")
    })?;
    let home = Home::new(root);
    match cli.command {
        Command::Init { name } => init(&home, &name),
        Command::Sync(args) if args.watch => watch(&home).await,
        Command::Note(NoteCommand::Edit { name }) => note_edit(&home, &name).await,
        command => run_elsewhere_or_here(&home, command).await,
    }
}

fn init(home: &Home, name: &str) -> Result<i32> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        bail!("the name must be 1 to 64 characters");
    }
    if home.has_identity() {
        let existing = home.identity()?;
        bail!(
            "{} already holds the identity of {:?} (device {}); nothing changed",
            home.root().display(),
            existing.name,
            existing.secrets.device_key().short()
        );
    }
    home.create()?;
    let identity = Identity {
        name: name.to_string(),
        secrets: DeviceSecrets::from_seeds(random()?, random()?),
    };
    home.write_identity(&identity)?;
    drop(Store::open(&home.store_dir())?);
    let mut out = Output::default();
    out.line(format!(
        "Created the identity of {name} in {}",
        home.root().display()
    ));
    out.line(format!("device key {}", identity.secrets.device_key()));
    out.line("Next: `candor space create --relay HOST:PORT --relay-fingerprint FP`, or `candor space join INVITE`.");
    out.emit();
    Ok(0)
}

enum Opened {
    Here(Store),
    Elsewhere(Output),
}

/// Opens the store, or forwards to a running `sync --watch`. Another short-lived command may
/// hold the store for a moment, so a locked store is retried for a few seconds.
fn open_or_forward(home: &Home, forwarded: &Forwarded) -> Result<Opened> {
    for _ in 0..100 {
        if let Some(output) = daemon::forward(home, forwarded)? {
            return Ok(Opened::Elsewhere(output));
        }
        match Store::open(&home.store_dir()) {
            Ok(store) => return Ok(Opened::Here(store)),
            Err(StoreError::Locked) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e).context("opening the local store"),
        }
    }
    bail!("the local store stayed locked by another candor process for 5 seconds; try again")
}

async fn run_elsewhere_or_here(home: &Home, command: Command) -> Result<i32> {
    let stdin = match &command {
        Command::Log(LogCommand::Import { file })
        | Command::Note(NoteCommand::Set { file, .. })
            if file.as_os_str() == "-" =>
        {
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
    let forwarded = Forwarded {
        args,
        cwd: std::env::current_dir().context("reading the working directory")?,
        stdin,
    };
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let store = match open_or_forward(home, &forwarded)? {
        Opened::Elsewhere(output) => {
            output.emit();
            return Ok(output.code);
        }
        Opened::Here(store) => store,
    };
    let ctx = Ctx {
        home: home.clone(),
        store: Arc::new(store),
        cwd: forwarded.cwd,
        stdin: forwarded.stdin,
        watch: None,
    };
    // Commands that wait on the network hold the store for a while: meanwhile, serve other
    // `candor` commands on this home over the local socket, as `sync --watch` does.
    let serving = matches!(
        command,
        Command::Sync(_) | Command::Space(SpaceCommand::Create { .. } | SpaceCommand::Join { .. })
    )
    .then(|| daemon::bind(home).ok())
    .flatten()
    .map(|listener| {
        let wake = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(daemon::serve(
            listener,
            home.clone(),
            ctx.store.clone(),
            wake,
        ))
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
            commands::join_space(&ctx, &invite, &mut out)
                .await
                .map(|()| out)
        }
        other => Ok(commands::execute(&ctx, other).await),
    };
    if let Some(server) = serving {
        server.abort();
        let _ = std::fs::remove_file(home.socket_path());
    }
    let output = output?;
    output.emit();
    Ok(output.code)
}

/// Runs one command given as arguments (here, or in a running `sync --watch`) and returns
/// what it would print.
async fn run_captured(home: &Home, args: Vec<String>, stdin: Option<String>) -> Result<Output> {
    let forwarded = Forwarded {
        args,
        cwd: std::env::current_dir().context("reading the working directory")?,
        stdin,
    };
    match open_or_forward(home, &forwarded)? {
        Opened::Elsewhere(output) => Ok(output),
        Opened::Here(store) => {
            let cli = Cli::try_parse_from(&forwarded.args)
                .map_err(|e| anyhow!("internal command did not parse: {e}"))?;
            let ctx = Ctx {
                home: home.clone(),
                store: Arc::new(store),
                cwd: forwarded.cwd,
                stdin: forwarded.stdin,
                watch: None,
            };
            Ok(commands::execute(&ctx, cli.command).await)
        }
    }
}

/// `candor note edit`: the editor runs here, in the user's terminal, while reading the note and
/// recording the edit run like any other command (possibly inside a running `sync --watch`).
async fn note_edit(home: &Home, name: &str) -> Result<i32> {
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|v| !v.trim().is_empty()))
        .ok_or_else(|| {
            anyhow!("set $VISUAL or $EDITOR to your editor (e.g. EDITOR=nano), or use `candor note set {name} --file F`")
        })?;
    let args = |rest: &[&str]| -> Vec<String> {
        std::iter::once("candor")
            .chain(rest.iter().copied())
            .map(str::to_string)
            .collect()
    };
    let shown = run_captured(home, args(&["note", "show", name, "--json"]), None).await?;
    if shown.code != 0 {
        shown.emit();
        return Ok(shown.code);
    }
    let note: serde_json::Value =
        serde_json::from_str(&shown.stdout).context("reading the note")?;
    let before = note["text"].as_str().unwrap_or_default().to_string();
    let heads = note["heads"].as_str().unwrap_or_default().to_string();
    // A private file (0600) in the 0700 home, removed when `file` is dropped.
    let file = tempfile::Builder::new()
        .prefix(".note-edit-")
        .suffix(".md")
        .tempfile_in(home.root())
        .context("creating the temporary file")?;
    std::fs::write(file.path(), &before).context("writing the temporary file")?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor exited with {status}; nothing was recorded");
    }
    let after = std::fs::read_to_string(file.path()).context("reading the edited text")?;
    drop(file);
    if after == before {
        println!("no changes");
        return Ok(0);
    }
    let mut set = args(&["note", "set", name, "--file", "-"]);
    if !heads.is_empty() {
        set.push(format!("--base={heads}"));
    }
    let output = run_captured(home, set, Some(after)).await?;
    output.emit();
    Ok(output.code)
}

async fn watch(home: &Home) -> Result<i32> {
    if !home.has_identity() {
        bail!(
            "no device identity in {}: run `candor init --name NAME` first",
            home.root().display()
        );
    }
    let listener = daemon::bind(home)?;
    let mut store = None;
    for _ in 0..100 {
        match Store::open(&home.store_dir()) {
            Ok(opened) => {
                store = Some(opened);
                break;
            }
            Err(StoreError::Locked) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => return Err(e).context("opening the local store"),
        }
    }
    let store = Arc::new(
        store.ok_or_else(|| anyhow!("the local store stayed locked by another candor process"))?,
    );
    commands::Paired::load(home, &store)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn(daemon::serve(
        listener,
        home.clone(),
        store.clone(),
        wake.clone(),
    ));
    eprintln!("watching; press Ctrl-C to stop");
    let result = candor::syncer::watch(home, &store, &wake, shutdown_signal()).await;
    server.abort();
    let _ = std::fs::remove_file(home.socket_path());
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
