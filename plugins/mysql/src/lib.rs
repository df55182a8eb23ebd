//! The MySQL/MariaDB addon: logical backups with `mariadb-dump` (or `mysqldump`), restores
//! with the `mariadb` (or `mysql`) client, both run by the host through the `exec` capability;
//! the dump goes straight from the tool into the snapshot.
//!
//! Backup: one transaction-consistent dump (`--single-transaction`, with routines, events and
//! triggers, binary data as hex) of the user databases (default: all but `mysql`,
//! `information_schema`, `performance_schema` and `sys`; or those in `databases`) into
//! component `dump.sql`, which records the database names.
//!
//! Restore (into the same or another server): a database that already exists is refused
//! unless `clean` is true, which drops it first; then the dump is fed to the client, which
//! stops at the first error.

mod backup;
mod restore;
mod server;

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, Job, Operation, Parameter, ParameterType,
};

struct Mysql;

/// The client programs this addon runs, any arguments.
const PROGRAMS: &[&str] = &["mariadb-dump", "mysqldump", "mariadb", "mysql"];

/// The component holding the dump.
const DUMP: &str = "dump.sql";

/// Databases of the server itself, never dumped by default.
const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

impl Addon for Mysql {
    fn describe() -> AddonInfo {
        let text = |name: &str, description: &str, default: Option<&str>| {
            Parameter::new(name, ParameterType::Text, description, default)
        };
        let mut capabilities: Vec<Capability> =
            PROGRAMS.iter().map(|p| Capability::exec_any(p)).collect();
        capabilities.push(Capability::connect_granted());
        capabilities.push(Capability::Secret("password".into()));
        AddonInfo {
            name: "mysql".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "MySQL and MariaDB logical backups (mariadb-dump / mysqldump) and \
                          restores (mariadb / mysql)"
                .into(),
            target_kinds: vec!["mysql".into(), "mariadb".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![
                text("host", "Server host name or address", None),
                Parameter::new("port", ParameterType::Integer, "Server port", Some("3306")),
                text("user", "User to connect as", Some("root")),
                Parameter::new(
                    "databases",
                    ParameterType::TextList,
                    "Databases to dump, one per line (or comma-separated); empty dumps every \
                     user database",
                    Some(""),
                ),
                text(
                    "args",
                    "Extra arguments for the dump tool (backup) or the client (restore), \
                     separated by spaces",
                    Some(""),
                ),
                Parameter::new(
                    "clean",
                    ParameterType::Boolean,
                    "Restore: drop databases that already exist before restoring them",
                    Some("false"),
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

/// `name` quoted as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

stowaway_addon::export_addon!(Mysql);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("shop"), "`shop`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
