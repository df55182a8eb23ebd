use super::*;

const GOOD: &str = r#"
name: app
hostname: app-host
tags: [compose, nightly]
storage:
  url: /backups/repo
  passwordFile: /run/secrets/repo-password
  initialize: true
addon:
  name: volume
  params:
    exclude: ["*.tmp", "cache/**"]
    overwrite: true
  memoryLimitMiB: 128
  timeout: 2h
target:
  volumes:
    - /srv/data
    - name: uploads
      path: /srv/www/uploads
schedule:
  cron: "30 2 * * *"
  timeZone: Europe/Berlin
retention:
  keepLast: 3
  keepDaily: 7
  keepMonthly: unlimited
  keepWithin: 1y2m
  keepTags: ["keep,forever"]
  prune: true
api:
  socket: /run/stowaway/sidecar.sock
  port: 8089
  tokenFile: /run/secrets/api-token
  allowRestore: true
"#;

fn error(text: &str) -> String {
    match Config::from_yaml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// `GOOD` with `from` replaced by `to` (which must be there).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn a_complete_file_is_read() {
    let config = Config::from_yaml(GOOD).expect("good");
    assert_eq!(config.name.as_str(), "app");
    assert_eq!(config.hostname.as_deref(), Some("app-host"));
    let tags: Vec<&str> = config.tags.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(tags, ["compose", "nightly"]);
    assert_eq!(config.storage.url, "/backups/repo");
    assert!(matches!(
        &config.storage.password,
        PasswordSource::File(p) if p == Path::new("/run/secrets/repo-password")
    ));
    assert!(config.storage.initialize && !config.storage.append_only);
    assert!(config.is_volume());
    assert_eq!(
        config.addon.params.0,
        [
            ("exclude".to_owned(), "*.tmp".to_owned()),
            ("exclude".to_owned(), "cache/**".to_owned()),
            ("overwrite".to_owned(), "true".to_owned()),
        ]
    );
    assert_eq!(config.addon.memory_limit_mib, 128);
    assert_eq!(
        config.addon.timeout,
        Some(Timeout(Duration::from_secs(7200)))
    );
    assert_eq!(
        config.target.volumes,
        [
            Volume {
                name: "data".into(),
                path: "/srv/data".into()
            },
            Volume {
                name: "uploads".into(),
                path: "/srv/www/uploads".into()
            },
        ]
    );
    let schedule = &config.schedule.as_ref().expect("schedule").schedule;
    assert_eq!(schedule.time_zone(), "Europe/Berlin");
    let after: jiff::Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
    // 02:30 in Berlin (UTC+1 in winter) is 01:30 UTC.
    assert_eq!(
        schedule.next_after(after),
        Some("2026-01-11T01:30:00Z".parse().expect("time"))
    );
    let retention = config.retention.as_ref().expect("retention");
    assert_eq!(retention.policy.keep_last, Count::Limit(3));
    assert_eq!(retention.policy.keep_daily, Count::Limit(7));
    assert_eq!(retention.policy.keep_monthly, Count::Unlimited);
    assert_eq!(retention.policy.keep_within.to_string(), "1y2m");
    assert_eq!(
        retention.policy.keep_tags,
        [vec!["keep".to_owned(), "forever".to_owned()]]
    );
    assert!(retention.prune);
    assert_eq!(retention.time_zone, TimeZone::UTC);
    assert_eq!(
        config.api.socket.as_deref(),
        Some(Path::new("/run/stowaway/sidecar.sock"))
    );
    assert_eq!(
        config.api.tcp().map(|a| a.addr().to_string()).as_deref(),
        Some("127.0.0.1:8089")
    );
    assert!(config.api.allow_restore);
}

#[test]
fn the_smallest_file_takes_the_defaults() {
    let config = Config::from_yaml(
        "name: db\nstorage: {url: 's3://bucket/db', passwordEnv: REPO_PASSWORD}\n\
         addon: {name: postgres}\ntarget: {host: db, port: 5432, passwordFile: /run/secrets/pg}\n",
    )
    .expect("minimal");
    assert!(!config.is_volume());
    assert!(matches!(&config.storage.password, PasswordSource::Env(v) if v == "REPO_PASSWORD"));
    assert!(config.schedule.is_none() && config.retention.is_none());
    assert_eq!(config.addon.memory_limit_mib, 256);
    assert_eq!(
        config.api.socket.as_deref(),
        Some(Path::new(crate::api::DEFAULT_SOCKET))
    );
    assert!(config.api.tcp().is_none());
    assert!(!config.api.allow_restore);
    // `socket: null` turns the socket off.
    let text = "name: db\nstorage: {url: /r, passwordInsecure: pw}\naddon: {name: mysql}\n\
                target: {host: db}\napi: {socket: null, port: 0}\n";
    let config = Config::from_yaml(text).expect("no socket");
    assert_eq!(config.api.socket, None);
    assert_eq!(config.api.tcp().map(|a| a.addr().port()), Some(0));
    assert_eq!(
        format!("{:?}", config.storage.password),
        "Insecure(..)",
        "the password is never printed"
    );
    assert_eq!(config.storage.password.read().expect("read").as_str(), "pw");
}

#[test]
fn an_unknown_field_is_named_with_its_path_and_line() {
    let text = good_with("  initialize: true\n", "  initialise: true\n");
    let e = error(&text);
    assert!(
        e.starts_with("storage: unknown field `initialise`, expected one of `url`, "),
        "{e}"
    );
    assert!(e.ends_with("at line 8 column 3"), "{e}");
    let e = error(&good_with(
        "  allowRestore: true\n",
        "  allowRestores: true\n",
    ));
    assert!(e.starts_with("api: unknown field `allowRestores`"), "{e}");
    assert!(e.contains("at line 35 column 3"), "{e}");
    let e = error(&good_with("hostname: app-host\n", "host: app-host\n"));
    assert!(e.starts_with("unknown field `host`"), "{e}");
    assert!(e.contains("at line 3 column 1"), "{e}");
    let e = error(&good_with(
        "      path: /srv/www/uploads\n",
        "      dir: /srv/www/uploads\n",
    ));
    assert!(
        e.starts_with("target.volumes[1]: unknown field `dir`, expected `name` or `path`"),
        "{e}"
    );
}

#[test]
fn a_missing_or_doubled_password_source_is_refused() {
    let e = error(&good_with(
        "  passwordFile: /run/secrets/repo-password\n",
        "",
    ));
    assert!(
        e.starts_with(
            "storage: no repository password: give passwordFile (a mounted secret) or passwordEnv"
        ),
        "{e}"
    );
    assert!(e.contains("at line 6 column 3"), "{e}");
    let e = error(&good_with(
        "  passwordFile: /run/secrets/repo-password\n",
        "  passwordFile: /run/secrets/repo-password\n  passwordEnv: PW\n",
    ));
    assert!(
        e.starts_with(
            "storage: give one password source: passwordFile, passwordEnv or passwordInsecure"
        ),
        "{e}"
    );
}

#[test]
fn a_bad_cron_or_time_zone_is_refused() {
    let e = error(&good_with("\"30 2 * * *\"", "\"30 2 * *\""));
    assert!(
        e.starts_with("schedule: cron \"30 2 * *\": expected 5 fields (minute hour day-of-month month day-of-week)"),
        "{e}"
    );
    assert!(e.contains("at line 22 column 3"), "{e}");
    let e = error(&good_with("\"30 2 * * *\"", "\"61 2 * * *\""));
    assert!(e.starts_with("schedule: cron \"61 2 * * *\": "), "{e}");
    let e = error(&good_with("Europe/Berlin", "Mars/Olympus"));
    assert!(e.starts_with("schedule: cron \"30 2 * * *\": "), "{e}");
    assert!(e.contains("Mars/Olympus"), "{e}");
}

#[test]
fn values_are_checked_where_they_are() {
    for (from, to, starts, line) in [
        ("name: app", "name: App", "name: \"App\" is not a name", 2),
        (
            "name: volume",
            "name: restic",
            "addon.name: no built-in addon \"restic\" (built in: volume, postgres, mysql)",
            10,
        ),
        (
            "timeout: 2h",
            "timeout: soon",
            "addon.timeout: \"soon\" is not a duration",
            15,
        ),
        (
            "    - /srv/data",
            "    - srv/data",
            "target.volumes[0]: \"srv/data\": give an absolute path",
            18,
        ),
        (
            "keepDaily: 7",
            "keepDaily: many",
            "retention.keepDaily: invalid count \"many\"",
            26,
        ),
        (
            "keepWithin: 1y2m",
            "keepWithin: 2 weeks",
            "retention.keepWithin: invalid duration \"2 weeks\"",
            28,
        ),
        (
            "tags: [compose, nightly]",
            "tags: [\"a,b\"]",
            "tags[0]: \"a,b\" is not a tag",
            4,
        ),
        (
            "  port: 8089\n",
            "  port: 8089\n  address: 10.0.0.1\n",
            "api.address: 10.0.0.1 is not a loopback address",
            34,
        ),
        (
            "    overwrite: true",
            "    overwrite: {a: 1}",
            "addon.params: parameter overwrite: must be text, a number, true/false or a list of those",
            12,
        ),
    ] {
        let e = error(&good_with(from, to));
        assert!(e.starts_with(starts), "{to}: {e}");
        assert!(e.contains(&format!("at line {line} ")), "{to}: {e}");
    }
    // Two volumes that would get the same name.
    let e = error(&good_with(
        "    - /srv/data\n",
        "    - /srv/data\n    - /mnt/data\n",
    ));
    assert!(
        e.starts_with("target.volumes: [1]: the name \"data\" is taken by volumes[0]"),
        "{e}"
    );
    // A policy without rules.
    let text =
        GOOD.split("retention:").next().expect("head").to_owned() + "retention:\n  prune: true\n";
    let e = error(&text);
    assert!(
        e.starts_with("retention: no keep rule: give keepLast"),
        "{e}"
    );
}

#[test]
fn the_addon_and_its_target_must_fit() {
    let volume_with_host = good_with("target:\n", "target:\n  host: db\n");
    let e = error(&volume_with_host);
    assert_eq!(
        e,
        "target: host, port and passwordFile are for database addons; the volume addon takes \
         volumes (section at line 16)"
    );
    let postgres_with_volumes = good_with("name: volume", "name: postgres").replace(
        "    exclude: [\"*.tmp\", \"cache/**\"]\n    overwrite: true\n",
        "    user: app\n",
    );
    let e = error(&postgres_with_volumes);
    assert!(
        e.starts_with("target.volumes: the postgres addon reaches a server: give target.host"),
        "{e}"
    );
    assert!(e.ends_with("(section at line 15)"), "{e}");
    let no_host = "name: db\nstorage: {url: /r, passwordEnv: PW}\naddon: {name: mysql, params: {port: 3306}}\ntarget: {host: db}\n";
    assert_eq!(
        error(no_host),
        "addon.params.port: give the server as target.port (section at line 3)"
    );
    let nothing =
        "name: db\nstorage: {url: /r, passwordEnv: PW}\naddon: {name: mysql}\ntarget: {}\n";
    assert_eq!(
        error(nothing),
        "target.host: the mysql addon needs the server's host name (section at line 4)"
    );
}

#[test]
fn a_file_error_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, "name: app\n").expect("write");
    let e = Config::load(&path).expect_err("incomplete").to_string();
    assert!(
        e.starts_with(&format!("{}: missing field `storage`", path.display())),
        "{e}"
    );
    let e = Config::load(&dir.path().join("missing.yaml"))
        .expect_err("missing")
        .to_string();
    assert!(e.starts_with("cannot read the configuration "), "{e}");
}

#[test]
fn passwords_are_read_from_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\r\n").expect("write");
    let source = PasswordSource::File(file.clone());
    assert_eq!(source.read().expect("file").as_str(), "s3cret");
    std::fs::write(&file, "\n").expect("write");
    assert_eq!(
        source.read().expect_err("empty"),
        format!("the password file {} is empty", file.display())
    );
    let missing = PasswordSource::Env("STOWAWAY_TEST_SURELY_UNSET_VARIABLE".into());
    assert_eq!(
        missing.read().expect_err("unset"),
        "the environment variable STOWAWAY_TEST_SURELY_UNSET_VARIABLE is not set"
    );
}
