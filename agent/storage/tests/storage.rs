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
