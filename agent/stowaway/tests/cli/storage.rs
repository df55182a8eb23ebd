//! Storage options of the command line: fault injection (test builds), append-only mode,
//! bandwidth limits and storage URL errors.

use std::time::Instant;

use crate::util::{Env, corpus, tree_digest};

#[test]
fn backup_check_and_restore_succeed_through_injected_storage_faults() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 12, 100_000);
    env.ok(&["init"]);
    // One request in ten fails, one in twenty succeeds but loses its response.
    let faults = "fail=0.1,lose=0.05,seed=11";
    let run = |args: &[&str]| {
        let out = env
            .command(args)
            .env("STOWAWAY_TEST_FAULTS", faults)
            .output()
            .expect("run stowaway");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        assert!(stderr.contains("injecting storage faults"), "{stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["backup", src.to_str().unwrap()]);
    run(&["check", "--read-data"]);
    let target = env.path("restore");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(&src), tree_digest(&target.join("src")));

    // The variable is really read: an invalid one is an error.
    let out = env
        .command(&["snapshots"])
        .env("STOWAWAY_TEST_FAULTS", "fail=3")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STOWAWAY_TEST_FAULTS"), "{err}");
}

#[test]
fn append_only_repositories_accept_backups() {
    let env = Env::new();
    let src = env.dir("src");
    corpus::bulk(&src, 4, 50_000);
    env.ok(&["init", "--append-only"]);
    let out = env
        .command(&["backup", src.to_str().unwrap()])
        .env("STOWAWAY_APPEND_ONLY", "1")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    corpus::overwrite(&src.join("d0/file-0000.bin"), 3);
    env.ok(&["--append-only", "backup", src.to_str().unwrap()]);
    let snapshots = env.json(&["--append-only", "snapshots", "--json"]);
    assert_eq!(snapshots.as_array().map(Vec::len), Some(2), "{snapshots}");
}

#[test]
fn upload_limit_slows_a_backup_down() {
    let env = Env::new();
    let src = env.dir("src");
    // Incompressible data: about 1.5 MiB reach the storage.
    std::fs::write(src.join("noise"), corpus::noise(5, 1536 * 1024)).unwrap();
    env.ok(&["init"]);
    let started = Instant::now();
    env.ok(&["--limit-upload", "512", "backup", src.to_str().unwrap()]);
    let elapsed = started.elapsed().as_secs_f64();
    // 512 KiB pass at once (the burst), the other 1 MiB take two seconds.
    assert!(
        elapsed >= 1.8,
        "backup took {elapsed:.2} s under a 512 KiB/s limit"
    );
    let err = env.fail(&["--limit-download", "0", "snapshots"]);
    assert!(err.contains("above 0 KiB/s"), "{err}");
}

#[test]
fn storage_url_mistakes_are_reported() {
    let run = |url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowaway"))
            .args(["--repo", url, "snapshots"])
            .env("STOWAWAY_PASSWORD", "x")
            .env_remove("STOWAWAY_TEST_FAULTS")
            .output()
            .expect("run stowaway");
        assert!(!out.status.success(), "{url} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("s3://bucket/prefix?enpoint=http://127.0.0.1:1");
    assert!(err.contains("unknown option enpoint"), "{err}");
    let err = run("ftp://host/x");
    assert!(
        err.contains("unsupported storage URL ftp://host/x"),
        "{err}"
    );
}
