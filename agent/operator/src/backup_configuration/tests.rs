use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::backup_configuration::{
    BackupConfigurationPhase, BackupConfigurationStatus, ConcurrencyPolicy, SessionStatus,
};
use stowaway_api::backup_session::{BackupSessionPhase, BackupSessionStatus};
use stowaway_api::common::{ConditionStatus, ReadinessPhase};
use stowaway_api::repository::RepositoryStatus;
use stowaway_api::{BackupConfiguration, BackupSession, Repository};

use super::*;
use crate::testing::{at, config, session};

fn ready_backends() -> Vec<BackendObserved> {
    vec![BackendObserved {
        name: "s3".into(),
        storage: Lookup::Ready,
        retention_policy: Some(Lookup::Ready),
    }]
}

fn ready_repository() -> Repository {
    let mut repo: Repository = serde_yaml::from_str(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Repository
metadata: {name: repo, namespace: demo}
spec:
  appRef: {apiGroup: apps, kind: Deployment, name: web, namespace: demo}
  storageRef: {name: store, namespace: demo}
  path: /db
"#,
    )
    .expect("repository");
    repo.status = Some(RepositoryStatus {
        phase: Some(ReadinessPhase::Ready),
        ..RepositoryStatus::default()
    });
    repo
}

/// Decides with every reference Ready.
fn plan_at(
    config: &BackupConfiguration,
    repositories: &[Repository],
    sessions: &[BackupSession],
    now: &str,
) -> Plan {
    decide(&Observed {
        invoker: Invoker::Configuration(config),
        backends: ready_backends(),
        addons: vec![("postgres".into(), Lookup::Ready)],
        addon_problems: Vec::new(),
        targets_found: vec![Some(true)],
        repositories,
        sessions,
        now: at(now),
    })
}

/// The configuration with the status a previous decision produced.
fn with_status(
    mut config: BackupConfiguration,
    status: BackupConfigurationStatus,
) -> BackupConfiguration {
    config.status = Some(status);
    config
}

/// A configuration that was Ready, whose `daily` session ran last at `last`.
fn ran_at(config: BackupConfiguration, last: &str) -> BackupConfiguration {
    with_status(
        config,
        BackupConfigurationStatus {
            phase: Some(BackupConfigurationPhase::Ready),
            sessions: vec![SessionStatus {
                name: "daily".into(),
                last_schedule: Some(Time(at(last))),
                conditions: vec![stowaway_api::common::Condition {
                    type_: INITIAL_BACKUP_TRIGGERED.into(),
                    status: ConditionStatus::True,
                    ..Default::default()
                }],
                ..SessionStatus::default()
            }],
            ..BackupConfigurationStatus::default()
        },
    )
}

fn finished(name: &str, created: &str, phase: BackupSessionPhase) -> BackupSession {
    let mut s = session(name, created);
    s.status = Some(BackupSessionStatus {
        phase: Some(phase),
        ..BackupSessionStatus::default()
    });
    s
}

#[test]
fn a_new_ready_configuration_creates_its_repository_and_the_initial_backup() {
    let config = config();
    let plan = plan_at(&config, &[], &[], "2026-01-01T00:10:00Z");
    let status = &plan.status;
    // The repository does not exist yet, so the configuration waits for it.
    assert_eq!(status.phase, Some(BackupConfigurationPhase::NotReady));
    assert_eq!(plan.create_repositories.len(), 1);
    let repo = &plan.create_repositories[0];
    assert_eq!(repo.name_any(), "repo");
    assert_eq!(repo.spec.path, "/db");
    assert_eq!(repo.spec.storage_ref.name, "store");
    assert_eq!(repo.spec.storage_ref.namespace.as_deref(), Some("demo"));
    assert_eq!(repo.spec.app_ref.namespace.as_deref(), Some("demo"));
    assert!(plan.create_sessions.is_empty(), "nothing runs before Ready");

    // Once the Repository is Ready: Ready, the initial backup, and a wake-up at 02:00.
    let config = with_status(config, plan.status);
    let repos = [ready_repository()];
    let plan = plan_at(&config, &repos, &[], "2026-01-01T00:20:00Z");
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::Ready));
    assert!(plan.create_repositories.is_empty());
    assert_eq!(plan.create_sessions.len(), 1);
    let initial = &plan.create_sessions[0];
    assert_eq!(
        initial.name_any(),
        format!("db-daily-{}", at("2026-01-01T00:20:00Z").as_second())
    );
    assert_eq!(
        initial
            .annotations()
            .get(crate::names::TRIGGER_ANNOTATION)
            .map(String::as_str),
        Some("initial")
    );
    assert_eq!(initial.spec.invoker.name, "db");
    assert_eq!(
        initial
            .labels()
            .get(crate::names::INVOKER_NAME_LABEL)
            .map(String::as_str),
        Some("db")
    );
    let daily = &plan.status.sessions[0];
    assert!(conditions::is_true(
        &daily.conditions,
        INITIAL_BACKUP_TRIGGERED
    ));
    assert_eq!(daily.next_schedule.as_deref(), Some("2026-01-01T02:00:00Z"));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(100 * 60)));

    // Applying the plan and deciding again does not trigger a second initial backup.
    let config = with_status(config, plan.status);
    let sessions = [session(&initial.name_any(), "2026-01-01T00:20:00Z")];
    let plan = plan_at(&config, &repos, &sessions, "2026-01-01T00:21:00Z");
    assert!(
        plan.create_sessions.is_empty(),
        "{:?}",
        plan.create_sessions
    );
}

#[test]
fn missing_references_leave_it_not_ready_with_the_reason() {
    let config = config();
    let repos = [ready_repository()];
    let plan = decide(&Observed {
        invoker: Invoker::Configuration(&config),
        backends: vec![BackendObserved {
            name: "s3".into(),
            storage: Lookup::Missing,
            retention_policy: Some(Lookup::NotAllowed(
                "namespace demo is not allowed to refer RetentionPolicy ops/keep: check its usagePolicy".into(),
            )),
        }],
        addons: vec![("postgres".into(), Lookup::Missing)],
        addon_problems: Vec::new(),
        targets_found: vec![Some(false)],
        repositories: &repos,
        sessions: &[],
        now: at("2026-01-01T03:00:00Z"),
    });
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::NotReady));
    assert!(
        plan.create_sessions.is_empty(),
        "nothing runs while NotReady"
    );
    let event = &plan.events[0];
    assert!(event.warning);
    assert_eq!(event.reason, "NotReady");
    for part in [
        "BackupStorage of backend \"s3\" not found",
        "not allowed to refer RetentionPolicy ops/keep",
        "Addon \"postgres\" not found",
        "target Deployment web not found",
    ] {
        assert!(
            event.message.contains(part),
            "{part:?} in {}",
            event.message
        );
    }
    assert_eq!(plan.status.dependencies[0].found, Some(false));
}

#[test]
fn an_invalid_spec_is_reported_once_with_field_paths() {
    let mut config = config();
    config.spec.sessions[0]
        .scheduler
        .as_mut()
        .expect("scheduler")
        .schedule = "0 25 * * *".into();
    config.spec.sessions[0].backup_timeout = Some("2 days".into());
    config.spec.sessions[0].repositories[0].backend = Some("gcs".into());
    let plan = plan_at(&config, &[], &[], "2026-01-01T03:00:00Z");
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::Invalid));
    let condition = conditions::get(&plan.status.conditions, VALIDATION_PASSED).expect("condition");
    assert_eq!(condition.status, ConditionStatus::False);
    let message = condition.message.as_deref().unwrap_or_default();
    for part in [
        "spec.sessions[0].scheduler.schedule: field \"hour\": 25 is out of range 0-23",
        "spec.sessions[0].backupTimeout:",
        "spec.sessions[0].repositories[0].backend: no backend named \"gcs\"",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(plan.create_repositories.is_empty() && plan.create_sessions.is_empty());
    assert_eq!(plan.events.len(), 1);
    // The same problem again: no second event.
    let config = with_status(config, plan.status);
    let plan = plan_at(&config, &[], &[], "2026-01-01T03:01:00Z");
    assert!(plan.events.is_empty(), "{:?}", plan.events);
}

#[test]
fn addon_references_are_checked_against_the_addon() {
    let config = config();
    let repos = [ready_repository()];
    let observed = |addon: Lookup, problems: &[&str]| Observed {
        invoker: Invoker::Configuration(&config),
        backends: ready_backends(),
        addons: vec![("postgres".into(), addon)],
        addon_problems: problems.iter().map(|p| (*p).to_owned()).collect(),
        targets_found: vec![Some(true)],
        repositories: &repos,
        sessions: &[],
        now: at("2026-01-01T03:00:00Z"),
    };
    // Task and parameter problems make the spec Invalid, with their field paths.
    let problem = "spec.sessions[0].addon.tasks[0].params.paths: unknown parameter: task \"logical-backup\" of Addon \"postgres\" takes host, port";
    let plan = decide(&observed(Lookup::Ready, &[problem]));
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::Invalid));
    let condition = conditions::get(&plan.status.conditions, VALIDATION_PASSED).expect("condition");
    assert_eq!(condition.message.as_deref(), Some(problem));
    assert!(plan.create_sessions.is_empty());

    // A third-party Addon whose component is not verified: NotReady with its reason.
    let why = "DigestMismatch: the component at https://addons.example/pg.wasm has SHA-256 00";
    let plan = decide(&observed(Lookup::NotReady(why.to_owned()), &[]));
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::NotReady));
    assert!(
        plan.create_sessions.is_empty(),
        "nothing runs while NotReady"
    );
    assert_eq!(
        plan.events[0].message,
        format!("Addon \"postgres\" is not ready: {why}")
    );
    assert_eq!(plan.status.dependencies[0].found, Some(true));

    let plan = decide(&observed(Lookup::Ready, &[]));
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::Ready));
}

#[test]
fn a_due_run_is_created_once_and_a_restart_does_not_repeat_it() {
    let config = ran_at(config(), "2026-01-01T02:00:00Z");
    let repos = [ready_repository()];
    let plan = plan_at(&config, &repos, &[], "2026-01-02T02:00:30Z");
    assert_eq!(plan.create_sessions.len(), 1);
    let run = &plan.create_sessions[0];
    assert_eq!(
        run.name_any(),
        format!("db-daily-{}", at("2026-01-02T02:00:00Z").as_second())
    );
    assert_eq!(
        plan.status.sessions[0].last_schedule,
        Some(Time(at("2026-01-02T02:00:00Z")))
    );
    assert!(plan.events.is_empty(), "{:?}", plan.events);

    // The operator restarts after persisting the status: nothing new.
    let config = with_status(config, plan.status.clone());
    let sessions = [session(&run.name_any(), "2026-01-02T02:00:30Z")];
    let again = plan_at(&config, &repos, &sessions, "2026-01-02T02:00:40Z");
    assert!(again.create_sessions.is_empty());

    // The operator restarts before persisting the status: the same run, under the same
    // name, which the API server refuses as a duplicate.
    let lost = ran_at(crate::testing::config(), "2026-01-01T02:00:00Z");
    let replay = plan_at(&lost, &repos, &sessions, "2026-01-02T02:00:45Z");
    assert_eq!(replay.create_sessions.len(), 1);
    assert_eq!(replay.create_sessions[0].name_any(), run.name_any());
}

#[test]
fn after_downtime_only_the_latest_missed_run_starts_and_the_rest_are_reported() {
    let config = ran_at(config(), "2026-01-01T02:00:00Z");
    let repos = [ready_repository()];
    let plan = plan_at(&config, &repos, &[], "2026-01-04T03:00:00Z");
    assert_eq!(plan.create_sessions.len(), 1);
    assert_eq!(
        plan.create_sessions[0].name_any(),
        format!("db-daily-{}", at("2026-01-04T02:00:00Z").as_second())
    );
    let event = plan
        .events
        .iter()
        .find(|e| e.reason == "MissedSchedule")
        .expect("event");
    assert!(
        event.message.contains("2 scheduled run(s) missed"),
        "{}",
        event.message
    );
}

#[test]
fn a_starting_deadline_drops_a_stale_run() {
    let mut config = ran_at(config(), "2026-01-01T02:00:00Z");
    config.spec.sessions[0]
        .scheduler
        .as_mut()
        .expect("scheduler")
        .starting_deadline_seconds = Some(600);
    let repos = [ready_repository()];
    let plan = plan_at(&config, &repos, &[], "2026-01-02T02:30:00Z");
    assert!(plan.create_sessions.is_empty());
    assert_eq!(
        plan.status.sessions[0].last_schedule,
        Some(Time(at("2026-01-02T02:00:00Z"))),
        "the stale run is not reconsidered"
    );
    assert!(plan.events.iter().any(|e| e.reason == "MissedSchedule"
        && e.message.contains("more than startingDeadlineSeconds late")));
}

#[test]
fn paused_runs_nothing_and_resuming_does_not_make_up_the_pause() {
    let mut config = ran_at(config(), "2026-01-01T02:00:00Z");
    config.spec.paused = Some(true);
    let repos = [ready_repository()];
    let plan = plan_at(&config, &repos, &[], "2026-01-03T05:00:00Z");
    assert!(plan.create_sessions.is_empty());
    assert_eq!(
        plan.status.sessions[0].last_schedule,
        Some(Time(at("2026-01-03T02:00:00Z")))
    );
    let mut config = with_status(config, plan.status);
    config.spec.paused = Some(false);
    let plan = plan_at(&config, &repos, &[], "2026-01-03T05:01:00Z");
    assert!(
        plan.create_sessions.is_empty(),
        "{:?}",
        plan.create_sessions
    );
    assert_eq!(
        plan.status.sessions[0].next_schedule.as_deref(),
        Some("2026-01-04T02:00:00Z")
    );
}

#[test]
fn forbid_skips_a_run_while_the_previous_one_is_running() {
    let mut config = ran_at(config(), "2026-01-01T02:00:00Z");
    config.spec.sessions[0]
        .scheduler
        .as_mut()
        .expect("scheduler")
        .concurrency_policy = Some(ConcurrencyPolicy::Forbid);
    let repos = [ready_repository()];
    let running = [session("db-daily-1", "2026-01-01T02:00:00Z")];
    let plan = plan_at(&config, &repos, &running, "2026-01-02T02:00:10Z");
    assert!(plan.create_sessions.is_empty());
    assert!(plan.events.iter().any(|e| e.reason == "BackupSkipped"));
    assert_eq!(
        plan.status.sessions[0].last_schedule,
        Some(Time(at("2026-01-02T02:00:00Z")))
    );
    // Allow (the default) creates it; the session reconciler then skips or runs it.
    let config = ran_at(crate::testing::config(), "2026-01-01T02:00:00Z");
    let plan = plan_at(&config, &repos, &running, "2026-01-02T02:00:10Z");
    assert_eq!(plan.create_sessions.len(), 1);
}

#[test]
fn the_history_limit_deletes_the_oldest_finished_sessions_only() {
    let mut config = ran_at(config(), "2026-01-05T02:00:00Z");
    config.spec.sessions[0].session_history_limit = Some(2);
    let repos = [ready_repository()];
    let sessions = [
        finished("s1", "2026-01-01T02:00:00Z", BackupSessionPhase::Succeeded),
        finished("s2", "2026-01-02T02:00:00Z", BackupSessionPhase::Failed),
        finished("s3", "2026-01-03T02:00:00Z", BackupSessionPhase::Skipped),
        finished("s4", "2026-01-04T02:00:00Z", BackupSessionPhase::Succeeded),
        session("s0-running", "2025-12-31T02:00:00Z"),
    ];
    let plan = plan_at(&config, &repos, &sessions, "2026-01-05T03:00:00Z");
    assert_eq!(plan.delete_sessions, vec!["s2".to_owned(), "s1".to_owned()]);
}

#[test]
fn a_repository_on_another_storage_is_a_conflict() {
    let config = ran_at(config(), "2026-01-01T02:00:00Z");
    let mut other = ready_repository();
    other.spec.storage_ref.name = "elsewhere".into();
    let plan = plan_at(&config, &[other], &[], "2026-01-01T03:00:00Z");
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::NotReady));
    let repo = &plan.status.repositories[0];
    assert_eq!(repo.phase, Some(ReadinessPhase::NotReady));
    assert!(
        repo.reason
            .as_deref()
            .unwrap_or_default()
            .contains("already exists on another storage (elsewhere)"),
        "{repo:?}"
    );
    assert!(plan.create_repositories.is_empty());
}

#[test]
fn retries_are_set_from_the_retry_config() {
    let mut config = config();
    config.spec.sessions[0].retry_config = Some(stowaway_api::backup_configuration::RetryConfig {
        max_retry: Some(3),
        delay: Some("1m".into()),
    });
    config.spec.sessions[0].backup_timeout = Some("2h".into());
    let invoker = Invoker::Configuration(&config);
    let session = new_session(
        invoker,
        &invoker.sessions()[0],
        at("2026-01-01T02:00:00Z"),
        "schedule",
    );
    assert_eq!(session.spec.retry_left, Some(3));
    assert_eq!(session.spec.backup_timeout.as_deref(), Some("2h"));
    let owner = session.owner_references().first().expect("owner");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("BackupConfiguration", "db", Some(true))
    );
}
