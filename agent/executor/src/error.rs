//! Why executing a session, or one of its snapshots or components, failed.

use stowaway_operator::storage_access::AccessError;

/// Result type of the executor.
pub type Result<T, E = ExecuteError> = std::result::Result<T, E>;

/// Why executing a session (or a part of it) failed. Every message names the object,
/// Secret, path or addon involved; it is what the Snapshot or RestoreSession status shows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError {
    /// A call to the API server failed.
    #[error("Kubernetes API: {what}: {source}")]
    Kube {
        /// What was being done, such as `reading BackupSession demo/db-1`.
        what: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// An object the session needs does not exist.
    #[error("{kind} {namespace}/{name} not found{hint}")]
    NotFound {
        /// Its kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What to do about it (starts with `: ` when not empty).
        hint: String,
    },
    /// The session cannot be executed as it is (not started, inconsistent, unsupported).
    #[error("{kind} {namespace}/{name}: {message}")]
    Session {
        /// `BackupSession` or `RestoreSession`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The storage or the repository password cannot be reached (a Secret, a setting).
    #[error("Repository {namespace}/{name}: {source}")]
    Access {
        /// Namespace of the Repository.
        namespace: String,
        /// Its name.
        name: String,
        /// The problem, naming the Secret or the field.
        source: Box<AccessError>,
    },
    /// The encryption Secret's password opens no key of the repository.
    #[error(
        "Repository {namespace}/{name}: the password in Secret {secret} opens no key of the \
         repository at {location}"
    )]
    WrongPassword {
        /// Namespace of the Repository.
        namespace: String,
        /// Its name.
        name: String,
        /// The Secret, `namespace/name`.
        secret: String,
        /// Where the repository is.
        location: String,
    },
    /// The repository (or its storage) failed.
    #[error("Repository {namespace}/{name} at {location}: {source}")]
    Repository {
        /// Namespace of the Repository.
        namespace: String,
        /// Its name.
        name: String,
        /// Where the repository is.
        location: String,
        /// The repository's error.
        source: Box<stowaway_repository::Error>,
    },
    /// The addon named by the session is not one this executor can run.
    #[error(
        "addon {name:?} is not built in ({builtin}): running third-party Addon objects is not \
         supported yet"
    )]
    UnsupportedAddon {
        /// The name the session gives.
        name: String,
        /// The built-in names.
        builtin: String,
    },
    /// The addon failed to load or run.
    #[error("{0}")]
    Addon(Box<stowaway_runtime::Error>),
    /// A task parameter cannot be handed to the addon.
    #[error("parameter {name}: {message}")]
    Parameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The target cannot be reached from here (not mounted, a kind the executor cannot back
    /// up, its credentials missing).
    #[error("target {target}: {message}")]
    Target {
        /// `Kind name` of the target.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// A file-system operation on the target failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The time limit of the session passed.
    #[error("the session's deadline {deadline} has passed")]
    DeadlinePassed {
        /// The deadline.
        deadline: jiff::Timestamp,
    },
    /// A background task of the executor failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<stowaway_runtime::Error> for ExecuteError {
    fn from(e: stowaway_runtime::Error) -> Self {
        ExecuteError::Addon(Box::new(e))
    }
}

impl ExecuteError {
    /// A one-word CamelCase reason for a condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ExecuteError::Kube { .. } => "KubernetesAPIError",
            ExecuteError::NotFound { .. } => "ObjectNotFound",
            ExecuteError::Session { .. } => "InvalidSession",
            ExecuteError::Access { .. } | ExecuteError::WrongPassword { .. } => {
                "RepositoryNotAccessible"
            }
            ExecuteError::Repository { .. } => "RepositoryError",
            ExecuteError::UnsupportedAddon { .. } => "AddonNotSupported",
            ExecuteError::Addon(_) | ExecuteError::Parameter { .. } => "AddonFailed",
            ExecuteError::Target { .. } | ExecuteError::Io { .. } => "TargetNotAccessible",
            ExecuteError::DeadlinePassed { .. } => "DeadlinePassed",
            ExecuteError::Internal(_) => "InternalError",
        }
    }

    /// A [`ExecuteError::Kube`] error.
    pub(crate) fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        ExecuteError::Kube {
            what: what.into(),
            source: Box::new(source),
        }
    }
}
