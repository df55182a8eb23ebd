//! Snapshot manifests (`snapshots/<id>`), written last.

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, SnapshotId};

/// Directory of snapshot files.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";

/// What was backed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Kind of target (e.g. `pvc`, `postgres`).
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The addon that produced the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonRef {
    /// Addon name.
    pub name: String,
    /// Addon version.
    pub version: String,
    /// Digest of the addon's component.
    pub digest: String,
}

/// Whether a component is a byte stream or a file tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A byte stream (`root` is its chunk-list blob).
    Stream,
    /// A file tree (`root` is its root tree blob).
    Tree,
}

/// One component of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// Component name, unique in the snapshot.
    pub name: String,
    /// Stream or tree.
    pub kind: ComponentKind,
    /// Media type (`application/sql`, `inode/directory`, …).
    pub media_type: String,
    /// Logical size: stream length, or the sum of file sizes of a tree.
    pub size: u64,
    /// Addon-defined attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    /// Chunk-list blob (stream) or root tree blob (tree).
    pub root: BlobId,
}

/// Counters of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupSummary {
    /// Files with no counterpart in the parent snapshot.
    pub files_new: u64,
    /// Files whose content was read again.
    pub files_changed: u64,
    /// Files taken from the parent snapshot unread.
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Data blobs added.
    pub data_blobs_new: u64,
    /// Tree blobs added.
    pub tree_blobs_new: u64,
    /// Logical bytes read.
    pub bytes_processed: u64,
    /// Bytes stored (after compression and encryption) in new blobs.
    pub bytes_added: u64,
    /// Wall-clock duration.
    pub duration_ms: u64,
}

/// A snapshot: the manifest of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The file id (not serialized).
    #[serde(skip)]
    pub id: SnapshotId,
    /// Time of the backup.
    pub time: jiff::Timestamp,
    /// Host that took it.
    pub hostname: String,
    /// User that took it.
    #[serde(default)]
    pub username: String,
    /// What was backed up.
    pub target: Target,
    /// The addon used.
    pub addon: AddonRef,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The snapshot used as parent (files cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// BackupSession name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Components.
    pub components: Vec<ComponentRecord>,
    /// Addon-defined attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    /// Counters.
    #[serde(default)]
    pub summary: BackupSummary,
    /// For a copy made by `copy`: the snapshot it was copied from (the first of a chain of
    /// copies), so that copying again skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
}

impl Snapshot {
    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&ComponentRecord> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The snapshot this one stands for: [`Snapshot::original`] for a copy, else its own id.
    pub fn origin(&self) -> SnapshotId {
        self.original.unwrap_or(self.id)
    }
}

/// What the caller supplies at commit.
#[derive(Debug, Clone, Default)]
pub struct SnapshotMeta {
    /// Time of the backup (default: now at commit).
    pub time: Option<jiff::Timestamp>,
    /// Host name (default: this host).
    pub hostname: Option<String>,
    /// User name (default: this user).
    pub username: Option<String>,
    /// What was backed up.
    pub target: Target,
    /// The addon used.
    pub addon: AddonRef,
    /// Tags.
    pub tags: Vec<String>,
    /// BackupSession name.
    pub session: Option<String>,
    /// Attributes.
    pub attributes: Vec<(String, String)>,
}
