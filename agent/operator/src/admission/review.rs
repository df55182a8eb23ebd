//! The admission review: an `AdmissionRequest` for one of Stowaway's kinds in, the
//! `AdmissionResponse` of the mutating or validating webhook out.

use std::convert::identity;

use kube::Resource;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stowaway_api::{
    Addon, BackupBatch, BackupBlueprint, BackupConfiguration, BackupSession, BackupStorage,
    HookTemplate, Repository, RestoreSession, RetentionPolicy,
};

use super::{
    Catalog, Rejection, default_backup_blueprint, default_backup_configuration,
    default_backup_storage, default_hook_template, default_retention_policy, validate_addon,
    validate_backup_batch, validate_backup_configuration, validate_backup_session,
    validate_backup_storage, validate_hook_template, validate_repository, validate_restore_session,
    validate_retention_policy,
};

/// Answers one admission request: with `mutate`, the defaulting as a JSON patch (none when
/// nothing changes); without, the validation (a denial lists every field error).
///
/// The kind is dispatched on its group and kind; other kinds, deletions, connects and
/// subresource requests (such as `/status`) are allowed unchanged. An object that does not
/// deserialize into its kind is denied with the reason. An object without a namespace takes
/// the request's.
pub fn review(
    request: &AdmissionRequest<DynamicObject>,
    catalog: &Catalog,
    mutate: bool,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(kind) = Kind::of(&request.kind.group, &request.kind.kind) else {
        return response;
    };
    if matches!(request.operation, Operation::Delete | Operation::Connect)
        || request.sub_resource.is_some()
    {
        return response;
    }
    let Some(object) = &request.object else {
        return response;
    };
    let input = Input {
        object,
        old: request.old_object.as_ref(),
        namespace: request.namespace.as_deref(),
        catalog,
    };
    let outcome = if mutate {
        kind.mutate(&input)
            .map(|patch| patch.filter(|p| !p.0.is_empty()))
    } else {
        kind.validate(&input).map(|()| None)
    };
    match outcome {
        Ok(None) => response,
        Ok(Some(patch)) => match response.clone().with_patch(patch) {
            Ok(patched) => patched,
            Err(error) => response.deny(format!("cannot serialize the defaults: {error}")),
        },
        Err(message) => response.deny(message),
    }
}

/// The kinds with admission rules.
#[derive(Clone, Copy, Debug)]
enum Kind {
    BackupStorage,
    RetentionPolicy,
    Repository,
    BackupConfiguration,
    BackupBatch,
    BackupSession,
    RestoreSession,
    HookTemplate,
    BackupBlueprint,
    Addon,
}

/// What a review works on.
struct Input<'a> {
    object: &'a DynamicObject,
    old: Option<&'a DynamicObject>,
    namespace: Option<&'a str>,
    catalog: &'a Catalog,
}

impl Kind {
    fn of(group: &str, kind: &str) -> Option<Kind> {
        fn is<K: Resource<DynamicType = ()>>(group: &str, kind: &str) -> bool {
            K::group(&()) == group && K::kind(&()) == kind
        }
        [
            (is::<BackupStorage>(group, kind), Kind::BackupStorage),
            (is::<RetentionPolicy>(group, kind), Kind::RetentionPolicy),
            (is::<Repository>(group, kind), Kind::Repository),
            (
                is::<BackupConfiguration>(group, kind),
                Kind::BackupConfiguration,
            ),
            (is::<BackupBatch>(group, kind), Kind::BackupBatch),
            (is::<BackupSession>(group, kind), Kind::BackupSession),
            (is::<RestoreSession>(group, kind), Kind::RestoreSession),
            (is::<HookTemplate>(group, kind), Kind::HookTemplate),
            (is::<BackupBlueprint>(group, kind), Kind::BackupBlueprint),
            (is::<Addon>(group, kind), Kind::Addon),
        ]
        .into_iter()
        .find_map(|(matches, k)| matches.then_some(k))
    }

    /// The JSON patch of the defaults.
    fn mutate(self, input: &Input<'_>) -> Result<Option<json_patch::Patch>, String> {
        match self {
            Kind::BackupStorage => patch_of(input, default_backup_storage),
            Kind::RetentionPolicy => patch_of(input, default_retention_policy),
            Kind::HookTemplate => patch_of(input, default_hook_template),
            Kind::BackupBlueprint => patch_of(input, default_backup_blueprint),
            Kind::BackupConfiguration => {
                patch_of(input, |bc| default_backup_configuration(bc, input.catalog))
            }
            Kind::Repository => patch_of::<Repository>(input, identity),
            Kind::BackupBatch => patch_of::<BackupBatch>(input, identity),
            Kind::BackupSession => patch_of::<BackupSession>(input, identity),
            Kind::RestoreSession => patch_of::<RestoreSession>(input, identity),
            Kind::Addon => patch_of::<Addon>(input, identity),
        }
    }

    fn validate(self, input: &Input<'_>) -> Result<(), String> {
        match self {
            Kind::BackupStorage => check(input, validate_backup_storage),
            Kind::RetentionPolicy => check(input, validate_retention_policy),
            Kind::Repository => check(input, validate_repository),
            Kind::BackupConfiguration => check(input, validate_backup_configuration),
            Kind::BackupBatch => check(input, validate_backup_batch),
            Kind::BackupSession => check(input, validate_backup_session),
            Kind::RestoreSession => check(input, validate_restore_session),
            Kind::HookTemplate => check(input, validate_hook_template),
            Kind::BackupBlueprint => check::<BackupBlueprint>(input, |_, _, _| Ok(())),
            Kind::Addon => check(input, validate_addon),
        }
    }
}

/// The object as JSON, its namespace filled in from the request when it has none.
fn raw_json(object: &DynamicObject, namespace: Option<&str>) -> Result<Value, String> {
    let mut value =
        serde_json::to_value(object).map_err(|e| format!("cannot read the object: {e}"))?;
    if let (Some(namespace), Some(metadata)) = (
        namespace,
        value.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::from(namespace));
    }
    Ok(value)
}

/// The object as `K`; `which` names it in the error (`object`, `oldObject`).
fn typed<K>(value: Value, which: &str) -> Result<K, String>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    serde_json::from_value(value)
        .map_err(|e| format!("{which} is not a valid {}: {e}", K::kind(&())))
}

fn patch_of<K>(
    input: &Input<'_>,
    default: impl FnOnce(K) -> K,
) -> Result<Option<json_patch::Patch>, String>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Serialize,
{
    let raw = raw_json(input.object, input.namespace)?;
    let object: K = typed(raw.clone(), "object")?;
    let to_json = |k: &K| serde_json::to_value(k).map_err(|e| format!("cannot serialize: {e}"));
    let before = to_json(&object)?;
    let after = to_json(&default(object))?;
    // Both sides went through `K`, so the patch holds only what the defaulting changed.
    let patch = json_patch::diff(&before, &after);
    if patch.0.is_empty() {
        return Ok(None);
    }
    // The API server applies the patch to the object as sent: check that it applies.
    let mut applied = raw;
    json_patch::patch(&mut applied, &patch.0)
        .map_err(|e| format!("cannot apply the defaults to the object: {e}"))?;
    Ok(Some(patch))
}

type Validator<K> = fn(&K, Option<&K>, &Catalog) -> Result<(), Rejection>;

fn check<K>(input: &Input<'_>, validate: Validator<K>) -> Result<(), String>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let new: K = typed(raw_json(input.object, input.namespace)?, "object")?;
    let old: Option<K> = match input.old {
        Some(old) => Some(typed(raw_json(old, input.namespace)?, "oldObject")?),
        None => None,
    };
    validate(&new, old.as_ref(), input.catalog).map_err(|rejection| rejection.to_string())
}

#[cfg(test)]
mod tests {
    use kube::core::admission::AdmissionReview;
    use serde_json::json;

    use super::super::fixtures::{catalog, demo_catalog, storage};
    use super::*;

    fn request(
        operation: &str,
        group: &str,
        kind: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": "v1alpha1", "kind": kind},
                "resource": {"group": group, "version": "v1alpha1", "resource": "things"},
                "name": "x",
                "namespace": "demo",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": old,
                "dryRun": false,
            }
        });
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_value(review).expect("an AdmissionReview");
        review.try_into().expect("a request")
    }

    fn apply(object: &Value, response: &AdmissionResponse) -> Value {
        let patch: json_patch::Patch =
            serde_json::from_slice(response.patch.as_deref().expect("a patch")).expect("JSON");
        let mut doc = object.clone();
        json_patch::patch(&mut doc, &patch.0).expect("the patch applies");
        doc
    }

    fn s3_storage(bucket: &str) -> Value {
        json!({
            "apiVersion": "storage.stowaway.dev/v1alpha1",
            "kind": "BackupStorage",
            "metadata": {"name": "s3", "namespace": "demo", "labels": {"keep": "me"}},
            "spec": {
                "storage": {
                    "provider": "s3",
                    "s3": {"endpoint": "https://s3.example.com/", "bucket": bucket},
                },
                "futureField": {"kept": true},
            }
        })
    }

    #[test]
    fn mutate_patches_only_the_defaults() {
        let object = s3_storage("b/");
        let response = review(
            &request(
                "CREATE",
                "storage.stowaway.dev",
                "BackupStorage",
                object.clone(),
                None,
            ),
            &catalog(),
            true,
        );
        assert!(response.allowed);
        let patched = apply(&object, &response);
        let mut want = object;
        want["spec"]["storage"]["s3"]["endpoint"] = json!("https://s3.example.com");
        want["spec"]["storage"]["s3"]["bucket"] = json!("b");
        want["spec"]["usagePolicy"] = json!({"allowedNamespaces": {"from": "Same"}});
        assert_eq!(patched, want);
    }

    #[test]
    fn mutate_without_changes_has_no_patch() {
        let mut object = s3_storage("b");
        object["spec"]["storage"]["s3"]["endpoint"] = json!("https://s3.example.com");
        object["spec"]["usagePolicy"] = json!({"allowedNamespaces": {"from": "All"}});
        let response = review(
            &request(
                "CREATE",
                "storage.stowaway.dev",
                "BackupStorage",
                object,
                None,
            ),
            &catalog(),
            true,
        );
        assert!(response.allowed);
        assert_eq!(response.patch, None);
    }

    #[test]
    fn mutate_backup_configuration_adds_the_default_backend() {
        let mut c = demo_catalog();
        c.backup_storages[0].spec.default = Some(true);
        c.retention_policies[0].spec.default = Some(true);
        let object = json!({
            "apiVersion": "core.stowaway.dev/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": "app"},
            "spec": {
                "sessions": [{
                    "name": "daily",
                    "scheduler": {"schedule": "0 2 * * *"},
                    "repositories": [{"name": "app-repo", "directory": "/app"}],
                    "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup", "params": {"paths": "/data"}}]},
                }]
            }
        });
        let response = review(
            &request(
                "CREATE",
                "core.stowaway.dev",
                "BackupConfiguration",
                object.clone(),
                None,
            ),
            &c,
            true,
        );
        assert!(response.allowed, "{:?}", response.result);
        let patched = apply(&object, &response);
        assert_eq!(
            patched["spec"]["backends"],
            json!([{
                "name": "default",
                "storageRef": {"namespace": "demo", "name": "s3"},
                "retentionPolicy": {"namespace": "demo", "name": "keep"},
            }])
        );
        assert_eq!(
            patched["spec"]["sessions"][0]["repositories"][0]["backend"],
            json!("default")
        );
        // The namespace came from the request and is not part of the patch.
        assert_eq!(patched["metadata"], json!({"name": "app"}));

        // The defaulted object then passes validation.
        let response = review(
            &request(
                "CREATE",
                "core.stowaway.dev",
                "BackupConfiguration",
                patched,
                None,
            ),
            &c,
            false,
        );
        assert!(response.allowed, "{:?}", response.result);
    }

    #[test]
    fn validate_denies_with_every_field_error() {
        let mut object = s3_storage("b");
        object["spec"]["storage"]["provider"] = json!("gcs");
        object["spec"]["usagePolicy"] = json!({"allowedNamespaces": {"from": "Selector"}});
        let response = review(
            &request(
                "CREATE",
                "storage.stowaway.dev",
                "BackupStorage",
                object,
                None,
            ),
            &catalog(),
            false,
        );
        assert!(!response.allowed);
        assert_eq!(
            response.result.message,
            "spec.storage.gcs: required when provider is gcs; \
             spec.usagePolicy.allowedNamespaces.selector: required when from is Selector"
        );
    }

    #[test]
    fn validate_accepts_a_valid_object() {
        let mut c = catalog();
        c.backup_storages.push(storage("other", "elsewhere"));
        let response = review(
            &request(
                "CREATE",
                "storage.stowaway.dev",
                "BackupStorage",
                s3_storage("b"),
                None,
            ),
            &c,
            false,
        );
        assert!(response.allowed, "{:?}", response.result);
    }

    #[test]
    fn update_compares_with_the_old_object() {
        let session = |retry: i32| {
            json!({
                "apiVersion": "core.stowaway.dev/v1alpha1",
                "kind": "BackupSession",
                "metadata": {"name": "app-daily-1", "namespace": "demo"},
                "spec": {
                    "invoker": {"apiGroup": "core.stowaway.dev", "kind": "BackupConfiguration", "name": "app"},
                    "session": "daily",
                    "retryLeft": retry,
                }
            })
        };
        let same = request(
            "UPDATE",
            "core.stowaway.dev",
            "BackupSession",
            session(1),
            Some(session(1)),
        );
        assert!(review(&same, &catalog(), false).allowed);
        let changed = request(
            "UPDATE",
            "core.stowaway.dev",
            "BackupSession",
            session(0),
            Some(session(1)),
        );
        let response = review(&changed, &catalog(), false);
        assert!(!response.allowed);
        assert_eq!(response.result.message, "spec: spec can not be updated");
    }

    #[test]
    fn objects_that_do_not_deserialize_are_denied() {
        let mut object = s3_storage("b");
        object["spec"]["storage"]["provider"] = json!("ftp");
        for mutate in [true, false] {
            let response = review(
                &request(
                    "CREATE",
                    "storage.stowaway.dev",
                    "BackupStorage",
                    object.clone(),
                    None,
                ),
                &catalog(),
                mutate,
            );
            assert!(!response.allowed);
            assert!(
                response
                    .result
                    .message
                    .starts_with("object is not a valid BackupStorage: unknown variant `ftp`"),
                "{}",
                response.result.message
            );
        }
        let mut old = s3_storage("b");
        old["spec"] = json!({});
        let response = review(
            &request(
                "UPDATE",
                "storage.stowaway.dev",
                "BackupStorage",
                s3_storage("b"),
                Some(old),
            ),
            &catalog(),
            false,
        );
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .starts_with("oldObject is not a valid BackupStorage: missing field `storage`"),
            "{}",
            response.result.message
        );
    }

    #[test]
    fn other_kinds_and_operations_pass_unchanged() {
        let broken = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": 5});
        for (operation, group, kind) in [
            ("CREATE", "apps", "Deployment"),
            ("CREATE", "storage.stowaway.dev", "Snapshot"),
            ("CREATE", "addons.stowaway.dev", "Function"),
            ("CREATE", "example.com", "BackupStorage"),
            ("CREATE", "core.stowaway.dev", "BackupStorage"),
        ] {
            for mutate in [true, false] {
                let response = review(
                    &request(operation, group, kind, broken.clone(), None),
                    &catalog(),
                    mutate,
                );
                assert!(response.allowed, "{group}/{kind}");
                assert_eq!(response.patch, None, "{group}/{kind}");
            }
        }
        let mut delete = request(
            "DELETE",
            "storage.stowaway.dev",
            "BackupStorage",
            Value::Null,
            Some(broken.clone()),
        );
        assert!(review(&delete, &catalog(), false).allowed);
        delete.operation = Operation::Update;
        delete.object = delete.old_object.clone();
        delete.sub_resource = Some("status".into());
        assert!(review(&delete, &catalog(), false).allowed);
    }
}
