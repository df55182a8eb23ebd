//! `stowaway forget`: policies, dry runs, named snapshots and errors.

use crate::util::{Env, corpus};

/// A repository with five backups of one directory, tagged
/// `nightly`, -, -, `weekly`, - (oldest first), and one of another host.
fn five_backups(env: &Env) -> (Vec<String>, String) {
    let src = env.dir("src");
    corpus::bulk(&src, 4, 2000);
    env.ok(&["init"]);
    for tag in ["nightly", "", "", "weekly", ""] {
        let mut args = vec!["backup", src.to_str().unwrap(), "-q"];
        if !tag.is_empty() {
            args.extend(["--tag", tag]);
        }
        env.ok(&args);
    }
    let ids = env.snapshot_ids();
    env.ok(&["backup", src.to_str().unwrap(), "-q", "--host", "elsewhere"]);
    let other = env
        .snapshot_ids()
        .into_iter()
        .find(|id| !ids.contains(id))
        .unwrap();
    (ids, other)
}

#[test]
fn a_policy_keeps_the_newest_and_the_tagged_snapshots_per_host() {
    let env = Env::new();
    let (ids, other) = five_backups(&env);
    let policy = ["--keep-last", "2", "--keep-tag", "nightly"];

    // Dry run: the plan, nothing deleted.
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend(policy);
    let plan = env.json(&args);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        plan["remove"],
        serde_json::json!([ids[2], ids[1]]),
        "{plan:#}"
    );
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{plan:#}");
    let mine = groups
        .iter()
        .find(|g| g["key"]["hostname"] != "elsewhere")
        .unwrap();
    let kept: Vec<(&str, Vec<&str>)> = mine["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let reasons = s["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            (s["id"].as_str().unwrap(), reasons)
        })
        .collect();
    assert_eq!(
        kept,
        vec![
            (ids[4].as_str(), vec!["last snapshot"]),
            (ids[3].as_str(), vec!["last snapshot"]),
            (ids[0].as_str(), vec!["tag nightly"]),
        ]
    );
    assert_eq!(env.snapshot_ids().len(), 6, "a dry run removed snapshots");

    // The text of a dry run names each snapshot's action and reasons.
    let mut args = vec!["forget", "--dry-run"];
    args.extend(policy);
    let text = env.ok(&args);
    assert!(
        text.contains("Applying policy: keep 2 latest snapshots, snapshots with tags nightly"),
        "{text}"
    );
    assert!(
        text.contains("would remove 2 snapshots (dry run: nothing was removed)"),
        "{text}"
    );
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&id[..8]))
            .unwrap_or_else(|| panic!("no line for {id} in\n{text}"))
            .to_owned()
    };
    assert!(line(&ids[0]).contains("keep") && line(&ids[0]).ends_with("tag nightly"));
    assert!(line(&ids[1]).contains("remove"));
    assert!(line(&other).ends_with("last snapshot"));
    assert_eq!(env.snapshot_ids().len(), 6);

    // For real.
    let mut args = vec!["forget"];
    args.extend(policy);
    let text = env.ok(&args);
    assert!(text.contains("removed 2 snapshots"), "{text}");
    let mut left = env.snapshot_ids();
    left.sort();
    let mut want = vec![ids[0].clone(), ids[3].clone(), ids[4].clone(), other];
    want.sort();
    assert_eq!(left, want);
    // The data is still whole: every remaining snapshot checks out and restores.
    env.ok(&["check", "--read-data"]);
    let target = env.path("restore");
    env.ok(&[
        "restore",
        &ids[0][..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        crate::util::tree_digest(&env.path("src")),
        crate::util::tree_digest(&target.join("src"))
    );
}

#[test]
fn named_snapshots_are_removed_and_wrong_names_are_clear_errors() {
    let env = Env::new();
    let (ids, _) = five_backups(&env);

    let err = env.fail(&["forget", "deadbeef"]);
    assert_eq!(err, "stowaway: no snapshot matches \"deadbeef\"");
    let err = env.fail(&["forget", &ids[1][..8], "not-an-id"]);
    assert_eq!(err, "stowaway: no snapshot matches \"not-an-id\"");
    assert_eq!(
        env.snapshot_ids().len(),
        6,
        "a failed forget removed snapshots"
    );

    let err = env.fail(&["forget"]);
    assert!(err.contains("no policy given"), "{err}");
    let err = env.fail(&["forget", &ids[1][..8], "--keep-last", "1"]);
    assert!(err.contains("not both"), "{err}");
    let out = env.run(&["forget", "--keep-within", "2w"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown unit 'w'"), "{stderr}");

    // --dry-run with names removes nothing; without, exactly those.
    let plan = env.json(&["forget", &ids[1][..8], &ids[2], "--dry-run", "--json"]);
    assert_eq!(plan["remove"], serde_json::json!([ids[1], ids[2]]));
    assert_eq!(env.snapshot_ids().len(), 6);
    let text = env.ok(&["forget", &ids[1][..8], &ids[2]]);
    assert!(text.contains("removed 2 snapshots"), "{text}");
    let left = env.snapshot_ids();
    assert_eq!(left.len(), 4);
    assert!(!left.contains(&ids[1]) && !left.contains(&ids[2]));
    // A removed snapshot is gone for every command.
    let err = env.fail(&["ls", &ids[1][..8]]);
    assert!(err.contains("no snapshot matches"), "{err}");
}

#[test]
fn filters_and_grouping_choose_what_the_policy_sees() {
    let env = Env::new();
    let (ids, other) = five_backups(&env);
    // One group for all hosts: keep-last 1 keeps only the newest (the other host's).
    let plan = env.json(&[
        "forget",
        "--keep-last",
        "1",
        "--group-by",
        "",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan["groups"].as_array().unwrap().len(), 1);
    assert_eq!(plan["remove"].as_array().unwrap().len(), 5);
    // --host elsewhere: the policy sees only that host's snapshot.
    let plan = env.json(&[
        "forget",
        "--keep-last",
        "1",
        "--host",
        "elsewhere",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan["remove"], serde_json::json!([]));
    let text = env.ok(&["forget", "--keep-last", "1", "--host", "elsewhere"]);
    assert!(text.trim_end().ends_with("no snapshot to remove"), "{text}");
    assert_eq!(plan["groups"][0]["keep"][0]["id"], other.as_str());
    // --tag weekly: the policy sees only the weekly snapshot, and a tag nobody has keeps
    // nothing, so exactly that snapshot goes.
    env.ok(&["forget", "--tag", "weekly", "--keep-tag", "none-such"]);
    let left = env.snapshot_ids();
    assert_eq!(left.len(), 5);
    assert!(!left.contains(&ids[3]));
}
