//! [`Storage`]: one object store plus a key prefix, with retries, limits and safety modes.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
};

use crate::backend::{self, Backend};
use crate::bandwidth::TokenBucket;
use crate::config::{
    LockMode, MultipartPolicy, ObjectLockConfig, RetryPolicy, StorageConfig, StorageOptions,
};
use crate::error::{Error, Result};
use crate::object_lock::{LockClient, ObjectRetention, Retention};
use crate::retry::retry;

/// Keys under this directory stay writable and deletable in append-only mode and never get
/// an object lock retention.
pub const LOCKS_PREFIX: &str = "locks/";

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the storage prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time as reported by the backend.
    pub modified: std::time::SystemTime,
}

/// How operations behave; shared by clones of a [`Storage`].
#[derive(Clone, Default)]
struct Policy {
    retry: RetryPolicy,
    append_only: bool,
    multipart: MultipartPolicy,
    upload: Option<Arc<TokenBucket>>,
    download: Option<Arc<TokenBucket>>,
    lock: Option<Arc<LockClient>>,
}

/// An object store plus a key prefix. Cheap to clone.
///
/// Every operation retries transient failures ([`RetryPolicy`]); writes above the
/// multipart threshold are uploaded in parts; optional bandwidth limits apply to all
/// transfers of the storage and its clones. In append-only mode, deletes and overwrites
/// outside `locks/` fail with [`Error::AppendOnly`].
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Prefix without leading or trailing `/`; empty for none.
    prefix: String,
    description: String,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.describe())
            .field("append_only", &self.policy.append_only)
            .finish_non_exhaustive()
    }
}

fn is_lock_key(key: &str) -> bool {
    key.starts_with(LOCKS_PREFIX)
}

impl Storage {
    /// Wraps an existing object store; `prefix` is prepended to every key. Default options
    /// (retries on, no limits, not append-only).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, description: impl Into<String>) -> Self {
        Storage {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            description: description.into(),
            policy: Arc::new(Policy::default()),
        }
    }

    /// Opens storage from a URL with default options; see [`Storage::from_url_with`].
    pub fn from_url(url: &str) -> Result<Storage> {
        Storage::from_url_with(url, &StorageOptions::default())
    }

    /// Opens storage from a URL (a path, `file:///path`, `memory://`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `azblob://container/prefix`, see [`StorageConfig::from_url`]).
    /// Unknown schemes fail with [`Error::UnsupportedUrl`].
    pub fn from_url_with(url: &str, options: &StorageOptions) -> Result<Storage> {
        Storage::from_config(&StorageConfig::from_url(url)?, options)
    }

    /// Opens the storage a configuration describes. Nothing is contacted yet: a wrong
    /// endpoint or credentials show up at the first operation.
    ///
    /// In builds with the `test-support` feature, a fault configuration in the
    /// environment variable `STOWAWAY_TEST_FAULTS` wraps the store in
    /// [`faults::FaultyStore`](crate::faults::FaultyStore).
    pub fn from_config(config: &StorageConfig, options: &StorageOptions) -> Result<Storage> {
        let backend = backend::build(config, options)?;
        Storage::with_test_faults(Storage::from_backend(backend, options))
    }

    /// [`Storage::from_config`] with the credentials in memory (such as a Secret read from
    /// the Kubernetes API) instead of the files of `options.credentials`.
    pub fn from_config_with_credentials(
        config: &StorageConfig,
        options: &StorageOptions,
        credentials: &crate::Credentials,
    ) -> Result<Storage> {
        let backend = backend::build_with(config, options, credentials)?;
        Storage::with_test_faults(Storage::from_backend(backend, options))
    }

    /// In builds with `test-support`, wraps the store per `STOWAWAY_TEST_FAULTS`.
    fn with_test_faults(storage: Storage) -> Result<Storage> {
        #[cfg(any(test, feature = "test-support"))]
        let storage = match std::env::var(crate::faults::FAULTS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => {
                let faults: crate::faults::FaultConfig = spec
                    .parse()
                    .map_err(|e| Error::config(format!("{}: {e}", crate::faults::FAULTS_ENV)))?;
                tracing::warn!(?faults, "injecting storage faults");
                storage.with_faults(faults).0
            }
            _ => storage,
        };
        Ok(storage)
    }

    pub(crate) fn from_backend(backend: Backend, options: &StorageOptions) -> Storage {
        let policy = Policy {
            retry: options.retry,
            append_only: options.append_only,
            multipart: options.multipart,
            upload: options.limit_upload.map(|r| Arc::new(TokenBucket::new(r))),
            download: options
                .limit_download
                .map(|r| Arc::new(TokenBucket::new(r))),
            lock: backend.lock.map(Arc::new),
        };
        Storage {
            store: backend.store,
            prefix: backend.prefix,
            description: backend.description,
            policy: Arc::new(policy),
        }
    }

    /// A fresh, empty in-memory store (for tests and dry runs).
    pub fn memory() -> Storage {
        Storage::new(Arc::new(InMemory::new()), "", "memory://")
    }

    /// A local directory, created if missing. Writes are staged in a temporary file and
    /// renamed into place (atomic), with fsync of the file and its directory.
    pub fn local(path: impl AsRef<FsPath>) -> Result<Storage> {
        Storage::from_config(
            &StorageConfig::local(path.as_ref()),
            &StorageOptions::default(),
        )
    }

    fn with_policy(self, change: impl FnOnce(&mut Policy)) -> Storage {
        let mut policy = (*self.policy).clone();
        change(&mut policy);
        Storage {
            policy: Arc::new(policy),
            ..self
        }
    }

    /// The same storage with another retry policy.
    pub fn with_retry(self, retry: RetryPolicy) -> Storage {
        self.with_policy(|p| p.retry = retry)
    }

    /// The same storage, append-only or not.
    pub fn with_append_only(self, append_only: bool) -> Storage {
        self.with_policy(|p| p.append_only = append_only)
    }

    /// The same storage with another multipart policy.
    pub fn with_multipart(self, multipart: MultipartPolicy) -> Storage {
        self.with_policy(|p| p.multipart = multipart)
    }

    /// The same storage with bandwidth limits in bytes per second (`None`: unlimited).
    pub fn with_bandwidth_limits(self, upload: Option<u64>, download: Option<u64>) -> Storage {
        self.with_policy(|p| {
            p.upload = upload.map(|r| Arc::new(TokenBucket::new(r)));
            p.download = download.map(|r| Arc::new(TokenBucket::new(r)));
        })
    }

    /// The same storage on a fault-injecting wrapper of its store, and the wrapper's
    /// counters (feature `test-support`).
    #[cfg(any(test, feature = "test-support"))]
    pub fn with_faults(
        self,
        config: crate::faults::FaultConfig,
    ) -> (Storage, crate::faults::FaultCounters) {
        let (store, counters) = crate::faults::FaultyStore::new(Arc::clone(&self.store), config);
        let storage = Storage {
            store: Arc::new(store),
            ..self
        };
        (storage, counters)
    }

    /// A view of the directory `path` inside this storage, sharing its store, options and
    /// limits: a KubeStash Repository's `path` inside its BackupStorage. `path` is
    /// `/`-separated and relative; empty, `.` and `..` segments are refused.
    pub fn sub(&self, path: &str) -> Result<Storage> {
        let path = path.trim_matches('/');
        if path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('#'))
        {
            return Err(Error::config(format!(
                "sub-directory {path:?}: expected a relative path without empty, `.` or `..` parts"
            )));
        }
        Ok(Storage {
            prefix: self.full_key(path),
            ..self.clone()
        })
    }

    /// Whether deletes and overwrites outside `locks/` are refused.
    pub fn is_append_only(&self) -> bool {
        self.policy.append_only
    }

    /// The object lock retention given to new files, if configured.
    pub fn object_lock(&self) -> Option<ObjectLockConfig> {
        self.policy.lock.as_ref().map(|l| l.config)
    }

    /// A human-readable location for messages; never contains credentials.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            self.description.clone()
        } else if let Some((base, at)) = self.description.split_once(" at ") {
            format!("{base}/{} at {at}", self.prefix)
        } else if let Some((base, rest)) = self.description.split_once(" in ") {
            format!("{base}/{} in {rest}", self.prefix)
        } else if self.description.ends_with('/') {
            format!("{}{}", self.description, self.prefix)
        } else {
            format!("{}/{}", self.description, self.prefix)
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{}", self.prefix, key)
        }
    }

    fn path(&self, key: &str) -> Result<Path> {
        Path::parse(self.full_key(key)).map_err(|source| Error::Permanent {
            key: key.to_owned(),
            source: source.into(),
        })
    }

    fn relative_key(&self, location: &Path) -> String {
        let full = location.as_ref();
        if self.prefix.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(&self.prefix)
                .map(|k| k.trim_start_matches('/'))
                .unwrap_or(full)
                .to_owned()
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        retry(&self.policy.retry, "get", key, |_| self.fetch(key, &path)).await
    }

    async fn fetch(&self, key: &str, path: &Path) -> Result<Bytes> {
        let map = |e| Error::from_object_store(key, e);
        let result = self
            .store
            .get_opts(path, GetOptions::default())
            .await
            .map_err(map)?;
        let Some(bucket) = &self.policy.download else {
            return result.bytes().await.map_err(map);
        };
        let mut out = BytesMut::with_capacity(usize::try_from(result.meta.size).unwrap_or(0));
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.try_next().await.map_err(map)? {
            bucket.take(chunk.len() as u64).await;
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Reads the byte range `range` of an object.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        retry(&self.policy.retry, "get_range", key, |_| async {
            let bytes = self
                .store
                .get_range(&path, range.clone())
                .await
                .map_err(|e| Error::from_object_store(key, e))?;
            if let Some(bucket) = &self.policy.download {
                bucket.take(bytes.len() as u64).await;
            }
            Ok(bytes)
        })
        .await
    }

    /// Reads an object's metadata.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.path(key)?;
        let meta = retry(&self.policy.retry, "head", key, |_| async {
            self.store
                .head(&path)
                .await
                .map_err(|e| Error::from_object_store(key, e))
        })
        .await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: meta.size,
            modified: meta.last_modified.into(),
        })
    }

    /// Writes an object atomically, replacing any existing one.
    ///
    /// In append-only mode, a key outside `locks/` may only be written if it does not exist
    /// yet or already holds exactly `data` (content-addressed files are written again after
    /// an interrupted upload); anything else fails with [`Error::AppendOnly`].
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        if self.policy.append_only && !is_lock_key(key) {
            return self.put_append_only(key, data).await;
        }
        let path = self.path(key)?;
        retry(&self.policy.retry, "put", key, |_| {
            self.upload(key, &path, data.clone(), PutMode::Overwrite)
        })
        .await
    }

    /// Writes an object atomically only if it does not exist yet; otherwise fails with
    /// [`Error::AlreadyExists`].
    ///
    /// When an attempt fails in a way that may hide a successful write (a lost response)
    /// and the retry finds the object, the write counts as done if the stored bytes equal
    /// `data`.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        retry(&self.policy.retry, "put_new", key, |attempt| {
            let data = data.clone();
            let path = &path;
            async move {
                match self.upload(key, path, data.clone(), PutMode::Create).await {
                    Err(Error::AlreadyExists { .. }) if attempt > 1 => {
                        if self.holds(key, path, &data).await? {
                            tracing::debug!(key, "put_new: earlier attempt had succeeded");
                            Ok(())
                        } else {
                            Err(Error::AlreadyExists {
                                key: key.to_owned(),
                            })
                        }
                    }
                    other => other,
                }
            }
        })
        .await
    }

    async fn put_append_only(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let refuse = || Error::AppendOnly {
            key: key.to_owned(),
            operation: "overwrite",
        };
        retry(&self.policy.retry, "put", key, |_| {
            let data = data.clone();
            let path = &path;
            async move {
                if (data.len() as u64) > self.policy.multipart.threshold {
                    // A multipart upload cannot be create-only: look first.
                    match self.store.head(path).await {
                        Ok(_) => {
                            return if self.holds(key, path, &data).await? {
                                Ok(())
                            } else {
                                Err(refuse())
                            };
                        }
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(Error::from_object_store(key, e)),
                    }
                    return self
                        .upload(key, path, data.clone(), PutMode::Overwrite)
                        .await;
                }
                match self.upload(key, path, data.clone(), PutMode::Create).await {
                    Err(Error::AlreadyExists { .. }) => {
                        if self.holds(key, path, &data).await? {
                            Ok(())
                        } else {
                            Err(refuse())
                        }
                    }
                    other => other,
                }
            }
        })
        .await
    }

    /// Whether the object at `path` holds exactly `data`.
    async fn holds(&self, key: &str, path: &Path, data: &Bytes) -> Result<bool> {
        match self.fetch(key, path).await {
            Ok(stored) => Ok(stored == *data),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn retention_for(&self, key: &str) -> Option<Retention> {
        let lock = self.policy.lock.as_ref()?;
        (!is_lock_key(key)).then(|| Retention::from_now(&lock.config))
    }

    /// One upload attempt: a single request, or a multipart upload above the threshold.
    async fn upload(&self, key: &str, path: &Path, data: Bytes, mode: PutMode) -> Result<()> {
        let map = |e| Error::from_object_store(key, e);
        let retention = self.retention_for(key);
        let multipart = self.policy.multipart;
        if matches!(mode, PutMode::Overwrite) && (data.len() as u64) > multipart.threshold {
            self.upload_parts(path, data, multipart, retention.clone())
                .await
                .map_err(map)?;
            // The retention went with CreateMultipartUpload; some S3-compatible servers
            // (moto among them) ignore it there, so set it on the result as well.
            if let (Some(retention), Some(lock)) = (retention, &self.policy.lock) {
                lock.put_retention(
                    key,
                    path.as_ref(),
                    retention.mode,
                    retention.until_timestamp(),
                )
                .await?;
            }
            return Ok(());
        }
        if let Some(bucket) = &self.policy.upload {
            bucket.take(data.len() as u64).await;
        }
        let mut options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        if let Some(retention) = retention {
            options.extensions.insert(retention.with_body(&data));
        }
        tracing::trace!(key, size = data.len(), "put");
        self.store
            .put_opts(path, PutPayload::from(data), options)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn upload_parts(
        &self,
        path: &Path,
        data: Bytes,
        multipart: MultipartPolicy,
        retention: Option<Retention>,
    ) -> object_store::Result<()> {
        let mut options = PutMultipartOptions::default();
        if let Some(retention) = retention {
            options.extensions.insert(retention);
        }
        let part_size = usize::try_from(multipart.part_size.max(1)).unwrap_or(usize::MAX);
        tracing::trace!(%path, size = data.len(), part_size, "multipart put");
        let mut upload = self.store.put_multipart_opts(path, options).await?;
        let parts: Vec<Bytes> = (0..data.len())
            .step_by(part_size)
            .map(|start| data.slice(start..data.len().min(start + part_size)))
            .collect();
        let sent = futures::stream::iter(parts)
            .map(|part| {
                let len = part.len() as u64;
                let request = upload.put_part(PutPayload::from(part));
                let bucket = self.policy.upload.clone();
                async move {
                    if let Some(bucket) = bucket {
                        bucket.take(len).await;
                    }
                    request.await
                }
            })
            .buffer_unordered(multipart.concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await;
        let result = match sent {
            Ok(_) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(%path, error = %abort, "aborting a failed multipart upload");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Deletes an object; deleting a missing object fails with [`Error::NotFound`] on
    /// backends that report it and succeeds on the others. Refused with
    /// [`Error::AppendOnly`] outside `locks/` in append-only mode.
    ///
    /// On an S3 bucket with object lock this only hides the object behind a delete marker;
    /// the retained version stays until [`Storage::delete_version`] after its date.
    pub async fn delete(&self, key: &str) -> Result<()> {
        if self.policy.append_only && !is_lock_key(key) {
            return Err(Error::AppendOnly {
                key: key.to_owned(),
                operation: "delete",
            });
        }
        let path = self.path(key)?;
        tracing::trace!(key, "delete");
        let path = &path;
        retry(&self.policy.retry, "delete", key, |attempt| async move {
            match self.store.delete(path).await {
                // A retried delete may find the object gone by the earlier attempt.
                Err(object_store::Error::NotFound { .. }) if attempt > 1 => Ok(()),
                other => other.map_err(|e| Error::from_object_store(key, e)),
            }
        })
        .await
    }

    /// Lists all objects under `prefix` (recursively), with keys relative to the storage
    /// prefix. An empty `prefix` lists everything. Staging files of interrupted writes
    /// (names containing `#`) are never returned.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = prefix.trim_matches('/');
        let path = if prefix.is_empty() && self.prefix.is_empty() {
            None
        } else if prefix.is_empty() {
            Some(self.path("")?)
        } else {
            Some(self.path(prefix)?)
        };
        let metas: Vec<_> = retry(&self.policy.retry, "list", prefix, |_| async {
            self.store
                .list(path.as_ref())
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| Error::from_object_store(prefix, e))
        })
        .await?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|meta| ObjectInfo {
                key: self.relative_key(&meta.location),
                size: meta.size,
                modified: meta.last_modified.into(),
            })
            .filter(|info| !info.key.contains('#'))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn lock_client(&self, operation: &'static str) -> Result<&LockClient> {
        self.policy
            .lock
            .as_deref()
            .ok_or_else(|| Error::Unsupported {
                operation,
                backend: format!("{} (no S3 object lock configured)", self.describe()),
            })
    }

    /// The object lock retention of an object's current version (S3 with object lock).
    pub async fn retention(&self, key: &str) -> Result<ObjectRetention> {
        let lock = self.lock_client("reading the retention")?;
        let path = self.full_key(key);
        retry(&self.policy.retry, "retention", key, |_| {
            lock.retention(key, &path)
        })
        .await
    }

    /// Extends the retention of an object's current version to at least `until`, in its
    /// current mode (else the configured one). A retention already reaching `until` is
    /// left as it is: retentions are never shortened.
    pub async fn extend_retention(&self, key: &str, until: jiff::Timestamp) -> Result<()> {
        let lock = self.lock_client("extending the retention")?;
        let path = self.full_key(key);
        let current = self.retention(key).await?;
        if current.retain_until.is_some_and(|t| t >= until) {
            return Ok(());
        }
        let mode: LockMode = current.mode.unwrap_or(lock.config.mode);
        tracing::debug!(key, %until, mode = mode.as_str(), "extending retention");
        retry(&self.policy.retry, "extend_retention", key, |_| {
            lock.put_retention(key, &path, mode, until)
        })
        .await
    }

    /// Deletes one version of an object for good (S3 with object lock; refused by S3 while
    /// the version is retained, and by append-only mode outside `locks/`).
    pub async fn delete_version(&self, key: &str, version_id: &str) -> Result<()> {
        if self.policy.append_only && !is_lock_key(key) {
            return Err(Error::AppendOnly {
                key: key.to_owned(),
                operation: "delete",
            });
        }
        let lock = self.lock_client("deleting a version")?;
        let path = self.full_key(key);
        retry(&self.policy.retry, "delete_version", key, |_| {
            lock.delete_version(key, &path, version_id)
        })
        .await
    }
}
