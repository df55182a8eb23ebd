//! `stowaway key`: add, list, remove and change the password.

use crate::util::{Env, corpus, tree_digest};

const FAST_KDF: [&str; 4] = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"];

fn keys(env: &Env) -> Vec<(String, bool)> {
    let list = env.json(&["key", "list", "--json"]);
    list.as_array()
        .expect("an array")
        .iter()
        .map(|k| {
            (
                k["id"].as_str().expect("id").to_owned(),
                k["current"].as_bool().expect("current"),
            )
        })
        .collect()
}

#[test]
fn add_list_remove_and_passwd() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 4, 100_000);
    env.ok(&["init"]);
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let first = keys(&env);
    assert_eq!(first.len(), 1);
    assert!(first[0].1, "the only key opened the repository");
    let k1 = first[0].0.clone();

    // A second password from a file.
    let file = env.path("second.txt");
    std::fs::write(&file, "second password\n").unwrap();
    let mut args = vec!["key", "add", "--json", "--new-password-file"];
    args.push(file.to_str().unwrap());
    args.extend(FAST_KDF);
    let added = env.json(&args);
    let k2 = added["added"].as_str().expect("added").to_owned();
    let second = env.with_password("second password");
    let listed = keys(&second);
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&(k1.clone(), false)) && listed.contains(&(k2.clone(), true)));
    let text = second.ok(&["key", "list"]);
    assert!(text.contains(&format!("*  {}", &k2[..8])), "{text}");

    // Neither the key in use nor, later, the last key can be removed.
    let err = env.fail(&["key", "remove", &k1[..8]]);
    assert!(
        err.contains("opened the repository and cannot be removed"),
        "{err}"
    );
    let err = env.fail(&["key", "remove", "abcdefabcdef"]);
    assert!(err.contains("no key matches \"abcdefabcdef\""), "{err}");
    let out = second.json(&["key", "remove", &k1[..8], "--json"]);
    assert_eq!(out["removed"], k1.as_str());
    let err = env.fail(&["snapshots"]);
    assert!(err.contains("wrong password"), "{err}");

    // passwd: the new password works, the old one no longer does, the data is intact.
    let mut cmd = second.command(&[&["key", "passwd", "--json"], &FAST_KDF[..]].concat());
    let out = cmd
        .env("STOWAWAY_NEW_PASSWORD", "third password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(changed["removed"], k2.as_str());
    let k3 = changed["added"].as_str().expect("added").to_owned();
    let err = second.fail(&["snapshots"]);
    assert!(err.contains("wrong password"), "{err}");
    let third = env.with_password("third password");
    assert_eq!(keys(&third), vec![(k3.clone(), true)]);
    let err = third.fail(&["key", "remove", &k3]);
    assert!(err.contains("cannot be removed"), "{err}");
    let target = env.path("restored");
    third.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&src), tree_digest(&target.join("src")));
    let check = third.json(&["check", "--read-data", "--json"]);
    assert_eq!(check["ok"], true, "{check}");
}

#[test]
fn no_new_password_and_unencrypted_repositories_fail_cleanly() {
    let env = Env::new();
    env.ok(&["init"]);
    // stdin is not a terminal: nothing to ask.
    let err = env.fail(&["key", "add"]);
    assert!(err.contains("no new password given"), "{err}");
    let empty = env.path("empty");
    std::fs::write(&empty, "").unwrap();
    let err = env.fail(&[
        "key",
        "passwd",
        "--new-password-file",
        empty.to_str().unwrap(),
    ]);
    assert!(err.contains("is empty"), "{err}");
    assert_eq!(
        keys(&env).len(),
        1,
        "a failed add or passwd leaves the keys as they were"
    );

    let plain = Env::new();
    plain.ok(&["init", "--insecure-no-encryption"]);
    let err = plain.fail(&["key", "list"]);
    assert!(
        err.contains("the repository is not encrypted: it has no keys"),
        "{err}"
    );
    let mut cmd = plain.command(&["key", "add"]);
    let out = cmd.env("STOWAWAY_NEW_PASSWORD", "x").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not encrypted"));
}
