//! The Repository reconciler's decisions: phase, counts and recent snapshots from what opening
//! (or creating) the repository gave, and what deleting the Repository does.
//!
//! [`decide`] is pure: the kube layer ([`crate::controller::repository`]) gathers an
//! [`Observed`] state (including the outcome of opening the repository with its password,
//! creating it when the path holds none: idempotent), calls it, and carries out the [`Plan`].

use std::cmp::Reverse;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::common::{DeletionPolicy, ReadinessPhase, RunPhase};
use stowaway_api::repository::{RepositoryStatus, SnapshotInfo};
use stowaway_api::{Repository, Snapshot, size};

use crate::conditions;
use crate::events::Note;
use crate::integrity;
use crate::names;
use crate::snapshot_mirror;
use crate::storage_access::RepositoryFacts;

/// Condition: the repository exists at the path and opens with the password.
pub const REPOSITORY_INITIALIZED: &str = "RepositoryInitialized";
/// Reason of a True [`REPOSITORY_INITIALIZED`].
pub const INITIALIZATION_SUCCEEDED: &str = "RepositoryInitializationSucceeded";
/// Reason of a False [`REPOSITORY_INITIALIZED`] for storage or repository errors.
pub const INITIALIZATION_FAILED: &str = "RepositoryInitializationFailed";
/// Reason: the password opens no key of the repository.
pub const WRONG_PASSWORD: &str = "WrongPassword";
/// Reason: the BackupStorage does not exist.
pub const STORAGE_NOT_FOUND: &str = "BackupStorageNotFound";
/// Reason: the BackupStorage exists but cannot be reached (its Secret, its settings, a volume
/// the operator does not see).
pub const STORAGE_NOT_REACHABLE: &str = "BackupStorageNotReachable";
/// Reason: the BackupStorage's usage policy does not allow the Repository's namespace.
pub const STORAGE_NOT_ALLOWED: &str = "BackupStorageNotAllowed";
/// Reason: the encryption Secret or its key is missing.
pub const ENCRYPTION_SECRET_NOT_AVAILABLE: &str = "EncryptionSecretNotAvailable";
/// Reason: the path holds other data and no repository.
pub const PATH_NOT_EMPTY: &str = "PathNotEmpty";
/// Event reason: deleting the data (`WipeOut`) failed.
pub const WIPE_OUT_FAILED: &str = "WipeOutFailed";

/// Entries of `status.recentSnapshots`.
pub const RECENT_SNAPSHOTS: usize = 5;
/// How often a Ready repository is looked at again (new snapshots, size).
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// How soon a repository that is not Ready, or whose deletion failed, is looked at again.
pub const RETRY: Duration = Duration::from_secs(60);

/// What opening the repository gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not tried (deleting, or paused).
    NotChecked,
    /// Opened, or created now (`created`).
    Opened {
        /// Whether this reconcile created it.
        created: bool,
        /// What the status shows of its data.
        facts: RepositoryFacts,
    },
    /// Something stood in the way: the condition reason (one of this module's constants) and
    /// the message.
    Problem {
        /// CamelCase reason.
        reason: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The repository.
    pub repository: &'a Repository,
    /// Opening it.
    pub outcome: Outcome,
    /// Snapshot objects of its namespace ([`decide`] keeps those of this repository).
    pub snapshots: &'a [Snapshot],
    /// The time of this decision.
    pub now: Timestamp,
    /// The integrity check this reconcile ran, if one was due ([`integrity`]).
    pub integrity: Option<integrity::CheckResult>,
}

/// What to do once the Repository is being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// `deletionPolicy: Delete`: keep the data.
    KeepData,
    /// `deletionPolicy: WipeOut`: delete everything under the repository's path first (the
    /// finalizer stays if that fails).
    WipeOut,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status (`None`: leave it).
    pub status: Option<RepositoryStatus>,
    /// Add [`names::FINALIZER`].
    pub add_finalizer: bool,
    /// Finish the deletion: then delete [`Plan::delete_snapshots`] and remove the finalizer.
    pub finalize: Option<Finalize>,
    /// Snapshot objects to delete (on deletion).
    pub delete_snapshots: Vec<String>,
    /// Snapshot objects mirroring the repository's snapshots ([`snapshot_mirror`]).
    pub mirror: snapshot_mirror::Plan,
    /// Snapshot objects whose integrity the check changed: name, new value, and the names of
    /// their components (which take the same value).
    pub snapshot_integrity: Vec<(String, bool, Vec<String>)>,
    /// Events to record on the repository.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Whether the Snapshot object belongs to `repo` (same namespace, `spec.repository`).
pub fn is_snapshot_of(snapshot: &Snapshot, repo: &Repository) -> bool {
    snapshot.spec.repository == repo.name_any() && snapshot.namespace() == repo.namespace()
}

/// Whether the object is being deleted.
pub fn is_deleting(repo: &Repository) -> bool {
    repo.metadata.deletion_timestamp.is_some()
}

/// Whether the object carries the operator's finalizer.
pub fn has_finalizer(repo: &Repository) -> bool {
    repo.finalizers().iter().any(|f| f == names::FINALIZER)
}

/// Whether the operator leaves the repository alone (`spec.paused`); deletion is still
/// finished.
pub fn is_paused(repo: &Repository) -> bool {
    repo.spec.paused.unwrap_or(false)
}

/// Decides what a Repository needs now.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let repo = observed.repository;
    let now = observed.now;
    let mut plan = Plan::default();
    let mut own: Vec<&Snapshot> = observed
        .snapshots
        .iter()
        .filter(|s| is_snapshot_of(s, repo))
        .collect();
    own.sort_by_key(|s| s.name_any());

    if is_deleting(repo) {
        if has_finalizer(repo) {
            plan.finalize = Some(match repo.spec.deletion_policy {
                DeletionPolicy::Delete => Finalize::KeepData,
                DeletionPolicy::WipeOut => Finalize::WipeOut,
            });
            plan.delete_snapshots = own.iter().map(|s| s.name_any()).collect();
        }
        return plan;
    }
    plan.add_finalizer = !has_finalizer(repo);
    if is_paused(repo) {
        return plan;
    }

    let previous = repo.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    match &observed.outcome {
        Outcome::NotChecked => return plan,
        Outcome::Opened { created, facts } => {
            conditions::set(
                &mut status.conditions,
                REPOSITORY_INITIALIZED,
                true,
                INITIALIZATION_SUCCEEDED,
                "",
                now,
            );
            status.phase = Some(ReadinessPhase::Ready);
            status.snapshot_count = Some(i32::try_from(facts.snapshots.len()).unwrap_or(i32::MAX));
            status.size = Some(size::format(facts.stored_bytes));
            status.last_backup_time = facts
                .snapshots
                .iter()
                .map(|s| s.time)
                .max()
                .map(status_time);
            plan.mirror = snapshot_mirror::decide(repo, observed.snapshots, &facts.snapshots);
            let objects = after_mirroring(&own, &plan.mirror);
            let objects: Vec<&Snapshot> = objects.iter().collect();
            status.recent_snapshots = recent_snapshots(&objects, facts);
            if let Some(result) = &observed.integrity {
                apply_check(&mut plan, &mut status, &previous, &objects, result, now);
            }
            if !conditions::is_true(&previous.conditions, REPOSITORY_INITIALIZED) {
                plan.events.push(Note::normal(
                    INITIALIZATION_SUCCEEDED,
                    if *created {
                        format!("created the repository at path {}", repo.spec.path)
                    } else {
                        format!("opened the existing repository at path {}", repo.spec.path)
                    },
                ));
            }
        }
        Outcome::Problem { reason, message } => {
            conditions::set(
                &mut status.conditions,
                REPOSITORY_INITIALIZED,
                false,
                reason,
                message.clone(),
                now,
            );
            status.phase = Some(ReadinessPhase::NotReady);
            let before = conditions::get(&previous.conditions, REPOSITORY_INITIALIZED);
            let same = before.is_some_and(|c| {
                c.status == stowaway_api::common::ConditionStatus::False
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message.as_str())
            });
            if !same {
                plan.events.push(Note::warning(reason, message.clone()));
            }
        }
    }
    plan.requeue_after = Some(if status.phase == Some(ReadinessPhase::Ready) {
        REFRESH
    } else {
        RETRY
    });
    plan.status = Some(status);
    plan
}

/// Records an integrity check: the Repository's integrity and condition, the Snapshot
/// objects' integrity, and a warning when the check found damage it had not reported yet.
fn apply_check(
    plan: &mut Plan,
    status: &mut RepositoryStatus,
    previous: &RepositoryStatus,
    objects: &[&Snapshot],
    result: &integrity::CheckResult,
    now: Timestamp,
) {
    let condition = integrity::condition(result, now);
    status.integrity = Some(result.errors.is_empty());
    let before = conditions::get(&previous.conditions, integrity::INTEGRITY_VERIFIED);
    let reported = before.is_some_and(|c| c.message == condition.message);
    if !result.errors.is_empty() && !reported {
        let damaged_ids = result.damaged();
        let mut damaged: Vec<String> = objects
            .iter()
            .filter(|o| {
                o.spec
                    .snapshot_id
                    .as_deref()
                    .is_some_and(|id| damaged_ids.contains(id))
            })
            .map(|o| o.name_any())
            .collect();
        damaged.sort();
        let names = if damaged.is_empty() {
            String::new()
        } else {
            format!("; damaged Snapshots: {}", damaged.join(", "))
        };
        plan.events.push(Note::warning(
            integrity::CHECK_FAILED,
            format!("{}{names}", condition.message.clone().unwrap_or_default()),
        ));
    }
    status
        .conditions
        .retain(|c| c.type_ != integrity::INTEGRITY_VERIFIED);
    status.conditions.push(condition);
    plan.snapshot_integrity = integrity::snapshot_updates(objects, result)
        .into_iter()
        .map(|(name, sound)| {
            let components = objects
                .iter()
                .find(|o| o.name_any() == name)
                .and_then(|o| o.status.as_ref())
                .map(|s| s.components.keys().cloned().collect())
                .unwrap_or_default();
            (name, sound, components)
        })
        .collect();
}

/// The newest [`RECENT_SNAPSHOTS`] snapshots, newest first: every Snapshot object of the
/// repository, and the snapshots of the data that no object stands for
/// ([`snapshot_mirror::stands_for`]; named by their short id, phase `Succeeded`: a snapshot
/// is in the data only once it is complete).
pub fn recent_snapshots(objects: &[&Snapshot], facts: &RepositoryFacts) -> Vec<SnapshotInfo> {
    let matches = snapshot_mirror::stands_for;
    let mut entries: Vec<(Timestamp, SnapshotInfo)> = Vec::new();
    for object in objects {
        let data = facts.snapshots.iter().find(|d| matches(object, d));
        let status = object.status.as_ref();
        let time = status
            .and_then(|s| s.snapshot_time.as_ref())
            .map(|t| t.0)
            .or(data.map(|d| d.time))
            .or(object.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        entries.push((
            time,
            SnapshotInfo {
                name: object.name_any(),
                phase: status.and_then(|s| s.phase),
                session: object.spec.session.clone(),
                size: status
                    .and_then(|s| s.size.clone())
                    .or(data.map(|d| size::format(d.size))),
                snapshot_time: status
                    .and_then(|s| s.snapshot_time.clone())
                    .or(data.map(|d| status_time(d.time))),
            },
        ));
    }
    for data in &facts.snapshots {
        if objects.iter().any(|o| matches(o, data)) {
            continue;
        }
        entries.push((
            data.time,
            SnapshotInfo {
                name: data.id.chars().take(8).collect(),
                phase: Some(RunPhase::Succeeded),
                session: None,
                size: Some(size::format(data.size)),
                snapshot_time: Some(status_time(data.time)),
            },
        ));
    }
    entries.sort_by(|a, b| {
        Reverse(a.0)
            .cmp(&Reverse(b.0))
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    entries
        .into_iter()
        .take(RECENT_SNAPSHOTS)
        .map(|(_, info)| info)
        .collect()
}

/// The repository's Snapshot objects once `mirror` is carried out, so that the status shows
/// them at once (and is not written again by the next reconcile).
fn after_mirroring(own: &[&Snapshot], mirror: &snapshot_mirror::Plan) -> Vec<Snapshot> {
    let mut objects: Vec<Snapshot> = own
        .iter()
        .filter(|s| !mirror.delete.contains(&s.name_any()))
        .map(|s| {
            let mut s = (*s).clone();
            if let Some((_, status)) = mirror.repair.iter().find(|(n, _)| *n == s.name_any()) {
                s.status = Some(status.clone());
            }
            s
        })
        .collect();
    objects.extend(mirror.create.iter().cloned());
    objects
}

/// A status time: whole seconds, as the API server keeps them (a status with finer times would
/// differ from its stored copy and be written again on every reconcile).
pub(crate) fn status_time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The Warning event for a failed `WipeOut`.
pub fn wipe_out_failed(repo: &Repository, error: &str) -> Note {
    Note::warning(
        WIPE_OUT_FAILED,
        format!(
            "deleting the data of Repository {}/{} at path {} (deletionPolicy WipeOut) failed: \
             {error}; retrying. To keep the data instead, set spec.deletionPolicy to Delete",
            repo.namespace().unwrap_or_default(),
            repo.name_any(),
            repo.spec.path
        ),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use stowaway_api::common::ObjectReference;
    use stowaway_api::repository::RepositorySpec;
    use stowaway_api::snapshot::{SnapshotSpec, SnapshotStatus};

    use super::*;
    use crate::storage_access::DataSnapshot;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn now() -> Timestamp {
        at("2026-03-01T12:00:00Z")
    }

    fn repo(deleting: bool, finalizer: bool, policy: DeletionPolicy) -> Repository {
        Repository {
            metadata: ObjectMeta {
                name: Some("repo".into()),
                namespace: Some("apps".into()),
                finalizers: finalizer.then(|| vec![names::FINALIZER.to_owned()]),
                deletion_timestamp: deleting.then(|| Time(now())),
                ..ObjectMeta::default()
            },
            spec: RepositorySpec {
                storage_ref: ObjectReference {
                    namespace: Some("stash".into()),
                    name: "store".into(),
                },
                path: "apps/repo".into(),
                deletion_policy: policy,
                ..RepositorySpec::default()
            },
            status: None,
        }
    }

    fn snapshot(name: &str, repository: &str, id: Option<&str>) -> Snapshot {
        Snapshot {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("apps".into()),
                creation_timestamp: Some(Time(at("2026-02-01T00:00:00Z"))),
                ..ObjectMeta::default()
            },
            spec: SnapshotSpec {
                repository: repository.into(),
                snapshot_id: id.map(str::to_owned),
                session: Some("daily".into()),
                ..SnapshotSpec::default()
            },
            status: None,
        }
    }

    fn data(id_char: char, time: &str, size: u64) -> DataSnapshot {
        DataSnapshot {
            id: std::iter::repeat_n(id_char, 64).collect(),
            time: at(time),
            size,
            ..DataSnapshot::default()
        }
    }

    fn opened(snapshots: Vec<DataSnapshot>) -> Outcome {
        Outcome::Opened {
            created: false,
            facts: RepositoryFacts {
                snapshots,
                stored_bytes: 2048,
            },
        }
    }

    fn observe<'a>(repo: &'a Repository, outcome: Outcome, snaps: &'a [Snapshot]) -> Observed<'a> {
        Observed {
            integrity: None,
            repository: repo,
            outcome,
            snapshots: snaps,
            now: now(),
        }
    }

    #[test]
    fn outcome_table() {
        let r = repo(false, true, DeletionPolicy::Delete);
        let cases = [
            (
                opened(vec![]),
                ReadinessPhase::Ready,
                INITIALIZATION_SUCCEEDED,
                false,
            ),
            (
                Outcome::Problem {
                    reason: WRONG_PASSWORD,
                    message: "wrong password".into(),
                },
                ReadinessPhase::NotReady,
                WRONG_PASSWORD,
                true,
            ),
            (
                Outcome::Problem {
                    reason: STORAGE_NOT_FOUND,
                    message: "BackupStorage stash/store not found".into(),
                },
                ReadinessPhase::NotReady,
                STORAGE_NOT_FOUND,
                true,
            ),
            (
                Outcome::Problem {
                    reason: ENCRYPTION_SECRET_NOT_AVAILABLE,
                    message: "Secret apps/enc has no key RESTIC_PASSWORD (or password)".into(),
                },
                ReadinessPhase::NotReady,
                ENCRYPTION_SECRET_NOT_AVAILABLE,
                true,
            ),
            (
                Outcome::Problem {
                    reason: INITIALIZATION_FAILED,
                    message: "storage error".into(),
                },
                ReadinessPhase::NotReady,
                INITIALIZATION_FAILED,
                true,
            ),
        ];
        for (outcome, phase, reason, warning) in cases {
            let plan = decide(&observe(&r, outcome, &[]));
            let status = plan.status.expect("status");
            assert_eq!(status.phase, Some(phase));
            let c = conditions::get(&status.conditions, REPOSITORY_INITIALIZED).expect("cond");
            assert_eq!(c.reason.as_deref(), Some(reason));
            assert_eq!(plan.events.len(), 1, "{reason}");
            assert_eq!(plan.events[0].warning, warning);
            assert_eq!(plan.events[0].reason, reason);
            assert_eq!(
                plan.requeue_after,
                Some(if warning { RETRY } else { REFRESH })
            );
            assert!(status.integrity.is_none());
        }
    }

    #[test]
    fn reconciling_again_changes_nothing() {
        let mut r = repo(false, true, DeletionPolicy::Delete);
        let outcome = Outcome::Problem {
            reason: WRONG_PASSWORD,
            message: "wrong password".into(),
        };
        let first = decide(&observe(&r, outcome.clone(), &[]));
        r.status = first.status.clone();
        let second = decide(&observe(&r, outcome, &[]));
        assert_eq!(second.status, first.status);
        assert!(second.events.is_empty());
        let ok = opened(vec![data('a', "2026-02-01T00:00:00Z", 10)]);
        let third = decide(&observe(&r, ok.clone(), &[]));
        r.status = third.status.clone();
        assert_eq!(third.events.len(), 1);
        let fourth = decide(&observe(&r, ok, &[]));
        assert_eq!(fourth.status, third.status);
        assert!(fourth.events.is_empty());
    }

    #[test]
    fn status_from_facts() {
        let r = repo(false, false, DeletionPolicy::Delete);
        let snaps: Vec<DataSnapshot> = (1..=7)
            .map(|d| {
                data(
                    char::from(b'0' + d),
                    &format!("2026-02-0{d}T00:00:00Z"),
                    1024,
                )
            })
            .collect();
        let mut object = snapshot("repo-daily-1", "repo", Some(&"7".repeat(64)));
        object.status = Some(SnapshotStatus {
            phase: Some(RunPhase::Succeeded),
            size: Some("1.00 KiB".into()),
            ..SnapshotStatus::default()
        });
        let running = snapshot("repo-daily-2", "repo", None);
        let other = snapshot("other-daily-1", "other", Some(&"6".repeat(64)));
        let objects = [object, running, other];
        let plan = decide(&observe(&r, opened(snaps), &objects));
        assert!(plan.add_finalizer);
        let status = plan.status.expect("status");
        assert_eq!(status.snapshot_count, Some(7));
        assert_eq!(status.size.as_deref(), Some("2.00 KiB"));
        assert_eq!(
            status.last_backup_time,
            Some(Time(at("2026-02-07T00:00:00Z")))
        );
        let names: Vec<&str> = status
            .recent_snapshots
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "repo-daily-1",
                "repo-66666666",
                "repo-55555555",
                "repo-44444444",
                "repo-33333333"
            ],
            "the snapshots without an object show under the names of their mirrored objects"
        );
        assert_eq!(
            plan.mirror.create.len(),
            6,
            "all but the one with an object"
        );
        assert!(plan.mirror.delete.is_empty());
        let newest = &status.recent_snapshots[0];
        assert_eq!(newest.phase, Some(RunPhase::Succeeded));
        assert_eq!(newest.session.as_deref(), Some("daily"));
        assert_eq!(
            newest.snapshot_time,
            Some(Time(at("2026-02-07T00:00:00Z"))),
            "time from the data when the object has none"
        );
    }

    #[test]
    fn deletion_table() {
        let objects = [
            snapshot("repo-a", "repo", None),
            snapshot("repo-b", "repo", None),
            snapshot("other-a", "other", None),
        ];
        let cases = [
            (DeletionPolicy::Delete, true, Some(Finalize::KeepData), 2),
            (DeletionPolicy::WipeOut, true, Some(Finalize::WipeOut), 2),
            (DeletionPolicy::WipeOut, false, None, 0),
        ];
        for (policy, finalizer, finalize, deleted) in cases {
            let r = repo(true, finalizer, policy);
            let plan = decide(&observe(&r, Outcome::NotChecked, &objects));
            assert_eq!(plan.finalize, finalize, "{policy:?}");
            assert_eq!(plan.delete_snapshots.len(), deleted);
            assert!(!plan.add_finalizer);
            assert_eq!(plan.status, None);
        }
    }

    #[test]
    fn paused_repositories_are_left_alone() {
        let mut r = repo(false, true, DeletionPolicy::Delete);
        r.spec.paused = Some(true);
        let plan = decide(&observe(&r, Outcome::NotChecked, &[]));
        assert_eq!(plan, Plan::default());
    }
}
