//! The RestoreSession reconciler's decisions: which snapshot to restore, pausing the target's
//! backups for the time of the restore, handing the work to an executor, the deadline and the
//! outcome per component.
//!
//! Backups of the target are paused before the restore starts (and only once no backup of it
//! runs), so that a scheduled backup never reads a half-restored target; they are resumed when
//! the restore ends, whatever its outcome. Only configurations this restore paused are resumed.
//!
//! A volume restore into a workload takes the safe path of [`crate::volume_restore`]: the
//! workload is scaled down around the restore Job (or, `InPlace`, left running).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::common::{HookInfo, ResourceFoundStatus, RunPhase, TypedObjectReference};
use stowaway_api::restore_session::{ComponentRestoreStatus, RestorePhase, RestoreSessionStatus};
use stowaway_api::{BackupConfiguration, BackupSession, RestoreSession, Snapshot};

use crate::backup_configuration::is_active;
use crate::conditions;
use crate::duration::{deadline, elapsed, format_duration, until};
use crate::events::Note;
use crate::executor::{self, Executor, JobState};
use crate::hooks::{self, Gate, Progress, Stage};
use crate::volume_restore::{self, BeforeJob, Scale, Workload};

/// Condition: the spec and its references are usable.
pub const VALIDATION_PASSED: &str = "ValidationPassed";
/// Condition: the executor (sidecar or Job) has the work.
pub const EXECUTOR_ENSURED: &str = "RestoreExecutorEnsured";
/// Condition: the restore ended before its components did.
pub const RESTORE_INCOMPLETE: &str = "RestoreIncomplete";
/// Condition: the backups paused for the restore are running again.
pub const BACKUPS_RESUMED: &str = "BackupsResumed";

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The restore.
    pub session: &'a RestoreSession,
    /// Snapshots of the data source's repository (or the named one).
    pub snapshots: &'a [Snapshot],
    /// BackupConfigurations whose target is the restore's target.
    pub backups: &'a [BackupConfiguration],
    /// BackupSessions of those configurations.
    pub backup_sessions: &'a [BackupSession],
    /// Whether the target exists (`None`: not checked).
    pub target_found: Option<bool>,
    /// Who runs it.
    pub executor: Executor,
    /// A volume restore into a workload (`None` for any other restore).
    pub volume: Option<VolumeObserved<'a>>,
    /// The time of this decision.
    pub now: Timestamp,
}

/// What [`decide`] sees of the workload of a volume restore.
#[derive(Clone, Copy, Debug)]
pub struct VolumeObserved<'a> {
    /// The workload, when it exists.
    pub workload: Option<&'a Workload>,
    /// Whether a pod of the restore Job is still running (a deleted Job's pod may be).
    pub job_pod_running: bool,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status.
    pub status: RestoreSessionStatus,
    /// BackupConfigurations to pause (`spec.paused: true`).
    pub pause: Vec<String>,
    /// BackupConfigurations to resume (`spec.paused: false`).
    pub resume: Vec<String>,
    /// Create the executor Job.
    pub create_job: bool,
    /// Delete the executor Job.
    pub delete_job: bool,
    /// Scale the workload of a volume restore (a merge patch of the workload, before the
    /// status is written).
    pub scale: Option<Scale>,
    /// The hook to run now (stage, index in `spec.hooks`); the status is written with its
    /// outcome.
    pub run_hook: Option<(Stage, usize)>,
    /// Events to record on the restore.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Decides what a RestoreSession needs now.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let session = observed.session;
    let now = observed.now;
    let mut status = session.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    let created = session
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    status.target_found = observed.target_found;

    match status.phase {
        Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid) => {
            resume(&mut status, &mut plan, now);
            plan.status = status;
            return plan;
        }
        Some(RestorePhase::Running) => {}
        None | Some(RestorePhase::Pending | RestorePhase::Unknown) => {
            // Resolve the snapshot and the components.
            let snapshot = match resolve_snapshot(session, observed.snapshots) {
                Ok(s) => s,
                Err(message) => {
                    invalid(&mut status, &mut plan, now, "SnapshotNotFound", message);
                    return plan;
                }
            };
            let available: Vec<&String> = snapshot
                .status
                .as_ref()
                .map(|s| s.components.keys().collect())
                .unwrap_or_default();
            let wanted = &session.spec.data_source.components;
            let components: Vec<String> = if wanted.is_empty() {
                available.iter().map(|c| (*c).clone()).collect()
            } else {
                wanted.clone()
            };
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|c| !available.contains(c))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let message = format!(
                    "spec.dataSource.components: snapshot {} has no component {} (it has: {})",
                    snapshot.name_any(),
                    missing.join(", "),
                    available
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                invalid(&mut status, &mut plan, now, "ComponentNotFound", message);
                return plan;
            }
            if observed.target_found == Some(false)
                && let Some(target) = &session.spec.target
            {
                let message = format!("target {} {} not found", target.kind, target.name);
                invalid(&mut status, &mut plan, now, "TargetNotFound", message);
                return plan;
            }
            let volume_mode = match &observed.volume {
                Some(volume) => {
                    match volume_restore::validate(session, volume.workload, &components) {
                        Ok(mode) => Some(mode),
                        Err((reason, message)) => {
                            invalid(&mut status, &mut plan, now, reason, message);
                            return plan;
                        }
                    }
                }
                None => None,
            };
            conditions::set(
                &mut status.conditions,
                VALIDATION_PASSED,
                true,
                "ResourceValidationPassed",
                "",
                now,
            );
            status.dependencies = vec![ResourceFoundStatus {
                reference: TypedObjectReference {
                    api_group: Some(stowaway_api::STORAGE_GROUP.into()),
                    kind: "Snapshot".into(),
                    namespace: snapshot.namespace(),
                    name: snapshot.name_any(),
                },
                found: Some(true),
            }];

            // Pause the target's backups, then wait for a running one to end.
            for config in observed.backups {
                let name = config.name_any();
                let already = status.paused_backups.iter().any(|p| p.name == name);
                if !config.spec.paused.unwrap_or(false) && !already {
                    plan.pause.push(name.clone());
                }
                if !already && !config.spec.paused.unwrap_or(false) {
                    status.paused_backups.push(TypedObjectReference {
                        api_group: Some(stowaway_api::CORE_GROUP.into()),
                        kind: "BackupConfiguration".into(),
                        namespace: config.namespace(),
                        name,
                    });
                }
            }
            if let Some(wait) =
                wait_for_backup(&mut status, observed.backup_sessions, "target", now)
            {
                plan.requeue_after = Some(wait);
                plan.status = status;
                return plan;
            }
            // Another volume restore holds the workload scaled down: wait for it to end.
            if let Some(workload) = observed.volume.and_then(|v| v.workload)
                && let Some(other) = volume_restore::held_by_other(workload, &session.name_any())
            {
                status.phase = Some(RestorePhase::Pending);
                conditions::set(
                    &mut status.conditions,
                    "WaitingForRestore",
                    true,
                    "RestoreRunning",
                    format!(
                        "waiting for RestoreSession {other}, which scaled {} down, to end",
                        workload.label()
                    ),
                    now,
                );
                plan.requeue_after = Some(volume_restore::POLL);
                plan.status = status;
                return plan;
            }

            status.phase = Some(RestorePhase::Running);
            if let Some(mode) = volume_mode {
                volume_restore::start(&mut status, mode, now);
            }
            status.total_components = i32::try_from(components.len()).ok();
            for component in components {
                status
                    .components
                    .entry(component)
                    .or_insert_with(|| ComponentRestoreStatus {
                        phase: Some(RestorePhase::Pending),
                        ..ComponentRestoreStatus::default()
                    });
            }
            status.restore_deadline =
                deadline(created, session.spec.restore_timeout.as_deref()).map(Time);
            plan.events.push(Note::normal(
                "RestoreStarted",
                format!("restoring snapshot {}", snapshot.name_any()),
            ));
        }
    }

    // Running: pre-restore hooks first, before anything is written to the target.
    let (pre_hooks, _) = hook_lists(session);
    if matches!(observed.executor, Executor::Sidecar | Executor::Job(None)) {
        match hooks::pre_gate(
            pre_hooks,
            status.hooks.as_ref(),
            "pre-restore",
            "nothing was restored",
        ) {
            Gate::Run(i) => {
                plan.run_hook = Some((Stage::Pre, i));
                plan.status = status;
                return plan;
            }
            Gate::Stop(message) => {
                stop(
                    &mut status,
                    observed,
                    &mut plan,
                    "PreRestoreHookFailed",
                    message,
                );
                return plan;
            }
            Gate::Go => {}
        }
    }
    let phases: Vec<RestorePhase> = status
        .components
        .values()
        .map(|c| c.phase.unwrap_or(RestorePhase::Pending))
        .collect();
    let finished = !phases.is_empty()
        && phases
            .iter()
            .all(|p| matches!(p, RestorePhase::Succeeded | RestorePhase::Failed));
    // A volume restore: the workload is scaled down and its pods gone before the Job.
    if let Some(volume) = &observed.volume
        && !finished
        && observed.executor == Executor::Job(None)
    {
        let deadline = status.restore_deadline.as_ref().map(|t| t.0);
        match volume_restore::before_job(
            &mut status,
            volume.workload,
            &session.name_any(),
            deadline,
            now,
            &mut plan.events,
        ) {
            BeforeJob::Go => {}
            BeforeJob::Scale(scale) => {
                plan.scale = Some(scale);
                plan.requeue_after = Some(volume_restore::POLL);
                plan.status = status;
                return plan;
            }
            BeforeJob::Wait(wait) => {
                plan.requeue_after = Some(wait);
                plan.status = status;
                return plan;
            }
            BeforeJob::Fail { reason, message } => {
                stop(&mut status, observed, &mut plan, reason, message);
                return plan;
            }
        }
    }
    // Finished components need no executor (a stopped restore's Job is not made again).
    if !finished {
        plan.create_job = executor::ensure(
            &observed.executor,
            &mut status.conditions,
            EXECUTOR_ENSURED,
            "restore",
            now,
        );
    }
    if finished {
        let failed: Vec<String> = status
            .components
            .iter()
            .filter(|(_, c)| c.phase == Some(RestorePhase::Failed))
            .map(|(name, c)| match &c.error {
                Some(e) => format!("{name}: {e}"),
                None => format!("{name} failed"),
            })
            .collect();
        let failure = (!failed.is_empty()).then(|| ("RestoreFailed", failed.join("; ")));
        conclude(&mut status, observed, &mut plan, failure);
        return plan;
    }
    let stop_reason = if let Some(deadline) = status.restore_deadline.as_ref().map(|t| t.0)
        && now >= deadline
    {
        Some((
            "RestoreTimedOut",
            format!(
                "restoreTimeout {} passed before the restore finished",
                session.spec.restore_timeout.as_deref().unwrap_or("?")
            ),
        ))
    } else {
        match &observed.executor {
            Executor::Job(Some(JobState::Failed(why))) => Some((
                "RestoreExecutorTerminatedBeforeCompletion",
                format!("the restore Job failed before every component finished: {why}"),
            )),
            Executor::Job(Some(JobState::Succeeded)) => Some((
                "RestoreExecutorTerminatedBeforeCompletion",
                "the restore Job completed without finishing every component".to_owned(),
            )),
            _ => None,
        }
    };
    if let Some((reason, message)) = stop_reason {
        stop(&mut status, observed, &mut plan, reason, message);
        return plan;
    }
    if let Some(deadline) = status.restore_deadline.as_ref().map(|t| t.0) {
        plan.requeue_after = Some(until(now, deadline));
    }
    plan.status = status;
    plan
}

/// While a backup of the target (`whose`: `target`, `batch`) runs, the restore waits, Pending:
/// the time to look again.
pub(crate) fn wait_for_backup(
    status: &mut RestoreSessionStatus,
    backup_sessions: &[BackupSession],
    whose: &str,
    now: Timestamp,
) -> Option<Duration> {
    let busy = backup_sessions.iter().find(|s| is_active(s))?;
    status.phase = Some(RestorePhase::Pending);
    conditions::set(
        &mut status.conditions,
        "WaitingForBackup",
        true,
        "BackupRunning",
        format!(
            "waiting for BackupSession {} of the {whose} to end",
            busy.name_any()
        ),
        now,
    );
    Some(Duration::from_secs(5))
}

/// The pre- and post-restore hooks of the session.
pub fn hook_lists(session: &RestoreSession) -> (&[HookInfo], &[HookInfo]) {
    session.spec.hooks.as_ref().map_or((&[][..], &[][..]), |h| {
        (h.pre_restore.as_slice(), h.post_restore.as_slice())
    })
}

/// Ends a running restore early: its unfinished components fail with `message`, a running
/// Job is stopped, then the restore concludes.
fn stop(
    status: &mut RestoreSessionStatus,
    observed: &Observed<'_>,
    plan: &mut Plan,
    reason: &'static str,
    message: String,
) {
    if !conditions::is_true(&status.conditions, RESTORE_INCOMPLETE) {
        conditions::set(
            &mut status.conditions,
            RESTORE_INCOMPLETE,
            true,
            reason,
            &message,
            observed.now,
        );
    }
    for component in status.components.values_mut() {
        if !matches!(
            component.phase,
            Some(RestorePhase::Succeeded | RestorePhase::Failed)
        ) {
            component.phase = Some(RestorePhase::Failed);
            component.error = Some(message.clone());
        }
    }
    plan.delete_job = matches!(observed.executor, Executor::Job(Some(JobState::Active)));
    conclude(status, observed, plan, Some((reason, message)));
}

/// The outcome is known: runs the matching post-restore hooks one by one (the restore stays
/// Running meanwhile), then sets the final phase, records the Event and resumes the backups.
fn conclude(
    status: &mut RestoreSessionStatus,
    observed: &Observed<'_>,
    plan: &mut Plan,
    failure: Option<(&'static str, String)>,
) {
    // A volume restore: the workload is scaled back before the postRestore hooks.
    if let Some(volume) = &observed.volume {
        let (_, post_hooks) = hook_lists(observed.session);
        let hooks_ahead = matches!(
            hooks::post(post_hooks, status.hooks.as_ref(), failure.is_none()),
            Progress::Run(_)
        ) && status
            .hooks
            .as_ref()
            .is_none_or(|h| h.post_hooks.is_empty());
        let job_running =
            volume.job_pod_running || observed.executor == Executor::Job(Some(JobState::Active));
        let after = volume_restore::after_restore(
            status,
            volume.workload,
            &observed.session.name_any(),
            job_running,
            hooks_ahead,
            observed.now,
            &mut plan.events,
        );
        plan.scale = after.scale;
        if let Some(wait) = after.wait {
            plan.requeue_after = Some(wait);
            plan.status = status.clone();
            return;
        }
    }
    match post_hooks_then_outcome(
        status,
        observed.session,
        observed.now,
        &mut plan.events,
        failure,
    ) {
        Some(hook) => plan.run_hook = Some(hook),
        None => resume(status, plan, observed.now),
    }
    plan.status = status.clone();
}

/// After the outcome of a restore: the next post-restore hook to run (`Some`, the restore
/// stays Running), or, once every matching hook ran, the final phase, `duration` and Event
/// (`None`). A failed post-hook fails the restore.
pub(crate) fn post_hooks_then_outcome(
    status: &mut RestoreSessionStatus,
    session: &RestoreSession,
    now: Timestamp,
    events: &mut Vec<Note>,
    failure: Option<(&'static str, String)>,
) -> Option<(Stage, usize)> {
    let succeeded = failure.is_none();
    let (_, post_hooks) = hook_lists(session);
    if !post_hooks.is_empty() {
        let mut hook_status = status.hooks.take().unwrap_or_default();
        hooks::mark_skipped(post_hooks, &mut hook_status, succeeded);
        status.hooks = Some(hook_status);
    }
    let failed_hooks = match hooks::post(post_hooks, status.hooks.as_ref(), succeeded) {
        Progress::Run(i) => return Some((Stage::Post, i)),
        Progress::Done { failed } => failed,
    };
    let created = session
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    status.duration = Some(format_duration(elapsed(created, now)));
    let hook_failure = (!failed_hooks.is_empty()).then(|| {
        (
            "PostRestoreHookFailed",
            format!("post-restore hook {} failed", failed_hooks.join(", ")),
        )
    });
    match failure.or(hook_failure) {
        None => {
            status.phase = Some(RestorePhase::Succeeded);
            events.push(Note::normal(
                "RestoreSucceeded",
                format!(
                    "restore succeeded in {}",
                    status.duration.as_deref().unwrap_or("?")
                ),
            ));
        }
        Some((reason, message)) => {
            status.phase = Some(RestorePhase::Failed);
            events.push(Note::warning(reason, message));
            if !failed_hooks.is_empty() && reason != "PostRestoreHookFailed" {
                events.push(Note::warning(
                    "PostRestoreHookFailed",
                    format!("post-restore hook {} failed", failed_hooks.join(", ")),
                ));
            }
        }
    }
    None
}

/// The snapshot the data source names: a name, `latest`, or the newest at or before the
/// point in time; only Succeeded snapshots of the data source's repository count.
pub fn resolve_snapshot<'a>(
    session: &RestoreSession,
    snapshots: &'a [Snapshot],
) -> Result<&'a Snapshot, String> {
    let source = &session.spec.data_source;
    let succeeded =
        |s: &&Snapshot| s.status.as_ref().and_then(|s| s.phase) == Some(RunPhase::Succeeded);
    let of_repository = |s: &&Snapshot| {
        source
            .repository
            .as_deref()
            .is_none_or(|r| s.spec.repository == r)
    };
    let time = |s: &Snapshot| {
        s.status
            .as_ref()
            .and_then(|st| st.snapshot_time.as_ref())
            .map(|t| t.0)
            .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let repository = source.repository.as_deref().unwrap_or("?");
    if let Some(pitr) = &source.pitr {
        let Some(target) = pitr.target_time.as_ref().map(|t| t.0) else {
            return Err("spec.dataSource.pitr.targetTime: required".to_owned());
        };
        let exclusive = pitr.exclusive.unwrap_or(false);
        return snapshots
            .iter()
            .filter(succeeded)
            .filter(of_repository)
            .filter(|s| {
                if exclusive {
                    time(s) < target
                } else {
                    time(s) <= target
                }
            })
            .max_by_key(|s| (time(s), s.name_any()))
            .ok_or_else(|| {
                format!("no succeeded snapshot of repository {repository} at or before {target}")
            });
    }
    match source.snapshot.as_deref() {
        None | Some("") => Err("spec.dataSource.snapshot: required".to_owned()),
        Some("latest") => snapshots
            .iter()
            .filter(succeeded)
            .filter(of_repository)
            .max_by_key(|s| (time(s), s.name_any()))
            .ok_or_else(|| format!("repository {repository} has no succeeded snapshot")),
        Some(name) => match snapshots.iter().find(|s| s.name_any() == name) {
            None => Err(format!("snapshot {name} not found")),
            Some(s) if !succeeded(&s) => Err(format!(
                "snapshot {name} is not Succeeded (phase {:?}): it holds no complete backup",
                s.status.as_ref().and_then(|s| s.phase)
            )),
            Some(s) => Ok(s),
        },
    }
}

fn invalid(
    status: &mut RestoreSessionStatus,
    plan: &mut Plan,
    now: Timestamp,
    reason: &str,
    message: String,
) {
    status.phase = Some(RestorePhase::Invalid);
    conditions::set(
        &mut status.conditions,
        VALIDATION_PASSED,
        false,
        reason,
        &message,
        now,
    );
    plan.events.push(Note::warning(reason, message));
    resume(status, plan, now);
    plan.status = status.clone();
}

/// Resumes the backups this restore paused (once).
fn resume(status: &mut RestoreSessionStatus, plan: &mut Plan, now: Timestamp) {
    if status.paused_backups.is_empty() || conditions::is_true(&status.conditions, BACKUPS_RESUMED)
    {
        return;
    }
    plan.resume = status
        .paused_backups
        .iter()
        .map(|p| p.name.clone())
        .collect();
    conditions::set(
        &mut status.conditions,
        BACKUPS_RESUMED,
        true,
        "BackupsResumed",
        format!("resumed {}", plan.resume.join(", ")),
        now,
    );
}

#[cfg(test)]
mod tests;
