//! The BackupConfiguration reconciler's decisions: readiness of what the configuration refers
//! to, the Repositories it needs, and the BackupSessions its schedules call for.
//!
//! [`decide`] is pure: the kube layer ([`crate::controller`]) gathers an [`Observed`] state,
//! calls it, and carries out the [`Plan`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::{Resource, ResourceExt};
use stowaway_api::backup_configuration::{
    BackupConfigurationPhase, BackupConfigurationStatus, ConcurrencyPolicy, RepoStatus, Session,
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
    /// The configuration.
    pub config: &'a BackupConfiguration,
    /// Its backends, in spec order.
    pub backends: Vec<BackendObserved>,
    /// Its addon (of several sessions' addons, the least ready; a `NotReady` text names it).
    pub addon: Lookup,
    /// Problems of the sessions' addon references against the Addons they name (unknown
    /// tasks, unknown or missing parameters), each with its field path.
    pub addon_problems: Vec<String>,
    /// Whether the target exists (`None`: not checked).
    pub target_found: Option<bool>,
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

/// Decides what a BackupConfiguration needs now.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let config = observed.config;
    let now = observed.now;
    let previous = config.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    let mut status = BackupConfigurationStatus {
        conditions: previous.conditions.clone(),
        target_found: observed.target_found,
        ..BackupConfigurationStatus::default()
    };

    // Validation: what the admission webhook checks, again, because the webhook may be off.
    let mut problems = validate(config);
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
    if let Some(addon) = config.spec.sessions.iter().find_map(|s| s.addon.as_ref()) {
        let found = !matches!(observed.addon, Lookup::Missing);
        status.dependencies.push(ResourceFoundStatus {
            reference: TypedObjectReference {
                api_group: Some(stowaway_api::ADDONS_GROUP.into()),
                kind: "Addon".into(),
                namespace: None,
                name: addon.name.clone(),
            },
            found: Some(found),
        });
        match &observed.addon {
            Lookup::Ready => {}
            Lookup::Missing => not_ready.push(format!("Addon {:?} not found", addon.name)),
            Lookup::NotReady(why) | Lookup::NotAllowed(why) => not_ready.push(why.clone()),
        }
    }
    if observed.target_found == Some(false)
        && let Some(target) = &config.spec.target
    {
        not_ready.push(format!("target {} {} not found", target.kind, target.name));
    }

    // Repositories: create the missing ones, report the others.
    for (session, repo) in config
        .spec
        .sessions
        .iter()
        .flat_map(|s| s.repositories.iter().map(move |r| (s, r)))
    {
        if status.repositories.iter().any(|r| r.name == repo.name) {
            continue;
        }
        let _ = session;
        let backend = backend_of(config, repo.backend.as_deref());
        let storage_ref = backend.and_then(|b| b.storage_ref.clone());
        let existing = observed
            .repositories
            .iter()
            .find(|r| r.name_any() == repo.name);
        let (phase, reason) = match existing {
            None => match (&storage_ref, &config.spec.target) {
                (Some(storage_ref), Some(target)) => {
                    plan.create_repositories.push(new_repository(
                        config,
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
                let same_storage = storage_ref.as_ref().is_none_or(|s| {
                    s.name == existing.spec.storage_ref.name
                        && s.namespace.as_deref().unwrap_or(&namespace(config))
                            == existing
                                .spec
                                .storage_ref
                                .namespace
                                .as_deref()
                                .unwrap_or(&namespace(config))
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
    let paused = config.spec.paused.unwrap_or(false);
    let created = config
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let mut next_wake: Option<Timestamp> = None;
    for session in &config.spec.sessions {
        let before = previous.sessions.iter().find(|s| s.name == session.name);
        let mut session_status = SessionStatus {
            name: session.name.clone(),
            conditions: before.map(|b| b.conditions.clone()).unwrap_or_default(),
            last_schedule: before.and_then(|b| b.last_schedule.clone()),
            next_schedule: None,
        };
        let Some(scheduler) = &session.scheduler else {
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
                        config,
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
                    .push(new_session(config, session, now, "initial"));
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
    let spec = &config.spec;
    let mut problems = Vec::new();
    if spec.target.is_none() {
        problems.push("spec.target: required".to_owned());
    }
    if spec.sessions.is_empty() {
        problems.push("spec.sessions: at least one session is required".to_owned());
    }
    let mut names = BTreeMap::new();
    for (i, session) in spec.sessions.iter().enumerate() {
        let at = format!("spec.sessions[{i}]");
        if session.name.is_empty() {
            problems.push(format!("{at}.name: required"));
        } else if let Some(first) = names.insert(session.name.as_str(), i) {
            problems.push(format!(
                "{at}.name: {:?} is already the name of spec.sessions[{first}]",
                session.name
            ));
        }
        match &session.scheduler {
            None => problems.push(format!("{at}.scheduler: required")),
            Some(s) => {
                if let Err(e) = Schedule::parse(&s.schedule, s.time_zone.as_deref()) {
                    problems.push(format!("{at}.scheduler.schedule: {e}"));
                }
            }
        }
        if let Some(timeout) = &session.backup_timeout
            && let Err(e) = parse_duration(timeout)
        {
            problems.push(format!("{at}.backupTimeout: {e}"));
        }
        if let Some(delay) = session.retry_config.as_ref().and_then(|r| r.delay.as_ref())
            && let Err(e) = parse_duration(delay)
        {
            problems.push(format!("{at}.retryConfig.delay: {e}"));
        }
        match &session.addon {
            None => problems.push(format!("{at}.addon: required")),
            Some(addon) if addon.name.is_empty() => {
                problems.push(format!("{at}.addon.name: required"));
            }
            Some(addon) if addon.tasks.is_empty() => {
                problems.push(format!("{at}.addon.tasks: at least one task is required"));
            }
            Some(_) => {}
        }
        if session.repositories.is_empty() {
            problems.push(format!(
                "{at}.repositories: at least one repository is required"
            ));
        }
        for (j, repo) in session.repositories.iter().enumerate() {
            if backend_of(config, repo.backend.as_deref()).is_none() {
                problems.push(format!(
                    "{at}.repositories[{j}].backend: no backend named {:?}",
                    repo.backend.as_deref().unwrap_or("")
                ));
            }
        }
    }
    problems
}

/// The backend a repository names (`None`/empty: the only or the `default`-named backend).
fn backend_of<'a>(
    config: &'a BackupConfiguration,
    name: Option<&str>,
) -> Option<&'a stowaway_api::common::BackendReference> {
    let backends = &config.spec.backends;
    match name.filter(|n| !n.is_empty()) {
        Some(name) => backends.iter().find(|b| b.name == name),
        None if backends.len() == 1 => backends.first(),
        None => backends
            .iter()
            .find(|b| b.name.is_empty() || b.name == "default"),
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

fn namespace(config: &BackupConfiguration) -> String {
    config.namespace().unwrap_or_default()
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

/// An owner reference to the configuration (controller, blocks its deletion in foreground).
pub fn owner_reference(config: &BackupConfiguration) -> Option<OwnerReference> {
    config.controller_owner_ref(&())
}

/// The BackupSession for one run of `session`.
pub fn new_session(
    config: &BackupConfiguration,
    session: &Session,
    scheduled_for: Timestamp,
    trigger: &str,
) -> BackupSession {
    let name =
        names::backup_session_name(&config.name_any(), &session.name, scheduled_for.as_second());
    let retry_left = session
        .retry_config
        .as_ref()
        .map(|r| r.max_retry.unwrap_or(1).max(1));
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), config.name_any());
    labels.insert(
        names::INVOKER_KIND_LABEL.into(),
        BackupConfiguration::kind(&()).into_owned(),
    );
    labels.insert(names::SESSION_NAME_LABEL.into(), session.name.clone());
    BackupSession {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: config.namespace(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                names::TRIGGER_ANNOTATION.to_owned(),
                trigger.to_owned(),
            )])),
            owner_references: owner_reference(config).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: TypedLocalObjectReference {
                api_group: Some(stowaway_api::CORE_GROUP.into()),
                kind: BackupConfiguration::kind(&()).into_owned(),
                name: config.name_any(),
            },
            session: session.name.clone(),
            retry_left,
            backup_timeout: session.backup_timeout.clone(),
        },
        status: None,
    }
}

fn new_repository(
    config: &BackupConfiguration,
    name: &str,
    target: &TypedObjectReference,
    storage_ref: &ObjectReference,
    info: &stowaway_api::backup_configuration::RepositoryInfo,
) -> Repository {
    use stowaway_api::backup_configuration::RepositoryDeletionPolicy;
    let mut app_ref = target.clone();
    if app_ref.namespace.is_none() {
        app_ref.namespace = config.namespace();
    }
    let mut storage_ref = storage_ref.clone();
    if storage_ref.namespace.is_none() {
        storage_ref.namespace = config.namespace();
    }
    let deletion_policy = match info.deletion_policy {
        Some(RepositoryDeletionPolicy::WipeOut) => stowaway_api::common::DeletionPolicy::WipeOut,
        _ => stowaway_api::common::DeletionPolicy::Delete,
    };
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), config.name_any());
    Repository {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: config.namespace(),
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
