//! Helpers for tree components.

use crate::{Entry, EntryKind, Timestamp};

impl Entry {
    /// An entry with `path` and `kind` and neutral metadata: mode `0o755` for directories and
    /// `0o644` otherwise, owner 0:0, size 0, times at the epoch, no inode, one link. Set the
    /// fields you know (for example `size` for a file) with struct update syntax:
    ///
    /// ```ignore
    /// let file = Entry { size: 42, ..Entry::new("dump/meta.json", EntryKind::File) };
    /// ```
    pub fn new(path: &str, kind: EntryKind) -> Entry {
        let epoch = Timestamp {
            seconds: 0,
            nanoseconds: 0,
        };
        Entry {
            path: path.to_string(),
            kind,
            mode: if kind == EntryKind::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: epoch,
            ctime: epoch,
            atime: epoch,
            inode: 0,
            device: 0,
            nlink: 1,
            rdev: 0,
            link_target: None,
        }
    }
}

impl crate::ComponentInfo {
    /// The value of attribute `name`, as the addon gave it when it finished the component.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl crate::Capability {
    /// Running `program` with any arguments.
    pub fn exec_any(program: &str) -> Self {
        crate::Capability::Exec(crate::ExecPattern {
            program: program.into(),
            args: vec!["**".into()],
        })
    }

    /// Connecting to whichever endpoints the job grants (host `*`, port 0).
    pub fn connect_granted() -> Self {
        crate::Capability::Connect(crate::Endpoint {
            host: "*".into(),
            port: 0,
        })
    }
}
