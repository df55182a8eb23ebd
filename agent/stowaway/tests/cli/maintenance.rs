//! Many writers and maintenance: concurrent backups, prune beside a running backup, and a
//! prune killed at any moment.

use std::time::{Duration, Instant};

use crate::util::{self, Env, corpus, tree_digest};

/// Forgets a snapshot.
fn drop_snapshot(env: &Env, id: &str) {
    env.ok(&["forget", id]);
}

fn restore_equals(env: &Env, id: &str, source: &std::path::Path, name: &str) {
    let target = env.path(&format!("restore-{}", &id[..8]));
    env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    assert_eq!(tree_digest(source), tree_digest(&target.join(name)));
}

#[test]
fn two_processes_back_up_into_one_repository_at_once() {
    let env = Env::new();
    env.ok(&["init"]);
    let one = env.dir("one");
    let two = env.dir("two");
    corpus::bulk(&one, 20, 2 * 1024 * 1024);
    corpus::bulk(&two, 24, 1024 * 1024);
    // Some files in common, so both deduplicate against each other's uploads.
    std::fs::copy(one.join("d0/file-0000.bin"), two.join("shared.bin")).unwrap();

    let a = env
        .command(&["backup", one.to_str().unwrap()])
        .spawn()
        .unwrap();
    let b = env
        .command(&["backup", two.to_str().unwrap()])
        .spawn()
        .unwrap();
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");

    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    env.ok(&["check", "--read-data"]);
    for id in &ids {
        let listing = env.ok(&["ls", id]);
        if listing.contains("shared.bin") {
            restore_equals(&env, id, &two, "two");
        } else {
            restore_equals(&env, id, &one, "one");
        }
    }
}

/// A backup through the test addon that writes `text` 2000 times into stream `data`, after
/// waiting `delay_ms` (holding its lock and the index it loaded).
fn echo_backup(env: &Env, text: &str, delay_ms: u32) -> std::process::Command {
    let text = format!("text={text}");
    let delay = format!("delay-ms={delay_ms}");
    env.command(&[
        "backup",
        "--addon",
        stowaway_addons::test_programs::STREAM_ECHO,
        "--target-name",
        "echo",
        "--param",
        &text,
        "--param",
        "repeat=2000",
        "--param",
        &delay,
    ])
}

#[test]
fn prune_beside_a_running_backup_keeps_what_the_backup_needs() {
    let env = Env::new();
    env.ok(&["init"]);
    let text: String = corpus::noise(5, 3000)
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    let out = echo_backup(&env, &text, 0).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let old = env.snapshot_ids().remove(0);

    // A backup takes its lock and loads the index, then waits before writing the same data
    // (which it will deduplicate against `old`'s packs).
    let mut running = echo_backup(&env, &text, 4000).spawn().unwrap();
    let locks = env.repo.join("locks");
    let deadline = Instant::now() + Duration::from_secs(30);
    while util::count_files(&locks) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));

    // Meanwhile `old` is forgotten and pruned twice.
    drop_snapshot(&env, &old);
    let prune = ["prune", "--json", "--grace", "0s", "--clock-skew", "0s"];
    let marked = env.json(&prune);
    assert!(marked["marked_packs"].as_u64().unwrap() > 0, "{marked}");
    let second = env.json(&prune);
    assert!(
        running.try_wait().unwrap().is_none(),
        "the backup should still be waiting"
    );
    assert_eq!(second["deleted_packs"], 0, "{second}");
    assert!(second["waiting_for_lock"].as_u64().unwrap() > 0, "{second}");

    let status = running.wait().unwrap();
    assert!(status.success());
    // Its snapshot uses the marked packs: they are recovered, not deleted.
    let after = env.json(&prune);
    assert!(after["recovered_packs"].as_u64().unwrap() > 0, "{after}");
    assert_eq!(after["deleted_packs"], 0, "{after}");
    env.ok(&prune);
    env.ok(&["check", "--read-data"]);
    let new = env.snapshot_ids().remove(0);
    let dumped = env.command(&["dump", &new, "data"]).output().unwrap();
    assert!(dumped.status.success());
    assert_eq!(dumped.stdout, text.repeat(2000).into_bytes());
}

#[test]
fn kill_during_prune_leaves_a_consistent_repository() {
    let env = Env::new();
    env.ok(&["init"]);
    let data = env.dir("data");
    corpus::bulk(&data, 40, 1024 * 1024);
    env.ok(&["backup", data.to_str().unwrap()]);
    let mut kept = Vec::new();
    for round in 0..4u64 {
        for i in 0..8 {
            let path = data
                .join(if i % 2 == 0 { "d0" } else { "d1" })
                .join(format!("file-{:04}.bin", round * 8 + i));
            corpus::overwrite(&path, round * 100 + i);
        }
        std::fs::write(
            data.join(format!("new-{round}")),
            corpus::noise(round, 700_000),
        )
        .unwrap();
        env.ok(&["backup", data.to_str().unwrap()]);
    }
    let ids = env.snapshot_ids();
    // Keep the newest; forget the others.
    for id in &ids[..ids.len() - 1] {
        drop_snapshot(&env, id);
    }
    kept.push(ids[ids.len() - 1].clone());

    let prune = [
        "prune",
        "--grace",
        "0s",
        "--clock-skew",
        "0s",
        "--max-unused",
        "0",
    ];
    for delay_ms in [5u64, 20, 40, 80, 160] {
        let mut child = env.command(&prune).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        env.ok(&["unlock"]);
        env.ok(&["check", "--read-data"]);
    }
    env.ok(&prune);
    env.ok(&prune);
    env.ok(&["check", "--read-data"]);
    restore_equals(&env, &kept[0], &data, "data");
}
