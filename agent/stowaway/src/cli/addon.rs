//! `stowaway addon`: inspect addons.

use super::{Global, output};

/// Inspect addons.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Show what an addon declares: operations, parameters, capabilities.
    Describe {
        /// Built-in addon name or path to a .wasm component.
        addon: String,
    },
    /// List the built-in addons.
    List,
}

pub(crate) async fn run(g: &Global, cmd: Command) -> anyhow::Result<u8> {
    let runtime = crate::addons::runtime(g)?;
    match cmd {
        Command::List => {
            let mut rows = Vec::new();
            let mut infos = Vec::new();
            for name in stowaway_addons::builtin_names() {
                let addon = crate::addons::load(&runtime, name)?;
                let info = addon.info().clone();
                rows.push(vec![
                    info.name.clone(),
                    info.version.clone(),
                    info.description.clone(),
                ]);
                infos.push(info);
            }
            if g.json {
                output::json(&infos)?;
            } else {
                output::table(&["Name", "Version", "Description"], &rows)?;
            }
        }
        Command::Describe { addon } => {
            let addon = crate::addons::load(&runtime, &addon)?;
            let info = addon.info();
            if g.json {
                let mut v = serde_json::to_value(info)?;
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("digest".into(), format!("sha256:{}", addon.digest()).into());
                }
                output::json(&v)?;
                return Ok(0);
            }
            println!("{} {}", info.name, info.version);
            println!("  {}", info.description);
            println!("  digest:       sha256:{}", addon.digest());
            println!("  targets:      {}", info.target_kinds.join(", "));
            let ops: Vec<String> = info
                .operations
                .iter()
                .map(|o| format!("{o:?}").to_lowercase())
                .collect();
            println!("  operations:   {}", ops.join(", "));
            println!("  parameters:");
            if info.parameters.is_empty() {
                println!("    (none)");
            }
            for p in &info.parameters {
                let default = match &p.default {
                    Some(d) if d.is_empty() => " (default: empty)".to_owned(),
                    Some(d) => format!(" (default: {d})"),
                    None => " (required)".to_owned(),
                };
                println!("    {} ({:?}){default}: {}", p.name, p.kind, p.description);
            }
            println!("  capabilities:");
            for c in &info.capabilities {
                println!("    {c}");
            }
        }
    }
    Ok(0)
}
