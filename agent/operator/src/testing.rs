//! Objects for the unit tests of the decision functions.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stowaway_api::{BackupConfiguration, BackupSession};

/// A timestamp from RFC 3339 text.
pub(crate) fn at(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

/// A configuration `db` in `demo`: target Deployment `web`, backend `s3` with storage `store`
/// and policy `keep`, session `daily` (`0 2 * * *` UTC) writing to repository `repo`
/// with the `postgres` addon. Created at 2026-01-01T00:00:00Z.
pub(crate) fn config() -> BackupConfiguration {
    let mut config: BackupConfiguration = serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: db, namespace: demo, uid: "uid-db"}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  backends:
    - name: s3
      storageRef: {name: store}
      retentionPolicy: {name: keep}
  sessions:
    - name: daily
      scheduler: {schedule: "0 2 * * *"}
      addon:
        name: postgres
        tasks: [{name: logical-backup}]
      repositories:
        - {name: repo, backend: s3, directory: /db}
"#,
    )
    .expect("test configuration");
    config.metadata.creation_timestamp = Some(Time(at("2026-01-01T00:00:00Z")));
    config
}

/// A BackupSession of `config`'s `daily` session created at `created`.
pub(crate) fn session(name: &str, created: &str) -> BackupSession {
    let mut session: BackupSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupSession
metadata:
  name: {name}
  namespace: demo
  labels: {{stowaway.dev/invoker-name: db}}
spec:
  invoker: {{apiGroup: core.stowaway.dev, kind: BackupConfiguration, name: db}}
  session: daily
"#
    ))
    .expect("test session");
    session.metadata.creation_timestamp = Some(Time(at(created)));
    session
}
