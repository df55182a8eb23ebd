//! Finding addons: a built-in name (`volume`) or a path to a `.wasm` component.

use std::path::Path;

use anyhow::{Context, bail};
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
