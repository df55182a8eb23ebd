//! Backup: one tree component per volume, walked depth-first through `volumes.read-dir`.

use std::collections::BTreeMap;

use stowaway_addon::volume::Volume;
use stowaway_addon::{
    AddonError, Attributes, Entry, EntryKind, FileContent, Job, TreeWriter, error, log,
};

use crate::exclude::Excludes;

/// Entries between two cancellation checks (a check is one cheap host call).
const CANCEL_EVERY: u64 = 16;
/// Entries between two progress reports.
const PROGRESS_EVERY: u64 = 1000;

/// Counters for one volume (and, summed, for the snapshot).
#[derive(Default, Clone, Copy)]
struct Stats {
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    special: u64,
    /// Files the host already had (files cache): not read.
    unchanged: u64,
    excluded: u64,
    bytes: u64,
    warnings: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.symlinks += o.symlinks;
        self.hardlinks += o.hardlinks;
        self.special += o.special;
        self.unchanged += o.unchanged;
        self.excluded += o.excluded;
        self.bytes += o.bytes;
        self.warnings += o.warnings;
    }

    fn attributes(&self) -> Attributes {
        [
            ("files", self.files),
            ("dirs", self.dirs),
            ("symlinks", self.symlinks),
            ("hardlinks", self.hardlinks),
            ("special", self.special),
            ("unchanged", self.unchanged),
            ("excluded", self.excluded),
            ("bytes", self.bytes),
            ("warnings", self.warnings),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// `backup.run`: every granted volume becomes a tree component named after it.
pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let excludes = Excludes::parse(&job.param_list("exclude"))
        .map_err(|e| error::invalid_parameter("exclude", e))?;
    let volumes = Volume::all()?;
    if volumes.is_empty() {
        return Err(error::invalid_parameter("volumes", "the job has no volume"));
    }
    let mut total = Stats::default();
    let mut items = 0u64;
    for volume in &volumes {
        let mut walk = Walk {
            job,
            volume,
            excludes: &excludes,
            tree: job.create_tree(volume.name())?,
            first_link: BTreeMap::new(),
            stats: Stats::default(),
            items,
        };
        walk.run()?;
        let Walk {
            tree,
            stats,
            items: done,
            ..
        } = walk;
        items = done;
        let mut attributes = stats.attributes();
        attributes.extend(crate::root::attributes(volume));
        TreeWriter::finish(tree, &attributes)?;
        log::info_with(
            "volume backed up",
            &[
                ("volume", volume.name()),
                ("files", &stats.files.to_string()),
                ("bytes", &stats.bytes.to_string()),
                ("warnings", &stats.warnings.to_string()),
            ],
        );
        total.add(&stats);
    }
    job.report("backup", items, total.bytes);
    let mut attributes = vec![("volumes".to_string(), volumes.len().to_string())];
    attributes.extend(total.attributes());
    Ok(attributes)
}

/// The walk of one volume.
struct Walk<'a> {
    job: &'a Job,
    volume: &'a Volume,
    excludes: &'a Excludes,
    tree: TreeWriter,
    /// (device, inode) of files with several links → the path stored as `file`.
    first_link: BTreeMap<(u64, u64), String>,
    stats: Stats,
    /// Entries seen so far in the whole job (progress).
    items: u64,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<(), AddonError> {
        let root = self.volume.read_dir("").map_err(|e| {
            error::with_context(e, format!("cannot read volume {}", self.volume.name()))
        })?;
        // A stack of directory listings gives depth-first order with contiguous subtrees.
        let mut stack = vec![root.into_iter()];
        while let Some(listing) = stack.last_mut() {
            let Some(entry) = listing.next() else {
                stack.pop();
                continue;
            };
            self.items += 1;
            if self.items.is_multiple_of(CANCEL_EVERY) {
                self.job.check_cancelled()?;
            }
            if self.items.is_multiple_of(PROGRESS_EVERY) {
                self.job.report("backup", self.items, self.stats.bytes);
            }
            let is_dir = entry.kind == EntryKind::Directory;
            if self.excludes.is_excluded(&entry.path, is_dir) {
                self.stats.excluded += 1;
                continue;
            }
            match entry.kind {
                EntryKind::Directory => {
                    self.add(&entry)?;
                    self.stats.dirs += 1;
                    match self.volume.read_dir(&entry.path) {
                        Ok(children) => stack.push(children.into_iter()),
                        Err(e) => self.warn("cannot read directory (stored empty)", &entry, &e),
                    }
                }
                EntryKind::File => self.file(entry)?,
                EntryKind::Symlink => {
                    self.add(&entry)?;
                    self.stats.symlinks += 1;
                }
                // read-dir does not report hard links; keep whatever the host says.
                _ => {
                    self.add(&entry)?;
                    self.stats.special += 1;
                }
            }
        }
        Ok(())
    }

    fn add(&self, entry: &Entry) -> Result<(), AddonError> {
        self.tree
            .add(entry)
            .map_err(|e| error::with_context(e, format!("cannot add {}", entry.path)))
    }

    fn warn(&mut self, what: &str, entry: &Entry, cause: &dyn std::fmt::Display) {
        self.stats.warnings += 1;
        log::warn_with(
            what,
            &[
                ("volume", self.volume.name()),
                ("path", &entry.path),
                ("error", &cause.to_string()),
            ],
        );
    }

    fn file(&mut self, entry: Entry) -> Result<(), AddonError> {
        let key = (entry.device, entry.inode);
        let multi_link = entry.nlink > 1 && entry.inode != 0;
        if multi_link && let Some(first) = self.first_link.get(&key) {
            let link = Entry {
                kind: EntryKind::Hardlink,
                size: 0,
                link_target: Some(first.clone()),
                ..entry
            };
            self.add(&link)?;
            self.stats.hardlinks += 1;
            return Ok(());
        }
        let content = self
            .tree
            .add_file(&entry)
            .map_err(|e| error::with_context(e, format!("cannot add {}", entry.path)))?;
        match content {
            None => self.stats.unchanged += 1,
            Some(content) => {
                if !self.copy(&entry, content)? {
                    return Ok(()); // left out; a later link to the same inode becomes the file
                }
            }
        }
        self.stats.files += 1;
        if multi_link {
            self.first_link.insert(key, entry.path);
        }
        Ok(())
    }

    /// Copies the file's content into `content`, inside the host (the bytes never pass
    /// through the addon). Returns false when the file could not be read: then `content` is
    /// dropped unfinished and the host leaves the file out.
    fn copy(&mut self, entry: &Entry, content: FileContent) -> Result<bool, AddonError> {
        let copied = match content.copy_from(self.volume.name(), &entry.path) {
            Ok(n) => n,
            // The repository failed underneath: nothing more can be stored.
            Err(e @ AddonError::Internal(_)) => {
                self.job.check_cancelled()?;
                return Err(e);
            }
            Err(e) => {
                drop(content);
                self.warn("cannot read file (left out)", entry, &error::message(&e));
                return Ok(false);
            }
        };
        let changed = copied != entry.size;
        if changed {
            self.warn(
                "file changed while it was read",
                entry,
                &format!("expected {} bytes, read {copied}", entry.size),
            );
        }
        FileContent::finish(content, changed)
            .map_err(|e| error::with_context(e, format!("cannot store {}", entry.path)))?;
        self.stats.bytes += copied;
        Ok(true)
    }
}
