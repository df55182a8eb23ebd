//! Running the reconcilers as kube-rs controllers, behind leader election, with the health
//! and metrics endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use stowaway_api::{
    Addon, BackupBatch, BackupConfiguration, BackupSession, BackupStorage, Repository,
    RestoreSession, Snapshot,
};

use super::{
    Context, Error, addon, backup_blueprint, backup_configuration, backup_session, backup_storage,
    repository, restore_session, snapshot,
};
use crate::health::{self, Health};
use crate::leader::{LeaderElector, LeaderError};

/// Where and how the operator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the leader Lease (the operator's own).
    pub namespace: String,
    /// This replica's name in the Lease (the pod name).
    pub identity: String,
    /// Name of the leader Lease.
    pub lease_name: String,
    /// How long a leader holds the Lease without renewing it.
    pub lease_duration: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub health_address: SocketAddr,
    /// Address and TLS configuration of the admission webhook, when it is served.
    pub webhook: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// How the webhook injects the sidecar into new pods (`/inject`).
    pub sidecar: crate::injection::SidecarSettings,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The health endpoint could not listen.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Leadership was lost; the process must stop so that it never acts beside a new leader.
    #[error("lost the leader Lease {0}; stopping so that only the new leader acts")]
    LostLease(String),
    /// The Lease could not be read or written.
    #[error(transparent)]
    Lease(#[from] LeaderError),
}

/// Waits for the leader Lease, then runs every controller until the process is stopped
/// (`Ok`) or leadership is lost (`Err`).
pub async fn run(ctx: Context, settings: Settings) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(settings.health_address)
        .await
        .map_err(|source| RunError::Listen {
            address: settings.health_address,
            source,
        })?;
    let health = Health {
        metrics: ctx.metrics.clone(),
        ready: Arc::default(),
    };
    tokio::spawn(health::serve(listener, health.clone()));
    // Every replica answers admission reviews, leader or not.
    if let Some((address, tls)) = &settings.webhook {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| RunError::Listen {
                address: *address,
                source,
            })?;
        tokio::spawn(crate::webhook::serve(
            listener,
            tls.clone(),
            ctx.client.clone(),
            ctx.builtin_addons.clone(),
            settings.sidecar.clone(),
        ));
        tracing::info!(%address, "serving the admission webhook");
    }
    // A standby replica is healthy: it is ready to take over.
    health.ready.store(true, Ordering::Relaxed);

    let elector = LeaderElector::new(
        Api::<Lease>::namespaced(ctx.client.clone(), &settings.namespace),
        &settings.lease_name,
        &settings.identity,
        settings.lease_duration,
    );
    let mut logged = false;
    while !elector.try_acquire(ctx.now()).await? {
        if !logged {
            tracing::info!(lease = %settings.lease_name, "another replica leads; standing by");
            logged = true;
        }
        tokio::time::sleep(elector.retry_period()).await;
    }
    tracing::info!(lease = %settings.lease_name, identity = %settings.identity, "leading");

    let ctx = Arc::new(ctx);
    tokio::spawn(install_builtin_addons(ctx.clone()));
    let renew = keep_lease(&elector, &ctx, settings.lease_duration);
    tokio::select! {
        () = controllers(ctx.clone()) => Ok(()),
        lost = renew => Err(lost),
    }
}

/// Installs the built-in addons' Addon and Function objects, retrying until it succeeds.
async fn install_builtin_addons(ctx: Arc<Context>) {
    loop {
        match addon::install_builtins(&ctx).await {
            Ok(written) => {
                tracing::info!(
                    addons = ctx.builtin_addons.len(),
                    written,
                    "built-in addons installed"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the built-in addons; retrying in 30s");
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    }
}

/// Renews the Lease; returns when it cannot be renewed within its duration.
async fn keep_lease(elector: &LeaderElector, ctx: &Context, duration: Duration) -> RunError {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(elector.retry_period()).await;
        match elector.try_acquire(ctx.now()).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => return RunError::LostLease("held by another replica".into()),
            Err(e) => tracing::warn!(error = %e, "cannot renew the leader Lease"),
        }
        // Stop a little before the Lease expires so two leaders never overlap.
        if last_renewal.elapsed() >= duration.mul_f32(0.8) {
            return RunError::LostLease("not renewed in time".into());
        }
    }
}

async fn controllers(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let configs = Controller::new(
        Api::<BackupConfiguration>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<BackupSession>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(
        backup_configuration::reconcile,
        error_policy("BackupConfiguration"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("BackupConfiguration", result) });
    let batches = Controller::new(
        Api::<BackupBatch>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<BackupSession>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(
        backup_configuration::reconcile_batch,
        error_policy("BackupBatch"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("BackupBatch", result) });
    let sessions = Controller::new(
        Api::<BackupSession>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default())
    .watches(
        Api::<Snapshot>::all(client.clone()),
        watcher::Config::default(),
        |snapshot: Snapshot| {
            let namespace = snapshot.metadata.namespace.clone()?;
            let session = snapshot.spec.backup_session.clone()?;
            Some(ObjectRef::<BackupSession>::new(&session).within(&namespace))
        },
    )
    .shutdown_on_signal()
    .run(
        backup_session::reconcile,
        error_policy("BackupSession"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("BackupSession", result) });
    let restores = Controller::new(
        Api::<RestoreSession>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), watcher::Config::default())
    // A batch restore owns its member restores.
    .owns(
        Api::<RestoreSession>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(
        restore_session::reconcile,
        error_policy("RestoreSession"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("RestoreSession", result) });
    let storages = Controller::new(
        Api::<BackupStorage>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Repository>::all(client.clone()),
        watcher::Config::default(),
        |repo: Repository| {
            let namespace = repo
                .spec
                .storage_ref
                .namespace
                .clone()
                .or_else(|| repo.metadata.namespace.clone())?;
            Some(ObjectRef::<BackupStorage>::new(&repo.spec.storage_ref.name).within(&namespace))
        },
    )
    .shutdown_on_signal()
    .run(
        backup_storage::reconcile,
        error_policy("BackupStorage"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("BackupStorage", result) });
    let repositories = Controller::new(
        Api::<Repository>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Snapshot>::all(client.clone()),
        watcher::Config::default(),
        |snapshot: Snapshot| {
            let namespace = snapshot.metadata.namespace.clone()?;
            Some(ObjectRef::<Repository>::new(&snapshot.spec.repository).within(&namespace))
        },
    )
    .shutdown_on_signal()
    .run(
        repository::reconcile,
        error_policy("Repository"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("Repository", result) });
    let snapshots = Controller::new(
        Api::<Snapshot>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(snapshot::reconcile, error_policy("Snapshot"), ctx.clone())
    .for_each(|result| async move { log("Snapshot", result) });
    let addons = Controller::new(
        Api::<Addon>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(addon::reconcile, error_policy("Addon"), ctx.clone())
    .for_each(|result| async move { log("Addon", result) });
    tokio::join!(
        addons,
        snapshots,
        storages,
        repositories,
        configs,
        batches,
        sessions,
        restores,
        auto_backup::<Deployment>(ctx.clone()),
        auto_backup::<StatefulSet>(ctx.clone()),
        auto_backup::<DaemonSet>(ctx.clone()),
        auto_backup::<PersistentVolumeClaim>(ctx.clone()),
    );
}

/// The auto-backup controller of one kind of target (BackupBlueprint annotations).
async fn auto_backup<K>(ctx: Arc<Context>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    Controller::new(
        Api::<K>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(
        backup_blueprint::reconcile::<K>,
        error_policy("BackupBlueprint"),
        ctx.clone(),
    )
    .for_each(|result| async move { log("BackupBlueprint", result) })
    .await;
}

/// Logs and counts a failed reconcile, and tries again in 15 seconds.
fn error_policy<K>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_object, error, ctx| {
        tracing::warn!(kind, %error, "reconcile failed; retrying in 15s");
        ctx.metrics.failure(kind, "ReconcileError");
        Action::requeue(Duration::from_secs(15))
    }
}

fn log<K, E: std::fmt::Display, Q: std::fmt::Display>(
    kind: &str,
    result: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, Q>>,
) where
    K: kube::Resource,
{
    match result {
        Ok((object, _)) => tracing::debug!(kind, object = %object.name, "reconciled"),
        Err(e) => tracing::warn!(kind, error = %e, "reconcile error"),
    }
}
