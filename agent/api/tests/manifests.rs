//! KubeStash example manifests (reference §7, group suffix rewritten to `stowaway.dev`)
//! deserialize into the typed objects and serialize back without losing a field.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stowaway_api::{
    BackupConfiguration, BackupStorage, HookTemplate, RestoreSession, RetentionPolicy,
};

/// Every field `input` sets is in `output` with the same value (output may add defaults).
fn assert_subset(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    panic!("{path}.{k} was lost in the round trip (output: {output})");
                };
                assert_subset(v, w, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: list length changed");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                assert_subset(v, w, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(input, output, "{path} changed in the round trip"),
    }
}

/// Parses `file` as `K`, checks kind and apiVersion, and checks the round trip.
fn round_trip<K>(file: &str) -> K
where
    K: DeserializeOwned + Serialize + kube::Resource<DynamicType = ()>,
{
    let path = format!("{}/tests/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let input: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let typed: K = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} does not deserialize into {}: {e}", K::kind(&())));
    assert_eq!(input["apiVersion"], K::api_version(&()).as_ref());
    assert_eq!(input["kind"], K::kind(&()).as_ref());
    let output = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_subset(&input, &output, "");
    typed
}

#[test]
fn backup_storage_s3() {
    use stowaway_api::backup_storage::Provider;
    use stowaway_api::common::{DeletionPolicy, FromNamespaces};
    let bs: BackupStorage = round_trip("backupstorage-s3.yaml");
    assert_eq!(bs.spec.storage.provider, Provider::S3);
    let s3 = bs.spec.storage.s3.as_ref().expect("s3 block");
    assert_eq!(s3.bucket, "kubestash-demo");
    assert_eq!(s3.region.as_deref(), Some("us-west-1"));
    assert_eq!(bs.spec.deletion_policy, DeletionPolicy::WipeOut);
    assert_eq!(bs.spec.default, Some(true));
    let policy = bs.spec.usage_policy.expect("usage policy");
    assert_eq!(policy.allowed_namespaces.from, FromNamespaces::All);
}

#[test]
fn retention_policy() {
    let rp: RetentionPolicy = round_trip("retentionpolicy.yaml");
    assert_eq!(rp.spec.max_retention_period.as_deref(), Some("2mo"));
    assert_eq!(rp.spec.failed_snapshots.and_then(|f| f.last), Some(2));
    assert_eq!(rp.spec.successful_snapshots.and_then(|s| s.last), Some(5));
}

#[test]
fn restore_session_postgres() {
    let rs: RestoreSession = round_trip("restoresession-postgres.yaml");
    assert_eq!(rs.spec.data_source.snapshot.as_deref(), Some("latest"));
    let addon = rs.spec.addon.expect("addon");
    assert_eq!(addon.name, "postgres-addon");
    assert_eq!(
        addon.tasks[0].params.as_ref().map(|p| &p["args"]),
        Some(&Value::from("--dbname=demo"))
    );
}

#[test]
fn backup_configuration_mysql() {
    let bc: BackupConfiguration = round_trip("backupconfiguration-mysql.yaml");
    let session = &bc.spec.sessions[0];
    assert_eq!(
        session.scheduler.as_ref().map(|s| s.schedule.as_str()),
        Some("*/5 * * * *")
    );
    assert_eq!(session.repositories[0].directory, "/mysql");
    assert_eq!(bc.spec.backends[0].name, "gcs-backend");
}

#[test]
fn backup_configuration_kubedb_postgres() {
    let bc: BackupConfiguration = round_trip("backupconfiguration-kubedb-postgres.yaml");
    let target = bc.spec.target.expect("target");
    assert_eq!(target.api_group.as_deref(), Some("kubedb.com"));
    assert_eq!(target.kind, "Postgres");
}

#[test]
fn hook_template_slack() {
    use stowaway_api::hook_template::HookExecutorType;
    let ht: HookTemplate = round_trip("hooktemplate-slack.yaml");
    assert_eq!(ht.spec.executor.type_, HookExecutorType::Operator);
    let action = ht.spec.action.expect("action");
    assert_eq!(action["httpPost"]["host"], "hooks.slack.com");
    assert_eq!(action["httpPost"]["port"], 443);
}

#[test]
fn s3_insecure_tls_keeps_the_kubestash_spelling() {
    let storage: stowaway_api::BackupStorage = serde_yaml::from_str(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: BackupStorage\nmetadata: {name: s}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: https://minio.local, bucket: b, insecureTLS: true}\n",
    )
    .expect("storage");
    let s3 = storage.spec.storage.s3.as_ref().expect("s3");
    assert_eq!(s3.insecure_tls, Some(true));
    let yaml = serde_yaml::to_string(&storage).expect("yaml");
    assert!(yaml.contains("insecureTLS: true"), "{yaml}");
}
