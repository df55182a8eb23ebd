//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes 100 ms to seconds; loading a compiled artifact
//! takes well under a millisecond. Artifacts are keyed by the SHA-256 of the component and the
//! engine's compatibility hash (wasmtime version, configuration, CPU features), written
//! atomically (temporary file + rename) into a directory only this user can write.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// Uses `dir`, creating it (mode 0700) when missing. `None` when it cannot be created.
    pub fn open(dir: &Path) -> Option<Self> {
        if let Err(err) = create_private_dir(dir) {
            tracing::warn!(dir = %dir.display(), %err, "cannot use the addon cache; compiling every time");
            return None;
        }
        Some(ComponentCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The default location: `$STOWAWAY_CACHE_DIR`, else `$XDG_CACHE_HOME/stowaway/addons`,
    /// else `$HOME/.cache/stowaway/addons`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("STOWAWAY_CACHE_DIR") {
            return Some(PathBuf::from(dir).join("addons"));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("stowaway/addons"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/stowaway/addons"))
    }

    /// Loads the compiled form of `wasm` (whose SHA-256 is `digest`), compiling and storing it
    /// when absent.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<Component> {
        let path = self
            .dir
            .join(format!("{digest}-{:016x}.cwasm", compat_hash(engine)));
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok(component),
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "discarding unreadable compiled addon");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        match component.serialize() {
            Ok(bytes) => {
                if let Err(err) = write_atomically(&path, &bytes) {
                    tracing::warn!(path = %path.display(), %err, "could not cache the compiled addon");
                }
            }
            Err(err) => tracing::warn!(%err, "could not serialize the compiled addon"),
        }
        Ok(component)
    }
}

fn compat_hash(engine: &Engine) -> u64 {
    // DefaultHasher::new() uses fixed keys, so the value is stable between processes of one
    // build; a different value merely misses the cache.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

#[allow(
    unsafe_code,
    reason = "deserializing runs native code; the cache directory is private to this user and \
              only ever holds artifacts this process family wrote itself"
)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of a compatible engine (the key
    // includes the compatibility hash) and lives in a directory only this user can write.
    unsafe { Component::deserialize_file(engine, path) }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is writable by others",
            dir.display()
        )));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
