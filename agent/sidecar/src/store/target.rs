//! The [`SessionStore`] of an injected sidecar: it serves the BackupConfiguration that targets
//! the sidecar's workload, found anew on every request (a configuration may be created,
//! renamed or removed while the pod runs), through a [`KubeStore`].

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use stowaway_api::BackupConfiguration;
use stowaway_api::common::TypedObjectReference;
use stowaway_operator::injection::INJECT_ANNOTATION;

use super::kube::cluster;
use super::{KubeStore, SessionStore, StoreError};
use crate::wire::{BackupInfo, BackupRequest, RestoreInfo, RestoreRequest, SnapshotInfo};

/// Environment variable naming the configuration the on-demand API serves, when several
/// target the workload.
pub const CONFIGURATION_ENV: &str = "STOWAWAY_CONFIGURATION";

/// The sessions of whichever BackupConfiguration of `namespace` targets `target`.
#[derive(Clone)]
pub struct TargetStore {
    client: Client,
    namespace: String,
    target: TypedObjectReference,
    preferred: Option<String>,
}

impl std::fmt::Debug for TargetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetStore")
            .field("namespace", &self.namespace)
            .field("target", &self.target)
            .field("preferred", &self.preferred)
            .finish_non_exhaustive()
    }
}

impl TargetStore {
    /// A store for the configuration of `target` in `namespace`; `preferred` names it when
    /// several target the workload.
    pub fn new(
        client: Client,
        namespace: &str,
        target: TypedObjectReference,
        preferred: Option<String>,
    ) -> TargetStore {
        TargetStore {
            client,
            namespace: namespace.to_owned(),
            target,
            preferred,
        }
    }

    async fn store(&self) -> Result<KubeStore, StoreError> {
        let api: Api<BackupConfiguration> = Api::namespaced(self.client.clone(), &self.namespace);
        let configs = api
            .list(&ListParams::default())
            .await
            .map_err(cluster)?
            .items;
        let name = configuration_for(
            &configs,
            &self.namespace,
            &self.target,
            self.preferred.as_deref(),
        )?;
        Ok(KubeStore::new(self.client.clone(), &self.namespace, &name))
    }
}

/// The configuration a sidecar serves among `configs` (of `namespace`): `preferred` when
/// given; else the only one whose target is `target`; of several, the only one in sidecar mode.
pub fn configuration_for(
    configs: &[BackupConfiguration],
    namespace: &str,
    target: &TypedObjectReference,
    preferred: Option<&str>,
) -> Result<String, StoreError> {
    if let Some(name) = preferred {
        return Ok(name.to_owned());
    }
    let mine: Vec<&BackupConfiguration> = configs
        .iter()
        .filter(|c| {
            c.spec
                .target
                .as_ref()
                .is_some_and(|t| t.kind.eq_ignore_ascii_case(&target.kind) && t.name == target.name)
        })
        .collect();
    let sidecar_mode = |c: &&&BackupConfiguration| {
        c.annotations().get(INJECT_ANNOTATION).map(String::as_str) == Some("true")
    };
    match mine.as_slice() {
        [] => Err(StoreError::NoConfiguration(format!(
            "no BackupConfiguration in namespace {namespace} targets {} {}: the sidecar has \
             nothing to back up",
            target.kind, target.name
        ))),
        [only] => Ok(only.name_any()),
        several => match several
            .iter()
            .filter(sidecar_mode)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [only] => Ok(only.name_any()),
            _ => {
                let mut names: Vec<String> = several.iter().map(|c| c.name_any()).collect();
                names.sort();
                Err(StoreError::NoConfiguration(format!(
                    "BackupConfigurations {} all target {} {}: set {CONFIGURATION_ENV} in the \
                     sidecar to the one its on-demand API serves",
                    names.join(", "),
                    target.kind,
                    target.name
                )))
            }
        },
    }
}

#[async_trait::async_trait]
impl SessionStore for TargetStore {
    async fn create_backup(&self, request: &BackupRequest) -> Result<String, StoreError> {
        self.store().await?.create_backup(request).await
    }

    async fn backup(&self, name: &str) -> Result<BackupInfo, StoreError> {
        self.store().await?.backup(name).await
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.store().await?.snapshots().await
    }

    async fn create_restore(&self, request: &RestoreRequest) -> Result<String, StoreError> {
        self.store().await?.create_restore(request).await
    }

    async fn restore(&self, name: &str) -> Result<RestoreInfo, StoreError> {
        self.store().await?.restore(name).await
    }
}

#[cfg(test)]
mod tests {
    use stowaway_api::backup_configuration::BackupConfigurationSpec;

    use super::*;

    fn config(name: &str, target: &str, sidecar: bool) -> BackupConfiguration {
        let mut c = BackupConfiguration::new(
            name,
            BackupConfigurationSpec {
                target: Some(TypedObjectReference {
                    api_group: Some("apps".into()),
                    kind: "Deployment".into(),
                    namespace: None,
                    name: target.into(),
                }),
                ..BackupConfigurationSpec::default()
            },
        );
        if sidecar {
            c.annotations_mut()
                .insert(INJECT_ANNOTATION.into(), "true".into());
        }
        c
    }

    fn web() -> TypedObjectReference {
        TypedObjectReference {
            api_group: Some("apps".into()),
            kind: "Deployment".into(),
            namespace: Some("demo".into()),
            name: "web".into(),
        }
    }

    #[test]
    fn picks_the_configuration_of_the_target() {
        let configs = [
            config("other", "db", false),
            config("web-daily", "web", false),
        ];
        let found = configuration_for(&configs, "demo", &web(), None).expect("one");
        assert_eq!(found, "web-daily");
        let preferred = configuration_for(&configs, "demo", &web(), Some("x")).expect("named");
        assert_eq!(preferred, "x");
    }

    #[test]
    fn of_several_takes_the_sidecar_one_or_asks() {
        let configs = [config("a", "web", false), config("b", "web", true)];
        assert_eq!(
            configuration_for(&configs, "demo", &web(), None).expect("sidecar mode"),
            "b"
        );
        let configs = [config("a", "web", true), config("b", "web", true)];
        let err = configuration_for(&configs, "demo", &web(), None).expect_err("ambiguous");
        assert_eq!(
            err.to_string(),
            "BackupConfigurations a, b all target Deployment web: set STOWAWAY_CONFIGURATION in \
             the sidecar to the one its on-demand API serves"
        );
    }

    #[test]
    fn none_is_a_clear_error() {
        let err =
            configuration_for(&[config("x", "db", true)], "demo", &web(), None).expect_err("none");
        assert!(matches!(err, StoreError::NoConfiguration(_)));
        assert_eq!(
            err.to_string(),
            "no BackupConfiguration in namespace demo targets Deployment web: the sidecar has \
             nothing to back up"
        );
    }
}
