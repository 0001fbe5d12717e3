//! The local socket of a running `sync --watch`.
//!
//! sled lets one process open a database at a time. While `sync --watch` holds the store, other
//! `candor` commands on the same home send their arguments over `HOME/candor.sock` (a Unix socket
//! in the 0700 home, itself 0600, so only the device's user can open it); the watching process
//! runs the command against its open store and sends back what to print. Writes made this way
//! wake the watch loop, which pushes them at once.
//!
//! Protocol: one JSON line each way — `{"args": [...], "cwd": "...", "stdin": null}` in,
//! `{"stdout": "...", "stderr": "...", "code": 0}` out.

use crate::cli::Cli;
use crate::commands::{self, Ctx};
use crate::home::Home;
use crate::output::Output;
use anyhow::{bail, Context as _, Result};
use clap::Parser as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// Longest request line accepted (bounds memory per connection).
const MAX_REQUEST: u64 = 16 * 1024 * 1024;
/// How long a forwarding process waits for the answer (a forwarded `sync` may wait on the
/// network for up to its own timeouts).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A command forwarded to the watching process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    /// The full argument list, program name first.
    pub args: Vec<String>,
    /// The caller's working directory.
    pub cwd: PathBuf,
    /// Standard input, for commands that read it (`log import -`).
    pub stdin: Option<String>,
    /// A passphrase the typing process read for the command (`backup export`).
    #[serde(default)]
    pub passphrase: Option<String>,
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.passphrase.zeroize();
    }
}

/// Binds the socket, refusing if another `sync --watch` is already serving it.
pub fn bind(home: &Home) -> Result<UnixListener> {
    let path = home.socket_path();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!(
                "`candor sync --watch` is already running for {}",
                home.root().display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Serves forwarded commands until the listener fails.
pub async fn serve(
    listener: UnixListener,
    home: Home,
    store: Arc<crate::store::Store>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (home, store, wake) = (home.clone(), store.clone(), wake.clone());
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let output = match serde_json::from_str::<Forwarded>(&line) {
                Err(e) => Output {
                    stderr: format!("error: malformed forwarded command: {e}\n"),
                    code: 2,
                    ..Output::default()
                },
                Ok(request) => match Cli::try_parse_from(&request.args) {
                    Err(e) => Output {
                        stderr: e.render().to_string(),
                        code: e.exit_code(),
                        ..Output::default()
                    },
                    Ok(cli) => {
                        let ctx = Ctx {
                            home,
                            store,
                            cwd: request.cwd.clone(),
                            stdin: request.stdin.clone(),
                            watch: Some(wake),
                            passphrase: request.passphrase.clone().map(zeroize::Zeroizing::new),
                            interactive: false,
                        };
                        // Commands block on the store (a durable write waits for the disk):
                        // let each block its own thread (the runtime moves its other tasks
                        // elsewhere), so that writes arriving together share a flush instead
                        // of queueing behind the runtime's two workers.
                        let runtime = tokio::runtime::Handle::current();
                        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                            tokio::task::block_in_place(|| {
                                runtime.block_on(commands::execute(&ctx, cli.command))
                            })
                        } else {
                            commands::execute(&ctx, cli.command).await
                        }
                    }
                },
            };
            let mut reply = serde_json::to_vec(&output).unwrap_or_default();
            reply.push(b'\n');
            let _ = write.write_all(&reply).await;
            let _ = write.shutdown().await;
        });
    }
}

/// Sends a command to a running `sync --watch`; `None` if none is running.
pub fn forward(home: &Home, request: &Forwarded) -> Result<Option<Output>> {
    let path = home.socket_path();
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&path) else {
        return Ok(None);
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .context("configuring the local socket")?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending the command to `candor sync --watch`")?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .with_context(|| {
            format!(
            "no answer from the running `candor sync --watch` within {} s; check `candor log list` \
             before repeating a write",
            ANSWER_TIMEOUT.as_secs()
        )
        })?;
    if reply.is_empty() {
        bail!(
            "`candor sync --watch` closed the connection without answering; is it shutting down?"
        );
    }
    Ok(Some(serde_json::from_str(&reply).context(
        "`candor sync --watch` sent a malformed answer",
    )?))
}
