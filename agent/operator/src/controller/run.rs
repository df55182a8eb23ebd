//! Running the reconcilers as kube-rs controllers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use stowaway_api::{BackupConfiguration, BackupSession, Snapshot};

use super::{Context, Error, backup_configuration, backup_session};

/// Runs every controller until the process is stopped.
pub async fn run(ctx: Context) {
    let ctx = Arc::new(ctx);
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
    .run(backup_configuration::reconcile, error_policy, ctx.clone())
    .for_each(|result| async move { log("BackupConfiguration", result) });
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
    .run(backup_session::reconcile, error_policy, ctx.clone())
    .for_each(|result| async move { log("BackupSession", result) });
    tokio::join!(configs, sessions);
}

fn error_policy<K>(_object: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
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
