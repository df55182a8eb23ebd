use serde_json::{Value, json};

use super::*;

/// A pod of Deployment `web` (ReplicaSet `web-5d8f7c9b4`) with a data PVC, a ConfigMap and a
/// service-account token volume; the app runs as 1000:3000.
fn deployment_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-5d8f7c9b4-",
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b4",
                "uid": "rs-uid", "controller": true
            }]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
                "volumeMounts": [
                    {"name": "uploads", "mountPath": "/var/www/uploads"},
                    {"name": "config", "mountPath": "/etc/nginx/conf.d"},
                    {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                ]
            }],
            "volumes": [
                {"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}},
                {"name": "config", "configMap": {"name": "nginx"}},
                {"name": "kube-api-access-x", "projected": {"sources": []}},
                {"name": "unused", "emptyDir": {}}
            ]
        }
    })
}

/// A pod of StatefulSet `pg` with its volumeClaimTemplate volume.
fn statefulset_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "pg-0",
            "namespace": "db",
            "labels": {"app": "pg"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pg",
                "uid": "sts-uid", "controller": true
            }]
        },
        "spec": {
            "containers": [{
                "name": "postgres",
                "image": "postgres:16",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-0"}}]
        }
    })
}

fn pod(value: &Value) -> Pod {
    serde_json::from_value(value.clone()).expect("pod")
}

fn config(name: &str, kind: &str, target: &str, sidecar: bool) -> BackupConfiguration {
    let mut c: BackupConfiguration = serde_json::from_value(json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "BackupConfiguration",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"target": {"apiGroup": "apps", "kind": kind, "name": target}, "sessions": []}
    }))
    .expect("config");
    if sidecar {
        c.metadata.annotations = Some([(INJECT_ANNOTATION.to_owned(), "true".to_owned())].into());
    }
    c
}

/// Applies the webhook's patch to the pod manifest, as the API server does.
fn patched(value: &Value, target: &TypedObjectReference) -> Value {
    let patch = patch(&pod(value), target, &SidecarSettings::default());
    let mut doc = value.clone();
    json_patch::patch(&mut doc, &patch.0).expect("the patch applies");
    doc
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .expect("container")
}

#[test]
fn a_deployment_pod_in_sidecar_mode_gets_the_sidecar_with_its_data_read_only() {
    let value = deployment_pod();
    let configs = [
        config("other", "Deployment", "api", true),
        config("web-backup", "Deployment", "web", true),
    ];
    let Decision::Inject {
        target,
        because,
        allow_restore,
    } = decide(&pod(&value), &configs)
    else {
        panic!("expected injection");
    };
    assert_eq!(
        (target.kind.as_str(), target.name.as_str()),
        ("Deployment", "web")
    );
    assert_eq!(
        because,
        "BackupConfiguration web-backup targets Deployment web in sidecar mode"
    );
    assert!(!allow_restore, "restores are off unless annotated");
    let out = patched(&value, &target);

    assert_eq!(
        out["metadata"]["labels"]["stowaway.dev/sidecar-target"],
        "deployment.web"
    );
    let sidecar = container(&out, CONTAINER);
    assert_eq!(sidecar["args"], json!(["sidecar"]));
    // Data volumes only (not the ConfigMap, the token, or volumes nobody mounts), read-only.
    assert_eq!(
        sidecar["volumeMounts"],
        json!([
            {"name": "uploads", "mountPath": "/stowaway/volumes/uploads", "readOnly": true},
            {"name": "stowaway-socket", "mountPath": "/var/run/stowaway"},
            {"name": "stowaway-tmp", "mountPath": "/tmp"}
        ])
    );
    // Reads as the application's user; locked down otherwise.
    assert_eq!(
        sidecar["securityContext"],
        json!({
            "runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 3000,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}
        })
    );
    let env: Vec<&str> = sidecar["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        env,
        vec![
            "POD_NAME",
            "POD_NAMESPACE",
            "NODE_NAME",
            "STOWAWAY_TARGET_KIND",
            "STOWAWAY_TARGET_NAME",
            "STOWAWAY_VOLUMES_DIR",
            "STOWAWAY_SOCKET",
            "STOWAWAY_API_PORT"
        ]
    );
    // The application container shares the socket directory; its own mounts are untouched.
    let web = container(&out, "web");
    assert_eq!(web["volumeMounts"].as_array().map(Vec::len), Some(4));
    assert_eq!(web["volumeMounts"][3]["mountPath"], "/var/run/stowaway");
    let volumes: Vec<&str> = out["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        volumes,
        vec![
            "uploads",
            "config",
            "kube-api-access-x",
            "unused",
            "stowaway-socket",
            "stowaway-tmp"
        ]
    );

    // Applying the webhook again to the injected pod changes nothing.
    assert_eq!(
        decide(&pod(&out), &configs),
        Decision::Skip("the pod already has the sidecar".into())
    );
}

#[test]
fn a_statefulset_pod_annotated_for_injection_gets_the_sidecar() {
    let mut value = statefulset_pod();
    value["metadata"]["annotations"] = json!({"stowaway.dev/inject": "true"});
    let Decision::Inject {
        target,
        because,
        allow_restore,
    } = decide(&pod(&value), &[])
    else {
        panic!("expected injection");
    };
    assert_eq!(
        (target.kind.as_str(), target.name.as_str()),
        ("StatefulSet", "pg")
    );
    assert_eq!(because, "the pod carries stowaway.dev/inject: true");
    assert!(!allow_restore);
    let out = patched(&value, &target);
    let sidecar = container(&out, CONTAINER);
    assert_eq!(
        sidecar["volumeMounts"][0],
        json!({"name": "data", "mountPath": "/stowaway/volumes/data", "readOnly": true})
    );
    // No user set by the app: the pod's (or the image's) applies, but never root.
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    assert!(sidecar["securityContext"].get("runAsUser").is_none());
    assert_eq!(
        out["metadata"]["labels"]["stowaway.dev/sidecar-target"],
        "statefulset.pg"
    );
}

#[test]
fn pods_without_a_target_or_opted_out_are_left_alone() {
    // No configuration in sidecar mode for this workload (one exists, not in sidecar mode).
    let value = deployment_pod();
    assert_eq!(
        decide(
            &pod(&value),
            &[config("web-backup", "Deployment", "web", false)]
        ),
        Decision::Skip("no BackupConfiguration in sidecar mode targets Deployment web".into())
    );
    // A bare pod without the annotation.
    let mut bare = statefulset_pod();
    bare["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("ownerReferences");
    assert_eq!(
        decide(&pod(&bare), &[]),
        Decision::Skip("the pod belongs to no Deployment, StatefulSet or DaemonSet".into())
    );
    // Opted out on the pod although the configuration asks.
    let mut out = deployment_pod();
    out["metadata"]["annotations"] = json!({"stowaway.dev/inject": "false"});
    assert_eq!(
        decide(
            &pod(&out),
            &[config("web-backup", "Deployment", "web", true)]
        ),
        Decision::Skip("the pod says stowaway.dev/inject: false".into())
    );
}

#[test]
fn a_replicaset_without_the_hash_label_is_its_own_workload() {
    let mut value = deployment_pod();
    value["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("pod-template-hash");
    let workload = workload_of(&pod(&value)).expect("workload");
    assert_eq!(
        (workload.kind.as_str(), workload.name.as_str()),
        ("ReplicaSet", "web-5d8f7c9b4")
    );
}

#[test]
fn an_annotated_configuration_lets_the_sidecar_create_restores() {
    let value = deployment_pod();
    let mut allowing = config("web-backup", "Deployment", "web", true);
    allowing
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("stowaway.dev/allow-restore".into(), "true".into());
    let Decision::Inject {
        target,
        allow_restore,
        ..
    } = decide(&pod(&value), &[allowing])
    else {
        panic!("expected injection");
    };
    assert!(allow_restore);
    let settings = SidecarSettings {
        allow_restore,
        ..SidecarSettings::default()
    };
    let mut out = value.clone();
    json_patch::patch(&mut out, &patch(&pod(&value), &target, &settings).0).expect("applies");
    let env = container(&out, CONTAINER)["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "STOWAWAY_ALLOW_RESTORE")
        .cloned();
    assert_eq!(
        env,
        Some(json!({"name": "STOWAWAY_ALLOW_RESTORE", "value": "true"}))
    );
}
