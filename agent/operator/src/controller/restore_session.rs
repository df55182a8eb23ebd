//! Reconciling a RestoreSession: find its snapshots, the target's backups and the executor;
//! decide; apply.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use stowaway_api::{BackupConfiguration, BackupSession, RestoreSession, Snapshot};

use super::{Context, Error, apply, has_sidecar, target_exists};
use crate::executor::Executor;
use crate::job::{job_state, restore_job, restore_job_name};
use crate::names;
use crate::restore_session::{Observed, decide};

/// Reconciles one RestoreSession.
pub async fn reconcile(session: Arc<RestoreSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = session.name_any();
    let namespace = session.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "RestoreSession",
        name: name.clone(),
    })?;
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

    let plan = decide(&Observed {
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
