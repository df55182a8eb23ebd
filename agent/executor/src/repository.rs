//! Opening the repository of a Repository object: Repository → BackupStorage (and its
//! usage policy) → backend Secret → storage → the repository's path → encryption Secret →
//! password → the repository, with the pure parts of `stowaway_operator::storage_access`.
//!
//! The executor never creates a repository: the Repository reconciler does, before any
//! session can run.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use stowaway_api::common::{FromNamespaces, ObjectReference, ReadinessPhase};
use stowaway_api::{BackupStorage, Repository};
use stowaway_operator::backup_storage::{NamespaceLabels, usage_allowed};
use stowaway_operator::storage_access::{
    AccessError, backend_secret_name, encryption_secret, repository_password, repository_storage,
    storage_access,
};

use crate::cluster::{get, namespace_or, secret_data};
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
    let access = |source: AccessError| ExecuteError::Access {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    };
    let reference = &repository.spec.storage_ref;
    let storage_ns = namespace_or(reference.namespace.as_ref(), namespace);
    let backup_storage: BackupStorage = get(
        client,
        "BackupStorage",
        &storage_ns,
        &reference.name,
        &format!("Repository {namespace}/{name} refers to it in spec.storageRef"),
    )
    .await?;
    let selector = backup_storage
        .spec
        .usage_policy
        .as_ref()
        .is_some_and(|p| p.allowed_namespaces.from == FromNamespaces::Selector);
    let labels = if selector {
        namespace_labels(client, namespace).await?
    } else {
        Some(NamespaceLabels::new())
    };
    let allowed = match &labels {
        Some(labels) => usage_allowed(&backup_storage, namespace, labels),
        // The Job may not read Namespaces (cluster-scoped): the Repository reconciler, which
        // can, checked the policy; a Ready Repository passed it.
        None => repository.status.as_ref().and_then(|s| s.phase) == Some(ReadinessPhase::Ready),
    };
    if !allowed {
        return Err(access(AccessError::InvalidSetting {
            field: "spec.storageRef".into(),
            message: format!(
                "namespace {namespace} may not use BackupStorage {storage_ns}/{}: check its \
                 spec.usagePolicy",
                backup_storage.name_any()
            ),
        }));
    }
    let backend_secret = match backend_secret_name(&backup_storage.spec) {
        Some(secret) => secret_data(client, &storage_ns, secret).await?,
        None => None,
    };
    let storage = storage_access(&backup_storage.spec, &storage_ns, backend_secret.as_ref())
        .and_then(|a| a.open())
        .and_then(|s| repository_storage(&s, &repository.spec.path))
        .map_err(access)?;
    let location = storage.describe();

    let (secret_ns, secret_name) = match password_secret {
        Some((reference, default_ns)) => encryption_secret(Some(reference), default_ns),
        None => encryption_secret(repository.spec.encryption_secret.as_ref(), namespace),
    }
    .map_err(access)?;
    let data = secret_data(client, &secret_ns, &secret_name).await?;
    let password = repository_password(&secret_ns, &secret_name, data.as_ref()).map_err(access)?;
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
            secret: format!("{secret_ns}/{secret_name}"),
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

/// The labels of `namespace` (for a usage policy with `from: Selector`); `None` when the
/// executor may not read Namespaces.
async fn namespace_labels(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<NamespaceLabels>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = match api.get_opt(namespace).await {
        Ok(found) => found,
        Err(kube::Error::Api(e)) if e.code == 403 => {
            tracing::info!(%namespace, "may not read the Namespace: relying on the Repository's readiness for the storage's usage policy");
            return Ok(None);
        }
        Err(e) => {
            return Err(ExecuteError::kube(
                format!("reading Namespace {namespace}"),
                e,
            ));
        }
    };
    Ok(Some(
        found
            .map(|ns| NamespaceLabels::from([(namespace.to_owned(), ns.labels().clone())]))
            .unwrap_or_default(),
    ))
}
