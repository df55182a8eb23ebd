//! Restore: every selected tree component back into the writable volume of the same name.

use std::collections::BTreeSet;

use stowaway_addon::bindings::wasi::filesystem::types::{DescriptorType, PathFlags};
use stowaway_addon::volume::Volume;
use stowaway_addon::volumes::{self, MetadataUpdate};
use stowaway_addon::{
    AddonError, Attributes, ComponentKind, Entry, EntryKind, ErrorCode, Job, TreeReader, error, log,
};

/// Entries between two cancellation checks (a check is one cheap host call).
const CANCEL_EVERY: u64 = 16;
const PROGRESS_EVERY: u64 = 1000;

/// `restore.run`.
pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let options = Options {
        restore_owner: job.param_bool("restore-owner", true)?,
        overwrite: job.param_bool("overwrite", true)?,
    };
    let mut items = 0u64;
    let mut bytes = 0u64;
    let mut warnings = 0u64;
    for component in job.components() {
        if component.kind != ComponentKind::Tree {
            log::warn_with(
                "not a tree component; skipped",
                &[("component", &component.name)],
            );
            continue;
        }
        let volume = Volume::open(&component.name)?;
        if !volume.writable() {
            return Err(error::permission_denied(format!(
                "volume {:?} is not writable",
                component.name
            )));
        }
        let reader = job.open_tree(&component.name)?;
        let mut restore = Restore {
            job,
            volume: &volume,
            options,
            dirs: BTreeSet::from([String::new()]),
            skipped_dirs: BTreeSet::new(),
            fresh: if volume.read_dir("")?.is_empty() {
                BTreeSet::from([String::new()])
            } else {
                BTreeSet::new()
            },
            dir_attrs: Vec::new(),
            items,
            bytes,
            warnings: 0,
        };
        restore.run(&reader)?;
        if options.overwrite
            && let Some(update) = crate::root::update(&component.attributes, options.restore_owner)
            && let Err(e) = volumes::set_attributes(volume.name(), "", update)
        {
            restore.warn("cannot set the volume root's metadata", "", &e);
        }
        items = restore.items;
        bytes = restore.bytes;
        warnings += restore.warnings;
        log::info_with(
            "volume restored",
            &[
                ("volume", volume.name()),
                ("warnings", &restore.warnings.to_string()),
            ],
        );
    }
    job.report("restore", items, bytes);
    Ok(vec![
        ("files".into(), items.to_string()),
        ("bytes".into(), bytes.to_string()),
        ("warnings".into(), warnings.to_string()),
    ])
}

#[derive(Clone, Copy)]
struct Options {
    restore_owner: bool,
    overwrite: bool,
}

struct Restore<'a> {
    job: &'a Job,
    volume: &'a Volume,
    options: Options,
    /// Directories this restore created or checked (the root is `""`): the only valid parents.
    dirs: BTreeSet<String>,
    /// Directories kept as something else (`overwrite` false): their entries are skipped.
    skipped_dirs: BTreeSet<String>,
    /// Directories that were empty or created by this restore: nothing can be in the way of
    /// their entries, so the existence check before each create is skipped (an exclusive
    /// create still refuses anything that appeared meanwhile).
    fresh: BTreeSet<String>,
    /// Directories whose metadata is set at the end.
    dir_attrs: Vec<Entry>,
    items: u64,
    bytes: u64,
    warnings: u64,
}

/// Refuses paths that are empty, absolute or have empty, `.` or `..` segments.
fn check_path(path: &str) -> Result<(), AddonError> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(error::corrupt(format!("invalid path {path:?} in the tree")));
    }
    Ok(())
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn depth(path: &str) -> usize {
    path.bytes().filter(|&b| b == b'/').count()
}

impl Restore<'_> {
    fn run(&mut self, reader: &TreeReader) -> Result<(), AddonError> {
        while let Some(entry) = reader.next()? {
            self.items += 1;
            if self.items.is_multiple_of(CANCEL_EVERY) {
                self.job.check_cancelled()?;
            }
            if self.items.is_multiple_of(PROGRESS_EVERY) {
                self.job.report("restore", self.items, self.bytes);
            }
            check_path(&entry.path)?;
            let parent = parent(&entry.path);
            if self.skipped_dirs.contains(parent) {
                if entry.kind == EntryKind::Directory {
                    self.skipped_dirs.insert(entry.path);
                }
                continue;
            }
            if !self.dirs.contains(parent) {
                return Err(error::corrupt(format!(
                    "{}: parent is not a directory restored by this job",
                    entry.path
                )));
            }
            match entry.kind {
                EntryKind::Directory => self.directory(entry)?,
                EntryKind::File => self.file(&entry, reader)?,
                EntryKind::Symlink => self.symlink(&entry)?,
                EntryKind::Hardlink => self.hardlink(&entry)?,
                EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                    self.special(&entry)?
                }
                EntryKind::Socket => {
                    log::debug_with("socket not restored", &[("path", &entry.path)]);
                }
            }
        }
        // Every file is complete before the restore reports success.
        for (path, message) in reader.finish_writes()? {
            self.warn("cannot set metadata", &path, &message);
        }
        // Children change their directory's mtime: set directory metadata last, deepest first.
        let mut dirs = std::mem::take(&mut self.dir_attrs);
        dirs.sort_by_key(|e| std::cmp::Reverse(depth(&e.path)));
        for entry in &dirs {
            self.set_attributes(entry, true);
        }
        Ok(())
    }

    fn warn(&mut self, what: &str, path: &str, cause: &dyn std::fmt::Display) {
        self.warnings += 1;
        log::warn_with(
            what,
            &[
                ("volume", self.volume.name()),
                ("path", path),
                ("error", &cause.to_string()),
            ],
        );
    }

    /// What exists at `path`, without following a symlink.
    fn existing(&self, path: &str) -> Result<Option<DescriptorType>, AddonError> {
        match self.volume.dir().stat_at(PathFlags::empty(), path) {
            Ok(stat) => Ok(Some(stat.type_)),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(code) => Err(error::with_context(code, format!("cannot inspect {path}"))),
        }
    }

    /// Removes whatever is at `path` (an empty directory, a file, a symlink: never followed).
    fn remove(&self, path: &str, kind: DescriptorType) -> Result<(), AddonError> {
        let dir = self.volume.dir();
        let result = if kind == DescriptorType::Directory {
            dir.remove_directory_at(path)
        } else {
            dir.unlink_file_at(path)
        };
        result.map_err(|code| error::with_context(code, format!("cannot replace {path}")))
    }

    /// Makes room for a non-directory entry at `path`. Returns false when something exists
    /// and `overwrite` is off (the entry is then skipped with a warning).
    fn clear(&mut self, path: &str) -> Result<bool, AddonError> {
        if self.fresh.contains(parent(path)) {
            return Ok(true);
        }
        match self.existing(path)? {
            None => Ok(true),
            Some(_) if !self.options.overwrite => {
                self.warn("exists; kept (overwrite is false)", path, &"exists");
                Ok(false)
            }
            Some(kind) => {
                self.remove(path, kind)?;
                Ok(true)
            }
        }
    }

    fn directory(&mut self, entry: Entry) -> Result<(), AddonError> {
        let path = entry.path.as_str();
        let existing = if self.fresh.contains(parent(path)) {
            None
        } else {
            self.existing(path)?
        };
        match existing {
            Some(DescriptorType::Directory) => {
                if !self.options.overwrite {
                    // Merge into it, but leave its own metadata alone.
                    self.dirs.insert(entry.path);
                    return Ok(());
                }
            }
            Some(_) if !self.options.overwrite => {
                self.warn(
                    "exists and is not a directory; kept with nothing under it",
                    path,
                    &"exists",
                );
                self.skipped_dirs.insert(entry.path);
                return Ok(());
            }
            Some(kind) => {
                self.remove(path, kind)?;
                self.create_dir(path)?;
                self.fresh.insert(entry.path.clone());
            }
            None => {
                self.create_dir(path)?;
                self.fresh.insert(entry.path.clone());
            }
        }
        self.dirs.insert(entry.path.clone());
        self.dir_attrs.push(entry);
        Ok(())
    }

    fn create_dir(&self, path: &str) -> Result<(), AddonError> {
        self.volume
            .dir()
            .create_directory_at(path)
            .map_err(|code| error::with_context(code, format!("cannot create directory {path}")))
    }

    fn file(&mut self, entry: &Entry, reader: &TreeReader) -> Result<(), AddonError> {
        let path = entry.path.as_str();
        if !self.clear(path)? {
            return Ok(());
        }
        // The host creates the file (exclusive, no symlink followed) and writes its content
        // and metadata on its own threads, several files at once.
        let update = self.update(entry, true);
        let copied = reader.write_file(self.volume.name(), path, update)?;
        if copied != entry.size {
            return Err(error::corrupt(format!(
                "{path}: the snapshot holds {copied} bytes, its entry says {}",
                entry.size
            )));
        }
        self.bytes += copied;
        Ok(())
    }

    fn symlink(&mut self, entry: &Entry) -> Result<(), AddonError> {
        let path = entry.path.as_str();
        let Some(target) = entry.link_target.as_deref() else {
            return Err(error::corrupt(format!("symlink {path} has no target")));
        };
        if !self.clear(path)? {
            return Ok(());
        }
        // The host creates it: WASI (cap-std) refuses absolute targets.
        if let Err(e) = volumes::create_symlink(self.volume.name(), path, target) {
            self.warn("cannot create symlink (left out)", path, &e);
            return Ok(());
        }
        self.set_attributes(entry, false);
        Ok(())
    }

    fn hardlink(&mut self, entry: &Entry) -> Result<(), AddonError> {
        let path = entry.path.as_str();
        let Some(target) = entry.link_target.as_deref() else {
            return Err(error::corrupt(format!("hard link {path} has no target")));
        };
        check_path(target)?;
        if !self.clear(path)? {
            return Ok(());
        }
        let dir = self.volume.dir();
        if let Err(code) = dir.link_at(PathFlags::empty(), target, dir, path) {
            let why = format!("target {target:?}: {}", error::describe_error_code(code));
            self.warn("cannot create hard link (left out)", path, &why);
        }
        // Same inode as the target, whose metadata is already set.
        Ok(())
    }

    fn special(&mut self, entry: &Entry) -> Result<(), AddonError> {
        let path = entry.path.as_str();
        if !self.clear(path)? {
            return Ok(());
        }
        let made =
            volumes::make_special(self.volume.name(), path, entry.kind, entry.mode, entry.rdev);
        match made {
            Ok(()) => self.set_attributes(entry, true),
            Err(e) => self.warn("cannot create special file (left out)", path, &e),
        }
        Ok(())
    }

    /// The metadata to restore for `entry`; `full` false (symlinks) leaves out the permission
    /// bits.
    fn update(&self, entry: &Entry, full: bool) -> MetadataUpdate {
        MetadataUpdate {
            mode: full.then_some(entry.mode),
            owner: self.options.restore_owner.then_some((entry.uid, entry.gid)),
            mtime: Some(entry.mtime),
            atime: Some(entry.atime),
        }
    }

    /// Sets the entry's metadata; `full` false (symlinks) skips the permission bits, which
    /// symlinks do not have. The host never follows a symlink when it sets owner or times.
    /// A failure is a warning.
    fn set_attributes(&mut self, entry: &Entry, full: bool) {
        let update = self.update(entry, full);
        if let Err(e) = volumes::set_attributes(self.volume.name(), &entry.path, update) {
            self.warn("cannot set metadata", &entry.path, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for bad in ["", "/abs", "a//b", "a/./b", "../x", "a/..", "a/", "."] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b", ".hidden", "a/..b", "x/y/z"] {
            assert!(check_path(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn parents_and_depths() {
        assert_eq!(parent("a"), "");
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(depth("a"), 0);
        assert_eq!(depth("a/b/c"), 2);
    }
}
