use std::sync::Arc;

use jiff::Timestamp;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::restore_session::RestorePhase;

use super::*;
use crate::standalone::clock::ManualClock;
use crate::testing::{FakeWork, eventually};

fn ts(s: &str) -> Timestamp {
    s.parse().expect(s)
}

fn store(work: &Arc<FakeWork>) -> LocalStore {
    LocalStore::new(
        "app",
        work.clone(),
        Arc::new(ManualClock::new(ts("2026-01-02T03:04:05Z"))),
    )
}

async fn phase(store: &LocalStore, name: &str) -> BackupSessionPhase {
    store.backup(name).await.expect("known").phase
}

fn busy(result: Result<String, StoreError>) -> String {
    match result {
        Err(StoreError::Busy(message)) => message,
        other => panic!("not busy: {other:?}"),
    }
}

#[tokio::test]
async fn runs_never_overlap_and_one_backup_waits_at_most() {
    let work = Arc::new(FakeWork::new(true));
    let store = store(&work);
    let worker = tokio::spawn({
        let store = store.clone();
        async move { store.work().await }
    });
    let first = store
        .create_backup(&BackupRequest {
            tag: Some("before upgrade".into()),
            ..BackupRequest::default()
        })
        .await
        .expect("first");
    assert!(first.starts_with("app-ondemand-1767323045-"), "{first}");
    eventually("the first run", || work.jobs().len() == 1).await;
    assert_eq!(phase(&store, &first).await, BackupSessionPhase::Running);

    let second = store
        .create_backup(&BackupRequest::default())
        .await
        .expect("second waits");
    assert_eq!(phase(&store, &second).await, BackupSessionPhase::Pending);
    let message = busy(store.create_backup(&BackupRequest::default()).await);
    assert_eq!(
        message,
        format!(
            "backup {second} already waits for {first} to finish, and will include what \
             changed until it starts; ask again once it has started (GET /v1/backups/{second})"
        )
    );
    // A scheduled instant meets the same rule.
    let message = busy(store.submit_backup(
        Trigger::Schedule {
            scheduled_for: ts("2026-01-02T04:00:00Z"),
        },
        &BackupRequest::default(),
    ));
    assert!(
        message.starts_with(&format!("backup {second} already waits")),
        "{message}"
    );

    work.release();
    eventually("the second run", || work.jobs().len() == 2).await;
    let info = store.backup(&first).await.expect("first");
    assert_eq!(info.phase, BackupSessionPhase::Succeeded);
    assert_eq!(info.trigger.as_deref(), Some("on-demand"));
    assert_eq!(info.tag.as_deref(), Some("before upgrade"));
    assert_eq!(info.session, "app");
    assert_eq!(info.size.as_deref(), Some("1.50 KiB"));
    assert_eq!(info.snapshots.len(), 1);
    assert_eq!(info.snapshots[0].name, format!("{:064x}", 1));
    assert!(info.duration.is_some() && info.error.is_none());
    assert_eq!(phase(&store, &second).await, BackupSessionPhase::Running);
    work.release();
    eventually("the second to end", || !store.busy()).await;
    assert_eq!(phase(&store, &second).await, BackupSessionPhase::Succeeded);
    assert_eq!(work.max_active(), 1, "two runs overlapped");

    store.stop();
    worker.await.expect("the worker ends after stop");
}

#[tokio::test]
async fn requests_are_checked_against_the_sidecar() {
    let work = Arc::new(FakeWork::new(false));
    let store = store(&work);
    let e = store
        .create_backup(&BackupRequest {
            session: Some("daily".into()),
            ..BackupRequest::default()
        })
        .await
        .expect_err("unknown session");
    assert_eq!(
        e.to_string(),
        "session: BackupConfiguration app has no session \"daily\" (it has: app)"
    );
    let e = store
        .create_backup(&BackupRequest {
            components: vec!["data".into(), "logs".into()],
            ..BackupRequest::default()
        })
        .await
        .expect_err("unknown component");
    assert_eq!(
        e.to_string(),
        "components: \"logs\" is not a volume of this sidecar (it has: data, uploads)"
    );
    let e = store.backup("app-nope").await.expect_err("unknown run");
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                kind: "BackupSession",
                ..
            }
        ),
        "{e}"
    );
    let e = store
        .restore("app-nope")
        .await
        .expect_err("unknown restore");
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                kind: "RestoreSession",
                ..
            }
        ),
        "{e}"
    );
    // A backup's name is not a restore's, and the other way round.
    let name = store
        .create_backup(&BackupRequest {
            session: Some("app".into()),
            components: vec!["uploads".into()],
            ..BackupRequest::default()
        })
        .await
        .expect("backup");
    assert!(store.restore(&name).await.is_err());
    assert_eq!(
        store.backup(&name).await.expect("backup").components,
        ["uploads"]
    );
}

#[tokio::test]
async fn restores_resolve_their_snapshot_and_report_their_phase() {
    let work = Arc::new(FakeWork::new(true));
    work.add_snapshot(
        &"ab".repeat(32),
        "2026-01-01T00:00:00Z",
        &["data", "uploads"],
    );
    work.add_snapshot(&"cd".repeat(32), "2026-01-02T00:00:00Z", &["data"]);
    let newest = format!("cdcdcdcd{}", "ef".repeat(28));
    work.add_snapshot(&newest, "2026-01-03T00:00:00Z", &["data"]);
    let store = store(&work);
    let worker = tokio::spawn({
        let store = store.clone();
        async move { store.work().await }
    });
    let latest = store
        .create_restore(&RestoreRequest {
            snapshot: "latest".into(),
            components: Vec::new(),
        })
        .await
        .expect("latest");
    assert!(latest.starts_with("app-restore-1767323045-"), "{latest}");
    eventually("the restore", || work.jobs().len() == 1).await;
    assert_eq!(
        work.jobs()[0],
        Job::Restore {
            name: latest.clone(),
            snapshot: newest.clone(),
            components: Vec::new(),
        }
    );
    let info = store.restore(&latest).await.expect("info");
    assert_eq!(info.phase, RestorePhase::Running);
    // A prefix of eight digits or more names one snapshot; a shorter or shared one does not.
    let by_prefix = store
        .create_restore(&RestoreRequest {
            snapshot: "abababab".into(),
            components: vec!["uploads".into()],
        })
        .await
        .expect("prefix");
    let message = busy(
        store
            .create_restore(&RestoreRequest {
                snapshot: "latest".into(),
                components: Vec::new(),
            })
            .await,
    );
    assert!(
        message.starts_with(&format!("restore {by_prefix} already waits")),
        "{message}"
    );
    let e = store
        .create_restore(&RestoreRequest {
            snapshot: "cd".into(),
            components: Vec::new(),
        })
        .await
        .expect_err("short prefix");
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                kind: "Snapshot",
                ..
            }
        ),
        "{e}"
    );
    let e = store
        .create_restore(&RestoreRequest {
            snapshot: "cdcdcdcd".into(),
            components: Vec::new(),
        })
        .await
        .expect_err("shared prefix");
    assert_eq!(
        e.to_string(),
        "snapshot: \"cdcdcdcd\" is the start of several snapshots' names: give more"
    );
    let e = store
        .create_restore(&RestoreRequest {
            snapshot: "abababab".into(),
            components: vec!["logs".into()],
        })
        .await
        .expect_err("missing component");
    assert!(e.to_string().starts_with("components: snapshot "), "{e}");
    work.release();
    work.release();
    eventually("both restores", || !store.busy()).await;
    let info = store.restore(&by_prefix).await.expect("info");
    assert_eq!(info.phase, RestorePhase::Succeeded);
    assert_eq!(info.snapshot, Some("ab".repeat(32)));
    assert_eq!(info.components, ["uploads"]);
    store.stop();
    worker.await.expect("worker");
}

#[tokio::test]
async fn stopping_cancels_the_running_run_and_fails_the_waiting_ones() {
    let work = Arc::new(FakeWork::new(true));
    let store = store(&work);
    let worker = tokio::spawn({
        let store = store.clone();
        async move { store.work().await }
    });
    let running = store
        .create_backup(&BackupRequest::default())
        .await
        .expect("running");
    eventually("the run", || work.jobs().len() == 1).await;
    let waiting = store
        .create_backup(&BackupRequest::default())
        .await
        .expect("waiting");
    store.stop();
    tokio::time::timeout(std::time::Duration::from_secs(10), worker)
        .await
        .expect("the worker ends")
        .expect("worker");
    let info = store.backup(&running).await.expect("running");
    assert_eq!(info.phase, BackupSessionPhase::Failed);
    assert_eq!(info.error.as_deref(), Some("cancelled"));
    let info = store.backup(&waiting).await.expect("waiting");
    assert_eq!(info.phase, BackupSessionPhase::Failed);
    assert_eq!(
        info.error.as_deref(),
        Some("the sidecar stopped before the run started")
    );
    assert_eq!(work.jobs().len(), 1, "the waiting run never started");
    let message = busy(store.create_backup(&BackupRequest::default()).await);
    assert_eq!(message, "the sidecar is stopping: it takes no new runs");
}

#[tokio::test]
async fn old_finished_runs_are_forgotten() {
    let work = Arc::new(FakeWork::new(false));
    let store = LocalStore::with_limits(
        "app",
        work.clone(),
        Arc::new(ManualClock::new(ts("2026-01-02T03:04:05Z"))),
        RunLimits { history: 2 },
    );
    let worker = tokio::spawn({
        let store = store.clone();
        async move { store.work().await }
    });
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(
            store
                .create_backup(&BackupRequest::default())
                .await
                .expect("backup"),
        );
        eventually("the run", || !store.busy()).await;
    }
    assert!(
        store.backup(&names[0]).await.is_err(),
        "the oldest is forgotten"
    );
    assert!(store.backup(&names[1]).await.is_ok());
    assert!(store.backup(&names[2]).await.is_ok());
    store.stop();
    worker.await.expect("worker");
}
