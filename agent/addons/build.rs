//! Builds the addon workspace in `plugins/` for `wasm32-wasip2` and embeds the built-in addons.
//!
//! The addons are their own cargo workspace with their own target directory
//! (`plugins/target`), so a nested `cargo build` does not contend with the outer build's lock
//! and `cargo build` run by hand inside `plugins/` shares the same cache.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in addons: (name, package) pairs; each package produces `<package with _>.wasm`.
const BUILTIN: &[(&str, &str)] = &[
    ("volume", "stowaway-volume"),
    ("postgres", "stowaway-postgres"),
    ("mysql", "stowaway-mysql"),
];

/// Misbehaving guests for the sandbox tests: (constant name, package).
const TEST_PROGRAMS: &[(&str, &str)] = &[
    ("LOOP_FOREVER", "test-loop-forever"),
    ("ALLOC_BOMB", "test-alloc-bomb"),
    ("TRAP", "test-trap"),
    ("ESCAPE_FS", "test-escape-fs"),
    ("BAD_TREE", "test-bad-tree"),
    ("STREAM_ECHO", "test-stream-echo"),
    ("DESCRIBE_ONLY", "test-describe-only"),
    ("EXEC_PROBE", "test-exec-probe"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("agent/addons lives two levels below the workspace root")
        .to_path_buf();
    let plugins = root.join("plugins");
    for watched in [
        "sdk",
        "volume",
        "postgres",
        "mysql",
        "testing",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"));
    if plugins.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    // The outer build's settings are for the host, not for the wasm guests.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|err| {
        panic!(
            "could not run cargo to build the addons in {}: {err}",
            plugins.display()
        )
    });
    if !status.success() {
        panic!(
            "building the addons in {} for wasm32-wasip2 failed (is the target installed? \
             run `rustup target add wasm32-wasip2`)",
            plugins.display()
        );
    }

    let artifacts = plugins.join("target/wasm32-wasip2/release");
    let mut code = String::new();
    code.push_str(
        "/// Built-in addons: (name, component bytes).\npub const BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for (name, package) in BUILTIN {
        let path = artifact(&artifacts, package);
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String cannot fail");
    }
    code.push_str(
        "];\n\n/// Paths of the sandbox test programs (not embedded).\npub mod test_programs {\n",
    );
    for (constant, package) in TEST_PROGRAMS {
        let path = artifact(&artifacts, package);
        writeln!(
            code,
            "    /// `plugins/testing/{}`.\n    pub const {constant}: &str = {:?};",
            package.trim_start_matches("test-"),
            path.display().to_string()
        )
        .expect("writing to a String cannot fail");
    }
    code.push_str("}\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("addons.rs");
    std::fs::write(&out, code).expect("OUT_DIR is writable");
}

fn artifact(dir: &Path, package: &str) -> PathBuf {
    let path = dir.join(format!("{}.wasm", package.replace('-', "_")));
    if !path.exists() {
        panic!("the addon build did not produce {}", path.display());
    }
    path
}
