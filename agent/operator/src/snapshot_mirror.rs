//! Mirroring: a Snapshot object for every snapshot of a repository that has none.
//!
//! Snapshots taken with the CLI (`stowaway backup`) against the same storage, made before the
//! cluster existed or found after a disaster are in the repository but not in the cluster.
//! During its refresh the Repository reconciler lists the repository's snapshots and calls
//! [`decide`], which is pure:
//!
//! - a repository snapshot that no Snapshot object stands for gets one: named
//!   `<repository>-<short id>`, owned by the Repository, labelled [`MIRRORED_LABEL`], phase
//!   `Succeeded` (a snapshot is in the repository only once it is complete), with its size,
//!   time, host, tags, addon and components;
//! - an object stands for a snapshot when its `spec.snapshotID` is the snapshot's id (or at
//!   least its first 8 hex digits), or, while a BackupSession is still writing it (no id
//!   yet), when its `spec.backupSession` is the session the snapshot records;
//! - mirrored objects whose snapshot is gone from the repository (forgotten with the CLI) are
//!   deleted, and so is a mirrored object that duplicates a session-made one;
//! - objects made by BackupSessions (or by people) are never deleted or changed here, and a
//!   paused mirrored object is left alone.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};
use stowaway_api::common::{DeletionPolicy, Driver, RunPhase};
use stowaway_api::snapshot::{
    Component, ComponentKind, SnapshotAddon, SnapshotSpec, SnapshotStatus,
};
use stowaway_api::{Repository, Snapshot, size};

use crate::backup_configuration::managed_labels;
use crate::names;
use crate::repository::{is_snapshot_of, status_time};
use crate::storage_access::DataSnapshot;

/// Label on the Snapshot objects made by mirroring (value `"true"`).
pub const MIRRORED_LABEL: &str = "stowaway.dev/mirrored";

/// Shortest prefix of a snapshot id that identifies it (in names and in `spec.snapshotID`).
pub const SHORT_ID: usize = 8;

/// What mirroring should change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Objects to create; each carries the status to write once it exists.
    pub create: Vec<Snapshot>,
    /// Mirrored objects whose status was never written: name and status.
    pub repair: Vec<(String, SnapshotStatus)>,
    /// Mirrored objects to delete, by name.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.repair.is_empty() && self.delete.is_empty()
    }
}

/// Whether the object was made by mirroring.
pub fn is_mirrored(snapshot: &Snapshot) -> bool {
    snapshot
        .labels()
        .get(MIRRORED_LABEL)
        .is_some_and(|v| v == "true")
}

/// Whether `object_id` (a `spec.snapshotID`) names the repository snapshot `data_id`: the
/// same id, or at least its first [`SHORT_ID`] hex digits.
pub fn ids_match(object_id: &str, data_id: &str) -> bool {
    object_id.len() >= SHORT_ID && data_id.starts_with(&object_id.to_ascii_lowercase())
}

/// Whether `object` stands for the repository snapshot `data`: by id, or (an object whose
/// BackupSession has not recorded the id yet) by the session the snapshot records.
pub fn stands_for(object: &Snapshot, data: &DataSnapshot) -> bool {
    match object.spec.snapshot_id.as_deref() {
        Some(id) => ids_match(id, &data.id),
        None => {
            data.session.is_some()
                && object.spec.backup_session.is_some()
                && object.spec.backup_session == data.session
        }
    }
}

/// Decides the mirrored Snapshot objects of `repo`: `objects` are the Snapshot objects of
/// its namespace (those of other repositories only keep names from clashing), `data` the
/// snapshots in the repository.
pub fn decide(repo: &Repository, objects: &[Snapshot], data: &[DataSnapshot]) -> Plan {
    let mut plan = Plan::default();
    let own: Vec<&Snapshot> = objects.iter().filter(|s| is_snapshot_of(s, repo)).collect();
    let (mirrored, made): (Vec<&Snapshot>, Vec<&Snapshot>) =
        own.iter().copied().partition(|s| is_mirrored(s));
    let mut taken: BTreeSet<String> = objects.iter().map(ResourceExt::name_any).collect();
    let mut kept: BTreeSet<String> = BTreeSet::new();

    for snapshot in data {
        if made.iter().any(|o| stands_for(o, snapshot)) {
            // A session (or a person) made its object: mirrored duplicates go.
            continue;
        }
        let mut mine: Vec<&&Snapshot> = mirrored
            .iter()
            .filter(|o| stands_for(o, snapshot))
            .collect();
        mine.sort_by_key(|o| o.name_any());
        match mine.first() {
            Some(object) => {
                kept.insert(object.name_any());
                if object.status.as_ref().and_then(|s| s.phase).is_none() && !is_paused(object) {
                    plan.repair
                        .push((object.name_any(), mirrored_status(snapshot)));
                }
            }
            None => {
                if let Some(name) = free_name(repo, &snapshot.id, &taken) {
                    taken.insert(name.clone());
                    plan.create.push(mirrored_object(repo, &name, snapshot));
                }
            }
        }
    }
    plan.delete = mirrored
        .iter()
        .filter(|o| !kept.contains(&o.name_any()) && !is_paused(o))
        .map(|o| o.name_any())
        .collect();
    plan.delete.sort();
    plan
}

/// `<repository>-<first 8 hex digits>`, or with 16 or all 64 digits when a shorter name is
/// taken by another object; `None` if every one is.
fn free_name(repo: &Repository, id: &str, taken: &BTreeSet<String>) -> Option<String> {
    [SHORT_ID, 2 * SHORT_ID, id.len()]
        .into_iter()
        .filter_map(|n| id.get(..n))
        .map(|short| names::object_name(&[&repo.name_any(), short]))
        .find(|name| !taken.contains(name))
}

fn is_paused(snapshot: &Snapshot) -> bool {
    snapshot.spec.paused.unwrap_or(false)
}

/// The Snapshot object mirroring `data` in `repo`, with its status.
pub fn mirrored_object(repo: &Repository, name: &str, data: &DataSnapshot) -> Snapshot {
    let mut labels = managed_labels();
    labels.insert(MIRRORED_LABEL.to_owned(), "true".to_owned());
    let mut snapshot = Snapshot::new(
        name,
        SnapshotSpec {
            snapshot_id: Some(data.id.clone()),
            repository: repo.name_any(),
            version: Some("v1".to_owned()),
            app_ref: Some(repo.spec.app_ref.clone()),
            deletion_policy: DeletionPolicy::Delete,
            ..SnapshotSpec::default()
        },
    );
    snapshot.metadata.namespace = repo.namespace();
    snapshot.metadata.labels = Some(labels);
    snapshot.metadata.owner_references = repo.owner_ref(&()).map(|o| vec![o]);
    snapshot.status = Some(mirrored_status(data));
    snapshot
}

/// The status of a mirrored object: Succeeded, with what the repository records.
/// `integrity` stays unset: listing snapshots does not verify their data.
pub fn mirrored_status(data: &DataSnapshot) -> SnapshotStatus {
    let components: BTreeMap<String, Component> = data
        .components
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                Component {
                    phase: Some(RunPhase::Succeeded),
                    size: Some(size::format(c.size)),
                    driver: Some(Driver::Restic),
                    kind: Some(if c.tree {
                        ComponentKind::Tree
                    } else {
                        ComponentKind::Stream
                    }),
                    media_type: Some(c.media_type.clone()).filter(|m| !m.is_empty()),
                    ..Component::default()
                },
            )
        })
        .collect();
    let non_empty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    SnapshotStatus {
        phase: Some(RunPhase::Succeeded),
        snapshot_time: Some(status_time(data.time)),
        size: Some(size::format(data.size)),
        total_components: i32::try_from(components.len()).ok(),
        components,
        hostname: non_empty(&data.hostname),
        tags: data.tags.clone(),
        addon: non_empty(&data.addon).map(|name| SnapshotAddon {
            name,
            version: non_empty(&data.addon_version),
            digest: non_empty(&data.addon_digest),
        }),
        ..SnapshotStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use stowaway_api::common::{ObjectReference, TypedObjectReference};
    use stowaway_api::repository::RepositorySpec;

    use super::*;
    use crate::storage_access::DataComponent;

    fn repo() -> Repository {
        Repository {
            metadata: ObjectMeta {
                name: Some("repo".into()),
                namespace: Some("apps".into()),
                uid: Some("7f0c".into()),
                ..ObjectMeta::default()
            },
            spec: RepositorySpec {
                app_ref: TypedObjectReference {
                    api_group: Some("apps".into()),
                    kind: "Deployment".into(),
                    namespace: Some("apps".into()),
                    name: "web".into(),
                },
                storage_ref: ObjectReference {
                    namespace: Some("stash".into()),
                    name: "store".into(),
                },
                path: "apps/repo".into(),
                ..RepositorySpec::default()
            },
            status: None,
        }
    }

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn data(c: char, session: Option<&str>) -> DataSnapshot {
        DataSnapshot {
            id: id(c),
            time: "2026-02-01T10:20:30.123456Z".parse().expect("time"),
            size: 3 * 1024,
            hostname: "laptop".into(),
            tags: vec!["manual".into()],
            session: session.map(str::to_owned),
            addon: "postgres".into(),
            addon_version: "0.1.0".into(),
            addon_digest: "sha256:ab".into(),
            components: vec![
                DataComponent {
                    name: "dumpall.sql".into(),
                    tree: false,
                    media_type: "application/sql".into(),
                    size: 2048,
                },
                DataComponent {
                    name: "data".into(),
                    tree: true,
                    media_type: "inode/directory".into(),
                    size: 1024,
                },
            ],
        }
    }

    /// A Snapshot object of repository `repository`.
    fn object(name: &str, repository: &str, snapshot_id: Option<&str>) -> Snapshot {
        let mut s = Snapshot::new(
            name,
            SnapshotSpec {
                repository: repository.into(),
                snapshot_id: snapshot_id.map(str::to_owned),
                ..SnapshotSpec::default()
            },
        );
        s.metadata.namespace = Some("apps".into());
        s
    }

    fn mirrored(name: &str, snapshot_id: &str) -> Snapshot {
        let mut s = object(name, "repo", Some(snapshot_id));
        s.metadata.labels = Some(BTreeMap::from([(
            MIRRORED_LABEL.to_owned(),
            "true".to_owned(),
        )]));
        s.status = Some(SnapshotStatus {
            phase: Some(RunPhase::Succeeded),
            ..SnapshotStatus::default()
        });
        s
    }

    fn names(snapshots: &[Snapshot]) -> Vec<String> {
        snapshots.iter().map(ResourceExt::name_any).collect()
    }

    #[test]
    fn decisions() {
        let a = id('a');
        let b = id('b');
        let mut session_made = object("repo-db-daily-1", "repo", None);
        session_made.spec.backup_session = Some("db-daily-1".into());
        let mut paused_gone = mirrored("repo-cccccccc", &id('c'));
        paused_gone.spec.paused = Some(true);
        let mut no_status = mirrored("repo-aaaaaaaa", &a);
        no_status.status = None;
        // (case, objects, data, created, repaired, deleted)
        type Case = (
            &'static str,
            Vec<Snapshot>,
            Vec<DataSnapshot>,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "a snapshot without an object gets one",
                vec![],
                vec![data('a', None)],
                vec!["repo-aaaaaaaa"],
                vec![],
                vec![],
            ),
            (
                "an object with the full id stands for it",
                vec![object("mine", "repo", Some(&a))],
                vec![data('a', None)],
                vec![],
                vec![],
                vec![],
            ),
            (
                "an object with the short id (any case) stands for it",
                vec![object("mine", "repo", Some("AAAAAAAA"))],
                vec![data('a', None)],
                vec![],
                vec![],
                vec![],
            ),
            (
                "fewer than 8 digits are no id",
                vec![object("mine", "repo", Some("aaaa"))],
                vec![data('a', None)],
                vec!["repo-aaaaaaaa"],
                vec![],
                vec![],
            ),
            (
                "a session still writing its object stands for the snapshot it recorded",
                vec![session_made.clone()],
                vec![data('a', Some("db-daily-1")), data('b', Some("db-daily-2"))],
                vec!["repo-bbbbbbbb"],
                vec![],
                vec![],
            ),
            (
                "an object of another repository does not count",
                vec![object("theirs", "other", Some(&a))],
                vec![data('a', None)],
                vec!["repo-aaaaaaaa"],
                vec![],
                vec![],
            ),
            (
                "a mirrored object whose snapshot was forgotten goes",
                vec![mirrored("repo-aaaaaaaa", &a), mirrored("repo-bbbbbbbb", &b)],
                vec![data('a', None)],
                vec![],
                vec![],
                vec!["repo-bbbbbbbb"],
            ),
            (
                "a session-made object whose snapshot was forgotten stays",
                vec![object("mine", "repo", Some(&b))],
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "a mirrored duplicate of a session-made object goes",
                vec![
                    mirrored("repo-aaaaaaaa", &a),
                    object("mine", "repo", Some(&a)),
                ],
                vec![data('a', None)],
                vec![],
                vec![],
                vec!["repo-aaaaaaaa"],
            ),
            (
                "of two mirrored objects of one snapshot the first by name stays",
                vec![mirrored("repo-x", &a), mirrored("repo-aaaaaaaa", &a)],
                vec![data('a', None)],
                vec![],
                vec![],
                vec!["repo-x"],
            ),
            (
                "a paused mirrored object is left alone",
                vec![paused_gone],
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "a mirrored object whose status was never written gets it",
                vec![no_status],
                vec![data('a', None)],
                vec![],
                vec!["repo-aaaaaaaa"],
                vec![],
            ),
            (
                "a name taken by another object gets a longer id",
                vec![object("repo-aaaaaaaa", "other", None)],
                vec![data('a', None)],
                vec!["repo-aaaaaaaaaaaaaaaa"],
                vec![],
                vec![],
            ),
        ];
        for (case, objects, data, created, repaired, deleted) in cases {
            let plan = decide(&repo(), &objects, &data);
            assert_eq!(names(&plan.create), created, "{case}");
            let repaired_names: Vec<&str> = plan.repair.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(repaired_names, repaired, "{case}");
            assert_eq!(plan.delete, deleted, "{case}");
        }
    }

    #[test]
    fn the_mirrored_object_carries_what_the_repository_records() {
        let r = repo();
        let plan = decide(&r, &[], &[data('a', Some("db-daily-1"))]);
        let [object] = plan.create.as_slice() else {
            panic!("one object: {plan:?}");
        };
        assert_eq!(object.namespace().as_deref(), Some("apps"));
        assert_eq!(
            object.labels().get(MIRRORED_LABEL).map(String::as_str),
            Some("true")
        );
        assert_eq!(
            object
                .labels()
                .get(names::MANAGED_BY_LABEL)
                .map(String::as_str),
            Some(names::MANAGED_BY)
        );
        let owner = &object.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Repository", "repo")
        );
        assert_eq!(object.spec.snapshot_id.as_deref(), Some(id('a').as_str()));
        assert_eq!(object.spec.repository, "repo");
        assert_eq!(
            object.spec.app_ref.as_ref().map(|a| a.name.as_str()),
            Some("web")
        );
        assert_eq!(object.spec.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(
            object.spec.backup_session, None,
            "not taken for a session's own"
        );
        let status = object.status.as_ref().expect("status");
        assert_eq!(status.phase, Some(RunPhase::Succeeded));
        assert_eq!(status.size.as_deref(), Some("3.00 KiB"));
        assert_eq!(
            status.snapshot_time.as_ref().map(|t| t.0.to_string()),
            Some("2026-02-01T10:20:30Z".to_owned()),
            "whole seconds, as the API server keeps them"
        );
        assert_eq!(status.hostname.as_deref(), Some("laptop"));
        assert_eq!(status.tags, ["manual"]);
        assert_eq!(
            status.addon,
            Some(SnapshotAddon {
                name: "postgres".into(),
                version: Some("0.1.0".into()),
                digest: Some("sha256:ab".into()),
            })
        );
        assert_eq!(status.total_components, Some(2));
        assert_eq!(status.integrity, None);
        let dump = &status.components["dumpall.sql"];
        assert_eq!(dump.kind, Some(ComponentKind::Stream));
        assert_eq!(dump.size.as_deref(), Some("2.00 KiB"));
        assert_eq!(dump.media_type.as_deref(), Some("application/sql"));
        assert_eq!(dump.driver, Some(Driver::Restic));
        assert_eq!(dump.phase, Some(RunPhase::Succeeded));
        assert_eq!(status.components["data"].kind, Some(ComponentKind::Tree));
    }

    #[test]
    fn deciding_again_after_the_plan_changes_nothing() {
        let r = repo();
        let data = [data('a', None), data('b', None)];
        let plan = decide(&r, &[], &data);
        assert_eq!(plan.create.len(), 2);
        let after = decide(&r, &plan.create, &data);
        assert!(after.is_empty(), "{after:?}");
    }
}
