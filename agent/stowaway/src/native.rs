//! Benchmark mode of `backup` (`--native`, hidden): reads the directories with the host's own
//! file system calls and feeds the repository directly, bypassing the volume addon. It exists
//! to measure what the WebAssembly path costs; backups are made through the addon.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::Context;
use stowaway_repository::{Backup, Entry, EntryKind, FileDecision, Time, TreeWriter};
use stowaway_runtime::{BackupOutput, VolumeGrant};

/// Backs up each volume as a tree component, like the volume addon does.
pub(crate) fn backup(volumes: &[VolumeGrant], backup: &Backup) -> anyhow::Result<BackupOutput> {
    let mut components = Vec::new();
    for volume in volumes {
        let mut tree = backup.tree(&volume.name)?;
        let mut links = HashMap::new();
        walk(&volume.path, "", &mut tree, &mut links)?;
        components.push(tree.finish(Vec::new())?);
    }
    Ok(BackupOutput {
        components,
        attributes: Vec::new(),
    })
}

fn walk(
    root: &Path,
    rel: &str,
    tree: &mut TreeWriter,
    links: &mut HashMap<(u64, u64), String>,
) -> anyhow::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut buf = vec![0u8; 1 << 20];
    for name in names {
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let full = root.join(&path);
        let Ok(md) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_char_device() {
            EntryKind::CharDev
        } else if ft.is_block_device() {
            EntryKind::BlockDev
        } else if ft.is_socket() {
            EntryKind::Socket
        } else {
            EntryKind::File
        };
        let mut entry = Entry::new(path.clone(), kind);
        entry.mode = md.mode() & 0o7777;
        entry.uid = md.uid();
        entry.gid = md.gid();
        entry.mtime = Time {
            secs: md.mtime(),
            nanos: md.mtime_nsec() as u32,
        };
        entry.ctime = Time {
            secs: md.ctime(),
            nanos: md.ctime_nsec() as u32,
        };
        entry.atime = Time {
            secs: md.atime(),
            nanos: md.atime_nsec() as u32,
        };
        entry.inode = md.ino();
        entry.device = md.dev();
        entry.nlink = md.nlink();
        entry.rdev = md.rdev();
        match kind {
            EntryKind::Dir => {
                tree.add(entry)?;
                walk(root, &path, tree, links)?;
            }
            EntryKind::Symlink => {
                entry.link_target = std::fs::read_link(&full)?
                    .into_os_string()
                    .into_string()
                    .ok();
                tree.add(entry)?;
            }
            EntryKind::File => {
                entry.size = md.len();
                if md.nlink() > 1 {
                    if let Some(first) = links.get(&(md.dev(), md.ino())) {
                        entry.kind = EntryKind::Hardlink;
                        entry.size = 0;
                        entry.link_target = Some(first.clone());
                        tree.add(entry)?;
                        continue;
                    }
                    links.insert((md.dev(), md.ino()), path.clone());
                }
                let size = entry.size;
                if let FileDecision::NeedContent = tree.add_file(entry)? {
                    let mut file = std::fs::File::open(&full)?;
                    let mut read = 0u64;
                    loop {
                        let n = file.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        read += n as u64;
                        tree.write_content(&buf[..n])?;
                    }
                    tree.finish_file(read != size)?;
                }
            }
            _ => tree.add(entry)?,
        }
    }
    Ok(())
}
