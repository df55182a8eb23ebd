//! Reconciling a BackupStorage: read its Secret, initialise its backend, list the Repositories
//! stored there; decide; apply (finalizer, data wipe-out, status, events).

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use stowaway_api::common::FromNamespaces;
use stowaway_api::{BackupStorage, Repository};

use super::{Context, Error, apply};
use crate::backup_storage::{
    BackendState, Finalize, NamespaceLabels, Observed, SecretState, decide, is_deleting,
    uses_storage, wipe_out_failed,
};
use crate::names;
use crate::repository_access;
use crate::storage_access::{
    self, AccessError, StorageAccess, backend_secret_name, storage_access,
};

/// Reconciles one BackupStorage.
pub async fn reconcile(storage: Arc<BackupStorage>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = storage.name_any();
    let namespace = storage.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "BackupStorage",
        name: name.clone(),
    })?;
    let client = &ctx.client;
    let api: Api<BackupStorage> = Api::namespaced(client.clone(), &namespace);

    let secret_name = backend_secret_name(&storage.spec);
    let secret = match secret_name {
        Some(secret) => repository_access::secret_data(client, &namespace, secret).await?,
        None => None,
    };
    let access = storage_access(&storage.spec, &namespace, secret.as_ref());
    let secret_state = SecretState::of(
        secret_name,
        &namespace,
        secret.is_some(),
        access.as_ref().map(|_| ()),
    );
    let backend = if is_deleting(&storage) {
        BackendState::NotChecked
    } else {
        match &access {
            Err(e) if e.is_secret_problem() => BackendState::NotChecked,
            Err(e) => BackendState::Failed(e.to_string()),
            Ok(access) => match initialize(access, &storage, &namespace, &name).await {
                Ok(()) => BackendState::Initialized,
                Err(message) => BackendState::Failed(message),
            },
        }
    };
    let repositories = Api::<Repository>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let namespace_labels = namespace_labels(client, &storage, &repositories).await?;

    let plan = decide(&Observed {
        storage: &storage,
        secret: secret_state,
        backend,
        repositories: &repositories,
        namespace_labels: &namespace_labels,
        now: ctx.now(),
    });

    if plan.add_finalizer {
        apply::add_finalizer(&api, storage.as_ref(), names::FINALIZER).await?;
    }
    match apply::status(&api, &name, storage.status.as_ref(), &plan.status).await {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => return Ok(Action::await_change()),
        other => other?,
    }
    let mut events = plan.events.clone();
    let mut requeue = plan.requeue_after;
    let mut remove_finalizer = false;
    match plan.finalize {
        None => {}
        Some(Finalize::KeepData) => remove_finalizer = true,
        Some(Finalize::WipeOut) => match wipe_out(&access).await {
            Ok(count) => {
                tracing::info!(storage = %name, %namespace, objects = count, "wiped out the storage");
                remove_finalizer = true;
            }
            Err(message) => {
                events.push(wipe_out_failed(&storage, &message));
                requeue = Some(crate::backup_storage::RETRY);
            }
        },
    }
    apply::events(&ctx, storage.as_ref(), &events).await;
    if remove_finalizer {
        apply::remove_finalizer(&api, storage.as_ref(), names::FINALIZER).await?;
        tracing::info!(storage = %name, %namespace, policy = ?storage.spec.deletion_policy, "finalized BackupStorage");
        return Ok(Action::await_change());
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Writes (unless present) and reads back the marker at the storage's root; the error is a
/// message for the condition.
async fn initialize(
    access: &StorageAccess,
    storage: &BackupStorage,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    let opened = access.open().map_err(|e| e.to_string())?;
    let marker = storage_access::marker_content(namespace, name, &storage.spec);
    storage_access::ensure_marker(&opened, marker)
        .await
        .map_err(|e| format!("cannot initialize {}: {e}", opened.describe()))
}

async fn wipe_out(access: &Result<StorageAccess, AccessError>) -> Result<usize, String> {
    let access = access.as_ref().map_err(|e| e.to_string())?;
    let storage = access.open().map_err(|e| e.to_string())?;
    storage_access::wipe(&storage)
        .await
        .map_err(|e| format!("{}: {e}", storage.describe()))
}

/// Labels of the namespaces of other-namespace Repositories referring to the storage, when its
/// usage policy selects namespaces by label (else nothing is looked up).
async fn namespace_labels(
    client: &kube::Client,
    storage: &BackupStorage,
    repositories: &[Repository],
) -> Result<NamespaceLabels, Error> {
    let selector = storage
        .spec
        .usage_policy
        .as_ref()
        .is_some_and(|p| p.allowed_namespaces.from == FromNamespaces::Selector);
    let namespace = storage.namespace().unwrap_or_default();
    let name = storage.name_any();
    let mut wanted: Vec<String> = repositories
        .iter()
        .filter(|r| selector && uses_storage(r, &namespace, &name))
        .filter_map(|r| r.namespace())
        .collect();
    wanted.sort();
    wanted.dedup();
    Ok(repository_access::namespace_labels(client, &wanted).await?)
}
