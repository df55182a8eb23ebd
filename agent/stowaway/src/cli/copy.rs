//! `stowaway copy`: snapshots into another repository, keeping their chunk boundaries.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stowaway_repository::{CopyProgress, Error, Repository, Snapshot};
use stowaway_storage::Storage;
use zeroize::Zeroizing;

use super::progress::Progress;
use super::{Global, output};

/// Copy snapshots to another repository.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Snapshots to copy: ids, id prefixes or `latest` (default: all).
    snapshots: Vec<String>,
    /// The destination repository: a path, file:///path or memory://.
    #[arg(long, value_name = "URL", env = "STOWAWAY_TO_REPOSITORY")]
    to: String,
    /// Read the destination's password from this file (else $STOWAWAY_TO_PASSWORD).
    #[arg(long, value_name = "FILE", env = "STOWAWAY_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Only list the snapshots that would be copied.
    #[arg(long)]
    dry_run: bool,
}

/// Opens the destination. Without a password, only an unencrypted repository opens.
async fn open_destination(args: &Args) -> anyhow::Result<Repository> {
    let storage = Storage::from_url(&args.to)
        .with_context(|| format!("opening destination location {}", args.to))?;
    let location = storage.describe();
    let password = match &args.to_password_file {
        Some(path) => Some(super::repo::password_file(path)?),
        None => std::env::var("STOWAWAY_TO_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(Zeroizing::new),
    };
    let given = password.is_some();
    let password = password.unwrap_or_default();
    match Repository::open(storage, &password).await {
        Err(Error::WrongPassword) if !given => bail!(
            "no password for the destination {location}: set STOWAWAY_TO_PASSWORD or use \
             --to-password-file FILE"
        ),
        other => other.with_context(|| format!("opening destination repository {location}")),
    }
}

/// The snapshots named by `specs` (all when empty), each once.
async fn select(repo: &Repository, specs: &[String]) -> anyhow::Result<Vec<Snapshot>> {
    if specs.is_empty() {
        return Ok(repo.snapshots().await?);
    }
    let mut out: Vec<Snapshot> = Vec::new();
    for spec in specs {
        let snapshot = repo.find_snapshot(spec).await?;
        if !out.iter().any(|s| s.id == snapshot.id) {
            out.push(snapshot);
        }
    }
    Ok(out)
}

fn row(s: &Snapshot) -> Vec<String> {
    vec![
        s.id.short(),
        output::time(s.time),
        s.hostname.clone(),
        s.tags.join(","),
        output::bytes(s.components.iter().map(|c| c.size).sum()),
        s.target.name.clone(),
    ]
}

/// Draws the copy's counters on stderr while it runs (only on a terminal).
fn show(
    g: &Global,
    total: usize,
    progress: &Arc<CopyProgress>,
) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !Progress::shown(g) {
        return None;
    }
    let bar =
        ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} copying [{elapsed_precise}] {pos}/{len} snapshots, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let drawn = bar.clone();
    let progress = Arc::clone(progress);
    let task = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let read = progress.bytes_read.load(Ordering::Relaxed);
            let written = progress.written.summary();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            drawn.set_position(progress.snapshots_done.load(Ordering::Relaxed));
            drawn.set_message(format!(
                "{} blobs read, {} ({}/s), {} new blobs, {} added",
                progress.blobs_read.load(Ordering::Relaxed),
                output::bytes(read),
                output::bytes((read as f64 / secs) as u64),
                written.data_blobs_new + written.tree_blobs_new,
                output::bytes(written.bytes_added),
            ));
            drawn.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Some((bar, task))
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let started = Instant::now();
    let src = super::repo::open(g).await?;
    let dest = open_destination(&args).await?;
    let snapshots = select(&src, &args.snapshots).await?;

    if args.dry_run {
        let plan = src.plan_copy(&dest, snapshots).await?;
        if g.json {
            output::json(&serde_json::json!({
                "dry_run": true,
                "to_copy": plan.to_copy.iter().map(|s| s.id.to_hex()).collect::<Vec<_>>(),
                "present": plan.present.iter().map(|(s, c)| serde_json::json!({
                    "source": s.id.to_hex(), "copy": c.to_hex(),
                })).collect::<Vec<_>>(),
            }))?;
        } else {
            let rows: Vec<Vec<String>> = plan.to_copy.iter().map(row).collect();
            output::table(&["ID", "Time", "Host", "Tags", "Size", "Target"], &rows)?;
            println!(
                "{} snapshots would be copied, {} are already in the destination",
                plan.to_copy.len(),
                plan.present.len()
            );
        }
        return Ok(0);
    }

    // Lock first, then read the indexes (prune relies on lock times).
    let src_lock = src.lock(false, "copy").await?;
    let dest_lock = match dest.lock(false, "copy").await {
        Ok(lock) => lock,
        Err(e) => {
            src_lock.release().await?;
            return Err(e).context("locking the destination");
        }
    };
    let result = async {
        src.load_index().await.context("loading the source index")?;
        dest.load_index()
            .await
            .context("loading the destination index")?;
        let plan = src.plan_copy(&dest, snapshots).await?;
        let progress = Arc::new(CopyProgress::default());
        let shown = show(g, plan.to_copy.len(), &progress);
        let report = src
            .copy_snapshots(&dest, &plan.to_copy, progress, &dest_lock)
            .await;
        if let Some((bar, task)) = shown {
            task.abort();
            bar.finish_and_clear();
        }
        Ok::<_, anyhow::Error>((plan, report?))
    }
    .await;
    let released = (src_lock.release().await, dest_lock.release().await);
    let (plan, report) = result?;
    released.0?;
    released.1?;

    if g.json {
        output::json(&serde_json::json!({
            "copied": report.copied.iter().map(|c| serde_json::json!({
                "source": c.source.to_hex(), "copy": c.copy.to_hex(),
            })).collect::<Vec<_>>(),
            "present": plan.present.iter().map(|(s, c)| serde_json::json!({
                "source": s.id.to_hex(), "copy": c.to_hex(),
            })).collect::<Vec<_>>(),
            "blobs_read": report.blobs_read,
            "bytes_read": report.bytes_read,
            "data_blobs_new": report.data_blobs_new,
            "tree_blobs_new": report.tree_blobs_new,
            "bytes_added": report.bytes_added,
            "duration_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !g.quiet {
        for c in &report.copied {
            println!("copied snapshot {} as {}", c.source.short(), c.copy.short());
        }
        println!(
            "{} snapshots copied, {} already in the destination; read {} blobs ({}), \
             added {} data and {} tree blobs ({}) in {:.1} s",
            report.copied.len(),
            plan.present.len(),
            report.blobs_read,
            output::bytes(report.bytes_read),
            report.data_blobs_new,
            report.tree_blobs_new,
            output::bytes(report.bytes_added),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
