//! Test harness: runs the real `candor-relay` and `candor` binaries on loopback.
//!
//! [`Relay`] starts `candor-relay serve --listen 127.0.0.1:0` in a temp data dir and reads the
//! bound address and fingerprint from its first two stdout lines; it is killed on drop.
//! [`Device`] is one `--home` directory driven through the `candor` binary. [`Watch`] is a
//! running `candor sync --watch` whose stdout lines can be awaited (with a deadline, never a
//! fixed sleep).
//!
//! The binaries are found next to the test executable (`target/<profile>/`), where
//! `cargo test --workspace` builds them.

pub mod browser;
pub mod evil;
pub mod growth;
pub mod load;
pub mod pg;
pub mod pg_load;
pub mod proxy;
use anyhow::{anyhow, bail, Context as _, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long any awaited event may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Builds the `candor` and `candor-relay` binaries once per test process, so that
/// `cargo test -p candor-tests` never runs stale binaries (cargo builds other packages'
/// binaries only for their own tests).
fn build_binaries() {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        // `cargo test --workspace` has just built both binaries; skip the nested build when they
        // are newer than this test executable (it saves CI a second, differently-featured build).
        let exe = std::env::current_exe().ok();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let Some(exe_time) = exe.as_deref().and_then(modified) {
            let dir = exe
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let fresh = ["candor", "candor-relay"]
                .iter()
                .all(|name| modified(&dir.join(name)).is_some_and(|t| t >= exe_time));
            if fresh {
                return;
            }
        }
        let profile_release = cfg!(not(debug_assertions));
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "candor", "-p", "candor-relay"]);
        if profile_release {
            cargo.arg("--release");
        }
        let status = cargo.status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "building candor and candor-relay failed"
        );
    });
}

/// Path of a workspace binary built alongside the tests.
pub fn binary(name: &str) -> PathBuf {
    build_binaries();
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --workspace` first)",
        path.display()
    );
    path
}

fn lines_of(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Waits for a line satisfying `pred`, returning it.
fn wait_line(rx: &Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => bail!("timed out waiting for {what}; saw {seen:?}"),
        }
    }
}

/// A running relay.
pub struct Relay {
    child: Child,
    /// Its data directory.
    pub data: PathBuf,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `sha256:…`.
    pub fingerprint: String,
}

impl Relay {
    /// Starts a relay on an OS-assigned loopback port.
    pub fn start(data: &Path) -> Result<Self> {
        Self::start_on(data, "127.0.0.1:0")
    }

    /// Starts a relay on `listen` (used to restart on the port it had).
    pub fn start_on(data: &Path, listen: &str) -> Result<Self> {
        Self::start_with(data, listen, None)
    }

    /// Starts a relay on `listen` with the `relay.toml` at `config`, if any (e.g. the benchmark
    /// lifts the per-device request rate, which a benchmark exceeds on purpose).
    pub fn start_with(data: &Path, listen: &str, config: Option<&Path>) -> Result<Self> {
        match config {
            Some(config) => {
                let config = config.to_string_lossy();
                Self::start_args(data, listen, &["--config", &config])
            }
            None => Self::start_args(data, listen, &[]),
        }
    }

    /// Starts a relay on `listen` with more `serve` arguments (e.g. `--store postgres://…`).
    pub fn start_args(data: &Path, listen: &str, args: &[&str]) -> Result<Self> {
        let mut command = Command::new(binary("candor-relay"));
        command.args(["serve", "--listen", listen]).args(args);
        let mut child = command
            .arg("--data")
            .arg(data)
            .env("CANDOR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting candor-relay")?;
        let rx = lines_of(&mut child);
        let listening = wait_line(&rx, "the relay's listening line", |l| {
            l.starts_with("candor-relay listening on ")
        })?;
        let addr = listening
            .trim_start_matches("candor-relay listening on ")
            .trim()
            .to_string();
        let fp = wait_line(&rx, "the relay's fingerprint line", |l| {
            l.starts_with("fingerprint ")
        })?;
        let fingerprint = fp.trim_start_matches("fingerprint ").trim().to_string();
        Ok(Self {
            child,
            data: data.to_path_buf(),
            addr,
            fingerprint,
        })
    }

    /// Kills the relay abruptly (SIGKILL) and waits for it to exit.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.addr.clone()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two paired devices, Alex (who created the space) and Sam, in homes under `root`; Alex has
/// synced once, so the relay holds both introductions.
pub fn pair(root: &Path, relay: &Relay) -> Result<(Device, Device)> {
    let alex = Device::init(root, "Alex")?;
    let sam = Device::init(root, "Sam")?;
    let invite = alex.create_space(relay)?;
    // As the README does: the invite goes on standard input, never on the command line.
    sam.ok_with_stdin(&["space", "join", "-"], &format!("{invite}\n"))?;
    alex.ok(&["sync"])?;
    Ok((alex, sam))
}

/// One-shot syncs `a`, `b`, `a`: afterwards each holds everything the other wrote, and `a` holds
/// `b`'s checkpoint acknowledging it.
pub fn sync_both(a: &Device, b: &Device) -> Result<()> {
    a.ok(&["sync"])?;
    b.ok(&["sync"])?;
    a.ok(&["sync"])?;
    Ok(())
}

/// The stdout of a command that must have succeeded.
fn succeeded(args: &[&str], out: &Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "candor {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One device: a `--home` directory.
pub struct Device {
    /// The home directory.
    pub home: PathBuf,
}

impl Device {
    /// Creates the device's identity.
    pub fn init(root: &Path, name: &str) -> Result<Self> {
        let device = Self {
            home: root.join(name.to_lowercase()),
        };
        device.ok(&["init", "--name", name])?;
        Ok(device)
    }

    /// A `candor` command for this home.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("candor"));
        command
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env("CANDOR_LOG", "warn");
        command
    }

    /// Runs a command and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .context("running candor")
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        succeeded(args, &self.run(args)?)
    }

    /// Runs a command that must succeed with `input` on its standard input; returns stdout.
    pub fn ok_with_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running candor")?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, input.as_bytes())?;
        }
        succeeded(args, &child.wait_with_output()?)
    }

    /// Runs a command that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if out.status.success() {
            bail!(
                "candor {:?} unexpectedly succeeded: {}",
                args,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `space create` on `relay`; returns the invite (the last stdout line).
    pub fn create_space(&self, relay: &Relay) -> Result<String> {
        let out = self.ok(&[
            "space",
            "create",
            "--relay",
            &relay.addr,
            "--relay-fingerprint",
            &relay.fingerprint,
        ])?;
        out.lines()
            .last()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no invite printed"))
    }

    /// `log list --json`, parsed.
    pub fn entries(&self) -> Result<Vec<serde_json::Value>> {
        let out = self.ok(&["log", "list", "--json"])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).context("log list --json is not JSON")?;
        value
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("log list --json is not an array"))
    }

    /// The texts of `log list --json`, in order.
    pub fn texts(&self) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .iter()
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Starts `sync --watch`.
    pub fn watch(&self) -> Result<Watch> {
        let mut child = self
            .command(&["sync", "--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting candor sync --watch")?;
        let lines = lines_of(&mut child);
        // Its stderr, passed on with the home's name in front so that two watchers can be told
        // apart.
        if let Some(stderr) = child.stderr.take() {
            let name = self
                .home
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{name} watch] {line}");
                }
            });
        }
        Ok(Watch { child, lines })
    }
}

/// A running `candor sync --watch`.
pub struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    /// Waits until the watcher reports having pulled at least one entry.
    pub fn wait_pulled(&self) -> Result<String> {
        wait_line(&self.lines, "`pulled` from sync --watch", |l| {
            l.contains("pulled ") && !l.ends_with("pulled 0")
        })
    }

    /// Waits until the watcher reports having pushed at least one entry.
    pub fn wait_pushed(&self) -> Result<String> {
        wait_line(&self.lines, "`pushed` from sync --watch", |l| {
            l.starts_with("pushed ") && !l.starts_with("pushed 0")
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints on stdout, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Stops it with SIGTERM-like kill and waits.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
