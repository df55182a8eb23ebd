//! A behaviour suite every storage backend must pass.
//!
//! Each backend's tests call [`conformance`] on a fresh, empty [`Storage`]. Every check
//! cleans up after itself, so they can also be called one by one.

use bytes::Bytes;

use crate::faults::FaultConfig;
use crate::{Error, MultipartPolicy, RetryPolicy, Storage};

/// Runs the whole suite on an empty storage; panics on the first violation.
pub async fn conformance(storage: &Storage) {
    put_get_round_trip(storage).await;
    put_new_refuses_existing(storage).await;
    missing_objects(storage).await;
    listing(storage).await;
    delete(storage).await;
    large_objects(storage).await;
    prefix_isolation(storage).await;
    concurrency(storage).await;
    retries_through_faults(storage).await;
    append_only_refusals(storage).await;
}

/// Deterministic test data of `len` bytes that differs between `seed`s.
pub fn test_data(len: usize, seed: u8) -> Bytes {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
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

/// Objects above the multipart threshold go up in parts (of the S3 minimum of 5 MiB) and
/// read back whole and in ranges across part boundaries; `put_new` of a large object
/// works and stays create-only.
pub async fn large_objects(storage: &Storage) {
    const MIB: usize = 1024 * 1024;
    let storage = storage.clone().with_multipart(MultipartPolicy {
        threshold: 6 * MIB as u64,
        part_size: crate::S3_MIN_PART_SIZE,
        concurrency: 3,
    });
    let data = test_data(12 * MIB + 17, 1);
    storage
        .put("data/large", data.clone())
        .await
        .expect("multipart put");
    assert_eq!(
        storage.head("data/large").await.expect("head").size,
        data.len() as u64
    );
    let back = storage.get("data/large").await.expect("get");
    assert!(
        back == data,
        "multipart object differs after the round trip"
    );
    let boundary = 5 * MIB as u64;
    let range = storage
        .get_range("data/large", boundary - 100..boundary + 100)
        .await
        .expect("range across a part boundary");
    assert_eq!(&range[..], &data[5 * MIB - 100..5 * MIB + 100]);
    // Overwriting with a different large object replaces it whole.
    let other = test_data(7 * MIB, 2);
    storage
        .put("data/large", other.clone())
        .await
        .expect("overwrite");
    assert!(storage.get("data/large").await.expect("get") == other);
    // Create-only writes of large objects use one request and stay create-only.
    storage
        .put_new("data/large-new", data.clone())
        .await
        .expect("large put_new");
    assert!(matches!(
        storage.put_new("data/large-new", other).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(storage.get("data/large-new").await.expect("get") == data);
    for key in ["data/large", "data/large-new"] {
        storage.delete(key).await.expect("delete");
    }
}

/// Sub-directories see only their own objects, with keys relative to themselves, even
/// when one directory name is a prefix of another's.
pub async fn prefix_isolation(storage: &Storage) {
    let a = storage.sub("iso/a").expect("sub a");
    let ab = storage.sub("iso/ab").expect("sub ab");
    a.put("config", Bytes::from_static(b"a"))
        .await
        .expect("put a");
    ab.put("config", Bytes::from_static(b"ab"))
        .await
        .expect("put ab");
    ab.put("data/x", Bytes::from_static(b"x"))
        .await
        .expect("put ab/data");
    let keys = |list: Vec<crate::ObjectInfo>| list.into_iter().map(|i| i.key).collect::<Vec<_>>();
    assert_eq!(keys(a.list("").await.expect("list a")), ["config"]);
    assert_eq!(
        keys(ab.list("").await.expect("list ab")),
        ["config", "data/x"]
    );
    assert_eq!(&a.get("config").await.expect("get a")[..], b"a");
    assert!(matches!(a.get("data/x").await, Err(Error::NotFound { .. })));
    assert_eq!(
        keys(storage.list("iso").await.expect("list parent")),
        ["iso/a/config", "iso/ab/config", "iso/ab/data/x"]
    );
    assert!(storage.sub("../escape").is_err());
    assert!(storage.sub("a//b").is_err());
    a.delete("config").await.expect("delete");
    ab.delete("config").await.expect("delete");
    ab.delete("data/x").await.expect("delete");
}

/// Many concurrent writers and readers of distinct keys, and racing `put_new`s of one key:
/// exactly one racer wins and its content is the one stored.
pub async fn concurrency(storage: &Storage) {
    let writes = (0..32u8).map(|i| {
        let storage = storage.clone();
        async move {
            let key = format!("conc/{i:02}");
            let data = test_data(10_000 + usize::from(i), i);
            storage.put(&key, data.clone()).await.expect("put");
            let back = storage.get(&key).await.expect("get");
            assert!(back == data, "{key} differs");
        }
    });
    futures::future::join_all(writes).await;
    assert_eq!(storage.list("conc").await.expect("list").len(), 32);

    let racers = (0..8u8).map(|i| {
        let storage = storage.clone();
        async move {
            let data = test_data(1000, 100 + i);
            (storage.put_new("locks/race", data.clone()).await, data)
        }
    });
    let results = futures::future::join_all(racers).await;
    let winners: Vec<&Bytes> = results
        .iter()
        .filter_map(|(r, data)| r.is_ok().then_some(data))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one put_new must win");
    for (result, _) in &results {
        if let Err(e) = result {
            assert!(matches!(e, Error::AlreadyExists { .. }), "loser: {e:?}");
        }
    }
    assert!(storage.get("locks/race").await.expect("get") == *winners[0]);
    storage.delete("locks/race").await.expect("delete");
    for i in 0..32u8 {
        storage
            .delete(&format!("conc/{i:02}"))
            .await
            .expect("delete");
    }
}

/// With a quarter of all requests failing or losing their response, every operation still
/// succeeds through retries, and a `put_new` whose response was lost counts as done.
pub async fn retries_through_faults(storage: &Storage) {
    let (faulty, counters) = storage
        .clone()
        .with_retry(RetryPolicy::fast(30))
        .with_faults(FaultConfig {
            fail: 0.15,
            lose: 0.1,
            seed: 42,
            ..FaultConfig::default()
        });
    for i in 0..20u8 {
        let key = format!("faulty/{i:02}");
        let data = test_data(5000, i);
        faulty.put(&key, data.clone()).await.expect("put");
        faulty
            .put_new(&format!("locks/faulty-{i:02}"), data.clone())
            .await
            .expect("put_new through lost responses");
        assert!(faulty.get(&key).await.expect("get") == data);
        assert_eq!(
            &faulty.get_range(&key, 10..20).await.expect("get_range")[..],
            &data[10..20]
        );
        assert_eq!(faulty.head(&key).await.expect("head").size, 5000);
    }
    assert_eq!(faulty.list("faulty").await.expect("list").len(), 20);
    for i in 0..20u8 {
        faulty
            .delete(&format!("faulty/{i:02}"))
            .await
            .expect("delete");
        faulty
            .delete(&format!("locks/faulty-{i:02}"))
            .await
            .expect("delete");
    }
    assert!(storage.list("faulty").await.expect("list").is_empty());
    assert!(
        counters.failed() > 5 && counters.lost() > 5,
        "faults were injected: {} failed, {} lost of {}",
        counters.failed(),
        counters.lost(),
        counters.requests()
    );
    // Without retries, the faults reach the caller as transient errors.
    let (no_retry, _) = storage
        .clone()
        .with_retry(RetryPolicy::none())
        .with_faults(FaultConfig {
            fail: 1.0,
            ..FaultConfig::default()
        });
    let err = no_retry.get("anything").await.expect_err("injected");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("injected fault"), "{err}");
}

/// Append-only storage adds objects and rewrites identical ones, but refuses deletes and
/// overwrites outside `locks/`, naming the key and the operation.
pub async fn append_only_refusals(storage: &Storage) {
    let ao = storage.clone().with_append_only(true);
    assert!(ao.is_append_only());
    ao.put("snapshots/s1", Bytes::from_static(b"one"))
        .await
        .expect("adding is allowed");
    ao.put("snapshots/s1", Bytes::from_static(b"one"))
        .await
        .expect("rewriting identical bytes is allowed");
    match ao.put("snapshots/s1", Bytes::from_static(b"two")).await {
        Err(Error::AppendOnly { key, operation }) => {
            assert_eq!((key.as_str(), operation), ("snapshots/s1", "overwrite"));
        }
        other => panic!("expected AppendOnly overwrite, got {other:?}"),
    }
    let err = ao.delete("snapshots/s1").await.expect_err("delete refused");
    assert_eq!(
        err.to_string(),
        "append-only storage: refusing to delete snapshots/s1"
    );
    assert_eq!(&ao.get("snapshots/s1").await.expect("get")[..], b"one");
    // Large objects take the multipart path: same rules.
    let ao_parts = ao.clone().with_multipart(MultipartPolicy {
        threshold: 1000,
        part_size: crate::S3_MIN_PART_SIZE,
        concurrency: 2,
    });
    let big = test_data(5000, 9);
    ao_parts
        .put("data/big", big.clone())
        .await
        .expect("add big");
    ao_parts
        .put("data/big", big.clone())
        .await
        .expect("identical big");
    assert!(matches!(
        ao_parts.put("data/big", test_data(5000, 10)).await,
        Err(Error::AppendOnly {
            operation: "overwrite",
            ..
        })
    ));
    // Locks stay writable and deletable.
    ao.put_new("locks/l1", Bytes::from_static(b"lock"))
        .await
        .expect("lock");
    ao.put("locks/l1", Bytes::from_static(b"refreshed"))
        .await
        .expect("refresh");
    ao.delete("locks/l1").await.expect("unlock");
    storage.delete("snapshots/s1").await.expect("cleanup");
    storage.delete("data/big").await.expect("cleanup");
}
