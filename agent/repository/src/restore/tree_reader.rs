//! [`TreeReader`]: walks a tree component, validating every node, with file content
//! prefetched in tree order by one pipeline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::Arc;

use crate::entry::{Entry, EntryKind, validate_name};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::repository::Repository;
use crate::restore::prefetch::BlobStream;
use crate::snapshot::ComponentRecord;
use crate::tree::{Node, Tree};

/// Deepest directory nesting accepted.
const MAX_DEPTH: usize = 1024;

/// Reads a tree component entry by entry: depth-first, parents before children, names in
/// byte order within a directory, and hard links after all other entries (so their
/// targets exist when restoring).
pub struct TreeReader {
    items: VecDeque<(Entry, usize)>,
    /// The walk stopped here (returned after the valid entries before it).
    error: Option<Error>,
    content: BlobStream,
    /// Content blobs of the current file not yet consumed.
    remaining: usize,
    buf: Vec<u8>,
    pos: usize,
}

/// Checks one node; `path` is its full path. Hard-link targets are checked after the walk.
fn validate_node(node: &Node, path: &str) -> Result<()> {
    validate_name(path, &node.name)?;
    let bad = |reason: &str| Err(Error::invalid_entry(path, reason));
    match node.kind {
        EntryKind::Dir if node.subtree.is_none() => return bad("directory without a subtree"),
        EntryKind::Dir => {}
        _ if node.subtree.is_some() => return bad("only directories have a subtree"),
        _ => {}
    }
    if node.kind != EntryKind::File && !node.content.is_empty() {
        return bad("only regular files have content");
    }
    match node.kind {
        EntryKind::Symlink | EntryKind::Hardlink if node.link_target.is_none() => {
            bad("link without a target")
        }
        _ => Ok(()),
    }
}

/// Walks the whole tree; returns the valid entries (with their content blob counts), all
/// content ids in order, and the error that stopped the walk, if any.
/// The nodes of tree `id`: from the preloaded trees, or read alone (to get its error).
async fn load_nodes(
    repo: &Repository,
    trees: &HashMap<BlobId, Arc<Tree>>,
    id: BlobId,
) -> Result<Vec<Node>> {
    match trees.get(&id) {
        Some(tree) => Ok(tree.nodes.clone()),
        None => Ok(repo.read_tree(&id).await?.nodes),
    }
}

async fn walk(
    repo: Repository,
    root: BlobId,
) -> Result<(VecDeque<(Entry, usize)>, Vec<BlobId>, Option<Error>)> {
    let mut items = VecDeque::new();
    let mut content = Vec::new();
    let mut files = HashSet::new();
    let mut hardlinks = Vec::new();
    // All trees in a few batched reads; a tree the batch could not read is read alone below,
    // which reports its error at the right place of the walk.
    let trees = crate::restore::read_tree_closure(&repo, root).await;
    let root_tree = Tree {
        nodes: load_nodes(&repo, &trees, root).await?,
    };
    let mut stack = vec![(String::new(), root_tree.nodes.into_iter(), None::<String>)];
    let error = loop {
        let Some((prefix, nodes, last)) = stack.last_mut() else {
            break None;
        };
        let Some(node) = nodes.next() else {
            stack.pop();
            continue;
        };
        let path = if prefix.is_empty() {
            node.name.clone()
        } else {
            format!("{prefix}/{}", node.name)
        };
        if let Err(e) = validate_node(&node, &path) {
            break Some(e);
        }
        if last
            .as_ref()
            .is_some_and(|l| l.as_str() >= node.name.as_str())
        {
            break Some(Error::invalid_entry(
                &path,
                "names not sorted or duplicated",
            ));
        }
        *last = Some(node.name.clone());
        if node.kind == EntryKind::Hardlink {
            hardlinks.push(node.to_entry(path));
            continue;
        }
        items.push_back((node.to_entry(path.clone()), node.content.len()));
        content.extend_from_slice(&node.content);
        match (node.kind, node.subtree) {
            (EntryKind::File, _) => {
                files.insert(path);
            }
            (EntryKind::Dir, Some(subtree)) => {
                if stack.len() >= MAX_DEPTH {
                    break Some(Error::invalid_entry(&path, "directories nested too deeply"));
                }
                match load_nodes(&repo, &trees, subtree).await {
                    Ok(nodes) => stack.push((path, nodes.into_iter(), None)),
                    Err(e) => break Some(e),
                }
            }
            _ => {}
        }
    };
    // Hard links come last so that their targets exist when they are restored.
    let mut error = error;
    for link in hardlinks {
        match &link.link_target {
            Some(target) if files.contains(target) => items.push_back((link, 0)),
            _ => {
                error.get_or_insert_with(|| {
                    Error::invalid_entry(&link.path, "hard link target is not a file of this tree")
                });
                break;
            }
        }
    }
    Ok((items, content, error))
}

impl TreeReader {
    pub(crate) fn open(repo: &Repository, component: &ComponentRecord) -> Result<TreeReader> {
        let walk_repo = repo.clone();
        let root = component.root;
        let (items, content, error) = repo.run(walk(walk_repo, root))?;
        tracing::debug!(entries = items.len(), blobs = content.len(), "walked tree");
        Ok(TreeReader {
            items,
            error,
            content: BlobStream::start(repo, content),
            remaining: 0,
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// The next entry; skips unread content of the previous file. An invalid node ends
    /// the walk with [`Error::InvalidEntry`] naming its path.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        while self.remaining > 0 {
            self.remaining -= 1;
            self.content.next_blob()?;
        }
        self.buf.clear();
        self.pos = 0;
        match self.items.pop_front() {
            Some((entry, blobs)) => {
                self.remaining = blobs;
                Ok(Some(entry))
            }
            None => match self.error.take() {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    /// A reader over the current file's content (empty for other entries).
    pub fn content(&mut self) -> Result<ContentReader<'_>> {
        Ok(ContentReader { reader: self })
    }
}

/// Reads the current file's bytes from a [`TreeReader`].
pub struct ContentReader<'a> {
    reader: &'a mut TreeReader,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let r = &mut *self.reader;
        while r.pos == r.buf.len() {
            if r.remaining == 0 {
                return Ok(0);
            }
            r.remaining -= 1;
            match r.content.next_blob().map_err(std::io::Error::other)? {
                Some(blob) => {
                    r.buf = blob;
                    r.pos = 0;
                }
                None => return Err(std::io::Error::other(Error::Shutdown)),
            }
        }
        let n = out.len().min(r.buf.len() - r.pos);
        out[..n].copy_from_slice(&r.buf[r.pos..r.pos + n]);
        r.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobType;
    use crate::config::{InitOptions, KdfParams};
    use crate::snapshot::{ComponentKind, SnapshotMeta};
    use crate::tree::Tree;
    use stowaway_storage::Storage;

    fn node(name: &str, kind: EntryKind) -> Node {
        Node::from_entry(&Entry::new(name, kind), name)
    }

    /// Stores hand-crafted trees (`trees[0]` is the root; a dir node's subtree may refer
    /// to a later tree by index through `links`) and reads them back.
    async fn read_crafted(root: Vec<Node>, sub: Option<Vec<Node>>) -> Result<Vec<String>> {
        let options = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        };
        let repo = Repository::init(Storage::memory(), "pw", options).await?;
        repo.load_index().await?;
        let backup = repo.start_backup(None)?;
        let (backup, root_id) = tokio::task::spawn_blocking(move || {
            let mut root = root;
            if let Some(sub) = sub {
                let json =
                    serde_json::to_vec(&Tree { nodes: sub }).map_err(std::io::Error::other)?;
                let id = backup.store_blob(BlobType::Tree, &json)?;
                for n in root.iter_mut().filter(|n| n.kind == EntryKind::Dir) {
                    n.subtree = Some(id);
                }
            }
            let json = serde_json::to_vec(&Tree { nodes: root }).map_err(std::io::Error::other)?;
            let id = backup.store_blob(BlobType::Tree, &json)?;
            Ok::<_, Error>((backup, id))
        })
        .await
        .map_err(|_| Error::Shutdown)??;
        let record = ComponentRecord {
            name: "evil".into(),
            kind: ComponentKind::Tree,
            media_type: String::new(),
            size: 0,
            attributes: Vec::new(),
            root: root_id,
        };
        backup
            .commit(SnapshotMeta::default(), vec![record.clone()])
            .await?;
        tokio::task::spawn_blocking(move || {
            let mut reader = repo.open_tree(&record)?;
            let mut paths = Vec::new();
            while let Some(entry) = reader.next_entry()? {
                paths.push(entry.path);
            }
            Ok(paths)
        })
        .await
        .map_err(|_| Error::Shutdown)?
    }

    async fn expect_invalid(root: Vec<Node>, sub: Option<Vec<Node>>, path: &str) {
        match read_crafted(root, sub).await {
            Err(Error::InvalidEntry { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected InvalidEntry for {path:?}, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malicious_trees_are_rejected() {
        expect_invalid(vec![node("..", EntryKind::Fifo)], None, "..").await;
        expect_invalid(vec![node(".", EntryKind::Dir)], Some(vec![]), ".").await;
        expect_invalid(vec![node("/etc", EntryKind::Dir)], Some(vec![]), "/etc").await;
        expect_invalid(vec![node("", EntryKind::File)], None, "").await;
        expect_invalid(vec![node("a\0b", EntryKind::File)], None, "a\0b").await;
        // An escape inside a subdirectory is reported with its full path.
        expect_invalid(
            vec![node("d", EntryKind::Dir)],
            Some(vec![node("..", EntryKind::Fifo)]),
            "d/..",
        )
        .await;
        // Entries "under" a symlink or a file: a symlink named "a" plus a node "a/b", or a
        // symlink carrying a subtree.
        let mut link = node("a", EntryKind::Symlink);
        link.link_target = Some("/etc".into());
        expect_invalid(
            vec![link.clone(), node("a/b", EntryKind::File)],
            None,
            "a/b",
        )
        .await;
        let mut link_with_subtree = link.clone();
        link_with_subtree.subtree = Some(crate::BlobId::default());
        expect_invalid(vec![link_with_subtree], None, "a").await;
        let mut file_with_subtree = node("f", EntryKind::File);
        file_with_subtree.subtree = Some(crate::BlobId::default());
        expect_invalid(vec![file_with_subtree], None, "f").await;
        // Duplicates and unsorted names.
        expect_invalid(
            vec![node("x", EntryKind::Fifo), node("x", EntryKind::Fifo)],
            None,
            "x",
        )
        .await;
        // A hard link to something that is not a file of the tree.
        let mut hard = node("h", EntryKind::Hardlink);
        hard.link_target = Some("../../etc/shadow".into());
        expect_invalid(vec![hard], None, "h").await;
        // The valid entries before the bad one are returned first.
        let paths = read_crafted(vec![node("ok", EntryKind::Fifo)], None)
            .await
            .expect("valid tree");
        assert_eq!(paths, ["ok"]);
    }
}
