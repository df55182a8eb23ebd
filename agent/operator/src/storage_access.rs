//! Reaching a BackupStorage's backend and a Repository's data from the operator.
//!
//! The pure part turns a BackupStorage spec and the contents of its `secretName` Secret into a
//! [`StorageAccess`] ([`storage_access`]), and a Repository's `encryptionSecret` into its
//! password ([`repository_password`]); every problem is an [`AccessError`] naming the Secret
//! and key or the field involved. The I/O part opens the storage ([`StorageAccess::open`]),
//! writes and reads back the BackupStorage marker ([`ensure_marker`]), opens or initialises
//! a repository ([`open_or_init`]), reads what a Repository status shows ([`repository_facts`])
//! and deletes data ([`wipe`]).
//!
//! Secret keys are KubeStash's: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `CA_CERT_DATA`
//! (S3); `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`, `GOOGLE_PROJECT_ID` (GCS); `AZURE_ACCOUNT_KEY`
//! (Azure); `RESTIC_PASSWORD` (or `password`) for a repository.
//!
//! The `local` provider is reached directly when `mountPath` exists in the operator's own file
//! system (a volume mounted into the operator pod, or a directory in tests). Mounting a volume
//! the operator does not have (running a Job for it, as KubeStash does) is not done yet: such
//! a storage reports why it is not ready.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stowaway_api::backup_storage::{BackupStorageSpec, Provider as ApiProvider};
use stowaway_api::common::ObjectReference;
use stowaway_repository::{InitOptions, Repository};
use stowaway_storage::{
    AzureConfig, GcsConfig, LocalConfig, S3Config, Storage, StorageConfig, StorageOptions,
};

/// The data of a Secret: key to value, as the API server returns `data` (decoded).
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The data of a Secret: `data`, and `stringData` for keys `data` lacks (the API server
/// folds `stringData` into `data`; objects built by hand or by a fake client may not).
pub fn secret_data(secret: &k8s_openapi::api::core::v1::Secret) -> SecretData {
    let mut out: SecretData = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.entry(k.clone())
            .or_insert_with(|| v.as_bytes().to_vec());
    }
    out
}

/// S3 access key id.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// S3 secret access key.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// S3 session token (optional, Stowaway extension).
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// PEM root certificate of a TLS S3 endpoint such as MinIO (optional).
pub const CA_CERT_DATA: &str = "CA_CERT_DATA";
/// GCS service account key (JSON).
pub const GOOGLE_SERVICE_ACCOUNT_JSON_KEY: &str = "GOOGLE_SERVICE_ACCOUNT_JSON_KEY";
/// GCS project id (optional here: the bucket name is enough for the object store).
pub const GOOGLE_PROJECT_ID: &str = "GOOGLE_PROJECT_ID";
/// Azure storage account key.
pub const AZURE_ACCOUNT_KEY: &str = "AZURE_ACCOUNT_KEY";
/// Repository password key of KubeStash's encryption Secret.
pub const RESTIC_PASSWORD: &str = "RESTIC_PASSWORD";
/// Repository password key accepted when [`RESTIC_PASSWORD`] is absent.
pub const PASSWORD: &str = "password";
/// The marker object written at the root of an initialised BackupStorage (as KubeStash).
pub const MARKER: &str = "metadata.yaml";

/// Directories a repository that failed half-way through `init` may already hold; any other
/// object under a path without a repository `config` means the path holds someone else's data.
const INIT_LEFTOVERS: [&str; 2] = ["keys/", "locks/"];

/// Why the operator cannot reach a storage or a repository.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A Secret named by the spec does not exist.
    #[error("Secret {namespace}/{name} ({purpose}) not found")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What it is for: `backend credentials` or `repository password`.
        purpose: &'static str,
    },
    /// The Secret lacks a required key.
    #[error("Secret {namespace}/{name} has no key {key}")]
    MissingKey {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key (or keys, `A or B`) looked for.
        key: String,
    },
    /// A value of the Secret cannot be used.
    #[error("Secret {namespace}/{name}: key {key} {problem}")]
    InvalidValue {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong (`is not UTF-8`, `is empty`).
        problem: &'static str,
    },
    /// The Repository names no encryption Secret.
    #[error(
        "spec.encryptionSecret is not set: the repository needs a Secret with {RESTIC_PASSWORD}"
    )]
    NoEncryptionSecret,
    /// The provider's settings block is missing.
    #[error("spec.storage.provider is {provider} but spec.storage.{provider} is not set")]
    MissingProviderBlock {
        /// `local`, `s3`, `gcs` or `azure`.
        provider: &'static str,
    },
    /// A setting is out of range.
    #[error("{field}: {message}")]
    InvalidSetting {
        /// The field, such as `spec.storage.s3.maxConnections`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A local storage whose volume the operator does not see.
    #[error(
        "local storage: {path} does not exist in the operator's file system; mount the volume \
         into the operator pod at spec.storage.local.mountPath (reaching volumes the operator \
         cannot mount through a Job is not supported yet)"
    )]
    LocalPathNotMounted {
        /// The missing mount path.
        path: String,
    },
    /// The storage layer refused the configuration or failed.
    #[error("{0}")]
    Storage(#[from] stowaway_storage::Error),
}

impl AccessError {
    /// Whether the problem is the backend Secret (condition `BackendSecretFound`) rather than
    /// the storage itself.
    pub fn is_secret_problem(&self) -> bool {
        matches!(
            self,
            AccessError::SecretNotFound { .. }
                | AccessError::MissingKey { .. }
                | AccessError::InvalidValue { .. }
        )
    }
}

/// Credential values handed to the storage layer. `Debug` shows the keys only; values are
/// overwritten with zeros when dropped (best effort).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Credentials {
    values: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        for value in self.values.values_mut() {
            wipe_bytes(value);
        }
    }
}

impl Credentials {
    /// The keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn wipe_bytes(value: &mut [u8]) {
    value.fill(0);
    std::hint::black_box(value);
}

/// A repository password. `Debug` does not show it; it is overwritten when dropped (best
/// effort).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        wipe_bytes(&mut bytes);
    }
}

/// How to reach one BackupStorage: the storage configuration and the credentials from its
/// Secret. Made by [`storage_access`] without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccess {
    /// Where the data is.
    pub config: StorageConfig,
    /// The values of the Secret the provider uses (empty: ambient credentials or none).
    pub credentials: Credentials,
}

/// The name of the Secret a BackupStorage's provider block names, if any.
pub fn backend_secret_name(spec: &BackupStorageSpec) -> Option<&str> {
    let storage = &spec.storage;
    let name = match storage.provider {
        ApiProvider::S3 => storage.s3.as_ref().and_then(|s| s.secret_name.as_deref()),
        ApiProvider::Gcs => storage.gcs.as_ref().and_then(|s| s.secret_name.as_deref()),
        ApiProvider::Azure => storage
            .azure
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        ApiProvider::Local => None,
    };
    name.filter(|n| !n.is_empty())
}

/// How to reach the BackupStorage with `spec` in `namespace`, given the data of the Secret
/// its provider block names (`None` when that Secret does not exist, or when none is named).
///
/// Pure: checks the settings, that the Secret exists when one is named, and that it holds the
/// keys the provider needs (S3: [`AWS_ACCESS_KEY_ID`] and [`AWS_SECRET_ACCESS_KEY`]; GCS:
/// [`GOOGLE_SERVICE_ACCOUNT_JSON_KEY`]; Azure: [`AZURE_ACCOUNT_KEY`]).
pub fn storage_access(
    spec: &BackupStorageSpec,
    namespace: &str,
    secret: Option<&SecretData>,
) -> Result<StorageAccess, AccessError> {
    let storage = &spec.storage;
    let missing = |provider| AccessError::MissingProviderBlock { provider };
    let (config, required, optional): (StorageConfig, &[&str], &[&str]) = match storage.provider {
        ApiProvider::Local => {
            let local = storage.local.as_ref().ok_or_else(|| missing("local"))?;
            if local.mount_path.is_empty() {
                return Err(AccessError::InvalidSetting {
                    field: "spec.storage.local.mountPath".into(),
                    message: "required".into(),
                });
            }
            let config = StorageConfig {
                local: Some(LocalConfig {
                    mount_path: PathBuf::from(&local.mount_path),
                    sub_path: local.sub_path.clone().filter(|s| !s.is_empty()),
                    max_connections: connections("local", local.max_connections)?,
                }),
                ..StorageConfig::local(&local.mount_path)
            };
            (config, &[], &[])
        }
        ApiProvider::S3 => {
            let s3 = storage.s3.as_ref().ok_or_else(|| missing("s3"))?;
            let config = StorageConfig::s3(S3Config {
                endpoint: Some(s3.endpoint.trim_end_matches('/').to_owned())
                    .filter(|e| !e.is_empty()),
                bucket: s3.bucket.clone(),
                prefix: s3.prefix.clone().unwrap_or_default(),
                region: s3.region.clone().filter(|r| !r.is_empty()),
                secret_name: s3.secret_name.clone(),
                max_connections: connections("s3", s3.max_connections)?,
                insecure_tls: s3.insecure_tls.unwrap_or(false),
                ..S3Config::default()
            });
            (
                config,
                &[AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY],
                &[AWS_SESSION_TOKEN, CA_CERT_DATA],
            )
        }
        ApiProvider::Gcs => {
            let gcs = storage.gcs.as_ref().ok_or_else(|| missing("gcs"))?;
            let config = StorageConfig::gcs(GcsConfig {
                bucket: gcs.bucket.clone(),
                prefix: gcs.prefix.clone().unwrap_or_default(),
                max_connections: connections("gcs", gcs.max_connections)?,
                secret_name: gcs.secret_name.clone(),
            });
            (
                config,
                &[GOOGLE_SERVICE_ACCOUNT_JSON_KEY],
                &[GOOGLE_PROJECT_ID],
            )
        }
        ApiProvider::Azure => {
            let azure = storage.azure.as_ref().ok_or_else(|| missing("azure"))?;
            let config = StorageConfig::azure(AzureConfig {
                storage_account: azure.storage_account.clone(),
                container: azure.container.clone(),
                prefix: azure.prefix.clone().unwrap_or_default(),
                max_connections: connections("azure", azure.max_connections)?,
                secret_name: azure.secret_name.clone(),
                ..AzureConfig::default()
            });
            (config, &[AZURE_ACCOUNT_KEY], &[])
        }
    };
    let mut credentials = Credentials::default();
    if let Some(name) = backend_secret_name(spec) {
        let data = secret.ok_or_else(|| AccessError::SecretNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            purpose: "backend credentials",
        })?;
        for key in required {
            let value = secret_value(namespace, name, data, key)?.ok_or_else(|| {
                AccessError::MissingKey {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: (*key).to_owned(),
                }
            })?;
            credentials.values.insert((*key).to_owned(), value);
        }
        for key in optional {
            if let Some(value) = secret_value(namespace, name, data, key)? {
                credentials.values.insert((*key).to_owned(), value);
            }
        }
    }
    Ok(StorageAccess {
        config,
        credentials,
    })
}

/// A UTF-8, non-empty value of `key` (`None` when absent).
fn secret_value(
    namespace: &str,
    name: &str,
    data: &SecretData,
    key: &str,
) -> Result<Option<Vec<u8>>, AccessError> {
    let Some(value) = data.get(key) else {
        return Ok(None);
    };
    let invalid = |problem| AccessError::InvalidValue {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
        problem,
    };
    if std::str::from_utf8(value).is_err() {
        return Err(invalid("is not UTF-8"));
    }
    if value.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("is empty"));
    }
    Ok(Some(value.clone()))
}

fn connections(provider: &str, value: Option<i64>) -> Result<Option<u32>, AccessError> {
    value
        .map(|v| match u32::try_from(v) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(AccessError::InvalidSetting {
                field: format!("spec.storage.{provider}.maxConnections"),
                message: format!("{v} is not between 1 and {}", u32::MAX),
            }),
        })
        .transpose()
}

impl StorageAccess {
    /// The local directory the storage lives in (`mountPath` + `subPath`), for the `local`
    /// provider.
    pub fn local_path(&self) -> Option<PathBuf> {
        let local = self.config.local.as_ref()?;
        let mut path = local.mount_path.clone();
        if let Some(sub) = &local.sub_path {
            path.push(sub);
        }
        Some(path)
    }

    /// Opens the storage, rooted at its prefix (`local`: `mountPath`/`subPath`, created
    /// inside an existing `mountPath`). Contacts nothing remote yet.
    ///
    /// The Secret's values go to the storage layer in memory; nothing is written to disk.
    pub fn open(&self) -> Result<Storage, AccessError> {
        if let Some(local) = &self.config.local
            && !local.mount_path.is_dir()
        {
            return Err(AccessError::LocalPathNotMounted {
                path: local.mount_path.display().to_string(),
            });
        }
        let credentials = stowaway_storage::Credentials::from_values(
            self.credentials
                .values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        )?;
        Ok(Storage::from_config_with_credentials(
            &self.config,
            &StorageOptions::default(),
            &credentials,
        )?)
    }
}

/// The storage of a Repository: the directory `path` inside its BackupStorage.
pub fn repository_storage(storage: &Storage, path: &str) -> Result<Storage, AccessError> {
    if path.trim_matches('/').is_empty() {
        return Err(AccessError::InvalidSetting {
            field: "spec.path".into(),
            message: "required: the repository's directory inside the storage".into(),
        });
    }
    storage.sub(path).map_err(|e| AccessError::InvalidSetting {
        field: "spec.path".into(),
        message: e.to_string(),
    })
}

/// The encryption Secret of a Repository in `namespace`: `(namespace, name)`; the
/// reference's namespace defaults to the Repository's.
pub fn encryption_secret(
    reference: Option<&ObjectReference>,
    namespace: &str,
) -> Result<(String, String), AccessError> {
    let reference = reference
        .filter(|r| !r.name.is_empty())
        .ok_or(AccessError::NoEncryptionSecret)?;
    let ns = reference
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.to_owned());
    Ok((ns, reference.name.clone()))
}

/// The repository password from the encryption Secret `namespace/name` (`data` is `None` when
/// it does not exist): key [`RESTIC_PASSWORD`], else [`PASSWORD`]. Trailing line breaks are
/// dropped (Secrets made from files often end in one).
pub fn repository_password(
    namespace: &str,
    name: &str,
    data: Option<&SecretData>,
) -> Result<Password, AccessError> {
    let data = data.ok_or_else(|| AccessError::SecretNotFound {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        purpose: "repository password",
    })?;
    let (key, value) = [RESTIC_PASSWORD, PASSWORD]
        .into_iter()
        .find_map(|k| data.get(k).map(|v| (k, v)))
        .ok_or_else(|| AccessError::MissingKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: format!("{RESTIC_PASSWORD} (or {PASSWORD})"),
        })?;
    let invalid = |problem| AccessError::InvalidValue {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let text = std::str::from_utf8(value).map_err(|_| invalid("is not UTF-8"))?;
    let text = text.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(invalid("is empty"));
    }
    Ok(Password(text.to_owned()))
}

/// The content of the [`MARKER`] written at the root of a BackupStorage: which object owns
/// the storage (JSON, which is also YAML).
pub fn marker_content(namespace: &str, name: &str, spec: &BackupStorageSpec) -> Vec<u8> {
    let value = serde_json::json!({
        "apiVersion": format!("{}/{}", stowaway_api::STORAGE_GROUP, stowaway_api::VERSION),
        "kind": "BackupStorage",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "storage": { "provider": spec.storage.provider } },
    });
    let mut text = serde_json::to_vec_pretty(&value).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Initialises a BackupStorage: writes `marker` as [`MARKER`] unless an object of that name
/// exists (one from KubeStash or an earlier run is kept as it is; the write is create-only, so
/// two operators racing keep the first), then reads it back.
pub async fn ensure_marker(storage: &Storage, marker: Vec<u8>) -> Result<(), AccessError> {
    match storage.get(MARKER).await {
        Ok(_) => return Ok(()),
        Err(stowaway_storage::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    match storage.put_new(MARKER, marker.into()).await {
        Ok(()) | Err(stowaway_storage::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    storage.get(MARKER).await?;
    Ok(())
}

/// Why a repository could not be opened or created.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The password opens no key of the existing repository.
    #[error("wrong password: the encryption Secret's password opens no key of the repository")]
    WrongPassword,
    /// There is no repository at the path but other data is there.
    #[error(
        "{location} holds other data ({example}, ...) but no Stowaway repository: refusing to \
         create one there; choose another spec.path"
    )]
    PathNotEmpty {
        /// The location.
        location: String,
        /// One of the objects found.
        example: String,
    },
    /// Anything else from the repository or the storage.
    #[error("{0}")]
    Repository(#[from] stowaway_repository::Error),
}

/// Opens the repository on `storage` with `password`, creating it when there is none; the
/// flag is whether it was created now. A path holding other data is refused.
pub async fn open_or_init(
    storage: &Storage,
    password: &Password,
) -> Result<(Repository, bool), RepositoryError> {
    let map = |e| match e {
        stowaway_repository::Error::WrongPassword => RepositoryError::WrongPassword,
        other => RepositoryError::Repository(other),
    };
    match Repository::open(storage.clone(), password.expose()).await {
        Ok(repo) => return Ok((repo, false)),
        Err(stowaway_repository::Error::NotARepository { .. }) => {}
        Err(e) => return Err(map(e)),
    }
    let objects = storage
        .list("")
        .await
        .map_err(|e| RepositoryError::Repository(e.into()))?;
    if let Some(other) = objects
        .iter()
        .find(|o| !INIT_LEFTOVERS.iter().any(|p| o.key.starts_with(p)))
    {
        return Err(RepositoryError::PathNotEmpty {
            location: storage.describe(),
            example: other.key.clone(),
        });
    }
    match Repository::init(storage.clone(), password.expose(), InitOptions::default()).await {
        Ok(repo) => Ok((repo, true)),
        // Someone else created it in the meantime.
        Err(stowaway_repository::Error::AlreadyInitialized) => {
            Repository::open(storage.clone(), password.expose())
                .await
                .map(|repo| (repo, false))
                .map_err(map)
        }
        Err(e) => Err(map(e)),
    }
}

/// One snapshot found in a repository's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSnapshot {
    /// Its id, 64 hex characters.
    pub id: String,
    /// When it was taken.
    pub time: jiff::Timestamp,
    /// Logical size (sum of its components).
    pub size: u64,
    /// Host that took it.
    pub hostname: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The BackupSession that wrote it, if one did.
    pub session: Option<String>,
    /// Name of the addon that wrote it (empty when not recorded).
    pub addon: String,
    /// That addon's version.
    pub addon_version: String,
    /// Digest of that addon's component.
    pub addon_digest: String,
    /// Its components, in the order of the snapshot.
    pub components: Vec<DataComponent>,
}

/// One component of a [`DataSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataComponent {
    /// Component name.
    pub name: String,
    /// A file tree (`true`) or a byte stream.
    pub tree: bool,
    /// Media type.
    pub media_type: String,
    /// Logical size.
    pub size: u64,
}

/// What a Repository status shows of the repository's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryFacts {
    /// Its snapshots, oldest first.
    pub snapshots: Vec<DataSnapshot>,
    /// Bytes stored under the repository's path (every object: packs, index, snapshots,
    /// keys).
    pub stored_bytes: u64,
}

/// Reads the snapshots of an opened repository and the bytes stored under its path.
pub async fn repository_facts(
    repo: &Repository,
) -> Result<RepositoryFacts, stowaway_repository::Error> {
    let mut snapshots: Vec<DataSnapshot> = repo
        .snapshots()
        .await?
        .into_iter()
        .map(|s| DataSnapshot {
            id: s.id.to_hex(),
            time: s.time,
            size: s.components.iter().map(|c| c.size).sum(),
            hostname: s.hostname,
            tags: s.tags,
            session: s.session,
            addon: s.addon.name,
            addon_version: s.addon.version,
            addon_digest: s.addon.digest,
            components: s
                .components
                .into_iter()
                .map(|c| DataComponent {
                    tree: c.kind == stowaway_repository::ComponentKind::Tree,
                    name: c.name,
                    media_type: c.media_type,
                    size: c.size,
                })
                .collect(),
        })
        .collect();
    snapshots.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    let stored_bytes = repo.storage().list("").await?.iter().map(|o| o.size).sum();
    Ok(RepositoryFacts {
        snapshots,
        stored_bytes,
    })
}

/// Deletes every object of `storage` (everything under its prefix); returns how many.
/// Objects that vanish meanwhile count as deleted.
pub async fn wipe(storage: &Storage) -> Result<usize, stowaway_storage::Error> {
    let objects = storage.list("").await?;
    for object in &objects {
        match storage.delete(&object.key).await {
            Ok(()) | Err(stowaway_storage::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    tracing::info!(location = %storage.describe(), objects = objects.len(), "wiped out");
    Ok(objects.len())
}

#[cfg(test)]
mod tests {
    use stowaway_api::backup_storage::{AzureSpec, Backend, GcsSpec, LocalSpec, S3Spec};

    use std::path::Path;

    use super::*;

    fn s3_spec(secret: Option<&str>) -> BackupStorageSpec {
        BackupStorageSpec {
            storage: Backend {
                provider: ApiProvider::S3,
                s3: Some(S3Spec {
                    endpoint: "https://minio.example:9000/".into(),
                    bucket: "backups".into(),
                    prefix: Some("team-a".into()),
                    region: Some("eu-west-1".into()),
                    secret_name: secret.map(str::to_owned),
                    max_connections: Some(4),
                    insecure_tls: Some(true),
                }),
                ..Backend::default()
            },
            ..BackupStorageSpec::default()
        }
    }

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn s3_spec_and_secret_become_a_storage_config() {
        let secret = data(&[
            (AWS_ACCESS_KEY_ID, "AKID"),
            (AWS_SECRET_ACCESS_KEY, "s3cr3t"),
            (CA_CERT_DATA, "-----BEGIN CERTIFICATE-----"),
            ("UNRELATED", "x"),
        ]);
        let access = storage_access(&s3_spec(Some("creds")), "ns", Some(&secret)).expect("access");
        let s3 = access.config.s3.as_ref().expect("s3");
        assert_eq!(s3.endpoint.as_deref(), Some("https://minio.example:9000"));
        assert_eq!(s3.prefix, "team-a");
        assert_eq!(s3.max_connections, Some(4));
        assert!(s3.insecure_tls);
        let keys: Vec<_> = access.credentials.keys().collect();
        assert_eq!(
            keys,
            [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, CA_CERT_DATA]
        );
        let debug = format!("{access:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn secret_problems_name_the_secret_and_the_key() {
        let cases: [(Option<SecretData>, &str); 4] = [
            (None, "Secret ns/creds (backend credentials) not found"),
            (
                Some(data(&[(AWS_ACCESS_KEY_ID, "AKID")])),
                "Secret ns/creds has no key AWS_SECRET_ACCESS_KEY",
            ),
            (
                Some(data(&[
                    (AWS_ACCESS_KEY_ID, "AKID"),
                    (AWS_SECRET_ACCESS_KEY, " \n"),
                ])),
                "Secret ns/creds: key AWS_SECRET_ACCESS_KEY is empty",
            ),
            (
                Some(BTreeMap::from([
                    (AWS_ACCESS_KEY_ID.to_owned(), vec![0xff, 0xfe]),
                    (AWS_SECRET_ACCESS_KEY.to_owned(), b"x".to_vec()),
                ])),
                "Secret ns/creds: key AWS_ACCESS_KEY_ID is not UTF-8",
            ),
        ];
        for (secret, message) in cases {
            let err =
                storage_access(&s3_spec(Some("creds")), "ns", secret.as_ref()).expect_err(message);
            assert!(err.is_secret_problem(), "{err}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn no_secret_name_means_ambient_credentials() {
        let access = storage_access(&s3_spec(None), "ns", None).expect("access");
        assert!(access.credentials.is_empty());
        let access = storage_access(&s3_spec(Some("")), "ns", None).expect("empty name");
        assert!(access.credentials.is_empty());
    }

    #[test]
    fn gcs_and_azure_keys() {
        let gcs = BackupStorageSpec {
            storage: Backend {
                provider: ApiProvider::Gcs,
                gcs: Some(GcsSpec {
                    bucket: "b".into(),
                    secret_name: Some("g".into()),
                    ..GcsSpec::default()
                }),
                ..Backend::default()
            },
            ..BackupStorageSpec::default()
        };
        let err = storage_access(&gcs, "ns", Some(&data(&[(GOOGLE_PROJECT_ID, "p")])))
            .expect_err("no key");
        assert_eq!(
            err.to_string(),
            "Secret ns/g has no key GOOGLE_SERVICE_ACCOUNT_JSON_KEY"
        );
        let access = storage_access(
            &gcs,
            "ns",
            Some(&data(&[
                (GOOGLE_PROJECT_ID, "p"),
                (GOOGLE_SERVICE_ACCOUNT_JSON_KEY, "{}"),
            ])),
        )
        .expect("gcs");
        assert_eq!(access.credentials.keys().count(), 2);

        let azure = BackupStorageSpec {
            storage: Backend {
                provider: ApiProvider::Azure,
                azure: Some(AzureSpec {
                    storage_account: "acct".into(),
                    container: "c".into(),
                    prefix: Some("p".into()),
                    secret_name: Some("az".into()),
                    ..AzureSpec::default()
                }),
                ..Backend::default()
            },
            ..BackupStorageSpec::default()
        };
        let err = storage_access(&azure, "ns", Some(&SecretData::new())).expect_err("no key");
        assert_eq!(err.to_string(), "Secret ns/az has no key AZURE_ACCOUNT_KEY");
        let access = storage_access(&azure, "ns", Some(&data(&[(AZURE_ACCOUNT_KEY, "a2V5")])))
            .expect("azure");
        assert_eq!(
            access.config.azure.as_ref().map(|a| a.prefix.as_str()),
            Some("p")
        );
    }

    #[test]
    fn settings_are_checked() {
        let no_block = BackupStorageSpec {
            storage: Backend {
                provider: ApiProvider::S3,
                ..Backend::default()
            },
            ..BackupStorageSpec::default()
        };
        let err = storage_access(&no_block, "ns", None).expect_err("no block");
        assert_eq!(
            err.to_string(),
            "spec.storage.provider is s3 but spec.storage.s3 is not set"
        );
        assert!(!err.is_secret_problem());
        let mut bad = s3_spec(None);
        if let Some(s3) = bad.storage.s3.as_mut() {
            s3.max_connections = Some(0);
        }
        let err = storage_access(&bad, "ns", None).expect_err("zero connections");
        assert!(
            err.to_string()
                .starts_with("spec.storage.s3.maxConnections: 0 is not between 1"),
            "{err}"
        );
    }

    #[test]
    fn passwords() {
        let ok = repository_password("ns", "enc", Some(&data(&[(RESTIC_PASSWORD, "pw\n")])))
            .expect("password");
        assert_eq!(ok.expose(), "pw");
        assert_eq!(format!("{ok:?}"), "Password(..)");
        let alt = repository_password("ns", "enc", Some(&data(&[(PASSWORD, "pw2")])))
            .expect("password key");
        assert_eq!(alt.expose(), "pw2");
        let err = repository_password("ns", "enc", None).expect_err("missing secret");
        assert_eq!(
            err.to_string(),
            "Secret ns/enc (repository password) not found"
        );
        let err = repository_password("ns", "enc", Some(&data(&[("other", "x")])))
            .expect_err("missing key");
        assert_eq!(
            err.to_string(),
            "Secret ns/enc has no key RESTIC_PASSWORD (or password)"
        );
        let reference = ObjectReference {
            namespace: None,
            name: "enc".into(),
        };
        assert_eq!(
            encryption_secret(Some(&reference), "apps").expect("ref"),
            ("apps".to_owned(), "enc".to_owned())
        );
        assert!(matches!(
            encryption_secret(None, "apps"),
            Err(AccessError::NoEncryptionSecret)
        ));
    }

    #[tokio::test]
    async fn local_storage_is_opened_only_where_it_is_mounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = |mount: &Path| BackupStorageSpec {
            storage: Backend {
                provider: ApiProvider::Local,
                local: Some(LocalSpec {
                    mount_path: mount.display().to_string(),
                    sub_path: Some("team".into()),
                    ..LocalSpec::default()
                }),
                ..Backend::default()
            },
            ..BackupStorageSpec::default()
        };
        let missing = dir.path().join("not-mounted");
        let err = storage_access(&spec(&missing), "ns", None)
            .expect("pure part")
            .open()
            .expect_err("not mounted");
        assert!(matches!(err, AccessError::LocalPathNotMounted { .. }));
        assert!(err.to_string().contains("not supported yet"), "{err}");
        assert!(!missing.exists(), "nothing is created outside a mount");

        let access = storage_access(&spec(dir.path()), "ns", None).expect("access");
        assert_eq!(access.local_path(), Some(dir.path().join("team")));
        let storage = access.open().expect("open");
        ensure_marker(&storage, b"first\n".to_vec())
            .await
            .expect("marker");
        ensure_marker(&storage, b"second\n".to_vec())
            .await
            .expect("marker again");
        let on_disk = std::fs::read(dir.path().join("team").join(MARKER)).expect("read");
        assert_eq!(on_disk, b"first\n", "an existing marker is kept");
        assert_eq!(wipe(&storage).await.expect("wipe"), 1);
        assert!(storage.list("").await.expect("list").is_empty());
    }

    #[test]
    fn credentials_go_to_the_storage_in_memory() {
        let secret = data(&[(AWS_ACCESS_KEY_ID, "AKID"), (AWS_SECRET_ACCESS_KEY, "s")]);
        let access = storage_access(&s3_spec(Some("creds")), "ns", Some(&secret)).expect("ok");
        // Opening an S3 storage with credentials builds the client without network I/O.
        let storage = access.open().expect("open s3");
        assert!(storage.describe().contains("s3://backups"), "{storage:?}");
        // A key without its partner is refused by the storage layer, naming it.
        let half = data(&[(AWS_ACCESS_KEY_ID, "AKID")]);
        let access = storage_access(&s3_spec(Some("creds")), "ns", Some(&half));
        if let Ok(access) = access {
            let err = access.open().expect_err("half credentials");
            assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        }
    }
}
