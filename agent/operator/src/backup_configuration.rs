//! The BackupConfiguration reconciler's decisions: readiness of what the configuration refers
//! to, the Repositories it needs, and the BackupSessions its schedules call for.
//!
//! [`decide`] is pure: the kube layer ([`crate::controller`]) gathers an [`Observed`] state,
//! calls it, and carries out the [`Plan`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use stowaway_api::backup_configuration::{
    BackupConfigurationPhase, BackupConfigurationStatus, ConcurrencyPolicy, RepoStatus,
    SessionStatus,
};
use stowaway_api::backup_session::{BackupSessionPhase, BackupSessionSpec};
use stowaway_api::common::{
    ObjectReference, ReadinessPhase, ResourceFoundStatus, TypedLocalObjectReference,
    TypedObjectReference,
};
use stowaway_api::repository::RepositorySpec;
use stowaway_api::{BackupConfiguration, BackupSession, Repository};

use crate::conditions;
use crate::duration::parse_duration;
use crate::events::Note;
use crate::invoker::{Invoker, SessionView};
use crate::names;
use crate::schedule::{Decision, Schedule, ScheduleState, decide as schedule_decide};

/// Condition: the configuration passed validation.
pub const VALIDATION_PASSED: &str = "ValidationPassed";
/// Session condition: the schedule is parsed and running.
pub const SCHEDULER_ENSURED: &str = "SchedulerEnsured";
/// Session condition: the first backup after the configuration became Ready was created.
pub const INITIAL_BACKUP_TRIGGERED: &str = "InitialBackupTriggered";

/// What the operator found of one thing the configuration refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It exists and is usable.
    Ready,
    /// It exists but is not usable yet (the text says why).
    NotReady(String),
    /// It does not exist.
    Missing,
    /// This namespace may not use it (the text is the usage-policy message).
    NotAllowed(String),
}

/// One backend of the configuration as the operator found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendObserved {
    /// Backend name.
    pub name: String,
    /// The BackupStorage.
    pub storage: Lookup,
    /// The RetentionPolicy (`None` when the backend names none).
    pub retention_policy: Option<Lookup>,
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The configuration or batch.
    pub invoker: Invoker<'a>,
    /// Its backends, in spec order.
    pub backends: Vec<BackendObserved>,
    /// Its addons by name (one for a configuration; a batch's members may use several).
    pub addons: Vec<(String, Lookup)>,
    /// Problems of the addon references against the Addons they name (unknown tasks,
    /// unknown or missing parameters), each with its field path.
    pub addon_problems: Vec<String>,
    /// Whether each target exists, in [`Invoker::targets`] order (`None`: not checked).
    pub targets_found: Vec<Option<bool>>,
    /// Repositories in the namespace with the names the sessions use.
    pub repositories: &'a [Repository],
    /// BackupSessions of this configuration.
    pub sessions: &'a [BackupSession],
    /// The time of this decision.
    pub now: Timestamp,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status.
    pub status: BackupConfigurationStatus,
    /// Repositories to create.
    pub create_repositories: Vec<Repository>,
    /// BackupSessions to create.
    pub create_sessions: Vec<BackupSession>,
    /// Names of finished BackupSessions to delete (history limit).
    pub delete_sessions: Vec<String>,
    /// Events to record on the configuration.
    pub events: Vec<Note>,
    /// When to look again (the next schedule).
    pub requeue_after: Option<Duration>,
}

/// Decides what a BackupConfiguration (or BackupBatch) needs now.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let invoker = observed.invoker;
    let now = observed.now;
    let previous = invoker.status().cloned().unwrap_or_default();
    let mut plan = Plan::default();
    let targets = invoker.targets();
    let all_found = observed
        .targets_found
        .iter()
        .try_fold(true, |all, f| f.map(|f| all && f));
    let mut status = BackupConfigurationStatus {
        conditions: previous.conditions.clone(),
        target_found: all_found,
        ..BackupConfigurationStatus::default()
    };

    // Validation: what the admission webhook checks, again, because the webhook may be off.
    let mut problems = match invoker {
        Invoker::Configuration(config) => validate(config),
        Invoker::Batch(batch) => crate::backup_batch::validate(batch),
    };
    if problems.is_empty() {
        problems.extend(observed.addon_problems.iter().cloned());
    }
    if !problems.is_empty() {
        let message = problems.join("; ");
        conditions::set(
            &mut status.conditions,
            VALIDATION_PASSED,
            false,
            "ResourceValidationFailed",
            message.clone(),
            now,
        );
        status.phase = Some(BackupConfigurationPhase::Invalid);
        status.sessions = previous.sessions.clone();
        if !conditions::get(&previous.conditions, VALIDATION_PASSED).is_some_and(|c| {
            c.status == stowaway_api::common::ConditionStatus::False
                && c.message.as_deref() == Some(message.as_str())
        }) {
            plan.events.push(Note::warning("ValidationFailed", message));
        }
        plan.status = status;
        return plan;
    }
    conditions::set(
        &mut status.conditions,
        VALIDATION_PASSED,
        true,
        "ResourceValidationPassed",
        "",
        now,
    );

    // Readiness of everything referred to.
    let mut not_ready = Vec::new();
    let mut backends = Vec::new();
    for backend in &observed.backends {
        let mut entry = serde_json::Map::new();
        entry.insert("name".into(), backend.name.clone().into());
        let storage_ok = lookup_problem(&backend.storage, "BackupStorage", &backend.name)
            .map(|p| not_ready.push(p))
            .is_none();
        let policy_ok = match &backend.retention_policy {
            Some(lookup) => lookup_problem(lookup, "RetentionPolicy", &backend.name)
                .map(|p| not_ready.push(p))
                .is_none(),
            None => true,
        };
        entry.insert("ready".into(), (storage_ok && policy_ok).into());
        backends.push(serde_json::Value::Object(entry));
    }
    status.backends = (!backends.is_empty()).then_some(backends);
    for (name, lookup) in &observed.addons {
        status.dependencies.push(ResourceFoundStatus {
            reference: TypedObjectReference {
                api_group: Some(stowaway_api::ADDONS_GROUP.into()),
                kind: "Addon".into(),
                namespace: None,
                name: name.clone(),
            },
            found: Some(!matches!(lookup, Lookup::Missing)),
        });
        match lookup {
            Lookup::Ready => {}
            Lookup::Missing => not_ready.push(format!("Addon {name:?} not found")),
            Lookup::NotReady(why) => not_ready.push(format!("Addon {name:?} is not ready: {why}")),
            Lookup::NotAllowed(why) => not_ready.push(why.clone()),
        }
    }
    for ((member, target), found) in targets.iter().zip(&observed.targets_found) {
        if *found == Some(false)
            && let Some(target) = target
        {
            not_ready.push(match member {
                Some(member) => format!(
                    "target {} {} of member {member} not found",
                    target.kind, target.name
                ),
                None => format!("target {} {} not found", target.kind, target.name),
            });
        }
    }

    // Repositories: create the missing ones, report the others.
    let sessions = invoker.sessions();
    for (member, repo) in sessions.iter().flat_map(|s| s.repositories()) {
        if status.repositories.iter().any(|r| r.name == repo.name) {
            continue;
        }
        let backend = invoker.backend(repo.backend.as_deref());
        let storage_ref = backend.and_then(|b| b.storage_ref.clone());
        let existing = observed
            .repositories
            .iter()
            .find(|r| r.name_any() == repo.name);
        let (phase, reason) = match existing {
            None => match (&storage_ref, member.target) {
                (Some(storage_ref), Some(target)) => {
                    plan.create_repositories.push(new_repository(
                        invoker,
                        &repo.name,
                        target,
                        storage_ref,
                        repo,
                    ));
                    (ReadinessPhase::NotReady, Some("being created".to_owned()))
                }
                _ => (
                    ReadinessPhase::NotReady,
                    Some("no storage or no target to create it for".to_owned()),
                ),
            },
            Some(existing) => {
                let namespace = invoker.namespace().unwrap_or_default();
                let same_storage = storage_ref.as_ref().is_none_or(|s| {
                    s.name == existing.spec.storage_ref.name
                        && s.namespace.as_deref().unwrap_or(&namespace)
                            == existing
                                .spec
                                .storage_ref
                                .namespace
                                .as_deref()
                                .unwrap_or(&namespace)
                });
                if !same_storage {
                    (
                        ReadinessPhase::NotReady,
                        Some(format!(
                            "Repository {} already exists on another storage ({})",
                            repo.name, existing.spec.storage_ref.name
                        )),
                    )
                } else {
                    match existing.status.as_ref().and_then(|s| s.phase) {
                        Some(ReadinessPhase::Ready) => (ReadinessPhase::Ready, None),
                        _ => (
                            ReadinessPhase::NotReady,
                            Some(
                                existing
                                    .status
                                    .as_ref()
                                    .and_then(|s| s.conditions.last())
                                    .and_then(|c| c.message.clone())
                                    .unwrap_or_else(|| "not initialised yet".to_owned()),
                            ),
                        ),
                    }
                }
            }
        };
        if let Some(reason) = &reason {
            not_ready.push(format!("Repository {}: {reason}", repo.name));
        }
        status.repositories.push(RepoStatus {
            name: repo.name.clone(),
            phase: Some(phase),
            reason,
            verification_configured: Some(repo.backup_verifier.is_some()),
        });
    }

    let ready = not_ready.is_empty();
    status.phase = Some(if ready {
        BackupConfigurationPhase::Ready
    } else {
        BackupConfigurationPhase::NotReady
    });
    let was_ready = previous.phase == Some(BackupConfigurationPhase::Ready);
    if !ready && (was_ready || previous.phase.is_none()) {
        plan.events
            .push(Note::warning("NotReady", not_ready.join("; ")));
    }

    // Schedules.
    let paused = invoker.paused();
    let created = invoker.created().unwrap_or(now);
    let mut next_wake: Option<Timestamp> = None;
    for session in &sessions {
        let before = previous.sessions.iter().find(|s| s.name == session.name);
        let mut session_status = SessionStatus {
            name: session.name.to_owned(),
            conditions: before.map(|b| b.conditions.clone()).unwrap_or_default(),
            last_schedule: before.and_then(|b| b.last_schedule.clone()),
            next_schedule: None,
        };
        let Some(scheduler) = session.scheduler else {
            status.sessions.push(session_status);
            continue;
        };
        let schedule = match Schedule::parse(&scheduler.schedule, scheduler.time_zone.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                // `validate` parsed it already; kept for safety.
                conditions::set(
                    &mut session_status.conditions,
                    SCHEDULER_ENSURED,
                    false,
                    "InvalidSchedule",
                    e.to_string(),
                    now,
                );
                status.sessions.push(session_status);
                continue;
            }
        };
        conditions::set(
            &mut session_status.conditions,
            SCHEDULER_ENSURED,
            true,
            "SchedulerEnsured",
            format!("schedule {schedule}"),
            now,
        );
        let state = ScheduleState {
            last_schedule: session_status.last_schedule.as_ref().map(|t| t.0),
            created,
        };
        let deadline = scheduler
            .starting_deadline_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let suspended = paused || !ready || scheduler.suspend.unwrap_or(false);
        let decision = schedule_decide(&schedule, &state, now, deadline, suspended);
        if let Some(persist) = decision.persist() {
            session_status.last_schedule = Some(Time(persist));
        }
        let running = observed
            .sessions
            .iter()
            .any(|s| s.spec.session == session.name && is_active(s));
        match &decision {
            Decision::Run {
                scheduled_for,
                missed,
                ..
            } => {
                if *missed > 0 {
                    plan.events.push(Note::warning(
                        "MissedSchedule",
                        format!(
                            "session {}: {missed} scheduled run(s) missed while the operator was down; running the latest, scheduled for {scheduled_for}",
                            session.name
                        ),
                    ));
                }
                let forbid = matches!(
                    scheduler.concurrency_policy,
                    Some(ConcurrencyPolicy::Forbid)
                );
                if forbid && running {
                    plan.events.push(Note::normal(
                        "BackupSkipped",
                        format!(
                            "session {}: run scheduled for {scheduled_for} skipped: the previous one is still running (concurrencyPolicy Forbid)",
                            session.name
                        ),
                    ));
                } else {
                    plan.create_sessions.push(new_session(
                        invoker,
                        session,
                        *scheduled_for,
                        "schedule",
                    ));
                }
            }
            Decision::TooLate { scheduled_for, .. } => {
                plan.events.push(Note::warning(
                    "MissedSchedule",
                    format!(
                        "session {}: run scheduled for {scheduled_for} not started: more than startingDeadlineSeconds late",
                        session.name
                    ),
                ));
            }
            Decision::Wait { .. } | Decision::Suspended { .. } => {}
        }
        let next = decision.next();
        session_status.next_schedule = next.map(|t| t.to_string());
        if let Some(next) = next {
            next_wake = Some(next_wake.map_or(next, |w| w.min(next)));
        }

        // The first backup right after the configuration becomes Ready.
        if ready
            && !paused
            && !conditions::is_true(&session_status.conditions, INITIAL_BACKUP_TRIGGERED)
        {
            let has_any = observed
                .sessions
                .iter()
                .any(|s| s.spec.session == session.name)
                || plan
                    .create_sessions
                    .iter()
                    .any(|s| s.spec.session == session.name);
            if !has_any {
                plan.create_sessions
                    .push(new_session(invoker, session, now, "initial"));
            }
            conditions::set(
                &mut session_status.conditions,
                INITIAL_BACKUP_TRIGGERED,
                true,
                "InitialBackupTriggered",
                "",
                now,
            );
        }

        // History limit: finished sessions beyond the newest `sessionHistoryLimit`.
        let limit = usize::try_from(session.session_history_limit.unwrap_or(1)).unwrap_or(0);
        let mut finished: Vec<&BackupSession> = observed
            .sessions
            .iter()
            .filter(|s| s.spec.session == session.name && !is_active(s))
            .collect();
        finished.sort_by_key(|s| std::cmp::Reverse(creation(s)));
        plan.delete_sessions
            .extend(finished.iter().skip(limit).map(|s| s.name_any()));
        status.sessions.push(session_status);
    }
    plan.requeue_after = next_wake.map(|w| {
        let secs = (w - now).get_seconds().max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    });
    plan.status = status;
    plan
}

/// Problems with the spec itself (empty when valid), each naming its field.
pub fn validate(config: &BackupConfiguration) -> Vec<String> {
    let mut problems = Vec::new();
    if config.spec.target.is_none() {
        problems.push("spec.target: required".to_owned());
    }
    validate_sessions(Invoker::Configuration(config), &mut problems);
    problems
}

/// The session checks a configuration and a batch share. A batch member's addon and
/// repositories are checked under `spec.sessions[i].targets[k]`.
pub(crate) fn validate_sessions(invoker: Invoker<'_>, problems: &mut Vec<String>) {
    let sessions = invoker.sessions();
    if sessions.is_empty() {
        problems.push("spec.sessions: at least one session is required".to_owned());
    }
    let mut names = BTreeMap::new();
    for (i, session) in sessions.iter().enumerate() {
        let at = format!("spec.sessions[{i}]");
        if session.name.is_empty() {
            problems.push(format!("{at}.name: required"));
        } else if let Some(first) = names.insert(session.name, i) {
            problems.push(format!(
                "{at}.name: {:?} is already the name of spec.sessions[{first}]",
                session.name
            ));
        }
        match session.scheduler {
            None => problems.push(format!("{at}.scheduler: required")),
            Some(s) => {
                if let Err(e) = Schedule::parse(&s.schedule, s.time_zone.as_deref()) {
                    problems.push(format!("{at}.scheduler.schedule: {e}"));
                }
            }
        }
        if let Some(timeout) = session.backup_timeout
            && let Err(e) = parse_duration(timeout)
        {
            problems.push(format!("{at}.backupTimeout: {e}"));
        }
        if let Some(delay) = session.retry_config.and_then(|r| r.delay.as_ref())
            && let Err(e) = parse_duration(delay)
        {
            problems.push(format!("{at}.retryConfig.delay: {e}"));
        }
        for (k, member) in session.members.iter().enumerate() {
            let at = match invoker {
                Invoker::Configuration(_) => at.clone(),
                Invoker::Batch(_) => format!("{at}.targets[{k}]"),
            };
            match member.addon {
                None => problems.push(format!("{at}.addon: required")),
                Some(addon) if addon.name.is_empty() => {
                    problems.push(format!("{at}.addon.name: required"));
                }
                Some(addon) if addon.tasks.is_empty() => {
                    problems.push(format!("{at}.addon.tasks: at least one task is required"));
                }
                Some(_) => {}
            }
            if member.repositories.is_empty() {
                problems.push(format!(
                    "{at}.repositories: at least one repository is required"
                ));
            }
            for (j, repo) in member.repositories.iter().enumerate() {
                if invoker.backend(repo.backend.as_deref()).is_none() {
                    problems.push(format!(
                        "{at}.repositories[{j}].backend: no backend named {:?}",
                        repo.backend.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
}

fn lookup_problem(lookup: &Lookup, kind: &str, backend: &str) -> Option<String> {
    match lookup {
        Lookup::Ready => None,
        Lookup::NotReady(why) => Some(format!("{kind} of backend {backend:?} is not ready: {why}")),
        Lookup::Missing => Some(format!("{kind} of backend {backend:?} not found")),
        Lookup::NotAllowed(why) => Some(why.clone()),
    }
}

fn creation(session: &BackupSession) -> Timestamp {
    session
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// Whether a BackupSession has not finished yet.
pub fn is_active(session: &BackupSession) -> bool {
    matches!(
        session.status.as_ref().and_then(|s| s.phase),
        None | Some(BackupSessionPhase::Pending | BackupSessionPhase::Running)
    )
}

/// The BackupSession for one run of `session`.
pub fn new_session(
    invoker: Invoker<'_>,
    session: &SessionView<'_>,
    scheduled_for: Timestamp,
    trigger: &str,
) -> BackupSession {
    let name = names::backup_session_name(&invoker.name(), session.name, scheduled_for.as_second());
    let retry_left = session
        .retry_config
        .map(|r| r.max_retry.unwrap_or(1).max(1));
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), invoker.name());
    labels.insert(names::INVOKER_KIND_LABEL.into(), invoker.kind().into());
    labels.insert(names::SESSION_NAME_LABEL.into(), session.name.to_owned());
    BackupSession {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: invoker.namespace(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                names::TRIGGER_ANNOTATION.to_owned(),
                trigger.to_owned(),
            )])),
            owner_references: invoker.owner_reference().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: TypedLocalObjectReference {
                api_group: Some(stowaway_api::CORE_GROUP.into()),
                kind: invoker.kind().into(),
                name: invoker.name(),
            },
            session: session.name.to_owned(),
            retry_left,
            backup_timeout: session.backup_timeout.map(str::to_owned),
        },
        status: None,
    }
}

fn new_repository(
    invoker: Invoker<'_>,
    name: &str,
    target: &TypedObjectReference,
    storage_ref: &ObjectReference,
    info: &stowaway_api::backup_configuration::RepositoryInfo,
) -> Repository {
    use stowaway_api::backup_configuration::RepositoryDeletionPolicy;
    let mut app_ref = target.clone();
    if app_ref.namespace.is_none() {
        app_ref.namespace = invoker.namespace();
    }
    let mut storage_ref = storage_ref.clone();
    if storage_ref.namespace.is_none() {
        storage_ref.namespace = invoker.namespace();
    }
    let deletion_policy = match info.deletion_policy {
        Some(RepositoryDeletionPolicy::WipeOut) => stowaway_api::common::DeletionPolicy::WipeOut,
        _ => stowaway_api::common::DeletionPolicy::Delete,
    };
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), invoker.name());
    Repository {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: invoker.namespace(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: RepositorySpec {
            app_ref,
            storage_ref,
            path: info.directory.clone(),
            deletion_policy,
            encryption_secret: info.encryption_secret.clone(),
            paused: None,
        },
        status: None,
    }
}

/// The `app.kubernetes.io/managed-by` label.
pub fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(
        names::MANAGED_BY_LABEL.to_owned(),
        names::MANAGED_BY.to_owned(),
    )])
}

#[cfg(test)]
mod tests;
