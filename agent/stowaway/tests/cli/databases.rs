//! The database addons against real servers (PostgreSQL 15, MariaDB 10.11) started on
//! 127.0.0.1: round trips compared table by table, restores into a second server, and the
//! failures a user meets first (wrong password, no server, programs and ports not granted).

use stowaway_e2e::databases::{DatabaseServer, MariaDb, Postgres};

use crate::util::Env;

/// Rows per large sample table: a few MB per database.
const ROWS: usize = 5_000;

/// The addon's connection parameters for `server` (`extra` may override the port).
fn params(server: &impl DatabaseServer, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--param".to_owned(),
        format!("host={}", server.host()),
        "--param".to_owned(),
        format!("user={}", server.user()),
    ];
    if !extra.iter().any(|p| p.starts_with("port=")) {
        args.extend(["--param".to_owned(), format!("port={}", server.port())]);
    }
    for p in extra {
        args.push("--param".into());
        args.push((*p).to_owned());
    }
    args
}

/// Runs stowaway with `args`, the password in `password_var`; returns (success, stdout, stderr).
fn run(env: &Env, args: &[String], password_var: &str, password: &str) -> (bool, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env
        .command(&args)
        .env_remove("PGPASSWORD")
        .env_remove("MYSQL_PWD")
        .env(password_var, password)
        .output()
        .expect("run stowaway");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(env: &Env, args: &[String], var: &str, password: &str) -> String {
    let (success, stdout, stderr) = run(env, args, var, password);
    assert!(success, "stowaway {args:?} failed:\n{stderr}");
    stdout
}

/// The last stderr line of a failed run.
fn fail(env: &Env, args: &[String], var: &str, password: &str) -> String {
    let (success, _, stderr) = run(env, args, var, password);
    assert!(!success, "stowaway {args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.lines().last().unwrap_or_default().to_owned()
}

fn backup_args(addon: &str, server: &impl DatabaseServer, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["backup".to_owned(), "--addon".into(), addon.into()];
    args.extend(params(server, extra));
    args
}

fn restore_args(server: &impl DatabaseServer, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["restore".to_owned(), "latest".into()];
    args.extend(params(server, extra));
    args
}

#[test]
fn postgres_cluster_round_trip() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_sample("shop", ROWS);
    pg.create_sample("crm", ROWS / 10);
    let shop = pg.checksums("shop");
    let crm = pg.checksums("crm");
    assert!(
        shop.keys().any(|k| k.starts_with("large object")),
        "{shop:?}"
    );
    let env = Env::new();
    env.ok(&["init"]);
    let pw = pg.password();
    let out = ok(&env, &backup_args("postgres", &pg, &[]), "PGPASSWORD", pw);
    assert!(out.contains("saved"), "{out}");
    let ls = env.ok(&["ls", "latest"]);
    assert!(
        ls.starts_with("dumpall.sql (stream, application/sql"),
        "{ls}"
    );

    // Restoring over existing databases is refused: it would mix old and restored rows.
    let message = fail(&env, &restore_args(&pg, &[]), "PGPASSWORD", pw);
    assert!(
        message.contains("failed (invalid-parameter): database \"crm\" already exists"),
        "{message}"
    );
    assert_eq!(pg.checksums("shop"), shop);

    pg.drop_database("shop");
    pg.drop_database("crm");
    ok(&env, &restore_args(&pg, &[]), "PGPASSWORD", pw);
    assert_eq!(pg.checksums("shop"), shop);
    assert_eq!(pg.checksums("crm"), crm);

    // clean=true replaces what is there, changed rows included.
    pg.sql(
        "shop",
        "UPDATE customers SET name = 'changed' WHERE id % 2 = 0",
    );
    assert_ne!(pg.checksums("shop"), shop);
    ok(&env, &restore_args(&pg, &["clean=true"]), "PGPASSWORD", pw);
    assert_eq!(pg.checksums("shop"), shop);
    assert_eq!(pg.checksums("crm"), crm);
}

#[test]
fn postgres_selected_databases_into_a_second_server() {
    let Some(source) = Postgres::start() else {
        return;
    };
    let Some(target) = Postgres::start() else {
        return;
    };
    source.create_sample("shop", ROWS);
    source.create_sample("other", 10);
    let shop = source.checksums("shop");
    let env = Env::new();
    env.ok(&["init"]);
    for format in ["custom", "plain"] {
        let format_param = format!("format={format}");
        let args = backup_args(
            "postgres",
            &source,
            &["databases=shop", &format_param, "globals=true"],
        );
        ok(&env, &args, "PGPASSWORD", source.password());
        let ls = env.ok(&["ls", "latest"]);
        let extension = if format == "custom" { "dump" } else { "sql" };
        assert!(ls.contains("globals.sql"), "{ls}");
        assert!(ls.contains(&format!("db-shop.{extension}")), "{ls}");
        assert!(!ls.contains("other"), "{ls}");

        target.drop_database("shop");
        ok(
            &env,
            &restore_args(&target, &[]),
            "PGPASSWORD",
            target.password(),
        );
        assert_eq!(target.checksums("shop"), shop, "format {format}");
        assert!(!target.databases().contains(&"other".to_owned()));
    }
}

#[test]
fn postgres_failures_are_named() {
    let Some(pg) = Postgres::start() else { return };
    let env = Env::new();
    env.ok(&["init"]);
    let args = backup_args("postgres", &pg, &[]);
    let message = fail(&env, &args, "PGPASSWORD", "not the password");
    assert!(
        message.contains("failed (permission-denied): PostgreSQL at 127.0.0.1:")
            && message.contains("password authentication failed for user \"postgres\""),
        "{message}"
    );
    assert!(!message.contains("not the password"), "{message}");

    // No server on that port.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut args = vec!["backup".to_owned(), "--addon".into(), "postgres".into()];
    args.extend(params(&pg, &[&format!("port={port}")]));
    let message = fail(&env, &args, "PGPASSWORD", pg.password());
    assert!(
        message.contains(&format!(
            "failed (unavailable): PostgreSQL is not reachable: cannot reach 127.0.0.1:{port}"
        )),
        "{message}"
    );

    // A program the user did not allow.
    let mut args = backup_args("postgres", &pg, &[]);
    args.extend(["--allow-exec".to_owned(), "psql **".into()]);
    let message = fail(&env, &args, "PGPASSWORD", pg.password());
    assert!(
        message.contains(
            "failed (permission-denied): running `pg_dumpall --version` is not granted to this job"
        ),
        "{message}"
    );

    // A port the user did not allow.
    let mut args = backup_args("postgres", &pg, &[]);
    args.extend(["--allow-connect".to_owned(), format!("127.0.0.1:{port}")]);
    let message = fail(&env, &args, "PGPASSWORD", pg.password());
    assert!(
        message.contains(&format!(
            "failed (permission-denied): connecting to 127.0.0.1:{} is not granted to this job",
            pg.port()
        )),
        "{message}"
    );
    // Nothing was recorded by the failed backups.
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn mariadb_round_trip_and_second_server() {
    let Some(source) = MariaDb::start() else {
        return;
    };
    let Some(target) = MariaDb::start() else {
        return;
    };
    source.create_sample("shop", ROWS);
    source.create_sample("crm", ROWS / 10);
    let shop = source.checksums("shop");
    let crm = source.checksums("crm");
    let env = Env::new();
    env.ok(&["init"]);
    let pw = source.password();
    ok(&env, &backup_args("mysql", &source, &[]), "MYSQL_PWD", pw);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.starts_with("dump.sql (stream, application/sql"), "{ls}");

    let message = fail(&env, &restore_args(&source, &[]), "MYSQL_PWD", pw);
    assert!(
        message.contains("already exists on the server"),
        "{message}"
    );
    source.drop_database("shop");
    source.drop_database("crm");
    ok(&env, &restore_args(&source, &[]), "MYSQL_PWD", pw);
    assert_eq!(source.checksums("shop"), shop);
    assert_eq!(source.checksums("crm"), crm);
    // Routines, triggers and events came back too.
    let routines = source.sql("shop", "SHOW FUNCTION STATUS WHERE Db = 'shop'");
    assert!(!routines.is_empty(), "no function restored");

    ok(
        &env,
        &restore_args(&target, &["clean=true"]),
        "MYSQL_PWD",
        target.password(),
    );
    assert_eq!(target.checksums("shop"), shop);
    assert_eq!(target.checksums("crm"), crm);

    // Only the selected database.
    ok(
        &env,
        &backup_args("mysql", &source, &["databases=crm"]),
        "MYSQL_PWD",
        pw,
    );
    target.drop_database("crm");
    target.drop_database("shop");
    ok(
        &env,
        &restore_args(&target, &[]),
        "MYSQL_PWD",
        target.password(),
    );
    assert_eq!(target.checksums("crm"), crm);
    assert!(!target.databases().contains(&"shop".to_owned()));
}

#[test]
fn mariadb_failures_are_named() {
    let Some(db) = MariaDb::start() else { return };
    let env = Env::new();
    env.ok(&["init"]);
    let message = fail(&env, &backup_args("mysql", &db, &[]), "MYSQL_PWD", "wrong");
    assert!(
        message.contains("failed (permission-denied): the server at 127.0.0.1:")
            && message.contains("Access denied for user 'stowaway'"),
        "{message}"
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut args = vec!["backup".to_owned(), "--addon".into(), "mysql".into()];
    args.extend(params(&db, &[&format!("port={port}")]));
    let message = fail(&env, &args, "MYSQL_PWD", db.password());
    assert!(
        message.contains(&format!(
            "failed (unavailable): the MySQL server is not reachable: cannot reach 127.0.0.1:{port}"
        )),
        "{message}"
    );
    assert!(env.snapshot_ids().is_empty());
}
