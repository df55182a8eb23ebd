//! End-to-end tests of the repository through its public API, on memory and tempdir
//! storage.

use std::io::Read;
use std::path::Path;

use stowaway_repository::{
    Backup, CheckOptions, ComponentRecord, Entry, EntryKind, Error, FileDecision, InitOptions,
    KdfParams, Repository, Snapshot, SnapshotMeta, Target, Time,
};
use stowaway_storage::Storage;

mod common;
use common::{
    Content, PASSWORD, blocking, new_repo, options, random_bytes, read_stream, read_tree,
};

fn meta(name: &str) -> SnapshotMeta {
    SnapshotMeta {
        target: Target {
            kind: "test".into(),
            name: name.into(),
        },
        ..SnapshotMeta::default()
    }
}

async fn backup_streams(
    repo: &Repository,
    parent: Option<&Snapshot>,
    streams: Vec<(String, Vec<u8>)>,
) -> Snapshot {
    let backup = repo.start_backup(parent).expect("start backup");
    let (backup, records) = blocking(move || {
        let mut records = Vec::new();
        for (name, data) in streams {
            let mut writer = backup
                .stream(&name, "application/octet-stream")
                .expect("stream");
            for piece in data.chunks(100_000) {
                writer.write(piece).expect("write");
            }
            records.push(
                writer
                    .finish(vec![("k".into(), "v".into())])
                    .expect("finish"),
            );
        }
        (backup, records)
    })
    .await;
    backup
        .commit(meta("streams"), records)
        .await
        .expect("commit")
}

fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_round_trip_byte_for_byte() {
    let storage = Storage::memory();
    let repo = new_repo(storage.clone()).await;
    let repetitive: Vec<u8> = b"stowaway "
        .iter()
        .copied()
        .cycle()
        .take(10 << 20)
        .collect();
    let streams = vec![
        ("empty".to_owned(), Vec::new()),
        ("one".to_owned(), vec![42u8]),
        ("random".to_owned(), random_bytes(10 << 20, 1)),
        ("repetitive".to_owned(), repetitive),
    ];
    let snapshot = backup_streams(&repo, None, streams.clone()).await;
    assert_eq!(snapshot.components.len(), 4);

    // A fresh handle reads everything back from storage alone.
    let reopened = Repository::open(storage, PASSWORD).await.expect("open");
    reopened.load_index().await.expect("load index");
    let found = reopened.find_snapshot("latest").await.expect("latest");
    assert_eq!(found, snapshot);
    for (name, data) in &streams {
        let component = found.component(name).expect("component");
        assert_eq!(component.size, data.len() as u64);
        assert_eq!(component.attributes, vec![("k".to_owned(), "v".to_owned())]);
        let back = read_stream(&reopened, component).await;
        assert!(back == *data, "stream {name} differs");
    }
}

/// The shared test entry plus the ctime and inode the files cache compares.
fn entry(path: &str, kind: EntryKind) -> Entry {
    let mut e = common::entry(path, kind);
    e.ctime = Time {
        secs: 1_700_000_001,
        nanos: 0,
    };
    e.inode = path.len() as u64 + 7;
    e
}

fn file(path: &str, size: usize) -> Entry {
    let mut e = entry(path, EntryKind::File);
    e.size = size as u64;
    e
}

/// Checks the reader's order (parents first, hard links after their targets) and returns
/// the entries sorted by path for comparison with what was written.
fn normalized(mut items: Content) -> Content {
    let mut seen = std::collections::HashSet::new();
    for (entry, _) in &items {
        if let Some((parent, _)) = entry.path.rsplit_once('/') {
            assert!(seen.contains(parent), "{} before its parent", entry.path);
        }
        if entry.kind == EntryKind::Hardlink {
            assert!(seen.contains(entry.link_target.as_deref().unwrap_or_default()));
        }
        seen.insert(entry.path.clone());
    }
    items.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    items
}

/// A tree with every entry kind; files carry content.
fn sample_tree() -> Content {
    let mut link = entry("etc/link", EntryKind::Symlink);
    link.link_target = Some("../data/big".into());
    let mut hard = entry("etc/hard", EntryKind::Hardlink);
    hard.link_target = Some("etc/passwd".into());
    let mut chardev = entry("dev/null", EntryKind::CharDev);
    chardev.rdev = 0x103;
    let mut blockdev = entry("dev/sda", EntryKind::BlockDev);
    blockdev.rdev = 0x800;
    vec![
        (entry("data", EntryKind::Dir), None),
        (file("data/big", 3 << 20), Some(random_bytes(3 << 20, 7))),
        (file("data/empty", 0), Some(Vec::new())),
        (entry("data/sub", EntryKind::Dir), None),
        (file("data/sub/small", 11), Some(b"hello world".to_vec())),
        (entry("dev", EntryKind::Dir), None),
        (chardev, None),
        (blockdev, None),
        (entry("dev/fifo", EntryKind::Fifo), None),
        (entry("dev/sock", EntryKind::Socket), None),
        (entry("etc", EntryKind::Dir), None),
        (file("etc/passwd", 5), Some(b"root\n".to_vec())),
        (hard, None),
        (link, None),
        (file("top", 3), Some(b"top".to_vec())),
    ]
}

fn write_tree(
    backup: &Backup,
    name: &str,
    items: &Content,
) -> (ComponentRecord, Vec<FileDecision>) {
    let mut writer = backup.tree(name).expect("tree");
    let mut decisions = Vec::new();
    for (entry, content) in items {
        match content {
            None => writer.add(entry.clone()).expect("add"),
            Some(bytes) => {
                let decision = writer.add_file(entry.clone()).expect("add_file");
                decisions.push(decision);
                if decision == FileDecision::NeedContent {
                    for piece in bytes.chunks(65_536) {
                        writer.write_content(piece).expect("write_content");
                    }
                    assert_eq!(
                        writer.finish_file(false).expect("finish_file"),
                        bytes.len() as u64
                    );
                }
            }
        }
    }
    (writer.finish(Vec::new()).expect("finish tree"), decisions)
}

async fn backup_tree(
    repo: &Repository,
    parent: Option<&Snapshot>,
    items: Content,
) -> (Snapshot, Vec<FileDecision>) {
    let backup = repo.start_backup(parent).expect("start backup");
    let (backup, record, decisions) = blocking(move || {
        let (record, decisions) = write_tree(&backup, "files", &items);
        (backup, record, decisions)
    })
    .await;
    let snapshot = backup
        .commit(meta("tree"), vec![record])
        .await
        .expect("commit");
    (snapshot, decisions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_with_every_kind_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = new_repo(Storage::local(dir.path()).expect("local")).await;
    let items = sample_tree();
    let (snapshot, decisions) = backup_tree(&repo, None, items.clone()).await;
    assert!(decisions.iter().all(|d| *d == FileDecision::NeedContent));
    let component = &snapshot.components[0];
    assert_eq!(component.size, (3 << 20) + 11 + 5 + 3);
    let back = read_tree(&repo, component).await.expect("read tree");
    assert_eq!(normalized(back), normalized(items.clone()));

    // Skipping content is allowed: the next entry skips the unread bytes.
    let repo2 = repo.clone();
    let component = component.clone();
    let names = blocking(move || {
        let mut reader = repo2.open_tree(&component).expect("open");
        let mut names = Vec::new();
        while let Some(e) = reader.next_entry().expect("next") {
            if e.path == "data/sub/small" {
                let mut s = String::new();
                reader
                    .content()
                    .expect("content")
                    .read_to_string(&mut s)
                    .expect("read");
                assert_eq!(s, "hello world");
            }
            names.push(e.path);
        }
        names
    })
    .await;
    assert_eq!(names.len(), items.len());
    assert!(
        repo.check(CheckOptions { read_data: true }, &())
            .await
            .expect("check")
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_backup_deduplicates() {
    let repo = new_repo(Storage::memory()).await;
    let data = random_bytes(40 << 20, 3);
    let first = backup_streams(&repo, None, vec![("s".into(), data.clone())]).await;
    assert!(first.summary.data_blobs_new >= 20);
    let second = backup_streams(&repo, Some(&first), vec![("s".into(), data.clone())]).await;
    assert_eq!(second.summary.data_blobs_new, 0);
    assert_eq!(second.summary.tree_blobs_new, 0);
    assert_eq!(second.parent, Some(first.id));

    let mut changed = data.clone();
    let mid = changed.len() / 2;
    changed[mid..mid + (1 << 20)].copy_from_slice(&random_bytes(1 << 20, 99));
    let third = backup_streams(&repo, Some(&second), vec![("s".into(), changed.clone())]).await;
    // About 2 chunks change; resynchronization depends on the repository's random gear
    // seed (see the chunker's unit test for the distribution), so allow up to 8.
    assert!(third.summary.data_blobs_new <= 8, "{:?}", third.summary);
    assert_eq!(read_stream(&repo, &third.components[0]).await, changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cache_skips_unchanged_files() {
    let repo = new_repo(Storage::memory()).await;
    let items = sample_tree();
    let (first, _) = backup_tree(&repo, None, items.clone()).await;
    let (second, decisions) = backup_tree(&repo, Some(&first), items.clone()).await;
    assert!(
        decisions.iter().all(|d| *d == FileDecision::Unchanged),
        "{decisions:?}"
    );
    assert_eq!(second.summary.files_unmodified, 5);
    assert_eq!(second.summary.data_blobs_new, 0);
    assert_eq!(second.components[0].root, first.components[0].root);
    assert_eq!(
        normalized(read_tree(&repo, &second.components[0]).await.expect("read")),
        normalized(items.clone())
    );

    // A changed mtime means the content is read again.
    let mut touched = items.clone();
    touched[1].0.mtime.secs += 1;
    let (third, decisions) = backup_tree(&repo, Some(&second), touched.clone()).await;
    assert_eq!(decisions[0], FileDecision::NeedContent);
    assert!(decisions[1..].iter().all(|d| *d == FileDecision::Unchanged));
    assert_eq!(third.summary.files_changed, 1);
    assert_eq!(
        normalized(read_tree(&repo, &third.components[0]).await.expect("read")),
        normalized(touched)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_writer_rejects_invalid_entries() {
    let repo = new_repo(Storage::memory()).await;
    let backup = repo.start_backup(None).expect("start");
    blocking(move || {
        let mut w = backup.tree("t").expect("tree");
        let invalid = |r: Result<(), Error>, path: &str| match r {
            Err(Error::InvalidEntry { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected InvalidEntry for {path}, got {other:?}"),
        };
        invalid(w.add(entry("../x", EntryKind::Dir)), "../x");
        invalid(w.add(entry("/etc", EntryKind::Dir)), "/etc");
        invalid(w.add(entry("a//b", EntryKind::Dir)), "a//b");
        invalid(w.add(entry("a/./b", EntryKind::Dir)), "a/./b");
        invalid(w.add(entry("", EntryKind::Dir)), "");
        invalid(w.add(entry("nul\0", EntryKind::Fifo)), "nul\0");
        invalid(
            w.add(entry("missing/child", EntryKind::Fifo)),
            "missing/child",
        );
        assert_eq!(
            w.add_file(file("f", 0)).expect("file"),
            FileDecision::NeedContent
        );
        w.finish_file(false).expect("finish");
        invalid(
            w.add(entry("f/under-file", EntryKind::Fifo)),
            "f/under-file",
        );
        invalid(w.add_file(file("f", 0)).map(|_| ()), "f");
        let mut link = entry("link", EntryKind::Symlink);
        link.link_target = Some("f".into());
        w.add(link).expect("symlink");
        invalid(w.add(entry("link/x", EntryKind::Fifo)), "link/x");
        let mut hard = entry("hard", EntryKind::Hardlink);
        hard.link_target = Some("nope".into());
        invalid(w.add(hard), "hard");
        w.add(entry("d1", EntryKind::Dir)).expect("d1");
        w.add(entry("d2", EntryKind::Dir)).expect("d2");
        invalid(w.add(entry("d1/late", EntryKind::Fifo)), "d1/late");

        // Size mismatch unless the caller says the file changed.
        w.add_file(file("d2/grew", 3)).expect("add");
        w.write_content(b"four").expect("write");
        match w.finish_file(false) {
            Err(Error::SizeMismatch {
                path,
                expected: 3,
                actual: 4,
            }) => assert_eq!(path, "d2/grew"),
            other => panic!("expected SizeMismatch, got {other:?}"),
        }
        w.add_file(file("d2/grew", 3)).expect("add again");
        w.write_content(b"four").expect("write");
        assert_eq!(w.finish_file(true).expect("changed"), 4);
        w.add_file(file("d2/gone", 3)).expect("add");
        w.discard_file();
        let record = w.finish(Vec::new()).expect("finish");
        assert_eq!(record.size, 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_missing_repository() {
    let storage = Storage::memory();
    match Repository::open(storage.clone(), PASSWORD).await {
        Err(Error::NotARepository { .. }) => {}
        other => panic!("expected NotARepository, got {other:?}"),
    }
    new_repo(storage.clone()).await;
    assert!(matches!(
        Repository::init(storage.clone(), PASSWORD, options()).await,
        Err(Error::AlreadyInitialized)
    ));
    assert!(matches!(
        Repository::open(storage.clone(), "wrong").await,
        Err(Error::WrongPassword)
    ));
    // A second key opens the same repository.
    let repo = Repository::open(storage.clone(), PASSWORD)
        .await
        .expect("open");
    repo.add_key("second", KdfParams::insecure_fast())
        .await
        .expect("add key");
    let again = Repository::open(storage, "second")
        .await
        .expect("open with second key");
    assert_eq!(again.config().id, repo.config().id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_in_storage_unless_unencrypted() {
    let marker = b"STOWAWAY-MARKER-7f3a9c";
    let mut data = random_bytes(3 << 20, 5);
    data[1_000_000..1_000_000 + marker.len()].copy_from_slice(marker);
    let mut with_tree = sample_tree();
    with_tree[4].0.path = "data/sub/STOWAWAY-MARKER-7f3a9c".into();

    for encrypted in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path()).expect("local");
        let options = InitOptions {
            encryption: encrypted,
            ..options()
        };
        let repo = Repository::init(storage.clone(), PASSWORD, options)
            .await
            .expect("init");
        repo.load_index().await.expect("index");
        let s = backup_streams(&repo, None, vec![("s".into(), data.clone())]).await;
        backup_tree(&repo, None, with_tree.clone()).await;
        let found = all_files(dir.path())
            .iter()
            .any(|p| contains(&std::fs::read(p).expect("read"), marker));
        assert_eq!(found, !encrypted, "encrypted = {encrypted}");

        let reopened = Repository::open(storage, "any password").await;
        if encrypted {
            assert!(matches!(reopened, Err(Error::WrongPassword)));
        } else {
            let reopened = reopened.expect("unencrypted opens without a password");
            reopened.load_index().await.expect("index");
            assert_eq!(read_stream(&reopened, &s.components[0]).await, data);
            assert!(
                reopened
                    .check(CheckOptions { read_data: true }, &())
                    .await
                    .expect("check")
                    .is_ok()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_snapshot_of_a_damaged_pack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = new_repo(Storage::local(dir.path()).expect("local")).await;
    let damaged = backup_streams(&repo, None, vec![("s".into(), random_bytes(2 << 20, 11))]).await;
    let intact = backup_streams(
        &repo,
        None,
        vec![("other".into(), random_bytes(1 << 20, 12))],
    )
    .await;
    let report = repo
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.blobs_checked > 0);

    // Flip one byte in the middle of the first data blob of the damaged snapshot's stream.
    let list = repo
        .read_chunk_list(&damaged.components[0].root)
        .await
        .expect("list");
    let location = repo.index().get(&list.chunks[0]).expect("location");
    let hex = location.pack.to_hex();
    let path = dir.path().join("data").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).expect("read pack");
    bytes[(location.offset + location.length / 2) as usize] ^= 0x01;
    std::fs::write(&path, bytes).expect("write pack");

    let report = repo
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    let blob_error = report
        .errors
        .iter()
        .find(|e| e.blob == Some(list.chunks[0]))
        .unwrap_or_else(|| panic!("no error for the blob: {:?}", report.errors));
    assert_eq!(blob_error.snapshots, vec![damaged.id]);
    assert_eq!(blob_error.pack, Some(location.pack));
    assert!(
        report
            .errors
            .iter()
            .all(|e| !e.snapshots.contains(&intact.id))
    );
    assert!(blob_error.to_string().contains(&damaged.id.short()));

    // Reading the stream fails with a corruption error too.
    let repo2 = repo.clone();
    let component = damaged.components[0].clone();
    let err = blocking(move || {
        let mut out = Vec::new();
        repo2
            .open_stream(&component)
            .expect("open")
            .read_to_end(&mut out)
            .expect_err("corrupt")
    })
    .await;
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_backup_leaves_only_unreferenced_packs() {
    let repo = new_repo(Storage::memory()).await;
    let backup = repo.start_backup(None).expect("start");
    blocking(move || {
        let mut w = backup.stream("s", "x").expect("stream");
        w.write(&random_bytes(6 << 20, 21)).expect("write");
        w.finish(Vec::new()).expect("finish");
        drop(backup);
    })
    .await;
    // The workers flush and upload what they hold in the background.
    let mut report = repo
        .check(CheckOptions::default(), &())
        .await
        .expect("check");
    for _ in 0..100 {
        if report.unreferenced_packs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        report = repo
            .check(CheckOptions::default(), &())
            .await
            .expect("check");
    }
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(!report.unreferenced_packs.is_empty());
    assert!(repo.snapshots().await.expect("snapshots").is_empty());

    let data = random_bytes(6 << 20, 21);
    let snapshot = backup_streams(&repo, None, vec![("s".into(), data.clone())]).await;
    assert_eq!(read_stream(&repo, &snapshot.components[0]).await, data);
    assert!(
        repo.check(CheckOptions { read_data: true }, &())
            .await
            .expect("check")
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_conflict_as_specified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = new_repo(Storage::local(dir.path()).expect("local")).await;
    // Shared locks (backups) never conflict, not even with prune: prune is safe beside them.
    let a = repo.lock(false, "backup").await.expect("shared");
    let b = repo.lock(false, "backup").await.expect("second shared");
    let exclusive = repo
        .lock(true, "prune")
        .await
        .expect("prune beside backups");
    let c = repo
        .lock(false, "backup")
        .await
        .expect("backup beside prune");
    // Exclusive locks (prune, check) exclude each other.
    match repo.lock(true, "check").await {
        Err(Error::Locked { by }) => assert!(by.contains("exclusive lock for prune"), "{by}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(
        repo.locks().await.expect("locks").len(),
        4,
        "failed attempts remove their lock"
    );
    for guard in [a, b, c] {
        guard.release().await.expect("release");
    }
    exclusive.release().await.expect("release");
    assert!(repo.locks().await.expect("locks").is_empty());

    // A lock not refreshed for an hour is stale and does not block.
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let stale = serde_json::json!({
        "hostname": "elsewhere", "pid": 1, "time": old, "refreshed": old,
        "exclusive": true, "operation": "prune"
    });
    repo.storage()
        .put(
            &format!("locks/{}", "ab".repeat(32)),
            serde_json::to_vec(&stale).expect("json").into(),
        )
        .await
        .expect("put");
    let guard = repo.lock(true, "prune").await.expect("stale lock ignored");
    assert_eq!(repo.remove_stale_locks().await.expect("remove"), 1);
    drop(guard);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        repo.locks().await.expect("locks").is_empty(),
        "drop deletes the lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_snapshot_and_stats() {
    let repo = new_repo(Storage::memory()).await;
    let a = backup_streams(&repo, None, vec![("s".into(), random_bytes(100_000, 1))]).await;
    let b = backup_streams(
        &repo,
        Some(&a),
        vec![("s".into(), random_bytes(100_000, 2))],
    )
    .await;
    assert_eq!(repo.find_snapshot("latest").await.expect("latest").id, b.id);
    assert_eq!(
        repo.find_snapshot(&a.id.to_hex()[..8])
            .await
            .expect("prefix")
            .id,
        a.id
    );
    assert!(matches!(
        repo.find_snapshot("abc").await,
        Err(Error::SnapshotNotFound { .. })
    ));
    let missing = if a.id.to_hex().starts_with("0000") || b.id.to_hex().starts_with("0000") {
        "ffff"
    } else {
        "0000"
    };
    assert!(matches!(
        repo.find_snapshot(missing).await,
        Err(Error::SnapshotNotFound { .. })
    ));
    let snapshots = repo.snapshots().await.expect("snapshots");
    assert_eq!(
        snapshots.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    let stats = repo.stats().await.expect("stats");
    assert_eq!(stats.snapshots, 2);
    assert_eq!(stats.latest_logical_bytes, 100_000);
    assert!(stats.data_blobs >= 2 && stats.tree_blobs >= 2);
}

/// Throughput of the write and read paths on a tempdir repository with ~1 GB of
/// library files. Run: `cargo test -p stowaway-repository --test repository -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; reads /usr/lib and writes ~400 MB"]
async fn throughput() {
    let mut corpus = Vec::with_capacity(1 << 30);
    let mut stack = vec![std::path::PathBuf::from("/usr/lib/x86_64-linux-gnu")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && corpus.len() < 1 << 30
                && let Ok(bytes) = std::fs::read(&path)
            {
                corpus.extend_from_slice(&bytes);
            }
        }
    }
    corpus.truncate(1 << 30);
    let len = corpus.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(
        Storage::local(dir.path()).expect("local"),
        PASSWORD,
        InitOptions::default(),
    )
    .await
    .expect("init");
    repo.load_index().await.expect("index");
    let start = std::time::Instant::now();
    let snapshot = backup_streams(&repo, None, vec![("corpus".into(), corpus)]).await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "backup: {len} bytes in {secs:.2} s = {:.0} MB/s, stored {} bytes (ratio {:.2})",
        len as f64 / secs / 1e6,
        snapshot.summary.bytes_added,
        len as f64 / snapshot.summary.bytes_added as f64
    );
    let start = std::time::Instant::now();
    let back = read_stream(&repo, &snapshot.components[0]).await;
    let secs = start.elapsed().as_secs_f64();
    println!("restore: {:.0} MB/s", back.len() as f64 / secs / 1e6);
    assert_eq!(back.len(), len);
}

#[test]
fn handles_are_send_and_sync_where_documented() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Repository>();
    send_sync::<Backup>();
    send::<stowaway_repository::StreamWriter>();
    send::<stowaway_repository::TreeWriter>();
    send::<stowaway_repository::StreamReader>();
    send::<stowaway_repository::TreeReader>();
    send::<stowaway_repository::LockGuard>();
}
