//! The sidecars' access against the fake API server: the RBAC the BackupConfiguration
//! reconciler grants a workload's service account (and takes back), and the webhook's
//! `/sidecar-access` keeping each sidecar to its own target's sessions.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};
use stowaway_api::{
    Addon, BackupBatch, BackupConfiguration, BackupSession, BackupStorage, Repository,
    RestoreSession, RetentionPolicy, Snapshot,
};
use stowaway_operator::controller::{Context, backup_configuration};
use stowaway_operator::job::JobSettings;
use stowaway_operator::sidecar_rbac::FINALIZER;
use stowaway_operator::webhook;

mod common;

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test manifest")
}

/// `web-backup` (sidecar mode, Deployment `web`, storage `backup/store`) and `db-backup`
/// (StatefulSet `db`, not in sidecar mode) in `demo`, their workloads, and two sidecar pods.
async fn cluster() -> Client {
    let storage: BackupStorage = yaml(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {name: store, namespace: backup}
spec:
  storage: {provider: s3, s3: {endpoint: "https://s3.example", bucket: b, secretName: s3-creds}}
  usagePolicy: {allowedNamespaces: {from: All}}
status: {phase: Ready}
"#,
    );
    let config = |name: &str, annotations: &str, kind: &str, target: &str| -> BackupConfiguration {
        yaml(&format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: {name}, namespace: demo, annotations: {annotations}}}
spec:
  target: {{apiGroup: apps, kind: {kind}, name: {target}}}
  backends: [{{name: s3, storageRef: {{name: store, namespace: backup}}}}]
  sessions:
    - name: daily
      scheduler: {{schedule: "0 2 * * *"}}
      addon: {{name: workload-addon, tasks: [{{name: logical-backup}}]}}
      repositories: [{{name: {target}-repo, backend: s3, directory: /{target}, encryptionSecret: {{name: {target}-pw}}}}]
"#
        ))
    };
    let web: Deployment = yaml(
        r#"
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: web-sa, containers: [{name: web, image: nginx}]}
"#,
    );
    let db: StatefulSet = yaml(
        r#"
metadata: {name: db, namespace: demo}
spec:
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: db-sa, containers: [{name: db, image: postgres}]}
"#,
    );
    let pod = |namespace: &str, name: &str, account: &str, target: &str| -> Pod {
        yaml(&format!(
            r#"
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{stowaway.dev/sidecar-target: {target}}}
spec: {{serviceAccountName: {account}, containers: [{{name: stowaway, image: s}}]}}
status: {{phase: Running}}
"#
        ))
    };
    ClientBuilder::new()
        .with_resource::<BackupStorage>()
        .with_status_subresource::<BackupStorage>()
        .with_resource::<RetentionPolicy>()
        .with_resource::<Repository>()
        .with_status_subresource::<Repository>()
        .with_resource::<Snapshot>()
        .with_status_subresource::<Snapshot>()
        .with_resource::<BackupConfiguration>()
        .with_status_subresource::<BackupConfiguration>()
        .with_resource::<BackupBatch>()
        .with_resource::<BackupSession>()
        .with_status_subresource::<BackupSession>()
        .with_resource::<RestoreSession>()
        .with_status_subresource::<RestoreSession>()
        .with_resource::<Addon>()
        .with_object(storage)
        .with_object(config(
            "web-backup",
            r#"{stowaway.dev/inject: "true"}"#,
            "Deployment",
            "web",
        ))
        .with_object(config("db-backup", "{}", "StatefulSet", "db"))
        .with_object(web)
        .with_object(db)
        .with_object(pod("demo", "web-1", "web-sa", "deployment.web"))
        .with_object(pod("demo", "db-0", "db-sa", "statefulset.db"))
        // A sidecar pod in the operator's own namespace (the client's default): never looked at.
        .with_object(pod("default", "odd-0", "stowaway", "statefulset.other"))
        .build()
        .await
        .expect("fake client")
}

fn context(client: &Client) -> Arc<Context> {
    Arc::new(Context::new(
        client.clone(),
        JobSettings::default(),
        common::builtin_addons(),
    ))
}

async fn reconcile(client: &Client, name: &str) {
    let config: BackupConfiguration = Api::namespaced(client.clone(), "demo")
        .get(name)
        .await
        .expect("configuration");
    backup_configuration::reconcile(Arc::new(config), context(client))
        .await
        .expect("reconcile");
}

async fn all<K>(client: &Client) -> Vec<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut items = Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    items.sort_by_key(|o| (o.namespace().unwrap_or_default(), o.name_any()));
    items
}

fn where_(objects: &[impl kube::Resource]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.meta().namespace.as_deref().unwrap_or("?"),
                o.name_any()
            )
        })
        .collect()
}

async fn finalizers(client: &Client, name: &str) -> Vec<String> {
    let config: BackupConfiguration = Api::namespaced(client.clone(), "demo")
        .get(name)
        .await
        .expect("configuration");
    config.finalizers().to_vec()
}

#[tokio::test]
async fn a_configuration_in_sidecar_mode_grants_its_workloads_account_and_takes_it_back() {
    let client = cluster().await;
    reconcile(&client, "web-backup").await;
    reconcile(&client, "db-backup").await;

    let roles: Vec<Role> = all(&client).await;
    let bindings: Vec<RoleBinding> = all(&client).await;
    let expected = [
        "backup/stowaway-sidecar-demo-web-backup",
        "demo/stowaway-sidecar-web-backup",
    ];
    // db-backup is not in sidecar mode: nothing for db-sa.
    assert_eq!(where_(&roles), expected);
    assert_eq!(where_(&bindings), expected);
    for binding in &bindings {
        assert_eq!(
            serde_json::to_value(&binding.subjects).expect("json"),
            json!([{"kind": "ServiceAccount", "name": "web-sa", "namespace": "demo"}])
        );
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, binding.name_any());
    }
    let named = |role: &Role, resource: &str| -> Option<Vec<String>> {
        role.rules
            .iter()
            .flatten()
            .find(|r| r.resources.as_deref() == Some(&[resource.to_owned()][..]))
            .map(|r| r.resource_names.clone().unwrap_or_default())
    };
    let (in_backup, home) = (&roles[0], &roles[1]);
    assert_eq!(
        named(in_backup, "backupstorages"),
        Some(vec!["store".into()])
    );
    assert_eq!(named(in_backup, "secrets"), Some(vec!["s3-creds".into()]));
    assert_eq!(in_backup.rules.as_ref().map(Vec::len), Some(2));
    assert_eq!(named(home, "secrets"), Some(vec!["web-pw".into()]));
    assert_eq!(named(home, "repositories"), Some(vec!["web-repo".into()]));
    assert_eq!(
        named(home, "backupstorages"),
        None,
        "the storage is in backup"
    );
    // The home Role goes with the configuration; the other needs the finalizer.
    let owners = home.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "BackupConfiguration");
    assert_eq!(owners[0].name, "web-backup");
    assert!(in_backup.owner_references().is_empty());
    assert_eq!(finalizers(&client, "web-backup").await, [FINALIZER]);
    assert!(finalizers(&client, "db-backup").await.is_empty());

    // A second pass changes nothing.
    reconcile(&client, "web-backup").await;
    let again: Vec<Role> = all(&client).await;
    assert_eq!(
        again
            .iter()
            .map(|r| r.resource_version())
            .collect::<Vec<_>>(),
        roles
            .iter()
            .map(|r| r.resource_version())
            .collect::<Vec<_>>()
    );

    // The configuration leaves the sidecar mode: everything goes, the finalizer too.
    let patch = json!({"metadata": {"annotations": {"stowaway.dev/inject": "false"}}});
    Api::<BackupConfiguration>::namespaced(client.clone(), "demo")
        .patch("web-backup", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    reconcile(&client, "web-backup").await;
    assert!(all::<Role>(&client).await.is_empty());
    assert!(all::<RoleBinding>(&client).await.is_empty());
    assert!(finalizers(&client, "web-backup").await.is_empty());
}

#[tokio::test]
async fn the_roles_follow_the_workload_and_go_when_the_configuration_goes() {
    let client = cluster().await;
    // db-backup's StatefulSet is injected by its pod template (`stowaway inject`).
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "stowaway.dev/inject": "true"}}}}});
    Api::<StatefulSet>::namespaced(client.clone(), "demo")
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    reconcile(&client, "db-backup").await;
    let bindings: Vec<RoleBinding> = all(&client).await;
    assert_eq!(
        where_(&bindings),
        [
            "backup/stowaway-sidecar-demo-db-backup",
            "demo/stowaway-sidecar-db-backup"
        ]
    );
    assert_eq!(
        bindings[0].subjects.as_ref().map(|s| s[0].name.as_str()),
        Some("db-sa")
    );

    // The workload changes its service account: the bindings follow.
    let patch = json!({"spec": {"template": {"spec": {"serviceAccountName": "db-other"}}}});
    Api::<StatefulSet>::namespaced(client.clone(), "demo")
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    reconcile(&client, "db-backup").await;
    let bindings: Vec<RoleBinding> = all(&client).await;
    assert_eq!(bindings.len(), 2);
    for binding in &bindings {
        assert_eq!(
            binding.subjects.as_ref().map(|s| s[0].name.as_str()),
            Some("db-other")
        );
    }

    // The configuration is deleted: its finalizer removes what is in other namespaces.
    let mut config: BackupConfiguration = Api::namespaced(client.clone(), "demo")
        .get("db-backup")
        .await
        .expect("configuration");
    assert_eq!(config.finalizers(), [FINALIZER]);
    config.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    backup_configuration::reconcile(Arc::new(config), context(&client))
        .await
        .expect("reconcile");
    assert!(all::<Role>(&client).await.is_empty());
    assert!(all::<RoleBinding>(&client).await.is_empty());
    assert!(finalizers(&client, "db-backup").await.is_empty());

    // A Role of the same name that Stowaway did not make is neither changed nor bound.
    let foreign: Role =
        yaml("metadata: {name: stowaway-sidecar-web-backup, namespace: demo}\nrules: []");
    Api::<Role>::namespaced(client.clone(), "demo")
        .create(&Default::default(), &foreign)
        .await
        .expect("create");
    reconcile(&client, "web-backup").await;
    let roles: Vec<Role> = all(&client).await;
    assert_eq!(
        where_(&roles),
        [
            "backup/stowaway-sidecar-demo-web-backup",
            "demo/stowaway-sidecar-web-backup"
        ]
    );
    assert_eq!(roles[1].rules.as_ref().map(Vec::len), Some(0));
    assert!(roles[1].labels().is_empty());
    assert_eq!(
        where_(&all::<RoleBinding>(&client).await),
        ["backup/stowaway-sidecar-demo-web-backup"]
    );
}

// ---------------------------------------------------------------------------------------
// /sidecar-access

struct Server {
    url: String,
    http: reqwest::Client,
}

async fn serve(client: Client) -> Server {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let tls = webhook::tls_config(cert_pem.as_bytes(), key_pem.as_bytes()).expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(webhook::serve(
        listener,
        tls,
        client,
        common::builtin_addons(),
        stowaway_operator::injection::SidecarSettings::default(),
    ));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("root"))
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .expect("http client");
    Server {
        url: format!("https://localhost:{port}"),
        http,
    }
}

/// An AdmissionReview of a write of `object` by `user` (with the token's pod, if any).
fn review(
    operation: &str,
    sub_resource: Option<&str>,
    user: &str,
    pod: Option<&str>,
    object: &Value,
    old: Option<&Value>,
) -> Value {
    let kind = object["kind"].as_str().expect("kind");
    let group = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split('/').next())
        .expect("group");
    let mut user_info = json!({"username": user});
    if let Some(pod) = pod {
        user_info["extra"] = json!({"authentication.kubernetes.io/pod-name": [pod]});
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "a1",
            "kind": {"group": group, "version": "v1alpha1", "kind": kind},
            "resource": {"group": group, "version": "v1alpha1", "resource": "x"},
            "subResource": sub_resource,
            "name": object["metadata"]["name"],
            "namespace": "demo",
            "operation": operation,
            "userInfo": user_info,
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

/// `Ok(())` when allowed, else the denial's message.
async fn ask(server: &Server, review: &Value) -> Result<(), String> {
    let response = server
        .http
        .post(format!("{}/sidecar-access", server.url))
        .json(review)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["response"]["uid"], "a1");
    if answer["response"]["allowed"] == true {
        Ok(())
    } else {
        Err(answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

fn session(name: &str, invoker: &str, claims: Value) -> Value {
    json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "BackupSession",
        "metadata": {"name": name, "namespace": "demo", "annotations": claims},
        "spec": {"invoker": {"apiGroup": "core.stowaway.dev", "kind": "BackupConfiguration",
                             "name": invoker}, "session": "daily"}
    })
}

const WEB_SA: &str = "system:serviceaccount:demo:web-sa";

#[tokio::test]
async fn a_sidecar_creates_and_claims_its_own_targets_sessions_only() {
    let server = serve(cluster().await).await;
    let own = session("web-backup-daily-1", "web-backup", json!({}));
    let other = session("db-backup-daily-1", "db-backup", json!({}));

    // On-demand backups: of its own configuration, yes; of another target's, no.
    assert_eq!(
        ask(
            &server,
            &review("CREATE", None, WEB_SA, Some("web-1"), &own, None)
        )
        .await,
        Ok(())
    );
    let denied = ask(
        &server,
        &review("CREATE", None, WEB_SA, Some("web-1"), &other, None),
    )
    .await
    .expect_err("another target's session");
    assert_eq!(
        denied,
        "ServiceAccount demo/web-sa (pod web-1) is the Stowaway sidecar of deployment.web; \
         BackupSession demo/db-backup-daily-1 is for statefulset.db: a sidecar may write only \
         the sessions and snapshots of its own target"
    );

    // Claims: its own, on its own session.
    let claimed = |session: &Value, key: &str| {
        let mut s = session.clone();
        s["metadata"]["annotations"] = json!({ key: "web-1" });
        s
    };
    let mine = claimed(&own, "claim.stowaway.dev/deployment.web");
    assert_eq!(
        ask(
            &server,
            &review("UPDATE", None, WEB_SA, Some("web-1"), &mine, Some(&own))
        )
        .await,
        Ok(())
    );
    let theirs = claimed(&other, "claim.stowaway.dev/deployment.web");
    assert!(
        ask(
            &server,
            &review("UPDATE", None, WEB_SA, Some("web-1"), &theirs, Some(&other))
        )
        .await
        .is_err()
    );
    // Another target's claim on its own session.
    let forged = claimed(&own, "claim.stowaway.dev/statefulset.db");
    let denied = ask(
        &server,
        &review("UPDATE", None, WEB_SA, Some("web-1"), &forged, Some(&own)),
    )
    .await
    .expect_err("another target's claim");
    assert!(
        denied.contains("may not change the claim claim.stowaway.dev/statefulset.db"),
        "{denied}"
    );

    // Without the pod in the token, the account's sidecar pods tell.
    assert!(
        ask(&server, &review("CREATE", None, WEB_SA, None, &other, None))
            .await
            .is_err()
    );
    assert_eq!(
        ask(&server, &review("CREATE", None, WEB_SA, None, &own, None)).await,
        Ok(())
    );
    // The db sidecar, for its own.
    let db_sa = "system:serviceaccount:demo:db-sa";
    assert_eq!(
        ask(
            &server,
            &review("CREATE", None, db_sa, Some("db-0"), &other, None)
        )
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn status_writes_of_restores_and_snapshots_are_checked_and_others_pass() {
    let server = serve(cluster().await).await;
    let restore = json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "RestoreSession",
        "metadata": {"name": "db-restore", "namespace": "demo"},
        "spec": {"target": {"apiGroup": "apps", "kind": "StatefulSet", "name": "db"},
                 "dataSource": {"repository": "db-repo", "snapshot": "latest"}}
    });
    let denied = ask(
        &server,
        &review(
            "UPDATE",
            Some("status"),
            WEB_SA,
            Some("web-1"),
            &restore,
            Some(&restore),
        ),
    )
    .await
    .expect_err("another target's restore");
    assert!(
        denied.contains("RestoreSession demo/db-restore is for statefulset.db"),
        "{denied}"
    );
    let snapshot = json!({
        "apiVersion": "storage.stowaway.dev/v1alpha1",
        "kind": "Snapshot",
        "metadata": {"name": "db-repo-s1", "namespace": "demo"},
        "spec": {"repository": "db-repo", "backupSession": "s1",
                 "appRef": {"apiGroup": "apps", "kind": "StatefulSet", "name": "db"}}
    });
    assert!(
        ask(
            &server,
            &review(
                "UPDATE",
                Some("status"),
                WEB_SA,
                Some("web-1"),
                &snapshot,
                Some(&snapshot)
            )
        )
        .await
        .is_err()
    );
    let mut web_snapshot = snapshot.clone();
    web_snapshot["spec"]["appRef"] =
        json!({"apiGroup": "apps", "kind": "Deployment", "name": "web"});
    assert_eq!(
        ask(
            &server,
            &review(
                "UPDATE",
                None,
                WEB_SA,
                Some("web-1"),
                &web_snapshot,
                Some(&web_snapshot)
            )
        )
        .await,
        Ok(())
    );
    // A session whose invoker does not exist cannot be shown to be the sidecar's.
    let orphan = session("gone-daily-1", "gone", json!({}));
    let denied = ask(
        &server,
        &review("CREATE", None, WEB_SA, Some("web-1"), &orphan, None),
    )
    .await
    .expect_err("unknown invoker");
    assert!(
        denied.contains("BackupConfiguration demo/gone does not exist"),
        "{denied}"
    );

    // Writers that are no sidecar pass: a user, an account without sidecar pods, the
    // operator's own namespace (even with a sidecar-labelled pod there), and deletions.
    for (user, pod) in [
        ("admin", None),
        ("system:serviceaccount:demo:ci", Some("ci-runner")),
        ("system:serviceaccount:default:stowaway", Some("odd-0")),
    ] {
        assert_eq!(
            ask(
                &server,
                &review(
                    "UPDATE",
                    Some("status"),
                    user,
                    pod,
                    &restore,
                    Some(&restore)
                )
            )
            .await,
            Ok(()),
            "{user}"
        );
    }
    let mut delete = review(
        "DELETE",
        None,
        WEB_SA,
        Some("web-1"),
        &restore,
        Some(&restore),
    );
    delete["request"]["object"] = Value::Null;
    assert_eq!(ask(&server, &delete).await, Ok(()));
}
