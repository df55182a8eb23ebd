//! Restore: check the target server, make room for the databases, load the dump.

use stowaway_addon::{AddonError, Attributes, Job, error, log};

use crate::server::Server;
use crate::{DUMP, quote_ident};

pub fn run(job: &Job) -> Result<Attributes, AddonError> {
    let components = job.components();
    let dump = components
        .iter()
        .find(|c| c.name == DUMP)
        .ok_or_else(|| error::not_found("the snapshot holds no dump.sql component to restore"))?;
    if let Some(other) = components.iter().find(|c| c.name != DUMP) {
        return Err(error::corrupt(format!(
            "component {} was not written by the mysql addon",
            other.name
        )));
    }
    let databases: Vec<String> = dump
        .attribute("databases")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();

    let mut server = Server::from_job(job)?;
    server.check_reachable()?;
    server.find_tools()?;
    let version = server.version()?;
    log::info(&format!(
        "restoring into {version} at {}",
        server.endpoint()
    ));
    let clean = job.param_bool("clean", false)?;
    let existing: Vec<String> = server
        .query("SHOW DATABASES")?
        .lines()
        .map(str::to_owned)
        .collect();
    let present: Vec<&String> = databases
        .iter()
        .filter(|db| existing.contains(db))
        .collect();
    if !present.is_empty() && !clean {
        return Err(AddonError::InvalidParameter(format!(
            "database {:?} already exists on the server at {}; restoring over it would mix old \
             and restored data: drop it first or restore with clean=true",
            present[0],
            server.endpoint()
        )));
    }
    for db in present {
        log::info(&format!("dropping database {db} (clean=true)"));
        server.query(&format!("DROP DATABASE {}", quote_ident(db)))?;
    }

    job.report("load", 0, 0);
    let program = server.client.clone();
    let command = server
        .command(&program)
        .arg("--default-character-set=utf8mb4")
        .args(job.param_words("args"));
    log::info(&format!("loading component {DUMP} with {program}"));
    command.run_from_component(job, DUMP, |status| server.explain(&program, status))?;
    Ok(vec![
        ("databases".into(), databases.join("\n")),
        ("server".into(), server.endpoint()),
    ])
}
