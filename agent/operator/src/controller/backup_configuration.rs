//! Reconciling a BackupConfiguration or a BackupBatch: look up its storages, policies, addon, target,
//! repositories and sessions; decide; apply.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use stowaway_api::backup_batch::BackupBatchStatus;
use stowaway_api::common::{ObjectReference, ReadinessPhase, ResourceFoundStatus};
use stowaway_api::{
    Addon, BackupBatch, BackupConfiguration, BackupSession, BackupStorage, Repository,
    RetentionPolicy,
};

use super::{Context, Error, apply, sidecar_rbac, target_exists};
use crate::admission::{Catalog, check_addon_reference};
use crate::backup_configuration::{BackendObserved, Lookup, Observed, Plan, decide};
use crate::invoker::{Invoker, SessionView};
use crate::names;

/// Reconciles one BackupConfiguration.
pub async fn reconcile(
    config: Arc<BackupConfiguration>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if sidecar_rbac::finish_deletion(Invoker::Configuration(&config), &ctx).await? {
        return Ok(Action::await_change());
    }
    let (plan, _, action) = plan(Invoker::Configuration(&config), &ctx).await?;
    let api: Api<BackupConfiguration> = Api::namespaced(
        ctx.client.clone(),
        &namespace_of(Invoker::Configuration(&config))?,
    );
    apply::status(
        &api,
        &config.name_any(),
        config.status.as_ref(),
        &plan.status,
    )
    .await?;
    apply::events(&ctx, config.as_ref(), &plan.events).await;
    Ok(action)
}

/// Reconciles one BackupBatch: the same decisions as a configuration's, over every member.
pub async fn reconcile_batch(batch: Arc<BackupBatch>, ctx: Arc<Context>) -> Result<Action, Error> {
    let invoker = Invoker::Batch(&batch);
    if sidecar_rbac::finish_deletion(invoker, &ctx).await? {
        return Ok(Action::await_change());
    }
    let (plan, targets_found, action) = plan(invoker, &ctx).await?;
    let status = BackupBatchStatus {
        common: plan.status,
        targets: invoker
            .targets()
            .into_iter()
            .zip(targets_found)
            .filter_map(|((_, target), found)| {
                target.map(|t| ResourceFoundStatus {
                    reference: t.clone(),
                    found,
                })
            })
            .collect(),
    };
    let api: Api<BackupBatch> = Api::namespaced(ctx.client.clone(), &namespace_of(invoker)?);
    apply::status(&api, &batch.name_any(), batch.status.as_ref(), &status).await?;
    apply::events(&ctx, batch.as_ref(), &plan.events).await;
    Ok(action)
}

fn namespace_of(invoker: Invoker<'_>) -> Result<String, Error> {
    invoker.namespace().ok_or_else(|| Error::NoNamespace {
        kind: invoker.kind(),
        name: invoker.name(),
    })
}

/// Gathers what the invoker refers to, decides, and creates and deletes what the plan says;
/// the caller writes the status.
async fn plan(
    invoker: Invoker<'_>,
    ctx: &Context,
) -> Result<(Plan, Vec<Option<bool>>, Action), Error> {
    let name = invoker.name();
    let namespace = namespace_of(invoker)?;
    let client = &ctx.client;

    let mut backends = Vec::new();
    for backend in invoker.backends() {
        let storage = match &backend.storage_ref {
            Some(r) => storage_lookup(client, r, &namespace).await?,
            None => Lookup::Missing,
        };
        let retention_policy = match &backend.retention_policy {
            Some(r) => Some(policy_lookup(client, r, &namespace).await?),
            None => None,
        };
        backends.push(BackendObserved {
            name: backend.name.clone(),
            storage,
            retention_policy,
        });
    }
    let sessions_spec = invoker.sessions();
    let (addons, addon_problems) = addon_lookup(ctx, &sessions_spec).await?;
    let mut targets_found = Vec::new();
    for (_, target) in invoker.targets() {
        targets_found.push(match target {
            Some(target) => target_exists(client, target, &namespace).await,
            None => None,
        });
    }
    let repositories: Api<Repository> = Api::namespaced(client.clone(), &namespace);
    let repository_names: Vec<String> = sessions_spec
        .iter()
        .flat_map(|s| s.repositories().map(|(_, r)| r.name.clone()))
        .collect();
    let mut found_repositories = Vec::new();
    for repo in repository_names {
        if let Some(r) = repositories.get_opt(&repo).await? {
            found_repositories.push(r);
        }
    }
    // The sidecars' Roles (their failure is logged and retried, not fatal).
    let rbac_wait = sidecar_rbac::reconcile(invoker, ctx, &found_repositories).await;
    let sessions_api: Api<BackupSession> = Api::namespaced(client.clone(), &namespace);
    let mut sessions: Vec<BackupSession> = sessions_api
        .list(&ListParams::default().labels(&format!("{}={}", names::INVOKER_NAME_LABEL, name)))
        .await?
        .items;
    let kind = invoker.kind();
    sessions.retain(|s| s.spec.invoker.kind == kind);

    let observed = Observed {
        invoker,
        backends,
        addons,
        addon_problems,
        targets_found: targets_found.clone(),
        repositories: &found_repositories,
        sessions: &sessions,
        now: ctx.now(),
    };
    let plan = decide(&observed);
    // An Addon becoming Ready (its component verified) does not wake the invoker.
    let addon_wait = observed
        .addons
        .iter()
        .any(|(_, lookup)| *lookup != Lookup::Ready)
        .then_some(ADDON_RETRY);

    for repo in &plan.create_repositories {
        apply::create(&repositories, repo).await?;
        tracing::info!(repository = %repo.name_any(), %namespace, "created Repository");
    }
    for session in &plan.create_sessions {
        apply::create(&sessions_api, session).await?;
        tracing::info!(session = %session.name_any(), %namespace, "created BackupSession");
    }
    for session in &plan.delete_sessions {
        apply::delete(&sessions_api, session).await?;
    }
    let action = match plan
        .requeue_after
        .into_iter()
        .chain(addon_wait)
        .chain(rbac_wait)
        .min()
    {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    };
    Ok((plan, targets_found, action))
}

/// How soon an invoker whose addon is missing or not ready is looked at again.
const ADDON_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The addons the sessions use, by name (found, and a third-party one's component verified:
/// [`crate::addon::readiness`]), and the problems of every addon reference against the Addon
/// it names (an Addon object of that name, else a built-in addon), with field paths, checked
/// as the admission webhook checks them.
async fn addon_lookup(
    ctx: &Context,
    sessions: &[SessionView<'_>],
) -> Result<(Vec<(String, Lookup)>, Vec<String>), Error> {
    let api: Api<Addon> = Api::all(ctx.client.clone());
    let mut addons: Vec<(String, Lookup)> = Vec::new();
    let mut problems = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        for (j, member) in session.members.iter().enumerate() {
            let Some(reference) = member.addon else {
                continue;
            };
            let catalog = Catalog {
                addons: api.get_opt(&reference.name).await?.into_iter().collect(),
                builtin_addons: ctx.builtin_addons.clone(),
                ..Catalog::default()
            };
            let found = catalog.resolve_addon(&reference.name);
            // A missing name or task list is a validation problem `decide` reports.
            if found.is_some() && !reference.name.is_empty() && !reference.tasks.is_empty() {
                let path = match member.name {
                    Some(_) => format!("spec.sessions[{i}].targets[{j}].addon"),
                    None => format!("spec.sessions[{i}].addon"),
                };
                problems.extend(
                    check_addon_reference(&path, reference, false, &catalog)
                        .iter()
                        .map(ToString::to_string),
                );
            }
            if !addons.iter().any(|(n, _)| *n == reference.name) {
                let lookup = match &found {
                    None => Lookup::Missing,
                    Some(addon) => crate::addon::readiness(addon),
                };
                addons.push((reference.name.clone(), lookup));
            }
        }
    }
    Ok((addons, problems))
}

async fn storage_lookup(
    client: &kube::Client,
    reference: &ObjectReference,
    namespace: &str,
) -> Result<Lookup, Error> {
    let ns = reference.namespace.as_deref().unwrap_or(namespace);
    let api: Api<BackupStorage> = Api::namespaced(client.clone(), ns);
    Ok(match api.get_opt(&reference.name).await? {
        None => Lookup::Missing,
        Some(storage) => {
            let status = storage.status.unwrap_or_default();
            match status.phase {
                Some(ReadinessPhase::Ready) => Lookup::Ready,
                _ => Lookup::NotReady(
                    status
                        .conditions
                        .iter()
                        .find_map(|c| c.message.clone())
                        .unwrap_or_else(|| "not initialised yet".to_owned()),
                ),
            }
        }
    })
}

async fn policy_lookup(
    client: &kube::Client,
    reference: &ObjectReference,
    namespace: &str,
) -> Result<Lookup, Error> {
    let ns = reference.namespace.as_deref().unwrap_or(namespace);
    let api: Api<RetentionPolicy> = Api::namespaced(client.clone(), ns);
    Ok(match api.get_opt(&reference.name).await? {
        None => Lookup::Missing,
        Some(_) => Lookup::Ready,
    })
}
