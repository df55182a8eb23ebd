//! `stowaway trigger`: the on-demand API of the sidecar in this pod, from any of its
//! containers (docs/sidecar.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_sidecar::client::{Client, ClientError, Endpoint};
use stowaway_sidecar::wire::{BackupInfo, BackupRequest, RestoreRequest};

use super::{Global, output};

/// Exit code of a backup that `--wait` saw fail or be skipped.
const EXIT_BACKUP_FAILED: u8 = 1;
/// Failed polls in a row that `--wait` rides out (the sidecar restarting, say).
const POLL_RETRIES: u32 = 5;

/// Ask the sidecar in this pod for a backup, a backup's status, the snapshots or a restore.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The sidecar's Unix socket.
    #[arg(
        long,
        env = "STOWAWAY_SOCKET",
        default_value = stowaway_sidecar::api::DEFAULT_SOCKET,
        global = true
    )]
    socket: PathBuf,
    /// Talk to the sidecar over TCP instead of the socket: http://127.0.0.1:PORT.
    #[arg(long, env = "STOWAWAY_URL", global = true)]
    url: Option<String>,
    /// File holding the API's bearer token (else the token in $STOWAWAY_TOKEN, if any).
    #[arg(long, env = "STOWAWAY_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an on-demand backup (a BackupSession) of this pod's workload.
    Backup(BackupArgs),
    /// Show a BackupSession of this workload's configuration.
    Status {
        /// The BackupSession's name.
        name: String,
    },
    /// List the workload's snapshots, newest first.
    Snapshots,
    /// Restore a snapshot into the workload (if the sidecar allows restores).
    Restore(RestoreArgs),
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// Session of the BackupConfiguration to run (default: its first).
    #[arg(long)]
    session: Option<String>,
    /// A note recorded on the BackupSession (annotation stowaway.dev/tag).
    #[arg(long)]
    tag: Option<String>,
    /// Back up only this component (repeatable).
    #[arg(long = "component", value_name = "NAME")]
    components: Vec<String>,
    /// Wait until the backup ends; exit non-zero if it fails or is skipped.
    #[arg(long)]
    wait: bool,
    /// How often --wait asks.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Give up waiting after this long (default: never).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The Snapshot object to restore, or `latest`.
    #[arg(long)]
    snapshot: String,
    /// Restore only this component (repeatable).
    #[arg(long = "component", value_name = "NAME")]
    components: Vec<String>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let endpoint = match &args.url {
        Some(url) => Endpoint::from_url(url)?,
        None => Endpoint::Socket(args.socket.clone()),
    };
    let mut client = Client::new(endpoint);
    if let Some(token) = token(&args)? {
        client = client.with_token(&token);
    }
    match args.command {
        Command::Backup(backup) => run_backup(g, &client, backup).await,
        Command::Status { name } => {
            let info = client.backup(&name).await?;
            print_backup(g, &info)?;
            Ok(0)
        }
        Command::Snapshots => {
            let snapshots = client.snapshots().await?;
            if g.json {
                output::json(&snapshots)?;
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = snapshots
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.repository.clone(),
                        s.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                        s.time.map(output::time).unwrap_or_default(),
                        s.size.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["Name", "Repository", "Phase", "Time", "Size"], &rows)?;
            println!("{} snapshots", snapshots.len());
            Ok(0)
        }
        Command::Restore(restore) => {
            let created = client
                .create_restore(&RestoreRequest {
                    snapshot: restore.snapshot,
                    components: restore.components,
                })
                .await?;
            if g.json {
                output::json(&created)?;
            } else {
                println!("RestoreSession {} created", created.name);
            }
            Ok(0)
        }
    }
}

/// The token: from --token-file, else $STOWAWAY_TOKEN.
fn token(args: &Args) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the token file {} is empty",
            path.display()
        );
        return Ok(Some(token.to_owned()));
    }
    Ok(std::env::var("STOWAWAY_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

async fn run_backup(g: &Global, client: &Client, args: BackupArgs) -> anyhow::Result<u8> {
    let created = client
        .create_backup(&BackupRequest {
            session: args.session,
            tag: args.tag,
            components: args.components,
        })
        .await?;
    let name = created.name;
    if !args.wait {
        if g.json {
            output::json(&serde_json::json!({"name": name, "status": created.status}))?;
        } else {
            println!("BackupSession {name} created");
        }
        return Ok(0);
    }
    if !g.quiet && !g.json {
        eprintln!("BackupSession {name} created; waiting for it to end");
    }
    let started = Instant::now();
    let mut last: Option<BackupSessionPhase> = None;
    let mut failures = 0;
    let info = loop {
        tokio::time::sleep(args.interval).await;
        let info = match client.backup(&name).await {
            Ok(info) => info,
            Err(e @ ClientError::Api { .. }) => return Err(e.into()),
            Err(e) if failures < POLL_RETRIES => {
                failures += 1;
                tracing::warn!(error = %e, "asking for the backup's status failed; trying again");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        failures = 0;
        if last != Some(info.phase) && !g.quiet && !g.json {
            eprintln!("{name}: {:?}", info.phase);
        }
        last = Some(info.phase);
        if info.finished() {
            break info;
        }
        if let Some(timeout) = args.timeout
            && started.elapsed() >= timeout
        {
            anyhow::bail!(
                "BackupSession {name} is still {:?} after {}",
                info.phase,
                humantime::format_duration(timeout)
            );
        }
    };
    print_backup(g, &info)?;
    if info.phase == BackupSessionPhase::Succeeded {
        return Ok(0);
    }
    eprintln!(
        "stowaway: backup {name} {}: {}",
        if info.phase == BackupSessionPhase::Skipped {
            "was skipped"
        } else {
            "failed"
        },
        info.error.as_deref().unwrap_or("no reason given")
    );
    Ok(EXIT_BACKUP_FAILED)
}

fn print_backup(g: &Global, info: &BackupInfo) -> anyhow::Result<()> {
    if g.json {
        return output::json(info);
    }
    let mut lines = vec![
        ("Name", info.name.clone()),
        ("Session", info.session.clone()),
        ("Phase", format!("{:?}", info.phase)),
    ];
    let optional = [
        ("Trigger", info.trigger.clone()),
        ("Tag", info.tag.clone()),
        (
            "Components",
            (!info.components.is_empty()).then(|| info.components.join(", ")),
        ),
        ("Created", info.created.map(output::time)),
        ("Duration", info.duration.clone()),
        ("Size", info.size.clone()),
    ];
    lines.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    for s in &info.snapshots {
        let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let repository = s.repository.as_deref().unwrap_or("?");
        lines.push(("Snapshot", format!("{} ({repository}) {phase}", s.name)));
    }
    if let Some(error) = &info.error {
        lines.push(("Error", error.clone()));
    }
    for (k, v) in lines {
        println!("{:<12}{v}", format!("{k}:"));
    }
    Ok(())
}
