//! Entries of a tree component as the addon sees them, and path validation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A timestamp: seconds since the Unix epoch plus nanoseconds (`{"s": i64, "ns": u32}`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z (may be negative).
    #[serde(rename = "s", default)]
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    #[serde(rename = "ns", default, skip_serializing_if = "is_zero_u32")]
    pub nanos: u32,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Time {
    /// Whether this is the epoch (omitted in JSON).
    pub fn is_zero(&self) -> bool {
        self.secs == 0 && self.nanos == 0
    }
}

/// The kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (`link_target` is the link text).
    Symlink,
    /// A hard link to an earlier file (`link_target` is that file's path).
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    #[serde(rename = "chardev")]
    CharDev,
    /// A block device.
    #[serde(rename = "blockdev")]
    BlockDev,
    /// A Unix socket.
    Socket,
}

/// One entry of a tree component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative `/`-separated path (`name`, `dir/name`).
    pub path: String,
    /// Kind.
    pub kind: EntryKind,
    /// Permission and type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Content size (files).
    pub size: u64,
    /// Modification time.
    pub mtime: Time,
    /// Status change time.
    pub ctime: Time,
    /// Access time.
    pub atime: Time,
    /// Inode number on the source.
    pub inode: u64,
    /// Device of the source file system.
    pub device: u64,
    /// Link count.
    pub nlink: u64,
    /// Device number (character/block devices).
    pub rdev: u64,
    /// Symlink text or hard-link target path.
    pub link_target: Option<String>,
}

impl Entry {
    /// An entry with all metadata zero.
    pub fn new(path: impl Into<String>, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: Time::default(),
            ctime: Time::default(),
            atime: Time::default(),
            inode: 0,
            device: 0,
            nlink: 0,
            rdev: 0,
            link_target: None,
        }
    }
}

/// Checks one path segment (a node name).
pub(crate) fn validate_name(path: &str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty path segment"
    } else if name == "." || name == ".." {
        "'.' or '..' segment"
    } else if name.contains('/') {
        "name contains '/'"
    } else if name.contains('\0') {
        "name contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::invalid_entry(path, reason))
}

/// Checks a relative path; returns `(parent path, name)` with `""` for the root.
pub(crate) fn split_path(path: &str) -> Result<(&str, &str)> {
    if path.starts_with('/') {
        return Err(Error::invalid_entry(path, "absolute path"));
    }
    if path.contains('\0') {
        return Err(Error::invalid_entry(path, "path contains NUL"));
    }
    for segment in path.split('/') {
        validate_name(path, segment)?;
    }
    Ok(match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    })
}
