//! The BackupStorage reconciler's decisions: conditions and phase from what reaching the
//! backend gave, the Repositories stored there, and what deleting the storage does.
//!
//! [`decide`] is pure: the kube layer ([`crate::controller::backup_storage`]) gathers an
//! [`Observed`] state (including the outcome of initialising the backend, which is idempotent:
//! the marker object is written only when absent), calls it, and carries out the [`Plan`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use stowaway_api::backup_storage::{BackupStorageStatus, RepositoryInfo};
use stowaway_api::common::{ConditionStatus, DeletionPolicy, ReadinessPhase};
use stowaway_api::{BackupStorage, Repository, size};

use crate::admission::Catalog;
use crate::conditions;
use crate::events::Note;
use crate::names;
use crate::storage_access::AccessError;

/// Condition: the Secret named by the provider block exists and holds the needed keys.
pub const BACKEND_SECRET_FOUND: &str = "BackendSecretFound";
/// Condition: the backend was initialised (marker written and read back).
pub const BACKEND_INITIALIZED: &str = "BackendInitialized";
/// Reason of a True [`BACKEND_SECRET_FOUND`].
pub const SECRET_AVAILABLE: &str = "BackendSecretAvailable";
/// Reason of a False [`BACKEND_SECRET_FOUND`].
pub const SECRET_NOT_AVAILABLE: &str = "BackendSecretNotAvailable";
/// Reason of a True [`BACKEND_INITIALIZED`].
pub const INITIALIZATION_SUCCEEDED: &str = "BackendInitializationSucceeded";
/// Reason of a False [`BACKEND_INITIALIZED`].
pub const INITIALIZATION_FAILED: &str = "BackendInitializationFailed";
/// Event reason: deletion waits for the Repositories that still use the storage.
pub const STORAGE_IN_USE: &str = "StorageInUse";
/// Event reason: deleting the data (`WipeOut`) failed.
pub const WIPE_OUT_FAILED: &str = "WipeOutFailed";

/// How often a Ready storage is looked at again (repository sizes change).
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// How soon a storage that is not Ready, or whose deletion waits, is looked at again.
pub const RETRY: Duration = Duration::from_secs(60);

/// What was found of the backend Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// The provider uses no Secret (`local`, or ambient credentials).
    NotNeeded,
    /// Found, with every key needed.
    Available(String),
    /// Missing, or lacking a key (the text says which).
    NotAvailable(String),
}

/// What initialising the backend gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendState {
    /// Not tried (deleting, or no credentials).
    NotChecked,
    /// The marker is there and could be read back.
    Initialized,
    /// Initialising failed (the text is the storage error and what to do).
    Failed(String),
}

impl SecretState {
    /// The state of the Secret `secret_name` in `namespace` (`found`: whether it exists),
    /// given the outcome of building the storage access from it.
    pub fn of(
        secret_name: Option<&str>,
        namespace: &str,
        found: bool,
        access: Result<(), &AccessError>,
    ) -> Self {
        match (access, secret_name) {
            (Err(e), _) if e.is_secret_problem() => SecretState::NotAvailable(e.to_string()),
            (_, None) => SecretState::NotNeeded,
            (_, Some(name)) if found => {
                SecretState::Available(format!("Secret {namespace}/{name} found"))
            }
            (_, Some(name)) => SecretState::NotAvailable(
                AccessError::SecretNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    purpose: "backend credentials",
                }
                .to_string(),
            ),
        }
    }
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The storage.
    pub storage: &'a BackupStorage,
    /// Its Secret.
    pub secret: SecretState,
    /// Its backend.
    pub backend: BackendState,
    /// Repositories of every namespace ([`decide`] keeps those stored here).
    pub repositories: &'a [Repository],
    /// Labels of the namespaces of those Repositories, by name (for a usage policy with
    /// `from: Selector`).
    pub namespace_labels: &'a NamespaceLabels,
    /// The time of this decision.
    pub now: Timestamp,
}

/// What to do with the data once nothing uses the storage any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// `deletionPolicy: Delete`: keep the data, remove the finalizer.
    KeepData,
    /// `deletionPolicy: WipeOut`: delete every object under the prefix, then remove the
    /// finalizer (kept if deleting fails).
    WipeOut,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status.
    pub status: BackupStorageStatus,
    /// Add [`names::FINALIZER`].
    pub add_finalizer: bool,
    /// Finish the deletion.
    pub finalize: Option<Finalize>,
    /// Events to record on the storage.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Whether `repo` is stored in the BackupStorage `namespace/name` (its `storageRef`
/// namespace defaults to its own).
pub fn uses_storage(repo: &Repository, namespace: &str, name: &str) -> bool {
    let reference = &repo.spec.storage_ref;
    let repo_ns = repo.namespace().unwrap_or_default();
    let ns = reference
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&repo_ns);
    reference.name == name && ns == namespace
}

/// Labels of namespaces, by namespace name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// Whether the storage's usage policy lets Repositories of `namespace` use it (`labels`:
/// those of the namespaces, needed for `from: Selector`).
pub fn usage_allowed(storage: &BackupStorage, namespace: &str, labels: &NamespaceLabels) -> bool {
    let catalog = Catalog {
        namespace_labels: labels.clone(),
        ..Catalog::default()
    };
    crate::admission::usage_allowed(
        storage.spec.usage_policy.as_ref(),
        &storage.namespace().unwrap_or_default(),
        namespace,
        &catalog,
    )
}

/// Whether the object is being deleted.
pub fn is_deleting(storage: &BackupStorage) -> bool {
    storage.metadata.deletion_timestamp.is_some()
}

/// Whether the object carries the operator's finalizer.
pub fn has_finalizer(storage: &BackupStorage) -> bool {
    storage.finalizers().iter().any(|f| f == names::FINALIZER)
}

/// Decides what a BackupStorage needs now.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let storage = observed.storage;
    let now = observed.now;
    let namespace = storage.namespace().unwrap_or_default();
    let name = storage.name_any();
    let previous = storage.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let mut users: Vec<&Repository> = observed
        .repositories
        .iter()
        .filter(|r| {
            uses_storage(r, &namespace, &name)
                && usage_allowed(
                    storage,
                    &r.namespace().unwrap_or_default(),
                    observed.namespace_labels,
                )
        })
        .collect();
    users.sort_by_key(|r| (r.namespace(), r.name_any()));
    let repositories: Vec<RepositoryInfo> = users
        .iter()
        .map(|r| RepositoryInfo {
            name: r.name_any(),
            namespace: r.namespace(),
            path: Some(r.spec.path.clone()),
            size: r.status.as_ref().and_then(|s| s.size.clone()),
            ..RepositoryInfo::default()
        })
        .collect();
    let known: Vec<u64> = repositories
        .iter()
        .filter_map(|r| r.size.as_deref().and_then(size::parse))
        .collect();
    let total_size = (!known.is_empty()).then(|| size::format(known.iter().sum()));

    if is_deleting(storage) {
        plan.status = BackupStorageStatus {
            repositories,
            total_size,
            ..previous
        };
        if !has_finalizer(storage) {
            return plan;
        }
        if users.is_empty() {
            plan.finalize = Some(match storage.spec.deletion_policy {
                DeletionPolicy::Delete => Finalize::KeepData,
                DeletionPolicy::WipeOut => Finalize::WipeOut,
            });
        } else {
            let list: Vec<String> = users
                .iter()
                .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
                .collect();
            plan.events.push(Note::warning(
                STORAGE_IN_USE,
                format!(
                    "BackupStorage {namespace}/{name} is still used by {} Repository object(s): {}; \
                     it is deleted once they are gone (delete them first)",
                    list.len(),
                    list.join(", ")
                ),
            ));
            plan.requeue_after = Some(RETRY);
        }
        return plan;
    }

    plan.add_finalizer = !has_finalizer(storage);
    let mut conditions = previous.conditions.clone();
    match &observed.secret {
        SecretState::NotNeeded => conditions.retain(|c| c.type_ != BACKEND_SECRET_FOUND),
        SecretState::Available(message) => conditions::set(
            &mut conditions,
            BACKEND_SECRET_FOUND,
            true,
            SECRET_AVAILABLE,
            message.clone(),
            now,
        ),
        SecretState::NotAvailable(message) => {
            conditions::set(
                &mut conditions,
                BACKEND_SECRET_FOUND,
                false,
                SECRET_NOT_AVAILABLE,
                message.clone(),
                now,
            );
            if changed(&previous.conditions, BACKEND_SECRET_FOUND, false, message) {
                plan.events.push(Note::warning(
                    SECRET_NOT_AVAILABLE,
                    format!("{message}: create it with the provider's keys"),
                ));
            }
        }
    }
    match &observed.backend {
        BackendState::NotChecked => {}
        BackendState::Initialized => {
            conditions::set(
                &mut conditions,
                BACKEND_INITIALIZED,
                true,
                INITIALIZATION_SUCCEEDED,
                "",
                now,
            );
            if !conditions::is_true(&previous.conditions, BACKEND_INITIALIZED) {
                plan.events.push(Note::normal(
                    INITIALIZATION_SUCCEEDED,
                    "backend initialized",
                ));
            }
        }
        BackendState::Failed(message) => {
            conditions::set(
                &mut conditions,
                BACKEND_INITIALIZED,
                false,
                INITIALIZATION_FAILED,
                message.clone(),
                now,
            );
            if changed(&previous.conditions, BACKEND_INITIALIZED, false, message) {
                plan.events
                    .push(Note::warning(INITIALIZATION_FAILED, message.clone()));
            }
        }
    }
    let secret_ok = conditions::get(&conditions, BACKEND_SECRET_FOUND)
        .is_none_or(|c| c.status == ConditionStatus::True);
    let ready = secret_ok && conditions::is_true(&conditions, BACKEND_INITIALIZED);
    plan.status = BackupStorageStatus {
        phase: Some(if ready {
            ReadinessPhase::Ready
        } else {
            ReadinessPhase::NotReady
        }),
        total_size,
        repositories,
        conditions,
    };
    plan.requeue_after = Some(if ready { REFRESH } else { RETRY });
    plan
}

/// Whether the condition `type_` differs from (`status`, `message`) before this decision: an
/// event is recorded on changes only, so that reconciling again records nothing new.
fn changed(
    previous: &[stowaway_api::common::Condition],
    type_: &str,
    status: bool,
    message: &str,
) -> bool {
    let status = if status {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    conditions::get(previous, type_)
        .is_none_or(|c| c.status != status || c.message.as_deref() != Some(message))
}

/// The Warning event for a failed `WipeOut`.
pub fn wipe_out_failed(storage: &BackupStorage, error: &str) -> Note {
    Note::warning(
        WIPE_OUT_FAILED,
        format!(
            "deleting the data of BackupStorage {}/{} (deletionPolicy WipeOut) failed: {error}; \
             retrying. To keep the data instead, set spec.deletionPolicy to Delete",
            storage.namespace().unwrap_or_default(),
            storage.name_any()
        ),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use stowaway_api::backup_storage::{Backend, BackupStorageSpec, Provider};
    use stowaway_api::common::{
        AllowedNamespaces, FromNamespaces, ObjectReference, TypedObjectReference, UsagePolicy,
    };
    use stowaway_api::repository::{RepositorySpec, RepositoryStatus};

    use super::*;

    fn now() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().expect("time")
    }

    fn storage(deleting: bool, finalizer: bool, policy: DeletionPolicy) -> BackupStorage {
        BackupStorage {
            metadata: ObjectMeta {
                name: Some("store".into()),
                namespace: Some("stash".into()),
                finalizers: finalizer.then(|| vec![names::FINALIZER.to_owned()]),
                deletion_timestamp: deleting.then(|| Time(now())),
                ..ObjectMeta::default()
            },
            spec: BackupStorageSpec {
                storage: Backend {
                    provider: Provider::Local,
                    ..Backend::default()
                },
                deletion_policy: policy,
                ..BackupStorageSpec::default()
            },
            status: None,
        }
    }

    fn repo(ns: &str, name: &str, storage_ns: Option<&str>, size: Option<&str>) -> Repository {
        Repository {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: RepositorySpec {
                app_ref: TypedObjectReference::default(),
                storage_ref: ObjectReference {
                    namespace: storage_ns.map(str::to_owned),
                    name: "store".into(),
                },
                path: format!("{ns}/{name}"),
                ..RepositorySpec::default()
            },
            status: size.map(|s| RepositoryStatus {
                size: Some(s.into()),
                ..RepositoryStatus::default()
            }),
        }
    }

    fn observe<'a>(
        storage: &'a BackupStorage,
        secret: SecretState,
        backend: BackendState,
        repositories: &'a [Repository],
    ) -> Observed<'a> {
        Observed {
            storage,
            secret,
            backend,
            repositories,
            namespace_labels: &NO_LABELS,
            now: now(),
        }
    }

    static NO_LABELS: NamespaceLabels = BTreeMap::new();

    #[test]
    fn readiness_table() {
        let s = storage(false, true, DeletionPolicy::Delete);
        struct Case {
            secret: SecretState,
            backend: BackendState,
            phase: ReadinessPhase,
            events: &'static [&'static str],
        }
        let cases = [
            Case {
                secret: SecretState::NotNeeded,
                backend: BackendState::Initialized,
                phase: ReadinessPhase::Ready,
                events: &[INITIALIZATION_SUCCEEDED],
            },
            Case {
                secret: SecretState::Available("Secret stash/creds found".into()),
                backend: BackendState::Initialized,
                phase: ReadinessPhase::Ready,
                events: &[INITIALIZATION_SUCCEEDED],
            },
            Case {
                secret: SecretState::NotAvailable("Secret stash/creds not found".into()),
                backend: BackendState::NotChecked,
                phase: ReadinessPhase::NotReady,
                events: &[SECRET_NOT_AVAILABLE],
            },
            Case {
                secret: SecretState::NotNeeded,
                backend: BackendState::Failed("permission denied".into()),
                phase: ReadinessPhase::NotReady,
                events: &[INITIALIZATION_FAILED],
            },
        ];
        for case in cases {
            let plan = decide(&observe(&s, case.secret.clone(), case.backend.clone(), &[]));
            assert_eq!(plan.status.phase, Some(case.phase), "{:?}", case.secret);
            let reasons: Vec<&str> = plan.events.iter().map(|e| e.reason.as_str()).collect();
            assert_eq!(reasons, case.events, "{:?} {:?}", case.secret, case.backend);
            assert!(!plan.add_finalizer);
            assert_eq!(plan.finalize, None);
            let expected_requeue = if case.phase == ReadinessPhase::Ready {
                REFRESH
            } else {
                RETRY
            };
            assert_eq!(plan.requeue_after, Some(expected_requeue));
        }
    }

    #[test]
    fn failure_messages_land_in_conditions_and_events_once() {
        let mut s = storage(false, false, DeletionPolicy::Delete);
        let plan = decide(&observe(
            &s,
            SecretState::NotNeeded,
            BackendState::Failed("storage error on metadata.yaml: permission denied".into()),
            &[],
        ));
        assert!(plan.add_finalizer);
        let c = conditions::get(&plan.status.conditions, BACKEND_INITIALIZED).expect("cond");
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason.as_deref(), Some(INITIALIZATION_FAILED));
        assert!(
            c.message
                .as_deref()
                .is_some_and(|m| m.contains("permission denied"))
        );
        assert_eq!(plan.events.len(), 1);
        // The same failure again: same status, no new event.
        s.status = Some(plan.status.clone());
        let again = decide(&observe(
            &s,
            SecretState::NotNeeded,
            BackendState::Failed("storage error on metadata.yaml: permission denied".into()),
            &[],
        ));
        assert_eq!(again.status, plan.status);
        assert!(again.events.is_empty());
        // Recovery: Ready, one Normal event.
        let ok = decide(&observe(
            &s,
            SecretState::NotNeeded,
            BackendState::Initialized,
            &[],
        ));
        assert_eq!(ok.status.phase, Some(ReadinessPhase::Ready));
        assert_eq!(ok.events.len(), 1);
        assert!(!ok.events[0].warning);
    }

    #[test]
    fn secret_lost_after_initialization_makes_it_not_ready() {
        let mut s = storage(false, true, DeletionPolicy::Delete);
        let ready = decide(&observe(
            &s,
            SecretState::Available("found".into()),
            BackendState::Initialized,
            &[],
        ));
        s.status = Some(ready.status);
        let lost = decide(&observe(
            &s,
            SecretState::NotAvailable("Secret stash/creds not found".into()),
            BackendState::NotChecked,
            &[],
        ));
        assert_eq!(lost.status.phase, Some(ReadinessPhase::NotReady));
        let c = conditions::get(&lost.status.conditions, BACKEND_SECRET_FOUND).expect("cond");
        assert_eq!(c.reason.as_deref(), Some(SECRET_NOT_AVAILABLE));
    }

    #[test]
    fn repositories_and_total_size() {
        let mut s = storage(false, true, DeletionPolicy::Delete);
        s.spec.usage_policy = Some(UsagePolicy {
            allowed_namespaces: AllowedNamespaces {
                from: FromNamespaces::All,
                selector: None,
            },
        });
        let repos = [
            repo("stash", "a", None, Some("1.00 KiB")),
            repo("apps", "b", Some("stash"), Some("512 B")),
            repo("apps", "elsewhere", None, Some("1.00 GiB")),
            repo("apps", "c", Some("stash"), None),
        ];
        let plan = decide(&observe(
            &s,
            SecretState::NotNeeded,
            BackendState::Initialized,
            &repos,
        ));
        let names: Vec<_> = plan
            .status
            .repositories
            .iter()
            .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(""), r.name))
            .collect();
        assert_eq!(names, ["apps/b", "apps/c", "stash/a"]);
        assert_eq!(plan.status.repositories[0].path.as_deref(), Some("apps/b"));
        assert_eq!(plan.status.total_size.as_deref(), Some("1.50 KiB"));

        // The default policy (Same): Repositories of other namespaces do not count.
        s.spec.usage_policy = None;
        let plan = decide(&observe(
            &s,
            SecretState::NotNeeded,
            BackendState::Initialized,
            &repos,
        ));
        assert_eq!(plan.status.repositories.len(), 1);
        assert_eq!(plan.status.repositories[0].name, "a");

        // Selector: by the labels of the Repository's namespace.
        s.spec.usage_policy = Some(UsagePolicy {
            allowed_namespaces: AllowedNamespaces {
                from: FromNamespaces::Selector,
                selector: Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                        match_labels: Some(BTreeMap::from([("backup".into(), "yes".into())])),
                        ..Default::default()
                    },
                ),
            },
        });
        let labels = NamespaceLabels::from([(
            "apps".to_owned(),
            BTreeMap::from([("backup".to_owned(), "yes".to_owned())]),
        )]);
        let observed = Observed {
            namespace_labels: &labels,
            ..observe(
                &s,
                SecretState::NotNeeded,
                BackendState::Initialized,
                &repos,
            )
        };
        assert_eq!(decide(&observed).status.repositories.len(), 2);
    }

    #[test]
    fn deletion_table() {
        let users = [repo("stash", "b", None, None)];
        struct Case {
            policy: DeletionPolicy,
            finalizer: bool,
            in_use: bool,
            finalize: Option<Finalize>,
            events: &'static [&'static str],
        }
        let cases = [
            Case {
                policy: DeletionPolicy::Delete,
                finalizer: true,
                in_use: true,
                finalize: None,
                events: &[STORAGE_IN_USE],
            },
            Case {
                policy: DeletionPolicy::WipeOut,
                finalizer: true,
                in_use: true,
                finalize: None,
                events: &[STORAGE_IN_USE],
            },
            Case {
                policy: DeletionPolicy::Delete,
                finalizer: true,
                in_use: false,
                finalize: Some(Finalize::KeepData),
                events: &[],
            },
            Case {
                policy: DeletionPolicy::WipeOut,
                finalizer: true,
                in_use: false,
                finalize: Some(Finalize::WipeOut),
                events: &[],
            },
            Case {
                policy: DeletionPolicy::WipeOut,
                finalizer: false,
                in_use: false,
                finalize: None,
                events: &[],
            },
        ];
        for case in cases {
            let s = storage(true, case.finalizer, case.policy);
            let repos: &[Repository] = if case.in_use { &users } else { &[] };
            let plan = decide(&observe(
                &s,
                SecretState::NotNeeded,
                BackendState::NotChecked,
                repos,
            ));
            assert_eq!(plan.finalize, case.finalize, "{:?}", case.policy);
            assert!(!plan.add_finalizer, "never added while deleting");
            let reasons: Vec<&str> = plan.events.iter().map(|e| e.reason.as_str()).collect();
            assert_eq!(reasons, case.events);
            if case.in_use {
                assert!(
                    plan.events[0].message.contains("stash/b"),
                    "{:?}",
                    plan.events
                );
                assert_eq!(plan.requeue_after, Some(RETRY));
            }
        }
    }

    #[test]
    fn secret_state_of_an_access_attempt() {
        let missing = AccessError::SecretNotFound {
            namespace: "stash".into(),
            name: "creds".into(),
            purpose: "backend credentials",
        };
        let not_found =
            SecretState::NotAvailable("Secret stash/creds (backend credentials) not found".into());
        assert_eq!(
            SecretState::of(Some("creds"), "stash", false, Err(&missing)),
            not_found
        );
        assert_eq!(
            SecretState::of(None, "stash", false, Ok(())),
            SecretState::NotNeeded
        );
        let other = AccessError::MissingProviderBlock { provider: "s3" };
        assert_eq!(
            SecretState::of(Some("creds"), "stash", true, Err(&other)),
            SecretState::Available("Secret stash/creds found".into())
        );
        assert_eq!(
            SecretState::of(Some("creds"), "stash", false, Err(&other)),
            not_found
        );
    }
}
