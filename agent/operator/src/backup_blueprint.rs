//! Auto-backup: a workload or PVC annotated with a BackupBlueprint gets a BackupConfiguration
//! made from the blueprint's template, with `${variables}` substituted; it is removed when the
//! annotation goes.
//!
//! Annotations on the target (KubeStash's, with the `stowaway.dev` suffix):
//! `blueprint.stowaway.dev/name` and `blueprint.stowaway.dev/namespace` (required),
//! `blueprint.stowaway.dev/session-names` (comma list, default all sessions), and
//! `variables.stowaway.dev/<var>: <value>` for each `${var}` of the template. The variables
//! `${targetName}`, `${targetNamespace}` and `${targetKind}` are always defined (an annotation
//! of the same name wins).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde_json::Value;
use stowaway_api::backup_blueprint::BlueprintDeletionPolicy;
use stowaway_api::backup_configuration::BackupConfigurationSpec;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::{BackupBlueprint, BackupConfiguration};

use crate::backup_configuration::managed_labels;
use crate::names;

/// Annotation naming the blueprint.
pub const NAME_ANNOTATION: &str = "blueprint.stowaway.dev/name";
/// Annotation naming the blueprint's namespace.
pub const NAMESPACE_ANNOTATION: &str = "blueprint.stowaway.dev/namespace";
/// Annotation selecting some of the template's sessions.
pub const SESSIONS_ANNOTATION: &str = "blueprint.stowaway.dev/session-names";
/// Prefix of the variable annotations.
pub const VARIABLE_PREFIX: &str = "variables.stowaway.dev/";
/// Label on a generated BackupConfiguration: the blueprint's name.
pub const BLUEPRINT_LABEL: &str = "stowaway.dev/blueprint-name";
/// Label on a generated BackupConfiguration: the target it was made for, `<kind>.<name>`.
pub const TARGET_LABEL: &str = "stowaway.dev/blueprint-target";
/// Annotation on a generated BackupConfiguration: the blueprint's deletion policy.
pub const DELETION_POLICY_ANNOTATION: &str = "stowaway.dev/blueprint-deletion-policy";

/// The blueprint a target's annotations ask for, as (namespace, name).
pub fn requested(annotations: &BTreeMap<String, String>) -> Option<(String, String)> {
    let name = annotations.get(NAME_ANNOTATION)?.trim();
    let namespace = annotations.get(NAMESPACE_ANNOTATION)?.trim();
    (!name.is_empty() && !namespace.is_empty()).then(|| (namespace.to_owned(), name.to_owned()))
}

/// Name of the BackupConfiguration generated for a target: `<kind>-<name>`, or
/// `<namespace>-<kind>-<name>` when it lives in another namespace than the target.
pub fn configuration_name(target: &TypedObjectReference, config_namespace: &str) -> String {
    let kind = target.kind.to_ascii_lowercase();
    let target_ns = target.namespace.as_deref().unwrap_or(config_namespace);
    if target_ns == config_namespace {
        names::object_name(&[&kind, &target.name])
    } else {
        names::object_name(&[target_ns, &kind, &target.name])
    }
}

/// Errors rendering a blueprint for a target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// The blueprint has no template.
    #[error("BackupBlueprint {0} has no spec.backupConfigurationTemplate")]
    NoTemplate(String),
    /// A `${var}` has no value.
    #[error(
        "BackupBlueprint {blueprint} uses ${{{variable}}}: annotate the target with {VARIABLE_PREFIX}{variable}"
    )]
    MissingVariable {
        /// The blueprint.
        blueprint: String,
        /// The variable.
        variable: String,
    },
    /// `session-names` names a session the template does not have.
    #[error("{SESSIONS_ANNOTATION} names session {0:?}, which BackupBlueprint {1} does not have")]
    UnknownSession(String, String),
    /// The substituted template is not a valid configuration.
    #[error(
        "the BackupConfiguration made from BackupBlueprint {blueprint} is not valid: {message}"
    )]
    Invalid {
        /// The blueprint.
        blueprint: String,
        /// What is wrong.
        message: String,
    },
}

/// The BackupConfiguration the blueprint makes for `target`, whose annotations are
/// `annotations`.
pub fn render(
    blueprint: &BackupBlueprint,
    target: &TypedObjectReference,
    annotations: &BTreeMap<String, String>,
) -> Result<BackupConfiguration, RenderError> {
    let blueprint_name = format!(
        "{}/{}",
        blueprint.namespace().unwrap_or_default(),
        blueprint.name_any()
    );
    let template = blueprint
        .spec
        .backup_configuration_template
        .as_ref()
        .ok_or_else(|| RenderError::NoTemplate(blueprint_name.clone()))?;
    let target_ns = target.namespace.clone().unwrap_or_default();
    let namespace = template
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| target_ns.clone());

    let mut variables = BTreeMap::from([
        ("targetName".to_owned(), target.name.clone()),
        ("targetNamespace".to_owned(), target_ns.clone()),
        ("targetKind".to_owned(), target.kind.clone()),
    ]);
    for (key, value) in annotations {
        if let Some(var) = key.strip_prefix(VARIABLE_PREFIX) {
            variables.insert(var.to_owned(), value.clone());
        }
    }

    let mut sessions = template.sessions.clone();
    if let Some(wanted) = annotations.get(SESSIONS_ANNOTATION) {
        let wanted: Vec<&str> = wanted
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(unknown) = wanted
            .iter()
            .find(|w| !sessions.iter().any(|s| s.name == **w))
        {
            return Err(RenderError::UnknownSession(
                (*unknown).to_owned(),
                blueprint_name,
            ));
        }
        sessions.retain(|s| wanted.contains(&s.name.as_str()));
    }
    let spec = BackupConfigurationSpec {
        target: Some(target.clone()),
        backends: template.backends.clone(),
        sessions,
        paused: None,
    };
    let mut value = serde_json::to_value(&spec).map_err(|e| RenderError::Invalid {
        blueprint: blueprint_name.clone(),
        message: e.to_string(),
    })?;
    substitute(&mut value, &variables).map_err(|variable| RenderError::MissingVariable {
        blueprint: blueprint_name.clone(),
        variable,
    })?;
    let spec: BackupConfigurationSpec =
        serde_json::from_value(value).map_err(|e| RenderError::Invalid {
            blueprint: blueprint_name.clone(),
            message: e.to_string(),
        })?;

    let mut labels = managed_labels();
    labels.insert(BLUEPRINT_LABEL.into(), blueprint.name_any());
    labels.insert(
        TARGET_LABEL.into(),
        names::sidecar_target(&target.kind, &target.name),
    );
    let mut config_annotations = BTreeMap::new();
    config_annotations.insert(
        "stowaway.dev/blueprint-namespace".to_owned(),
        blueprint.namespace().unwrap_or_default(),
    );
    config_annotations.insert("stowaway.dev/target-namespace".to_owned(), target_ns);
    if template.deletion_policy == Some(BlueprintDeletionPolicy::OnDelete) {
        config_annotations.insert(DELETION_POLICY_ANNOTATION.to_owned(), "OnDelete".to_owned());
    }
    Ok(BackupConfiguration {
        metadata: ObjectMeta {
            name: Some(configuration_name(target, &namespace)),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(config_annotations),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// Replaces every `${var}` in the strings of `value`; the first unknown variable is the error.
fn substitute(value: &mut Value, variables: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(s) => {
            if s.contains("${") {
                *s = crate::variables::substitute(s, variables, crate::variables::Unknown::Error)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| substitute(v, variables)),
        Value::Object(map) => map.values_mut().try_for_each(|v| substitute(v, variables)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blueprint() -> BackupBlueprint {
        serde_yaml::from_str(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBlueprint
metadata: {name: standard, namespace: ops}
spec:
  usagePolicy: {allowedNamespaces: {from: All}}
  backupConfigurationTemplate:
    deletionPolicy: OnDelete
    backends:
      - {name: s3, storageRef: {name: store, namespace: ops}, retentionPolicy: {name: keep, namespace: ops}}
    sessions:
      - name: daily
        scheduler: {schedule: "${schedule}"}
        addon: {name: workload-addon, tasks: [{name: logical-backup}]}
        repositories:
          - {name: "${targetNamespace}-${targetName}", backend: s3, directory: "/${targetNamespace}/${targetName}", encryptionSecret: {name: "${secret:=encryption}", namespace: ops}}
      - name: weekly
        scheduler: {schedule: "0 3 * * 0"}
        addon: {name: workload-addon, tasks: [{name: logical-backup}]}
        repositories: [{name: "${targetName}-weekly", backend: s3, directory: "/weekly/${targetName}"}]
"#,
        )
        .expect("blueprint")
    }

    fn target() -> TypedObjectReference {
        TypedObjectReference {
            api_group: Some("apps".into()),
            kind: "StatefulSet".into(),
            namespace: Some("shop".into()),
            name: "db".into(),
        }
    }

    fn annotations(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([
            (NAME_ANNOTATION.to_owned(), "standard".to_owned()),
            (NAMESPACE_ANNOTATION.to_owned(), "ops".to_owned()),
            (
                format!("{VARIABLE_PREFIX}schedule"),
                "*/30 * * * *".to_owned(),
            ),
        ]);
        for (k, v) in extra {
            a.insert((*k).to_owned(), (*v).to_owned());
        }
        a
    }

    #[test]
    fn renders_a_configuration_with_variables_substituted() {
        let config = render(&blueprint(), &target(), &annotations(&[])).expect("render");
        assert_eq!(config.name_any(), "statefulset-db");
        assert_eq!(config.namespace().as_deref(), Some("shop"));
        assert_eq!(config.spec.target, Some(target()));
        let daily = &config.spec.sessions[0];
        assert_eq!(
            daily.scheduler.as_ref().map(|s| s.schedule.as_str()),
            Some("*/30 * * * *")
        );
        let repo = &daily.repositories[0];
        assert_eq!(repo.name, "shop-db");
        assert_eq!(repo.directory, "/shop/db");
        assert_eq!(
            repo.encryption_secret.as_ref().map(|s| s.name.as_str()),
            Some("encryption"),
            "default of ${{secret:=encryption}}"
        );
        assert_eq!(config.spec.sessions.len(), 2);
        assert_eq!(
            config.labels().get(BLUEPRINT_LABEL).map(String::as_str),
            Some("standard")
        );
        assert_eq!(
            config.labels().get(TARGET_LABEL).map(String::as_str),
            Some("statefulset.db")
        );
        assert_eq!(
            config
                .annotations()
                .get(DELETION_POLICY_ANNOTATION)
                .map(String::as_str),
            Some("OnDelete")
        );
        assert!(
            crate::backup_configuration::validate(&config).is_empty(),
            "{:?}",
            crate::backup_configuration::validate(&config)
        );
    }

    #[test]
    fn session_names_select_sessions_and_unknown_ones_are_errors() {
        let config = render(
            &blueprint(),
            &target(),
            &annotations(&[(SESSIONS_ANNOTATION, "weekly")]),
        )
        .expect("render");
        assert_eq!(config.spec.sessions.len(), 1);
        assert_eq!(config.spec.sessions[0].name, "weekly");
        let err = render(
            &blueprint(),
            &target(),
            &annotations(&[(SESSIONS_ANNOTATION, "weekly, hourly")]),
        )
        .expect_err("unknown session");
        assert_eq!(
            err.to_string(),
            "blueprint.stowaway.dev/session-names names session \"hourly\", which BackupBlueprint ops/standard does not have"
        );
    }

    #[test]
    fn a_missing_variable_names_the_annotation_to_add() {
        let mut a = annotations(&[]);
        a.remove(&format!("{VARIABLE_PREFIX}schedule"));
        let err = render(&blueprint(), &target(), &a).expect_err("missing variable");
        assert_eq!(
            err.to_string(),
            "BackupBlueprint ops/standard uses ${schedule}: annotate the target with variables.stowaway.dev/schedule"
        );
    }

    #[test]
    fn configurations_in_another_namespace_carry_the_target_namespace_in_their_name() {
        let mut b = blueprint();
        if let Some(t) = b.spec.backup_configuration_template.as_mut() {
            t.namespace = Some("backups".into());
        }
        let config = render(&b, &target(), &annotations(&[])).expect("render");
        assert_eq!(config.name_any(), "shop-statefulset-db");
        assert_eq!(config.namespace().as_deref(), Some("backups"));
    }

    #[test]
    fn requested_needs_both_annotations() {
        assert_eq!(
            requested(&annotations(&[])),
            Some(("ops".to_owned(), "standard".to_owned()))
        );
        let mut a = annotations(&[]);
        a.remove(NAMESPACE_ANNOTATION);
        assert_eq!(requested(&a), None);
    }
}
