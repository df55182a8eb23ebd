//! `stowaway sidecar`: the sidecar agent. With `--config FILE` it is the standalone sidecar
//! (no Kubernetes): the schedule, the on-demand API and the runs of one YAML file
//! (docs/sidecar.md, "Standalone sidecar"). SIGTERM or SIGINT stop it: the running run is
//! cancelled (nothing of it is committed), the socket removed, and it exits 0.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use stowaway_executor::Settings;
use stowaway_sidecar::standalone::Standalone;
use stowaway_sidecar::standalone::clock::SystemClock;
use stowaway_sidecar::standalone::config::Config;

use super::Global;

/// Run the sidecar agent.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run standalone, without Kubernetes, from this configuration file (YAML).
    #[arg(long, env = "STOWAWAY_SIDECAR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let Some(path) = args.config else {
        bail!(
            "the in-cluster sidecar is not available yet: give --config FILE to run the \
             standalone sidecar (docs/sidecar.md)"
        );
    };
    let config = Config::load(&path)?;
    let runtime = crate::addons::runtime(g)?;
    let settings = Settings::new(runtime, stowaway_addons::builtin, || {
        stowaway_addons::builtin_names().collect()
    });
    let sidecar = Standalone::start(config, &settings, Arc::new(SystemClock))
        .await
        .with_context(|| format!("starting the standalone sidecar of {}", path.display()))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    sidecar
        .run_until(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        })
        .await;
    Ok(0)
}
