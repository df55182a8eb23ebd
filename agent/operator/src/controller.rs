//! The thin kube-rs layer: gathers what a reconciler's decision function needs, calls it, and
//! carries out the plan (create, delete, status patch, events).
//!
//! Every write is idempotent: objects have deterministic names and an object that already
//! exists counts as created, so a reconcile interrupted half-way is finished by the next one.

pub mod addon;
mod apply;
pub mod backup_blueprint;
pub mod backup_configuration;
pub mod backup_session;
pub mod backup_storage;
mod context;
mod hooks;
pub mod repository;
pub mod restore_session;
mod run;
mod sidecar_rbac;
pub mod snapshot;

pub use context::{Clock, Context};
pub use run::{RunError, Settings, run};

/// Errors of a reconcile; the controller logs them and tries again with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object has no namespace (a namespaced kind always has one).
    #[error("{kind} {name} has no namespace")]
    NoNamespace {
        /// Kind of the object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A status could not be serialized.
    #[error("serializing the status of {name}: {source}")]
    Serialize {
        /// The object.
        name: String,
        /// The error.
        source: serde_json::Error,
    },
}

/// Whether the target object exists; `None` when its kind is one the operator does not look up.
pub(crate) async fn target_exists(
    client: &kube::Client,
    target: &stowaway_api::common::TypedObjectReference,
    namespace: &str,
) -> Option<bool> {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
    let (group, version, plural) = match (
        target.api_group.as_deref().unwrap_or(""),
        target.kind.as_str(),
    ) {
        ("apps", "Deployment") => ("apps", "v1", "deployments"),
        ("apps", "StatefulSet") => ("apps", "v1", "statefulsets"),
        ("apps", "DaemonSet") => ("apps", "v1", "daemonsets"),
        ("", "PersistentVolumeClaim") => ("", "v1", "persistentvolumeclaims"),
        _ => return None,
    };
    let gvk = GroupVersionKind::gvk(group, version, &target.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let ns = target.namespace.as_deref().unwrap_or(namespace);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    match api.get_opt(&target.name).await {
        Ok(found) => Some(found.is_some()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot look up the target");
            None
        }
    }
}

/// Whether a running pod carries a Stowaway sidecar for `target`.
pub(crate) async fn has_sidecar(
    client: &kube::Client,
    target: Option<&stowaway_api::common::TypedObjectReference>,
    namespace: &str,
) -> Result<bool, Error> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let Some(target) = target else {
        return Ok(false);
    };
    let ns = target.namespace.as_deref().unwrap_or(namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!(
        "{}={}",
        crate::names::SIDECAR_TARGET_LABEL,
        crate::names::sidecar_target(&target.kind, &target.name)
    );
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Running")
    }))
}
