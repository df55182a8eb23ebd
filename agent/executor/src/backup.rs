//! Executing a BackupSession: one backup into each repository of the session (of one member,
//! for a BackupBatch), each recorded in the Snapshot object the operator made for it.
//!
//! For each Snapshot not finished yet: mark it Running; open its repository (shared lock,
//! index); run the session's addon on the target with the task parameters (files cache from
//! the latest snapshot of the same target and host); commit the snapshot, tagged with the
//! BackupSession, the session, the invoker (and the member); then record the id and the
//! outcome in the Snapshot. The commit is the last step of the data path, so a failure leaves no snapshot
//! in the repository, only a Failed Snapshot object with the error. A Snapshot already
//! Succeeded or Failed is not redone, and a snapshot an earlier run committed for the session
//! but could not record is recorded instead of backed up again, so running the executor
//! again is harmless.
//!
//! Several repositories are backed up one after the other, each by its own run of the addon
//! (a later version may back up once and copy the snapshot to the others instead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use stowaway_api::backup_configuration::RepositoryInfo;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::{BackupBatch, BackupConfiguration, BackupSession, Snapshot};
use stowaway_operator::invoker::{Invoker, Member, SessionView};
use stowaway_operator::names;
use stowaway_repository::{AddonRef, ComponentKind, SnapshotMeta, Target};
use stowaway_runtime::{Addon, JobLimits, JobSpec};

use crate::cluster::{get, get_opt};
use crate::error::{ExecuteError, Result};
use crate::params::task_params;
use crate::progress::LogProgress;
use crate::report::{
    self, BackupReport, SnapshotOutcome, SnapshotResult, snapshot_failed, snapshot_running,
    snapshot_succeeded,
};
use crate::settings::Settings;
use crate::target::{self, Grants, TargetKind, VOLUME};

/// Runs the backup of the BackupSession `namespace/name` into each of its repositories and
/// records each outcome in its Snapshot object. A BackupBatch's session is executed per
/// `member` (the Job of each member names it); a BackupConfiguration's takes none.
///
/// Returns `Err` only when nothing could be recorded (the session cannot be read, it is not
/// Running, an API call failed); a failed backup is a Failed Snapshot and a
/// [`SnapshotResult::Failed`] in the report. A finished session is left alone.
#[tracing::instrument(skip(client, settings))]
pub async fn execute_backup(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    name: &str,
    member: Option<&str>,
) -> Result<BackupReport> {
    let session: BackupSession = get(client, "BackupSession", namespace, name, "").await?;
    let mut report = BackupReport {
        namespace: namespace.to_owned(),
        session: name.to_owned(),
        snapshots: Vec::new(),
    };
    let status = session.status.clone().unwrap_or_default();
    let session_error = |message: String| ExecuteError::Session {
        kind: "BackupSession",
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    match status.phase {
        Some(BackupSessionPhase::Running) => {}
        Some(
            phase @ (BackupSessionPhase::Succeeded
            | BackupSessionPhase::Failed
            | BackupSessionPhase::Skipped),
        ) => {
            tracing::info!(?phase, "the session has finished: nothing to do");
            report.snapshots = status
                .snapshots
                .iter()
                .map(|s| SnapshotOutcome {
                    name: s.name.clone(),
                    repository: s.repository.clone().unwrap_or_default(),
                    result: SnapshotResult::AlreadyFinished {
                        phase: s.phase.unwrap_or(RunPhase::Failed),
                    },
                })
                .collect();
            return Ok(report);
        }
        None | Some(BackupSessionPhase::Pending) => {
            return Err(session_error(
                "the operator has not started it yet (phase Pending): the executor runs \
                 Running sessions"
                    .into(),
            ));
        }
    }
    let reference = &session.spec.invoker;
    let hint = "the session's invoker was deleted";
    let (config, batch): (Option<BackupConfiguration>, Option<BackupBatch>) =
        match reference.kind.as_str() {
            "BackupConfiguration" => (
                Some(
                    get(
                        client,
                        "BackupConfiguration",
                        namespace,
                        &reference.name,
                        hint,
                    )
                    .await?,
                ),
                None,
            ),
            "BackupBatch" => (
                None,
                Some(get(client, "BackupBatch", namespace, &reference.name, hint).await?),
            ),
            other => {
                return Err(session_error(format!(
                    "invoker kind {other} is not supported (BackupConfiguration or BackupBatch)"
                )));
            }
        };
    let invoker = match (&config, &batch) {
        (Some(config), _) => Invoker::Configuration(config),
        (None, Some(batch)) => Invoker::Batch(batch),
        (None, None) => return Err(ExecuteError::Internal("no invoker".into())),
    };
    let Some(view) = invoker.session(&session.spec.session) else {
        return Err(session_error(format!(
            "{} {} has no session {:?}",
            invoker.kind(),
            reference.name,
            session.spec.session
        )));
    };
    let member = match member {
        Some(wanted) => view
            .members
            .iter()
            .find(|m| m.name == Some(wanted))
            .ok_or_else(|| {
                session_error(format!(
                    "{} {} has no member {wanted:?} in session {:?}",
                    invoker.kind(),
                    reference.name,
                    session.spec.session
                ))
            })?,
        None => match view.members.as_slice() {
            [only] if only.name.is_none() => only,
            _ => {
                return Err(session_error(format!(
                    "the sessions of {} {} are executed per member: name the member",
                    invoker.kind(),
                    reference.name
                )));
            }
        },
    };

    // What every repository's run shares; a problem here fails every Snapshot.
    let started = Instant::now();
    let prepared = prepare(
        client, settings, namespace, &session, invoker, &view, member,
    )
    .await;
    let snapshots: Api<Snapshot> = Api::namespaced(client.clone(), namespace);
    for repo in member.repositories {
        let snapshot_name = names::snapshot_name(&repo.name, name);
        let outcome = |result| SnapshotOutcome {
            name: snapshot_name.clone(),
            repository: repo.name.clone(),
            result,
        };
        let Some(object) =
            get_opt::<Snapshot>(client, "Snapshot", namespace, &snapshot_name).await?
        else {
            let error = format!(
                "Snapshot {namespace}/{snapshot_name} not found: the operator creates it before \
                 the executor starts"
            );
            tracing::error!(snapshot = %snapshot_name, "{error}");
            report
                .snapshots
                .push(outcome(SnapshotResult::Failed { error }));
            continue;
        };
        if let Some(phase @ (RunPhase::Succeeded | RunPhase::Failed)) =
            object.status.as_ref().and_then(|s| s.phase)
        {
            tracing::info!(snapshot = %snapshot_name, ?phase, "already finished; not redone");
            report
                .snapshots
                .push(outcome(SnapshotResult::AlreadyFinished { phase }));
            continue;
        }
        let run_started = Instant::now();
        report::write_snapshot_status(&snapshots, &snapshot_name, &snapshot_running(now())).await?;
        tracing::info!(snapshot = %snapshot_name, repository = %repo.name, "backup started");
        let result = match &prepared {
            Ok(prepared) => backup_one(client, settings, namespace, prepared, repo)
                .await
                .map_err(|e| (e.reason(), e.to_string())),
            Err(e) => Err((e.reason(), e.to_string())),
        };
        let elapsed = run_started.elapsed();
        match result {
            Ok(committed) => {
                let id = committed.id.to_hex();
                report::write_snapshot_id(&snapshots, &snapshot_name, &id).await?;
                let status = snapshot_succeeded(&committed, &session.spec.session, elapsed, now());
                report::write_snapshot_status(&snapshots, &snapshot_name, &status).await?;
                let size = committed.components.iter().map(|c| c.size).sum();
                tracing::info!(snapshot = %snapshot_name, %id, size, seconds = elapsed.as_secs_f64(), "backup succeeded");
                report
                    .snapshots
                    .push(outcome(SnapshotResult::Succeeded { id, size }));
            }
            Err((reason, error)) => {
                // Named after the first volume it was to read (a workload's), else `dump`.
                let component = prepared
                    .as_ref()
                    .ok()
                    .and_then(|p| p.grants.volumes.first())
                    .map_or(VOLUME, |v| v.name.as_str());
                let status = snapshot_failed(
                    component,
                    &session.spec.session,
                    reason,
                    &error,
                    elapsed,
                    now(),
                );
                report::write_snapshot_status(&snapshots, &snapshot_name, &status).await?;
                tracing::error!(snapshot = %snapshot_name, %error, "backup failed");
                report
                    .snapshots
                    .push(outcome(SnapshotResult::Failed { error }));
            }
        }
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        succeeded = report.succeeded(),
        "backup session executed"
    );
    Ok(report)
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// What the runs of one session share.
struct Prepared {
    addon: Arc<Addon>,
    grants: Grants,
    /// What the repository records as the target.
    target: Target,
    tags: Vec<String>,
    session: String,
    hostname: String,
    deadline: Option<jiff::Timestamp>,
}

async fn prepare(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    session: &BackupSession,
    invoker: Invoker<'_>,
    view: &SessionView<'_>,
    member: &Member<'_>,
) -> Result<Prepared> {
    let deadline = session
        .status
        .as_ref()
        .and_then(|s| s.backup_deadline.as_ref())
        .map(|t| t.0);
    if let Some(deadline) = deadline
        && now() >= deadline
    {
        return Err(ExecuteError::DeadlinePassed { deadline });
    }
    let addon_info = member.addon.ok_or_else(|| ExecuteError::Session {
        kind: "BackupSession",
        namespace: namespace.to_owned(),
        name: session.name_any(),
        message: format!(
            "session {:?} of {} {} names no addon{}",
            view.name,
            invoker.kind(),
            invoker.name(),
            member
                .name
                .map(|m| format!(" for member {m}"))
                .unwrap_or_default()
        ),
    })?;
    let params = task_params(&addon_info.tasks)?;
    let target_ref = member.target;
    let addon = settings.load_addon(&addon_info.name)?;
    let kind = target::for_addon(target::kind_of(target_ref, namespace)?, addon.info());
    tracing::info!(addon = %addon.info().label(), target = %target::label(target_ref), "addon loaded");
    let grants = match &kind {
        TargetKind::Volume => target::volume_backup(&settings.target_root, addon.info(), params)?,
        TargetKind::Workload => target::workload_backup(
            &settings.volumes_dir,
            &target::wanted_components(session.annotations()),
            &target::label(target_ref),
            addon.info(),
            params,
        )?,
        TargetKind::Network { app_binding } => {
            target::network(
                client,
                namespace,
                target_ref,
                app_binding.as_ref(),
                addon.info(),
                params,
            )
            .await?
        }
    };
    let target = match target_ref {
        Some(t) => Target {
            kind: t.kind.clone(),
            name: format!(
                "{}/{}",
                crate::cluster::namespace_or(t.namespace.as_ref(), namespace),
                t.name
            ),
        },
        None => Target {
            kind: addon.info().name.clone(),
            name: format!("{namespace}/{}", invoker.name()),
        },
    };
    let mut tags = vec![
        format!("backup-session={}", session.name_any()),
        format!("session={}", view.name),
        format!("invoker={}/{}", invoker.kind(), invoker.name()),
    ];
    if let Some(member) = member.name {
        tags.push(format!("member={member}"));
    }
    Ok(Prepared {
        addon,
        grants,
        target,
        tags,
        session: session.name_any(),
        hostname: settings.hostname.clone(),
        deadline,
    })
}

/// Backs up into the repository of `repo` and commits the snapshot.
async fn backup_one(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    prepared: &Prepared,
    repo: &RepositoryInfo,
) -> Result<stowaway_repository::Snapshot> {
    let opened = crate::repository::open(client, namespace, &repo.name, None).await?;
    let lock = opened
        .repo
        .lock(false, "backup")
        .await
        .map_err(|e| opened.error(e))?;
    let result = backup_locked(settings, prepared, &opened, &lock).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(repository = %repo.name, error = %e, "could not release the lock");
    }
    result
}

async fn backup_locked(
    settings: &Settings,
    prepared: &Prepared,
    opened: &crate::repository::OpenedRepository,
    lock: &stowaway_repository::LockGuard,
) -> Result<stowaway_repository::Snapshot> {
    let repo = &opened.repo;
    repo.load_index().await.map_err(|e| opened.error(e))?;
    let of_target: Vec<stowaway_repository::Snapshot> = repo
        .snapshots()
        .await
        .map_err(|e| opened.error(e))?
        .into_iter()
        .filter(|s| s.target == prepared.target && s.hostname == prepared.hostname)
        .collect();
    // An earlier run committed this session's snapshot but could not record it.
    if let Some(done) = of_target
        .iter()
        .find(|s| s.session.as_deref() == Some(prepared.session.as_str()))
    {
        tracing::info!(id = %done.id.short(), "an earlier run committed this snapshot; recording it");
        return Ok(done.clone());
    }
    let parent = of_target.into_iter().max_by_key(|s| s.time);
    if let Some(parent) = &parent {
        tracing::info!(parent = %parent.id.short(), "files unchanged since the parent snapshot are not read again");
    }
    let backup = Arc::new(
        repo.start_backup(parent.as_ref())
            .map_err(|e| opened.error(e))?,
    );
    let grants = &prepared.grants;
    let spec = JobSpec {
        parameters: grants.parameters.clone(),
        secrets: grants.secrets.clone(),
        volumes: grants.volumes.clone(),
        exec: grants.exec.clone(),
        connect: grants.connect.clone(),
        limits: JobLimits {
            memory_bytes: settings.memory_bytes,
            deadline: remaining(prepared.deadline)?,
            ..JobLimits::default()
        },
        progress: Some(Arc::new(LogProgress::new(format!(
            "backup into Repository {}/{}",
            opened.namespace, opened.name
        )))),
        ..JobSpec::new(prepared.session.clone())
    };
    let addon = prepared.addon.clone();
    let run_backup = backup.clone();
    let output = tokio::task::spawn_blocking(move || addon.backup(spec, run_backup))
        .await
        .map_err(|e| ExecuteError::Internal(format!("the backup task failed: {e}")))??;
    let backup = Arc::try_unwrap(backup).map_err(|_| {
        ExecuteError::Internal("the backup is still in use after the addon finished".into())
    })?;
    let mut components = output.components;
    for component in &mut components {
        if component.kind == ComponentKind::Tree
            && let Some(grant) = grants.volumes.iter().find(|v| v.name == component.name)
        {
            component
                .attributes
                .push(("path".into(), grant.path.display().to_string()));
        }
    }
    let info = prepared.addon.info();
    let meta = SnapshotMeta {
        hostname: Some(prepared.hostname.clone()),
        target: prepared.target.clone(),
        addon: AddonRef {
            name: info.name.clone(),
            version: info.version.clone(),
            digest: format!("sha256:{}", prepared.addon.digest()),
        },
        tags: prepared.tags.clone(),
        session: Some(prepared.session.clone()),
        attributes: output.attributes,
        ..SnapshotMeta::default()
    };
    lock.ensure_held().map_err(|e| opened.error(e))?;
    backup
        .commit(meta, components)
        .await
        .map_err(|e| opened.error(e))
}

/// The time left until `deadline`; an error once it has passed.
pub(crate) fn remaining(deadline: Option<jiff::Timestamp>) -> Result<Option<Duration>> {
    let Some(deadline) = deadline else {
        return Ok(None);
    };
    let left = stowaway_operator::duration::elapsed(now(), deadline);
    if left.is_zero() {
        return Err(ExecuteError::DeadlinePassed { deadline });
    }
    Ok(Some(left))
}
