//! Key management: add, list, remove and change the password, through the public API.

mod common;

use common::{Component, PASSWORD, backup, new_repo, options, random_bytes, read_stream};
use stowaway_repository::{Error, InitOptions, KdfParams, Repository};
use stowaway_storage::Storage;

async fn open(storage: &Storage, password: &str) -> Result<Repository, Error> {
    Repository::open(storage.clone(), password).await
}

/// Every file name under `dir/` (sorted).
async fn names(storage: &Storage, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = storage
        .list(dir)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.key)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_remove_and_change_password() {
    let storage = Storage::memory();
    let first = new_repo(storage.clone()).await;
    let data = random_bytes(3 << 20, 1);
    let snapshot = backup(
        &first,
        None,
        "keys",
        vec![Component::Stream("s", data.clone())],
    )
    .await;
    let k1 = first.key_id().expect("an encrypted repository has a key");
    let keys = first.keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].id, keys[0].current), (k1, true));
    assert_eq!(keys[0].kdf, KdfParams::insecure_fast());
    assert_eq!(keys[0].hostname, stowaway_repository::hostname());

    // A second key: both passwords open the repository, each knows which key it used.
    let k2 = first
        .add_key("second password", KdfParams::insecure_fast())
        .await
        .expect("add key");
    assert_ne!(k1, k2);
    let second = open(&storage, "second password")
        .await
        .expect("open with k2");
    assert_eq!(second.key_id(), Some(k2));
    let listed: Vec<_> = second
        .keys()
        .await
        .expect("keys")
        .into_iter()
        .map(|k| (k.id, k.current))
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&(k1, false)) && listed.contains(&(k2, true)));
    assert_eq!(
        open(&storage, PASSWORD).await.expect("k1").key_id(),
        Some(k1)
    );

    // Prefixes name keys.
    assert_eq!(second.find_key(&k2.to_hex()[..8]).await.expect("find"), k2);
    let err = second.find_key("ffff0000zz").await.expect_err("not hex");
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");

    // The key in use cannot be removed.
    let err = first.remove_key(&k1).await.expect_err("in use");
    assert!(matches!(err, Error::KeyInUse { id } if id == k1), "{err}");
    assert!(err.to_string().contains("opened the repository"), "{err}");

    // Removing the other key: the old password no longer opens the repository.
    second.remove_key(&k1).await.expect("remove k1");
    let err = open(&storage, PASSWORD).await.expect_err("k1 is gone");
    assert!(matches!(err, Error::WrongPassword), "{err}");
    let err = second.remove_key(&k1).await.expect_err("already removed");
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    // `first` still holds the master key but its key file is gone; k2 is the last key.
    let err = first.remove_key(&k2).await.expect_err("last key");
    assert!(matches!(err, Error::LastKey { id } if id == k2), "{err}");
    assert!(err.to_string().contains("last key"), "{err}");

    // Changing the password rewrites no data: same packs, index and snapshots.
    let before = (
        names(&storage, "data").await,
        names(&storage, "index").await,
        names(&storage, "snapshots").await,
    );
    let k3 = second
        .change_password("third password", KdfParams::insecure_fast())
        .await
        .expect("passwd");
    assert_eq!(second.key_id(), Some(k3));
    let after = (
        names(&storage, "data").await,
        names(&storage, "index").await,
        names(&storage, "snapshots").await,
    );
    assert_eq!(before, after);
    assert_eq!(names(&storage, "keys").await, vec![format!("keys/{k3}")]);
    let err = open(&storage, "second password")
        .await
        .expect_err("old password");
    assert!(matches!(err, Error::WrongPassword), "{err}");

    let third = open(&storage, "third password")
        .await
        .expect("new password");
    third.load_index().await.expect("index");
    let back = third.read_snapshot(&snapshot.id).await.expect("snapshot");
    assert_eq!(read_stream(&third, &back.components[0]).await, data);
    let keys = third.keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].current && keys[0].id == k3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_add_before_remove_both_passwords_work() {
    // The state a crash in the middle of `change_password` leaves: the new key is written
    // before the old one is removed, so either password opens the repository.
    let storage = Storage::memory();
    let repo = new_repo(storage.clone()).await;
    let old = repo.key_id().expect("key");
    let new = repo
        .add_key("new", KdfParams::insecure_fast())
        .await
        .expect("add");
    assert_eq!(
        open(&storage, PASSWORD).await.expect("old").key_id(),
        Some(old)
    );
    assert_eq!(
        open(&storage, "new").await.expect("new").key_id(),
        Some(new)
    );
    // Completing it from the repository opened with the old password.
    let again = open(&storage, PASSWORD).await.expect("old");
    let newer = again
        .change_password("newer", KdfParams::insecure_fast())
        .await
        .expect("passwd");
    let mut left: Vec<_> = again
        .keys()
        .await
        .expect("keys")
        .into_iter()
        .map(|k| k.id)
        .collect();
    left.sort();
    let mut expected = vec![new, newer];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unencrypted_repositories_have_no_keys() {
    let storage = Storage::memory();
    let repo = Repository::init(
        storage.clone(),
        "",
        InitOptions {
            encryption: false,
            ..options()
        },
    )
    .await
    .expect("init");
    assert_eq!(repo.key_id(), None);
    let expect_not_encrypted = |err: Error| {
        assert!(matches!(err, Error::NotEncrypted), "{err}");
        assert_eq!(
            err.to_string(),
            "the repository is not encrypted: it has no keys"
        );
    };
    expect_not_encrypted(repo.keys().await.expect_err("keys"));
    expect_not_encrypted(
        repo.add_key("pw", KdfParams::insecure_fast())
            .await
            .expect_err("add"),
    );
    expect_not_encrypted(repo.find_key("abcd").await.expect_err("find"));
    expect_not_encrypted(
        repo.change_password("pw", KdfParams::insecure_fast())
            .await
            .expect_err("passwd"),
    );
    assert!(names(&storage, "keys").await.is_empty());
}
