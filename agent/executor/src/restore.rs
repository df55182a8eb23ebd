//! Executing a RestoreSession: the components the operator listed in its status, from the
//! snapshot it resolved, into the target.
//!
//! The operator has resolved the data source (a Snapshot by name, `latest`, or a point in
//! time) and recorded it in `status.dependencies`, and listed the components to restore in
//! `status.components` (all Pending). The executor marks them Running, opens the Snapshot's
//! repository (shared lock, index), reads the repository snapshot recorded in the Snapshot's
//! `spec.snapshotID`, runs the addon's restore, and writes each component's phase, duration
//! and error; the operator derives the outcome from them.
//!
//! A PersistentVolumeClaim is restored through a staging directory inside it
//! (`staging.rs`): one tree component at the root of the volume, several each under a
//! directory named after it. A workload's tree components each go back into the volume of
//! the same name under the volumes directory (the operator's restore Job mounts the
//! workload's claims there, writable), each through a staging directory inside that volume;
//! a component that names no mounted volume fails the restore before anything is written.
//! With the volume addon's `overwrite: false` the restore writes in place instead, keeping
//! existing files. Owners are restored only when the task asks
//! (`restore-owner: true`), since the Job runs unprivileged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, ListParams};
use stowaway_api::common::TypedObjectReference;
use stowaway_api::restore_session::{ComponentRestoreStatus, RestorePhase};
use stowaway_api::{RestoreSession, Snapshot};
use stowaway_repository::{ComponentKind, ComponentRecord};
use stowaway_runtime::{JobLimits, JobSpec};

use crate::backup::remaining;
use crate::cluster::{get, namespace_or};
use crate::error::{ExecuteError, Result};
use crate::params::task_params;
use crate::progress::LogProgress;
use crate::report::{self, ComponentResult, RestoreReport, component_restore};
use crate::settings::Settings;
use crate::staging::Staging;
use crate::target::{self, TargetKind};

/// Restores the components of the RestoreSession `namespace/name` that are not finished and
/// writes their outcome into its status.
///
/// Returns `Err` only when nothing could be recorded (the session cannot be read, it is not
/// Running, an API call failed); a failed restore is a Failed component and a
/// [`ComponentResult::Failed`] in the report. A finished session is left alone.
#[tracing::instrument(skip(client, settings))]
pub async fn execute_restore(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    name: &str,
) -> Result<RestoreReport> {
    let session: RestoreSession = get(client, "RestoreSession", namespace, name, "").await?;
    let status = session.status.clone().unwrap_or_default();
    let mut report = RestoreReport {
        namespace: namespace.to_owned(),
        session: name.to_owned(),
        snapshot: None,
        components: BTreeMap::new(),
    };
    let finished = |p: Option<RestorePhase>| {
        matches!(
            p,
            Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid)
        )
    };
    match status.phase {
        Some(RestorePhase::Running) => {}
        phase if finished(phase) => {
            tracing::info!(?phase, "the restore has finished: nothing to do");
            for (component, c) in &status.components {
                report.components.insert(
                    component.clone(),
                    ComponentResult::AlreadyFinished {
                        phase: c.phase.unwrap_or(RestorePhase::Failed),
                    },
                );
            }
            return Ok(report);
        }
        phase => {
            return Err(ExecuteError::Session {
                kind: "RestoreSession",
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                message: format!(
                    "the operator has not started it yet (phase {}): the executor runs Running \
                     restores",
                    phase.map_or("none".to_owned(), |p| format!("{p:?}"))
                ),
            });
        }
    }
    let mut todo = Vec::new();
    for (component, c) in &status.components {
        match c.phase {
            Some(phase @ (RestorePhase::Succeeded | RestorePhase::Failed)) => {
                report.components.insert(
                    component.clone(),
                    ComponentResult::AlreadyFinished { phase },
                );
            }
            _ => todo.push(component.clone()),
        }
    }
    if todo.is_empty() {
        tracing::info!("every component has finished: nothing to do");
        return Ok(report);
    }
    let api: Api<RestoreSession> = Api::namespaced(client.clone(), namespace);
    let running: BTreeMap<String, ComponentRestoreStatus> = todo
        .iter()
        .map(|c| {
            (
                c.clone(),
                component_restore(RestorePhase::Running, None, None),
            )
        })
        .collect();
    report::write_restore_components(&api, name, &running).await?;
    tracing::info!(components = ?todo, "restore started");

    let started = Instant::now();
    let result = restore(client, settings, namespace, &session, &todo, &mut report).await;
    let elapsed = started.elapsed();
    let mut statuses = BTreeMap::new();
    for component in &todo {
        let (status, outcome) = match &result {
            Ok(()) => (
                component_restore(RestorePhase::Succeeded, Some(elapsed), None),
                ComponentResult::Succeeded,
            ),
            Err(e) => (
                component_restore(RestorePhase::Failed, Some(elapsed), Some(e.to_string())),
                ComponentResult::Failed {
                    error: e.to_string(),
                },
            ),
        };
        statuses.insert(component.clone(), status);
        report.components.insert(component.clone(), outcome);
    }
    report::write_restore_components(&api, name, &statuses).await?;
    match &result {
        Ok(()) => {
            tracing::info!(seconds = elapsed.as_secs_f64(), "restore succeeded");
        }
        Err(e) => tracing::error!(error = %e, "restore failed"),
    }
    Ok(report)
}

/// The Snapshot object the operator resolved: from `status.dependencies`, else resolved
/// again from the data source.
async fn snapshot_object(
    client: &kube::Client,
    namespace: &str,
    session: &RestoreSession,
) -> Result<Snapshot> {
    let source_ns = namespace_or(session.spec.data_source.namespace.as_ref(), namespace);
    let status = session.status.as_ref();
    let recorded: Option<&TypedObjectReference> = status
        .into_iter()
        .flat_map(|s| s.dependencies.iter())
        .map(|d| &d.reference)
        .find(|r| r.kind == "Snapshot");
    if let Some(reference) = recorded {
        let ns = namespace_or(reference.namespace.as_ref(), &source_ns);
        return get(
            client,
            "Snapshot",
            &ns,
            &reference.name,
            "it was deleted after the restore started",
        )
        .await;
    }
    let snapshots = Api::<Snapshot>::namespaced(client.clone(), &source_ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| ExecuteError::kube(format!("listing Snapshots in {source_ns}"), e))?
        .items;
    stowaway_operator::restore_session::resolve_snapshot(session, &snapshots)
        .cloned()
        .map_err(|message| ExecuteError::Session {
            kind: "RestoreSession",
            namespace: namespace.to_owned(),
            name: session.metadata.name.clone().unwrap_or_default(),
            message,
        })
}

async fn restore(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    session: &RestoreSession,
    todo: &[String],
    report: &mut RestoreReport,
) -> Result<()> {
    let name = session.metadata.name.clone().unwrap_or_default();
    let deadline = session
        .status
        .as_ref()
        .and_then(|s| s.restore_deadline.as_ref())
        .map(|t| t.0);
    remaining(deadline)?;
    let object = snapshot_object(client, namespace, session).await?;
    let object_name = object.metadata.name.clone().unwrap_or_default();
    let object_ns = object
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_owned());
    report.snapshot = Some(object_name.clone());
    let id = object
        .spec
        .snapshot_id
        .clone()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ExecuteError::Session {
            kind: "RestoreSession",
            namespace: namespace.to_owned(),
            name: name.clone(),
            message: format!(
                "Snapshot {object_ns}/{object_name} records no snapshot id (spec.snapshotID)"
            ),
        })?;
    let password = session
        .spec
        .data_source
        .encryption_secret
        .as_ref()
        .map(|r| (r, namespace));
    let opened =
        crate::repository::open(client, &object_ns, &object.spec.repository, password).await?;
    let lock = opened
        .repo
        .lock(false, "restore")
        .await
        .map_err(|e| opened.error(e))?;
    let result = restore_locked(settings, client, namespace, session, todo, &opened, &id).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the lock");
    }
    result
}

async fn restore_locked(
    settings: &Settings,
    client: &kube::Client,
    namespace: &str,
    session: &RestoreSession,
    todo: &[String],
    opened: &crate::repository::OpenedRepository,
    id: &str,
) -> Result<()> {
    let name = session.metadata.name.clone().unwrap_or_default();
    let repo = &opened.repo;
    repo.load_index().await.map_err(|e| opened.error(e))?;
    let snapshot = repo.find_snapshot(id).await.map_err(|e| opened.error(e))?;
    let mut components: Vec<ComponentRecord> = Vec::new();
    for wanted in todo {
        let component = snapshot
            .component(wanted)
            .ok_or_else(|| ExecuteError::Session {
                kind: "RestoreSession",
                namespace: namespace.to_owned(),
                name: name.clone(),
                message: format!(
                    "snapshot {} has no component {wanted:?} (it has: {})",
                    snapshot.id.short(),
                    snapshot
                        .components
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        components.push(component.clone());
    }
    let addon_name = session
        .spec
        .addon
        .as_ref()
        .map_or(snapshot.addon.name.as_str(), |a| a.name.as_str());
    let addon = settings.load_addon(addon_name)?;
    let mut params = task_params(
        session
            .spec
            .addon
            .as_ref()
            .map_or(&[][..], |a| a.tasks.as_slice()),
    )?;
    let target_ref = session.spec.target.as_ref();
    // Where each tree is restored before it is moved into place, and whether the root of
    // the volume takes the snapshot's root metadata.
    let mut stagings: Vec<(Staging, bool)> = Vec::new();
    let kind = target::for_addon(target::kind_of(target_ref, namespace)?, addon.info());
    if matches!(kind, TargetKind::Volume | TargetKind::Workload)
        && addon
            .info()
            .parameters
            .iter()
            .any(|p| p.name == "restore-owner")
    {
        // The Job runs unprivileged: owners are restored only when the task asks.
        params.set_default("restore-owner", "false");
    }
    let in_place = params.get("overwrite") == Some("false");
    let trees: Vec<&str> = components
        .iter()
        .filter(|c| c.kind == ComponentKind::Tree)
        .map(|c| c.name.as_str())
        .collect();
    let grants = match kind {
        TargetKind::Volume => {
            let root = &settings.target_root;
            target::check_dir(root)?;
            let single_tree = trees.len() == 1;
            let base = if in_place {
                root.clone()
            } else {
                let created = Staging::create(root, &name)?;
                let dir = created.dir().to_path_buf();
                stagings.push((created, single_tree));
                dir
            };
            let mut directories = Vec::new();
            for tree in trees {
                let dir = if single_tree {
                    base.clone()
                } else {
                    base.join(tree)
                };
                std::fs::create_dir_all(&dir).map_err(|source| ExecuteError::Io {
                    what: "cannot create",
                    path: dir.clone(),
                    source,
                })?;
                directories.push((tree.to_owned(), dir));
            }
            target::volume_restore(directories, addon.info(), params)
        }
        TargetKind::Workload => {
            // Each tree goes back into the volume of its name.
            let label = target::label(target_ref);
            let wanted: Vec<String> = trees.iter().map(|t| (*t).to_owned()).collect();
            let volumes = if wanted.is_empty() {
                Vec::new()
            } else {
                target::select_volumes(
                    target::workload_volumes(&settings.volumes_dir, &label)?,
                    &wanted,
                    &label,
                )?
            };
            let mut directories = Vec::new();
            for (volume, root) in volumes {
                let dir = if in_place {
                    root
                } else {
                    match Staging::create(&root, &name) {
                        Ok(created) => {
                            let dir = created.dir().to_path_buf();
                            stagings.push((created, true));
                            dir
                        }
                        Err(e) => {
                            discard(stagings);
                            return Err(e);
                        }
                    }
                };
                directories.push((volume, dir));
            }
            target::volume_restore(directories, addon.info(), params)
        }
        TargetKind::Network { app_binding } => {
            target::network(
                client,
                namespace,
                target_ref,
                app_binding.as_ref(),
                addon.info(),
                params,
            )
            .await?
        }
    };
    let spec = JobSpec {
        parameters: grants.parameters,
        secrets: grants.secrets,
        volumes: grants.volumes,
        exec: grants.exec,
        connect: grants.connect,
        limits: JobLimits {
            memory_bytes: settings.memory_bytes,
            deadline: remaining(
                session
                    .status
                    .as_ref()
                    .and_then(|s| s.restore_deadline.as_ref())
                    .map(|t| t.0),
            )?,
            ..JobLimits::default()
        },
        progress: Some(Arc::new(LogProgress::new(format!(
            "restore from Repository {}/{}",
            opened.namespace, opened.name
        )))),
        ..JobSpec::new(name.clone())
    };
    tracing::info!(
        addon = %addon.info().label(),
        snapshot = %snapshot.id.short(),
        components = components.len(),
        "running the addon's restore"
    );
    let run_repo = repo.clone();
    let result = tokio::task::spawn_blocking(move || addon.restore(spec, run_repo, components))
        .await
        .map_err(|e| ExecuteError::Internal(format!("the restore task failed: {e}")));
    let attributes = match result {
        Ok(Ok(attributes)) => attributes,
        Ok(Err(e)) => {
            discard(stagings);
            return Err(e.into());
        }
        Err(e) => {
            discard(stagings);
            return Err(e);
        }
    };
    let warnings: u64 = attributes
        .iter()
        .filter(|(k, _)| k == "warnings")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    if warnings > 0 {
        tracing::warn!(
            warnings,
            "some entries could not be restored as they were (see the log above)"
        );
    }
    let mut stagings = stagings.into_iter();
    while let Some((staging, root_metadata)) = stagings.next() {
        if let Err(e) = staging.commit(root_metadata) {
            // The volumes committed before stay restored; the others are left as they were.
            discard(stagings.collect());
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the staging directories of a restore that will not be committed.
fn discard(stagings: Vec<(Staging, bool)>) {
    for (staging, _) in stagings {
        staging.discard();
    }
}
