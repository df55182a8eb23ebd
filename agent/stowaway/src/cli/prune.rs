//! `stowaway prune`: frees the space of data no snapshot references, beside running backups.

use std::time::Duration;

use stowaway_repository::{MaxUnused, PruneOptions, PruneProgress, PruneReport};

use super::{Global, output};

/// Remove data no snapshot references (two phases: mark now, delete in a later prune).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Unused space allowed to stay in partly used packs: N% of the used data, a size
    /// (500M, 2G) or "unlimited" (never repack).
    #[arg(long, default_value = "5%", value_parser = str::parse::<MaxUnused>)]
    max_unused: MaxUnused,
    /// Marked packs are deleted by a prune that runs at least this long after the mark
    /// (and only when no process that started before the mark still runs).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Allowance for clocks of other hosts running ahead.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, hide = true)]
    clock_skew: Duration,
    /// Show what would be done; change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

/// Shows the phase on stderr when it is a terminal.
struct Phases(bool);

impl PruneProgress for Phases {
    fn phase(&self, name: &str) {
        if self.0 {
            eprintln!("prune: {name}");
        }
    }

    fn repacked(&self, done: u64, total: u64) {
        if self.0 && (done == total || done.is_multiple_of(20)) {
            eprintln!("  {done}/{total} packs repacked");
        }
    }
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open(g).await?;
    let options = PruneOptions {
        max_unused: args.max_unused,
        grace: args.grace,
        clock_skew: args.clock_skew,
        dry_run: args.dry_run,
    };
    let progress =
        Phases(!g.quiet && !g.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let report = repo.prune(&options, &progress).await?;
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        print_report(&report);
    }
    Ok(0)
}

fn print_report(r: &PruneReport) {
    let would = |done: &str, planned: &str| {
        if r.dry_run {
            planned.to_owned()
        } else {
            done.to_owned()
        }
    };
    println!(
        "{} snapshots use {} blobs ({}) in {} packs",
        r.snapshots,
        r.used_blobs,
        output::bytes(r.used_bytes),
        r.packs
    );
    if r.deleted_packs > 0 {
        println!(
            "{} {} packs ({}) marked by an earlier prune",
            would("deleted", "would delete"),
            r.deleted_packs,
            output::bytes(r.deleted_bytes)
        );
    }
    if r.unindexed_deleted > 0 {
        println!(
            "{} {} packs ({}) left by interrupted backups",
            would("deleted", "would delete"),
            r.unindexed_deleted,
            output::bytes(r.unindexed_bytes)
        );
    }
    if r.recovered_packs > 0 {
        println!(
            "{} {} marked packs that new snapshots use again",
            would("kept", "would keep"),
            r.recovered_packs
        );
    }
    if r.repacked_packs > 0 {
        println!(
            "{} {} blobs ({}) out of {} partly used packs",
            would("copied", "would copy"),
            r.repacked_blobs,
            output::bytes(r.repacked_bytes),
            r.repacked_packs
        );
    }
    if r.marked_packs > 0 {
        println!(
            "{} {} packs ({}) for deletion by a later prune",
            would("marked", "would mark"),
            r.marked_packs,
            output::bytes(r.marked_bytes)
        );
    }
    if r.waiting_packs > 0 {
        let when = r
            .delete_after
            .map(|t| format!(" after {}", output::time(t)))
            .unwrap_or_default();
        let locks = if r.waiting_for_lock > 0 {
            format!(
                " ({} wait for a backup or restore that started before they were marked)",
                r.waiting_for_lock
            )
        } else {
            String::new()
        };
        println!(
            "{} marked packs ({}) can be deleted by a prune{when}{locks}",
            r.waiting_packs,
            output::bytes(r.waiting_bytes)
        );
    }
    println!(
        "unused space left in packs: {}; index files: {} -> {}",
        output::bytes(r.unused_after),
        r.index_files_before,
        r.index_files_after
    );
    if r.dry_run {
        println!("dry run: nothing was changed");
    }
}
