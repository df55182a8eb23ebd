//! `stowaway sidecar`: the sidecar agent. Without `--config` it is the sidecar the injector
//! puts in a workload's pod: its identity and settings come from the environment the injector
//! sets (docs/sidecar.md, "The sidecar in a cluster"). With `--config FILE` it is the
//! standalone sidecar (no Kubernetes): the schedule, the on-demand API and the runs of one YAML
//! file ("Standalone sidecar"). SIGTERM or SIGINT stop either: the running work is cancelled
//! (nothing of it is committed), the socket removed, and it exits 0.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use stowaway_executor::Settings;
use stowaway_runtime::{Runtime, RuntimeOptions};
use stowaway_sidecar::api::{ApiConfig, LoopbackAddr};
use stowaway_sidecar::cluster::ClusterOptions;
use stowaway_sidecar::identity::Identity;
use stowaway_sidecar::standalone::Standalone;
use stowaway_sidecar::standalone::clock::SystemClock;
use stowaway_sidecar::standalone::config::Config;
use stowaway_sidecar::token::Token;

use super::Global;

/// Run the sidecar agent.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run standalone, without Kubernetes, from this configuration file (YAML).
    #[arg(long, env = "STOWAWAY_SIDECAR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// In a cluster: where the pod's data volumes are mounted.
    #[arg(long, env = "STOWAWAY_VOLUMES_DIR", default_value = stowaway_operator::injection::VOLUMES_DIR)]
    volumes_dir: PathBuf,
    /// In a cluster: the on-demand API's Unix socket.
    #[arg(long, env = "STOWAWAY_SOCKET", default_value = stowaway_sidecar::api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// In a cluster: the on-demand API's port on 127.0.0.1 (0: no TCP listener).
    #[arg(long, env = "STOWAWAY_API_PORT", default_value_t = stowaway_sidecar::api::DEFAULT_PORT)]
    api_port: u16,
    /// In a cluster: let `POST /v1/restores` create RestoreSessions.
    #[arg(long, env = "STOWAWAY_ALLOW_RESTORE")]
    allow_restore: bool,
    /// In a cluster: file holding the on-demand API's bearer token (a mounted Secret).
    #[arg(long, env = "STOWAWAY_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// In a cluster: the BackupConfiguration the on-demand API serves when several target
    /// the workload.
    #[arg(long, env = stowaway_sidecar::store::CONFIGURATION_ENV)]
    configuration: Option<String>,
    /// Memory limit of an addon in MiB.
    #[arg(long, default_value_t = 256)]
    memory_limit_mib: u64,
}

/// SIGTERM or SIGINT.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    })
}

/// The sidecar in a workload's pod.
async fn in_cluster(g: &Global, args: Args) -> anyhow::Result<u8> {
    let identity = Identity::from_env(|name| std::env::var(name).ok())?;
    // The root file system is read-only in the pod: compiled addons go to /tmp (an emptyDir).
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(
            g.cache_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("stowaway"))
                .join("addons"),
        ),
        no_cache: false,
    })?;
    let settings = Settings::new(runtime, stowaway_addons::builtin, || {
        stowaway_addons::builtin_names().collect()
    });
    let token = match &args.token_file {
        Some(path) => Some(
            Token::from_file(path)
                .with_context(|| format!("reading the API token from {}", path.display()))?,
        ),
        None => None,
    };
    let api = ApiConfig {
        tcp: (args.api_port != 0).then(|| LoopbackAddr::port(args.api_port)),
        socket: Some(args.socket),
        token,
        allow_restore: args.allow_restore,
        ..ApiConfig::default()
    };
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API to talk to: the sidecar runs in a pod with a service account \
         (or give --config FILE for the standalone sidecar)",
    )?;
    let options = ClusterOptions {
        identity,
        api,
        settings: Settings {
            volumes_dir: args.volumes_dir,
            memory_bytes: args.memory_limit_mib.saturating_mul(1024 * 1024),
            ..settings
        },
        configuration: args.configuration,
    };
    stowaway_sidecar::cluster::run(client, options, stop_signal()?).await?;
    Ok(0)
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let Some(path) = args.config.clone() else {
        return in_cluster(g, args).await;
    };
    let config = Config::load(&path)?;
    let runtime = crate::addons::runtime(g)?;
    let settings = Settings::new(runtime, stowaway_addons::builtin, || {
        stowaway_addons::builtin_names().collect()
    });
    let sidecar = Standalone::start(config, &settings, Arc::new(SystemClock))
        .await
        .with_context(|| format!("starting the standalone sidecar of {}", path.display()))?;
    sidecar.run_until(stop_signal()?).await;
    Ok(0)
}
