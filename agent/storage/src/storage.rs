//! [`Storage`]: one object store plus a key prefix.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

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

/// An object store plus a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Prefix without leading or trailing `/`; empty for none.
    prefix: String,
    description: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.description)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Wraps an existing object store; `prefix` is prepended to every key.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, description: impl Into<String>) -> Self {
        Storage {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            description: description.into(),
        }
    }

    /// Opens storage from a URL: a plain path or `file:///path` (local directory, created
    /// if missing) or `memory://` (a fresh in-memory store). Other schemes fail with
    /// [`Error::UnsupportedUrl`].
    pub fn from_url(url: &str) -> Result<Storage> {
        let unsupported = || Error::UnsupportedUrl {
            url: url.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Storage::local(url);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let parsed = url::Url::parse(url).map_err(|_| unsupported())?;
                let path = parsed.to_file_path().map_err(|()| unsupported())?;
                Storage::local(path)
            }
            "memory" if rest.trim_matches('/').is_empty() => Ok(Storage::memory()),
            _ => Err(unsupported()),
        }
    }

    /// A fresh, empty in-memory store (for tests and dry runs).
    pub fn memory() -> Storage {
        Storage::new(Arc::new(InMemory::new()), "", "memory://")
    }

    /// A local directory, created if missing. Writes are staged in a temporary file and
    /// renamed into place (atomic), with fsync of the file and its directory.
    pub fn local(path: impl AsRef<FsPath>) -> Result<Storage> {
        let path = path.as_ref();
        let key = path.display().to_string();
        std::fs::create_dir_all(path).map_err(|source| Error::Permanent {
            key: key.clone(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(source),
            },
        })?;
        let fs = LocalFileSystem::new_with_prefix(path)
            .map_err(|source| Error::from_object_store(&key, source))?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Storage::new(Arc::new(fs), "", format!("file://{key}")))
    }

    /// A human-readable location for messages.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            self.description.clone()
        } else if self.description.ends_with('/') {
            format!("{}{}", self.description, self.prefix)
        } else {
            format!("{}/{}", self.description, self.prefix)
        }
    }

    fn path(&self, key: &str) -> Result<Path> {
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{}", self.prefix, key)
        };
        Path::parse(&full).map_err(|source| Error::Permanent {
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
        let map = |e| Error::from_object_store(key, e);
        let result = self.store.get(&path).await.map_err(map)?;
        result.bytes().await.map_err(map)
    }

    /// Reads the byte range `range` of an object.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| Error::from_object_store(key, e))
    }

    /// Reads an object's metadata.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| Error::from_object_store(key, e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: meta.size,
            modified: meta.last_modified.into(),
        })
    }

    /// Writes an object atomically, replacing any existing one.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_with_mode(key, data, PutMode::Overwrite).await
    }

    /// Writes an object atomically only if it does not exist yet; otherwise fails with
    /// [`Error::AlreadyExists`].
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_with_mode(key, data, PutMode::Create).await
    }

    async fn put_with_mode(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let path = self.path(key)?;
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        tracing::trace!(key, size = data.len(), "put");
        self.store
            .put_opts(&path, PutPayload::from(data), options)
            .await
            .map_err(|e| Error::from_object_store(key, e))?;
        Ok(())
    }

    /// Deletes an object; deleting a missing object fails with [`Error::NotFound`] on
    /// backends that report it and succeeds on the others.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        tracing::trace!(key, "delete");
        self.store
            .delete(&path)
            .await
            .map_err(|e| Error::from_object_store(key, e))
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
        let metas: Vec<_> = self
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| Error::from_object_store(prefix, e))?;
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
}
