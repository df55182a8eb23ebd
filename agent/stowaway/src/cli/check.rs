//! `stowaway check`: verifies structure and, with --read-data, every blob.

use std::sync::{Arc, Mutex, PoisonError};

use stowaway_repository::{CheckOptions, CheckProgress};

use super::{Global, output};

/// Verify the repository's structure and, with --read-data, all data.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Download every pack and verify every blob (authentication, decompression, id).
    #[arg(long)]
    read_data: bool,
}

/// Shows the phase on stderr when it is a terminal.
struct Phases {
    show: bool,
    last: Arc<Mutex<String>>,
}

impl CheckProgress for Phases {
    fn phase(&self, name: &str) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = name.to_owned();
        if self.show {
            eprintln!("checking {name}");
        }
    }

    fn pack_checked(&self, done: u64, total: u64) {
        if self.show && (done == total || done.is_multiple_of(50)) {
            eprintln!("  {done}/{total} packs read");
        }
    }
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open(g).await?;
    // Exclusive against prune (which deletes packs a check would then miss), not against
    // backups. The check loads the index itself.
    let lock = repo.lock(true, "check").await?;
    let progress = Phases {
        show: !g.quiet && !g.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        last: Arc::default(),
    };
    let report = repo
        .check(
            CheckOptions {
                read_data: args.read_data,
            },
            &progress,
        )
        .await?;
    lock.release().await?;
    if g.json {
        output::json(&serde_json::json!({
            "ok": report.errors.is_empty(),
            "errors": report.errors.iter().map(|e| serde_json::json!({
                "message": e.message,
                "pack": e.pack.map(|p| p.to_hex()),
                "blob": e.blob.map(|b| b.to_hex()),
                "snapshots": e.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "unreferenced_packs": report.unreferenced_packs.len(),
            "index_files": report.index_files,
            "marked_packs": report.marked_packs,
            "packs_checked": report.packs_checked,
            "blobs_checked": report.blobs_checked,
            "snapshots_checked": report.snapshots_checked,
            "read_data": args.read_data,
        }))?;
    } else {
        for error in &report.errors {
            println!("error: {error}");
        }
        if !g.quiet {
            if !report.unreferenced_packs.is_empty() {
                println!(
                    "{} packs are not referenced by any index (left by interrupted backups; prune removes them)",
                    report.unreferenced_packs.len()
                );
            }
            println!(
                "checked {} snapshots, {} index files, {} packs{}",
                report.snapshots_checked,
                report.index_files,
                report.packs_checked,
                if args.read_data {
                    format!(", {} blobs read and verified", report.blobs_checked)
                } else {
                    String::new()
                }
            );
        }
    }
    if report.errors.is_empty() {
        if !g.json && !g.quiet {
            println!("no errors were found");
        }
        Ok(0)
    } else {
        anyhow::bail!("check found {} errors", report.errors.len())
    }
}
