//! Tree blobs: one JSON document per directory, and stream chunk lists.

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, EntryKind, Time};
use crate::id::BlobId;

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_time(t: &Time) -> bool {
    t.is_zero()
}

/// One node of a directory: the JSON form of an entry plus its content references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (one path segment).
    pub name: String,
    /// Kind.
    pub kind: EntryKind,
    /// Permission and type bits.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Owner.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    /// Group.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    /// Content size.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Modification time.
    #[serde(default, skip_serializing_if = "is_zero_time")]
    pub mtime: Time,
    /// Status change time.
    #[serde(default, skip_serializing_if = "is_zero_time")]
    pub ctime: Time,
    /// Access time.
    #[serde(default, skip_serializing_if = "is_zero_time")]
    pub atime: Time,
    /// Inode number.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    /// Device of the source file system.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// Link count.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub nlink: u64,
    /// Device number.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub rdev: u64,
    /// Symlink text or hard-link target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Content chunks of a file, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
}

impl Node {
    /// The node for an entry (no content yet); `name` is the last path segment.
    pub fn from_entry(entry: &Entry, name: &str) -> Node {
        Node {
            name: name.to_owned(),
            kind: entry.kind,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size: entry.size,
            mtime: entry.mtime,
            ctime: entry.ctime,
            atime: entry.atime,
            inode: entry.inode,
            device: entry.device,
            nlink: entry.nlink,
            rdev: entry.rdev,
            link_target: entry.link_target.clone(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// The entry for this node at `path`.
    pub(crate) fn to_entry(&self, path: String) -> Entry {
        Entry {
            path,
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
            atime: self.atime,
            inode: self.inode,
            device: self.device,
            nlink: self.nlink,
            rdev: self.rdev,
            link_target: self.link_target.clone(),
        }
    }
}

/// A directory: its nodes sorted by name (byte order), names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The directory's entries.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The node with this name (binary search; nodes are sorted).
    pub fn find(&self, name: &str) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }
}

/// The content list of a stream component (a tree-type blob).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// Data blob ids in stream order.
    pub chunks: Vec<BlobId>,
}

/// Parses the plaintext of tree blob `id`.
pub(crate) fn parse_tree(id: &BlobId, bytes: &[u8]) -> crate::error::Result<Tree> {
    serde_json::from_slice(bytes)
        .map_err(|e| crate::error::Error::corrupt(format!("tree blob {id}"), e))
}
