//! The storage conformance suite and S3 Object Lock against real servers: moto (S3) and
//! Azurite (Azure Blob), each started on a free port of 127.0.0.1 by the test itself.

use bytes::Bytes;
use stowaway_e2e::servers::{Azurite, Moto};
use stowaway_storage::{
    Error, LockMode, ObjectLockConfig, Storage, StorageConfig, StorageOptions, conformance,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_conforms() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("conformance", false);
    let storage = Storage::from_config(&moto.config("conformance", "repo/one"), &moto.options())
        .expect("s3 storage");
    assert_eq!(
        storage.describe(),
        format!("s3://conformance/repo/one at {}", moto.server().endpoint())
    );
    conformance::conformance(&storage).await;
    // The prefix kept everything inside repo/one: the bucket root has nothing else.
    let root =
        Storage::from_config(&moto.config("conformance", ""), &moto.options()).expect("root");
    assert!(root.list("").await.expect("list root").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_from_url_and_missing_bucket() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("urls", false);
    let url = format!(
        "s3://urls/some/prefix?endpoint={}&region=us-east-1&path-style=true",
        moto.server().endpoint()
    );
    let storage = Storage::from_url_with(&url, &moto.options()).expect("from url");
    storage
        .put("config", Bytes::from_static(b"{}"))
        .await
        .expect("put");
    let root = Storage::from_config(&moto.config("urls", ""), &moto.options()).expect("root");
    assert_eq!(
        root.list("").await.expect("list")[0].key,
        "some/prefix/config"
    );
    // A bucket that does not exist: a permanent error naming the key, no endless retries.
    let missing =
        Storage::from_config(&moto.config("no-such-bucket", ""), &moto.options()).expect("config");
    let started = std::time::Instant::now();
    let err = missing
        .put("config", Bytes::from_static(b"x"))
        .await
        .expect_err("missing bucket");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("config"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_wrong_credentials_are_not_leaked() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "AKIDLEAKTEST").expect("write");
    std::fs::write(
        dir.path().join("AWS_SECRET_ACCESS_KEY"),
        "very-secret-value",
    )
    .expect("write");
    let options = StorageOptions {
        credentials: Some(dir.path().to_owned()),
        ..StorageOptions::default()
    };
    let storage = Storage::from_config(&moto.config("b", "p"), &options).expect("storage");
    let shown = format!("{} {:?}", storage.describe(), storage);
    assert!(!shown.contains("very-secret-value"), "{shown}");
    let err = storage.get("x").await.expect_err("no bucket");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_object_lock() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("locked", true);
    let mut config = moto.config("locked", "repo");
    if let Some(s3) = config.s3.as_mut() {
        s3.object_lock = Some(ObjectLockConfig {
            mode: LockMode::Governance,
            retain_days: 1,
        });
    }
    let storage = Storage::from_config(&config, &moto.options()).expect("storage");
    assert_eq!(storage.object_lock().map(|l| l.retain_days), Some(1));

    let key = "data/ab/ab01";
    storage
        .put(key, Bytes::from_static(b"pack"))
        .await
        .expect("locked put");
    let retention = storage.retention(key).await.expect("retention");
    assert_eq!(retention.mode, Some(LockMode::Governance));
    let until = retention.retain_until.expect("retain-until date");
    let ahead = until.as_second() - jiff::Timestamp::now().as_second();
    assert!((86_300..=86_500).contains(&ahead), "retained {ahead} s");
    let version = retention.version_id.expect("version id");

    // The locked version cannot be deleted before its date.
    let err = storage
        .delete_version(key, &version)
        .await
        .expect_err("delete of a retained version");
    assert!(matches!(err, Error::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("403"), "{err}");

    // Extending works and never shortens.
    let later = jiff::Timestamp::from_second(until.as_second() + 86_400).expect("ts");
    storage.extend_retention(key, later).await.expect("extend");
    assert_eq!(
        storage
            .retention(key)
            .await
            .expect("retention")
            .retain_until,
        Some(later)
    );
    storage
        .extend_retention(key, until)
        .await
        .expect("no-op extend");
    assert_eq!(
        storage
            .retention(key)
            .await
            .expect("retention")
            .retain_until,
        Some(later)
    );

    // Every repository file gets a retention (large ones through multipart), locks do not.
    let big = conformance::test_data(17 * 1024 * 1024, 5);
    storage
        .put("data/cd/big", big.clone())
        .await
        .expect("multipart");
    assert!(storage.get("data/cd/big").await.expect("get") == big);
    let big_retention = storage.retention("data/cd/big").await.expect("retention");
    assert_eq!(big_retention.mode, Some(LockMode::Governance));
    for k in ["config", "keys/k1", "index/i1", "snapshots/s1"] {
        storage
            .put_new(k, Bytes::from_static(b"x"))
            .await
            .expect("put_new");
        assert_eq!(
            storage.retention(k).await.expect("retention").mode,
            Some(LockMode::Governance),
            "{k}"
        );
    }
    storage
        .put_new("locks/l1", Bytes::from_static(b"lock"))
        .await
        .expect("lock");
    assert_eq!(
        storage.retention("locks/l1").await.expect("retention").mode,
        None
    );
    storage.delete("locks/l1").await.expect("unlock");

    // A plain delete only hides the object behind a delete marker; the version stays.
    storage.delete(key).await.expect("delete marker");
    assert!(matches!(
        storage.get(key).await,
        Err(Error::NotFound { .. })
    ));
    let err = storage
        .delete_version(key, &version)
        .await
        .expect_err("still retained");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn object_lock_needs_s3() {
    let storage =
        Storage::from_config(&StorageConfig::memory(), &StorageOptions::default()).expect("memory");
    let err = storage.retention("k").await.expect_err("unsupported");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_conforms() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container("conformance");
    let storage = Storage::from_config(
        &azurite.config("conformance", "repo"),
        &StorageOptions::default(),
    )
    .expect("azure storage");
    assert_eq!(
        storage.describe(),
        format!(
            "azblob://conformance/repo at {}",
            azurite.server().endpoint()
        )
    );
    conformance::conformance(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_from_url() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container("urls");
    let url = format!(
        "azblob://urls/p?use_emulator=true&endpoint={}",
        azurite.server().endpoint()
    );
    let storage = Storage::from_url(&url).expect("from url");
    storage
        .put_new("config", Bytes::from_static(b"{}"))
        .await
        .expect("put_new");
    assert!(matches!(
        storage.put_new("config", Bytes::from_static(b"{}")).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(storage.list("").await.expect("list")[0].key, "config");
}
