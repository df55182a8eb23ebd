//! Reaching the repository of a Repository object through the cluster, for the operator and
//! the executor alike: Repository → BackupStorage (and its usage policy, with the namespace's
//! labels) → backend Secret → storage → the repository's path; and the encryption Secret →
//! password. The pure steps are in [`crate::storage_access`]; this module reads the objects.
//!
//! Errors are typed so that each caller words them for its own status: the Repository
//! reconciler as conditions with reasons, the executor as a Snapshot's failure.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;
use stowaway_api::common::{FromNamespaces, ObjectReference, ReadinessPhase};
use stowaway_api::{BackupStorage, Repository};
use stowaway_storage::Storage;

use crate::backup_storage::{NamespaceLabels, usage_allowed};
use crate::storage_access::{
    AccessError, Password, SecretData, backend_secret_name, encryption_secret, repository_password,
    repository_storage, storage_access,
};

/// Why a repository's storage or password cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// A call to the API server failed.
    #[error("Kubernetes API: {what}: {source}")]
    Kube {
        /// What was being read, such as `reading BackupStorage demo/s3`.
        what: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// The BackupStorage the Repository refers to does not exist.
    #[error("BackupStorage {namespace}/{name} not found")]
    StorageNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The BackupStorage's usage policy does not admit the Repository's namespace.
    #[error(
        "namespace {namespace} may not use BackupStorage {storage}: check its spec.usagePolicy"
    )]
    NotAllowed {
        /// The Repository's namespace.
        namespace: String,
        /// The BackupStorage, `namespace/name`.
        storage: String,
    },
    /// The BackupStorage's settings or backend Secret cannot be used.
    #[error("BackupStorage {storage}: {source}")]
    Storage {
        /// The BackupStorage, `namespace/name`.
        storage: String,
        /// The problem.
        source: Box<AccessError>,
    },
    /// The Repository's `spec.path` cannot be used.
    #[error("{0}")]
    Path(Box<AccessError>),
    /// The encryption Secret or its password cannot be used.
    #[error("{0}")]
    Password(Box<AccessError>),
}

impl ReachError {
    fn kube(what: String, source: kube::Error) -> Self {
        ReachError::Kube {
            what,
            source: Box::new(source),
        }
    }

    /// The storage-side problem (settings, Secrets, path), when the error is one.
    pub fn access(&self) -> Option<&AccessError> {
        match self {
            ReachError::Storage { source, .. } => Some(source),
            ReachError::Path(source) | ReachError::Password(source) => Some(source),
            _ => None,
        }
    }
}

/// The data of the Secret `namespace/name`, or `None` when it does not exist.
pub async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(secrets
        .get_opt(name)
        .await?
        .map(|s| crate::storage_access::secret_data(&s)))
}

/// [`secret_data`], its error a [`ReachError`].
async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>, ReachError> {
    secret_data(client, namespace, name)
        .await
        .map_err(|e| ReachError::kube(format!("reading Secret {namespace}/{name}"), e))
}

/// The labels of `namespaces` (those that exist), for usage policies that select namespaces.
pub async fn namespace_labels(
    client: &kube::Client,
    namespaces: &[String],
) -> Result<NamespaceLabels, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut labels = NamespaceLabels::new();
    for ns in namespaces {
        if let Some(found) = api.get_opt(ns).await? {
            labels.insert(ns.clone(), found.labels().clone());
        }
    }
    Ok(labels)
}

/// The storage of the Repository `repo` (in `namespace`): the directory `spec.path` inside its
/// BackupStorage, once the storage's usage policy admits the namespace.
///
/// When the caller may not read Namespaces (an executor Job's account) and the policy selects
/// namespaces by label, a Ready Repository is trusted: the Repository reconciler, which can
/// read them, checked the policy before making it Ready.
pub async fn reach(
    client: &kube::Client,
    repo: &Repository,
    namespace: &str,
) -> Result<Storage, ReachError> {
    let reference = &repo.spec.storage_ref;
    let storage_ns = reference
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.to_owned());
    let storage_name = format!("{storage_ns}/{}", reference.name);
    let storages: Api<BackupStorage> = Api::namespaced(client.clone(), &storage_ns);
    let backup_storage = storages
        .get_opt(&reference.name)
        .await
        .map_err(|e| ReachError::kube(format!("reading BackupStorage {storage_name}"), e))?
        .ok_or_else(|| ReachError::StorageNotFound {
            namespace: storage_ns.clone(),
            name: reference.name.clone(),
        })?;
    let selector = backup_storage
        .spec
        .usage_policy
        .as_ref()
        .is_some_and(|p| p.allowed_namespaces.from == FromNamespaces::Selector);
    let allowed = if selector {
        match namespace_labels(client, &[namespace.to_owned()]).await {
            Ok(labels) => usage_allowed(&backup_storage, namespace, &labels),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::info!(%namespace, "may not read the Namespace: relying on the Repository's readiness for the storage's usage policy");
                repo.status.as_ref().and_then(|s| s.phase) == Some(ReadinessPhase::Ready)
            }
            Err(e) => {
                return Err(ReachError::kube(
                    format!("reading Namespace {namespace}"),
                    e,
                ));
            }
        }
    } else {
        usage_allowed(&backup_storage, namespace, &NamespaceLabels::new())
    };
    if !allowed {
        return Err(ReachError::NotAllowed {
            namespace: namespace.to_owned(),
            storage: storage_name,
        });
    }
    let secret = match backend_secret_name(&backup_storage.spec) {
        Some(secret) => read_secret(client, &storage_ns, secret).await?,
        None => None,
    };
    let opened = storage_access(&backup_storage.spec, &storage_ns, secret.as_ref())
        .and_then(|access| access.open())
        .map_err(|e| ReachError::Storage {
            storage: storage_name,
            source: Box::new(e),
        })?;
    repository_storage(&opened, &repo.spec.path).map_err(|e| ReachError::Path(Box::new(e)))
}

/// A repository password and the Secret it came from.
pub struct SecretPassword {
    /// The password.
    pub password: Password,
    /// The Secret, `namespace/name`.
    pub secret: String,
}

/// The password in the encryption Secret `reference` (its namespace defaults to `namespace`).
pub async fn password(
    client: &kube::Client,
    reference: Option<&ObjectReference>,
    namespace: &str,
) -> Result<SecretPassword, ReachError> {
    let problem = |e| ReachError::Password(Box::new(e));
    let (secret_ns, secret_name) = encryption_secret(reference, namespace).map_err(problem)?;
    let data = read_secret(client, &secret_ns, &secret_name).await?;
    let password = repository_password(&secret_ns, &secret_name, data.as_ref()).map_err(problem)?;
    Ok(SecretPassword {
        password,
        secret: format!("{secret_ns}/{secret_name}"),
    })
}
