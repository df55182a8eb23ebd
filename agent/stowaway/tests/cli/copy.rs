//! `stowaway copy` between two local repositories.

use crate::util::{Env, corpus, tree_digest};

/// Runs `copy` from `src` into `dest`'s repository with `dest`'s password.
fn copy(src: &Env, dest: &Env, args: &[&str]) -> std::process::Output {
    let mut full = vec!["copy", "--to", dest.repo.to_str().unwrap()];
    full.extend_from_slice(args);
    src.command(&full)
        .env("STOWAWAY_TO_PASSWORD", DEST_PASSWORD)
        .output()
        .unwrap()
}

fn copy_json(src: &Env, dest: &Env, args: &[&str]) -> serde_json::Value {
    let out = copy(src, dest, &[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const DEST_PASSWORD: &str = "another password";

#[test]
fn copies_trees_and_streams_once_with_shared_data_stored_once() {
    let env = Env::new();
    let dest_dir = Env::new();
    let dest = dest_dir.with_password(DEST_PASSWORD);
    env.ok(&["init"]);
    dest.ok(&["init"]);

    // A tree with every kind of entry, a second tree sharing its big file, and a stream.
    let src = env.dir("src");
    corpus::every_kind(&src);
    let other = env.dir("other");
    std::fs::copy(src.join("dir/sub/big.bin"), other.join("big-again.bin")).unwrap();
    std::fs::write(other.join("own.bin"), corpus::noise(5, 3 << 20)).unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    env.ok(&["backup", other.to_str().unwrap(), "-q"]);
    let text: String = corpus::noise(9, 2048)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let echo = stowaway_addons::test_programs::STREAM_ECHO;
    let param = format!("text={text}");
    env.ok(&[
        "backup",
        "--addon",
        echo,
        "--param",
        &param,
        "--param",
        "repeat=1500",
        "-q",
    ]);
    let stream = env
        .command(&["dump", "latest", "data"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(stream.len(), 4096 * 1500);

    // Dry run: all three listed, nothing written.
    let planned = copy_json(&env, &dest, &["--dry-run"]);
    assert_eq!(planned["to_copy"].as_array().unwrap().len(), 3, "{planned}");
    assert_eq!(
        dest.json(&["snapshots", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let report = copy_json(&env, &dest, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 3, "{report}");
    let src_stats = env.json(&["stats", "--json"]);
    let dest_stats = dest.json(&["stats", "--json"]);
    // Each data blob of the source once in the destination, the shared file included.
    assert_eq!(
        dest_stats["data_blobs"], src_stats["data_blobs"],
        "{dest_stats}"
    );
    assert_eq!(
        report["data_blobs_new"], src_stats["data_blobs"],
        "{report}"
    );

    // The copies restore to the same trees and stream.
    let snapshots = dest.json(&["snapshots", "--json"]);
    let originals = env.json(&["snapshots", "--json"]);
    for (copy, original) in snapshots
        .as_array()
        .unwrap()
        .iter()
        .zip(originals.as_array().unwrap())
    {
        assert_eq!(copy["original"], original["id"], "{copy}");
        assert_eq!(copy["time"], original["time"]);
        assert_eq!(copy["target"], original["target"]);
    }
    let id = |i: usize| snapshots[i]["id"].as_str().unwrap().to_owned();
    let target = env.path("restored");
    dest.ok(&["restore", &id(0), "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&src), tree_digest(&target.join("src")));
    dest.ok(&["restore", &id(1), "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&other), tree_digest(&target.join("other")));
    let copied = dest.command(&["dump", &id(2), "data"]).output().unwrap();
    assert!(copied.status.success());
    assert!(copied.stdout == stream, "the copied stream differs");
    let check = dest.json(&["check", "--read-data", "--json"]);
    assert_eq!(check["ok"], true, "{check}");

    // Again: nothing to copy, nothing read.
    let again = copy_json(&env, &dest, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["present"].as_array().unwrap().len(), 3, "{again}");
    assert_eq!(again["blobs_read"], 0);
    assert_eq!(
        dest.json(&["snapshots", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn copies_selected_snapshots_and_fails_cleanly() {
    let env = Env::new();
    let dest_dir = Env::new();
    let dest = dest_dir.with_password(DEST_PASSWORD);
    env.ok(&["init"]);
    dest.ok(&["init"]);
    let src = env.dir("src");
    corpus::bulk(&src, 6, 300_000);
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    corpus::overwrite(&src.join("d0/file-0000.bin"), 3);
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);

    let report = copy_json(&env, &dest, &["latest"]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let text = String::from_utf8(copy(&env, &dest, &[]).stdout).unwrap();
    assert!(
        text.contains("1 snapshots copied, 1 already in the destination"),
        "{text}"
    );

    // Without the destination's password, with the wrong one, or into itself.
    let out = env
        .command(&["copy", "--to", dest.repo.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no password for the destination"), "{err}");
    let out = env
        .command(&["copy", "--to", dest.repo.to_str().unwrap()])
        .env("STOWAWAY_TO_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    let out = env
        .command(&["copy", "--to", env.repo.to_str().unwrap()])
        .env("STOWAWAY_TO_PASSWORD", "correct horse")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the same repository"), "{err}");
    let out = copy(&env, &dest, &["ffffffff"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no snapshot matches \"ffffffff\""), "{err}");
    assert_eq!(
        dest.json(&["snapshots", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
