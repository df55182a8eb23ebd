//! Example manifests (`tests/manifests/` at the repository root) against the CRD schemas and
//! the admission rules.
//!
//! Every good manifest validates against its CRD's `openAPIV3Schema`, is accepted by the
//! mutating and validating webhooks (`review`) with a catalog built from the other manifests,
//! and still fits the schema after defaulting. Every manifest of `invalid/` fits the schema
//! but is rejected, with errors at exactly the field paths its `# expect: <path>` lines name.
//!
//! The schemas are checked strictly: an object schema that lists its properties (and does not
//! preserve unknown fields) accepts no others, since the API server would silently prune them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use stowaway_api::{
    Addon, BackupBatch, BackupBlueprint, BackupConfiguration, BackupSession, BackupStorage,
    HookTemplate, Repository, RestoreSession, RetentionPolicy,
};
use stowaway_operator::admission::{self, Catalog, FieldError};

/// One manifest file.
struct Manifest {
    path: PathBuf,
    text: String,
    value: Value,
}

impl Manifest {
    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn group(&self) -> &str {
        let api_version = self.value["apiVersion"].as_str().unwrap_or("");
        api_version.split_once('/').map_or("", |(group, _)| group)
    }

    /// The paths of the `# expect: <path>` lines.
    fn expected_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .text
            .lines()
            .filter_map(|line| line.strip_prefix("# expect:"))
            .map(|path| path.trim().to_owned())
            .collect();
        paths.sort();
        paths
    }

    fn typed<K: DeserializeOwned>(&self) -> K {
        serde_json::from_value(self.value.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name()))
    }
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/manifests")
}

/// The `*.yaml` files of `dir`, by name.
fn load(dir: &Path) -> Vec<Manifest> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()).expect("a directory entry"))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value: Value =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Manifest { path, text, value }
        })
        .collect()
}

/// The catalog the rules see: every good manifest except `skip`.
fn catalog(manifests: &[Manifest], skip: Option<&Path>) -> Catalog {
    let mut catalog = Catalog::default();
    for m in manifests.iter().filter(|m| Some(m.path.as_path()) != skip) {
        match m.kind() {
            "BackupStorage" => catalog.backup_storages.push(m.typed::<BackupStorage>()),
            "RetentionPolicy" => catalog
                .retention_policies
                .push(m.typed::<RetentionPolicy>()),
            "HookTemplate" => catalog.hook_templates.push(m.typed::<HookTemplate>()),
            "Repository" => catalog.repositories.push(m.typed::<Repository>()),
            "Addon" => catalog.addons.push(m.typed::<Addon>()),
            _ => {}
        }
    }
    catalog
}

/// Strict schemas by (group, kind).
fn schemas() -> BTreeMap<(String, String), jsonschema::Validator> {
    stowaway_api::all_crds()
        .into_iter()
        .map(|crd| {
            let version = crd.spec.versions.first().expect("a version");
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("an openAPIV3Schema");
            let mut schema = serde_json::to_value(schema).expect("JSON");
            // The root lists only spec and status; the API server adds the object's type
            // and metadata.
            schema["properties"]["apiVersion"] = json!({"type": "string"});
            schema["properties"]["kind"] = json!({"type": "string"});
            schema["properties"]["metadata"] = json!({"type": "object"});
            strict(&mut schema);
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("schema of {}: {e}", crd.spec.names.kind));
            ((crd.spec.group, crd.spec.names.kind), validator)
        })
        .collect()
}

/// `additionalProperties: false` on every object schema with `properties` that does not
/// preserve unknown fields.
fn strict(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let preserves = object
        .get("x-kubernetes-preserve-unknown-fields")
        .is_some_and(|v| v == &Value::Bool(true));
    if object.contains_key("properties")
        && !preserves
        && !object.contains_key("additionalProperties")
    {
        object.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.values_mut().for_each(strict);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = object.get_mut(key) {
            strict(inner);
        }
    }
}

/// The schema errors of `value` (group and kind from its `apiVersion` and `kind`).
fn schema_errors(
    schemas: &BTreeMap<(String, String), jsonschema::Validator>,
    name: &str,
    value: &Value,
) -> Vec<String> {
    let group = value["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map_or("", |(g, _)| g);
    let kind = value["kind"].as_str().unwrap_or("");
    let validator = schemas
        .get(&(group.to_owned(), kind.to_owned()))
        .unwrap_or_else(|| panic!("{name}: no CRD for {group}/{kind}"));
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn request(manifest: &Manifest, object: &Value) -> AdmissionRequest<DynamicObject> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": manifest.group(), "version": "v1alpha1", "kind": manifest.kind()},
            "resource": {"group": manifest.group(), "version": "v1alpha1", "resource": "objects"},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "kubectl"},
            "object": object,
            "dryRun": false,
        }
    });
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review).expect("an AdmissionReview");
    review.try_into().expect("an AdmissionRequest")
}

/// `object` with the patch of a mutating `response` applied.
fn patched(object: &Value, response: &AdmissionResponse) -> Value {
    let mut doc = object.clone();
    if let Some(patch) = &response.patch {
        let patch: json_patch::Patch = serde_json::from_slice(patch).expect("a JSON patch");
        json_patch::patch(&mut doc, &patch.0).expect("the patch applies");
    }
    doc
}

/// Defaulting then validation through the typed functions; the field errors on rejection.
fn admit(manifest: &Manifest, catalog: &Catalog) -> Result<(), Vec<FieldError>> {
    fn run<K: DeserializeOwned>(
        m: &Manifest,
        default: impl FnOnce(K) -> K,
        validate: impl FnOnce(&K) -> Result<(), admission::Rejection>,
    ) -> Result<(), Vec<FieldError>> {
        validate(&default(m.typed::<K>())).map_err(|r| r.0)
    }
    match manifest.kind() {
        "BackupStorage" => run(
            manifest,
            admission::default_backup_storage,
            |o: &BackupStorage| admission::validate_backup_storage(o, None, catalog),
        ),
        "RetentionPolicy" => run(
            manifest,
            admission::default_retention_policy,
            |o: &RetentionPolicy| admission::validate_retention_policy(o, None, catalog),
        ),
        "HookTemplate" => run(
            manifest,
            admission::default_hook_template,
            |o: &HookTemplate| admission::validate_hook_template(o, None, catalog),
        ),
        "BackupBlueprint" => run(
            manifest,
            admission::default_backup_blueprint,
            |_: &BackupBlueprint| Ok(()),
        ),
        "BackupConfiguration" => run(
            manifest,
            |o| admission::default_backup_configuration(o, catalog),
            |o: &BackupConfiguration| admission::validate_backup_configuration(o, None, catalog),
        ),
        "BackupBatch" => run(
            manifest,
            |o| o,
            |o: &BackupBatch| admission::validate_backup_batch(o, None, catalog),
        ),
        "BackupSession" => run(
            manifest,
            |o| o,
            |o: &BackupSession| admission::validate_backup_session(o, None, catalog),
        ),
        "RestoreSession" => run(
            manifest,
            |o| o,
            |o: &RestoreSession| admission::validate_restore_session(o, None, catalog),
        ),
        "Repository" => run(
            manifest,
            |o| o,
            |o: &Repository| admission::validate_repository(o, None, catalog),
        ),
        "Addon" => run(
            manifest,
            |o| o,
            |o: &Addon| admission::validate_addon(o, None, catalog),
        ),
        _ => Ok(()),
    }
}

mod admission_manifests {
    use super::*;

    #[test]
    fn every_kind_has_a_good_manifest() {
        let manifests = load(&manifests_dir());
        for crd in stowaway_api::all_crds() {
            let kind = crd.spec.names.kind;
            assert!(
                manifests.iter().any(|m| m.kind() == kind),
                "no manifest of kind {kind} in tests/manifests"
            );
        }
    }

    #[test]
    fn good_manifests_fit_the_schema_and_pass_admission() {
        let schemas = schemas();
        let manifests = load(&manifests_dir());
        assert!(manifests.len() >= 20, "{} manifests", manifests.len());
        let mut failures = Vec::new();
        for m in &manifests {
            let name = m.name();
            for e in schema_errors(&schemas, &name, &m.value) {
                failures.push(format!("{name}: schema: {e}"));
            }
            let catalog = catalog(&manifests, Some(&m.path));
            if let Err(errors) = admit(m, &catalog) {
                failures.push(format!("{name}: rejected: {errors:?}"));
            }
            // The same through the webhook: mutate, apply the patch, validate.
            let mutated = admission::review(&request(m, &m.value), &catalog, true);
            if !mutated.allowed {
                failures.push(format!(
                    "{name}: mutation denied: {}",
                    mutated.result.message
                ));
                continue;
            }
            let defaulted = patched(&m.value, &mutated);
            for e in schema_errors(&schemas, &name, &defaulted) {
                failures.push(format!("{name}: defaulted object: schema: {e}"));
            }
            let validated = admission::review(&request(m, &defaulted), &catalog, false);
            if !validated.allowed {
                failures.push(format!("{name}: denied: {}", validated.result.message));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn defaulting_fills_the_namespace_defaults() {
        let manifests = load(&manifests_dir());
        let m = manifests
            .iter()
            .find(|m| m.name() == "backupconfiguration-workload-defaults.yaml")
            .expect("the manifest");
        let catalog = catalog(&manifests, Some(&m.path));
        let response = admission::review(&request(m, &m.value), &catalog, true);
        let defaulted = patched(&m.value, &response);
        assert_eq!(
            defaulted["spec"]["backends"],
            json!([{
                "name": "default",
                "storageRef": {"namespace": "demo", "name": "s3-storage"},
                "retentionPolicy": {"namespace": "demo", "name": "demo-retention"},
            }])
        );
        assert_eq!(
            defaulted["spec"]["sessions"][0]["repositories"][0]["backend"],
            json!("default")
        );
    }

    #[test]
    fn invalid_manifests_are_rejected_at_the_expected_paths() {
        let schemas = schemas();
        let good = load(&manifests_dir());
        let catalog = catalog(&good, None);
        let invalid = load(&manifests_dir().join("invalid"));
        assert!(invalid.len() >= 20, "{} invalid manifests", invalid.len());
        let mut failures = Vec::new();
        for m in &invalid {
            let name = m.name();
            let expected = m.expected_paths();
            if expected.is_empty() {
                failures.push(format!("{name}: no `# expect: <path>` line"));
                continue;
            }
            // Valid for the schema: the webhook is what rejects it.
            for e in schema_errors(&schemas, &name, &m.value) {
                failures.push(format!("{name}: schema: {e}"));
            }
            let mut paths: Vec<String> = match admit(m, &catalog) {
                Ok(()) => {
                    failures.push(format!("{name}: accepted, expected {expected:?}"));
                    continue;
                }
                Err(errors) => errors.into_iter().map(|e| e.path).collect(),
            };
            paths.sort();
            if paths != expected {
                failures.push(format!(
                    "{name}: rejected at {paths:?}, expected {expected:?}"
                ));
            }
            // The webhook denies it too, naming each path.
            let mutated = admission::review(&request(m, &m.value), &catalog, true);
            let defaulted = patched(&m.value, &mutated);
            let response = admission::review(&request(m, &defaulted), &catalog, false);
            if response.allowed {
                failures.push(format!("{name}: allowed by review"));
            }
            for path in &expected {
                if !response.result.message.contains(&format!("{path}: ")) {
                    failures.push(format!(
                        "{name}: denial {:?} does not name {path}",
                        response.result.message
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
