//! Reconciling a workload or PVC for auto-backup: create, update or remove the
//! BackupConfiguration its blueprint annotations ask for.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::{BackupBlueprint, BackupConfiguration};

use super::{Context, Error, apply};
use crate::admission::{Catalog, usage_allowed};
use crate::backup_blueprint::{
    BLUEPRINT_LABEL, DELETION_POLICY_ANNOTATION, TARGET_LABEL, render, requested,
};
use crate::events::Note;
use crate::names;

/// Reconciles one workload (Deployment, StatefulSet, DaemonSet) or PersistentVolumeClaim.
pub async fn reconcile<K>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let namespace = object.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "workload",
        name: object.name_any(),
    })?;
    let target = TypedObjectReference {
        api_group: Some(K::group(&()).into_owned()),
        kind: K::kind(&()).into_owned(),
        namespace: Some(namespace.clone()),
        name: object.name_any(),
    };
    let client = &ctx.client;
    let generated = generated_for(client, &target).await?;
    let mut notes = Vec::new();

    match requested(object.annotations()) {
        None => {
            // The annotation went (or never was): remove what a blueprint made for it.
            for config in &generated {
                let api: Api<BackupConfiguration> =
                    Api::namespaced(client.clone(), &config.namespace().unwrap_or_default());
                apply::delete(&api, &config.name_any()).await?;
                tracing::info!(config = %config.name_any(), target = %target.name, "removed the BackupConfiguration of a target no longer annotated");
            }
        }
        Some((bp_namespace, bp_name)) => {
            let blueprints: Api<BackupBlueprint> = Api::namespaced(client.clone(), &bp_namespace);
            match blueprints.get_opt(&bp_name).await? {
                None => {
                    // A blueprint deleted with `deletionPolicy: OnDelete` takes its
                    // configurations along; otherwise they stay.
                    for config in &generated {
                        if config
                            .annotations()
                            .get(DELETION_POLICY_ANNOTATION)
                            .map(String::as_str)
                            == Some("OnDelete")
                        {
                            let api: Api<BackupConfiguration> = Api::namespaced(
                                client.clone(),
                                &config.namespace().unwrap_or_default(),
                            );
                            apply::delete(&api, &config.name_any()).await?;
                        }
                    }
                    notes.push(Note::warning(
                        "BlueprintNotFound",
                        format!("BackupBlueprint {bp_namespace}/{bp_name} not found"),
                    ));
                }
                Some(blueprint) => {
                    let ns_api: Api<Namespace> = Api::all(client.clone());
                    let labels = ns_api
                        .get_opt(&namespace)
                        .await?
                        .and_then(|n| n.metadata.labels)
                        .unwrap_or_default();
                    let catalog = Catalog {
                        namespace_labels: BTreeMap::from([(namespace.clone(), labels)]),
                        ..Catalog::default()
                    };
                    if !usage_allowed(
                        blueprint.spec.usage_policy.as_ref(),
                        &bp_namespace,
                        &namespace,
                        &catalog,
                    ) {
                        notes.push(Note::warning(
                            "BlueprintNotAllowed",
                            format!(
                                "namespace {namespace} is not allowed to refer BackupBlueprint {bp_namespace}/{bp_name}: check its usagePolicy"
                            ),
                        ));
                    } else {
                        match render(&blueprint, &target, object.annotations()) {
                            Err(e) => {
                                notes.push(Note::warning("BlueprintRenderFailed", e.to_string()))
                            }
                            Ok(config) => ensure(client, config, &generated, &mut notes).await?,
                        }
                    }
                }
            }
        }
    }
    apply::events(&ctx, object.as_ref(), &notes).await;
    Ok(Action::requeue(std::time::Duration::from_secs(300)))
}

/// Creates the configuration, or brings a generated one up to date. A configuration of that
/// name that a person made is left alone.
async fn ensure(
    client: &kube::Client,
    config: BackupConfiguration,
    generated: &[BackupConfiguration],
    notes: &mut Vec<Note>,
) -> Result<(), Error> {
    let ns = config.namespace().unwrap_or_default();
    let api: Api<BackupConfiguration> = Api::namespaced(client.clone(), &ns);
    match api.get_opt(&config.name_any()).await? {
        None => {
            apply::create(&api, &config).await?;
            notes.push(Note::normal(
                "BackupConfigurationCreated",
                format!(
                    "created BackupConfiguration {ns}/{} from its blueprint",
                    config.name_any()
                ),
            ));
        }
        Some(existing) if !generated.iter().any(|g| g.uid() == existing.uid()) => {
            notes.push(Note::warning(
                "BackupConfigurationExists",
                format!(
                    "BackupConfiguration {ns}/{} exists and was not made from a blueprint; left unchanged",
                    existing.name_any()
                ),
            ));
        }
        Some(mut existing) => {
            if existing.spec != config.spec || existing.labels() != config.labels() {
                existing.spec = config.spec;
                existing.metadata.labels = config.metadata.labels;
                existing.metadata.annotations = config.metadata.annotations;
                api.replace(&existing.name_any(), &PostParams::default(), &existing)
                    .await?;
            }
        }
    }
    Ok(())
}

/// BackupConfigurations a blueprint made for `target`, in any namespace.
async fn generated_for(
    client: &kube::Client,
    target: &TypedObjectReference,
) -> Result<Vec<BackupConfiguration>, Error> {
    let api: Api<BackupConfiguration> = Api::all(client.clone());
    let selector = format!(
        "{BLUEPRINT_LABEL},{TARGET_LABEL}={}",
        names::sidecar_target(&target.kind, &target.name)
    );
    let target_ns = target.namespace.clone().unwrap_or_default();
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|c| {
            c.annotations()
                .get("stowaway.dev/target-namespace")
                .is_some_and(|ns| *ns == target_ns)
        })
        .collect())
}
