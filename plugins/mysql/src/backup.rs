//! Backup: check the server and the tools, then dump the databases into `dump.sql`.

use stowaway_addon::{AddonError, Attributes, Job, log};

use crate::server::{self, Server};
use crate::{DUMP, SYSTEM_DATABASES};

pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let mut server = Server::from_job(job)?;
    server.check_reachable()?;
    let (tool, tool_line) = server.find_tools()?;
    let version = server.version()?;
    if let Some(warning) = server::check_fit(tool, version, &server.endpoint())? {
        log::warn(&warning);
    }
    log::info(&format!(
        "{version} at {}; dumping with {tool_line}",
        server.endpoint()
    ));

    let existing: Vec<String> = server
        .query("SHOW DATABASES")?
        .lines()
        .map(str::to_owned)
        .collect();
    let selected = job.param_items("databases");
    let databases: Vec<String> = if selected.is_empty() {
        existing
            .iter()
            .filter(|db| !SYSTEM_DATABASES.contains(&db.as_str()))
            .cloned()
            .collect()
    } else {
        for db in &selected {
            if !existing.contains(db) {
                return Err(AddonError::NotFound(format!(
                    "database {db:?} does not exist on the server at {} (it has: {})",
                    server.endpoint(),
                    existing.join(", ")
                )));
            }
        }
        selected
    };
    if databases.is_empty() {
        return Err(AddonError::NotFound(format!(
            "the server at {} has no user database to back up",
            server.endpoint()
        )));
    }

    job.report("dump", 0, 0);
    let program = server.dump_tool.clone();
    let command = server
        .command(&program)
        .args([
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--databases",
        ])
        .args(databases.iter().cloned())
        .args(job.param_words("args"));
    let attributes = vec![
        ("databases".into(), databases.join("\n")),
        ("server-version".into(), version.to_string()),
    ];
    log::info(&format!("{program} into component {DUMP}"));
    let info = command.run_into_component(job, DUMP, "application/sql", &attributes, |status| {
        server.explain(&program, status)
    })?;
    job.report("done", databases.len() as u64, info.size);
    Ok(vec![
        ("server-version".into(), version.to_string()),
        ("tool".into(), tool_line),
        ("databases".into(), databases.join("\n")),
        ("bytes".into(), info.size.to_string()),
        ("server".into(), server.endpoint()),
    ])
}
