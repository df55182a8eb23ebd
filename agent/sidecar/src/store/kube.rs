//! The [`SessionStore`] of a sidecar in a cluster: BackupSessions, Snapshots and
//! RestoreSessions of one BackupConfiguration, through the Kubernetes API.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::restore_session::{RestoreDataSource, RestorePhase, RestoreSessionSpec};
use stowaway_api::{BackupConfiguration, BackupSession, RestoreSession, Snapshot};
use stowaway_operator::addon_registry::restore_addon;
use stowaway_operator::backup_configuration::new_session;
use stowaway_operator::backup_session::{BACKUP_INCOMPLETE, BACKUP_SKIPPED};
use stowaway_operator::invoker::Invoker;
use stowaway_operator::names as operator_names;

use super::{SessionStore, StoreError, latest, missing_components, unknown_session};
use crate::names;
use crate::wire::{
    BackupInfo, BackupRequest, RestoreInfo, RestoreRequest, SessionSnapshot, SnapshotInfo,
    newest_first,
};

/// Attempts at a unique name before a clash is reported.
const NAME_ATTEMPTS: usize = 3;

/// The sessions of the BackupConfiguration `configuration` in `namespace`.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
    namespace: String,
    configuration: String,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .field("configuration", &self.configuration)
            .finish_non_exhaustive()
    }
}

impl KubeStore {
    /// A store for the BackupConfiguration `configuration` in `namespace`.
    pub fn new(client: Client, namespace: &str, configuration: &str) -> KubeStore {
        KubeStore {
            client,
            namespace: namespace.to_owned(),
            configuration: configuration.to_owned(),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn configuration(&self) -> Result<BackupConfiguration, StoreError> {
        self.api::<BackupConfiguration>()
            .get_opt(&self.configuration)
            .await
            .map_err(cluster)?
            .ok_or_else(|| StoreError::ConfigurationNotFound {
                namespace: self.namespace.clone(),
                name: self.configuration.clone(),
            })
    }

    /// Whether `session` was invoked by this configuration (label and spec agree).
    fn owns(&self, session: &BackupSession) -> bool {
        session.labels().get(operator_names::INVOKER_NAME_LABEL) == Some(&self.configuration)
            && session.spec.invoker.kind == "BackupConfiguration"
            && session.spec.invoker.name == self.configuration
    }

    /// Whether `snapshot` is of `target` (of the configuration in this namespace).
    fn of_target(&self, snapshot: &Snapshot, target: &TypedObjectReference) -> bool {
        let Some(app) = &snapshot.spec.app_ref else {
            return false;
        };
        let namespace = |r: &TypedObjectReference, default: &str| {
            r.namespace.clone().unwrap_or_else(|| default.to_owned())
        };
        app.kind.eq_ignore_ascii_case(&target.kind)
            && app.name == target.name
            && namespace(app, &snapshot.namespace().unwrap_or_default())
                == namespace(target, &self.namespace)
    }

    async fn target_snapshots(
        &self,
        target: &TypedObjectReference,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let list = self
            .api::<Snapshot>()
            .list(&ListParams::default())
            .await
            .map_err(cluster)?;
        Ok(list
            .items
            .into_iter()
            .filter(|s| self.of_target(s, target))
            .collect())
    }

    /// Creates `object` under names from `name` until one is free.
    async fn create_unique<K>(
        &self,
        mut object: K,
        name: impl Fn() -> String,
    ) -> Result<String, StoreError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api = self.api::<K>();
        let mut attempt = 0;
        loop {
            attempt += 1;
            object.meta_mut().name = Some(name());
            match api.create(&PostParams::default(), &object).await {
                Ok(created) => return Ok(created.name_any()),
                Err(kube::Error::Api(s)) if s.is_already_exists() && attempt < NAME_ATTEMPTS => {
                    tracing::debug!(name = ?object.meta().name, "name taken, drawing another");
                }
                Err(e) => return Err(cluster(e)),
            }
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for KubeStore {
    async fn create_backup(&self, request: &BackupRequest) -> Result<String, StoreError> {
        let config = self.configuration().await?;
        let invoker = Invoker::Configuration(&config);
        let sessions = invoker.sessions();
        let known: Vec<&str> = sessions.iter().map(|s| s.name).collect();
        let view = match &request.session {
            Some(wanted) => sessions.iter().find(|s| s.name == wanted.as_str()),
            None => sessions.first(),
        }
        .ok_or_else(|| unknown_session(&self.configuration, request.session.as_deref(), &known))?;
        let now = Timestamp::now();
        let mut session = new_session(invoker, view, now, names::ON_DEMAND);
        let annotations = session
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        if let Some(tag) = &request.tag {
            annotations.insert(names::TAG_ANNOTATION.to_owned(), tag.clone());
        }
        if !request.components.is_empty() {
            annotations.insert(
                names::COMPONENTS_ANNOTATION.to_owned(),
                request.components.join(","),
            );
        }
        let name = self
            .create_unique(session, || {
                names::backup_name(
                    &self.configuration,
                    view.name,
                    now.as_second(),
                    &names::random_suffix(),
                )
            })
            .await?;
        tracing::info!(%name, session = view.name, "on-demand backup requested");
        Ok(name)
    }

    async fn backup(&self, name: &str) -> Result<BackupInfo, StoreError> {
        let not_found = || StoreError::NotFound {
            kind: "BackupSession",
            name: name.to_owned(),
        };
        if !names::is_object_name(name) {
            return Err(not_found());
        }
        let session = self
            .api::<BackupSession>()
            .get_opt(name)
            .await
            .map_err(cluster)?
            .filter(|s| self.owns(s))
            .ok_or_else(not_found)?;
        Ok(backup_info(&session))
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let config = self.configuration().await?;
        let Some(target) = &config.spec.target else {
            return Ok(Vec::new());
        };
        let mut snapshots: Vec<SnapshotInfo> = self
            .target_snapshots(target)
            .await?
            .iter()
            .map(snapshot_info)
            .collect();
        newest_first(&mut snapshots);
        Ok(snapshots)
    }

    async fn create_restore(&self, request: &RestoreRequest) -> Result<String, StoreError> {
        let config = self.configuration().await?;
        let target = config.spec.target.clone().ok_or_else(|| {
            StoreError::Invalid(format!(
                "BackupConfiguration {} has no target to restore into",
                self.configuration
            ))
        })?;
        let not_found = || StoreError::NotFound {
            kind: "Snapshot",
            name: request.snapshot.clone(),
        };
        let snapshot = if request.snapshot == "latest" {
            let all = self.target_snapshots(&target).await?;
            let infos: Vec<SnapshotInfo> = all.iter().map(snapshot_info).collect();
            let newest = latest(&infos).ok_or_else(not_found)?;
            all.into_iter()
                .find(|s| s.name_any() == newest.name)
                .ok_or_else(not_found)?
        } else {
            self.api::<Snapshot>()
                .get_opt(&request.snapshot)
                .await
                .map_err(cluster)?
                .filter(|s| self.of_target(s, &target))
                .ok_or_else(not_found)?
        };
        if let Some(e) = missing_components(&snapshot_info(&snapshot), &request.components) {
            return Err(e);
        }
        // The session that writes to the snapshot's repository tells the addon and the
        // encryption secret.
        let repository = &snapshot.spec.repository;
        let found = config.spec.sessions.iter().find_map(|s| {
            s.repositories
                .iter()
                .find(|r| &r.name == repository)
                .map(|r| (s, r))
        });
        let mut target = target;
        target
            .namespace
            .get_or_insert_with(|| self.namespace.clone());
        let restore = RestoreSession {
            metadata: ObjectMeta {
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    operator_names::MANAGED_BY_LABEL.to_owned(),
                    operator_names::MANAGED_BY.to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    names::TRIGGER_ANNOTATION.to_owned(),
                    names::ON_DEMAND.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: RestoreSessionSpec {
                target: Some(target),
                data_source: RestoreDataSource {
                    repository: Some(repository.clone()),
                    snapshot: Some(snapshot.name_any()),
                    components: request.components.clone(),
                    encryption_secret: found.and_then(|(_, r)| r.encryption_secret.clone()),
                    ..RestoreDataSource::default()
                },
                addon: found.and_then(|(s, _)| s.addon.as_ref()).map(restore_addon),
                ..RestoreSessionSpec::default()
            },
            status: None,
        };
        let now = Timestamp::now();
        let name = self
            .create_unique(restore, || {
                names::restore_name(
                    &self.configuration,
                    now.as_second(),
                    &names::random_suffix(),
                )
            })
            .await?;
        tracing::info!(%name, snapshot = %snapshot.name_any(), "on-demand restore requested");
        Ok(name)
    }

    async fn restore(&self, name: &str) -> Result<RestoreInfo, StoreError> {
        let not_found = || StoreError::NotFound {
            kind: "RestoreSession",
            name: name.to_owned(),
        };
        // Only the on-demand restores of this configuration (named after it).
        let prefix = format!("{}-restore-", self.configuration);
        if !names::is_object_name(name) || !name.starts_with(&prefix) {
            return Err(not_found());
        }
        let restore = self
            .api::<RestoreSession>()
            .get_opt(name)
            .await
            .map_err(cluster)?
            .filter(|r| {
                r.annotations()
                    .get(names::TRIGGER_ANNOTATION)
                    .map(String::as_str)
                    == Some(names::ON_DEMAND)
            })
            .ok_or_else(not_found)?;
        Ok(restore_info(&restore))
    }
}

/// The API's view of a RestoreSession.
fn restore_info(restore: &RestoreSession) -> RestoreInfo {
    let status = restore.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(RestorePhase::Pending);
    let failed = matches!(phase, RestorePhase::Failed | RestorePhase::Invalid);
    let errors: Vec<String> = status
        .components
        .iter()
        .filter_map(|(c, s)| s.error.as_ref().map(|e| format!("{c}: {e}")))
        .collect();
    RestoreInfo {
        name: restore.name_any(),
        snapshot: restore.spec.data_source.snapshot.clone(),
        phase,
        components: restore.spec.data_source.components.clone(),
        created: restore.metadata.creation_timestamp.as_ref().map(|t| t.0),
        duration: status.duration.clone(),
        error: failed.then(|| {
            if errors.is_empty() {
                format!(
                    "the restore {}: see kubectl describe restoresession {}",
                    if phase == RestorePhase::Invalid {
                        "is invalid"
                    } else {
                        "failed"
                    },
                    restore.name_any()
                )
            } else {
                errors.join("; ")
            }
        }),
    }
}

/// A kube error as a store error: the API answered (refused) or could not be reached.
pub(super) fn cluster(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) => StoreError::Refused(format!(
            "{} ({} {})",
            status.message, status.code, status.reason
        )),
        other => StoreError::Unreachable(other.to_string()),
    }
}

/// The API's view of a BackupSession.
fn backup_info(session: &BackupSession) -> BackupInfo {
    let annotations = session.annotations();
    let status = session.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(BackupSessionPhase::Pending);
    BackupInfo {
        name: session.name_any(),
        session: session.spec.session.clone(),
        phase,
        trigger: annotations.get(names::TRIGGER_ANNOTATION).cloned(),
        tag: annotations.get(names::TAG_ANNOTATION).cloned(),
        components: annotations
            .get(names::COMPONENTS_ANNOTATION)
            .map(|c| {
                c.split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        created: session.metadata.creation_timestamp.as_ref().map(|t| t.0),
        duration: status.duration.clone(),
        size: status.size.clone(),
        snapshots: status
            .snapshots
            .iter()
            .map(|s| SessionSnapshot {
                name: s.name.clone(),
                repository: s.repository.clone(),
                phase: s.phase,
            })
            .collect(),
        error: error_of(&session.name_any(), phase, &status),
    }
}

/// Why a session failed or was skipped, from its conditions and hooks.
fn error_of(
    name: &str,
    phase: BackupSessionPhase,
    status: &stowaway_api::backup_session::BackupSessionStatus,
) -> Option<String> {
    if !matches!(
        phase,
        BackupSessionPhase::Failed | BackupSessionPhase::Skipped
    ) {
        return None;
    }
    let message = |kind: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == kind)
            .and_then(|c| c.message.clone())
            .filter(|m| !m.is_empty())
    };
    let failed_hooks = || {
        let hooks = status.hooks.as_ref()?;
        let failed: Vec<&str> = hooks
            .pre_hooks
            .iter()
            .chain(&hooks.post_hooks)
            .filter(|h| h.phase.as_deref() == Some("Failed"))
            .map(|h| h.name.as_str())
            .collect();
        (!failed.is_empty()).then(|| format!("hook {} failed", failed.join(", ")))
    };
    Some(
        message(BACKUP_INCOMPLETE)
            .or_else(|| message(BACKUP_SKIPPED))
            .or_else(failed_hooks)
            .unwrap_or_else(|| {
                let what = if phase == BackupSessionPhase::Failed {
                    "failed"
                } else {
                    "was skipped"
                };
                format!("the session {what}: see kubectl describe backupsession {name}")
            }),
    )
}

/// The API's view of a Snapshot object.
fn snapshot_info(snapshot: &Snapshot) -> SnapshotInfo {
    let status = snapshot.status.as_ref();
    SnapshotInfo {
        name: snapshot.name_any(),
        repository: snapshot.spec.repository.clone(),
        backup_session: snapshot.spec.backup_session.clone(),
        phase: status.and_then(|s| s.phase),
        time: status
            .and_then(|s| s.snapshot_time.as_ref())
            .or(snapshot.metadata.creation_timestamp.as_ref())
            .map(|t| t.0),
        size: status.and_then(|s| s.size.clone()),
        components: status
            .map(|s| s.components.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowaway_api::common::{AddonInfo, TaskReference};

    #[test]
    fn restore_tasks_match_backup_tasks() {
        let addon = AddonInfo {
            name: "postgres-addon".into(),
            tasks: vec![
                TaskReference {
                    name: "logical-backup".into(),
                    params: Some(serde_json::json!({"args": "--clean"})),
                    ..TaskReference::default()
                },
                TaskReference {
                    name: "backup".into(),
                    ..TaskReference::default()
                },
            ],
            ..AddonInfo::default()
        };
        let restore = restore_addon(&addon);
        let names: Vec<&str> = restore.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["logical-backup-restore", "backup-restore"]);
        assert_eq!(restore.tasks[0].params, addon.tasks[0].params);
    }
}
