//! Reconciling a Snapshot object: the finalizer of WipeOut snapshots, and forgetting the
//! repository snapshot when such an object is deleted.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use stowaway_api::{Repository, Snapshot};

use super::{Context, Error, apply};
use crate::events::Note;
use crate::names::FINALIZER;
use crate::snapshot::{Decision, decide};

/// Reconciles one Snapshot object.
pub async fn reconcile(snapshot: Arc<Snapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = snapshot.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "Snapshot",
        name: snapshot.name_any(),
    })?;
    let api: Api<Snapshot> = Api::namespaced(ctx.client.clone(), &namespace);
    let repositories: Api<Repository> = Api::namespaced(ctx.client.clone(), &namespace);
    let repository = repositories.get_opt(&snapshot.spec.repository).await?;
    let usable = repository
        .as_ref()
        .is_some_and(|r| r.metadata.deletion_timestamp.is_none());
    match decide(&snapshot, usable) {
        Decision::Nothing => {}
        Decision::AddFinalizer => apply::add_finalizer(&api, snapshot.as_ref(), FINALIZER).await?,
        Decision::Release => apply::remove_finalizer(&api, snapshot.as_ref(), FINALIZER).await?,
        Decision::Forget(id) => {
            let Some(repository) = repository else {
                return Ok(Action::await_change());
            };
            let outcome =
                match super::repository::open_existing(&ctx.client, &repository, &namespace).await?
                {
                    Err(e) => Err(e),
                    Ok(opened) => match id.parse::<stowaway_repository::SnapshotId>() {
                        Err(e) => Err(format!("spec.snapshotId {id:?} is not a snapshot id: {e}")),
                        Ok(parsed) => opened
                            .forget(&[parsed])
                            .await
                            .map_err(|e| format!("forgetting snapshot {id}: {e}")),
                    },
                };
            match outcome {
                Ok(()) => {
                    apply::remove_finalizer(&api, snapshot.as_ref(), FINALIZER).await?;
                    tracing::info!(snapshot = %snapshot.name_any(), %id, "forgot the snapshot of a deleted WipeOut Snapshot object");
                }
                Err(message) => {
                    // Keep the finalizer: the data must not outlive its object silently.
                    apply::events(
                        &ctx,
                        snapshot.as_ref(),
                        &[Note::warning("WipeOutFailed", format!("{message}; the object stays until the snapshot can be forgotten (or remove the finalizer {FINALIZER} to keep the data)"))],
                    )
                    .await;
                    return Ok(Action::requeue(std::time::Duration::from_secs(60)));
                }
            }
        }
    }
    Ok(Action::await_change())
}
