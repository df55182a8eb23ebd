//! Reconciling a Repository: reach its BackupStorage, open the repository with the password of
//! its encryption Secret (creating it when absent), read its snapshots and size; decide;
//! apply (finalizer, mirrored Snapshot objects, data wipe-out, Snapshot deletion, status,
//! events).

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use stowaway_api::common::DeletionPolicy;
use stowaway_api::{Repository, Snapshot};
use stowaway_repository::CheckOptions;
use stowaway_storage::Storage;

use super::{Context, Error, apply};
use crate::integrity::{self, CheckResult};
use crate::names;
use crate::repository::{
    self as decision, Finalize, Observed, Outcome, decide, has_finalizer, is_deleting, is_paused,
    wipe_out_failed,
};
use crate::repository_access::{self, ReachError, SecretPassword};
use crate::snapshot_mirror;
use crate::storage_access::{self, RepositoryError};

/// Reconciles one Repository.
pub async fn reconcile(repo: Arc<Repository>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = repo.name_any();
    let namespace = repo.namespace().ok_or_else(|| Error::NoNamespace {
        kind: "Repository",
        name: name.clone(),
    })?;
    let client = &ctx.client;
    let api: Api<Repository> = Api::namespaced(client.clone(), &namespace);
    let snapshots_api: Api<Snapshot> = Api::namespaced(client.clone(), &namespace);
    let snapshots = snapshots_api.list(&ListParams::default()).await?.items;

    let deleting = is_deleting(&repo);
    // The data is reached to open the repository, or to wipe it out on deletion.
    let needs_data = if deleting {
        has_finalizer(&repo) && repo.spec.deletion_policy == DeletionPolicy::WipeOut
    } else {
        !is_paused(&repo)
    };
    let storage = if needs_data {
        Some(reach(client, &repo, &namespace).await?)
    } else {
        None
    };
    let (outcome, integrity) = match (&storage, deleting) {
        (Some(Ok(storage)), false) => open(client, &repo, &namespace, storage, ctx.now()).await?,
        (Some(Err(problem)), false) => (problem.clone(), None),
        _ => (Outcome::NotChecked, None),
    };

    let plan = decide(&Observed {
        repository: &repo,
        outcome,
        snapshots: &snapshots,
        now: ctx.now(),
        integrity,
    });

    if plan.add_finalizer {
        apply::add_finalizer(&api, repo.as_ref(), names::FINALIZER).await?;
    }
    mirror(&snapshots_api, &plan.mirror).await?;
    for (snapshot, sound, components) in &plan.snapshot_integrity {
        write_integrity(&snapshots_api, snapshot, *sound, components).await?;
    }
    if let Some(status) = &plan.status {
        apply::status(&api, &name, repo.status.as_ref(), status).await?;
    }
    let mut events = plan.events.clone();
    let mut requeue = plan.requeue_after;
    let mut remove_finalizer = false;
    if let Some(finalize) = plan.finalize {
        let wiped = match finalize {
            Finalize::KeepData => Ok(0),
            Finalize::WipeOut => match &storage {
                Some(Ok(storage)) => storage_access::wipe(storage)
                    .await
                    .map_err(|e| format!("{}: {e}", storage.describe())),
                Some(Err(Outcome::Problem { message, .. })) => Err(message.clone()),
                _ => Err("the storage could not be reached".to_owned()),
            },
        };
        match wiped {
            Ok(count) => {
                remove_finalizer = true;
                if finalize == Finalize::WipeOut {
                    tracing::info!(repository = %name, %namespace, objects = count, "wiped out the repository");
                }
            }
            Err(message) => {
                events.push(wipe_out_failed(&repo, &message));
                requeue = Some(decision::RETRY);
            }
        }
        // Snapshot objects go either way (they are owned by the Repository, but the garbage
        // collector only acts once the Repository is gone).
        for snapshot in &plan.delete_snapshots {
            apply::delete(&snapshots_api, snapshot).await?;
        }
    }
    apply::events(&ctx, repo.as_ref(), &events).await;
    if remove_finalizer {
        apply::remove_finalizer(&api, repo.as_ref(), names::FINALIZER).await?;
        tracing::info!(repository = %name, %namespace, policy = ?repo.spec.deletion_policy, "finalized Repository");
        return Ok(Action::await_change());
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Carries out the mirroring: creates the objects and writes their status (a subresource),
/// writes the missing statuses, deletes the mirrored objects of forgotten snapshots.
async fn mirror(api: &Api<Snapshot>, plan: &snapshot_mirror::Plan) -> Result<(), Error> {
    for object in &plan.create {
        let name = object.name_any();
        apply::create(api, object).await?;
        if let Some(status) = &object.status {
            apply::status(api, &name, None, status).await?;
        }
        tracing::info!(snapshot = %name, id = ?object.spec.snapshot_id, repository = %object.spec.repository, "mirrored a repository snapshot");
    }
    for (name, status) in &plan.repair {
        apply::status(api, name, None, status).await?;
    }
    for name in &plan.delete {
        apply::delete(api, name).await?;
        tracing::info!(snapshot = %name, "deleted a mirrored Snapshot object: its snapshot is gone from the repository");
    }
    Ok(())
}

/// The storage of the repository (its path inside its BackupStorage), or the problem that
/// prevents reaching it as an [`Outcome::Problem`].
async fn reach(
    client: &kube::Client,
    repo: &Repository,
    namespace: &str,
) -> Result<Result<Storage, Outcome>, Error> {
    let reason = match repository_access::reach(client, repo, namespace).await {
        Ok(storage) => return Ok(Ok(storage)),
        Err(ReachError::Kube { source, .. }) => return Err(Error::Kube(*source)),
        Err(e) => e,
    };
    let message = reason.to_string();
    Ok(Err(match reason {
        ReachError::StorageNotFound { .. } => Outcome::Problem {
            reason: decision::STORAGE_NOT_FOUND,
            message: format!("{message}: create it or fix spec.storageRef"),
        },
        ReachError::NotAllowed { .. } => Outcome::Problem {
            reason: decision::STORAGE_NOT_ALLOWED,
            message,
        },
        ReachError::Storage { .. } => Outcome::Problem {
            reason: decision::STORAGE_NOT_REACHABLE,
            message,
        },
        _ => Outcome::Problem {
            reason: decision::INITIALIZATION_FAILED,
            message,
        },
    }))
}

/// The password of the repository's encryption Secret, or the problem as a status message.
async fn password(
    client: &kube::Client,
    repo: &Repository,
    namespace: &str,
) -> Result<Result<SecretPassword, String>, Error> {
    match repository_access::password(client, repo.spec.encryption_secret.as_ref(), namespace).await
    {
        Ok(found) => Ok(Ok(found)),
        Err(ReachError::Kube { source, .. }) => Err(Error::Kube(*source)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Opens (or creates) the repository with the password of its encryption Secret and reads
/// what the status shows; checks its integrity when a check is due.
async fn open(
    client: &kube::Client,
    repo: &Repository,
    namespace: &str,
    storage: &Storage,
    now: jiff::Timestamp,
) -> Result<(Outcome, Option<CheckResult>), Error> {
    let SecretPassword { password, secret } = match password(client, repo, namespace).await? {
        Ok(found) => found,
        Err(message) => {
            return Ok((
                Outcome::Problem {
                    reason: decision::ENCRYPTION_SECRET_NOT_AVAILABLE,
                    message,
                },
                None,
            ));
        }
    };
    let location = storage.describe();
    let (opened, created) = match storage_access::open_or_init(storage, &password).await {
        Ok(found) => found,
        Err(RepositoryError::WrongPassword) => {
            return Ok((
                Outcome::Problem {
                    reason: decision::WRONG_PASSWORD,
                    message: format!(
                        "the password in Secret {secret} opens no key of the repository at \
                     {location}: put the repository's password in the Secret"
                    ),
                },
                None,
            ));
        }
        Err(e @ RepositoryError::PathNotEmpty { .. }) => {
            return Ok((
                Outcome::Problem {
                    reason: decision::PATH_NOT_EMPTY,
                    message: e.to_string(),
                },
                None,
            ));
        }
        Err(e) => {
            return Ok((
                Outcome::Problem {
                    reason: decision::INITIALIZATION_FAILED,
                    message: format!("{location}: {e}"),
                },
                None,
            ));
        }
    };
    if created {
        tracing::info!(repository = %repo.name_any(), %namespace, %location, "created repository");
    }
    let facts = match storage_access::repository_facts(&opened).await {
        Ok(facts) => facts,
        Err(e) => {
            return Ok((
                Outcome::Problem {
                    reason: decision::INITIALIZATION_FAILED,
                    message: format!("reading the repository at {location}: {e}"),
                },
                None,
            ));
        }
    };
    let check = if integrity::due(repo, now) {
        check(&opened, &location).await
    } else {
        None
    };
    Ok((Outcome::Opened { created, facts }, check))
}

/// Checks the repository's structure (`stowaway check` without `--read-data`) under an
/// exclusive lock; `None` (tried again at the next refresh) when the lock is held or the
/// check cannot run.
async fn check(repo: &stowaway_repository::Repository, location: &str) -> Option<CheckResult> {
    let lock = match repo.lock(true, "integrity check").await {
        Ok(lock) => lock,
        Err(e) => {
            tracing::info!(%location, error = %e, "integrity check postponed: the repository is locked");
            return None;
        }
    };
    let report = repo.check(CheckOptions { read_data: false }, &()).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(%location, error = %e, "releasing the integrity check's lock");
    }
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!(%location, error = %e, "the integrity check could not run");
            return None;
        }
    };
    let checked = match repo.snapshot_ids().await {
        Ok(ids) => ids.iter().map(|id| id.to_hex()).collect(),
        Err(e) => {
            tracing::warn!(%location, error = %e, "listing the snapshots after the integrity check");
            return None;
        }
    };
    tracing::info!(%location, errors = report.errors.len(), "integrity checked");
    Some(CheckResult {
        errors: report
            .errors
            .iter()
            .map(|e| {
                (
                    e.to_string(),
                    e.snapshots.iter().map(|id| id.to_hex()).collect(),
                )
            })
            .collect(),
        checked,
    })
}

/// Writes a Snapshot object's integrity, and its components'.
async fn write_integrity(
    api: &Api<Snapshot>,
    name: &str,
    sound: bool,
    components: &[String],
) -> Result<(), Error> {
    let components: serde_json::Map<String, serde_json::Value> = components
        .iter()
        .map(|c| (c.clone(), serde_json::json!({ "integrity": sound })))
        .collect();
    let patch = serde_json::json!({"status": {"integrity": sound, "components": components}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    if !sound {
        tracing::warn!(snapshot = %name, "the integrity check found this snapshot damaged");
    }
    Ok(())
}

/// Opens the repository of the Repository object `repo` with its encryption Secret, for
/// work other than initialisation (retention). The error is a message for a status.
pub(crate) async fn open_existing(
    client: &kube::Client,
    repo: &Repository,
    namespace: &str,
) -> Result<Result<stowaway_repository::Repository, String>, Error> {
    let storage = match reach(client, repo, namespace).await? {
        Ok(storage) => storage,
        Err(Outcome::Problem { message, .. }) => return Ok(Err(message)),
        Err(_) => return Ok(Err("the repository cannot be reached".to_owned())),
    };
    let password = match password(client, repo, namespace).await? {
        Ok(found) => found.password,
        Err(message) => return Ok(Err(message)),
    };
    let location = storage.describe();
    Ok(
        stowaway_repository::Repository::open(storage, password.expose())
            .await
            .map_err(|e| format!("opening the repository at {location}: {e}")),
    )
}
