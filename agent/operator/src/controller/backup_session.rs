//! Reconciling a BackupSession: find its invoker, siblings, snapshots and executor; decide;
//! apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use stowaway_api::backup_session::{
    BackupSessionPhase, BackupSessionStatus, RetentionPolicyApplyPhase, RetentionPolicyApplyStatus,
};
use stowaway_api::common::RunPhase;
use stowaway_api::{
    BackupBatch, BackupConfiguration, BackupSession, Repository, RetentionPolicy, Snapshot,
};

use super::{Context, Error, apply, has_sidecar, hooks};
use crate::backup_session::{Observed, decide, hook_lists};
use crate::executor::Executor;
use crate::hooks::Stage;
use crate::invoker::Invoker;
use crate::job::{backup_job, backup_job_name, job_state};
use crate::names;

/// Reconciles one BackupSession.
pub async fn reconcile(session: Arc<BackupSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = session.name_any();
    let namespace = session.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "BackupSession",
        name: name.clone(),
    })?;
    let client = &ctx.client;
    let (config, batch) = match session.spec.invoker.kind.as_str() {
        "BackupBatch" => {
            let api: Api<BackupBatch> = Api::namespaced(client.clone(), &namespace);
            (None, api.get_opt(&session.spec.invoker.name).await?)
        }
        _ => {
            let api: Api<BackupConfiguration> = Api::namespaced(client.clone(), &namespace);
            (api.get_opt(&session.spec.invoker.name).await?, None)
        }
    };
    let invoker = match (&config, &batch) {
        (Some(c), _) => Some(Invoker::Configuration(c)),
        (_, Some(b)) => Some(Invoker::Batch(b)),
        _ => None,
    };
    let members = invoker
        .and_then(|i| i.session(&session.spec.session))
        .map(|s| s.members)
        .unwrap_or_default();
    let sessions: Api<BackupSession> = Api::namespaced(client.clone(), &namespace);
    let siblings = sessions
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            names::INVOKER_NAME_LABEL,
            session.spec.invoker.name
        )))
        .await?
        .items
        .into_iter()
        .filter(|s| s.spec.invoker.kind == session.spec.invoker.kind)
        .collect::<Vec<_>>();
    let snapshots_api: Api<Snapshot> = Api::namespaced(client.clone(), &namespace);
    let snapshots: Vec<Snapshot> = snapshots_api
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            names::INVOKER_NAME_LABEL,
            session.spec.invoker.name
        )))
        .await?
        .items
        .into_iter()
        .filter(|s| s.spec.backup_session.as_deref() == Some(name.as_str()))
        .collect();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let mut executors = Vec::new();
    for member in &members {
        executors.push(if has_sidecar(client, member.target, &namespace).await? {
            Executor::Sidecar
        } else {
            Executor::Job(
                jobs.get_opt(&backup_job_name(&session, member.name))
                    .await?
                    .map(|job| job_state(&job)),
            )
        });
    }

    let observed = Observed {
        session: &session,
        invoker,
        siblings: &siblings,
        snapshots: &snapshots,
        executors,
        now: ctx.now(),
    };
    let mut plan = decide(&observed);

    let repositories: Api<Repository> = Api::namespaced(client.clone(), &namespace);
    for snapshot in &plan.create_snapshots {
        let mut snapshot = snapshot.clone();
        // Snapshots belong to their Repository, as in KubeStash.
        if let Some(repo) = repositories.get_opt(&snapshot.spec.repository).await?
            && let Some(owner) = repo.owner_ref(&())
        {
            snapshot.metadata.owner_references = Some(vec![owner]);
        }
        apply::create(&snapshots_api, &snapshot).await?;
    }
    for member in plan.create_jobs.iter().filter_map(|i| members.get(*i)) {
        if let Some(invoker) = invoker {
            let job = backup_job(&session, invoker, member, &ctx.job);
            apply::create(&jobs, &job).await?;
            tracing::info!(job = %job.name_any(), session = %name, "created backup Job");
        }
    }
    for member in plan.delete_jobs.iter().filter_map(|i| members.get(*i)) {
        apply::delete(&jobs, &backup_job_name(&session, member.name)).await?;
    }
    for (snapshot, why) in &plan.fail_snapshots {
        let patch = serde_json::json!({ "status": {
            "phase": RunPhase::Failed,
            "conditions": [{
                "type": "SnapshotIncomplete",
                "status": "True",
                "reason": "BackupSessionFailed",
                "message": why,
                "lastTransitionTime": ctx.now(),
            }],
        }});
        match snapshots_api
            .patch_status(snapshot, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((stage, index)) = plan.run_hook {
        let (pre, post) = hook_lists(&observed);
        let (list, condition) = match stage {
            Stage::Pre => (pre, "PreBackupHooksExecutionSucceeded"),
            Stage::Post => (post, "PostBackupHooksExecutionSucceeded"),
        };
        if let Some(hook) = list.get(index) {
            let vars = BTreeMap::from([
                ("NAMESPACE".to_owned(), namespace.clone()),
                ("SESSION".to_owned(), name.clone()),
                (
                    "PHASE".to_owned(),
                    outcome_word(&plan.status, stage).to_owned(),
                ),
                (
                    "TARGET_NAME".to_owned(),
                    members
                        .iter()
                        .filter_map(|m| m.target.map(|t| t.name.clone()))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ]);
            let invocation = hooks::Invocation {
                namespace: &namespace,
                session: &name,
                owner: session.controller_owner_ref(&()),
                stage,
                vars,
            };
            let status = &mut plan.status;
            plan.requeue_after = Some(
                hooks::run_and_record(
                    &ctx,
                    &invocation,
                    hook,
                    &mut status.hooks,
                    &mut status.conditions,
                    condition,
                    &mut plan.events,
                )
                .await,
            );
        }
    }
    for index in plan.apply_retention.clone() {
        let Some(entry) = plan.status.retention_policy.get(index).cloned() else {
            continue;
        };
        let outcome = apply_retention(&ctx, &namespace, &entry, &snapshots_api).await?;
        let entry = &mut plan.status.retention_policy[index];
        match outcome {
            Ok(note) => {
                entry.phase = Some(RetentionPolicyApplyPhase::Applied);
                entry.error = None;
                plan.events
                    .push(crate::events::Note::normal("RetentionPolicyApplied", note));
            }
            Err(e) => {
                entry.phase = Some(RetentionPolicyApplyPhase::FailedToApply);
                plan.events.push(crate::events::Note::warning(
                    "RetentionPolicyFailed",
                    format!(
                        "repository {}: {e}",
                        entry.repository.as_deref().unwrap_or("?")
                    ),
                ));
                entry.error = Some(e);
            }
        }
    }
    if let Some(retry) = &plan.create_retry {
        apply::create(&sessions, retry).await?;
    }
    apply::status(&sessions, &name, session.status.as_ref(), &plan.status).await?;
    record_outcome(&ctx, session.status.as_ref(), &plan.status);
    apply::events(&ctx, session.as_ref(), &plan.events).await;
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Counts a session that just reached a final phase.
fn record_outcome(ctx: &Context, old: Option<&BackupSessionStatus>, new: &BackupSessionStatus) {
    let final_phase = |s: Option<&BackupSessionStatus>| {
        s.and_then(|s| s.phase).filter(|p| {
            matches!(
                p,
                BackupSessionPhase::Succeeded
                    | BackupSessionPhase::Failed
                    | BackupSessionPhase::Skipped
            )
        })
    };
    let Some(phase) = final_phase(Some(new)) else {
        return;
    };
    if final_phase(old).is_some() {
        return;
    }
    let duration = new
        .duration
        .as_deref()
        .and_then(|d| crate::duration::parse_duration(d).ok());
    let bytes = new.size.as_deref().and_then(stowaway_api::size::parse);
    let phase = format!("{phase:?}");
    ctx.metrics
        .session_finished("backup", &phase, duration, bytes);
    if phase == "Failed" {
        let reason = new
            .conditions
            .iter()
            .find(|c| c.type_ == crate::backup_session::BACKUP_INCOMPLETE)
            .and_then(|c| c.reason.clone())
            .unwrap_or_else(|| "SnapshotFailed".to_owned());
        ctx.metrics.failure("BackupSession", &reason);
    }
}

/// `Succeeded` or `Failed` for a post-hook (from the snapshots), `Running` for a pre-hook.
fn outcome_word(status: &BackupSessionStatus, stage: Stage) -> &'static str {
    if stage == Stage::Pre {
        return "Running";
    }
    if status
        .snapshots
        .iter()
        .all(|s| s.phase == Some(RunPhase::Succeeded))
    {
        "Succeeded"
    } else {
        "Failed"
    }
}

/// Applies one retention entry: forget and prune in the repository, then delete the Snapshot
/// objects that went with it. `Ok(Err(..))` is a failure to report in the status.
async fn apply_retention(
    ctx: &Context,
    namespace: &str,
    entry: &RetentionPolicyApplyStatus,
    snapshots_api: &Api<Snapshot>,
) -> Result<Result<String, String>, Error> {
    let (Some(reference), Some(repo_name)) = (&entry.r#ref, &entry.repository) else {
        return Ok(Err("no policy or repository named".to_owned()));
    };
    let policy_ns = reference.namespace.as_deref().unwrap_or(namespace);
    let policies: Api<RetentionPolicy> = Api::namespaced(ctx.client.clone(), policy_ns);
    let Some(policy) = policies.get_opt(&reference.name).await? else {
        return Ok(Err(format!(
            "RetentionPolicy {policy_ns}/{} not found",
            reference.name
        )));
    };
    let repositories: Api<Repository> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(repo) = repositories.get_opt(repo_name).await? else {
        return Ok(Err(format!("Repository {namespace}/{repo_name} not found")));
    };
    let opened = match super::repository::open_existing(&ctx.client, &repo, namespace).await? {
        Ok(opened) => opened,
        Err(e) => return Ok(Err(e)),
    };
    // On a blocking thread of its own, driven by the runtime's handle: forget and prune can
    // take a while, and the repository's prune future is not `Send` (the CLI drives it with
    // `block_on` too).
    let now = ctx.now();
    let run_policy = policy.clone();
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        handle.block_on(crate::retention::apply(&opened, &run_policy, now))
    });
    let applied = match task.await {
        Ok(Ok(applied)) => applied,
        Ok(Err(e)) => return Ok(Err(e)),
        Err(e) => return Ok(Err(format!("the retention task failed: {e}"))),
    };
    let objects = snapshots_api.list(&ListParams::default()).await?.items;
    let delete =
        crate::retention::snapshot_objects_to_delete(&objects, repo_name, &applied, &policy);
    for name in &delete {
        apply::delete(snapshots_api, name).await?;
    }
    Ok(Ok(format!(
        "RetentionPolicy {}: {} snapshot(s) kept, {} forgotten, {} freed or marked for deletion; {} Snapshot object(s) removed",
        reference.name,
        applied.kept,
        applied.forgotten.len(),
        stowaway_api::size::format(applied.pruned_bytes),
        delete.len()
    )))
}
