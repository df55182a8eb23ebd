//! Opening the repository of a Repository object: Repository → BackupStorage (and its
//! usage policy) → backend Secret → storage → the repository's path → encryption Secret →
//! password → the repository, through `stowaway_operator::repository_access`.
//!
//! The executor never creates a repository: the Repository reconciler does, before any
//! session can run.

use stowaway_api::Repository;
use stowaway_api::common::ObjectReference;
use stowaway_operator::repository_access::{self, ReachError, SecretPassword};
use stowaway_operator::storage_access::AccessError;

use crate::cluster::get;
use crate::error::{ExecuteError, Result};

/// An opened repository and where it is.
#[derive(Clone)]
pub struct OpenedRepository {
    /// The repository (index not loaded).
    pub repo: stowaway_repository::Repository,
    /// Its location, for messages.
    pub location: String,
    /// Namespace of the Repository object.
    pub namespace: String,
    /// Name of the Repository object.
    pub name: String,
}

impl OpenedRepository {
    /// An [`ExecuteError::Repository`] for this repository.
    pub fn error(&self, source: stowaway_repository::Error) -> ExecuteError {
        ExecuteError::Repository {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            location: self.location.clone(),
            source: Box::new(source),
        }
    }
}

/// Opens the repository of the Repository `namespace/name`. `password_secret` replaces the
/// Repository's `encryptionSecret` (a RestoreSession's `dataSource.encryptionSecret`, whose
/// namespace defaults to `secret_namespace`).
pub async fn open(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    password_secret: Option<(&ObjectReference, &str)>,
) -> Result<OpenedRepository> {
    let repository: Repository = get(
        client,
        "Repository",
        namespace,
        name,
        "the BackupConfiguration's reconciler creates it",
    )
    .await?;
    let failed = |e: ReachError| reach_error(e, namespace, name);
    let storage = repository_access::reach(client, &repository, namespace)
        .await
        .map_err(failed)?;
    let location = storage.describe();
    let (reference, secret_ns) = match password_secret {
        Some((reference, default_ns)) => (Some(reference), default_ns),
        None => (repository.spec.encryption_secret.as_ref(), namespace),
    };
    let SecretPassword { password, secret } =
        repository_access::password(client, reference, secret_ns)
            .await
            .map_err(failed)?;
    match stowaway_repository::Repository::open(storage, password.expose()).await {
        Ok(repo) => Ok(OpenedRepository {
            repo,
            location,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(stowaway_repository::Error::WrongPassword) => Err(ExecuteError::WrongPassword {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            secret,
            location,
        }),
        Err(source) => Err(ExecuteError::Repository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            location,
            source: Box::new(source),
        }),
    }
}

/// The executor's error for a Repository `namespace/name` that cannot be reached.
fn reach_error(error: ReachError, namespace: &str, name: &str) -> ExecuteError {
    let access = |source: AccessError| ExecuteError::Access {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    };
    match error {
        ReachError::Kube { what, source } => ExecuteError::Kube { what, source },
        ReachError::StorageNotFound {
            namespace: storage_ns,
            name: storage,
        } => ExecuteError::NotFound {
            kind: "BackupStorage",
            namespace: storage_ns,
            name: storage,
            hint: format!(": Repository {namespace}/{name} refers to it in spec.storageRef"),
        },
        e @ ReachError::NotAllowed { .. } => access(AccessError::InvalidSetting {
            field: "spec.storageRef".into(),
            message: e.to_string(),
        }),
        ReachError::Storage { source, .. }
        | ReachError::Path(source)
        | ReachError::Password(source) => access(*source),
    }
}
