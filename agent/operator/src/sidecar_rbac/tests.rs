use serde_json::{Value, json};
use stowaway_api::{BackupBatch, BackupConfiguration, BackupStorage, Repository};

use super::*;

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test manifest")
}

/// Configuration `db` in `demo` for Deployment `web`: backend `s3` on storage `store`
/// (same namespace), repository `repo` with encryption Secret `pw`, the postgres addon with
/// `authSecret: db-auth`. `annotations` are YAML of its annotations.
fn config(annotations: &str) -> BackupConfiguration {
    yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: db, namespace: demo, uid: uid-db, annotations: {annotations}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  backends:
    - {{name: s3, storageRef: {{name: store}}, retentionPolicy: {{name: keep}}}}
  sessions:
    - name: daily
      scheduler: {{schedule: "0 2 * * *"}}
      addon:
        name: postgres
        tasks: [{{name: logical-backup, params: {{authSecret: db-auth, args: --clean}}}}]
      repositories:
        - {{name: repo, backend: s3, directory: /db, encryptionSecret: {{name: pw}}}}
"#
    ))
}

fn storage(namespace: &str, name: &str, secret: Option<&str>) -> BackupStorage {
    let secret = secret.map_or(String::new(), |s| format!(", secretName: {s}"));
    yaml(&format!(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  storage: {{provider: s3, s3: {{endpoint: "https://s3.example", bucket: b{secret}}}}}
"#
    ))
}

fn web() -> TypedObjectReference {
    TypedObjectReference {
        api_group: Some("apps".into()),
        kind: "Deployment".into(),
        namespace: Some("demo".into()),
        name: "web".into(),
    }
}

fn workload(service_account: Option<&str>, inject: Option<bool>) -> Workload {
    Workload {
        service_account: service_account.map(str::to_owned),
        inject,
    }
}

fn plan_of(
    invoker: Invoker<'_>,
    workloads: Vec<(TypedObjectReference, Workload)>,
    storages: &[BackupStorage],
    repositories: &[Repository],
) -> Plan {
    decide(&Observed {
        invoker,
        workloads,
        storages,
        repositories,
    })
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("json")
}

/// The rules every home Role has, before the named ones.
fn session_rules(invoker_resource: &str, restore_create: bool) -> Vec<Value> {
    let mut restore = vec!["get", "list", "watch", "update"];
    if restore_create {
        restore.push("create");
    }
    vec![
        json!({"apiGroups": ["core.stowaway.dev"], "resources": ["backupsessions"],
               "verbs": ["get", "list", "watch", "update", "create"]}),
        json!({"apiGroups": ["core.stowaway.dev"], "resources": ["restoresessions"],
               "verbs": restore}),
        json!({"apiGroups": ["core.stowaway.dev"],
               "resources": ["backupsessions/status", "restoresessions/status"],
               "verbs": ["patch"]}),
        json!({"apiGroups": ["core.stowaway.dev"], "resources": [invoker_resource],
               "verbs": ["get", "list", "watch"]}),
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["snapshots"],
               "verbs": ["get", "list", "watch", "patch"]}),
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["snapshots/status"],
               "verbs": ["patch"]}),
    ]
}

fn tail_rules() -> Vec<Value> {
    vec![
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
        json!({"apiGroups": ["events.k8s.io"], "resources": ["events"],
               "verbs": ["create", "patch"]}),
    ]
}

#[test]
fn a_configuration_in_sidecar_mode_grants_its_workloads_account_exactly_its_objects() {
    let config = config(r#"{stowaway.dev/inject: "true"}"#);
    let storages = [storage("demo", "store", Some("s3-creds"))];
    let plan = plan_of(
        Invoker::Configuration(&config),
        vec![(web(), workload(Some("web-sa"), None))],
        &storages,
        &[],
    );
    assert!(!plan.waiting_for_injection);
    assert_eq!(plan.roles.len(), 1);
    assert_eq!(plan.bindings.len(), 1);
    let role = json_of(&plan.roles[0]);
    let mut rules = session_rules("backupconfigurations", false);
    rules.extend([
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["repositories"],
               "verbs": ["get"], "resourceNames": ["repo"]}),
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["backupstorages"],
               "verbs": ["get"], "resourceNames": ["store"]}),
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
               "resourceNames": ["db-auth", "pw", "s3-creds"]}),
    ]);
    rules.extend(tail_rules());
    assert_eq!(
        role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {
                "name": "stowaway-sidecar-db",
                "namespace": "demo",
                "labels": {
                    "app.kubernetes.io/component": "sidecar-rbac",
                    "app.kubernetes.io/managed-by": "stowaway.dev",
                    "stowaway.dev/invoker-kind": "BackupConfiguration",
                    "stowaway.dev/invoker-name": "db",
                    "stowaway.dev/invoker-namespace": "demo",
                },
                "ownerReferences": [{
                    "apiVersion": "core.stowaway.dev/v1alpha1", "kind": "BackupConfiguration",
                    "name": "db", "uid": "uid-db", "controller": true,
                }],
            },
            "rules": rules,
        })
    );
    let binding = json_of(&plan.bindings[0]);
    assert_eq!(binding["metadata"], role["metadata"]);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "stowaway-sidecar-db"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "web-sa", "namespace": "demo"}])
    );
    assert!(!plan.crosses_namespaces("demo"));
}

#[test]
fn sidecar_mode_comes_from_the_invoker_or_the_pod_template() {
    // (invoker annotation, template annotation) -> Roles made?
    let cases = [
        ("{}", None, false),
        ("{}", Some(true), true),
        ("{}", Some(false), false),
        (r#"{stowaway.dev/inject: "true"}"#, None, true),
        (r#"{stowaway.dev/inject: "TRUE"}"#, None, true),
        (r#"{stowaway.dev/inject: "true"}"#, Some(false), false),
        (r#"{stowaway.dev/inject: "false"}"#, None, false),
        (r#"{stowaway.dev/inject: "false"}"#, Some(true), true),
    ];
    for (annotations, template, granted) in cases {
        let config = config(annotations);
        let plan = plan_of(
            Invoker::Configuration(&config),
            vec![(web(), workload(None, template))],
            &[],
            &[],
        );
        assert_eq!(
            !plan.roles.is_empty(),
            granted,
            "{annotations} with template {template:?}"
        );
        assert_eq!(plan.roles.len(), plan.bindings.len());
        assert_eq!(
            plan.waiting_for_injection, !granted,
            "{annotations} with template {template:?}"
        );
    }
}

#[test]
fn no_grant_without_a_workload_target_or_the_workload() {
    let config = config(r#"{stowaway.dev/inject: "true"}"#);
    // The workload does not exist (it is not among the observed ones).
    let plan = plan_of(Invoker::Configuration(&config), Vec::new(), &[], &[]);
    assert_eq!(plan, Plan::default());
    // Targets that are not workloads.
    for (group, kind) in [
        ("", "PersistentVolumeClaim"),
        ("appcatalog.appscode.com", "AppBinding"),
        ("example.com", "Deployment"),
        ("apps", "ReplicaSet"),
    ] {
        let mut config = config.clone();
        let target = config.spec.target.as_mut().expect("target");
        target.api_group = Some(group.into());
        target.kind = kind.into();
        let mut observed = web();
        observed.api_group = Some(group.into());
        observed.kind = kind.into();
        let plan = plan_of(
            Invoker::Configuration(&config),
            vec![(observed, workload(None, Some(true)))],
            &[],
            &[],
        );
        assert_eq!(plan, Plan::default(), "{group}/{kind}");
    }
}

#[test]
fn the_default_service_account_when_the_template_names_none() {
    let config = config(r#"{stowaway.dev/inject: "true"}"#);
    let plan = plan_of(
        Invoker::Configuration(&config),
        vec![(web(), workload(None, None))],
        &[],
        &[],
    );
    assert_eq!(
        json_of(&plan.bindings[0].subjects),
        json!([{"kind": "ServiceAccount", "name": "default", "namespace": "demo"}])
    );
    // Without the storage object, its credential Secret is unknown: the storage is still
    // readable by name.
    let rules = json_of(&plan.roles[0].rules);
    assert!(
        rules.as_array().expect("rules").contains(
            &json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                              "resourceNames": ["db-auth", "pw"]})
        ),
        "{rules}"
    );
}

#[test]
fn the_template_reading_takes_the_account_and_the_annotation() {
    let template: k8s_openapi::api::core::v1::PodTemplateSpec = yaml(
        r#"
metadata: {annotations: {stowaway.dev/inject: "true"}}
spec: {serviceAccountName: web-sa, containers: []}
"#,
    );
    assert_eq!(
        Workload::of_template(Some(&template)),
        workload(Some("web-sa"), Some(true))
    );
    let old: k8s_openapi::api::core::v1::PodTemplateSpec = yaml(
        r#"
metadata: {annotations: {stowaway.dev/inject: "no"}}
spec: {serviceAccount: legacy, containers: []}
"#,
    );
    assert_eq!(
        Workload::of_template(Some(&old)),
        workload(Some("legacy"), Some(false))
    );
    assert_eq!(Workload::of_template(None), Workload::default());
}

#[test]
fn storages_and_secrets_of_other_namespaces_get_roles_there() {
    let mut config = config(r#"{stowaway.dev/inject: "true", stowaway.dev/allow-restore: "true"}"#);
    config.spec.backends[0].storage_ref = Some(ObjectReference {
        namespace: Some("backup".into()),
        name: "shared".into(),
    });
    config.spec.sessions[0].repositories[0].encryption_secret = Some(ObjectReference {
        namespace: Some("vault".into()),
        name: "repo-pw".into(),
    });
    let storages = [
        storage("backup", "shared", Some("shared-creds")),
        // Another storage of the same name elsewhere: not this one.
        storage("demo", "shared", Some("wrong")),
    ];
    let plan = plan_of(
        Invoker::Configuration(&config),
        vec![(web(), workload(Some("web-sa"), Some(true)))],
        &storages,
        &[],
    );
    let where_: Vec<(Option<String>, Option<String>)> = plan
        .roles
        .iter()
        .map(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()))
        .collect();
    assert_eq!(
        where_,
        [
            (
                Some("backup".into()),
                Some("stowaway-sidecar-demo-db".into())
            ),
            (Some("demo".into()), Some("stowaway-sidecar-db".into())),
            (
                Some("vault".into()),
                Some("stowaway-sidecar-demo-db".into())
            ),
        ]
    );
    assert!(plan.crosses_namespaces("demo"));
    let backup = json_of(&plan.roles[0]);
    assert_eq!(
        backup["rules"],
        json!([
            {"apiGroups": ["storage.stowaway.dev"], "resources": ["backupstorages"],
             "verbs": ["get"], "resourceNames": ["shared"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
             "resourceNames": ["shared-creds"]},
        ])
    );
    // No owner reference across namespaces (the finalizer cleans them up).
    assert_eq!(backup["metadata"].get("ownerReferences"), None);
    assert_eq!(
        backup["metadata"]["labels"]["stowaway.dev/invoker-namespace"],
        "demo"
    );
    let vault = json_of(&plan.roles[2]);
    assert_eq!(
        vault["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                "resourceNames": ["repo-pw"]}])
    );
    // At home: no storage, only the auth Secret; restores may be created.
    let home = json_of(&plan.roles[1]);
    let mut rules = session_rules("backupconfigurations", true);
    rules.extend([
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["repositories"],
               "verbs": ["get"], "resourceNames": ["repo"]}),
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
               "resourceNames": ["db-auth"]}),
    ]);
    rules.extend(tail_rules());
    assert_eq!(home["rules"], Value::Array(rules));
    // Every binding names the workload's account in the workload's namespace.
    for binding in &plan.bindings {
        assert_eq!(
            json_of(&binding.subjects),
            json!([{"kind": "ServiceAccount", "name": "web-sa", "namespace": "demo"}])
        );
        assert_eq!(
            binding.role_ref.name,
            binding.metadata.name.clone().unwrap_or_default()
        );
    }
}

#[test]
fn the_repository_objects_storage_and_secret_are_granted_too() {
    let config = config(r#"{stowaway.dev/inject: "true"}"#);
    let repository: Repository = yaml(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Repository
metadata: {name: repo, namespace: demo}
spec:
  appRef: {apiGroup: apps, kind: Deployment, name: web}
  storageRef: {name: older, namespace: demo}
  path: /db
  encryptionSecret: {name: older-pw}
"#,
    );
    let storages = [
        storage("demo", "store", Some("s3-creds")),
        storage("demo", "older", Some("older-creds")),
    ];
    let repositories = [repository];
    let invoker = Invoker::Configuration(&config);
    assert_eq!(
        storage_refs(invoker, &repositories),
        [
            ("demo".to_owned(), "older".to_owned()),
            ("demo".to_owned(), "store".to_owned())
        ]
    );
    let plan = plan_of(
        invoker,
        vec![(web(), workload(None, Some(true)))],
        &storages,
        &repositories,
    );
    let rules = json_of(&plan.roles[0].rules);
    let rules = rules.as_array().expect("rules");
    assert!(
        rules.contains(&json!({"apiGroups": ["storage.stowaway.dev"],
        "resources": ["backupstorages"], "verbs": ["get"], "resourceNames": ["older", "store"]}))
    );
    assert!(rules.contains(&json!({"apiGroups": [""], "resources": ["secrets"],
        "verbs": ["get"], "resourceNames": ["db-auth", "older-creds", "older-pw", "pw", "s3-creds"]})));
}

#[test]
fn a_batch_grants_each_sidecar_member_its_own_role() {
    let batch: BackupBatch = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {name: shop, namespace: demo, uid: uid-shop, annotations: {stowaway.dev/inject: "true"}}
spec:
  backends: [{name: s3, storageRef: {name: store}}]
  targets:
    - {name: app, appRef: {apiGroup: apps, kind: Deployment, name: web}}
    - {name: data, appRef: {kind: PersistentVolumeClaim, name: data}}
    - {name: cache, appRef: {apiGroup: apps, kind: StatefulSet, name: cache}}
  sessions:
    - name: nightly
      scheduler: {schedule: "0 1 * * *"}
      targets:
        - name: app
          addon: {name: workload-addon, tasks: [{name: logical-backup}]}
          repositories: [{name: app-repo, backend: s3, directory: /app, encryptionSecret: {name: app-pw}}]
        - name: data
          addon: {name: pvc-addon, tasks: [{name: logical-backup}]}
          repositories: [{name: data-repo, backend: s3, directory: /data, encryptionSecret: {name: data-pw}}]
        - name: cache
          addon: {name: workload-addon, tasks: [{name: logical-backup}]}
          repositories: [{name: cache-repo, backend: s3, directory: /cache, encryptionSecret: {name: cache-pw}}]
"#,
    );
    let cache = TypedObjectReference {
        kind: "StatefulSet".into(),
        name: "cache".into(),
        ..web()
    };
    let plan = plan_of(
        Invoker::Batch(&batch),
        vec![
            (web(), workload(Some("web-sa"), None)),
            (cache, workload(Some("cache-sa"), Some(false))),
        ],
        &[storage("demo", "store", None)],
        &[],
    );
    // The cache's template refuses the sidecar: only the app member is granted.
    assert!(plan.waiting_for_injection);
    assert_eq!(plan.roles.len(), 1);
    let role = json_of(&plan.roles[0]);
    assert_eq!(role["metadata"]["name"], "stowaway-sidecar-shop-app");
    assert_eq!(
        role["metadata"]["labels"]["stowaway.dev/batch-member"],
        "app"
    );
    assert_eq!(
        role["metadata"]["labels"]["stowaway.dev/invoker-kind"],
        "BackupBatch"
    );
    assert_eq!(
        role["metadata"]["ownerReferences"][0]["kind"],
        "BackupBatch"
    );
    let mut rules = session_rules("backupbatches", false);
    rules.extend([
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["repositories"],
               "verbs": ["get"], "resourceNames": ["app-repo"]}),
        json!({"apiGroups": ["storage.stowaway.dev"], "resources": ["backupstorages"],
               "verbs": ["get"], "resourceNames": ["store"]}),
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
               "resourceNames": ["app-pw"]}),
    ]);
    rules.extend(tail_rules());
    assert_eq!(role["rules"], Value::Array(rules));
    // The selector finds every member's objects (it leaves the member label out).
    assert_eq!(
        selector(Invoker::Batch(&batch)),
        "app.kubernetes.io/component=sidecar-rbac,app.kubernetes.io/managed-by=stowaway.dev,\
         stowaway.dev/invoker-kind=BackupBatch,stowaway.dev/invoker-name=shop,\
         stowaway.dev/invoker-namespace=demo"
    );
    let targets: Vec<String> = workload_targets(Invoker::Batch(&batch))
        .iter()
        .map(|t| {
            format!(
                "{}/{}/{}",
                t.namespace.as_deref().unwrap_or("?"),
                t.kind,
                t.name
            )
        })
        .collect();
    assert_eq!(targets, ["demo/Deployment/web", "demo/StatefulSet/cache"]);
}

#[test]
fn long_names_fit() {
    let mut config = config(r#"{stowaway.dev/inject: "true"}"#);
    config.metadata.name = Some("c".repeat(60));
    config.spec.backends[0].storage_ref = Some(ObjectReference {
        namespace: Some("backup".into()),
        name: "store".into(),
    });
    let plan = plan_of(
        Invoker::Configuration(&config),
        vec![(web(), workload(None, None))],
        &[],
        &[],
    );
    assert_eq!(plan.roles.len(), 2);
    for role in &plan.roles {
        let name = role.metadata.name.as_deref().unwrap_or_default();
        assert!(name.len() <= names::MAX_NAME, "{name}");
        assert!(name.starts_with("stowaway-sidecar-"), "{name}");
    }
    assert_ne!(plan.roles[0].metadata.name, plan.roles[1].metadata.name);
}

/// The operator must hold every permission it grants (Kubernetes refuses to create a Role
/// that escalates): each rule of the Roles made here is covered by the chart's operator
/// ClusterRole.
#[test]
fn the_operator_holds_every_permission_it_grants() {
    let chart = include_str!("../../../../charts/stowaway/templates/rbac.yaml");
    // The operator's ClusterRole is the first document; template lines are dropped.
    let first = chart.split("\n---").next().expect("a document");
    let plain: String = first
        .lines()
        .filter(|l| !l.trim_start().starts_with("{{"))
        .map(|l| l.replace("{{ $fullname }}", "stowaway"))
        .collect::<Vec<_>>()
        .join("\n");
    let role: Value = serde_yaml::from_str(&plain).expect("the operator's ClusterRole");
    assert_eq!(role["kind"], "ClusterRole");
    let held: BTreeSet<(String, String, String)> = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|r| {
            let strings = |k: &str| -> Vec<String> {
                r[k].as_array()
                    .expect("a list")
                    .iter()
                    .map(|v| v.as_str().expect("text").to_owned())
                    .collect()
            };
            let (groups, resources, verbs) =
                (strings("apiGroups"), strings("resources"), strings("verbs"));
            groups
                .iter()
                .flat_map(|g| {
                    resources.iter().flat_map(|r| {
                        verbs
                            .iter()
                            .map(|v| (g.clone(), r.clone(), v.clone()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut config = config(r#"{stowaway.dev/inject: "true", stowaway.dev/allow-restore: "true"}"#);
    config.spec.backends[0].storage_ref = Some(ObjectReference {
        namespace: Some("backup".into()),
        name: "store".into(),
    });
    let storages = [storage("backup", "store", Some("creds"))];
    let batch: BackupBatch = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {name: b, namespace: demo, annotations: {stowaway.dev/inject: "true"}}
spec:
  targets: [{name: app, appRef: {apiGroup: apps, kind: Deployment, name: web}}]
"#,
    );
    let mut granted = 0;
    for invoker in [Invoker::Configuration(&config), Invoker::Batch(&batch)] {
        let plan = plan_of(invoker, vec![(web(), workload(None, None))], &storages, &[]);
        for rule in plan.roles.iter().flat_map(|r| r.rules.iter().flatten()) {
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        granted += 1;
                        assert!(
                            held.contains(&(group.clone(), resource.clone(), verb.clone())),
                            "the operator grants {verb} {group}/{resource} to sidecars but \
                             does not hold it (charts/stowaway/templates/rbac.yaml)"
                        );
                    }
                }
            }
        }
    }
    assert!(granted > 20, "{granted}");
    // And it may manage the Roles and RoleBindings themselves.
    for resource in ["roles", "rolebindings"] {
        for verb in ["get", "list", "create", "update", "delete"] {
            assert!(
                held.contains(&(RBAC_GROUP.into(), resource.into(), verb.into())),
                "{verb} {resource}"
            );
        }
    }
}
