//! The injected sidecar in a cluster: the work loop ([`crate::agent`]) and the on-demand API
//! ([`crate::api`] over a [`TargetStore`]) side by side until the pod stops.

use std::future::Future;
use std::sync::Arc;

use stowaway_executor::Settings;

use crate::agent::Agent;
use crate::api::{ApiConfig, BindError, Server};
use crate::identity::Identity;
use crate::store::TargetStore;

/// Why the sidecar could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The on-demand API's listeners could not be bound.
    #[error("on-demand API: {0}")]
    Bind(#[from] BindError),
}

/// How the injected sidecar runs.
pub struct ClusterOptions {
    /// Who the sidecar is.
    pub identity: Identity,
    /// The on-demand API's listeners, token and restore policy.
    pub api: ApiConfig,
    /// How sessions are executed (runtime, built-in addons, where the volumes are).
    pub settings: Settings,
    /// The BackupConfiguration the on-demand API serves, when several target the workload.
    pub configuration: Option<String>,
}

/// Runs the sidecar until `shutdown` resolves: claims and runs its target's sessions and
/// serves the on-demand API. At shutdown the work still running is stopped and marked Failed,
/// and the socket is removed.
pub async fn run(
    client: kube::Client,
    options: ClusterOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError> {
    let identity = options.identity;
    let store = TargetStore::new(
        client.clone(),
        &identity.namespace,
        identity.target.clone(),
        options.configuration,
    );
    let server = Server::bind(options.api, Arc::new(store)).await?;
    tracing::info!(
        target = %identity.target_label(),
        pod = %identity.pod,
        tcp = ?server.tcp_addr(),
        socket = ?server.socket_path(),
        "sidecar running"
    );
    let agent = Arc::new(Agent::new(client, identity, options.settings));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.serve_until(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    agent.run(shutdown).await;
    let _ = stop_tx.send(true);
    if let Err(e) = serving.await {
        tracing::warn!(error = %e, "the on-demand API ended abnormally");
    }
    tracing::info!("sidecar stopped");
    Ok(())
}
