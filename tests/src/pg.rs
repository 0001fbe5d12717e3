//! A throw-away PostgreSQL cluster for tests and the benchmark.
//!
//! [`PgCluster::start`] runs `initdb` in a temp dir and starts `postgres` listening only on a Unix
//! socket inside that dir (no TCP port at all, so nothing can collide and nothing is reachable
//! from outside); dropping it stops the server (`pg_ctl stop -m immediate`) and removes the dir.
//! `initdb` refuses to run as root: as root (CI), the cluster's files belong to the `postgres`
//! user (created by Debian's package) and its commands run through `runuser -u postgres`.
//!
//! The binaries come from `$CANDOR_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's layout), else `PATH`. When there are none, tests that need PostgreSQL **fail**
//! with instructions, unless `CANDOR_SKIP_PG=1` says to skip them (then [`PgCluster::start`]
//! returns `None` and the test prints that it was skipped). `.ci/run` installs the package.

use anyhow::{bail, Context as _, Result};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Set to `1` to skip (not fail) PostgreSQL tests on a machine without PostgreSQL.
pub const SKIP_ENV: &str = "CANDOR_SKIP_PG";
/// Directory holding `initdb`, `pg_ctl`, `createdb` (overrides the search).
pub const BIN_ENV: &str = "CANDOR_PG_BIN";
/// The cluster's superuser (trust authentication over the private socket).
pub const USER: &str = "candor";

/// A running throw-away cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    databases: std::sync::atomic::AtomicU32,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

impl PgCluster {
    /// Starts a cluster, or `None` if PostgreSQL is missing and [`SKIP_ENV`] is `1`.
    ///
    /// # Panics
    /// If PostgreSQL is missing and the skip is not asked for: a test that cannot run must not
    /// pass.
    pub fn start() -> Result<Option<Self>> {
        let Some(bin) = find_bin() else {
            if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
                eprintln!("PostgreSQL not found and {SKIP_ENV}=1: skipping this test");
                return Ok(None);
            }
            panic!(
                "this test needs PostgreSQL's server binaries (initdb, pg_ctl): install them \
                 (Debian: apt-get install postgresql), point {BIN_ENV} at their directory, or set \
                 {SKIP_ENV}=1 to skip PostgreSQL tests"
            );
        };
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dir = tempfile::Builder::new()
            .prefix("candor-pg-")
            .tempdir()
            .context("creating the cluster's temp dir")?;
        std::fs::create_dir(dir.path().join("sock"))?;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let cluster = Self {
            dir,
            bin,
            as_postgres,
            databases: Default::default(),
        };
        let data = cluster.data_dir();
        cluster.run_tool(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        )?;
        let options = format!(
            "-c listen_addresses='' -k {} -c max_connections=200 -c shared_buffers=64MB",
            cluster.socket_dir().display()
        );
        let log = cluster.dir.path().join("postgres.log");
        cluster.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(Some(cluster))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn run_tool(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let path = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(self.dir.path());
        run(&mut command).with_context(|| format!("running {}", path.display()))
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> Result<String> {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("candor_{n}");
        let socket = self.socket_dir();
        self.run_tool(
            "createdb",
            &[
                "-h".as_ref(),
                socket.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                name.as_ref(),
            ],
        )?;
        Ok(self.url(&name))
    }

    /// The URL of database `name` (over the cluster's socket).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}@localhost/{name}?host={}",
            self.socket_dir().display()
        )
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
