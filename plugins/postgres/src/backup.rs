//! Backup: check the server, then dump into stream components.

use stowaway_addon::exec::Command;
use stowaway_addon::{AddonError, Attributes, Job, error, log};

use crate::server::{self, Server};
use crate::{CUSTOM, SQL, component_name};

/// Lists the user databases (not templates).
fn list_databases(server: &Server) -> Result<Vec<String>, AddonError> {
    let text = server.query(
        &server.maintenance_db,
        "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname",
    )?;
    Ok(text
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

/// Runs `command`, its output copied by the host into a new component `name`.
fn dump_into(
    server: &Server,
    job: &Job,
    command: Command,
    name: &str,
    media_type: &str,
    attributes: Attributes,
) -> Result<u64, AddonError> {
    let program = command.program().to_owned();
    log::info(&format!("{program} into component {name}"));
    let info = command.run_into_component(job, name, media_type, &attributes, |status| {
        server.explain(&program, status)
    })?;
    Ok(info.size)
}

pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let server = Server::from_job(job)?;
    server.check_reachable()?;
    let databases = job.param_items("databases");
    let backup_cmd = job
        .param("backupCmd")
        .unwrap_or_else(|| "pg_dumpall".into());
    let use_pg_dump = match backup_cmd.as_str() {
        "pg_dumpall" => !databases.is_empty(),
        "pg_dump" if databases.is_empty() => {
            return Err(error::invalid_parameter(
                "databases",
                "backupCmd pg_dump needs the databases to dump",
            ));
        }
        "pg_dump" => true,
        other => {
            return Err(error::invalid_parameter(
                "backupCmd",
                format!("{other:?} is neither pg_dump nor pg_dumpall"),
            ));
        }
    };
    let format = job.param("format").unwrap_or_else(|| "plain".into());
    if !matches!(format.as_str(), "plain" | "custom") {
        return Err(error::invalid_parameter(
            "format",
            format!("{format:?} is neither plain nor custom"),
        ));
    }
    let program = if use_pg_dump { "pg_dump" } else { "pg_dumpall" };
    let (tool, tool_line) = server::tool_major(program)?;
    let version = server.version_num()?;
    let major = server::server_major(version);
    server::check_fit(tool, &tool_line, major, &server.endpoint())?;
    log::info(&format!(
        "PostgreSQL {version} at {}; dumping with {tool_line}",
        server.endpoint()
    ));

    let existing = list_databases(&server)?;
    let extra = job.param_words("args");
    let mut total = 0u64;
    let mut dumped = Vec::new();
    if use_pg_dump {
        for db in &databases {
            if !existing.contains(db) {
                return Err(AddonError::NotFound(format!(
                    "database {db:?} does not exist on PostgreSQL at {} (it has: {})",
                    server.endpoint(),
                    existing.join(", ")
                )));
            }
        }
        if job.param_bool("globals", false)? {
            let command = server
                .command("pg_dumpall")
                .arg("--globals-only")
                .args(extra.iter().cloned());
            total += dump_into(&server, job, command, "globals.sql", SQL, vec![])?;
        }
        let (extension, media_type) = if format == "custom" {
            ("dump", CUSTOM)
        } else {
            ("sql", SQL)
        };
        for (index, db) in databases.iter().enumerate() {
            job.report(&format!("dump {db}"), index as u64, total);
            let command = server
                .command("pg_dump")
                .arg(format!("--format={format}"))
                .arg(format!("--dbname={db}"))
                .args(extra.iter().cloned());
            let attributes = vec![
                ("database".into(), db.clone()),
                ("format".into(), format.clone()),
            ];
            let name = component_name(db, index, extension);
            total += dump_into(&server, job, command, &name, media_type, attributes)?;
            dumped.push(db.clone());
        }
    } else {
        job.report("dump all databases", 0, 0);
        let command = server
            .command("pg_dumpall")
            .arg(format!("--database={}", server.maintenance_db))
            .args(extra.iter().cloned());
        let attributes = vec![("databases".into(), existing.join("\n"))];
        total += dump_into(&server, job, command, "dumpall.sql", SQL, attributes)?;
        dumped = existing;
    }
    job.report("done", dumped.len() as u64, total);
    Ok(vec![
        ("server-version".into(), version.to_string()),
        ("tool".into(), tool_line),
        ("databases".into(), dumped.join("\n")),
        ("bytes".into(), total.to_string()),
        ("server".into(), server.endpoint()),
    ])
}
