//! Conversions between the WIT types and the repository's.

use stowaway_repository as repo;

use crate::bindings::stowaway::addon::types::{
    AddonError, ComponentInfo, ComponentKind, Entry, EntryKind, Timestamp,
};
use crate::job::HostError;

fn time_from_wit(t: Timestamp) -> Result<repo::Time, AddonError> {
    if t.nanoseconds >= 1_000_000_000 {
        return Err(AddonError::InvalidParameter(format!(
            "timestamp nanoseconds {} out of range",
            t.nanoseconds
        )));
    }
    Ok(repo::Time {
        secs: t.seconds,
        nanos: t.nanoseconds,
    })
}

fn time_to_wit(t: repo::Time) -> Timestamp {
    Timestamp {
        seconds: t.secs,
        nanoseconds: t.nanos,
    }
}

fn kind_from_wit(kind: EntryKind) -> repo::EntryKind {
    match kind {
        EntryKind::Directory => repo::EntryKind::Dir,
        EntryKind::File => repo::EntryKind::File,
        EntryKind::Symlink => repo::EntryKind::Symlink,
        EntryKind::Hardlink => repo::EntryKind::Hardlink,
        EntryKind::Fifo => repo::EntryKind::Fifo,
        EntryKind::CharDevice => repo::EntryKind::CharDev,
        EntryKind::BlockDevice => repo::EntryKind::BlockDev,
        EntryKind::Socket => repo::EntryKind::Socket,
    }
}

fn kind_to_wit(kind: repo::EntryKind) -> EntryKind {
    match kind {
        repo::EntryKind::Dir => EntryKind::Directory,
        repo::EntryKind::File => EntryKind::File,
        repo::EntryKind::Symlink => EntryKind::Symlink,
        repo::EntryKind::Hardlink => EntryKind::Hardlink,
        repo::EntryKind::Fifo => EntryKind::Fifo,
        repo::EntryKind::CharDev => EntryKind::CharDevice,
        repo::EntryKind::BlockDev => EntryKind::BlockDevice,
        repo::EntryKind::Socket => EntryKind::Socket,
    }
}

/// An entry from the addon, for the repository (which validates its path).
pub(crate) fn from_wit(e: Entry) -> Result<repo::Entry, AddonError> {
    Ok(repo::Entry {
        path: e.path,
        kind: kind_from_wit(e.kind),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: time_from_wit(e.mtime)?,
        ctime: time_from_wit(e.ctime)?,
        atime: time_from_wit(e.atime)?,
        inode: e.inode,
        device: e.device,
        nlink: e.nlink,
        rdev: e.rdev,
        link_target: e.link_target,
    })
}

/// An entry from the repository, for the addon.
pub(crate) fn to_wit(e: repo::Entry) -> Entry {
    Entry {
        path: e.path,
        kind: kind_to_wit(e.kind),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: time_to_wit(e.mtime),
        ctime: time_to_wit(e.ctime),
        atime: time_to_wit(e.atime),
        inode: e.inode,
        device: e.device,
        nlink: e.nlink,
        rdev: e.rdev,
        link_target: e.link_target,
    }
}

/// Whether the entry has content to read.
pub(crate) fn is_file(e: &repo::Entry) -> bool {
    e.kind == repo::EntryKind::File
}

/// A repository error caused by what the addon sent (a bad path, a wrong size).
pub(crate) fn entry_error(err: repo::Error) -> AddonError {
    match err {
        repo::Error::InvalidEntry { .. } | repo::Error::SizeMismatch { .. } => {
            AddonError::InvalidParameter(err.to_string())
        }
        other => AddonError::Io(other.to_string()),
    }
}

/// A repository error while reading a tree: malformed snapshots are `corrupt`.
pub(crate) fn read_error(err: repo::Error, host_error: &HostError) -> AddonError {
    match err {
        repo::Error::InvalidEntry { .. } | repo::Error::Corrupt { .. } => {
            let message = err.to_string();
            host_error.record(format!("the snapshot is unsafe or damaged: {message}"));
            AddonError::Corrupt(message)
        }
        other => {
            let message = other.to_string();
            host_error.record(format!("reading from the repository: {message}"));
            AddonError::Io(message)
        }
    }
}

/// What the addon learns about a component.
pub(crate) fn component_info(record: &repo::ComponentRecord) -> ComponentInfo {
    ComponentInfo {
        name: record.name.clone(),
        kind: match record.kind {
            repo::ComponentKind::Stream => ComponentKind::Stream,
            repo::ComponentKind::Tree => ComponentKind::Tree,
        },
        media_type: record.media_type.clone(),
        size: record.size,
        attributes: record.attributes.clone(),
    }
}
