//! Test addon: `backup` tries to leave its sandbox and reports, for each attempt,
//! `denied: <error>` or `ALLOWED` as snapshot attributes. It uses the first volume of the job
//! (the test is expected to grant one read-only volume containing a symlink `link` → `/etc`).
//!
//! Attempts (attribute names): `read-etc-passwd`, `read-dotdot-std`, `read-dotdot-wasi`,
//! `read-symlink-std`, `read-symlink-wasi`, `read-dir-dotdot`, `read-dir-absolute`,
//! `read-dir-symlink`, `stat-dotdot`, `write-readonly`, `mkdir-readonly`,
//! `set-attributes-readonly`, `make-special-readonly`, and `copy-from-dotdot`,
//! `copy-from-absolute`, `copy-from-symlink-dir`, `copy-from-symlink` (a tree's
//! `file-content.copy-from` reading outside the volume).

use stowaway_addon::bindings::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
use stowaway_addon::volume::Volume;
use stowaway_addon::volumes::{self, MetadataUpdate};
use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, EntryKind, Job, Operation, VolumeAccess,
    log,
};

struct EscapeFs;

fn outcome<T, E: std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ALLOWED".into(),
        Err(e) => format!("denied: {e:?}"),
    }
}

impl Addon for EscapeFs {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-escape-fs".into(),
            version: "0.1.0".into(),
            description: "Tries to escape the file system sandbox (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![],
            // Asks for write access: the host must still grant backups read-only volumes.
            capabilities: vec![Capability::Volume(VolumeAccess {
                name: "*".into(),
                writable: true,
            })],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        let mut out: Attributes = Vec::new();
        let mut record = |name: &str, result: String| {
            log::info_with("escape attempt", &[("attempt", name), ("outcome", &result)]);
            out.push((name.to_string(), result));
        };
        record("read-etc-passwd", outcome(std::fs::read("/etc/passwd")));

        let Some(volume) = Volume::all()?.into_iter().next() else {
            record("volume", "missing: the job has no volume".into());
            return Ok(out);
        };
        let name = volume.name().to_string();
        let guest = volume.info().guest_path.clone();
        let dir = volume.dir();
        let read_wasi = |path: &str, flags: PathFlags| {
            dir.open_at(flags, path, OpenFlags::empty(), DescriptorFlags::READ)
                .and_then(|f| f.read(64, 0))
        };

        record(
            "read-dotdot-std",
            outcome(std::fs::read(format!("{guest}/../../etc/passwd"))),
        );
        record(
            "read-dotdot-wasi",
            outcome(read_wasi("../../etc/passwd", PathFlags::SYMLINK_FOLLOW)),
        );
        record(
            "read-symlink-std",
            outcome(std::fs::read(format!("{guest}/link/passwd"))),
        );
        record(
            "read-symlink-wasi",
            outcome(read_wasi("link/passwd", PathFlags::SYMLINK_FOLLOW)),
        );
        record("read-dir-dotdot", outcome(volumes::read_dir(&name, "..")));
        record(
            "read-dir-absolute",
            outcome(volumes::read_dir(&name, "/etc")),
        );
        record(
            "read-dir-symlink",
            outcome(volumes::read_dir(&name, "link")),
        );
        record("stat-dotdot", outcome(volumes::stat(&name, "../..")));
        record(
            "write-readonly",
            outcome(dir.open_at(
                PathFlags::empty(),
                "escape-fs-probe",
                OpenFlags::CREATE,
                DescriptorFlags::WRITE,
            )),
        );
        record(
            "mkdir-readonly",
            outcome(dir.create_directory_at("escape-fs-probe-dir")),
        );
        let update = MetadataUpdate {
            mode: Some(0o777),
            owner: None,
            mtime: None,
            atime: None,
        };
        record(
            "set-attributes-readonly",
            outcome(volumes::set_attributes(&name, "", update)),
        );
        record(
            "make-special-readonly",
            outcome(volumes::make_special(
                &name,
                "escape-fs-fifo",
                EntryKind::Fifo,
                0o644,
                0,
            )),
        );
        // Host-side reads into a tree component (the tree is never finished, so nothing is
        // recorded).
        let tree = job.create_tree("probe")?;
        let probe = stowaway_addon::Entry {
            path: "probe".into(),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: stowaway_addon::Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            ctime: stowaway_addon::Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            atime: stowaway_addon::Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            inode: 0,
            device: 0,
            nlink: 1,
            rdev: 0,
            link_target: None,
        };
        if let Some(content) = tree.add_file(&probe)? {
            for (attempt, path) in [
                ("copy-from-dotdot", "../../etc/passwd"),
                ("copy-from-absolute", "/etc/passwd"),
                ("copy-from-symlink-dir", "link/passwd"),
                ("copy-from-symlink", "link"),
            ] {
                record(attempt, outcome(content.copy_from(&name, path)));
            }
        }
        Ok(out)
    }
}

stowaway_addon::export_addon!(EscapeFs);
