//! Sandbox tests: each misbehaving guest in `plugins/testing` is contained with a clear error,
//! and the agent and repository stay usable afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stowaway_addons::test_programs;
use stowaway_repository::{InitOptions, KdfParams, Repository, SnapshotMeta};
use stowaway_storage::Storage;

use crate::{Addon, Error, Failure, JobLimits, JobSpec, Runtime, RuntimeOptions, VolumeGrant};

mod exec;

struct Harness {
    rt: tokio::runtime::Runtime,
    runtime: Runtime,
    repo: Repository,
    _cache: tempfile::TempDir,
}

fn harness() -> Harness {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        no_cache: false,
    })
    .expect("runtime");
    let repo = rt.block_on(async {
        let options = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        };
        let repo = Repository::init(Storage::memory(), "pw", options)
            .await
            .expect("init");
        repo.load_index().await.expect("index");
        repo
    });
    Harness {
        rt,
        runtime,
        repo,
        _cache: cache,
    }
}

impl Harness {
    fn load(&self, path: &str) -> Addon {
        let bytes = std::fs::read(path).expect("test program built by stowaway-addons");
        self.runtime.load(&bytes, path).expect("load")
    }

    /// Runs a backup job and, when it succeeds, commits the snapshot.
    fn backup(&self, addon: &Addon, spec: JobSpec) -> crate::Result<crate::BackupOutput> {
        let backup = Arc::new(self.repo.start_backup(None).expect("start backup"));
        let out = addon.backup(spec, backup.clone())?;
        let Ok(backup) = Arc::try_unwrap(backup) else {
            panic!("the store did not release the backup");
        };
        self.rt
            .block_on(backup.commit(SnapshotMeta::default(), out.components.clone()))
            .expect("commit");
        Ok(out)
    }
}

fn failure(result: crate::Result<impl std::fmt::Debug>) -> (String, Failure) {
    match result {
        Err(Error::Addon { addon, failure }) => (addon, failure),
        other => panic!("expected an addon failure, got {other:?}"),
    }
}

/// The repository still takes a normal backup after a failed one.
fn assert_repository_usable(h: &Harness) {
    let echo = h.load(test_programs::STREAM_ECHO);
    let mut spec = JobSpec::new("after");
    spec.parameters = vec![("text".into(), "still fine".into())];
    h.backup(&echo, spec).expect("backup after failure");
    let snapshots = h.rt.block_on(h.repo.snapshots()).expect("snapshots");
    assert!(!snapshots.is_empty());
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    let h = harness();
    let addon = h.load(test_programs::LOOP_FOREVER);
    let mut spec = JobSpec::new("loop");
    spec.limits = JobLimits {
        deadline: Some(Duration::from_millis(300)),
        grace: Duration::from_millis(200),
        ..JobLimits::default()
    };
    let started = Instant::now();
    let (addon_name, fail) = failure(h.backup(&addon, spec));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(addon_name, "test-loop-forever 0.1.0");
    assert_eq!(fail, Failure::Timeout(Duration::from_millis(300)));
    let message = Error::Addon {
        addon: addon_name,
        failure: fail,
    }
    .to_string();
    assert_eq!(
        message,
        "addon test-loop-forever 0.1.0: exceeded its deadline of 300 ms and was stopped"
    );
    assert_repository_usable(&h);
}

#[test]
fn endless_loop_is_stopped_on_cancel() {
    let h = harness();
    let addon = h.load(test_programs::LOOP_FOREVER);
    let mut spec = JobSpec::new("loop");
    spec.limits.grace = Duration::from_millis(100);
    let cancel = spec.cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.cancel();
    });
    let (_, fail) = failure(h.backup(&addon, spec));
    assert_eq!(fail, Failure::Cancelled);
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let h = harness();
    let addon = h.load(test_programs::ALLOC_BOMB);
    let mut spec = JobSpec::new("alloc");
    spec.limits.memory_bytes = 32 * 1024 * 1024;
    let (addon_name, fail) = failure(h.backup(&addon, spec));
    assert_eq!(addon_name, "test-alloc-bomb 0.1.0");
    assert_eq!(
        fail,
        Failure::OutOfMemory {
            limit: 32 * 1024 * 1024
        }
    );
    assert!(
        fail.to_string()
            .contains("exceeded its memory limit of 32 MiB"),
        "{fail}"
    );
    assert_repository_usable(&h);
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let h = harness();
    let addon = h.load(test_programs::TRAP);
    let (addon_name, fail) = failure(h.backup(&addon, JobSpec::new("trap")));
    assert_eq!(addon_name, "test-trap 0.1.0");
    match &fail {
        Failure::Trap(message) => assert!(
            message.contains("deliberate panic in test addon"),
            "trap message lacks the panic: {message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_repository_usable(&h);
}

#[test]
fn file_system_escapes_are_denied() {
    let h = harness();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("inside.txt"), b"inside").expect("write");
    std::os::unix::fs::symlink("/etc", dir.path().join("link")).expect("symlink");
    let addon = h.load(test_programs::ESCAPE_FS);
    let mut spec = JobSpec::new("escape");
    spec.volumes = vec![VolumeGrant {
        name: "vol".into(),
        path: dir.path().to_path_buf(),
    }];
    let out = h
        .backup(&addon, spec)
        .expect("the escape addon runs to the end");
    assert!(
        out.attributes.len() >= 17,
        "too few attempts: {:?}",
        out.attributes
    );
    for attempt in [
        "copy-from-dotdot",
        "copy-from-absolute",
        "copy-from-symlink-dir",
        "copy-from-symlink",
    ] {
        assert!(
            out.attributes.iter().any(|(a, _)| a == attempt),
            "attempt {attempt} missing: {:?}",
            out.attributes
        );
    }
    for (attempt, outcome) in &out.attributes {
        assert!(
            outcome.starts_with("denied"),
            "escape attempt {attempt} was not denied: {outcome}"
        );
    }
    // Nothing was written into the read-only volume.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["inside.txt", "link"]);
}

#[test]
fn malformed_tree_entries_are_refused() {
    let h = harness();
    let addon = h.load(test_programs::BAD_TREE);
    let out = h.backup(&addon, JobSpec::new("bad-tree")).expect("runs");
    let get = |k: &str| {
        out.attributes
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no attribute {k}: {:?}", out.attributes))
    };
    for path in ["../evil", "/abs", "a/../../b", "x/y"] {
        let outcome = get(path);
        assert!(outcome.starts_with("refused"), "{path}: {outcome}");
        assert!(outcome.contains("InvalidParameter"), "{path}: {outcome}");
    }
}

#[test]
fn stream_round_trip_and_interface_checks() {
    let h = harness();
    let addon = h.load(test_programs::STREAM_ECHO);
    let text = "line of text\n";
    let mut spec = JobSpec::new("echo");
    spec.parameters = vec![
        ("text".into(), text.into()),
        ("repeat".into(), "100000".into()),
    ];
    let out = h.backup(&addon, spec).expect("backup");
    assert_eq!(out.components.len(), 1);
    assert_eq!(out.components[0].name, "data");
    assert_eq!(out.components[0].size, (text.len() * 100_000) as u64);

    // Restore checks the content inside the addon; a different expectation fails there.
    let mut spec = JobSpec::new("echo-restore");
    spec.parameters = vec![
        ("text".into(), text.into()),
        ("repeat".into(), "100000".into()),
    ];
    addon
        .restore(spec, h.repo.clone(), out.components.clone())
        .expect("restore verifies the same bytes");
    let mut spec = JobSpec::new("echo-restore-wrong");
    spec.parameters = vec![
        ("text".into(), "other\n".into()),
        ("repeat".into(), "3".into()),
    ];
    let (_, fail) = failure(addon.restore(spec, h.repo.clone(), out.components));
    assert!(
        matches!(fail, Failure::Failed { ref kind, .. } if kind == "corrupt"),
        "{fail:?}"
    );
}

#[test]
fn cooperative_cancel_and_deadline() {
    let h = harness();
    let addon = h.load(test_programs::STREAM_ECHO);
    let mut spec = JobSpec::new("slow");
    spec.parameters = vec![
        ("text".into(), "x".into()),
        ("delay-ms".into(), "60000".into()),
    ];
    spec.limits.deadline = Some(Duration::from_millis(200));
    let started = Instant::now();
    let (_, fail) = failure(h.backup(&addon, spec));
    assert_eq!(fail, Failure::Timeout(Duration::from_millis(200)));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn parameters_and_capabilities_are_checked_before_running() {
    let h = harness();
    let addon = h.load(test_programs::DESCRIBE_ONLY);
    let info = addon.info();
    assert_eq!(info.name, "test-describe-only");
    assert!(info.capabilities.contains(&crate::Capability::Connect {
        host: "127.0.0.1".into(),
        port: 5432
    }));
    match h.backup(&addon, JobSpec::new("no-param")) {
        Err(Error::InvalidParameter { addon, reason }) => {
            assert_eq!(addon, "test-describe-only 0.1.0");
            assert_eq!(reason, "parameter \"needed\" is required");
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
    // An addon that declares no volume access gets none.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = JobSpec::new("volume");
    spec.parameters = vec![("needed".into(), "x".into())];
    spec.volumes = vec![VolumeGrant {
        name: "vol".into(),
        path: dir.path().to_path_buf(),
    }];
    match h.backup(&addon, spec) {
        Err(Error::PermissionDenied { reason, .. }) => {
            assert!(
                reason.contains("does not declare read access to volumes"),
                "{reason}"
            )
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[test]
fn non_components_are_refused_with_a_clear_error() {
    let h = harness();
    let core_module = b"\0asm\x01\0\0\0";
    match h.runtime.load(core_module, "core.wasm") {
        Err(Error::InvalidComponent { origin, reason }) => {
            assert_eq!(origin, "core.wasm");
            assert!(
                reason.contains("core WebAssembly module, not a component"),
                "{reason}"
            );
        }
        other => panic!("expected InvalidComponent, got {other:?}"),
    }
    match h.runtime.load(b"#!/bin/sh\necho hi\n", "script") {
        Err(Error::InvalidComponent { reason, .. }) => {
            assert!(reason.contains("magic bytes"), "{reason}")
        }
        other => panic!("expected InvalidComponent, got {other:?}"),
    }
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let h = harness();
    let _ = h.load(test_programs::TRAP);
    let cached: Vec<_> = std::fs::read_dir(h._cache.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // Loading again uses the artifact (and still works).
    let again = h.load(test_programs::TRAP);
    assert_eq!(again.info().name, "test-trap");
}

/// Commits a snapshot whose single tree component is `nodes`, bypassing the writer's checks.
fn malicious_snapshot(
    h: &Harness,
    nodes: Vec<stowaway_repository::Node>,
) -> stowaway_repository::ComponentRecord {
    let backup = h.repo.start_backup(None).expect("start backup");
    let tree = stowaway_repository::Tree { nodes };
    let root = std::thread::scope(|s| {
        s.spawn(|| backup.store_unchecked_tree(&tree).expect("store"))
            .join()
            .expect("thread")
    });
    let record = stowaway_repository::ComponentRecord {
        name: "vol".into(),
        kind: stowaway_repository::ComponentKind::Tree,
        media_type: stowaway_repository::TREE_MEDIA_TYPE.into(),
        size: 0,
        attributes: Vec::new(),
        root,
    };
    h.rt.block_on(backup.commit(SnapshotMeta::default(), vec![record.clone()]))
        .expect("commit");
    record
}

#[test]
fn restore_refuses_entries_that_would_leave_the_target() {
    use stowaway_repository::{Entry, EntryKind, Node};
    let h = harness();
    let volume = h
        .runtime
        .load(
            stowaway_addons::builtin("volume").expect("built in"),
            "volume",
        )
        .expect("load volume addon");
    let node = |path: &str, kind| Node::from_entry(&Entry::new(path, kind), path);
    let mut link = node("a", EntryKind::Symlink);
    link.link_target = Some("/tmp".into());
    let cases = [
        ("../escaped", vec![node("../escaped", EntryKind::Fifo)]),
        ("/tmp/escaped", vec![node("/tmp/escaped", EntryKind::Fifo)]),
        ("a/b", vec![link, node("a/b", EntryKind::Fifo)]),
    ];
    for (bad, nodes) in cases {
        let record = malicious_snapshot(&h, nodes);
        let outer = tempfile::tempdir().expect("tempdir");
        let target = outer.path().join("target");
        std::fs::create_dir(&target).expect("mkdir");
        let mut spec = JobSpec::new("evil");
        spec.volumes = vec![VolumeGrant {
            name: "vol".into(),
            path: target.clone(),
        }];
        let (addon, fail) = failure(volume.restore(spec, h.repo.clone(), vec![record]));
        assert_eq!(addon, "volume 0.1.0");
        let message = fail.to_string();
        assert!(
            message.contains("unsafe or damaged") && message.contains(&format!("{bad:?}")),
            "{bad}: {message}"
        );
        assert_eq!(
            std::fs::read_dir(outer.path()).expect("list").count(),
            1,
            "{bad}: wrote beside the target"
        );
        assert!(!std::path::Path::new("/tmp/escaped").exists());
    }
}

#[test]
fn addon_blocked_in_a_host_call_is_stopped_after_the_grace_period() {
    let h = harness();
    let addon = h.load(test_programs::LOOP_FOREVER);
    let mut spec = JobSpec::new("sleep");
    spec.parameters = vec![("mode".into(), "sleep".into())];
    spec.limits = JobLimits {
        deadline: Some(Duration::from_millis(200)),
        grace: Duration::from_millis(300),
        ..JobLimits::default()
    };
    let started = Instant::now();
    let (_, fail) = failure(h.backup(&addon, spec));
    assert_eq!(fail, Failure::Timeout(Duration::from_millis(200)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_repository_usable(&h);
}

#[test]
fn the_cancel_pollable_wakes_at_the_deadline() {
    let h = harness();
    let addon = h.load(test_programs::LOOP_FOREVER);
    let mut spec = JobSpec::new("wait");
    spec.parameters = vec![("mode".into(), "wait-cancel".into())];
    spec.limits = JobLimits {
        deadline: Some(Duration::from_millis(200)),
        grace: Duration::from_secs(60),
        ..JobLimits::default()
    };
    let started = Instant::now();
    let (_, fail) = failure(h.backup(&addon, spec));
    // The addon returned `cancelled` by itself, long before the grace period ended.
    assert_eq!(fail, Failure::Timeout(Duration::from_millis(200)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn addons_built_against_an_older_patch_still_run() {
    let h = harness();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stream-echo-0.1.0.wasm"
    );
    let addon = h.load(path);
    assert_eq!(addon.info().name, "test-stream-echo");
    let params = || {
        vec![
            ("text".to_string(), "old addon\n".to_string()),
            ("repeat".to_string(), "1000".to_string()),
        ]
    };
    let mut spec = JobSpec::new("old-backup");
    spec.parameters = params();
    let out = h.backup(&addon, spec).expect("backup with a 0.1.0 addon");
    assert_eq!(out.components[0].size, 10_000);
    let mut spec = JobSpec::new("old-restore");
    spec.parameters = params();
    addon
        .restore(spec, h.repo.clone(), out.components)
        .expect("restore with a 0.1.0 addon checks the same bytes");
}
