//! Reconciling a RestoreSession: find its snapshots, the target's backups and the executor;
//! decide; apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use stowaway_api::restore_session::{BatchRestoreSource, RestorePhase, RestoreSessionStatus};
use stowaway_api::{BackupBatch, BackupConfiguration, BackupSession, RestoreSession, Snapshot};

use super::{Context, Error, apply, has_sidecar, hooks, target_exists};
use crate::batch_restore;
use crate::events::Note;
use crate::executor::Executor;
use crate::hooks::Stage;
use crate::job::{job_state, restore_job, restore_job_name, workload_restore_job};
use crate::names;
use crate::restore_session::{Observed, VolumeObserved, decide, hook_lists};
use crate::volume_restore::{self, Workload, WorkloadKind};

/// Reconciles one RestoreSession.
pub async fn reconcile(session: Arc<RestoreSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = session.name_any();
    let namespace = session.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "RestoreSession",
        name: name.clone(),
    })?;
    if let Some(source) = &session.spec.data_source.batch {
        return reconcile_batch(&session, source, &namespace, &ctx).await;
    }
    let client = &ctx.client;
    let source_ns = session
        .spec
        .data_source
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.clone());
    let snapshots: Vec<Snapshot> = Api::<Snapshot>::namespaced(client.clone(), &source_ns)
        .list(&ListParams::default())
        .await?
        .items;

    // The target's BackupConfigurations and their sessions.
    let mut backups = Vec::new();
    let mut backup_sessions = Vec::new();
    let mut target_found = None;
    if let Some(target) = &session.spec.target {
        let target_ns = target
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        target_found = target_exists(client, target, &namespace).await;
        let configs: Api<BackupConfiguration> = Api::namespaced(client.clone(), &target_ns);
        for config in configs.list(&ListParams::default()).await?.items {
            let same = config.spec.target.as_ref().is_some_and(|t| {
                t.kind == target.kind
                    && t.name == target.name
                    && t.namespace.as_deref().unwrap_or(&target_ns) == target_ns
            });
            if same {
                let sessions: Api<BackupSession> = Api::namespaced(client.clone(), &target_ns);
                backup_sessions.extend(
                    sessions
                        .list(&ListParams::default().labels(&format!(
                            "{}={}",
                            names::INVOKER_NAME_LABEL,
                            config.name_any()
                        )))
                        .await?
                        .items,
                );
                backups.push(config);
            }
        }
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    // A volume restore into a workload runs in a Job that mounts its claims writable (the
    // sidecar's mounts are read-only), around which the workload is scaled down.
    let volume_restore = volume_restore::applies(&session, &snapshots);
    let workload = match (&session.spec.target, volume_restore) {
        (Some(target), true) => observe_workload(client, target, &namespace, &name).await?,
        _ => None,
    };
    let job_pod_running = volume_restore && restore_job_running(client, &namespace, &name).await?;
    let executor = if !volume_restore
        && has_sidecar(client, session.spec.target.as_ref(), &namespace).await?
    {
        Executor::Sidecar
    } else {
        Executor::Job(
            jobs.get_opt(&restore_job_name(&session))
                .await?
                .map(|job| job_state(&job)),
        )
    };

    let mut plan = decide(&Observed {
        session: &session,
        snapshots: &snapshots,
        backups: &backups,
        backup_sessions: &backup_sessions,
        target_found,
        executor,
        volume: volume_restore.then_some(VolumeObserved {
            workload: workload.as_ref(),
            job_pod_running,
        }),
        now: ctx.now(),
    });

    // Pause before anything else, so no new backup of the target starts.
    for (configs, paused) in [(&plan.pause, true), (&plan.resume, false)] {
        for config in configs {
            let ns = backups
                .iter()
                .find(|b| &b.name_any() == config)
                .and_then(ResourceExt::namespace)
                .unwrap_or_else(|| namespace.clone());
            let api: Api<BackupConfiguration> = Api::namespaced(client.clone(), &ns);
            let patch = serde_json::json!({ "spec": { "paused": paused } });
            match api
                .patch(config, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // The workload's scale (and its record) before the status that relies on it.
    if let (Some(scale), Some(workload)) = (&plan.scale, &workload) {
        scale_workload(client, workload, &namespace, &name, scale).await?;
    }
    if let Some((stage, index)) = plan.run_hook {
        plan.requeue_after = Some(
            run_hook(
                &ctx,
                &session,
                &namespace,
                stage,
                index,
                &mut plan.status,
                &mut plan.events,
            )
            .await,
        );
    }
    if plan.create_job {
        let job = match &workload {
            Some(workload) => {
                let components: Vec<String> = plan.status.components.keys().cloned().collect();
                workload_restore_job(
                    &session,
                    &ctx.job,
                    &volume_restore::claims_for(workload, &components),
                    workload.job_security(),
                )
            }
            None => restore_job(&session, &ctx.job),
        };
        apply::create(&jobs, &job).await?;
        tracing::info!(job = %job.name_any(), restore = %name, "created restore Job");
    }
    if plan.delete_job {
        apply::delete(&jobs, &restore_job_name(&session)).await?;
    }
    let restores: Api<RestoreSession> = Api::namespaced(client.clone(), &namespace);
    apply::status(&restores, &name, session.status.as_ref(), &plan.status).await?;
    apply::events(&ctx, session.as_ref(), &plan.events).await;
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The workload of a volume restore (in the target's namespace), its pods, and whether the
/// restore that scaled it down, when another, is still running; `None` when it does not
/// exist.
async fn observe_workload(
    client: &kube::Client,
    target: &stowaway_api::common::TypedObjectReference,
    namespace: &str,
    session: &str,
) -> Result<Option<Workload>, Error> {
    let Some(kind) = WorkloadKind::of(target) else {
        return Ok(None);
    };
    let ns = target.namespace.as_deref().unwrap_or(namespace);
    let found = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|d| Workload::deployment(&d)),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|s| Workload::stateful_set(&s)),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), ns)
            .get_opt(&target.name)
            .await?
            .map(|d| Workload::daemon_set(&d)),
    };
    let Some(mut workload) = found else {
        return Ok(None);
    };
    if let Some(selector) = workload.pod_selector() {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        workload.pods = pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        // Sorted: the status names them, and must not change from one reconcile to the next.
        workload.pods.sort();
    }
    if let Some(by) = workload.scaled_down_by()
        && by.session != session
    {
        let restores: Api<RestoreSession> = Api::namespaced(client.clone(), namespace);
        workload.other_restore_active = restores.get_opt(&by.session).await?.is_some_and(|r| {
            !matches!(
                r.status.and_then(|s| s.phase),
                Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid)
            )
        });
    }
    Ok(Some(workload))
}

/// Whether a pod of the restore Job of `session` is still running (or about to).
async fn restore_job_running(
    client: &kube::Client,
    namespace: &str,
    session: &str,
) -> Result<bool, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={session}", crate::job::RESTORE_SESSION_LABEL);
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .any(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        }))
}

/// Applies `scale` to the workload (one merge patch of its replicas and annotations).
async fn scale_workload(
    client: &kube::Client,
    workload: &Workload,
    namespace: &str,
    session: &str,
    scale: &volume_restore::Scale,
) -> Result<(), Error> {
    let patch = Patch::Merge(scale.patch(session));
    let params = PatchParams::default();
    let name = &workload.name;
    let namespace = workload.namespace.as_deref().unwrap_or(namespace);
    match workload.kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch(name, &params, &patch)
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &patch)
                .await?;
        }
        // Never planned: a DaemonSet has no replicas (refused unless InPlace).
        WorkloadKind::DaemonSet => return Ok(()),
    }
    tracing::info!(workload = %workload.label(), restore = %session, ?scale, "scaled the workload");
    Ok(())
}

/// Reconciles a batch restore: the batch, its runs and snapshots, the member restores.
async fn reconcile_batch(
    session: &RestoreSession,
    source: &BatchRestoreSource,
    namespace: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let client = &ctx.client;
    let name = session.name_any();
    let batches: Api<BackupBatch> = Api::namespaced(client.clone(), namespace);
    let batch = batches.get_opt(&source.name).await?;
    let by_invoker =
        ListParams::default().labels(&format!("{}={}", names::INVOKER_NAME_LABEL, source.name));
    let mut backup_sessions = Api::<BackupSession>::namespaced(client.clone(), namespace)
        .list(&by_invoker)
        .await?
        .items;
    backup_sessions.retain(|s| s.spec.invoker.kind == "BackupBatch");
    let snapshots = Api::<Snapshot>::namespaced(client.clone(), namespace)
        .list(&by_invoker)
        .await?
        .items;
    let restores: Api<RestoreSession> = Api::namespaced(client.clone(), namespace);
    let children = restores
        .list(&ListParams::default().labels(&format!("{}={}", batch_restore::PARENT_LABEL, name)))
        .await?
        .items;
    let plan = batch_restore::decide(
        &batch_restore::Observed {
            session,
            batch: batch.as_ref(),
            backup_sessions: &backup_sessions,
            snapshots: &snapshots,
            children: &children,
            now: ctx.now(),
        },
        source,
    );
    if plan.pause_batch || plan.resume_batch {
        let patch = serde_json::json!({ "spec": { "paused": plan.pause_batch } });
        match batches
            .patch(&source.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut plan = plan;
    if let Some((stage, index)) = plan.run_hook {
        plan.requeue_after = Some(
            run_hook(
                ctx,
                session,
                namespace,
                stage,
                index,
                &mut plan.status,
                &mut plan.events,
            )
            .await,
        );
    }
    for child in &plan.create_children {
        apply::create(&restores, child).await?;
        tracing::info!(restore = %child.name_any(), batch_restore = %name, "created member restore");
    }
    apply::status(&restores, &name, session.status.as_ref(), &plan.status).await?;
    apply::events(ctx, session, &plan.events).await;
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Runs the restore's hook `index` of `stage` and records it; returns when to look again.
async fn run_hook(
    ctx: &Context,
    session: &RestoreSession,
    namespace: &str,
    stage: Stage,
    index: usize,
    status: &mut RestoreSessionStatus,
    events: &mut Vec<Note>,
) -> std::time::Duration {
    let (pre, post) = hook_lists(session);
    let (list, condition) = match stage {
        Stage::Pre => (pre, "PreRestoreHooksExecutionSucceeded"),
        Stage::Post => (post, "PostRestoreHooksExecutionSucceeded"),
    };
    let Some(hook) = list.get(index) else {
        return std::time::Duration::from_secs(1);
    };
    let phase = match stage {
        Stage::Pre => "Running",
        Stage::Post
            if status
                .components
                .values()
                .all(|c| c.phase == Some(RestorePhase::Succeeded)) =>
        {
            "Succeeded"
        }
        Stage::Post => "Failed",
    };
    let name = session.name_any();
    let invocation = hooks::Invocation {
        namespace,
        session: &name,
        owner: session.controller_owner_ref(&()),
        stage,
        vars: BTreeMap::from([
            ("NAMESPACE".to_owned(), namespace.to_owned()),
            ("SESSION".to_owned(), name.clone()),
            ("PHASE".to_owned(), phase.to_owned()),
            (
                "TARGET_NAME".to_owned(),
                session
                    .spec
                    .target
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            ),
        ]),
    };
    hooks::run_and_record(
        ctx,
        &invocation,
        hook,
        &mut status.hooks,
        &mut status.conditions,
        condition,
        events,
    )
    .await
}
