//! Black-box tests of the `stowaway` binary against real files and a local repository.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod copy;
mod databases;
mod execute;
mod forget;
mod init_options;
mod inject;
mod keys;
mod maintenance;
mod sidecar;
mod storage;
mod trigger;
mod util;

use std::os::unix::fs::MetadataExt;

use util::{Env, corpus, tree_digest};

#[test]
fn round_trip_keeps_every_entry_type_and_its_metadata() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::every_kind(&src);
    env.ok(&["init"]);
    let out = env.ok(&["backup", src.to_str().unwrap(), "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&out).expect("backup --json");
    assert_eq!(summary["warnings"], 0, "{out}");

    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let restored = target.join("src");
    assert_eq!(tree_digest(&src), tree_digest(&restored));
    // Hard links are hard links again.
    let a = std::fs::metadata(restored.join("dir/hard-a")).unwrap();
    let b = std::fs::metadata(restored.join("other/hard-b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard links restored as separate files");
    assert_eq!(a.nlink(), 2);
}

#[test]
fn unchanged_files_are_not_read_again_and_changes_upload_little() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 40, 256 * 1024);
    env.ok(&["init"]);
    let first = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    let added_first = first["summary"]["bytes_added"].as_u64().unwrap();
    assert!(added_first > 4_000_000, "{first}");

    let second = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(second["summary"]["files_unmodified"], 40, "{second}");
    assert_eq!(
        second["summary"]["bytes_processed"], 0,
        "unchanged files were read: {second}"
    );
    assert_eq!(second["summary"]["data_blobs_new"], 0, "{second}");

    // Change one file of 40: the third backup reads one file and adds about one chunk.
    corpus::overwrite(&src.join("d1/file-0001.bin"), 7);
    let third = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(third["summary"]["files_changed"], 1, "{third}");
    assert_eq!(third["summary"]["files_unmodified"], 39, "{third}");
    let added = third["summary"]["bytes_added"].as_u64().unwrap();
    assert!(
        added * 10 < added_first,
        "changing 1 of 40 files added {added} of {added_first} bytes"
    );

    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&src), tree_digest(&target.join("src")));
}

#[test]
fn wrong_password_missing_repository_and_bad_input_fail_cleanly() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 2, 1000);
    let err = env.fail(&["snapshots"]);
    assert!(err.contains("is not a Stowaway repository"), "{err}");
    env.ok(&["init"]);
    let err = env.fail(&["init"]);
    assert!(err.contains("already exists"), "{err}");

    let err = env.with_password("wrong").fail(&["snapshots"]);
    assert!(err.contains("wrong password"), "{err}");
    let err = env.fail(&["backup", env.path("missing").to_str().unwrap()]);
    assert!(
        err.contains("cannot back up") && err.contains("missing"),
        "{err}"
    );
    let err = env.fail(&["restore", "deadbeef", "--target", "/tmp/x"]);
    assert!(err.contains("no snapshot matches"), "{err}");
    let err = env.fail(&["backup", src.to_str().unwrap(), "--param", "nope=1"]);
    assert!(err.contains("unknown parameter \"nope\""), "{err}");
    let err = env.fail(&["backup", src.to_str().unwrap(), "--addon", "nonexistent"]);
    assert!(err.contains("no addon named \"nonexistent\""), "{err}");
}

#[test]
fn storage_holds_no_plaintext() {
    let env = Env::new();
    let src = env.dir("src");
    let marker = "STOWAWAY-PLAINTEXT-MARKER-7f3a9c";
    // The marker sits once between incompressible bytes, so compression alone keeps it
    // visible: only encryption can hide it.
    let mut data = corpus::noise(1, 200_000);
    data.extend_from_slice(marker.as_bytes());
    data.extend_from_slice(&corpus::noise(2, 200_000));
    std::fs::write(src.join("secret.bin"), &data).unwrap();
    std::fs::write(src.join(format!("{marker}.name")), b"x").unwrap();
    env.ok(&["init"]);
    env.ok(&["backup", src.to_str().unwrap(), "--tag", marker]);
    let hits = util::grep_tree(&env.repo, marker.as_bytes());
    assert!(hits.is_empty(), "plaintext found in {hits:?}");
    // The marker is really there when encryption is off (so the check above can fail).
    let plain = Env::new();
    plain.ok(&["init", "--insecure-no-encryption"]);
    plain.ok(&["backup", src.to_str().unwrap()]);
    assert!(!util::grep_tree(&plain.repo, marker.as_bytes()).is_empty());
}

#[test]
fn a_flipped_byte_is_reported_naming_the_snapshot() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 4, 300_000);
    env.ok(&["init"]);
    let snap = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    let id = snap["snapshot"].as_str().unwrap().to_owned();
    env.ok(&["check", "--read-data"]);

    let pack = util::largest_file(&env.repo.join("data"));
    util::flip_byte(&pack, 1000);
    let out = env.run(&["check", "--read-data"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("error:"), "{stdout}");
    assert!(
        stdout.contains(&id[..8]),
        "the report does not name snapshot {id}: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("check found"), "{stderr}");

    let target = env.path("restore");
    let err = env.fail(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(
        err.contains("corrupt") || err.contains("authentic"),
        "{err}"
    );
}

#[test]
fn kill_during_backup_leaves_a_consistent_repository() {
    let env = Env::new();
    let small = env.dir("small");
    corpus::bulk(&small, 5, 100_000);
    env.ok(&["init"]);
    env.ok(&["backup", small.to_str().unwrap()]);

    let big = env.dir("big");
    corpus::bulk(&big, 60, 4 * 1024 * 1024);
    let mut child = env
        .command(&["backup", big.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Kill once some packs of the new backup have been written.
    let data = env.repo.join("data");
    let before = util::count_files(&data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while util::count_files(&data) < before + 2 && std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let snapshots = env.json(&["snapshots", "--json"]);
    assert_eq!(
        snapshots.as_array().unwrap().len(),
        1,
        "a half backup became a snapshot"
    );

    env.ok(&["check", "--read-data"]);
    env.ok(&["backup", big.to_str().unwrap()]);
    env.ok(&["check"]);
    let first = snapshots[0]["id"].as_str().unwrap();
    let target = env.path("restore");
    env.ok(&["restore", first, "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&small), tree_digest(&target.join("small")));
    let target = env.path("restore-big");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&big), tree_digest(&target.join("big")));
}

#[test]
fn excludes_ls_dump_and_stats() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::every_kind(&src);
    std::fs::create_dir_all(src.join("cache/deep")).unwrap();
    std::fs::write(src.join("cache/deep/x"), b"x").unwrap();
    std::fs::write(src.join("dir/skip.tmp"), b"tmp").unwrap();
    env.ok(&["init"]);
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache",
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("src/dir/hard-a"), "{ls}");
    assert!(
        !ls.contains("skip.tmp") && !ls.contains("cache"),
        "excluded entries listed: {ls}"
    );

    // dump writes a tar whose files match the source.
    let out = env.run(&["dump", "latest", "src"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut files = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            assert_eq!(
                content,
                std::fs::read(src.join(&path)).unwrap(),
                "{}",
                path.display()
            );
            files += 1;
        }
    }
    assert!(files >= 5, "only {files} files in the tar");

    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["snapshots"], 1);
    assert!(
        stats["compression_ratio"].as_f64().unwrap() > 1.0,
        "{stats}"
    );
    let describe = env.json(&["addon", "describe", "volume", "--json"]);
    assert_eq!(describe["name"], "volume");
    assert!(describe["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn piped_output_has_no_progress_bar() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 3, 10_000);
    env.ok(&["init"]);
    let out = env.run(&["backup", src.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}

#[test]
fn restore_never_writes_through_a_symlink_planted_in_the_target() {
    let env = Env::new();
    let src = env.dir("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/file"), b"from the snapshot").unwrap();
    env.ok(&["init"]);
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    // Someone replaces the restored directory with a symlink to a directory outside.
    let outside = env.dir("outside");
    std::fs::write(outside.join("file"), b"outside, must stay").unwrap();
    std::fs::remove_dir_all(target.join("src/a")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("src/a")).unwrap();

    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(outside.join("file")).unwrap(),
        b"outside, must stay"
    );
    let a = std::fs::symlink_metadata(target.join("src/a")).unwrap();
    assert!(a.is_dir(), "the symlink was not replaced by the directory");
    assert_eq!(
        std::fs::read(target.join("src/a/file")).unwrap(),
        b"from the snapshot"
    );
}

#[test]
fn restore_to_the_original_location() {
    let env = Env::new();
    let src = env.dir("data");
    corpus::bulk(&src, 4, 20_000);
    let before = tree_digest(&src);
    env.ok(&["init"]);
    env.ok(&["backup", src.to_str().unwrap()]);
    corpus::overwrite(&src.join("d0/file-0000.bin"), 99);
    std::fs::remove_file(src.join("d1/file-0001.bin")).unwrap();
    let err = env.fail(&["restore", "latest"]);
    assert!(err.contains("--target DIR (or --original)"), "{err}");
    env.ok(&["restore", "latest", "--original"]);
    let after = tree_digest(&src);
    // Contents and metadata of the files are back; directory mtimes changed by the damage
    // are restored too.
    assert_eq!(before, after);
}

#[test]
fn ctrl_c_stops_a_backup_without_recording_a_snapshot() {
    let env = Env::new();
    let big = env.dir("big");
    corpus::bulk(&big, 80, 4 * 1024 * 1024);
    env.ok(&["init"]);
    let child = env
        .command(&["backup", big.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = env.repo.join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while util::count_files(&data) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let snapshots = env.json(&["snapshots", "--json"]);
    assert_eq!(
        snapshots.as_array().unwrap().len(),
        0,
        "an interrupted backup became a snapshot"
    );
    env.ok(&["check"]);
}

#[test]
fn crds_prints_the_chart_copy() {
    let env = Env::new();
    let out = env.ok(&["crds"]);
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/stowaway/crds/stowaway-crds.yaml"
    );
    assert_eq!(out, std::fs::read_to_string(chart).unwrap());
    assert_eq!(
        out.matches("\nkind: CustomResourceDefinition\n").count(),
        12
    );
}

#[test]
fn operator_without_a_cluster_says_what_is_missing() {
    let env = Env::new();
    let out = env
        .command(&["operator", "--health-address", "127.0.0.1:0"])
        .env("KUBECONFIG", env.path("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no Kubernetes API to talk to: run the operator in a cluster, or set KUBECONFIG"
        ),
        "{stderr}"
    );
    // A cluster that does not answer: a clear error, not a crash (exit 1, not a panic).
    let kubeconfig = env.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = env
        .command(&["operator", "--health-address", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stowaway: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = env.fail(&["operator", "--lease-duration", "1s"]);
    assert!(
        out.contains("--lease-duration must be at least 3s"),
        "{out}"
    );
}
