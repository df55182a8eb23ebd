//! Auto-backup against the fake API server: an annotated workload gets a BackupConfiguration
//! from its blueprint, updated when the annotations change and removed when they go.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use stowaway_api::{BackupBlueprint, BackupConfiguration};
use stowaway_operator::controller::{Context, backup_blueprint};
use stowaway_operator::job::JobSettings;

mod common;
use common::with_namespaces;

const BLUEPRINT: &str = r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBlueprint
metadata: {name: standard, namespace: ops}
spec:
  usagePolicy:
    allowedNamespaces:
      from: Selector
      selector: {matchLabels: {backups: "on"}}
  backupConfigurationTemplate:
    backends:
      - {name: s3, storageRef: {name: store, namespace: ops}, retentionPolicy: {name: keep, namespace: ops}}
    sessions:
      - name: daily
        scheduler: {schedule: "${schedule}"}
        addon: {name: workload-addon, tasks: [{name: logical-backup}]}
        repositories: [{name: "${targetName}", backend: s3, directory: "/${targetNamespace}/${targetName}"}]
"#;

async fn setup(namespace_labels: &[(&str, &str)]) -> (Client, Arc<Context>) {
    let blueprint: BackupBlueprint = serde_yaml::from_str(BLUEPRINT).expect("blueprint");
    let mut shop = Namespace::default();
    shop.metadata.name = Some("shop".into());
    shop.metadata.labels = Some(
        namespace_labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    let mut sts = StatefulSet::default();
    sts.metadata.name = Some("db".into());
    sts.metadata.namespace = Some("shop".into());
    sts.metadata.annotations = Some(BTreeMap::from([
        (
            "blueprint.stowaway.dev/name".to_owned(),
            "standard".to_owned(),
        ),
        (
            "blueprint.stowaway.dev/namespace".to_owned(),
            "ops".to_owned(),
        ),
        (
            "variables.stowaway.dev/schedule".to_owned(),
            "0 1 * * *".to_owned(),
        ),
    ]));
    let client = ClientBuilder::new()
        .with_resource::<BackupBlueprint>()
        .with_resource::<BackupConfiguration>()
        .with_status_subresource::<BackupConfiguration>()
        .with_object(blueprint)
        .with_object(sts)
        .build()
        .await
        .expect("fake client");
    let client = with_namespaces(client, vec![shop]);
    let ctx = Context::new(
        client.clone(),
        JobSettings::default(),
        common::builtin_addons(),
    );
    (client, Arc::new(ctx))
}

async fn reconcile(client: &Client, ctx: &Arc<Context>) {
    let sts: StatefulSet = Api::namespaced(client.clone(), "shop")
        .get("db")
        .await
        .expect("sts");
    backup_blueprint::reconcile(Arc::new(sts), ctx.clone())
        .await
        .expect("reconcile");
}

async fn configs(client: &Client) -> Vec<BackupConfiguration> {
    Api::<BackupConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
}

#[tokio::test]
async fn an_annotated_workload_gets_a_configuration_that_follows_its_annotations() {
    let (client, ctx) = setup(&[("backups", "on")]).await;
    reconcile(&client, &ctx).await;
    let made = configs(&client).await;
    assert_eq!(made.len(), 1);
    let config = &made[0];
    assert_eq!(config.name_any(), "statefulset-db");
    assert_eq!(config.namespace().as_deref(), Some("shop"));
    let session = &config.spec.sessions[0];
    assert_eq!(
        session.scheduler.as_ref().map(|s| s.schedule.as_str()),
        Some("0 1 * * *")
    );
    assert_eq!(session.repositories[0].directory, "/shop/db");
    assert_eq!(
        config.spec.target.as_ref().map(|t| t.kind.as_str()),
        Some("StatefulSet")
    );

    // A changed variable updates the configuration; a second pass changes nothing.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "shop");
    let patch = serde_json::json!({"metadata": {"annotations": {"variables.stowaway.dev/schedule": "0 4 * * *"}}});
    sts.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    reconcile(&client, &ctx).await;
    reconcile(&client, &ctx).await;
    let made = configs(&client).await;
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0].spec.sessions[0]
            .scheduler
            .as_ref()
            .map(|s| s.schedule.as_str()),
        Some("0 4 * * *")
    );

    // The annotation goes: so does the configuration.
    let patch =
        serde_json::json!({"metadata": {"annotations": {"blueprint.stowaway.dev/name": null}}});
    sts.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    reconcile(&client, &ctx).await;
    assert!(configs(&client).await.is_empty());
}

#[tokio::test]
async fn a_namespace_the_blueprint_does_not_allow_gets_nothing() {
    let (client, ctx) = setup(&[("backups", "off")]).await;
    reconcile(&client, &ctx).await;
    assert!(configs(&client).await.is_empty());
}

#[tokio::test]
async fn a_configuration_made_by_a_person_is_left_alone() {
    let (client, ctx) = setup(&[("backups", "on")]).await;
    let mine: BackupConfiguration = serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: statefulset-db, namespace: shop}
spec:
  target: {apiGroup: apps, kind: StatefulSet, name: db}
  sessions: []
"#,
    )
    .expect("config");
    Api::<BackupConfiguration>::namespaced(client.clone(), "shop")
        .create(&Default::default(), &mine)
        .await
        .expect("create");
    reconcile(&client, &ctx).await;
    let made = configs(&client).await;
    assert_eq!(made.len(), 1);
    assert!(made[0].spec.sessions.is_empty(), "not overwritten");
}
