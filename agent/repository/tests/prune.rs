//! Prune: what it frees, what it keeps beside a running backup, and that a crash at any
//! point of it loses nothing.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use stowaway_repository::{
    CheckOptions, ComponentRecord, Error, InitOptions, KdfParams, MaxUnused, PruneOptions,
    PruneReport, Repository, Snapshot, SnapshotMeta,
};
use stowaway_storage::Storage;

const PASSWORD: &str = "prune test";

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
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

async fn init(storage: Storage) -> Repository {
    let options = InitOptions {
        kdf: KdfParams::insecure_fast(),
        pack_size: 1024 * 1024,
        ..InitOptions::default()
    };
    let repo = Repository::init(storage, PASSWORD, options)
        .await
        .expect("init");
    repo.load_index().await.expect("index");
    repo
}

/// Another process on the same storage: its own handle, lock first, then the index.
async fn other_process(storage: &Storage) -> (Repository, stowaway_repository::LockGuard) {
    let repo = Repository::open(storage.clone(), PASSWORD)
        .await
        .expect("open");
    let lock = repo.lock(false, "backup").await.expect("lock");
    repo.load_index().await.expect("index");
    (repo, lock)
}

/// Writes the streams in a backup; returns it uncommitted with the records.
async fn write_streams(
    repo: &Repository,
    streams: Vec<(&'static str, Vec<u8>)>,
) -> (stowaway_repository::Backup, Vec<ComponentRecord>) {
    let backup = repo.start_backup(None).expect("start backup");
    tokio::task::spawn_blocking(move || {
        let mut records = Vec::new();
        for (name, data) in streams {
            let mut writer = backup
                .stream(name, "application/octet-stream")
                .expect("stream");
            for piece in data.chunks(100_000) {
                writer.write(piece).expect("write");
            }
            records.push(writer.finish(Vec::new()).expect("finish"));
        }
        (backup, records)
    })
    .await
    .expect("join")
}

async fn backup(repo: &Repository, streams: Vec<(&'static str, Vec<u8>)>) -> Snapshot {
    let (backup, records) = write_streams(repo, streams).await;
    backup
        .commit(SnapshotMeta::default(), records)
        .await
        .expect("commit")
}

async fn read_all(repo: &Repository, snapshot: &Snapshot) -> Vec<(String, Vec<u8>)> {
    let repo = repo.clone();
    repo.load_index().await.expect("index");
    let snapshot = snapshot.clone();
    tokio::task::spawn_blocking(move || {
        snapshot
            .components
            .iter()
            .map(|c| {
                let mut out = Vec::new();
                repo.open_stream(c)
                    .expect("open")
                    .read_to_end(&mut out)
                    .expect("read");
                (c.name.clone(), out)
            })
            .collect()
    })
    .await
    .expect("join")
}

async fn forget(repo: &Repository, snapshot: &Snapshot) {
    repo.forget(&[snapshot.id]).await.expect("forget");
}

fn now_options() -> PruneOptions {
    PruneOptions {
        max_unused: MaxUnused::Bytes(0),
        grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        dry_run: false,
    }
}

async fn prune(repo: &Repository) -> PruneReport {
    repo.prune(&now_options(), &()).await.expect("prune")
}

async fn check_ok(repo: &Repository) {
    let report = repo
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    assert!(report.is_ok(), "check found errors: {:?}", report.errors);
}

async fn stored_bytes(storage: &Storage, prefix: &str) -> u64 {
    storage
        .list(prefix)
        .await
        .expect("list")
        .iter()
        .map(|o| o.size)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_marks_then_deletes_forgotten_data_and_keeps_the_rest() {
    let storage = Storage::memory();
    let repo = init(storage.clone()).await;
    let a = random_bytes(3 << 20, 1);
    let b = random_bytes(2 << 20, 2);
    let c = random_bytes(2 << 20, 3);
    let s1 = backup(&repo, vec![("a", a.clone()), ("b", b.clone())]).await;
    let s2 = backup(&repo, vec![("b", b.clone()), ("c", c.clone())]).await;
    forget(&repo, &s1).await;
    let before = stored_bytes(&storage, "data").await;

    let dry = repo
        .prune(
            &PruneOptions {
                dry_run: true,
                ..now_options()
            },
            &(),
        )
        .await
        .expect("dry run");
    assert!(dry.marked_packs > 0, "{dry:?}");
    assert_eq!(
        stored_bytes(&storage, "data").await,
        before,
        "dry run wrote"
    );

    let first = prune(&repo).await;
    assert_eq!(first.snapshots, 1);
    assert!(first.marked_packs > 0, "{first:?}");
    assert_eq!(first.deleted_packs, 0, "the first prune only marks");
    assert!(stored_bytes(&storage, "data").await >= before);
    let report = repo
        .check(CheckOptions::default(), &())
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_eq!(report.marked_packs, first.marked_packs as u64);
    assert_eq!(
        read_all(&repo, &s2).await,
        [("b".to_owned(), b.clone()), ("c".to_owned(), c.clone())]
    );

    let second = prune(&repo).await;
    assert_eq!(second.deleted_packs, first.marked_packs, "{second:?}");
    assert_eq!(second.marked_packs, 0);
    let after = stored_bytes(&storage, "data").await;
    assert!(
        after < before - (2 << 20),
        "a's 3 MiB should be gone: {before} -> {after}"
    );
    assert_eq!(storage.list("index").await.expect("list").len(), 1);
    check_ok(&repo).await;
    assert_eq!(
        read_all(&repo, &s2).await,
        [("b".to_owned(), b), ("c".to_owned(), c)]
    );

    let third = prune(&repo).await;
    assert_eq!(
        (
            third.marked_packs,
            third.deleted_packs,
            third.repacked_packs
        ),
        (0, 0, 0),
        "{third:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_beside_a_running_backup_never_deletes_what_it_needs() {
    let storage = Storage::memory();
    let repo = init(storage.clone()).await;
    let x = random_bytes(3 << 20, 7);
    let s1 = backup(&repo, vec![("x", x.clone())]).await;

    // A backup in another process loads the index and deduplicates against s1's data.
    let (other, other_lock) = other_process(&storage).await;
    let (running, records) = write_streams(&other, vec![("x", x.clone())]).await;
    assert_eq!(
        running.progress().summary().data_blobs_new,
        0,
        "should deduplicate"
    );

    // Meanwhile s1 is forgotten and pruned: its packs are marked, not deleted.
    forget(&repo, &s1).await;
    let marked = prune(&repo).await;
    assert!(marked.marked_packs > 0, "{marked:?}");

    // A backup that starts after the mark does not deduplicate against marked packs.
    let (late, late_lock) = other_process(&storage).await;
    let (late_backup, _) = write_streams(&late, vec![("x", x.clone())]).await;
    assert!(late_backup.progress().summary().data_blobs_new > 0);
    drop(late_backup);
    late_lock.release().await.expect("release");

    // The running backup holds a lock older than the mark: nothing may be deleted.
    let waiting = prune(&repo).await;
    assert_eq!(waiting.deleted_packs, 0, "{waiting:?}");
    assert!(waiting.waiting_for_lock > 0, "{waiting:?}");

    let s2 = running
        .commit(SnapshotMeta::default(), records)
        .await
        .expect("commit");
    other_lock.release().await.expect("release");

    // Its snapshot needs the marked packs: they are recovered.
    let recovered = prune(&repo).await;
    assert!(recovered.recovered_packs > 0, "{recovered:?}");
    assert_eq!(recovered.deleted_packs, 0, "{recovered:?}");
    check_ok(&repo).await;
    assert_eq!(read_all(&repo, &s2).await, [("x".to_owned(), x.clone())]);
    // And they stay: later prunes keep them.
    prune(&repo).await;
    prune(&repo).await;
    check_ok(&repo).await;
    assert_eq!(read_all(&repo, &s2).await, [("x".to_owned(), x)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_repacks_partly_used_packs_within_max_unused() {
    let storage = Storage::memory();
    let repo = init(storage.clone()).await;
    // Many small streams share packs; keeping half of them leaves packs half used.
    let streams: Vec<(&'static str, Vec<u8>)> =
        ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]
            .into_iter()
            .enumerate()
            .map(|(n, name)| (name, random_bytes(200_000, 100 + n as u64)))
            .collect();
    let keep: Vec<_> = streams.iter().step_by(2).cloned().collect();
    let all = backup(&repo, streams.clone()).await;
    let kept = backup(&repo, keep.clone()).await;
    forget(&repo, &all).await;

    let unlimited = repo
        .prune(
            &PruneOptions {
                max_unused: MaxUnused::Unlimited,
                ..now_options()
            },
            &(),
        )
        .await
        .expect("prune");
    assert_eq!(unlimited.repacked_packs, 0, "{unlimited:?}");

    let tight = prune(&repo).await;
    assert!(tight.repacked_packs > 0, "{tight:?}");
    assert_eq!(tight.unused_after, 0);
    prune(&repo).await;
    check_ok(&repo).await;
    let expected: Vec<(String, Vec<u8>)> =
        keep.into_iter().map(|(n, d)| (n.to_owned(), d)).collect();
    assert_eq!(read_all(&repo, &kept).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_refuses_when_snapshot_data_is_missing() {
    let storage = Storage::memory();
    let repo = init(storage.clone()).await;
    backup(&repo, vec![("x", random_bytes(1 << 20, 9))]).await;
    for pack in storage.list("data").await.expect("list") {
        storage.delete(&pack.key).await.expect("delete");
    }
    match repo.prune(&now_options(), &()).await {
        Err(Error::PruneRefused { reason }) => {
            assert!(reason.contains("stowaway check"), "{reason}")
        }
        other => panic!("expected PruneRefused, got {other:?}"),
    }
}

/// An object store that fails every write and delete after the first `budget` ones, as if
/// the process had been killed there.
#[derive(Debug)]
struct CrashAfter {
    inner: InMemory,
    budget: Arc<AtomicI64>,
}

impl std::fmt::Display for CrashAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrashAfter")
    }
}

fn spend(budget: &AtomicI64) -> object_store::Result<()> {
    if budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
        return Err(object_store::Error::NotImplemented {
            operation: "a write after the simulated crash".into(),
            implementer: "CrashAfter".into(),
        });
    }
    Ok(())
}

#[async_trait::async_trait]
impl ObjectStore for CrashAfter {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        spend(&self.budget)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        spend(&self.budget)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = self.inner.clone();
        let budget = Arc::clone(&self.budget);
        locations
            .then(move |location| {
                let inner = inner.clone();
                let budget = Arc::clone(&budget);
                async move {
                    let location = location?;
                    spend(&budget)?;
                    let mut done =
                        inner.delete_stream(futures::stream::iter([Ok(location)]).boxed());
                    done.next().await.unwrap_or_else(|| {
                        Err(object_store::Error::NotImplemented {
                            operation: "delete".into(),
                            implementer: "CrashAfter".into(),
                        })
                    })
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        spend(&self.budget)?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// Builds a repository with a forgotten snapshot, shared data, half-used packs and packs
/// marked by an earlier prune, then crashes a prune after each possible number of writes
/// and deletes: the kept snapshots must restore and `check` must pass every time, and a
/// complete prune afterwards must still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_point_of_prune_loses_nothing() {
    let a = random_bytes(1 << 20, 21);
    let b = random_bytes(1 << 20, 22);
    let smalls: Vec<Vec<u8>> = (0..6).map(|n| random_bytes(150_000, 30 + n)).collect();
    let mut crashed = 0;
    for budget in 0.. {
        let store = Arc::new(CrashAfter {
            inner: InMemory::new(),
            budget: Arc::new(AtomicI64::new(i64::MAX)),
        });
        let storage = Storage::new(store.clone(), "", "crash://");
        let repo = init(storage.clone()).await;
        let old = backup(&repo, vec![("a", a.clone()), ("b", b.clone())]).await;
        let small: Vec<(&'static str, Vec<u8>)> = ["p", "q", "r", "s", "t", "u"]
            .into_iter()
            .zip(smalls.iter().cloned())
            .collect();
        let mut first_keep: Vec<_> = small.iter().step_by(2).cloned().collect();
        first_keep.push(("b", b.clone()));
        let kept = backup(&repo, first_keep).await;
        let gone = backup(&repo, small.iter().skip(1).step_by(2).cloned().collect()).await;
        forget(&repo, &old).await;
        forget(&repo, &gone).await;
        // Marks a's packs, repacks the packs the small streams share.
        prune(&repo).await;
        // A pack from an interrupted backup, in no index.
        let (abandoned, _) = write_streams(&repo, vec![("z", random_bytes(600_000, 99))]).await;
        drop(abandoned);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Keep less: the repacked pack becomes partly used again.
        forget(&repo, &kept).await;
        let expected = vec![small[0].clone(), ("b", b.clone())];
        let kept = backup(&repo, expected.clone()).await;
        let expected: Vec<(String, Vec<u8>)> = expected
            .into_iter()
            .map(|(n, d)| (n.to_owned(), d))
            .collect();

        store.budget.store(budget, Ordering::SeqCst);
        let outcome = repo.prune(&now_options(), &()).await;
        store.budget.store(i64::MAX, Ordering::SeqCst);
        let fresh = Repository::open(storage.clone(), PASSWORD)
            .await
            .expect("open");
        let _ = fresh.remove_all_locks().await;
        check_ok(&fresh).await;
        assert_eq!(
            read_all(&fresh, &kept).await,
            expected,
            "after a crash at write {budget}"
        );
        match outcome {
            Err(_) => {
                crashed += 1;
                // Finishing the work later succeeds and still loses nothing.
                prune(&fresh).await;
                prune(&fresh).await;
                check_ok(&fresh).await;
                assert_eq!(read_all(&fresh, &kept).await, expected);
            }
            Ok(report) => {
                assert!(
                    report.deleted_packs > 0
                        && report.repacked_packs > 0
                        && report.unindexed_deleted > 0,
                    "{report:?}"
                );
                break;
            }
        }
    }
    assert!(crashed >= 5, "only {crashed} crash points were exercised");
}
