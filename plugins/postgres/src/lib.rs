//! The PostgreSQL addon: logical backups through the PostgreSQL client tools, run by the host
//! through the `exec` capability; the dumps go straight from the tool into the snapshot.
//!
//! Backup:
//! * all databases (default): `pg_dumpall` into component `dumpall.sql` (roles and
//!   tablespaces included);
//! * selected databases (`databases`): `pg_dump` per database into `db-<name>.sql` (plain)
//!   or `db-<name>.dump` (`format=custom`), plus `globals.sql` (roles, tablespaces) when
//!   `globals` is true.
//!
//! Restore (into the same or another server: `host`, `port`, `user` name the target):
//! * `dumpall.sql` through `psql`; `db-*.sql` through `psql` into a freshly created database;
//!   `db-*.dump` through `pg_restore`;
//! * a database that already exists is refused unless `clean` is true, which drops it first:
//!   loading a dump over existing tables would duplicate rows.
//!
//! Before anything else, both check that the server answers, that the tools are installed and
//! new enough for the server, and that the credentials work; each failure has its own message.

mod backup;
mod restore;
mod server;

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, Job, Operation, Parameter, ParameterType,
};

struct Postgres;

/// The client programs this addon runs, any arguments.
const PROGRAMS: &[&str] = &["pg_dump", "pg_dumpall", "pg_restore", "psql"];

/// Media type of a plain SQL dump.
const SQL: &str = "application/sql";
/// Media type of a `pg_dump --format=custom` archive.
const CUSTOM: &str = "application/vnd.postgresql.custom";

impl Addon for Postgres {
    fn describe() -> AddonInfo {
        let text = |name: &str, description: &str, default: Option<&str>| {
            Parameter::new(name, ParameterType::Text, description, default)
        };
        let flag = |name: &str, description: &str| {
            Parameter::new(name, ParameterType::Boolean, description, Some("false"))
        };
        let mut capabilities: Vec<Capability> =
            PROGRAMS.iter().map(|p| Capability::exec_any(p)).collect();
        capabilities.push(Capability::connect_granted());
        capabilities.push(Capability::Secret("password".into()));
        AddonInfo {
            name: "postgres".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "PostgreSQL logical backups (pg_dumpall / pg_dump) and restores \
                          (psql / pg_restore)"
                .into(),
            target_kinds: vec!["postgres".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![
                text("host", "Server host name or address", None),
                Parameter::new("port", ParameterType::Integer, "Server port", Some("5432")),
                text("user", "User to connect as", Some("postgres")),
                text(
                    "database",
                    "Database to connect to for checks and administration",
                    Some("postgres"),
                ),
                text(
                    "sslmode",
                    "libpq sslmode (disable, prefer, require, verify-full, ...)",
                    Some("prefer"),
                ),
                Parameter::new(
                    "databases",
                    ParameterType::TextList,
                    "Databases to dump with pg_dump, one per line (or comma-separated); \
                     empty dumps everything with pg_dumpall",
                    Some(""),
                ),
                text(
                    "backupCmd",
                    "pg_dumpall (everything) or pg_dump (the databases listed)",
                    Some("pg_dumpall"),
                ),
                text(
                    "format",
                    "pg_dump format: plain (SQL) or custom (pg_restore archive)",
                    Some("plain"),
                ),
                flag(
                    "globals",
                    "With databases: also dump roles and tablespaces (pg_dumpall --globals-only)",
                ),
                text(
                    "args",
                    "Extra arguments for the dump tool (backup) or for psql/pg_restore (restore), \
                     separated by spaces",
                    Some(""),
                ),
                flag(
                    "clean",
                    "Restore: drop databases that already exist before restoring them",
                ),
            ],
            capabilities,
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        backup::run(job)
    }

    fn restore(job: &Job) -> Result<Attributes, AddonError> {
        restore::run(job)
    }
}

/// A component name for database `db`: `db-<name>` with characters outside
/// `[A-Za-z0-9._-]` replaced by `_` (the real name is kept in the component's attributes).
fn component_name(db: &str, index: usize, extension: &str) -> String {
    let clean: String = db
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    if clean == db {
        format!("db-{clean}.{extension}")
    } else {
        format!("db-{index}-{clean}.{extension}")
    }
}

/// `db` quoted as an SQL identifier.
fn quote_ident(db: &str) -> String {
    format!("\"{}\"", db.replace('"', "\"\""))
}

stowaway_addon::export_addon!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_are_valid_and_distinct() {
        assert_eq!(component_name("shop", 0, "sql"), "db-shop.sql");
        assert_eq!(component_name("my db", 3, "dump"), "db-3-my_db.dump");
        assert_ne!(
            component_name("a b", 0, "sql"),
            component_name("a_b", 1, "sql")
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
