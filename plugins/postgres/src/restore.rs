//! Restore: check the target server, then load each component with psql or pg_restore.

use stowaway_addon::exec::{Command, ExitStatus};
use stowaway_addon::{AddonError, Attributes, ComponentInfo, Job, error, log};

use crate::server::{self, Server};
use crate::{CUSTOM, quote_ident};

/// What to do with one component, in the order they are restored.
enum Step<'a> {
    /// Roles and tablespaces: errors such as "role already exists" are expected.
    Globals(&'a ComponentInfo),
    /// A whole cluster from pg_dumpall, creating the databases it lists.
    Cluster(&'a ComponentInfo, Vec<String>),
    /// One database from pg_dump.
    Database(&'a ComponentInfo, String),
}

fn plan(components: &[ComponentInfo]) -> Result<Vec<Step<'_>>, AddonError> {
    let mut steps = Vec::new();
    for c in components.iter().filter(|c| c.name == "globals.sql") {
        steps.push(Step::Globals(c));
    }
    for c in components.iter().filter(|c| c.name == "dumpall.sql") {
        let databases = c
            .attribute("databases")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        steps.push(Step::Cluster(c, databases));
    }
    for c in components.iter().filter(|c| c.name.starts_with("db-")) {
        let db = c.attribute("database").ok_or_else(|| {
            error::corrupt(format!("component {} does not name its database", c.name))
        })?;
        steps.push(Step::Database(c, db.to_owned()));
    }
    if steps.len() != components.len() {
        let unknown: Vec<&str> = components
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| *n != "globals.sql" && *n != "dumpall.sql" && !n.starts_with("db-"))
            .collect();
        return Err(error::corrupt(format!(
            "components {unknown:?} were not written by the postgres addon"
        )));
    }
    Ok(steps)
}

/// Databases of the server (not templates).
fn existing(server: &Server) -> Result<Vec<String>, AddonError> {
    let text = server.query(
        &server.maintenance_db,
        "SELECT datname FROM pg_database WHERE NOT datistemplate",
    )?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// Drops `db` (disconnecting its sessions) when `clean`, refuses when it exists otherwise.
fn make_room(
    server: &Server,
    db: &str,
    exists: bool,
    clean: bool,
    version: u32,
) -> Result<(), AddonError> {
    if !exists {
        return Ok(());
    }
    if !clean {
        return Err(AddonError::InvalidParameter(format!(
            "database {db:?} already exists on PostgreSQL at {}; restoring over it would mix \
             old and restored rows: drop it first or restore with clean=true",
            server.endpoint()
        )));
    }
    if db == server.maintenance_db {
        return Err(AddonError::InvalidParameter(format!(
            "database {db:?} is the one this addon connects to (parameter database); \
             choose another maintenance database to replace it"
        )));
    }
    log::info(&format!("dropping database {db} (clean=true)"));
    let force = if version >= 130000 {
        " WITH (FORCE)"
    } else {
        ""
    };
    server.query(
        &server.maintenance_db,
        &format!("DROP DATABASE IF EXISTS {}{force}", quote_ident(db)),
    )?;
    Ok(())
}

/// Runs `command` with component `name` as its standard input.
fn load(
    server: &Server,
    job: &Job,
    command: Command,
    name: &str,
) -> Result<ExitStatus, AddonError> {
    let program = command.program().to_owned();
    log::info(&format!("loading component {name} with {program}"));
    command.run_from_component(job, name, |status| server.explain(&program, status))
}

pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let server = Server::from_job(job)?;
    server.check_reachable()?;
    let components = job.components();
    let steps = plan(&components)?;
    if steps.is_empty() {
        return Err(error::not_found(
            "the snapshot holds no PostgreSQL component to restore",
        ));
    }
    server::tool_major("psql")?;
    let version = server.version_num()?;
    log::info(&format!(
        "restoring into PostgreSQL {version} at {}",
        server.endpoint()
    ));
    let clean = job.param_bool("clean", false)?;
    let extra = job.param_words("args");
    let psql = |db: &str, stop_on_error: bool| {
        server
            .command("psql")
            .args(["-X", "-q", "-v"])
            .arg(format!("ON_ERROR_STOP={}", u8::from(stop_on_error)))
            .arg(format!("--dbname={db}"))
            .args(extra.iter().cloned())
    };

    let present = existing(&server)?;
    // Check every database first, so that nothing is dropped when a later one would refuse.
    for step in &steps {
        let names: Vec<&String> = match step {
            Step::Globals(_) => vec![],
            Step::Cluster(_, dbs) => dbs.iter().filter(|db| !is_builtin(db)).collect(),
            Step::Database(_, db) => vec![db],
        };
        for db in names {
            if present.contains(db) && !clean {
                make_room(&server, db, true, false, version)?;
            }
        }
    }

    let mut restored = Vec::new();
    let mut warnings = 0u64;
    for (index, step) in steps.iter().enumerate() {
        job.report("restore", index as u64, 0);
        match step {
            Step::Globals(c) => {
                // Roles that exist already are reported and skipped by psql.
                let status = load(&server, job, psql(&server.maintenance_db, false), &c.name)?;
                warnings += count_errors(&status.stderr_tail);
            }
            Step::Cluster(c, dbs) => {
                for db in dbs.iter().filter(|db| !is_builtin(db)) {
                    make_room(&server, db, present.contains(db), clean, version)?;
                }
                // pg_dumpall output recreates the roles first; "already exists" is expected.
                let status = load(&server, job, psql(&server.maintenance_db, false), &c.name)?;
                warnings += count_errors(&status.stderr_tail);
                let now = existing(&server)?;
                if let Some(missing) = dbs.iter().find(|db| !now.contains(db)) {
                    return Err(AddonError::Io(format!(
                        "after loading {}, database {missing:?} is missing on PostgreSQL at {}; \
                         psql said: {}",
                        c.name,
                        server.endpoint(),
                        status.stderr_lines(3)
                    )));
                }
                restored.extend(dbs.iter().cloned());
            }
            Step::Database(c, db) => {
                make_room(&server, db, present.contains(db), clean, version)?;
                server.query(
                    &server.maintenance_db,
                    &format!("CREATE DATABASE {}", quote_ident(db)),
                )?;
                if c.media_type == CUSTOM {
                    let command = server
                        .command("pg_restore")
                        .args(["--exit-on-error", "--no-password"])
                        .arg(format!("--dbname={db}"))
                        .args(extra.iter().cloned());
                    load(&server, job, command, &c.name)?;
                } else {
                    let command = psql(db, true).arg("--single-transaction");
                    load(&server, job, command, &c.name)?;
                }
                restored.push(db.clone());
            }
        }
    }
    Ok(vec![
        ("databases".into(), restored.join("\n")),
        ("server".into(), server.endpoint()),
        ("psql-errors-in-tail".into(), warnings.to_string()),
    ])
}

/// The databases every cluster has; pg_dumpall restores their contents without creating them.
fn is_builtin(db: &str) -> bool {
    db == "postgres" || db.starts_with("template")
}

/// Lines of psql's stderr tail that report an SQL error.
fn count_errors(stderr: &str) -> u64 {
    stderr.lines().filter(|l| l.contains("ERROR:")).count() as u64
}
