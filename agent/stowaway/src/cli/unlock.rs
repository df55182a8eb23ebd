//! `stowaway unlock`: removes locks left by processes that died.

use super::{Global, output};

/// Remove stale locks (not refreshed for 30 minutes, or held by a dead process on this host).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Remove every lock, also those of processes that may still run (only when you know
    /// no other stowaway process uses the repository).
    #[arg(long)]
    remove_all: bool,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open(g).await?;
    let removed = if args.remove_all {
        repo.remove_all_locks().await?
    } else {
        repo.remove_stale_locks().await?
    };
    let left = repo.locks().await?;
    if g.json {
        output::json(&serde_json::json!({ "removed": removed, "remaining": left.len() }))?;
    } else if !g.quiet {
        println!("removed {removed} locks");
        for lock in &left {
            println!(
                "still locked: {} lock for {} by {} pid {} since {}",
                if lock.exclusive {
                    "an exclusive"
                } else {
                    "a shared"
                },
                lock.operation,
                lock.hostname,
                lock.pid,
                output::time(lock.time)
            );
        }
    }
    Ok(0)
}
