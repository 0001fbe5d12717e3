//! The local socket of a running `sync --watch` (or of a `sync`, `space create` or
//! `space join` waiting on the network).
//!
//! sled lets one process open a database at a time. While one `candor` process holds the store,
//! other `candor` commands on the same home send it their command over `HOME/candor.sock`; it
//! runs the command against its open store and sends back what to print. Writes made this way
//! wake the watch loop, which pushes them at once.
//!
//! **Who may connect.** The socket lives in the 0700 home and is created 0600 (bound under a
//! umask of 0177, so it is never reachable by others, not even for a moment); each connection's
//! peer credentials (`SO_PEERCRED`) must name this process's own user, or it is closed unread.
//!
//! **Protocol** (version [`LOCAL_PROTOCOL`]): one request and one answer per connection, each a
//! frame `version (2, BE) | length (4, BE) | postcard body`. The request is a [`Request`]: a
//! typed, already parsed command ([`crate::cli::Command`]) with the caller's working directory,
//! forwarded standard input and passphrase, or a status query. The answer is an [`Answer`]. A
//! request above [`MAX_REQUEST`] bytes or an answer above [`MAX_ANSWER`] is refused before it
//! is read; a request of another version gets [`Answer::Refused`] saying so.

use crate::cli::Command;
use crate::commands::{self, Ctx};
use crate::home::Home;
use crate::output::Output;
use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// The local protocol's version (1 was a JSON line of argv).
pub const LOCAL_PROTOCOL: u16 = 2;
/// The largest request body accepted (a forwarded `log import -` carries its input).
pub const MAX_REQUEST: u32 = 17 * 1024 * 1024;
/// The largest answer body accepted (`log list --json` of a long history is large).
pub const MAX_ANSWER: u32 = 256 * 1024 * 1024;
/// How long a forwarding process waits for the answer (a forwarded `sync` may wait on the
/// network for up to its own timeouts).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a process asks the one holding the store.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Run a command against the open store.
    Run(Forwarded),
    /// Say who is serving.
    Status,
}

/// A command forwarded to the process holding the store.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    /// The command, parsed by the typing process.
    pub command: Command,
    /// The caller's working directory.
    pub cwd: PathBuf,
    /// Standard input, for commands that read it (`log import -`).
    pub stdin: Option<String>,
    /// A passphrase the typing process read for the command (`backup export`).
    pub passphrase: Option<Passphrase>,
}

/// A passphrase on its way over the local socket, zeroized when dropped.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.0.zeroize();
    }
}

/// [`Request`] as sent, borrowing the command (encodes exactly as [`Request`]).
#[derive(Serialize)]
enum Outgoing<'a> {
    Run(&'a Forwarded),
    Status,
}

/// The answer to a [`Request`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// What the command printed, and its exit code.
    Output(Output),
    /// Who is serving.
    Status(Status),
    /// The request was not run, and why.
    Refused(String),
}

/// What [`Request::Status`] reports.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The serving process.
    pub pid: u32,
    /// The home it serves.
    pub home: PathBuf,
}

/// Why a frame was not read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed early.
    #[error("local socket: {0}")]
    Io(#[from] std::io::Error),
    /// The other side speaks another version of this protocol.
    #[error("the other candor process speaks local protocol {0}, this one {LOCAL_PROTOCOL}: restart `candor sync --watch` after an upgrade")]
    Version(u16),
    /// The frame is larger than allowed.
    #[error("a local frame of {0} bytes is over the limit")]
    TooLarge(u32),
    /// The body does not decode.
    #[error("a malformed local frame: {0}")]
    Malformed(#[from] postcard::Error),
}

fn header(len: usize, max: u32) -> Result<[u8; 6], FrameError> {
    let len = u32::try_from(len).map_err(|_| FrameError::TooLarge(u32::MAX))?;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut head = [0u8; 6];
    head[..2].copy_from_slice(&LOCAL_PROTOCOL.to_be_bytes());
    head[2..].copy_from_slice(&len.to_be_bytes());
    Ok(head)
}

/// Checks a frame header; the body's length.
fn parse_header(head: [u8; 6], max: u32) -> Result<usize, FrameError> {
    let version = u16::from_be_bytes([head[0], head[1]]);
    if version != LOCAL_PROTOCOL {
        return Err(FrameError::Version(version));
    }
    let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len as usize)
}

/// Encodes one frame of at most `max` body bytes.
pub fn encode_frame<T: Serialize>(value: &T, max: u32) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(value)?;
    let mut frame = header(body.len(), max)?.to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one frame of at most `max` body bytes (blocking).
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    read: &mut impl Read,
    max: u32,
) -> Result<T, FrameError> {
    let mut head = [0u8; 6];
    read.read_exact(&mut head)?;
    let mut body = vec![0u8; parse_header(head, max)?];
    read.read_exact(&mut body)?;
    Ok(postcard::from_bytes(&body)?)
}

async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    read: &mut (impl AsyncReadExt + Unpin),
    max: u32,
) -> Result<T, FrameError> {
    let mut head = [0u8; 6];
    read.read_exact(&mut head).await?;
    let mut body = vec![0u8; parse_header(head, max)?];
    read.read_exact(&mut body).await?;
    Ok(postcard::from_bytes(&body)?)
}

/// The socket of a home, bound (see [`spawn`]).
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

/// Binds the socket, refusing if another process is already serving it. The socket is
/// created under a umask of 0177, so it is 0600 from its first moment.
pub fn bind(home: &Home) -> Result<Bound> {
    use rustix::fs::Mode;
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
    let previous = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(&path);
    rustix::process::umask(previous);
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    Ok(Bound { listener, path })
}

/// Whether a connection's peer is this process's own user.
fn same_user(stream: &tokio::net::UnixStream) -> bool {
    let me = rustix::process::getuid().as_raw();
    stream.peer_cred().is_ok_and(|peer| peer.uid() == me)
}

/// Serves forwarded commands until the listener fails (or the task is aborted).
pub async fn serve(
    bound: Bound,
    home: Home,
    store: Arc<crate::store::Store>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok((stream, _)) = bound.listener.accept().await else {
            return;
        };
        if !same_user(&stream) {
            continue; // dropped unread
        }
        let (home, store, wake) = (home.clone(), store.clone(), wake.clone());
        tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let answer = match read_frame_async::<Request>(&mut read, MAX_REQUEST).await {
                Err(FrameError::Io(_)) => return,
                Err(e) => Answer::Refused(e.to_string()),
                Ok(Request::Status) => Answer::Status(Status {
                    pid: std::process::id(),
                    home: home.root().to_path_buf(),
                }),
                Ok(Request::Run(request)) => Answer::Output(run(request, home, store, wake).await),
            };
            let frame = encode_frame(&answer, MAX_ANSWER).or_else(|e| {
                encode_frame(&Answer::Refused(format!("the answer: {e}")), MAX_ANSWER)
            });
            if let Ok(frame) = frame {
                let _ = write.write_all(&frame).await;
            }
            let _ = write.shutdown().await;
        });
    }
}

/// Runs a forwarded command against the open store.
async fn run(
    request: Forwarded,
    home: Home,
    store: Arc<crate::store::Store>,
    wake: Arc<tokio::sync::Notify>,
) -> Output {
    let Forwarded {
        command,
        cwd,
        stdin,
        passphrase,
    } = request;
    let ctx = Ctx {
        home,
        store,
        cwd,
        stdin,
        watch: Some(wake),
        passphrase: passphrase.map(|p| zeroize::Zeroizing::new(p.0.clone())),
        interactive: false,
    };
    // Commands block on the store (a durable write waits for the disk): let each block its own
    // thread (the runtime moves its other tasks elsewhere), so that writes arriving together
    // share a flush instead of queueing behind the runtime's two workers.
    let runtime = tokio::runtime::Handle::current();
    match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| runtime.block_on(commands::execute(&ctx, command)))
        }
        _ => commands::execute(&ctx, command).await,
    }
}

/// The process holding the store serves the socket while this lives: the task is stopped and
/// the socket removed when it is dropped.
pub struct Serving {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts serving `bound` on the current runtime.
pub fn spawn(
    bound: Bound,
    home: Home,
    store: Arc<crate::store::Store>,
    wake: Arc<tokio::sync::Notify>,
) -> Serving {
    Serving {
        path: bound.path.clone(),
        task: tokio::spawn(serve(bound, home, store, wake)),
    }
}

/// Asks the process serving `home`'s socket for its status; `None` if none is listening.
pub fn status(home: &Home) -> Result<Option<Status>> {
    match ask(home, &Outgoing::Status)? {
        None => Ok(None),
        Some(Answer::Status(status)) => Ok(Some(status)),
        Some(Answer::Refused(why)) => bail!("`candor sync --watch` refused: {why}"),
        Some(Answer::Output(_)) => bail!("`candor sync --watch` answered another question"),
    }
}

/// Sends a request to the process serving `home`'s socket; `None` if none is listening.
fn ask(home: &Home, request: &Outgoing<'_>) -> Result<Option<Answer>> {
    let path = home.socket_path();
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&path) else {
        return Ok(None);
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .context("configuring the local socket")?;
    let frame =
        encode_frame(request, MAX_REQUEST).context("the command is too large to forward")?;
    stream
        .write_all(&frame)
        .context("sending the command to `candor sync --watch`")?;
    match read_frame::<Answer>(&mut stream, MAX_ANSWER) {
        Ok(answer) => Ok(Some(answer)),
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(anyhow!(
            "`candor sync --watch` closed the connection without answering; is it shutting down?"
        )),
        Err(FrameError::Io(e)) => Err(e).with_context(|| {
            format!(
                "no answer from the running `candor sync --watch` within {} s; check `candor log list` \
                 before repeating a write",
                ANSWER_TIMEOUT.as_secs()
            )
        }),
        Err(e) => Err(e).context("`candor sync --watch` sent an answer this version cannot read"),
    }
}

/// Runs a command in the process serving `home`'s socket; `None` if none is listening.
pub fn forward(home: &Home, request: &Forwarded) -> Result<Option<Output>> {
    match ask(home, &Outgoing::Run(request))? {
        None => Ok(None),
        Some(Answer::Output(output)) => Ok(Some(output)),
        Some(Answer::Refused(why)) => bail!("`candor sync --watch` refused the command: {why}"),
        Some(Answer::Status(_)) => bail!("`candor sync --watch` answered another question"),
    }
}

#[cfg(test)]
mod tests;
