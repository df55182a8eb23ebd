//! The `volumes` interface: directory listings with full metadata, and metadata changes, inside
//! the directories granted to a job.
//!
//! WASI cannot report owners, permission bits, inode numbers or change times, nor set them;
//! this interface does, confined to a granted volume. Paths are checked (relative, no `.`,
//! `..` or empty segments) and walked one directory at a time with `O_NOFOLLOW`, so no symlink
//! is ever followed: not out of the volume, and not inside it either.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use wasmtime::component::__internal::Vec as WVec;

use crate::bindings::stowaway::addon::types::{AddonError, Entry, EntryKind, Timestamp};
use crate::bindings::stowaway::addon::volumes::{self, MetadataUpdate, Volume};
use crate::job::JobState;

/// A volume granted to a running job.
#[derive(Debug)]
pub(crate) struct GrantedVolume {
    pub name: String,
    pub writable: bool,
    root: Arc<OwnedFd>,
    /// The directory opened last (entries come directory by directory).
    last_dir: Mutex<Option<(Vec<String>, Arc<OwnedFd>)>>,
    /// Whether this process may change owners.
    privileged: bool,
}

impl GrantedVolume {
    /// Opens the volume's directory.
    pub fn open(name: &str, path: &Path, writable: bool) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(GrantedVolume {
            name: name.to_owned(),
            writable,
            root: Arc::new(root),
            last_dir: Mutex::new(None),
            privileged: rustix::process::geteuid().is_root(),
        })
    }

    /// The guest path of the volume's preopen.
    pub fn guest_path(&self) -> String {
        format!("/volumes/{}", self.name)
    }

    /// Opens directory `segments` below the root without following any symlink. The last
    /// directory opened is kept (and reused while it still exists), since entries come
    /// directory by directory.
    fn open_dir(&self, segments: &[&str]) -> Result<Arc<OwnedFd>, Errno> {
        let mut last = self.last_dir.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((path, fd)) = &*last
            && path.iter().map(String::as_str).eq(segments.iter().copied())
            && rustix::fs::fstat(&**fd).is_ok_and(|st| st.st_nlink > 0)
        {
            return Ok(Arc::clone(fd));
        }
        let mut dir = Arc::clone(&self.root);
        for segment in segments {
            dir = Arc::new(rustix::fs::openat(
                &*dir,
                *segment,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        *last = Some((
            segments.iter().map(|s| (*s).to_owned()).collect(),
            Arc::clone(&dir),
        ));
        Ok(dir)
    }
}

/// Splits a volume-relative path into its segments, refusing anything that could leave the
/// volume or name it ambiguously.
pub(crate) fn split(path: &str) -> Result<Vec<&str>, AddonError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.starts_with('/') {
        return Err(AddonError::PermissionDenied(format!(
            "path {path:?} is absolute; volume paths are relative"
        )));
    }
    let segments: Vec<&str> = path.split('/').collect();
    for segment in &segments {
        if segment.is_empty() || *segment == "." || *segment == ".." || segment.contains('\0') {
            return Err(AddonError::PermissionDenied(format!(
                "path {path:?} has a {:?} segment; only plain names are allowed",
                segment
            )));
        }
    }
    Ok(segments)
}

fn errno_error(op: &str, volume: &str, path: &str, errno: Errno) -> AddonError {
    let what = format!("{op} {volume}:{path}: {}", std::io::Error::from(errno));
    match errno {
        Errno::NOENT => AddonError::NotFound(what),
        Errno::ACCESS | Errno::PERM => AddonError::PermissionDenied(what),
        // ELOOP/ENOTDIR: a symlink or a file where a directory was expected.
        Errno::LOOP | Errno::NOTDIR => AddonError::PermissionDenied(format!(
            "{op} {volume}:{path}: a segment is a symlink or not a directory"
        )),
        _ => AddonError::Io(what),
    }
}

fn timestamp(t: Timespec) -> Timestamp {
    Timestamp {
        seconds: t.tv_sec,
        nanoseconds: u32::try_from(t.tv_nsec).unwrap_or(0),
    }
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.seconds,
        tv_nsec: t.nanoseconds.min(999_999_999).into(),
    }
}

fn kind_of(mode: u32) -> EntryKind {
    match FileType::from_raw_mode(mode) {
        FileType::Directory => EntryKind::Directory,
        FileType::Symlink => EntryKind::Symlink,
        FileType::Fifo => EntryKind::Fifo,
        FileType::CharacterDevice => EntryKind::CharDevice,
        FileType::BlockDevice => EntryKind::BlockDevice,
        FileType::Socket => EntryKind::Socket,
        FileType::RegularFile | FileType::Unknown => EntryKind::File,
    }
}

fn entry_from_stat(path: String, st: &rustix::fs::Stat, link_target: Option<String>) -> Entry {
    let kind = kind_of(st.st_mode);
    Entry {
        path,
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == EntryKind::File {
            u64::try_from(st.st_size).unwrap_or(0)
        } else {
            0
        },
        mtime: timestamp(Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        }),
        ctime: timestamp(Timespec {
            tv_sec: st.st_ctime,
            tv_nsec: st.st_ctime_nsec as _,
        }),
        atime: timestamp(Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        }),
        inode: st.st_ino,
        device: st.st_dev,
        nlink: st.st_nlink,
        rdev: st.st_rdev,
        link_target,
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn read_link(dir: &impl AsFd, name: &str) -> Result<Option<String>, Errno> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(target.into_string().ok())
}

/// Volume `name` of a job.
pub(crate) fn find_volume<'a>(
    volumes: &'a [GrantedVolume],
    name: &str,
) -> Result<&'a GrantedVolume, AddonError> {
    volumes
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| AddonError::NotFound(format!("volume {name:?} is not granted to this job")))
}

/// Volume `name` of a job, which must be writable.
pub(crate) fn find_writable<'a>(
    volumes: &'a [GrantedVolume],
    name: &str,
) -> Result<&'a GrantedVolume, AddonError> {
    let volume = find_volume(volumes, name)?;
    if !volume.writable {
        return Err(AddonError::PermissionDenied(format!(
            "volume {name:?} is read-only in this job"
        )));
    }
    Ok(volume)
}

impl GrantedVolume {
    /// Creates the regular file `path` (exclusive create, mode 0600 until its metadata is
    /// set, no symlink followed anywhere on the path) and returns it open for writing.
    pub(crate) fn create_file(&self, path: &str) -> Result<OwnedFd, AddonError> {
        let segments = split(path)?;
        let fail = |e| errno_error("creating", &self.name, path, e);
        let Some((name, parents)) = segments.split_last() else {
            return Err(AddonError::InvalidParameter(
                "the volume root is not a file".into(),
            ));
        };
        let dir = self.open_dir(parents).map_err(fail)?;
        rustix::fs::openat(
            &*dir,
            *name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(fail)
    }

    /// Opens the regular file `path` for reading (no symlink followed anywhere on the path;
    /// a fifo or device is refused without blocking on it).
    pub(crate) fn open_file(&self, path: &str) -> Result<OwnedFd, AddonError> {
        let segments = split(path)?;
        let fail = |e| errno_error("cannot open", &self.name, path, e);
        let Some((name, parents)) = segments.split_last() else {
            return Err(AddonError::InvalidParameter(
                "the volume root is not a file".into(),
            ));
        };
        let dir = self.open_dir(parents).map_err(fail)?;
        let file = rustix::fs::openat(
            &*dir,
            *name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let st = rustix::fs::fstat(&file).map_err(fail)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(AddonError::InvalidParameter(format!(
                "{}:{path} is not a regular file",
                self.name
            )));
        }
        Ok(file)
    }

    /// The metadata of `attrs`, to set on a file this volume's restore created.
    pub(crate) fn file_attributes(&self, attrs: &MetadataUpdate) -> crate::file_writer::Attributes {
        crate::file_writer::Attributes {
            mode: attrs.mode,
            owner: attrs.owner,
            mtime: attrs.mtime.map(timespec),
            atime: attrs.atime.map(timespec),
            privileged: self.privileged,
        }
    }
}

impl JobState {
    fn volume(&self, name: &str) -> Result<&GrantedVolume, AddonError> {
        find_volume(&self.volumes, name)
    }

    fn writable_volume(&self, name: &str) -> Result<&GrantedVolume, AddonError> {
        find_writable(&self.volumes, name)
    }

    fn read_dir(&self, volume: &str, path: &str) -> Result<WVec<Entry>, AddonError> {
        let vol = self.volume(volume)?;
        let segments = split(path)?;
        let dir = vol
            .open_dir(&segments)
            .map_err(|e| errno_error("listing", volume, path, e))?;
        let mut entries = Vec::new();
        let listing = rustix::fs::Dir::read_from(&dir)
            .map_err(|e| errno_error("listing", volume, path, e))?;
        for item in listing {
            let item = item.map_err(|e| errno_error("listing", volume, path, e))?;
            let raw = item.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                tracing::warn!(
                    addon = %self.addon, volume, dir = path, name = %String::from_utf8_lossy(raw),
                    "skipping an entry whose name is not UTF-8 (WASI paths are UTF-8)"
                );
                continue;
            };
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed between listing and stat: it is simply not there any more.
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    return Err(errno_error(
                        "reading metadata of",
                        volume,
                        &join(path, name),
                        e,
                    ));
                }
            };
            let link_target = if kind_of(st.st_mode) == EntryKind::Symlink {
                match read_link(&dir, name) {
                    Ok(Some(target)) => Some(target),
                    Ok(None) => {
                        tracing::warn!(addon = %self.addon, volume, path = %join(path, name),
                            "skipping a symlink whose target is not UTF-8");
                        continue;
                    }
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(errno_error("reading link", volume, &join(path, name), e));
                    }
                }
            } else {
                None
            };
            entries.push(entry_from_stat(join(path, name), &st, link_target));
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn stat(&self, volume: &str, path: &str) -> Result<Entry, AddonError> {
        let vol = self.volume(volume)?;
        let segments = split(path)?;
        let Some((last, parents)) = segments.split_last() else {
            let st = rustix::fs::fstat(&*vol.root)
                .map_err(|e| errno_error("reading metadata of", volume, path, e))?;
            return Ok(entry_from_stat(String::new(), &st, None));
        };
        let dir = vol
            .open_dir(parents)
            .map_err(|e| errno_error("reading metadata of", volume, path, e))?;
        let st = rustix::fs::statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno_error("reading metadata of", volume, path, e))?;
        let link_target = if kind_of(st.st_mode) == EntryKind::Symlink {
            read_link(&dir, last).map_err(|e| errno_error("reading link", volume, path, e))?
        } else {
            None
        };
        Ok(entry_from_stat(path.to_owned(), &st, link_target))
    }

    fn set_attributes(
        &self,
        volume: &str,
        path: &str,
        attrs: &MetadataUpdate,
    ) -> Result<(), AddonError> {
        let vol = self.writable_volume(volume)?;
        let segments = split(path)?;
        let fail = |e| errno_error("setting metadata of", volume, path, e);
        let (dir, name) = match segments.split_last() {
            Some((last, parents)) => (vol.open_dir(parents).map_err(fail)?, *last),
            None => (Arc::clone(&vol.root), "."),
        };
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(fail)?;
        let is_symlink = kind_of(st.st_mode) == EntryKind::Symlink;
        // Only what differs is changed (a restore mostly finds the owner and mode right).
        // A change of owner clears set-user/group-id bits, so the mode is set again after one.
        let mut chowned = false;
        if let Some((uid, gid)) = attrs.owner
            && vol.privileged
            && (st.st_uid, st.st_gid) != (uid, gid)
        {
            chowned = true;
            let result = rustix::fs::chownat(
                &dir,
                name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            match result {
                Ok(()) | Err(Errno::PERM) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        // Symlinks have no permission bits of their own on Linux.
        if let Some(mode) = attrs.mode
            && !is_symlink
            && (chowned || st.st_mode & 0o7777 != mode & 0o7777)
        {
            rustix::fs::chmodat(
                &dir,
                name,
                Mode::from_raw_mode(mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(fail)?;
        }
        if attrs.mtime.is_some() || attrs.atime.is_some() {
            let keep = Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            };
            let times = Timestamps {
                last_access: attrs.atime.map(timespec).unwrap_or(keep),
                last_modification: attrs.mtime.map(timespec).unwrap_or(keep),
            };
            rustix::fs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(fail)?;
        }
        Ok(())
    }

    fn create_symlink(&self, volume: &str, path: &str, target: &str) -> Result<(), AddonError> {
        let vol = self.writable_volume(volume)?;
        let segments = split(path)?;
        let fail = |e| errno_error("creating symlink", volume, path, e);
        let Some((last, parents)) = segments.split_last() else {
            return Err(AddonError::InvalidParameter(
                "cannot replace the volume root".into(),
            ));
        };
        if target.is_empty() || target.contains('\0') {
            return Err(AddonError::InvalidParameter(format!(
                "symlink {path:?}: the target must be non-empty text without NUL"
            )));
        }
        let dir = vol.open_dir(parents).map_err(fail)?;
        rustix::fs::symlinkat(target, &dir, *last).map_err(fail)
    }

    fn make_special(
        &self,
        volume: &str,
        path: &str,
        kind: EntryKind,
        mode: u32,
        rdev: u64,
    ) -> Result<(), AddonError> {
        let vol = self.writable_volume(volume)?;
        let segments = split(path)?;
        let fail = |e| errno_error("creating", volume, path, e);
        let Some((last, parents)) = segments.split_last() else {
            return Err(AddonError::InvalidParameter(
                "cannot create the volume root".into(),
            ));
        };
        let file_type = match kind {
            EntryKind::Fifo => FileType::Fifo,
            EntryKind::CharDevice => FileType::CharacterDevice,
            EntryKind::BlockDevice => FileType::BlockDevice,
            other => {
                return Err(AddonError::InvalidParameter(format!(
                    "make-special creates fifos and devices, not {other:?}"
                )));
            }
        };
        let dir = vol.open_dir(parents).map_err(fail)?;
        rustix::fs::mknodat(
            &dir,
            *last,
            file_type,
            Mode::from_raw_mode(mode & 0o7777),
            rdev,
        )
        .map_err(fail)
    }
}

impl volumes::Host for JobState {
    fn list_volumes(&mut self) -> wasmtime::Result<WVec<Volume>> {
        Ok(self
            .volumes
            .iter()
            .map(|v| Volume {
                name: v.name.clone(),
                guest_path: v.guest_path(),
                writable: v.writable,
            })
            .collect())
    }

    fn read_dir(
        &mut self,
        volume: String,
        path: String,
    ) -> wasmtime::Result<Result<WVec<Entry>, AddonError>> {
        Ok(JobState::read_dir(self, &volume, &path))
    }

    fn stat(
        &mut self,
        volume: String,
        path: String,
    ) -> wasmtime::Result<Result<Entry, AddonError>> {
        Ok(JobState::stat(self, &volume, &path))
    }

    fn set_attributes(
        &mut self,
        volume: String,
        path: String,
        attrs: MetadataUpdate,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        Ok(JobState::set_attributes(self, &volume, &path, &attrs))
    }

    fn create_symlink(
        &mut self,
        volume: String,
        path: String,
        target: String,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        Ok(JobState::create_symlink(self, &volume, &path, &target))
    }

    fn make_special(
        &mut self,
        volume: String,
        path: String,
        kind: EntryKind,
        mode: u32,
        rdev: u64,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        Ok(JobState::make_special(
            self, &volume, &path, kind, mode, rdev,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_refuses_escapes() {
        assert_eq!(split("").ok(), Some(vec![]));
        assert_eq!(split("a/b").ok(), Some(vec!["a", "b"]));
        for bad in ["/etc", "..", "a/../b", "a//b", "./a", "a/", "a/.", "a\0b"] {
            assert!(
                matches!(split(bad), Err(AddonError::PermissionDenied(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn open_dir_never_follows_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink("real", tmp.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink("/etc", tmp.path().join("etc")).expect("symlink");
        let vol = GrantedVolume::open("v", tmp.path(), false).expect("open");
        assert!(vol.open_dir(&["real"]).is_ok());
        // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP on some kernels).
        for link in ["link", "etc"] {
            let err = vol.open_dir(&[link]).err();
            assert!(
                matches!(err, Some(Errno::NOTDIR | Errno::LOOP)),
                "{link}: {err:?}"
            );
        }
    }
}
