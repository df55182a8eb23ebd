//! The repository on real servers: backup, check, restore, forget and prune on moto (S3) and
//! Azurite (Azure Blob), and prune extending S3 Object Lock retention.

use std::io::Read;
use std::time::Duration;

use stowaway_e2e::servers::{Azurite, Moto};
use stowaway_repository::{
    CheckOptions, InitOptions, KdfParams, MaxUnused, PruneOptions, Repository, Snapshot,
    SnapshotMeta,
};
use stowaway_storage::{LockMode, ObjectLockConfig, Storage, StorageOptions, conformance};

const PASSWORD: &str = "servers";

async fn backup(repo: &Repository, name: &'static str, data: Vec<u8>) -> Snapshot {
    repo.load_index().await.expect("index");
    let backup = repo.start_backup(None).expect("start");
    let (backup, record) = tokio::task::spawn_blocking(move || {
        let mut writer = backup
            .stream(name, "application/octet-stream")
            .expect("stream");
        for piece in data.chunks(256 * 1024) {
            writer.write(piece).expect("write");
        }
        let record = writer.finish(Vec::new()).expect("finish");
        (backup, record)
    })
    .await
    .expect("join");
    backup
        .commit(SnapshotMeta::default(), vec![record])
        .await
        .expect("commit")
}

async fn read(repo: &Repository, snapshot: &Snapshot) -> Vec<u8> {
    repo.load_index().await.expect("index");
    let repo = repo.clone();
    let component = snapshot.components[0].clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        repo.open_stream(&component)
            .expect("open")
            .read_to_end(&mut out)
            .expect("read");
        out
    })
    .await
    .expect("join")
}

async fn pack_bytes(storage: &Storage) -> u64 {
    let packs = storage.list("data").await.expect("list");
    packs.iter().map(|o| o.size).sum()
}

fn prune_now() -> PruneOptions {
    PruneOptions {
        max_unused: MaxUnused::Bytes(0),
        grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        dry_run: false,
    }
}

/// Two snapshots, one forgotten and pruned away in two phases; the other restores byte for
/// byte and `check --read-data` passes throughout.
async fn life_cycle(storage: Storage) {
    let options = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = Repository::init(storage.clone(), PASSWORD, options)
        .await
        .expect("init");
    let old_data = conformance::test_data(6 << 20, 1).to_vec();
    let new_data = conformance::test_data(5 << 20, 2).to_vec();
    let old = backup(&repo, "old", old_data).await;
    let new = backup(&repo, "new", new_data.clone()).await;
    let before = pack_bytes(&storage).await;

    let reopened = Repository::open(storage.clone(), PASSWORD)
        .await
        .expect("open");
    reopened.forget(&[old.id]).await.expect("forget");
    let marked = reopened.prune(&prune_now(), &()).await.expect("prune");
    assert!(marked.marked_packs > 0, "{marked:?}");
    let deleted = reopened.prune(&prune_now(), &()).await.expect("prune");
    assert_eq!(deleted.deleted_packs, marked.marked_packs, "{deleted:?}");
    let after = pack_bytes(&storage).await;
    assert!(after < before, "{before} -> {after}");

    let report = reopened
        .check(CheckOptions { read_data: true }, &())
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(read(&reopened, &new).await == new_data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_life_cycle_on_moto_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lifecycle", false);
    let storage = Storage::from_config(&moto.config("lifecycle", "team/repo"), &moto.options())
        .expect("storage");
    life_cycle(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_life_cycle_on_azurite() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container("lifecycle");
    let storage = Storage::from_config(
        &azurite.config("lifecycle", "team/repo"),
        &StorageOptions::default(),
    )
    .expect("storage");
    life_cycle(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_extends_object_lock_of_live_data_only() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("locked-repo", true);
    let locked = |days: u32| {
        let mut config = moto.config("locked-repo", "repo");
        if let Some(s3) = config.s3.as_mut() {
            s3.object_lock = Some(ObjectLockConfig {
                mode: LockMode::Governance,
                retain_days: days,
            });
        }
        Storage::from_config(&config, &moto.options()).expect("storage")
    };
    let options = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = Repository::init(locked(1), PASSWORD, options)
        .await
        .expect("init");
    let gone = backup(&repo, "gone", conformance::test_data(2 << 20, 3).to_vec()).await;
    let kept = backup(&repo, "kept", conformance::test_data(2 << 20, 4).to_vec()).await;

    // Maintenance with a longer period: live objects are extended, forgotten data is not.
    let storage = locked(3);
    let repo = Repository::open(storage.clone(), PASSWORD)
        .await
        .expect("open");
    repo.forget(&[gone.id]).await.expect("forget");
    let report = repo.prune(&prune_now(), &()).await.expect("prune");
    assert!(
        report.marked_packs > 0 && report.retention_extended > 0,
        "{report:?}"
    );
    let now = jiff::Timestamp::now().as_second();
    let days_left = |t: jiff::Timestamp| (t.as_second() - now) as f64 / 86_400.0;
    let packs = repo.index().packs().to_vec();
    for pack in packs {
        let key = format!("data/{}/{}", &pack.id.to_hex()[..2], pack.id);
        let until = storage
            .retention(&key)
            .await
            .expect("retention")
            .retain_until
            .expect("retained");
        if pack.marked {
            assert!(days_left(until) < 1.01, "marked pack extended: {until}");
        } else {
            assert!(days_left(until) > 2.9, "live pack not extended: {until}");
        }
    }
    let snapshot_key = format!("snapshots/{}", kept.id);
    let until = storage
        .retention(&snapshot_key)
        .await
        .expect("retention")
        .retain_until
        .expect("retained");
    assert!(days_left(until) > 2.9);
    // A second run finds nothing to extend.
    let again = repo.extend_object_lock().await.expect("extend");
    assert_eq!(again.extended, 0, "{again:?}");
    assert!(read(&repo, &kept).await == conformance::test_data(2 << 20, 4).to_vec());
}
