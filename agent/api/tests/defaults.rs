//! Defaults of fields a manifest leaves out.

use stowaway_api::backup_configuration::ConcurrencyPolicy;
use stowaway_api::common::{DeletionPolicy, FromNamespaces, UsagePolicy};
use stowaway_api::{BackupStorage, Repository, RetentionPolicy, Snapshot};

#[test]
fn usage_policy_from_defaults_to_same() {
    let p: UsagePolicy = serde_json::from_str("{}").expect("empty policy");
    assert_eq!(p.allowed_namespaces.from, FromNamespaces::Same);
    let p: UsagePolicy =
        serde_json::from_str(r#"{"allowedNamespaces": {}}"#).expect("empty allowedNamespaces");
    assert_eq!(p.allowed_namespaces.from, FromNamespaces::Same);
    assert_eq!(
        UsagePolicy::default().allowed_namespaces.from,
        FromNamespaces::Same
    );
}

#[test]
fn deletion_policy_defaults_to_delete() {
    let bs: BackupStorage = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: BackupStorage\nmetadata: {name: s}\n\
         spec: {storage: {provider: local, local: {mountPath: /data, hostPath: {path: /x}}}}\n",
    )
    .expect("BackupStorage");
    assert_eq!(bs.spec.deletion_policy, DeletionPolicy::Delete);
    let repo: Repository = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: Repository\nmetadata: {name: r}\n\
         spec: {appRef: {kind: Deployment, name: d}, storageRef: {name: s}, path: /r}\n",
    )
    .expect("Repository");
    assert_eq!(repo.spec.deletion_policy, DeletionPolicy::Delete);
    let snap: Snapshot = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: Snapshot\nmetadata: {name: s}\n\
         spec: {repository: r}\n",
    )
    .expect("Snapshot");
    assert_eq!(snap.spec.deletion_policy, DeletionPolicy::Delete);
}

#[test]
fn failed_snapshots_keep_the_last_one() {
    let rp: RetentionPolicy = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\n\
         spec: {failedSnapshots: {}, successfulSnapshots: {daily: 7}}\n",
    )
    .expect("RetentionPolicy");
    assert_eq!(rp.spec.failed_snapshots.and_then(|f| f.last), Some(1));
}

#[test]
fn concurrency_policy_default_is_allow() {
    assert_eq!(ConcurrencyPolicy::default(), ConcurrencyPolicy::Allow);
}

#[test]
fn local_volume_source_is_kept() {
    let bs: BackupStorage = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: BackupStorage\nmetadata: {name: s}\n\
         spec: {storage: {provider: local, local: {mountPath: /safe/data, \
         persistentVolumeClaim: {claimName: backup-pvc}}}}\n",
    )
    .expect("BackupStorage");
    let local = bs.spec.storage.local.expect("local block");
    assert_eq!(local.mount_path, "/safe/data");
    assert_eq!(
        local
            .persistent_volume_claim
            .map(|p| p["claimName"].clone()),
        Some(serde_json::Value::from("backup-pvc"))
    );
}
