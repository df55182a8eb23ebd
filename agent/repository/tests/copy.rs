//! `copy` between repositories: content, chunk boundaries, deduplication, idempotence,
//! incremental reads and failure without a partial snapshot.

mod common;

use std::sync::Arc;

use common::{
    Component, Content, backup, dir, file, new_repo, options, random_bytes, read_stream, read_tree,
};
use stowaway_repository::{
    BlobType, CheckOptions, ComponentKind, CopyProgress, CopyReport, EntryKind, Error, InitOptions,
    Repository, Snapshot,
};
use stowaway_storage::Storage;

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Copies every snapshot of `src` that `dest` lacks.
async fn copy_all(src: &Repository, dest: &Repository) -> CopyReport {
    let plan = src
        .plan_copy(dest, src.snapshots().await.expect("snapshots"))
        .await
        .expect("plan");
    let lock = dest.lock(false, "copy").await.expect("lock");
    let report = src
        .copy_snapshots(
            dest,
            &plan.to_copy,
            Arc::new(CopyProgress::default()),
            &lock,
        )
        .await
        .expect("copy");
    lock.release().await.expect("unlock");
    report
}

/// Data blobs of `repo`: (count, plaintext bytes).
fn data_blobs(repo: &Repository) -> (usize, u64) {
    let index = repo.index();
    let data: Vec<u64> = index
        .blobs()
        .filter(|(_, l)| l.blob_type == BlobType::Data)
        .map(|(_, l)| u64::from(l.raw_length))
        .collect();
    (data.len(), data.iter().sum())
}

/// Plaintext lengths of the chunks of a stream component.
async fn chunk_lengths(repo: &Repository, snapshot: &Snapshot, name: &str) -> Vec<u32> {
    let component = snapshot.component(name).expect("component");
    let list = repo
        .read_chunk_list(&component.root)
        .await
        .expect("chunk list");
    let index = repo.index();
    list.chunks
        .iter()
        .map(|id| index.get(id).expect("indexed").raw_length)
        .collect()
}

/// Checks that `copy` holds the same metadata and content as `original`.
async fn assert_same(src: &Repository, original: &Snapshot, dest: &Repository, copy: &Snapshot) {
    assert_eq!(copy.original, Some(original.origin()));
    assert_eq!(copy.time, original.time);
    assert_eq!(copy.hostname, original.hostname);
    assert_eq!(copy.username, original.username);
    assert_eq!(copy.target, original.target);
    assert_eq!(copy.addon, original.addon);
    assert_eq!(copy.tags, original.tags);
    assert_eq!(copy.session, original.session);
    assert_eq!(copy.attributes, original.attributes);
    assert_eq!(copy.summary, original.summary);
    assert_eq!(copy.components.len(), original.components.len());
    for (a, b) in original.components.iter().zip(&copy.components) {
        assert_eq!(
            (&a.name, a.kind, &a.media_type, a.size, &a.attributes),
            (&b.name, b.kind, &b.media_type, b.size, &b.attributes)
        );
        assert_ne!(a.root, b.root, "ids are keyed per repository");
        match a.kind {
            ComponentKind::Stream => {
                let (x, y) = (read_stream(src, a).await, read_stream(dest, b).await);
                assert!(x == y, "stream {} differs after the copy", a.name);
                // Not re-chunked: the same boundaries.
                assert_eq!(
                    chunk_lengths(src, original, &a.name).await,
                    chunk_lengths(dest, copy, &b.name).await
                );
            }
            ComponentKind::Tree => {
                let x = read_tree(src, a).await.expect("source tree");
                let y = read_tree(dest, b).await.expect("copied tree");
                assert!(x == y, "tree {} differs after the copy", a.name);
            }
        }
    }
}

/// A stream and a tree; `shared` appears in the stream, in a file, and in both snapshots.
fn first_snapshot(shared: &[u8]) -> Vec<Component> {
    let tree: Content = vec![
        dir("a"),
        file("a/one", &random_bytes(3 << 20, 3)),
        file("a/two", shared),
        file("a/small", b"hello"),
        dir("empty"),
    ];
    vec![
        Component::Stream("dump", concat(&[shared, &random_bytes(2 << 20, 2)])),
        Component::Tree("files", tree),
    ]
}

fn second_snapshot(shared: &[u8]) -> Vec<Component> {
    let mut link = common::entry("a/link", EntryKind::Symlink);
    link.link_target = Some("one".into());
    let tree: Content = vec![
        dir("a"),
        file("a/one", &random_bytes(3 << 20, 3)),
        file("a/three", &random_bytes(2 << 20, 5)),
        (link, None),
        dir("b"),
        file("b/copy-of-small", b"hello"),
    ];
    vec![
        Component::Stream("dump", concat(&[shared, &random_bytes(1 << 20, 4)])),
        Component::Tree("files", tree),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_snapshots_without_rechunking_and_only_once() {
    let src = new_repo(Storage::memory()).await;
    let dest = new_repo(Storage::memory()).await;
    let shared = random_bytes(6 << 20, 1);
    let a = backup(&src, None, "db", first_snapshot(&shared)).await;
    let b = backup(&src, Some(&a), "db", second_snapshot(&shared)).await;

    let report = copy_all(&src, &dest).await;
    assert_eq!(report.copied.len(), 2);
    assert_eq!(report.copied[0].source, a.id);
    assert_eq!(report.copied[1].source, b.id);
    let copies = dest.snapshots().await.expect("snapshots");
    assert_eq!(copies.len(), 2);
    assert_same(&src, &a, &dest, &copies[0]).await;
    assert_same(&src, &b, &dest, &copies[1]).await;
    assert_eq!(
        copies[1].parent,
        Some(copies[0].id),
        "parent mapped to its copy"
    );

    // Every data blob of the source once in the destination: shared data stored once.
    assert_eq!(data_blobs(&dest), data_blobs(&src));
    assert_eq!(report.data_blobs_new as usize, data_blobs(&src).0);
    // Each source blob was read once, although `shared` is referenced four times.
    let (_, src_data_bytes) = data_blobs(&src);
    assert!(report.bytes_read >= src_data_bytes);
    assert!(
        report.bytes_read < src_data_bytes + (64 << 10),
        "{report:?} read {src_data_bytes} data bytes more than once"
    );

    let check = dest
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    assert!(check.is_ok(), "{:?}", check.errors);

    // A second copy finds both present and writes nothing.
    let plan = src
        .plan_copy(&dest, src.snapshots().await.expect("snapshots"))
        .await
        .expect("plan");
    assert!(plan.to_copy.is_empty());
    assert_eq!(plan.present.len(), 2);
    assert_eq!(copy_all(&src, &dest).await, CopyReport::default());
    assert_eq!(dest.snapshots().await.expect("snapshots").len(), 2);

    // Copying back, or on to a third (unencrypted) repository and then from the source
    // again: the origin is recognised through the chain.
    let back = dest
        .plan_copy(&src, dest.snapshots().await.expect("snapshots"))
        .await
        .expect("plan back");
    assert!(back.to_copy.is_empty() && back.present.len() == 2);
    let third = Repository::init(
        Storage::memory(),
        "",
        InitOptions {
            encryption: false,
            ..options()
        },
    )
    .await
    .expect("init third");
    third.load_index().await.expect("index");
    assert_eq!(copy_all(&dest, &third).await.copied.len(), 2);
    let on_third = third.snapshots().await.expect("snapshots");
    assert_eq!(on_third[0].original, Some(a.id));
    assert_same(&src, &a, &third, &on_third[0]).await;
    let again = src
        .plan_copy(&third, src.snapshots().await.expect("snapshots"))
        .await
        .expect("plan");
    assert!(again.to_copy.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_copy_reads_only_new_data() {
    let src = new_repo(Storage::memory()).await;
    let dest = new_repo(Storage::memory()).await;
    let base = random_bytes(12 << 20, 11);
    let tree = |extra: &[u8]| -> Content {
        vec![
            dir("d"),
            file("d/big", &base),
            file("d/extra", extra),
            dir("d/sub"),
            file("d/sub/same", &random_bytes(1 << 20, 12)),
        ]
    };
    let first = backup(
        &src,
        None,
        "vol",
        vec![
            Component::Stream("s", base.clone()),
            Component::Tree("t", tree(b"one")),
        ],
    )
    .await;
    assert_eq!(copy_all(&src, &dest).await.copied.len(), 1);

    let tail = random_bytes(1 << 20, 13);
    let second = backup(
        &src,
        Some(&first),
        "vol",
        vec![
            Component::Stream("s", concat(&[&base, &tail])),
            Component::Tree("t", tree(b"second, longer")),
        ],
    )
    .await;
    // A new run: the blobs of the first copy are found by walking both copies' trees, so
    // only the data new in the destination is read (plus a few trees).
    let (_, before) = data_blobs(&dest);
    let report = copy_all(&src, &dest).await;
    let (_, after) = data_blobs(&dest);
    assert_eq!(report.copied.len(), 1);
    assert!(report.data_blobs_new >= 2, "{report:?}");
    assert!(
        report.bytes_read <= after - before + (64 << 10),
        "read {} bytes for {} new: {report:?}",
        report.bytes_read,
        after - before
    );
    let copies = dest.snapshots().await.expect("snapshots");
    assert_same(&src, &second, &dest, &copies[1]).await;
    assert_eq!(data_blobs(&dest), data_blobs(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pack_fails_the_copy_without_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = new_repo(Storage::local(dir.path()).expect("local")).await;
    let dest = new_repo(Storage::memory()).await;
    let shared = random_bytes(2 << 20, 21);
    backup(&src, None, "db", first_snapshot(&shared)).await;
    let pack = src
        .index()
        .blobs()
        .find(|(_, l)| l.blob_type == BlobType::Data)
        .map(|(_, l)| l.pack)
        .expect("a data blob");
    let hex = pack.to_hex();
    std::fs::remove_file(dir.path().join("data").join(&hex[..2]).join(&hex)).expect("rm pack");

    let plan = src
        .plan_copy(&dest, src.snapshots().await.expect("snapshots"))
        .await
        .expect("plan");
    let err = src
        .copy_snapshots(
            &dest,
            &plan.to_copy,
            Arc::new(CopyProgress::default()),
            &dest.lock(false, "copy").await.expect("lock"),
        )
        .await
        .expect_err("a pack is missing");
    assert!(
        matches!(
            err,
            Error::Storage(stowaway_storage::Error::NotFound { ref key }) if key.contains(&hex)
        ),
        "{err}"
    );
    assert!(dest.snapshots().await.expect("snapshots").is_empty());
    let check = dest
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    assert!(check.is_ok(), "{:?}", check.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_into_the_same_repository_is_refused() {
    let storage = Storage::memory();
    let src = new_repo(storage.clone()).await;
    let same = Repository::open(storage, common::PASSWORD)
        .await
        .expect("open");
    let err = src.plan_copy(&same, Vec::new()).await.expect_err("same");
    assert!(matches!(err, Error::Usage(_)), "{err}");
    assert!(err.to_string().contains("same repository"), "{err}");
}
