//! [`Repository`]: an opened repository (config, keys, index) on a [`Storage`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use stowaway_storage::Storage;
use tokio::runtime::Handle;

use crate::blob::{BlobType, decode_blob};
use crate::config::{Config, Encryption, InitOptions};
use crate::crypto::{AAD_INDEX, AAD_SNAPSHOT, Crypto, MasterKey, random_bytes};
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, KeyId, RepositoryId, SnapshotId};
use crate::index::{INDEX_DIR, Index, IndexFile};
use crate::key::{KeyFile, open_master_key};
use crate::pack::pack_key;
use crate::sealed;
use crate::snapshot::{SNAPSHOTS_DIR, Snapshot};
use crate::tree::{ChunkList, Tree};

/// Key of the config file.
pub(crate) const CONFIG_KEY: &str = "config";
/// How many files are fetched at once when loading many small files.
const LOAD_CONCURRENCY: usize = 16;

/// An opened repository. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    pub(crate) config: Config,
    pub(crate) crypto: Crypto,
    /// The key file that opened the repository (`None` if unencrypted).
    pub(crate) key_id: Mutex<Option<KeyId>>,
    pub(crate) index: RwLock<Index>,
    pub(crate) index_loaded: AtomicBool,
    pub(crate) handle: Handle,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("storage", &self.inner.storage)
            .field("id", &self.inner.config.id)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a repository. Fails with [`Error::AlreadyInitialized`] if a `config` exists.
    ///
    /// Must be called inside a tokio runtime; its handle runs the background I/O of the
    /// synchronous backup and restore APIs.
    pub async fn init(
        storage: Storage,
        password: &str,
        options: InitOptions,
    ) -> Result<Repository> {
        match storage.head(CONFIG_KEY).await {
            Ok(_) => return Err(Error::AlreadyInitialized),
            Err(stowaway_storage::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut id = [0u8; 32];
        random_bytes(&mut id)?;
        let id = RepositoryId::from_bytes(id);
        let master = MasterKey::random()?;
        let (config, crypto, key_id) = if options.encryption {
            let kdf = options.kdf;
            let password = zeroize::Zeroizing::new(password.to_owned());
            let wrapping_master = master.clone();
            let key_file = tokio::task::spawn_blocking(move || {
                KeyFile::wrap(&wrapping_master, &password, kdf)
            })
            .await
            .map_err(|_| Error::Shutdown)??;
            let key_id = key_file.save(&storage).await?;
            (
                options.to_config(id, None)?,
                Crypto::encrypted(&master)?,
                Some(key_id),
            )
        } else {
            (
                options.to_config(id, Some(master.id))?,
                Crypto::plain(master.id),
                None,
            )
        };
        let json = serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?;
        match storage.put_new(CONFIG_KEY, Bytes::from(json)).await {
            Err(stowaway_storage::Error::AlreadyExists { .. }) => {
                return Err(Error::AlreadyInitialized);
            }
            other => other?,
        }
        tracing::info!(location = %storage.describe(), id = %config.id, encryption = ?config.encryption, "initialized repository");
        Ok(Repository::assemble(storage, config, crypto, key_id))
    }

    /// Opens a repository: reads `config` and unlocks the master key with `password`
    /// (ignored for unencrypted repositories). Must be called inside a tokio runtime.
    pub async fn open(storage: Storage, password: &str) -> Result<Repository> {
        let bytes = match storage.get(CONFIG_KEY).await {
            Ok(b) => b,
            Err(stowaway_storage::Error::NotFound { .. }) => {
                return Err(Error::NotARepository {
                    location: storage.describe(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let config: Config =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("config", e))?;
        config.validate()?;
        let (crypto, key_id) = match (config.encryption, config.id_key) {
            (Encryption::None, Some(id_key)) => (Crypto::plain(id_key), None),
            _ => {
                let (key_id, master) = open_master_key(&storage, password).await?;
                (Crypto::encrypted(&master)?, Some(key_id))
            }
        };
        tracing::debug!(location = %storage.describe(), id = %config.id, "opened repository");
        Ok(Repository::assemble(storage, config, crypto, key_id))
    }

    fn assemble(
        storage: Storage,
        config: Config,
        crypto: Crypto,
        key_id: Option<KeyId>,
    ) -> Repository {
        Repository {
            inner: Arc::new(Inner {
                storage,
                config,
                crypto,
                key_id: Mutex::new(key_id),
                index: RwLock::new(Index::default()),
                index_loaded: AtomicBool::new(false),
                handle: Handle::current(),
            }),
        }
    }

    /// The repository's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(crate) fn crypto(&self) -> &Crypto {
        &self.inner.crypto
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// Read access to the in-memory index (filled by [`Repository::load_index`]).
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether [`Repository::load_index`] has run.
    pub fn index_loaded(&self) -> bool {
        self.inner.index_loaded.load(Ordering::Acquire)
    }

    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.inner
            .index
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Runs `future` on the repository's runtime and waits for it on this thread.
    ///
    /// For the synchronous APIs: never uses `block_on`, so it may be called from a thread
    /// that runs its own runtime, but not from a worker thread of the repository's runtime.
    pub(crate) fn run<T, F>(&self, future: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| Error::Shutdown)?
    }

    /// Reads every index file in effect (concurrently) and replaces the in-memory index.
    ///
    /// Each file is added to the index and dropped as soon as it is decoded, so the peak is
    /// the index plus the files in flight, not the index plus every decoded file. A file
    /// that another file supersedes is known only once both are read: when one was added
    /// (a prune's compaction that is unfinished or running), the index is built again
    /// without the superseded files.
    pub async fn load_index(&self) -> Result<()> {
        let mut skip = HashSet::new();
        loop {
            let mut index = Index::default();
            let mut added = Vec::new();
            let mut supersedes = HashSet::new();
            self.for_each_index_file(&skip, |id, file| {
                supersedes.extend(file.supersedes.iter().copied());
                added.push(id);
                index.add_file(&file);
            })
            .await?;
            if added.iter().any(|id| supersedes.contains(id)) {
                tracing::debug!(
                    superseded = supersedes.len(),
                    "superseded index files were read; loading again without them"
                );
                skip.extend(supersedes);
                continue;
            }
            tracing::debug!(
                files = added.len(),
                blobs = index.len(),
                packs = index.packs().len(),
                heap_bytes = index.heap_bytes(),
                "loaded index"
            );
            *self.index_mut() = index;
            self.inner.index_loaded.store(true, Ordering::Release);
            return Ok(());
        }
    }

    /// Reads and decodes every index file.
    pub(crate) async fn read_index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        let mut files = Vec::new();
        self.for_each_index_file(&HashSet::new(), |id, file| files.push((id, file)))
            .await?;
        Ok(files)
    }

    /// Reads and decodes every index file not in `skip` (concurrently) and hands each to `f`
    /// in the order they arrive.
    pub(crate) async fn for_each_index_file(
        &self,
        skip: &HashSet<IndexId>,
        mut f: impl FnMut(IndexId, IndexFile),
    ) -> Result<()> {
        let listing = self.storage().list(INDEX_DIR).await?;
        // The ids are parsed before the concurrent reads (not in an async filter), which
        // keeps the future `Send` for callers that spawn it.
        let ids: Vec<IndexId> = listing
            .into_iter()
            .filter_map(|info| {
                let name = info.key.rsplit('/').next().unwrap_or_default();
                match name.parse::<IndexId>() {
                    Ok(id) => (!skip.contains(&id)).then_some(id),
                    Err(_) => {
                        tracing::warn!(key = %info.key, "ignoring a file with an invalid name");
                        None
                    }
                }
            })
            .collect();
        let mut files = std::pin::pin!(
            futures::stream::iter(ids)
                .map(|id| async move { self.read_index_file(&id).await.map(|f| (id, f)) })
                .buffer_unordered(LOAD_CONCURRENCY)
        );
        while let Some((id, file)) = files.try_next().await? {
            f(id, file);
        }
        Ok(())
    }

    pub(crate) async fn read_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        let key = format!("{INDEX_DIR}/{id}");
        let bytes = self.storage().get(&key).await?;
        sealed::decode(
            self.crypto(),
            AAD_INDEX,
            id.as_bytes(),
            bytes.to_vec(),
            &key,
        )
    }

    /// Writes an index file; returns its id.
    pub(crate) async fn save_index_file(&self, file: &IndexFile) -> Result<IndexId> {
        let (id, bytes) = sealed::encode(self.crypto(), AAD_INDEX, file)?;
        let id = IndexId::from_bytes(id);
        self.storage()
            .put(&format!("{INDEX_DIR}/{id}"), Bytes::from(bytes))
            .await?;
        tracing::debug!(%id, packs = file.packs.len(), "wrote index file");
        Ok(id)
    }

    /// Writes a snapshot file; returns its id.
    pub(crate) async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let (id, bytes) = sealed::encode(self.crypto(), AAD_SNAPSHOT, snapshot)?;
        let id = SnapshotId::from_bytes(id);
        self.storage()
            .put(&format!("{SNAPSHOTS_DIR}/{id}"), Bytes::from(bytes))
            .await?;
        Ok(id)
    }

    /// Reads one snapshot by full id.
    pub async fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let key = format!("{SNAPSHOTS_DIR}/{id}");
        let bytes = self.storage().get(&key).await?;
        let mut snapshot: Snapshot = sealed::decode(
            self.crypto(),
            AAD_SNAPSHOT,
            id.as_bytes(),
            bytes.to_vec(),
            &key,
        )?;
        snapshot.id = *id;
        Ok(snapshot)
    }

    /// Ids of all snapshot files.
    pub async fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let listing = self.storage().list(SNAPSHOTS_DIR).await?;
        Ok(listing
            .iter()
            .filter_map(|info| {
                let name = info.key.rsplit('/').next().unwrap_or_default();
                let parsed = name.parse::<SnapshotId>().ok();
                if parsed.is_none() {
                    tracing::warn!(key = %info.key, "ignoring a file with an invalid name");
                }
                parsed
            })
            .collect())
    }

    /// All snapshots, sorted by time (then id).
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let ids = self.snapshot_ids().await?;
        let mut snapshots: Vec<Snapshot> = futures::stream::iter(ids)
            .map(|id| async move { self.read_snapshot(&id).await })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(snapshots)
    }

    /// The snapshot for `latest` or an id prefix of at least 4 hex characters.
    pub async fn find_snapshot(&self, spec: &str) -> Result<Snapshot> {
        let not_found = || Error::SnapshotNotFound {
            spec: spec.to_owned(),
        };
        if spec == "latest" {
            return self.snapshots().await?.pop().ok_or_else(not_found);
        }
        let prefix = spec.to_ascii_lowercase();
        if prefix.len() < 4 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let mut matches = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix));
        let id = matches.next().ok_or_else(not_found)?;
        if matches.next().is_some() {
            return Err(Error::AmbiguousSnapshot {
                spec: spec.to_owned(),
            });
        }
        self.read_snapshot(&id).await
    }

    /// Reads, decrypts, decompresses and verifies one blob.
    pub async fn read_blob(&self, id: &BlobId) -> Result<Bytes> {
        let location = self
            .index()
            .get(id)
            .ok_or(Error::BlobNotFound { id: *id })?;
        let stored = self
            .storage()
            .get_range(
                &pack_key(&location.pack),
                u64::from(location.offset)..u64::from(location.offset) + u64::from(location.length),
            )
            .await?;
        let plain = decode_blob(
            self.crypto(),
            location.blob_type,
            id,
            stored.to_vec(),
            location.compressed,
            location.raw_length,
        )
        .map_err(|e| match e {
            Error::Corrupt { what } => Error::Corrupt {
                what: format!("{what} (in pack {})", location.pack),
            },
            other => other,
        })?;
        Ok(Bytes::from(plain))
    }

    async fn read_tree_typed<T: serde::de::DeserializeOwned>(&self, id: &BlobId) -> Result<T> {
        let location = self
            .index()
            .get(id)
            .ok_or(Error::BlobNotFound { id: *id })?;
        if location.blob_type != BlobType::Tree {
            return Err(Error::corrupt(
                format!("blob {id}"),
                "expected a tree blob, found a data blob",
            ));
        }
        let bytes = self.read_blob(id).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(format!("tree blob {id}"), e))
    }

    /// Reads a directory tree blob.
    pub async fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        self.read_tree_typed(id).await
    }

    /// Reads a stream's chunk-list blob.
    pub async fn read_chunk_list(&self, id: &BlobId) -> Result<ChunkList> {
        self.read_tree_typed(id).await
    }

    /// Adds another key file wrapping the master key under `password`.
    pub async fn add_key(&self, password: &str, kdf: crate::KdfParams) -> Result<crate::KeyId> {
        let Some(master) = self.master_key() else {
            return Err(Error::NotEncrypted);
        };
        let password = zeroize::Zeroizing::new(password.to_owned());
        let file = tokio::task::spawn_blocking(move || KeyFile::wrap(&master, &password, kdf))
            .await
            .map_err(|_| Error::Shutdown)??;
        file.save(self.storage()).await
    }

    pub(crate) fn master_key(&self) -> Option<MasterKey> {
        self.inner.crypto.master_key()
    }
}
