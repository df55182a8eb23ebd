//! Restoring into a directory beside the data, then moving it into place.
//!
//! A restore into a PersistentVolumeClaim writes into `.stowaway-restore-<session>` at the
//! root of the volume. Only when the addon has finished without error are the top-level
//! entries moved into the root, each with one `rename` (an entry of the same name already
//! there is first moved aside into `.stowaway-replaced-<session>`, deleted at the end). A
//! failed restore therefore leaves the volume as it was, and deletes what it had written.
//!
//! Top-level entries of the snapshot replace those of the volume whole; other entries of
//! the volume are kept. A restore needs free space for the entries it replaces until they
//! are swapped. A run that was killed leaves its directory behind; the next restore of the
//! same session removes it.

use std::path::{Path, PathBuf};

use crate::error::{ExecuteError, Result};

/// Prefix of the directory a restore writes into.
pub const STAGING_PREFIX: &str = ".stowaway-restore-";
/// Prefix of the directory replaced entries are moved to.
pub const REPLACED_PREFIX: &str = ".stowaway-replaced-";

/// The directory a restore writes into, inside the target root.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    dir: PathBuf,
    replaced: PathBuf,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExecuteError {
    let path = path.to_path_buf();
    move |source| ExecuteError::Io { what, path, source }
}

/// Removes `path` (a directory tree or a file) if it exists.
fn remove_all(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(path).map_err(io("cannot remove", path))
        }
        Ok(_) => std::fs::remove_file(path).map_err(io("cannot remove", path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot inspect", path)(e)),
    }
}

impl Staging {
    /// Creates the (empty) staging directory of `session` in `root`, removing what an
    /// earlier, interrupted run left.
    pub fn create(root: &Path, session: &str) -> Result<Staging> {
        let staging = Staging {
            root: root.to_path_buf(),
            dir: root.join(format!("{STAGING_PREFIX}{session}")),
            replaced: root.join(format!("{REPLACED_PREFIX}{session}")),
        };
        for leftover in [&staging.dir, &staging.replaced] {
            if leftover.exists() {
                tracing::warn!(path = %leftover.display(), "removing what an interrupted restore left");
            }
            remove_all(leftover)?;
        }
        std::fs::create_dir(&staging.dir).map_err(io("cannot create", &staging.dir))?;
        Ok(staging)
    }

    /// The directory to restore into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves every top-level entry of the staging directory into the root (replacing
    /// entries of the same name), then removes the staging directory. With
    /// `root_metadata`, the root also takes the staging directory's permissions and
    /// modification time (which the addon restored from the snapshot's root).
    pub fn commit(self, root_metadata: bool) -> Result<()> {
        let meta = std::fs::metadata(&self.dir).map_err(io("cannot inspect", &self.dir))?;
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&self.dir)
            .map_err(io("cannot list", &self.dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io("cannot list", &self.dir))?;
        names.sort();
        for name in &names {
            let from = self.dir.join(name);
            let to = self.root.join(name);
            let existing = match std::fs::symlink_metadata(&to) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(io("cannot inspect", &to)(e)),
            };
            let aside = self.replaced.join(name);
            if existing {
                if !self.replaced.exists() {
                    std::fs::create_dir(&self.replaced)
                        .map_err(io("cannot create", &self.replaced))?;
                }
                std::fs::rename(&to, &aside).map_err(io("cannot move aside", &to))?;
            }
            if let Err(e) = std::fs::rename(&from, &to) {
                if existing && let Err(back) = std::fs::rename(&aside, &to) {
                    tracing::error!(path = %to.display(), error = %back, "cannot put the replaced entry back");
                }
                return Err(io("cannot move the restored entry into place", &to)(e));
            }
        }
        std::fs::remove_dir(&self.dir).map_err(io("cannot remove", &self.dir))?;
        if let Err(e) = remove_all(&self.replaced) {
            tracing::warn!(error = %e, "cannot remove the replaced entries");
        }
        if root_metadata {
            if let Err(e) = std::fs::set_permissions(&self.root, meta.permissions()) {
                tracing::warn!(path = %self.root.display(), error = %e, "cannot set the permissions of the target root");
            }
            let mtime = meta.modified();
            let set =
                std::fs::File::open(&self.root).and_then(|f| mtime.and_then(|t| f.set_modified(t)));
            if let Err(e) = set {
                tracing::warn!(path = %self.root.display(), error = %e, "cannot set the modification time of the target root");
            }
        }
        tracing::info!(entries = names.len(), root = %self.root.display(), "restored entries moved into place");
        Ok(())
    }

    /// Removes the staging directory and what was restored into it.
    pub fn discard(self) {
        if let Err(e) = remove_all(&self.dir) {
            tracing::warn!(error = %e, "cannot remove the staging directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read")
    }

    #[test]
    fn entries_replace_those_of_the_root_and_others_stay() {
        let root = tempfile::tempdir().expect("tempdir");
        let root = root.path();
        write(&root.join("a.txt"), "old a");
        write(&root.join("dir/old-only"), "old");
        write(&root.join("keep.txt"), "kept");
        // What an interrupted run left.
        write(&root.join(".stowaway-restore-r1/junk"), "junk");

        let staging = Staging::create(root, "r1").expect("create");
        assert_eq!(std::fs::read_dir(staging.dir()).expect("list").count(), 0);
        write(&staging.dir().join("a.txt"), "new a");
        write(&staging.dir().join("dir/new"), "new");
        write(&staging.dir().join("b/c.txt"), "new c");
        std::fs::set_permissions(staging.dir(), std::fs::Permissions::from_mode(0o750))
            .expect("chmod");
        staging.commit(true).expect("commit");

        assert_eq!(read(&root.join("a.txt")), "new a");
        assert_eq!(read(&root.join("dir/new")), "new");
        assert!(
            !root.join("dir/old-only").exists(),
            "a top-level entry is replaced whole"
        );
        assert_eq!(read(&root.join("b/c.txt")), "new c");
        assert_eq!(read(&root.join("keep.txt")), "kept");
        assert!(!root.join(".stowaway-restore-r1").exists());
        assert!(!root.join(".stowaway-replaced-r1").exists());
        let mode = std::fs::metadata(root).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn discard_leaves_the_root_as_it_was() {
        let root = tempfile::tempdir().expect("tempdir");
        let root = root.path();
        write(&root.join("a.txt"), "old a");
        let staging = Staging::create(root, "r2").expect("create");
        write(&staging.dir().join("a.txt"), "half");
        staging.discard();
        assert_eq!(read(&root.join("a.txt")), "old a");
        let names: Vec<_> = std::fs::read_dir(root)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
