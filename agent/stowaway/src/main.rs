//! `stowaway`: Kubernetes backups with sandboxed WebAssembly addons.
//!
//! This binary holds the command line. The repository commands (`init`, `backup`, `restore`,
//! `snapshots`, `ls`, `dump`, `check`, `stats`, `addon`) work without Kubernetes against a
//! local repository; see `stowaway --help`.

mod addons;
mod cli;
mod native;

fn main() -> std::process::ExitCode {
    cli::main()
}
