//! The BackupSession reconciler's decisions: whether a run may start, the Snapshots it
//! writes, handing the work to an executor, the deadline, the outcome and the retry.
//!
//! The executor (the target's sidecar, or a Job running `stowaway`) writes each Snapshot's
//! phase; this reconciler only reads them. A Snapshot is Succeeded only once its data and its
//! snapshot record are in the repository, so a session is never Succeeded with half its data.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use stowaway_api::backup_session::{
    BackupSessionPhase, BackupSessionStatus, RetentionPolicyApplyPhase, RetentionPolicyApplyStatus,
    SnapshotStatus,
};
use stowaway_api::common::{DeletionPolicy, HookInfo, RunPhase};
use stowaway_api::snapshot::SnapshotSpec;
use stowaway_api::{BackupSession, Snapshot};

use crate::backup_configuration::{is_active, managed_labels};
use crate::conditions;
use crate::duration::{deadline, elapsed, format_duration, parse_duration, until};
use crate::events::Note;
use crate::executor::{self, Executor, JobState};
use crate::hooks::{self, Gate, Progress, Stage};
use crate::invoker::{Invoker, Member};
use crate::names;
use stowaway_api::size;

/// Condition: the run was skipped.
pub const BACKUP_SKIPPED: &str = "BackupSkipped";
/// Condition: one Snapshot per repository exists.
pub const SNAPSHOTS_ENSURED: &str = "SnapshotsEnsured";
/// Condition: the executor (sidecar or Job) has the work.
pub const EXECUTOR_ENSURED: &str = "BackupExecutorEnsured";
/// Condition: the run ended before its snapshots did (deadline, executor failure).
pub const BACKUP_INCOMPLETE: &str = "BackupIncomplete";

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The session.
    pub session: &'a BackupSession,
    /// Its invoker (a BackupConfiguration or BackupBatch), if it exists.
    pub invoker: Option<Invoker<'a>>,
    /// Other BackupSessions of the same invoker.
    pub siblings: &'a [BackupSession],
    /// Snapshots that exist for this session.
    pub snapshots: &'a [Snapshot],
    /// Who runs it: one executor per member of the session (one for a configuration), in
    /// [`crate::invoker::SessionView::members`] order.
    pub executors: Vec<Executor>,
    /// The time of this decision.
    pub now: Timestamp,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status.
    pub status: BackupSessionStatus,
    /// Snapshots to create.
    pub create_snapshots: Vec<Snapshot>,
    /// Create the executor Jobs of these members (indices into the session's members).
    pub create_jobs: Vec<usize>,
    /// Delete the executor Jobs of these members (the run ended without them).
    pub delete_jobs: Vec<usize>,
    /// Snapshots to mark Failed, with the reason (the executor cannot any more).
    pub fail_snapshots: Vec<(String, String)>,
    /// The retry to create.
    pub create_retry: Option<BackupSession>,
    /// Indices of `status.retentionPolicy` entries to apply now (forget, prune); the status
    /// is written with their outcome.
    pub apply_retention: Vec<usize>,
    /// The hook to run now (stage, index in the session's list); the status is written
    /// with its outcome.
    pub run_hook: Option<(Stage, usize)>,
    /// Events to record on the session.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Decides what a BackupSession needs now.
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

    match status.phase {
        Some(BackupSessionPhase::Succeeded) => {
            plan.apply_retention = pending_retention(&status);
            plan.status = status;
            return plan;
        }
        Some(BackupSessionPhase::Skipped) => {
            plan.status = status;
            return plan;
        }
        Some(BackupSessionPhase::Failed) => {
            retry(observed, &mut status, &mut plan);
            plan.status = status;
            return plan;
        }
        None => {
            if let Err((reason, message)) = may_start(observed, created) {
                if reason.is_empty() {
                    // An earlier session of the invoker goes first; look again soon.
                    plan.requeue_after = Some(Duration::from_secs(2));
                    plan.status = status;
                    return plan;
                }
                conditions::set(
                    &mut status.conditions,
                    BACKUP_SKIPPED,
                    true,
                    reason,
                    &message,
                    now,
                );
                status.phase = Some(BackupSessionPhase::Skipped);
                plan.events.push(Note::warning(reason, message));
                plan.status = status;
                return plan;
            }
            status.phase = Some(BackupSessionPhase::Running);
            status.backup_deadline =
                deadline(created, session.spec.backup_timeout.as_deref()).map(Time);
            plan.events
                .push(Note::normal("BackupStarted", "backup started"));
        }
        Some(BackupSessionPhase::Pending | BackupSessionPhase::Running) => {}
    }

    // Running: the snapshots, one per repository of the session.
    let Some(invoker) = observed.invoker else {
        fail(
            &mut status,
            &mut plan,
            observed,
            "InvokerNotFound",
            format!(
                "{} {} was deleted while the backup ran",
                session.spec.invoker.kind, session.spec.invoker.name
            ),
        );
        plan.status = status;
        return plan;
    };
    let members = invoker
        .session(&session.spec.session)
        .map(|s| s.members)
        .unwrap_or_default();
    // (snapshot name, repository, member index, the Snapshot if it exists)
    let mut snapshots = Vec::new();
    for (index, member) in members.iter().enumerate() {
        for repo in member.repositories {
            let name = names::snapshot_name(&repo.name, &session.name_any());
            let existing = observed.snapshots.iter().find(|s| s.name_any() == name);
            if existing.is_none() {
                plan.create_snapshots
                    .push(new_snapshot(invoker, member, session, &repo.name, &name));
            }
            snapshots.push((name, repo.name.as_str(), index, existing));
        }
    }
    status.total_snapshots = i32::try_from(snapshots.len()).ok();
    conditions::set(
        &mut status.conditions,
        SNAPSHOTS_ENSURED,
        true,
        "SnapshotsEnsured",
        format!("{} snapshot(s)", snapshots.len()),
        now,
    );
    status.snapshots = snapshots
        .iter()
        .map(|(name, repo, member, existing)| SnapshotStatus {
            name: name.clone(),
            phase: Some(
                existing
                    .and_then(|s| s.status.as_ref())
                    .and_then(|s| s.phase)
                    .unwrap_or(RunPhase::Pending),
            ),
            app_ref: members.get(*member).and_then(|m| m.target.cloned()),
            repository: Some((*repo).to_owned()),
            executor: observed.executors.get(*member).map(|e| match e {
                Executor::Sidecar => "Sidecar".to_owned(),
                Executor::Job(_) => "Job".to_owned(),
            }),
        })
        .collect();

    // Pre-hooks, before any data is read.
    let (pre_hooks, _) = hook_lists(observed);
    if observed
        .executors
        .iter()
        .all(|e| matches!(e, Executor::Sidecar | Executor::Job(None)))
    {
        match hooks::pre_gate(
            pre_hooks,
            status.hooks.as_ref(),
            "pre-backup",
            "no data was backed up",
        ) {
            Gate::Run(i) => {
                plan.run_hook = Some((Stage::Pre, i));
                plan.status = status;
                return plan;
            }
            Gate::Stop(message) => {
                fail(
                    &mut status,
                    &mut plan,
                    observed,
                    "PreBackupHookFailed",
                    message,
                );
                plan.status = status;
                return plan;
            }
            Gate::Go => {}
        }
    }

    // The executors.
    plan.create_jobs = executor::ensure_all(
        &observed.executors,
        &members.iter().map(|m| m.name).collect::<Vec<_>>(),
        &mut status.conditions,
        EXECUTOR_ENSURED,
        "backup",
        now,
    );

    // Outcome.
    let phases: Vec<RunPhase> = status
        .snapshots
        .iter()
        .map(|s| s.phase.unwrap_or(RunPhase::Pending))
        .collect();
    let finished = phases
        .iter()
        .all(|p| matches!(p, RunPhase::Succeeded | RunPhase::Failed));
    status.size = size::sum(snapshots.iter().filter_map(|(_, _, _, s)| {
        s.and_then(|s| s.status.as_ref())
            .and_then(|s| s.size.as_deref())
    }));
    if finished && !phases.is_empty() {
        let failed: Vec<String> = snapshots
            .iter()
            .filter(|(_, _, _, s)| {
                s.and_then(|s| s.status.as_ref()).and_then(|s| s.phase) == Some(RunPhase::Failed)
            })
            .map(|(name, _, _, s)| match s.and_then(snapshot_error) {
                Some(e) => format!("snapshot {name}: {e}"),
                None => format!("snapshot {name} failed"),
            })
            .collect();
        let failure = (!failed.is_empty()).then(|| ("BackupFailed", failed.join("; ")));
        conclude(observed, &mut status, &mut plan, failure);
        plan.status = status;
        return plan;
    }
    if let Some(deadline) = status.backup_deadline.as_ref().map(|t| t.0) {
        if now >= deadline {
            let message = format!(
                "backupTimeout {} passed before the backup finished",
                session.spec.backup_timeout.as_deref().unwrap_or("?")
            );
            fail(&mut status, &mut plan, observed, "BackupTimedOut", message);
            plan.status = status;
            return plan;
        }
        plan.requeue_after = Some(until(now, deadline));
    }
    // A member's Job that ended while its snapshots had not.
    for (index, executor) in observed.executors.iter().enumerate() {
        let unfinished = status
            .snapshots
            .iter()
            .zip(&snapshots)
            .any(|(s, (_, _, m, _))| {
                *m == index && !matches!(s.phase, Some(RunPhase::Succeeded | RunPhase::Failed))
            });
        let whose = match members.get(index).and_then(|m| m.name) {
            Some(member) => format!("the backup Job of member {member}"),
            None => "the backup Job".to_owned(),
        };
        let message = match executor {
            Executor::Job(Some(JobState::Failed(why))) if unfinished => {
                format!("{whose} failed before every snapshot finished: {why}")
            }
            Executor::Job(Some(JobState::Succeeded)) if unfinished => {
                format!("{whose} completed without finishing every snapshot")
            }
            _ => continue,
        };
        fail(
            &mut status,
            &mut plan,
            observed,
            "BackupExecutorFailed",
            message,
        );
        plan.status = status;
        return plan;
    }
    plan.status = status;
    plan
}

/// `Ok` when the session may start; otherwise the skip reason and message, or an empty
/// reason when it must wait for an earlier session of the same invoker to start first.
fn may_start(observed: &Observed<'_>, created: Timestamp) -> Result<(), (&'static str, String)> {
    let session = observed.session;
    let Some(invoker) = observed.invoker else {
        return Err((
            "InvokerNotFound",
            format!(
                "{} {} not found",
                session.spec.invoker.kind, session.spec.invoker.name
            ),
        ));
    };
    if !invoker.is_ready() {
        return Err((
            "InvokerNotReady",
            format!(
                "{} {} is not Ready{}",
                session.spec.invoker.kind,
                session.spec.invoker.name,
                invoker
                    .status()
                    .and_then(|s| s
                        .conditions
                        .iter()
                        .find(|c| c.status != stowaway_api::common::ConditionStatus::True))
                    .and_then(|c| c.message.as_deref())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if invoker.session(&session.spec.session).is_none() {
        return Err((
            "SessionNotFound",
            format!(
                "{} {} has no session {:?}",
                session.spec.invoker.kind, session.spec.invoker.name, session.spec.session
            ),
        ));
    }
    let me = (created, session.name_any());
    for sibling in observed.siblings {
        if sibling.name_any() == session.name_any() || !is_active(sibling) {
            continue;
        }
        let started = sibling.status.as_ref().and_then(|s| s.phase).is_some();
        let sibling_key = (
            sibling
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            sibling.name_any(),
        );
        if started {
            return Err((
                "AnotherBackupRunning",
                format!(
                    "BackupSession {} of the same {} is still running",
                    sibling.name_any(),
                    session.spec.invoker.kind
                ),
            ));
        }
        if sibling_key < me {
            return Err(("", String::new()));
        }
    }
    Ok(())
}

/// Ends a running session as Failed: marks its unfinished snapshots Failed, stops a Job, then
/// concludes (post-hooks, final phase, retry).
fn fail(
    status: &mut BackupSessionStatus,
    plan: &mut Plan,
    observed: &Observed<'_>,
    reason: &'static str,
    message: String,
) {
    let now = observed.now;
    conditions::set(
        &mut status.conditions,
        BACKUP_INCOMPLETE,
        true,
        reason,
        &message,
        now,
    );
    for snapshot in &mut status.snapshots {
        if !matches!(snapshot.phase, Some(RunPhase::Succeeded | RunPhase::Failed)) {
            snapshot.phase = Some(RunPhase::Failed);
            plan.fail_snapshots
                .push((snapshot.name.clone(), message.clone()));
        }
    }
    plan.delete_jobs = observed
        .executors
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Executor::Job(Some(JobState::Active))))
        .map(|(i, _)| i)
        .collect();
    conclude(observed, status, plan, Some((reason, message)));
}

/// The outcome is known: runs the matching post-hooks one by one (the session stays Running
/// meanwhile), then sets the final phase, records the Event and creates the retry.
fn conclude(
    observed: &Observed<'_>,
    status: &mut BackupSessionStatus,
    plan: &mut Plan,
    failure: Option<(&'static str, String)>,
) {
    let succeeded = failure.is_none();
    let (_, post_hooks) = hook_lists(observed);
    if !post_hooks.is_empty() {
        let mut hook_status = status.hooks.take().unwrap_or_default();
        hooks::mark_skipped(post_hooks, &mut hook_status, succeeded);
        status.hooks = Some(hook_status);
    }
    let failed_hooks = match hooks::post(post_hooks, status.hooks.as_ref(), succeeded) {
        Progress::Run(i) => {
            plan.run_hook = Some((Stage::Post, i));
            status.phase = Some(BackupSessionPhase::Running);
            return;
        }
        Progress::Done { failed } => failed,
    };
    let created = observed
        .session
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(observed.now, |t| t.0);
    status.duration = Some(format_duration(elapsed(created, observed.now)));
    let failure = failure.or_else(|| {
        (!failed_hooks.is_empty()).then(|| {
            (
                "PostBackupHookFailed",
                format!("post-backup hook {} failed", failed_hooks.join(", ")),
            )
        })
    });
    match failure {
        None => {
            status.phase = Some(BackupSessionPhase::Succeeded);
            status.retention_policy = retention_entries(observed);
            plan.apply_retention = pending_retention(status);
            plan.events.push(Note::normal(
                "BackupSucceeded",
                format!(
                    "backup succeeded in {}",
                    status.duration.as_deref().unwrap_or("?")
                ),
            ));
        }
        Some((reason, message)) => {
            status.phase = Some(BackupSessionPhase::Failed);
            plan.events.push(Note::warning(reason, message));
            if !failed_hooks.is_empty() && reason != "PostBackupHookFailed" {
                plan.events.push(Note::warning(
                    "PostBackupHookFailed",
                    format!("post-backup hook {} failed", failed_hooks.join(", ")),
                ));
            }
            retry(observed, status, plan);
        }
    }
}

/// One Pending entry per repository of the session whose backend names a RetentionPolicy.
fn retention_entries(observed: &Observed<'_>) -> Vec<RetentionPolicyApplyStatus> {
    let Some(invoker) = observed.invoker else {
        return Vec::new();
    };
    let Some(spec) = invoker.session(&observed.session.spec.session) else {
        return Vec::new();
    };
    spec.repositories()
        .filter_map(|(_, repo)| {
            let backend = invoker.backend(repo.backend.as_deref())?;
            let mut policy = backend.retention_policy.clone()?;
            if policy.namespace.is_none() {
                policy.namespace = invoker.namespace();
            }
            Some(RetentionPolicyApplyStatus {
                r#ref: Some(policy),
                repository: Some(repo.name.clone()),
                phase: Some(RetentionPolicyApplyPhase::Pending),
                error: None,
            })
        })
        .collect()
}

fn pending_retention(status: &BackupSessionStatus) -> Vec<usize> {
    status
        .retention_policy
        .iter()
        .enumerate()
        .filter(|(_, r)| r.phase == Some(RetentionPolicyApplyPhase::Pending))
        .map(|(i, _)| i)
        .collect()
}

/// The pre- and post-backup hooks of the session (empty without an invoker).
pub fn hook_lists<'a>(observed: &Observed<'a>) -> (&'a [HookInfo], &'a [HookInfo]) {
    observed
        .invoker
        .and_then(|i| i.session(&observed.session.spec.session))
        .and_then(|s| s.hooks)
        .map_or((&[][..], &[][..]), |h| {
            (h.pre_backup.as_slice(), h.post_backup.as_slice())
        })
}

/// Creates the retry of a failed session when retries are left and its delay has passed.
fn retry(observed: &Observed<'_>, status: &mut BackupSessionStatus, plan: &mut Plan) {
    let session = observed.session;
    let left = session.spec.retry_left.unwrap_or(0);
    if left <= 0 || status.retried == Some(true) {
        return;
    }
    let Some(invoker) = observed.invoker else {
        return;
    };
    let Some(spec) = invoker.session(&session.spec.session) else {
        return;
    };
    let delay = spec
        .retry_config
        .and_then(|r| r.delay.as_deref())
        .and_then(|d| parse_duration(d).ok())
        .unwrap_or_default();
    let at = match status.next_retry.as_ref() {
        Some(t) => t.0,
        None => {
            let at = jiff::SignedDuration::try_from(delay)
                .ok()
                .and_then(|d| observed.now.checked_add(d).ok())
                .unwrap_or(observed.now);
            status.next_retry = Some(Time(at));
            at
        }
    };
    if observed.now < at {
        plan.requeue_after = Some(until(observed.now, at));
        return;
    }
    let mut next = crate::backup_configuration::new_session(invoker, &spec, observed.now, "retry");
    next.metadata.name = Some(names::retry_name(&session.name_any()));
    next.spec.retry_left = Some(left - 1);
    plan.events.push(Note::normal(
        "BackupRetried",
        format!(
            "retrying as BackupSession {} ({} retr{} left after it)",
            next.name_any(),
            left - 1,
            if left - 1 == 1 { "y" } else { "ies" }
        ),
    ));
    plan.create_retry = Some(next);
    status.retried = Some(true);
}

fn new_snapshot(
    invoker: Invoker<'_>,
    member: &Member<'_>,
    session: &BackupSession,
    repository: &str,
    name: &str,
) -> Snapshot {
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), invoker.name());
    labels.insert(
        names::SESSION_NAME_LABEL.into(),
        session.spec.session.clone(),
    );
    if let Some(member) = member.name {
        labels.insert(names::BATCH_MEMBER_LABEL.into(), member.to_owned());
    }
    Snapshot {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: session.namespace(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: SnapshotSpec {
            repository: repository.to_owned(),
            session: Some(session.spec.session.clone()),
            backup_session: Some(session.name_any()),
            version: Some("v1".to_owned()),
            app_ref: member.target.cloned(),
            deletion_policy: DeletionPolicy::Delete,
            ..SnapshotSpec::default()
        },
        status: None,
    }
}

fn snapshot_error(snapshot: &Snapshot) -> Option<String> {
    let status = snapshot.status.as_ref()?;
    let errors: Vec<String> = status
        .components
        .iter()
        .filter_map(|(name, c)| c.error.as_ref().map(|e| format!("{name}: {e}")))
        .collect();
    if !errors.is_empty() {
        return Some(errors.join(", "));
    }
    status
        .conditions
        .iter()
        .rev()
        .find_map(|c| c.message.clone())
}

#[cfg(test)]
mod tests;
