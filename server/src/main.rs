//! The `candor-relay` command: run a Candor relay, or print its certificate fingerprint.

use anyhow::Context as _;
use candor_relay::backend::RelayDb;
use candor_relay::config::{self, Config, LogFormat, EXAMPLE};
use candor_relay::data::DataDir;
use candor_relay::metrics::{self, Metrics, StoreGauges};
use candor_relay::postgres::PgStore;
use candor_relay::{service, tls};
use clap::{Args, Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const LONG_ABOUT: &str = "\
Candor's self-hosted relay. Two partners' devices exchange their end-to-end encrypted, signed, \
hash-chained logs through it over QUIC. The relay stores only ciphertext: it can check that \
entries are signed and chained correctly, but it cannot read them or forge them.

Devices trust the relay by its certificate fingerprint, not by a certificate authority. On first \
start the relay creates a self-signed certificate in its data directory; `candor-relay \
fingerprint` prints the SHA-256 fingerprint that goes into every invite. Keep the data directory \
(and back it up): a new certificate means a new fingerprint, and every device would have to be \
told about it.

The relay listens on UDP (QUIC). Open that UDP port in your firewall.";

const AFTER_HELP: &str = "\
Examples:
  Run a relay on the default port (UDP 4433), data in the platform data directory:
    candor-relay serve

  Run on another port with an explicit data directory:
    candor-relay serve --listen 0.0.0.0:7000 --data /var/lib/candor-relay

  Print the fingerprint to give to devices (creates the certificate if needed):
    candor-relay fingerprint --data /var/lib/candor-relay

  Run with a configuration file (limits, metrics, log format); print a commented sample:
    candor-relay config example > relay.toml
    candor-relay serve --config relay.toml

Logging goes to stderr; set CANDOR_LOG (e.g. CANDOR_LOG=debug) to change the level.";

const SERVE_AFTER_HELP: &str = "\
On start the relay prints two lines to stdout:
  candor-relay listening on <ADDRESS:PORT>
  fingerprint sha256:<64 hex digits>

It stops gracefully on Ctrl-C or SIGTERM: it closes connections, flushes the database and exits \
with status 0.

Settings come from, in order of precedence: flags, environment variables, the --config file, \
defaults (see `candor-relay config example`).

Examples:
  candor-relay serve
  candor-relay serve --listen [::]:4433 --data /var/lib/candor-relay
  candor-relay serve --config /etc/candor-relay/relay.toml --log-format json
  PGPASSWORD=… candor-relay serve --store postgres://candor@db.internal/candor
  candor-relay serve --store 'postgres://candor@localhost/candor?host=/run/postgresql'
  CANDOR_RELAY_LISTEN=127.0.0.1:0 candor-relay serve   # any free port, printed on start";

/// Candor's self-hosted QUIC relay: stores only ciphertext and forwards it between partners.
#[derive(Debug, Parser)]
#[command(
    name = "candor-relay",
    version,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay until Ctrl-C or SIGTERM.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Print the relay's certificate fingerprint (sha256:…), creating the certificate if needed.
    #[command(
        long_about = "Print the SHA-256 fingerprint of the relay's TLS certificate as \
                      `sha256:<64 hex digits>` on a line of its own, and nothing else on stdout. \
                      Devices pin this fingerprint; it is also printed by `serve` on start. \
                      If the data directory has no certificate yet, one is created (exactly as \
                      `serve` would), so you can hand out the fingerprint before the first start."
    )]
    Fingerprint(DataArgs),
    /// Configuration file helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented configuration file with every setting at its default.
    Example,
    /// Check a configuration file and print the settings it results in.
    Check {
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// UDP address to listen on (default 0.0.0.0:4433). Use port 0 for any free port (the real
    /// one is printed).
    #[arg(long, value_name = "ADDR", env = "CANDOR_RELAY_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data: DataArgs,
    /// Configuration file (TOML; see `candor-relay config example`). Flags override it.
    #[arg(long, value_name = "FILE", env = "CANDOR_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr: text (default) or json (one object per line).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Serve Prometheus metrics on this TCP address (e.g. 127.0.0.1:9464). Off by default.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Where entries are stored: `sled` (the default: the data directory's own database) or a
    /// PostgreSQL URL (postgres://USER@HOST[:PORT]/DB, or ?host=/socket/dir) that several relay
    /// processes may share. Never put the password here (argv is visible to every user): use
    /// PGPASSWORD, --store-password-file, or the URL in CANDOR_RELAY_STORE or the config file.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// File whose first line is the PostgreSQL password.
    #[arg(long, value_name = "FILE")]
    store_password_file: Option<PathBuf>,
}

/// Environment variable that may name the store (unlike --store, it may carry a password).
const STORE_ENV: &str = "CANDOR_RELAY_STORE";

/// Listen address when neither a flag, the environment nor the file sets one.
const DEFAULT_LISTEN: &str = "0.0.0.0:4433";

#[derive(Debug, Args)]
struct DataArgs {
    /// Data directory: database, certificate and key (created with mode 0700 if missing).
    /// Default: the platform data directory for candor-relay
    /// (e.g. ~/.local/share/candor-relay on Linux).
    #[arg(long, value_name = "DIR", env = "CANDOR_RELAY_DATA")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn open(&self) -> anyhow::Result<DataDir> {
        self.open_or(None)
    }

    fn open_or(&self, configured: Option<&PathBuf>) -> anyhow::Result<DataDir> {
        let path = match self.data.as_ref().or(configured) {
            Some(path) => path.clone(),
            None => directories::ProjectDirs::from("", "", "candor-relay")
                .map(|dirs| dirs.data_dir().to_path_buf())
                .context(
                    "could not determine a data directory for this user; pass --data DIR \
                     (or set CANDOR_RELAY_DATA)",
                )?,
        };
        DataDir::create(&path)
            .with_context(|| format!("could not create the data directory {}", path.display()))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Fingerprint(args) => {
            init_logging(LogFormat::Text);
            fingerprint(args)
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{EXAMPLE}");
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("candor-relay: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANDOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{} is valid; effective settings:", file.display())?;
    writeln!(
        stdout,
        "{}",
        toml::to_string_pretty(&config).context("could not print the configuration")?
    )?;
    Ok(())
}

fn fingerprint(args: DataArgs) -> anyhow::Result<()> {
    let data = args.open()?;
    let identity = tls::load_or_create(&data)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", identity.fingerprint())?;
    stdout.flush()?;
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    init_logging(args.log_format.or(config.log_format).unwrap_or_default());
    let listen = match args.listen.or(config.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .context("the default listen address")?,
    };
    let metrics_listen = args.metrics_listen.or(config.metrics.listen);
    let limits = config.limits.service();
    let relay_limits = config.limits.relay();
    let data = args.data.open_or(config.data.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let bound = match open_postgres(&args, &config).await? {
            Some(store) => service::bind_store(listen, &data, &limits, relay_limits, store.into())?,
            None => service::bind_with(listen, &data, &limits, relay_limits)?,
        };
        let metrics = Arc::new(Metrics::default());
        let mut metrics_line = None;
        if let Some(addr) = metrics_listen {
            let gauges = store_gauges(bound.relay.store());
            let bound_addr = metrics::serve(addr, Arc::clone(&metrics), gauges)
                .await
                .with_context(|| format!("could not serve metrics on {addr}"))?;
            metrics_line = Some(format!("metrics on http://{bound_addr}/metrics"));
        }
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "candor-relay listening on {}", bound.local_addr)?;
            writeln!(stdout, "fingerprint {}", bound.fingerprint)?;
            if let Some(line) = metrics_line {
                writeln!(stdout, "{line}")?;
            }
            stdout.flush()?;
        }
        tracing::info!(
            addr = %bound.local_addr,
            data = %data.root().display(),
            "relay started"
        );
        tracing::info!(?limits, ?relay_limits, "limits");
        service::run_with(bound.endpoint, bound.relay, limits, metrics, shutdown).await
    })
}

/// The PostgreSQL store the flags, environment or file name, connected and migrated; `None` for
/// the data directory's sled database.
async fn open_postgres(args: &ServeArgs, config: &Config) -> anyhow::Result<Option<PgStore>> {
    let from_env = std::env::var(STORE_ENV).ok().filter(|v| !v.is_empty());
    let url = match (&args.store, from_env, config.store.clone()) {
        (Some(url), _, _) => {
            let parsed: tokio_postgres::Config = match url.as_str() {
                "sled" => return Ok(None),
                url => url.parse().context("--store is not a PostgreSQL URL")?,
            };
            anyhow::ensure!(
                parsed.get_password().is_none(),
                "--store must not carry a password (other users can read a command line): use \
                 PGPASSWORD, --store-password-file, or {STORE_ENV}"
            );
            url.clone()
        }
        (None, Some(url), _) | (None, None, Some(url)) => url,
        (None, None, None) => return Ok(None),
    };
    if url == "sled" {
        return Ok(None);
    }
    anyhow::ensure!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "the store must be \"sled\" or a postgres:// URL, not {}",
        config::mask_password(&url)
    );
    let mut pg: tokio_postgres::Config = url
        .parse()
        .with_context(|| format!("{} is not a PostgreSQL URL", config::mask_password(&url)))?;
    if pg.get_password().is_none() {
        let file = args
            .store_password_file
            .as_ref()
            .or(config.store_password_file.as_ref());
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read the password file {}", file.display()))?;
            pg.password(text.lines().next().unwrap_or_default());
        } else if let Ok(password) = std::env::var("PGPASSWORD") {
            pg.password(password);
        }
    }
    let store = PgStore::connect(pg, tokio::runtime::Handle::current())
        .await
        .with_context(|| format!("could not open the store {}", config::mask_password(&url)))?;
    Ok(Some(store))
}

/// The store's gauges for the metrics endpoint. PostgreSQL's are queried in the background
/// (every few seconds) so that a scrape never waits on the database.
fn store_gauges(store: &RelayDb) -> Arc<dyn Fn() -> StoreGauges + Send + Sync> {
    match store {
        RelayDb::Sled(store) => {
            let store = store.clone();
            Arc::new(move || StoreGauges {
                spaces: store.space_count(),
                flushes: store.flush_count(),
                disk_bytes: store.disk_bytes(),
            })
        }
        RelayDb::Postgres(store) => {
            let latest = Arc::new(std::sync::Mutex::new(StoreGauges::default()));
            let (store, writer) = (store.clone(), Arc::clone(&latest));
            tokio::spawn(async move {
                loop {
                    if let (Ok(spaces), Ok(disk_bytes)) =
                        (store.space_count().await, store.disk_bytes().await)
                    {
                        let mut gauges = writer.lock().unwrap_or_else(|p| p.into_inner());
                        gauges.spaces = spaces;
                        gauges.disk_bytes = disk_bytes;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            });
            Arc::new(move || *latest.lock().unwrap_or_else(|p| p.into_inner()))
        }
    }
}

/// Installs the Ctrl-C and (on Unix) SIGTERM handlers now, and returns a future that completes
/// when either signal arrives. Installing them before the start-up lines are printed means a
/// signal sent right after reading them is handled gracefully, never fatal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C (SIGINT)")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("received Ctrl-C"),
                _ = terminate.recv() => tracing::info!("received SIGTERM"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
