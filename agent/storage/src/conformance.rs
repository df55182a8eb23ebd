//! A behaviour suite every storage backend must pass.
//!
//! Each backend's tests call [`conformance`] on a fresh, empty [`Storage`].

use bytes::Bytes;

use crate::{Error, Storage};

/// Runs the whole suite on an empty storage; panics on the first violation.
pub async fn conformance(storage: &Storage) {
    put_get_round_trip(storage).await;
    put_new_refuses_existing(storage).await;
    missing_objects(storage).await;
    listing(storage).await;
    delete(storage).await;
}

/// `put` then `get`, `get_range` and `head` return the same bytes; `put` overwrites.
pub async fn put_get_round_trip(storage: &Storage) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    storage
        .put("round/trip", Bytes::from(data.clone()))
        .await
        .expect("put");
    let back = storage.get("round/trip").await.expect("get");
    assert_eq!(&back[..], &data[..]);
    let range = storage
        .get_range("round/trip", 1000..2000)
        .await
        .expect("get_range");
    assert_eq!(&range[..], &data[1000..2000]);
    let info = storage.head("round/trip").await.expect("head");
    assert_eq!(info.key, "round/trip");
    assert_eq!(info.size, data.len() as u64);
    storage
        .put("round/trip", Bytes::from_static(b"short"))
        .await
        .expect("overwrite");
    assert_eq!(&storage.get("round/trip").await.expect("get")[..], b"short");
    storage.delete("round/trip").await.expect("delete");
}

/// `put_new` creates once and then fails with `AlreadyExists`, leaving the first content.
pub async fn put_new_refuses_existing(storage: &Storage) {
    storage
        .put_new("locks/one", Bytes::from_static(b"first"))
        .await
        .expect("put_new");
    match storage
        .put_new("locks/one", Bytes::from_static(b"second"))
        .await
    {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, "locks/one"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(&storage.get("locks/one").await.expect("get")[..], b"first");
    storage.delete("locks/one").await.expect("delete");
}

/// Reading a missing object fails with `NotFound` naming the key.
pub async fn missing_objects(storage: &Storage) {
    match storage.get("no/such/object").await {
        Err(Error::NotFound { key }) => assert_eq!(key, "no/such/object"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        storage.head("no/such/object").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        storage.get_range("no/such/object", 0..1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        storage
            .list("nothing-here")
            .await
            .expect("list missing prefix")
            .is_empty()
    );
}

/// `list` is recursive, sorted, relative to the storage prefix and restricted to the
/// given prefix.
pub async fn listing(storage: &Storage) {
    for key in ["data/aa/aa01", "data/ab/ab02", "index/0001", "config"] {
        storage
            .put(key, Bytes::from(key.as_bytes().to_vec()))
            .await
            .expect("put");
    }
    let keys: Vec<String> = storage
        .list("data")
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["data/aa/aa01", "data/ab/ab02"]);
    let all = storage.list("").await.expect("list all");
    let keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["config", "data/aa/aa01", "data/ab/ab02", "index/0001"]
    );
    assert_eq!(all[0].size, "config".len() as u64);
    for key in ["data/aa/aa01", "data/ab/ab02", "index/0001", "config"] {
        storage.delete(key).await.expect("delete");
    }
}

/// Deleted objects are gone from `get` and `list`.
pub async fn delete(storage: &Storage) {
    storage
        .put("snapshots/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    storage.delete("snapshots/x").await.expect("delete");
    assert!(matches!(
        storage.get("snapshots/x").await,
        Err(Error::NotFound { .. })
    ));
    assert!(storage.list("snapshots").await.expect("list").is_empty());
}
