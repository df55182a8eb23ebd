//! `stowaway backup`: runs an addon's backup into the repository and records a snapshot.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use stowaway_executor::run::{self, RunError};
use stowaway_repository::{BackupSummary, ComponentKind, Repository, Snapshot, Target};
use stowaway_runtime::{JobSpec, VolumeGrant};

use super::progress::{Counters, PhaseSink, Progress};
use super::{EXIT_WARNINGS, Global, output};

/// Back up paths (volume addon) or another target through an addon.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directories to back up (each becomes a volume of the volume addon).
    paths: Vec<PathBuf>,
    /// Addon to use: a built-in name or a path to a .wasm component.
    #[arg(long, default_value = "volume")]
    addon: String,
    #[command(flatten)]
    job: super::JobArgs,
    /// Exclude paths matching this glob (repeatable): `*.tmp` matches names at any depth,
    /// `cache/**` paths relative to each directory.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Host name recorded in the snapshot.
    #[arg(long)]
    host: Option<String>,
    /// Name of the target (default: the paths, or the addon's name).
    #[arg(long)]
    target_name: Option<String>,
    /// Snapshot whose files are reused when unchanged (default: the latest of this target).
    #[arg(long)]
    parent: Option<String>,
    /// Read every file again, ignoring the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Benchmark mode: read the directories natively instead of through the volume addon.
    #[arg(long, hide = true)]
    native: bool,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let (repo, lock) = super::repo::open_locked(g, "backup").await?;
    let runtime = crate::addons::runtime(g)?;
    let addon = Arc::new(crate::addons::load(&runtime, &args.addon)?);
    let info = addon.info().clone();
    let grants = run::volume_grants(&args.paths)?;
    if grants.is_empty() && info.name == "volume" {
        bail!("nothing to back up: give one or more directories");
    }
    let mut params = args.job.params.clone();
    if !args.exclude.is_empty() {
        if !info.parameters.iter().any(|p| p.name == "exclude") {
            bail!("addon {} has no exclude parameter", info.label());
        }
        params.extend(
            args.exclude
                .iter()
                .map(|e| ("exclude".to_owned(), e.clone())),
        );
    }
    let target = Target {
        kind: info
            .target_kinds
            .first()
            .cloned()
            .unwrap_or_else(|| info.name.clone()),
        name: args.target_name.clone().unwrap_or_else(|| {
            if grants.is_empty() {
                info.name.clone()
            } else {
                grants
                    .iter()
                    .map(|v| v.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }),
    };
    let hostname = args
        .host
        .clone()
        .unwrap_or_else(stowaway_repository::hostname);

    let parent = find_parent(&repo, &args, &target, &hostname).await?;
    let backup = repo.start_backup(parent.as_ref())?;
    let counters = backup.progress();

    let cancel = stowaway_runtime::CancelToken::new();
    let interrupted = super::progress::cancel_on_ctrl_c(cancel.clone());
    let phase = Arc::new(Mutex::new(String::new()));
    let total = Arc::new(AtomicU64::new(0));
    if Progress::shown(g) {
        spawn_size_scan(grants.clone(), total.clone());
    }
    let progress = Progress::start(
        g,
        "backup",
        Counters {
            items: Box::new({
                let c = counters.clone();
                move || c.files_done()
            }),
            bytes: Box::new({
                let c = counters.clone();
                move || c.bytes_processed.load(Ordering::Relaxed)
            }),
            total_bytes: total,
            phase: phase.clone(),
        },
    );

    let spec = JobSpec {
        volumes: grants.clone(),
        cancel,
        progress: Some(Arc::new(PhaseSink(phase))),
        ..args
            .job
            .spec(&addon, format!("cli-{}", std::process::id()), params)?
    };
    let result = if args.native {
        run::produce(backup, move |shared| {
            crate::native::backup(&spec.volumes, &shared).map_err(|e| RunError::Producer(e.into()))
        })
        .await
    } else {
        run::backup(addon.clone(), backup, spec).await
    };
    drop(progress);
    if interrupted.load(Ordering::SeqCst) {
        return Err(super::progress::Interrupted.into());
    }
    let (backup, output) = result?;
    let warnings = run::warnings(
        output
            .components
            .iter()
            .flat_map(|c| c.attributes.iter())
            .chain(output.attributes.iter()),
    );
    let origin = run::Origin {
        target,
        hostname,
        tags: args.tag.clone(),
        ..run::Origin::default()
    };
    let snapshot = run::commit(backup, &lock, &addon, origin, output, &grants)
        .await
        .context("recording the snapshot")?;
    lock.release().await?;
    report(g, &snapshot, parent.as_ref(), started.elapsed(), warnings)?;
    Ok(if warnings > 0 { EXIT_WARNINGS } else { 0 })
}

async fn find_parent(
    repo: &Repository,
    args: &Args,
    target: &Target,
    hostname: &str,
) -> anyhow::Result<Option<Snapshot>> {
    if args.force {
        return Ok(None);
    }
    if let Some(spec) = &args.parent {
        return Ok(Some(repo.find_snapshot(spec).await?));
    }
    let snapshots = repo.snapshots().await?;
    Ok(run::parent(&snapshots, target, hostname).cloned())
}

/// Counts the bytes under the directories in the background, for the ETA.
fn spawn_size_scan(grants: Vec<VolumeGrant>, total: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut stack: Vec<PathBuf> = grants.into_iter().map(|g| g.path).collect();
        let mut sum = 0u64;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    sum += meta.len();
                }
            }
        }
        total.store(sum, Ordering::Relaxed);
    });
}

fn report(
    g: &Global,
    snapshot: &Snapshot,
    parent: Option<&Snapshot>,
    elapsed: std::time::Duration,
    warnings: u64,
) -> anyhow::Result<()> {
    let s: &BackupSummary = &snapshot.summary;
    if g.json {
        return output::json(&serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "parent": parent.map(|p| p.id.to_hex()),
            "summary": s,
            "components": snapshot.components.iter().map(|c| serde_json::json!({
                "name": c.name, "kind": c.kind, "size": c.size,
            })).collect::<Vec<_>>(),
            "warnings": warnings,
            "seconds": elapsed.as_secs_f64(),
        }));
    }
    if g.quiet {
        return Ok(());
    }
    if let Some(p) = parent {
        println!("using parent snapshot {}", p.id.short());
    }
    let trees = snapshot
        .components
        .iter()
        .any(|c| c.kind == ComponentKind::Tree);
    if trees {
        println!(
            "files: {} new, {} changed, {} unmodified; {} directories",
            s.files_new, s.files_changed, s.files_unmodified, s.dirs
        );
    } else {
        for c in &snapshot.components {
            println!("component {} ({})", c.name, output::bytes(c.size));
        }
    }
    println!(
        "processed {} in {:.1}s, added {} to the repository ({} data blobs, {} tree blobs)",
        output::bytes(s.bytes_processed),
        elapsed.as_secs_f64(),
        output::bytes(s.bytes_added),
        s.data_blobs_new,
        s.tree_blobs_new
    );
    if warnings > 0 {
        println!(
            "warning: {warnings} entries could not be read and are missing from the snapshot (see the log)"
        );
    }
    println!("snapshot {} saved", snapshot.id.short());
    Ok(())
}
