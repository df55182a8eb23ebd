//! The command line: global options, dispatch, and turning errors into one line and an exit
//! code (never a panic or a backtrace).

mod addon;
mod backup;
mod check;
mod copy;
mod crds;
mod dump;
mod execute;
mod forget;
mod grants;
mod init;
mod inject;
mod key;
mod ls;
mod operator;
mod output;
mod progress;
mod prune;
mod repo;
mod restore;
mod sidecar;
mod snapshots;
mod stats;
mod trigger;
mod unlock;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a failed command.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a backup that completed but skipped unreadable entries.
pub(crate) const EXIT_WARNINGS: u8 = 3;
/// Exit code after Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;

/// Stowaway: deduplicated, compressed, encrypted backups whose backup logic runs as
/// sandboxed WebAssembly addons.
#[derive(Debug, Parser)]
#[command(name = "stowaway", version, about, long_about = None, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct Global {
    /// Repository location: a path or file:///path, s3://bucket/prefix, gs://bucket/prefix,
    /// azblob://container/prefix or memory://. S3 options go in the query, such as
    /// ?endpoint=http://127.0.0.1:9000&region=us-east-1&path-style=true (docs/storage.md).
    #[arg(short = 'r', long = "repo", env = "STOWAWAY_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Storage credentials: a mounted Kubernetes Secret (one file per key, such as
    /// AWS_ACCESS_KEY_ID) or a file of KEY=value lines; else from the environment.
    #[arg(long, env = "STOWAWAY_STORAGE_CREDENTIALS", global = true)]
    pub storage_credentials: Option<std::path::PathBuf>,
    /// Never delete or overwrite repository files (locks excepted).
    #[arg(long, env = "STOWAWAY_APPEND_ONLY", global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub append_only: bool,
    /// Limit uploads to this many KiB/s.
    #[arg(long, value_name = "KiB/s", global = true)]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s.
    #[arg(long, value_name = "KiB/s", global = true)]
    pub limit_download: Option<u64>,
    /// Read the repository password from this file (else $STOWAWAY_PASSWORD).
    #[arg(long, env = "STOWAWAY_PASSWORD_FILE", global = true)]
    pub password_file: Option<std::path::PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print no progress and only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Directory for compiled addons (default ~/.cache/stowaway).
    #[arg(long, env = "STOWAWAY_CACHE_DIR", global = true)]
    pub cache_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    Init(init::Args),
    /// Back up paths (volume addon) or another target through an addon.
    Backup(backup::Args),
    /// Restore a snapshot through the addon that made it.
    Restore(restore::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the entries of a snapshot's tree components.
    Ls(ls::Args),
    /// Write one component to stdout (a tree as a tar archive).
    Dump(dump::Args),
    /// Verify the repository's structure and, with --read-data, all data.
    Check(check::Args),
    /// Remove snapshots by id or by a retention policy (--keep-*).
    Forget(forget::Args),
    /// Show repository statistics.
    Stats(stats::Args),
    /// Remove data no snapshot references (mark now, delete in a later prune).
    Prune(prune::Args),
    /// Remove stale locks.
    Unlock(unlock::Args),
    /// Manage the keys (passwords) of the repository.
    #[command(subcommand)]
    Key(key::Command),
    /// Copy snapshots to another repository.
    Copy(copy::Args),
    /// Inspect addons.
    #[command(subcommand)]
    Addon(addon::Command),
    /// Print the Kubernetes CustomResourceDefinitions as YAML.
    Crds(crds::Args),
    /// Run the Kubernetes operator.
    Operator(operator::Args),
    /// Do the work of a BackupSession or RestoreSession (the operator's executor Jobs).
    #[command(subcommand)]
    Execute(execute::Command),
    /// Ask the sidecar in this pod for a backup, its status, the snapshots or a restore.
    Trigger(trigger::Args),
    /// Give a running workload the Stowaway sidecar (or take it away) by rolling its pods.
    Inject(inject::Args),
    /// Run the sidecar agent (--config FILE: standalone, without Kubernetes).
    Sidecar(sidecar::Args),
}

/// Runs the command line and maps the outcome to an exit code.
pub(crate) fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    // An executor Job's and a sidecar's log is their progress: info by default.
    init_logging(
        &cli.global,
        matches!(cli.command, Command::Execute(_) | Command::Sidecar(_)),
    );
    // Few blocking threads: file I/O and blob decoding need no more than a handful, and each
    // extra thread that allocates costs resident memory (a malloc arena of its own).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stowaway-io")
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("stowaway: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    stowaway_operator::install_crypto_provider();
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            if err.downcast_ref::<progress::Interrupted>().is_some() {
                eprintln!("stowaway: interrupted");
                return ExitCode::from(EXIT_INTERRUPTED);
            }
            eprintln!("stowaway: {}", one_line(&err));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Init(args) => init::run(g, args).await,
        Command::Backup(args) => backup::run(g, args).await,
        Command::Restore(args) => restore::run(g, args).await,
        Command::Snapshots(args) => snapshots::run(g, args).await,
        Command::Ls(args) => ls::run(g, args).await,
        Command::Dump(args) => dump::run(g, args).await,
        Command::Check(args) => check::run(g, args).await,
        Command::Forget(args) => forget::run(g, args).await,
        Command::Stats(args) => stats::run(g, args).await,
        Command::Prune(args) => prune::run(g, args).await,
        Command::Unlock(args) => unlock::run(g, args).await,
        Command::Key(cmd) => key::run(g, cmd).await,
        Command::Copy(args) => copy::run(g, args).await,
        Command::Addon(cmd) => addon::run(g, cmd).await,
        Command::Crds(args) => crds::run(args).await,
        Command::Operator(args) => operator::run(g, args).await,
        Command::Execute(cmd) => execute::run(g, cmd).await,
        Command::Trigger(args) => trigger::run(g, args).await,
        Command::Inject(args) => inject::run(g, args).await,
        Command::Sidecar(args) => sidecar::run(g, args).await,
    }
}

/// Options of a command that runs an addon.
#[derive(Debug, clap::Args)]
pub(crate) struct JobArgs {
    /// Addon parameter NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
    /// Stop the addon after this long (e.g. 30m, 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Memory limit of the addon in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_limit_mib: u64,
    #[command(flatten)]
    pub grants: grants::GrantArgs,
}

impl JobArgs {
    /// A job for `addon` with the parameters, limits and grants of the command line.
    pub fn spec(
        &self,
        addon: &stowaway_runtime::Addon,
        id: String,
        params: Vec<(String, String)>,
    ) -> anyhow::Result<stowaway_runtime::JobSpec> {
        let builtin = stowaway_addons::builtin(addon.origin()).is_some();
        let grants = self.grants.grants(addon.info(), builtin, &params)?;
        Ok(stowaway_runtime::JobSpec {
            parameters: params,
            limits: self.limits(),
            secrets: grants.secrets,
            exec: grants.exec,
            connect: grants.connect,
            ..stowaway_runtime::JobSpec::new(id)
        })
    }

    /// The job's limits.
    pub fn limits(&self) -> stowaway_runtime::JobLimits {
        stowaway_runtime::JobLimits {
            memory_bytes: self.memory_limit_mib.saturating_mul(1024 * 1024),
            deadline: self.timeout,
            ..stowaway_runtime::JobLimits::default()
        }
    }
}

/// Parses `NAME=VALUE` (addon parameters).
fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// The component `name` of `snapshot`, or an error listing the components it has.
pub(crate) fn component<'a>(
    snapshot: &'a stowaway_repository::Snapshot,
    name: &str,
) -> anyhow::Result<&'a stowaway_repository::ComponentRecord> {
    snapshot.component(name).ok_or_else(|| {
        let names: Vec<&str> = snapshot
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        anyhow::anyhow!(
            "snapshot {} has no component {name:?} (it has: {})",
            snapshot.id.short(),
            names.join(", ")
        )
    })
}

/// The error and its causes on one line, without repeating a cause the message already holds.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A bug must still end in one line, not a backtrace (set STOWAWAY_BACKTRACE=1 to get one).
fn install_panic_hook() {
    if std::env::var_os("STOWAWAY_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!(
            "stowaway: internal error{location}: {message} (this is a bug; \
             STOWAWAY_BACKTRACE=1 shows a backtrace)"
        );
    }));
}

fn init_logging(g: &Global, info: bool) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) if info => "info",
        (false, 0) => "warn",
        (false, 1) => "info,stowaway=debug",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOWAWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .try_init();
}
