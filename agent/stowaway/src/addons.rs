//! Finding addons: a built-in name (`volume`) or a path to a `.wasm` component; and the
//! built-in addons' descriptions for the operator's addon registry.

use std::path::Path;

use anyhow::{Context, bail};
use stowaway_operator::addon_registry::BuiltinAddon;
use stowaway_runtime::{Addon, Runtime, RuntimeOptions};

use crate::cli::Global;

/// The addon runtime, with the cache directory from the command line.
pub(crate) fn runtime(g: &Global) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions {
        cache_dir: g.cache_dir.as_ref().map(|d| d.join("addons")),
        no_cache: false,
    })?)
}

/// Loads a built-in addon by name, or an addon component from a file.
pub(crate) fn load(runtime: &Runtime, spec: &str) -> anyhow::Result<Addon> {
    if let Some(bytes) = stowaway_addons::builtin(spec) {
        return Ok(runtime.load(bytes, spec)?);
    }
    let path = Path::new(spec);
    if spec.contains('/') || spec.ends_with(".wasm") || path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("reading addon {spec}"))?;
        return Ok(runtime.load(&bytes, spec)?);
    }
    let known: Vec<&str> = stowaway_addons::builtin_names().collect();
    bail!(
        "no addon named {spec:?}: built-in addons are {}; give a path to load a .wasm component",
        known.join(", ")
    )
}

/// Loads every built-in addon and returns how each describes itself, for the operator's
/// addon registry (the operator itself does not run addons).
pub(crate) fn builtin_descriptions(runtime: &Runtime) -> anyhow::Result<Vec<BuiltinAddon>> {
    let settings =
        stowaway_executor::Settings::new(runtime.clone(), stowaway_addons::builtin, || {
            stowaway_addons::builtin_names().collect()
        });
    Ok(settings.builtin_descriptions()?)
}

#[cfg(test)]
mod tests {
    use stowaway_operator::addon_registry::{BACKUP_TASK, RESTORE_TASK, addon_object};

    use super::*;

    /// The real built-in components, loaded and described, become the registry's Addon
    /// objects with KubeStash's task names and the parameters each addon declares.
    #[test]
    fn builtin_addons_describe_themselves_for_the_registry() {
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: None,
            no_cache: true,
        })
        .expect("runtime");
        let described = builtin_descriptions(&runtime).expect("descriptions");
        let names: Vec<&str> = described.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["volume", "postgres", "mysql"]);
        for d in &described {
            assert!(
                d.digest.len() == 64
                    && d.digest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}: {}",
                d.name,
                d.digest
            );
            assert!(d.backup && d.restore, "{}", d.name);
            let addon = addon_object(d);
            assert_eq!(addon.spec.backup_tasks[0].name, BACKUP_TASK);
            assert_eq!(addon.spec.restore_tasks[0].name, RESTORE_TASK);
        }
        assert_ne!(described[0].digest, described[1].digest);
        let volume = &described[0];
        let params: Vec<(&str, &str, Option<&str>)> = volume
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.kind.as_str(), p.default.as_deref()))
            .collect();
        assert_eq!(
            params,
            [
                ("exclude", "text-list", Some("")),
                ("restore-owner", "boolean", Some("true")),
                ("overwrite", "boolean", Some("true")),
            ]
        );
        let postgres = addon_object(&described[1]);
        let host = postgres.spec.backup_tasks[0]
            .parameters
            .iter()
            .find(|p| p.name == "host")
            .expect("host");
        assert_eq!(host.default, None);
        assert_eq!(
            host.required,
            Some(false),
            "the executor takes the host from the target"
        );
    }
}
