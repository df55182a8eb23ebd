//! The database harness on real servers: a sample database is created, checksummed, changed
//! and dropped, and a second server of the same kind runs beside the first (restore tests
//! restore into another server).
//!
//! ```text
//! eval "$(bash scripts/servers.sh env)"
//! STOWAWAY_REQUIRE_SERVERS=1 cargo test -p stowaway-e2e --test database_servers
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use stowaway_e2e::databases::{DatabaseServer, MariaDb, Postgres};

const ROWS: usize = 2_000;

/// Starts a server and says how long that took.
fn start<D: DatabaseServer>(what: &str) -> Option<D> {
    let started = Instant::now();
    let server = D::start()?;
    eprintln!(
        "{what} on port {} started in {:.1?}",
        server.port(),
        started.elapsed()
    );
    Some(server)
}

/// The checksum of the table whose name ends with `table`.
fn table<'a>(checksums: &'a BTreeMap<String, String>, table: &str) -> &'a str {
    checksums
        .iter()
        .find(|(name, _)| name.rsplit('.').next() == Some(table))
        .map(|(_, sum)| sum.as_str())
        .unwrap_or_else(|| panic!("no table {table} in {checksums:#?}"))
}

/// Runs the harness on two servers of kind `D`; returns the first one (with no database
/// left) and the checksums of its sample.
fn exercise<D: DatabaseServer>(kind: &str) -> Option<(D, BTreeMap<String, String>)> {
    let first: D = start(kind)?;
    let second: D = start(&format!("a second {kind}"))?;
    assert_ne!(first.port(), second.port());
    assert!(first.databases().is_empty(), "{:?}", first.databases());

    let started = Instant::now();
    first.create_sample("shop", ROWS);
    eprintln!("{kind}: sample of {ROWS} rows in {:.1?}", started.elapsed());
    assert_eq!(first.databases(), ["shop"]);
    let started = Instant::now();
    let checksums = first.checksums("shop");
    eprintln!("{kind}: checksums in {:.1?}", started.elapsed());
    for (name, rows) in [
        ("customers", ROWS),
        ("documents", ROWS),
        ("events", 2 * ROWS),
        ("settings", 3),
    ] {
        let sum = table(&checksums, name);
        assert!(
            sum.starts_with(&format!("{rows} rows, md5 ")),
            "{name}: {sum}"
        );
    }
    assert_eq!(first.checksums("shop"), checksums, "checksums are stable");

    // The second server is independent, and the same sample gives the same checksums there.
    assert!(second.databases().is_empty(), "{:?}", second.databases());
    second.create_sample("shop", ROWS);
    assert_eq!(second.checksums("shop"), checksums);
    second.drop_database("shop");
    assert!(second.databases().is_empty(), "{:?}", second.databases());
    assert_eq!(first.databases(), ["shop"]);

    // One changed value changes its table's checksum and nothing else.
    first.sql(
        "shop",
        "UPDATE customers SET name = 'geändert' WHERE id = 1",
    );
    let changed = first.checksums("shop");
    let differ: Vec<&String> = checksums
        .keys()
        .filter(|name| changed.get(*name) != checksums.get(*name))
        .collect();
    assert_eq!(differ.len(), 1, "{checksums:#?}\n{changed:#?}");
    assert!(differ[0].ends_with("customers"), "{differ:?}");
    assert_eq!(changed.len(), checksums.len());

    first.drop_database("shop");
    assert!(first.databases().is_empty(), "{:?}", first.databases());
    Some((first, checksums))
}

#[test]
fn postgres() {
    let Some((pg, checksums)) = exercise::<Postgres>("PostgreSQL") else {
        return;
    };
    assert!(checksums.contains_key("public.customers"), "{checksums:#?}");
    assert!(checksums.contains_key("audit.events"), "{checksums:#?}");
    assert_eq!(
        checksums.get("large object 900001").map(String::as_str),
        Some("262144 bytes, md5 d19215b1d714757e1fdb0060c52fd4c8"),
        "{checksums:#?}"
    );
    assert!(checksums.contains_key("large object 900002"));

    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT DISTINCT auth_method FROM pg_hba_file_rules ORDER BY 1; \
             SHOW listen_addresses; SHOW fsync"
        ),
        "scram-sha-256\n127.0.0.1\noff"
    );
    assert!(pg.bindir().join("pg_dump").is_file());
}

#[test]
fn mariadb() {
    let Some((db, checksums)) = exercise::<MariaDb>("MariaDB") else {
        return;
    };
    assert_eq!(
        checksums.keys().collect::<Vec<_>>(),
        ["customers", "documents", "events", "settings"]
    );

    // Password accounts (an account for the Unix user may exist besides, by socket only).
    assert_eq!(
        db.sql(
            "",
            "SELECT CONCAT(User, '@', Host) FROM mysql.user \
             WHERE plugin <> 'unix_socket' ORDER BY User, Host"
        ),
        "mariadb.sys@localhost\nroot@localhost\nstowaway@%\nstowaway@localhost"
    );
    assert_eq!(db.sql("", "SELECT CURRENT_USER()"), "stowaway@%");
}
