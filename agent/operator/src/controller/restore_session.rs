//! Reconciling a RestoreSession: find its snapshots, the target's backups and the executor;
//! decide; apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
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
use crate::job::{job_state, restore_job, restore_job_name};
use crate::names;
use crate::restore_session::{Observed, decide, hook_lists};

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
    let executor = if has_sidecar(client, session.spec.target.as_ref(), &namespace).await? {
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
        let job = restore_job(&session, &ctx.job);
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
