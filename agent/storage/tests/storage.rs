//! Storage backends against the shared conformance suite.

use bytes::Bytes;
use stowaway_storage::{Error, Storage, conformance};

#[tokio::test]
async fn memory_conforms() {
    conformance::conformance(&Storage::memory()).await;
}

#[tokio::test]
async fn local_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::local(dir.path().join("repo")).expect("local");
    conformance::conformance(&storage).await;
}

#[tokio::test]
async fn prefixed_memory_conforms() {
    let inner = std::sync::Arc::new(object_store::memory::InMemory::new());
    let storage = Storage::new(inner, "some/prefix/", "memory://");
    conformance::conformance(&storage).await;
    assert_eq!(storage.describe(), "memory://some/prefix");
}

#[tokio::test]
async fn from_url_schemes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    let storage = Storage::from_url(plain.to_str().expect("utf-8 path")).expect("plain path");
    storage
        .put("a", Bytes::from_static(b"1"))
        .await
        .expect("put");
    assert!(plain.join("a").is_file());

    let url = format!("file://{}", dir.path().join("url").display());
    let storage = Storage::from_url(&url).expect("file url");
    storage
        .put("b/c", Bytes::from_static(b"2"))
        .await
        .expect("put");
    assert!(dir.path().join("url/b/c").is_file());

    assert!(Storage::from_url("memory://").is_ok());
    match Storage::from_url("ftp://host/prefix") {
        Err(Error::UnsupportedUrl { url }) => assert_eq!(url, "ftp://host/prefix"),
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
}

#[tokio::test]
async fn local_list_skips_staging_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::local(dir.path()).expect("local");
    storage
        .put("data/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    // What an interrupted write leaves behind.
    std::fs::write(dir.path().join("data/x#1"), b"partial").expect("write staging file");
    let keys: Vec<String> = storage
        .list("data")
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["data/x"]);
}

#[test]
fn retryable_classification() {
    let transient = Error::Transient {
        key: "k".into(),
        source: object_store::Error::Generic {
            store: "test",
            source: "boom".into(),
        },
    };
    assert!(transient.is_retryable());
    assert!(!Error::NotFound { key: "k".into() }.is_retryable());
}

#[test]
fn secrets_never_appear_in_descriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "AKIDSHOWN").expect("write");
    std::fs::write(
        dir.path().join("AWS_SECRET_ACCESS_KEY"),
        "hidden-secret-value",
    )
    .expect("write");
    let options = stowaway_storage::StorageOptions {
        credentials: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let storage = Storage::from_url_with(
        "s3://bucket/team-a?endpoint=https://user:pw@minio.example:9000/path",
        &options,
    )
    .expect("s3 storage");
    let shown = format!("{} {storage:?}", storage.describe());
    assert_eq!(
        storage.describe(),
        "s3://bucket/team-a at https://minio.example:9000"
    );
    for secret in ["hidden-secret-value", "pw@", "user:"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let sub = storage.sub("repo/one").expect("sub");
    assert_eq!(
        sub.describe(),
        "s3://bucket/team-a/repo/one at https://minio.example:9000"
    );
}

#[tokio::test(start_paused = true)]
async fn bandwidth_limits_apply_to_uploads_and_downloads() {
    let storage = Storage::memory().with_bandwidth_limits(Some(100_000), Some(50_000));
    let data = Bytes::from(vec![7u8; 300_000]);
    let start = tokio::time::Instant::now();
    storage.put("k", data.clone()).await.expect("put");
    // 100 kB pass at once (one second's burst), 200 kB more take two seconds.
    let up = start.elapsed().as_secs_f64();
    assert!((1.99..2.1).contains(&up), "upload took {up} s");
    let start = tokio::time::Instant::now();
    assert_eq!(storage.get("k").await.expect("get"), data);
    let down = start.elapsed().as_secs_f64();
    assert!((4.99..5.1).contains(&down), "download took {down} s");
}
