//! `stowaway ls`: the entries of a snapshot's tree components, read from the trees alone (no
//! file data is downloaded).

use std::io::Write;

use anyhow::bail;
use stowaway_repository::{BlobId, ComponentKind, EntryKind, Repository};

use super::{Global, output};

/// List the entries of a snapshot's tree components.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    /// Only this component.
    component: Option<String>,
    /// Show mode, owner, size and time.
    #[arg(short, long)]
    long: bool,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open_indexed(g).await?;
    let snapshot = repo.find_snapshot(&args.snapshot).await?;
    if let Some(name) = &args.component
        && snapshot.component(name).is_none()
    {
        bail!("snapshot {} has no component {name:?}", snapshot.id.short());
    }
    let mut out = std::io::stdout().lock();
    let mut json_rows = Vec::new();
    for component in &snapshot.components {
        if args
            .component
            .as_ref()
            .is_some_and(|n| n != &component.name)
        {
            continue;
        }
        if component.kind == ComponentKind::Stream {
            if g.json {
                json_rows.push(serde_json::json!({
                    "component": component.name, "path": "", "kind": "stream", "size": component.size,
                }));
            } else {
                writeln!(
                    out,
                    "{} (stream, {}, {})",
                    component.name,
                    component.media_type,
                    output::bytes(component.size)
                )?;
            }
            continue;
        }
        // Depth-first, parents before children, like a restore.
        let mut stack: Vec<(String, BlobId)> = vec![(String::new(), component.root)];
        while let Some((dir, id)) = stack.pop() {
            let tree = repo_tree(&repo, &id).await?;
            let mut subdirs = Vec::new();
            for node in &tree.nodes {
                let path = if dir.is_empty() {
                    node.name.clone()
                } else {
                    format!("{dir}/{}", node.name)
                };
                if g.json {
                    json_rows.push(serde_json::json!({
                        "component": component.name, "path": path, "kind": node.kind,
                        "mode": node.mode, "uid": node.uid, "gid": node.gid, "size": node.size,
                        "mtime": node.mtime.secs, "link_target": node.link_target,
                    }));
                } else if args.long {
                    let time = jiff::Timestamp::from_second(node.mtime.secs)
                        .map(output::time)
                        .unwrap_or_default();
                    let link = node
                        .link_target
                        .as_ref()
                        .map(|t| format!(" -> {t}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{}{:04o} {:>6} {:>6} {:>12} {time} {}/{path}{link}",
                        kind_char(node.kind),
                        node.mode & 0o7777,
                        node.uid,
                        node.gid,
                        node.size,
                        component.name
                    )?;
                } else {
                    writeln!(out, "{}/{path}", component.name)?;
                }
                if let Some(sub) = node.subtree {
                    subdirs.push((path, sub));
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }
    if g.json {
        drop(out);
        output::json(&json_rows)?;
    }
    Ok(0)
}

async fn repo_tree(repo: &Repository, id: &BlobId) -> anyhow::Result<stowaway_repository::Tree> {
    Ok(repo.read_tree(id).await?)
}

fn kind_char(kind: EntryKind) -> char {
    match kind {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
        EntryKind::Hardlink => 'h',
        EntryKind::Fifo => 'p',
        EntryKind::CharDev => 'c',
        EntryKind::BlockDev => 'b',
        EntryKind::Socket => 's',
    }
}
