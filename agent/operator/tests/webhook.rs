//! The admission webhook over real HTTPS (a self-signed certificate), with the fake API
//! server behind it: AdmissionReviews in, allowed, denied or patched out.

use k8s_openapi::api::core::v1::Namespace;
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};
use stowaway_api::{Addon, BackupStorage, HookTemplate, Repository, RetentionPolicy};
use stowaway_operator::webhook;

mod common;
use common::with_namespaces;

const DEFAULT_STORAGE: &str = r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {name: first, namespace: demo}
spec:
  storage: {provider: s3, s3: {endpoint: "https://s3.example", bucket: one}}
  default: true
  deletionPolicy: Delete
"#;

const KEEP: &str = r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: keep, namespace: demo}
spec:
  successfulSnapshots: {last: 3}
  usagePolicy: {allowedNamespaces: {from: Same}}
"#;

struct Server {
    url: String,
    http: reqwest::Client,
}

async fn start() -> Server {
    let first: BackupStorage = serde_yaml::from_str(DEFAULT_STORAGE).expect("storage");
    let sidecar_config: stowaway_api::BackupConfiguration = serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata:
  name: web-backup
  namespace: demo
  annotations: {stowaway.dev/inject: "true"}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  sessions: []
"#,
    )
    .expect("configuration");
    let client = ClientBuilder::new()
        .with_resource::<BackupStorage>()
        .with_resource::<RetentionPolicy>()
        .with_resource::<HookTemplate>()
        .with_resource::<Repository>()
        .with_resource::<Addon>()
        .with_resource::<stowaway_api::BackupConfiguration>()
        .with_object(first)
        .with_object(serde_yaml::from_str::<RetentionPolicy>(KEEP).expect("policy"))
        .with_object(sidecar_config)
        .build()
        .await
        .expect("fake client");
    let mut demo = Namespace::default();
    demo.metadata.name = Some("demo".into());
    let client = with_namespaces(client, vec![demo]);

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
        stowaway_operator::injection::SidecarSettings {
            image: "registry.example/stowaway:1.0".into(),
            ..Default::default()
        },
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

fn review(object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7d3c0f4e",
            "kind": {"group": "storage.stowaway.dev", "version": "v1alpha1", "kind": "BackupStorage"},
            "resource": {"group": "storage.stowaway.dev", "version": "v1alpha1", "resource": "backupstorages"},
            "name": object["metadata"]["name"],
            "namespace": "demo",
            "operation": "CREATE",
            "userInfo": {"username": "tester"},
            "object": object,
            "dryRun": false
        }
    })
}

async fn post(server: &Server, path: &str, body: &Value) -> Value {
    let response = server
        .http
        .post(format!("{}{path}", server.url))
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn storage(name: &str, bucket: &str, default: bool) -> Value {
    json!({
        "apiVersion": "storage.stowaway.dev/v1alpha1",
        "kind": "BackupStorage",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "storage": {"provider": "s3", "s3": {"endpoint": "https://s3.example/", "bucket": bucket}},
            "default": default,
            "deletionPolicy": "Delete"
        }
    })
}

#[tokio::test]
async fn validation_denies_a_second_default_storage_with_the_field_path() {
    let server = start().await;
    let answer = post(
        &server,
        "/validate",
        &review(storage("second", "two", true)),
    )
    .await;
    let response = &answer["response"];
    assert_eq!(response["uid"], "7d3c0f4e");
    assert_eq!(response["allowed"], false, "{answer}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("spec.default"), "{message}");

    let answer = post(
        &server,
        "/validate",
        &review(storage("second", "two", false)),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn mutation_answers_with_a_json_patch_of_the_defaults() {
    let server = start().await;
    let answer = post(&server, "/mutate", &review(storage("second", "two", false))).await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    assert_eq!(response["patchType"], "JSONPatch");
    // kube-core writes the patch bytes as a JSON array of numbers, which the API server's
    // Go decoder accepts for `[]byte` as well as base64.
    let bytes: Vec<u8> = match &response["patch"] {
        Value::Array(items) => items
            .iter()
            .map(|v| u8::try_from(v.as_u64().expect("byte")).expect("byte"))
            .collect(),
        Value::String(text) => base64_decode(text),
        other => panic!("no patch in {answer}: {other}"),
    };
    let patch = String::from_utf8(bytes).expect("utf8");
    assert!(patch.contains("usagePolicy"), "{patch}");
    assert!(
        patch.contains("https://s3.example\""),
        "trailing slash trimmed: {patch}"
    );
}

#[tokio::test]
async fn addon_sources_must_be_https_with_a_sha256() {
    let server = start().await;
    let addon = |url: &str, sha256: &str| {
        let mut body = review(json!({
            "apiVersion": "addons.stowaway.dev/v1alpha1",
            "kind": "Addon",
            "metadata": {"name": "redis"},
            "spec": {
                "backupTasks": [{"name": "logical-backup", "function": "redis"}],
                "source": {"url": url, "sha256": sha256}
            }
        }));
        body["request"]["kind"] =
            json!({"group": "addons.stowaway.dev", "version": "v1alpha1", "kind": "Addon"});
        body["request"]["resource"] =
            json!({"group": "addons.stowaway.dev", "version": "v1alpha1", "resource": "addons"});
        body["request"]["namespace"] = Value::Null;
        body
    };
    let sha = "ab".repeat(32);
    let answer = post(
        &server,
        "/validate",
        &addon("https://addons.example/redis.wasm", &sha),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let answer = post(
        &server,
        "/validate",
        &addon("http://addons.example/redis.wasm", "abc"),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        message,
        "spec.source.url: must be an https:// URL (http:// only to 127.0.0.1), not \"http://addons.example/redis.wasm\"; \
         spec.source.sha256: must be the SHA-256 of the component as 64 hex digits, not \"abc\""
    );
}

#[tokio::test]
async fn a_built_in_addon_reference_is_checked_against_its_description() {
    let server = start().await;
    let config = |params: Value| {
        let mut body = review(json!({
            "apiVersion": "core.stowaway.dev/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": "db", "namespace": "demo"},
            "spec": {
                "target": {"apiGroup": "apps", "kind": "Deployment", "name": "web"},
                "backends": [{
                    "name": "first",
                    "storageRef": {"name": "first", "namespace": "demo"},
                    "retentionPolicy": {"name": "keep", "namespace": "demo"}
                }],
                "sessions": [{
                    "name": "daily",
                    "scheduler": {"schedule": "0 2 * * *"},
                    "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup", "params": params}]},
                    "repositories": [{"name": "repo", "backend": "first", "directory": "/db"}]
                }]
            }
        }));
        body["request"]["kind"] = json!({"group": "core.stowaway.dev", "version": "v1alpha1", "kind": "BackupConfiguration"});
        body["request"]["resource"] = json!({"group": "core.stowaway.dev", "version": "v1alpha1", "resource": "backupconfigurations"});
        body
    };
    let answer = post(
        &server,
        "/validate",
        &config(json!({"backupCmd": "pg_dump"})),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let answer = post(
        &server,
        "/validate",
        &config(json!({"backupcmd": "pg_dump"})),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        message,
        "spec.sessions[0].addon.tasks[0].params.backupcmd: unknown parameter: task \"logical-backup\" of Addon \"postgres-addon\" takes host, port, backupCmd, args"
    );
}

#[tokio::test]
async fn other_paths_and_bodies_are_refused() {
    let server = start().await;
    let r = server
        .http
        .get(format!("{}/validate", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let r = server
        .http
        .post(format!("{}/validate", server.url))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
}

/// Standard base64 (the `patch` field of an AdmissionResponse).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

fn pod_review(pod: Value, operation: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5e1b2c3d",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "demo",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": false
        }
    })
}

fn web_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7c9b4-",
            "namespace": "demo",
            "labels": {"app": "web", "pod-template-hash": "7c9b4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-7c9b4", "uid": "u", "controller": true}]
        },
        "spec": {
            "containers": [{"name": "web", "image": "nginx",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]
        }
    })
}

fn patch_of(answer: &Value) -> Option<json_patch::Patch> {
    let bytes: Vec<u8> = match &answer["response"]["patch"] {
        Value::Array(items) => items
            .iter()
            .map(|v| u8::try_from(v.as_u64().expect("byte")).expect("byte"))
            .collect(),
        Value::String(text) => base64_decode(text),
        Value::Null => return None,
        other => panic!("unexpected patch {other}"),
    };
    Some(serde_json::from_slice(&bytes).expect("a JSON patch"))
}

#[tokio::test]
async fn a_new_pod_of_a_workload_in_sidecar_mode_gets_the_sidecar() {
    let server = start().await;
    let pod = web_pod();
    let answer = post(&server, "/inject", &pod_review(pod.clone(), "CREATE")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patch = patch_of(&answer).expect("a patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch.0).expect("the patch applies");
    let sidecar = out["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "stowaway"))
        .expect("the sidecar");
    assert_eq!(sidecar["image"], "registry.example/stowaway:1.0");
    assert_eq!(
        sidecar["volumeMounts"][0],
        json!({"name": "data", "mountPath": "/stowaway/volumes/data", "readOnly": true})
    );
    assert_eq!(
        out["metadata"]["labels"]["stowaway.dev/sidecar-target"],
        "deployment.web"
    );

    // The injected pod again (a retried admission): no second sidecar.
    let again = post(&server, "/inject", &pod_review(out, "CREATE")).await;
    assert_eq!(again["response"]["allowed"], true);
    assert!(patch_of(&again).is_none(), "{again}");

    // Updates are never patched (nothing restarts by surprise), and other workloads are left alone.
    let update = post(&server, "/inject", &pod_review(pod, "UPDATE")).await;
    assert!(patch_of(&update).is_none(), "{update}");
    let mut other = web_pod();
    other["metadata"]["ownerReferences"][0]["name"] = json!("api-7c9b4");
    let answer = post(&server, "/inject", &pod_review(other, "CREATE")).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(patch_of(&answer).is_none(), "{answer}");
}
