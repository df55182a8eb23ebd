//! Helpers shared by the key and copy tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::Read;

use stowaway_repository::{
    Backup, ComponentRecord, Entry, EntryKind, Error, FileDecision, InitOptions, KdfParams,
    Repository, Snapshot, SnapshotMeta, Target, Time,
};
use stowaway_storage::Storage;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn options() -> InitOptions {
    InitOptions {
        kdf: KdfParams::insecure_fast(),
        pack_size: 4 * 1024 * 1024,
        ..InitOptions::default()
    }
}

pub async fn new_repo(storage: Storage) -> Repository {
    let repo = Repository::init(storage, PASSWORD, options())
        .await
        .expect("init");
    repo.load_index().await.expect("load index");
    repo
}

/// Runs blocking repository calls off the runtime's worker threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// Deterministic incompressible bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

pub fn entry(path: &str, kind: EntryKind) -> Entry {
    let mut e = Entry::new(path, kind);
    e.mode = 0o644;
    e.uid = 1000;
    e.gid = 1000;
    e.mtime = Time {
        secs: 1_700_000_000,
        nanos: 5,
    };
    e
}

pub fn file(path: &str, content: &[u8]) -> (Entry, Option<Vec<u8>>) {
    let mut e = entry(path, EntryKind::File);
    e.size = content.len() as u64;
    (e, Some(content.to_vec()))
}

pub fn dir(path: &str) -> (Entry, Option<Vec<u8>>) {
    (entry(path, EntryKind::Dir), None)
}

/// Entries in writing order (parents first), files with their content.
pub type Content = Vec<(Entry, Option<Vec<u8>>)>;

/// One component to back up.
pub enum Component {
    Stream(&'static str, Vec<u8>),
    Tree(&'static str, Content),
}

fn write_component(backup: &Backup, component: Component) -> ComponentRecord {
    match component {
        Component::Stream(name, data) => {
            let mut writer = backup
                .stream(name, "application/octet-stream")
                .expect("stream");
            for piece in data.chunks(100_000) {
                writer.write(piece).expect("write");
            }
            writer.finish(Vec::new()).expect("finish stream")
        }
        Component::Tree(name, items) => {
            let mut writer = backup.tree(name).expect("tree");
            for (entry, content) in items {
                match content {
                    None => writer.add(entry).expect("add"),
                    Some(bytes) => {
                        if writer.add_file(entry).expect("add_file") == FileDecision::NeedContent {
                            writer.write_content(&bytes).expect("write_content");
                            writer.finish_file(false).expect("finish_file");
                        }
                    }
                }
            }
            writer.finish(Vec::new()).expect("finish tree")
        }
    }
}

/// Backs up `components` as one snapshot of target `test/name`, tagged `tag`.
pub async fn backup(
    repo: &Repository,
    parent: Option<&Snapshot>,
    name: &str,
    components: Vec<Component>,
) -> Snapshot {
    let backup = repo.start_backup(parent).expect("start backup");
    let (backup, records) = blocking(move || {
        let records = components
            .into_iter()
            .map(|c| write_component(&backup, c))
            .collect::<Vec<_>>();
        (backup, records)
    })
    .await;
    let meta = SnapshotMeta {
        target: Target {
            kind: "test".into(),
            name: name.into(),
        },
        tags: vec!["nightly".into()],
        session: Some("session-1".into()),
        attributes: vec![("k".into(), "v".into())],
        ..SnapshotMeta::default()
    };
    backup.commit(meta, records).await.expect("commit")
}

pub async fn read_stream(repo: &Repository, component: &ComponentRecord) -> Vec<u8> {
    let repo = repo.clone();
    let component = component.clone();
    blocking(move || {
        let mut reader = repo.open_stream(&component).expect("open stream");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read stream");
        out
    })
    .await
}

/// Every entry of a tree component with file content, in reading order.
pub async fn read_tree(repo: &Repository, component: &ComponentRecord) -> Result<Content, Error> {
    let repo = repo.clone();
    let component = component.clone();
    blocking(move || {
        let mut reader = repo.open_tree(&component)?;
        let mut out = Vec::new();
        while let Some(entry) = reader.next_entry()? {
            let content = if entry.kind == EntryKind::File {
                let mut bytes = Vec::new();
                reader.content()?.read_to_end(&mut bytes)?;
                Some(bytes)
            } else {
                None
            };
            out.push((entry, content));
        }
        Ok(out)
    })
    .await
}
