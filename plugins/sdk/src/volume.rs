//! Volumes: the directories the host grants to the addon.
//!
//! The host preopens each granted volume at `/volumes/<name>` (see
//! [`volumes::list_volumes`](crate::volumes::list_volumes)). A [`Volume`] pairs the host's
//! description of a volume with its WASI directory descriptor, so files can be opened
//! relative to it. Paths are relative to the volume root, `/`-separated; WASI refuses paths
//! that leave the volume (absolute paths, `..` above the root, symlinks pointing outside).
//!
//! Metadata that WASI cannot express (owners, permission bits, inode numbers) is read with
//! [`Volume::read_dir`] / [`Volume::stat`] and set with
//! [`volumes::set_attributes`](crate::volumes::set_attributes).
//!
//! ```ignore
//! let vol = Volume::open("data")?;
//! let input = vol.read_stream("db/pg_control")?;
//! stowaway_addon::splice_all(&input, &output)?;
//! ```

use crate::bindings::wasi::filesystem::preopens;
use crate::bindings::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
use crate::{AddonError, Descriptor, Entry, ErrorCode, InputStream, OutputStream, error, volumes};

/// The WASI preopened directory whose guest path is exactly `guest_path`
/// (such as `/volumes/data`), if there is one.
pub fn preopen(guest_path: &str) -> Option<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == guest_path)
        .map(|(dir, _)| dir)
}

/// A granted volume and its directory descriptor.
pub struct Volume {
    info: volumes::Volume,
    dir: Descriptor,
}

impl Volume {
    /// Every volume of this job, in the host's order.
    pub fn all() -> Result<Vec<Volume>, AddonError> {
        let mut dirs = preopens::get_directories();
        let mut out = Vec::new();
        for info in volumes::list_volumes() {
            let Some(i) = dirs.iter().position(|(_, p)| *p == info.guest_path) else {
                return Err(missing_preopen(&info));
            };
            let (dir, _) = dirs.swap_remove(i);
            out.push(Volume { info, dir });
        }
        Ok(out)
    }

    /// The volume called `name`: [`AddonError::NotFound`] if the job has no such volume.
    pub fn open(name: &str) -> Result<Volume, AddonError> {
        let info = volumes::list_volumes()
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| {
                error::not_found(format!("volume {name:?} is not granted to this job"))
            })?;
        Volume::from_info(info)
    }

    /// Pairs a volume from [`volumes::list_volumes`] with its preopened directory.
    pub fn from_info(info: volumes::Volume) -> Result<Volume, AddonError> {
        match preopen(&info.guest_path) {
            Some(dir) => Ok(Volume { info, dir }),
            None => Err(missing_preopen(&info)),
        }
    }

    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether the job may write to the volume (restore).
    pub fn writable(&self) -> bool {
        self.info.writable
    }

    /// The host's description of the volume.
    pub fn info(&self) -> &volumes::Volume {
        &self.info
    }

    /// The volume's root directory descriptor, for WASI calls the helpers do not cover.
    pub fn dir(&self) -> &Descriptor {
        &self.dir
    }

    /// Entries of directory `path` (`""` is the root) with `lstat` metadata, sorted by name;
    /// see [`volumes::read_dir`].
    pub fn read_dir(&self, path: &str) -> Result<Vec<Entry>, AddonError> {
        volumes::read_dir(&self.info.name, path)
    }

    /// `lstat` metadata of `path`; see [`volumes::stat`].
    pub fn stat(&self, path: &str) -> Result<Entry, AddonError> {
        volumes::stat(&self.info.name, path)
    }

    /// Opens the existing file `path` for reading. A symlink as the last component is not
    /// followed (the open fails instead).
    pub fn open_read(&self, path: &str) -> Result<Descriptor, ErrorCode> {
        self.dir.open_at(
            PathFlags::empty(),
            path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
    }

    /// Creates (or truncates) the file `path` for writing. A symlink as the last component is
    /// not followed (the open fails instead). Needs a writable volume.
    pub fn create(&self, path: &str) -> Result<Descriptor, ErrorCode> {
        self.dir.open_at(
            PathFlags::empty(),
            path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
    }

    /// Creates the file `path`, failing with [`ErrorCode::Exist`] if anything (including a
    /// dangling symlink) is already there. Needs a writable volume.
    pub fn create_new(&self, path: &str) -> Result<Descriptor, ErrorCode> {
        self.dir.open_at(
            PathFlags::empty(),
            path,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )
    }

    /// The content of file `path` as a stream (see [`Volume::open_read`]).
    pub fn read_stream(&self, path: &str) -> Result<InputStream, ErrorCode> {
        self.open_read(path)?.read_via_stream(0)
    }

    /// A stream writing file `path` from its start (see [`Volume::create`]). Flush it
    /// (`blocking-flush`, or [`OutputWriter::close`](crate::OutputWriter::close)) before
    /// dropping it to see write errors.
    pub fn write_stream(&self, path: &str) -> Result<OutputStream, ErrorCode> {
        self.create(path)?.write_via_stream(0)
    }
}

fn missing_preopen(info: &volumes::Volume) -> AddonError {
    error::internal(format!(
        "volume {:?} has no preopened directory at {}",
        info.name, info.guest_path
    ))
}
