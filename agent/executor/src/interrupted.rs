//! Ending work its executor can no longer finish: a sidecar that restarted, or whose pod went,
//! while it ran a session. What was unfinished is marked Failed with the reason, so that the
//! operator's outcome and retry rules follow; nothing is recorded as backed up, because a
//! snapshot is committed to the repository only once all its data is there.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use stowaway_api::common::{RunPhase, TypedObjectReference};
use stowaway_api::restore_session::RestorePhase;
use stowaway_api::{BackupSession, RestoreSession, Snapshot};

use crate::cluster::{get, get_opt};
use crate::error::Result;
use crate::report::{
    component_restore, snapshot_failed, write_restore_components, write_snapshot_status,
};
use crate::target::VOLUME;

/// Reason recorded on work an executor left unfinished.
pub const INTERRUPTED: &str = "ExecutorInterrupted";

fn is_target(app: Option<&TypedObjectReference>, target: &TypedObjectReference) -> bool {
    app.is_some_and(|a| a.kind.eq_ignore_ascii_case(&target.kind) && a.name == target.name)
}

/// Marks the unfinished Snapshots of `target` in the BackupSession `namespace/name` Failed
/// with `message`; returns their names.
pub async fn fail_backup(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    target: &TypedObjectReference,
    message: &str,
) -> Result<Vec<String>> {
    let session: BackupSession = get(client, "BackupSession", namespace, name, "").await?;
    let api: Api<Snapshot> = Api::namespaced(client.clone(), namespace);
    let now = jiff::Timestamp::now();
    let mut failed = Vec::new();
    let entries = session
        .status
        .as_ref()
        .map(|s| s.snapshots.as_slice())
        .unwrap_or_default();
    for entry in entries {
        if !is_target(entry.app_ref.as_ref(), target) {
            continue;
        }
        let Some(object) = get_opt::<Snapshot>(client, "Snapshot", namespace, &entry.name).await?
        else {
            continue;
        };
        let status = object.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase),
            Some(RunPhase::Succeeded | RunPhase::Failed)
        ) {
            continue;
        }
        let component = status
            .and_then(|s| s.components.keys().next().cloned())
            .unwrap_or_else(|| VOLUME.to_owned());
        let failed_status = snapshot_failed(
            &component,
            &session.spec.session,
            INTERRUPTED,
            message,
            Duration::ZERO,
            now,
        );
        write_snapshot_status(&api, &object.name_any(), &failed_status).await?;
        tracing::warn!(snapshot = %entry.name, %message, "marked an interrupted backup Failed");
        failed.push(entry.name.clone());
    }
    Ok(failed)
}

/// Marks the unfinished components of the RestoreSession `namespace/name` Failed with
/// `message`; returns their names.
pub async fn fail_restore(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    message: &str,
) -> Result<Vec<String>> {
    let session: RestoreSession = get(client, "RestoreSession", namespace, name, "").await?;
    let unfinished: BTreeMap<_, _> = session
        .status
        .as_ref()
        .map(|s| &s.components)
        .into_iter()
        .flatten()
        .filter(|(_, c)| {
            !matches!(
                c.phase,
                Some(RestorePhase::Succeeded | RestorePhase::Failed)
            )
        })
        .map(|(component, _)| {
            (
                component.clone(),
                component_restore(RestorePhase::Failed, None, Some(message.to_owned())),
            )
        })
        .collect();
    let api: Api<RestoreSession> = Api::namespaced(client.clone(), namespace);
    write_restore_components(&api, name, &unfinished).await?;
    if !unfinished.is_empty() {
        tracing::warn!(restore = %name, %message, "marked an interrupted restore Failed");
    }
    Ok(unfinished.into_keys().collect())
}
