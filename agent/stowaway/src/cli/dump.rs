//! `stowaway dump`: one component to stdout, a stream as is, a tree as a tar archive.

use std::io::Write;

use anyhow::Context;
use stowaway_repository::{ComponentKind, EntryKind, Repository};

use super::Global;

/// Write one component to stdout (a tree as a tar archive).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    /// Component name (see `stowaway snapshots --json` or `stowaway ls`).
    component: String,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open_indexed(g).await?;
    let snapshot = repo.find_snapshot(&args.snapshot).await?;
    let component = super::component(&snapshot, &args.component)?.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let stdout = std::io::stdout().lock();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
        match component.kind {
            ComponentKind::Stream => {
                let mut reader = repo.open_stream(&component)?;
                std::io::copy(&mut reader, &mut out)?;
            }
            ComponentKind::Tree => write_tar(&repo, &component, &mut out)?,
        }
        out.flush()?;
        Ok(())
    })
    .await
    .context("the dump task failed")??;
    Ok(0)
}

fn write_tar(
    repo: &Repository,
    component: &stowaway_repository::ComponentRecord,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut reader = repo.open_tree(component)?;
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    while let Some(entry) = reader.next_entry()? {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode & 0o7777);
        header.set_uid(entry.uid.into());
        header.set_gid(entry.gid.into());
        header.set_mtime(u64::try_from(entry.mtime.secs).unwrap_or(0));
        header.set_size(0);
        let path = &entry.path;
        match entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            EntryKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.size);
                let content = reader.content()?;
                tar.append_data(&mut header, path, content)?;
            }
            EntryKind::Symlink | EntryKind::Hardlink => {
                header.set_entry_type(if entry.kind == EntryKind::Symlink {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                let target = entry.link_target.clone().unwrap_or_default();
                tar.append_link(&mut header, path, target)?;
            }
            EntryKind::Fifo | EntryKind::CharDev | EntryKind::BlockDev => {
                header.set_entry_type(match entry.kind {
                    EntryKind::Fifo => tar::EntryType::Fifo,
                    EntryKind::CharDev => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                let major = ((entry.rdev >> 8) & 0xfff) as u32;
                let minor = ((entry.rdev & 0xff) | ((entry.rdev >> 12) & 0xfff00)) as u32;
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
                tar.append_data(&mut header, path, std::io::empty())?;
            }
            EntryKind::Socket => continue,
        }
    }
    tar.finish()?;
    Ok(())
}
