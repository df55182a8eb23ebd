//! Reconciling a BackupConfiguration: look up its storages, policies, addon, target,
//! repositories and sessions; decide; apply.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use stowaway_api::common::{ObjectReference, ReadinessPhase};
use stowaway_api::{
    Addon, BackupConfiguration, BackupSession, BackupStorage, Repository, RetentionPolicy,
};

use super::{Context, Error, apply, target_exists};
use crate::admission::{Catalog, check_addon_reference};
use crate::backup_configuration::{BackendObserved, Lookup, Observed, decide};
use crate::names;

/// Reconciles one BackupConfiguration.
pub async fn reconcile(
    config: Arc<BackupConfiguration>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let name = config.name_any();
    let namespace = config.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "BackupConfiguration",
        name: name.clone(),
    })?;
    let client = &ctx.client;

    let mut backends = Vec::new();
    for backend in &config.spec.backends {
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
    let (addon, addon_problems) = addon_lookup(&ctx, &config).await?;
    let target_found = match &config.spec.target {
        Some(target) => target_exists(client, target, &namespace).await,
        None => None,
    };
    let repositories: Api<Repository> = Api::namespaced(client.clone(), &namespace);
    let wanted: Vec<&str> = config
        .spec
        .sessions
        .iter()
        .flat_map(|s| s.repositories.iter().map(|r| r.name.as_str()))
        .collect();
    let mut found_repositories = Vec::new();
    for repo in wanted {
        if let Some(r) = repositories.get_opt(repo).await? {
            found_repositories.push(r);
        }
    }
    let sessions_api: Api<BackupSession> = Api::namespaced(client.clone(), &namespace);
    let sessions = sessions_api
        .list(&ListParams::default().labels(&format!("{}={}", names::INVOKER_NAME_LABEL, name)))
        .await?
        .items;

    let observed = Observed {
        config: &config,
        backends,
        addon,
        addon_problems,
        target_found,
        repositories: &found_repositories,
        sessions: &sessions,
        now: ctx.now(),
    };
    let plan = decide(&observed);
    // An Addon becoming Ready (its component verified) does not wake the configuration.
    let addon_wait = (observed.addon != Lookup::Ready).then_some(ADDON_RETRY);

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
    let configs: Api<BackupConfiguration> = Api::namespaced(client.clone(), &namespace);
    apply::status(&configs, &name, config.status.as_ref(), &plan.status).await?;
    apply::events(&ctx, config.as_ref(), &plan.events).await;
    Ok(
        match plan.requeue_after.into_iter().chain(addon_wait).min() {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        },
    )
}

/// How soon a configuration whose addon is missing or not ready is looked at again.
const ADDON_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The sessions' addons: the least ready of them, and the problems of the task references
/// against the Addon each names (an Addon object of that name, else a built-in addon), with
/// field paths, checked as the admission webhook checks them.
async fn addon_lookup(
    ctx: &Context,
    config: &BackupConfiguration,
) -> Result<(Lookup, Vec<String>), Error> {
    let api: Api<Addon> = Api::all(ctx.client.clone());
    let mut lookup: Option<Lookup> = None;
    let mut problems = Vec::new();
    for (i, session) in config.spec.sessions.iter().enumerate() {
        // A missing name or task list is a validation problem `decide` reports.
        let Some(reference) = session
            .addon
            .as_ref()
            .filter(|a| !a.name.is_empty() && !a.tasks.is_empty())
        else {
            continue;
        };
        let catalog = Catalog {
            addons: api.get_opt(&reference.name).await?.into_iter().collect(),
            builtin_addons: ctx.builtin_addons.clone(),
            ..Catalog::default()
        };
        let found = match catalog.resolve_addon(&reference.name) {
            None => Lookup::Missing,
            Some(addon) => {
                problems.extend(
                    check_addon_reference(
                        &format!("spec.sessions[{i}].addon"),
                        reference,
                        false,
                        &catalog,
                    )
                    .iter()
                    .map(ToString::to_string),
                );
                match crate::addon::readiness(&addon) {
                    Lookup::NotReady(why) => {
                        Lookup::NotReady(format!("Addon {:?} is not ready: {why}", reference.name))
                    }
                    other => other,
                }
            }
        };
        lookup = Some(match (lookup, found) {
            (None, found) => found,
            (Some(Lookup::Missing), _) | (_, Lookup::Missing) => Lookup::Missing,
            (Some(Lookup::Ready), found) => found,
            (Some(worse), _) => worse,
        });
    }
    Ok((lookup.unwrap_or(Lookup::Missing), problems))
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
