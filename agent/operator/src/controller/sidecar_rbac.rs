//! Applying the sidecars' RBAC ([`crate::sidecar_rbac`]): read the target workloads and the
//! storages, decide, create or replace the Roles and RoleBindings that differ, delete those
//! no longer wanted; when the invoker goes, delete them all.
//!
//! Objects in the invoker's namespace have it as owner, so the garbage collector removes them
//! with it; those in other namespaces cannot, so the invoker then carries
//! [`FINALIZER`] and [`finish_deletion`] removes them before letting it go.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::{BackupBatch, BackupConfiguration, BackupStorage, Repository};

use super::{Context, Error, apply};
use crate::invoker::Invoker;
use crate::names;
use crate::sidecar_rbac::{
    COMPONENT, COMPONENT_LABEL, FINALIZER, Observed, Workload, decide, selector, storage_refs,
    workload_targets,
};

/// How soon an invoker is looked at again while a target workload does not run the sidecar
/// yet (`stowaway inject` changes the workload, which does not wake the invoker), or after
/// the RBAC could not be applied.
pub(crate) const RECHECK: Duration = Duration::from_secs(60);

/// Brings the Roles and RoleBindings of `invoker`'s sidecars to what they should be.
/// Failures are logged, not returned: the backups do not wait for the sidecars' RBAC.
/// Returns when to look again, if sooner than the invoker's own schedule.
pub(crate) async fn reconcile(
    invoker: Invoker<'_>,
    ctx: &Context,
    repositories: &[Repository],
) -> Option<Duration> {
    match apply_rbac(invoker, ctx, repositories).await {
        Ok(waiting) => waiting.then_some(RECHECK),
        Err(e) => {
            tracing::warn!(kind = invoker.kind(), name = %invoker.name(), error = %e,
                "cannot grant the sidecars their RBAC");
            ctx.metrics.failure(invoker.kind(), "SidecarRbac");
            Some(RECHECK)
        }
    }
}

/// When `invoker` is being deleted: deletes its sidecars' Roles and RoleBindings and removes
/// [`FINALIZER`], then returns `true` (the caller does nothing else with a dying invoker).
pub(crate) async fn finish_deletion(invoker: Invoker<'_>, ctx: &Context) -> Result<bool, Error> {
    if invoker.meta().deletion_timestamp.is_none() {
        return Ok(false);
    }
    let selector = selector(invoker);
    delete_all::<Role>(ctx, &selector, &[]).await?;
    delete_all::<RoleBinding>(ctx, &selector, &[]).await?;
    finalizer(invoker, ctx, false).await?;
    Ok(true)
}

async fn apply_rbac(
    invoker: Invoker<'_>,
    ctx: &Context,
    repositories: &[Repository],
) -> Result<bool, Error> {
    let client = &ctx.client;
    let home = invoker.namespace().ok_or_else(|| Error::NoNamespace {
        kind: invoker.kind(),
        name: invoker.name(),
    })?;
    let mut workloads = Vec::new();
    for target in workload_targets(invoker) {
        if let Some(found) = workload(client, &target).await? {
            workloads.push((target, found));
        }
    }
    let mut storages = Vec::new();
    for (ns, name) in storage_refs(invoker, repositories) {
        let api: Api<BackupStorage> = Api::namespaced(client.clone(), &ns);
        storages.extend(api.get_opt(&name).await?);
    }
    let plan = decide(&Observed {
        invoker,
        workloads,
        storages: &storages,
        repositories,
    });
    let crosses = plan.crosses_namespaces(&home);
    if crosses {
        // Before anything exists where the garbage collector cannot reach it.
        finalizer(invoker, ctx, true).await?;
    }
    for (role, binding) in plan.roles.iter().zip(&plan.bindings) {
        // A binding only to a Role of ours: never to another's Role of the same name.
        if upsert(ctx, role, |a, b| a.rules == b.rules).await? {
            upsert(ctx, binding, |a, b| {
                a.subjects == b.subjects && a.role_ref == b.role_ref
            })
            .await?;
        }
    }
    let selector = selector(invoker);
    delete_all::<Role>(ctx, &selector, &keys(&plan.roles)).await?;
    delete_all::<RoleBinding>(ctx, &selector, &keys(&plan.bindings)).await?;
    if !crosses {
        finalizer(invoker, ctx, false).await?;
    }
    Ok(plan.waiting_for_injection)
}

fn keys<K: Resource>(objects: &[K]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The pod template of the workload `target`, or `None` when it does not exist.
async fn workload(
    client: &kube::Client,
    target: &TypedObjectReference,
) -> Result<Option<Workload>, Error> {
    let ns = target.namespace.as_deref().unwrap_or_default();
    let found = match target.kind.as_str() {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|w| Workload::of_template(w.spec.as_ref().map(|s| &s.template))),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|w| Workload::of_template(w.spec.as_ref().map(|s| &s.template))),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|w| Workload::of_template(w.spec.as_ref().map(|s| &s.template))),
        _ => None,
    };
    Ok(found)
}

/// Whether `object` is one of ours (the labels [`crate::sidecar_rbac`] sets).
fn is_ours<K: Resource>(object: &K) -> bool {
    let labels = object.meta().labels.as_ref();
    let has = |k: &str, v: &str| labels.and_then(|l| l.get(k)).is_some_and(|x| x == v);
    has(names::MANAGED_BY_LABEL, names::MANAGED_BY) && has(COMPONENT_LABEL, COMPONENT)
}

/// Creates `desired`, or replaces the existing object when its labels, owners or content
/// (`same`) differ. An object of that name that the operator did not make is left alone
/// (`false`).
async fn upsert<K>(ctx: &Context, desired: &K, same: impl Fn(&K, &K) -> bool) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let ns = desired.meta().namespace.clone().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(existing) = api.get_opt(&name).await? else {
        apply::create(&api, desired).await?;
        tracing::info!(kind = K::kind(&()).as_ref(), %ns, %name, "granted the sidecar RBAC");
        return Ok(true);
    };
    if !is_ours(&existing) {
        tracing::warn!(kind = K::kind(&()).as_ref(), %ns, %name,
            "an object of this name exists and was not made by Stowaway: left alone");
        return Ok(false);
    }
    if same(&existing, desired)
        && existing.meta().labels == desired.meta().labels
        && existing.meta().owner_references == desired.meta().owner_references
    {
        return Ok(true);
    }
    let mut replacement = desired.clone();
    replacement.meta_mut().resource_version = existing.meta().resource_version.clone();
    api.replace(&name, &PostParams::default(), &replacement)
        .await?;
    tracing::info!(kind = K::kind(&()).as_ref(), %ns, %name, "updated the sidecar RBAC");
    Ok(true)
}

/// Deletes, in every namespace, the objects of kind `K` that `selector` matches, except
/// those in `keep`.
async fn delete_all<K>(
    ctx: &Context,
    selector: &str,
    keep: &[(String, String)],
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let all: Api<K> = Api::all(ctx.client.clone());
    let found = all.list(&ListParams::default().labels(selector)).await?;
    for object in found.items {
        let key = (
            object.meta().namespace.clone().unwrap_or_default(),
            object.name_any(),
        );
        if keep.contains(&key) || !is_ours(&object) {
            continue;
        }
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.0);
        apply::delete(&api, &key.1).await?;
        tracing::info!(kind = K::kind(&()).as_ref(), ns = %key.0, name = %key.1,
            "removed sidecar RBAC no longer needed");
    }
    Ok(())
}

/// Adds (`add`) or removes [`FINALIZER`] on the invoker.
async fn finalizer(invoker: Invoker<'_>, ctx: &Context, add: bool) -> Result<(), Error> {
    let ns = invoker.namespace().unwrap_or_default();
    let has = invoker
        .meta()
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER);
    if has == add {
        return Ok(());
    }
    match invoker {
        Invoker::Configuration(config) => {
            let api: Api<BackupConfiguration> = Api::namespaced(ctx.client.clone(), &ns);
            toggle(&api, config, add).await
        }
        Invoker::Batch(batch) => {
            let api: Api<BackupBatch> = Api::namespaced(ctx.client.clone(), &ns);
            toggle(&api, batch, add).await
        }
    }
}

async fn toggle<K>(api: &Api<K>, object: &K, add: bool) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if add {
        apply::add_finalizer(api, object, FINALIZER).await
    } else {
        apply::remove_finalizer(api, object, FINALIZER).await
    }
}
