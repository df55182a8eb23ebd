//! `stowaway restore`: restores a snapshot through the addon that made it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use stowaway_executor::run;
use stowaway_repository::{ComponentKind, ComponentRecord};
use stowaway_runtime::{JobSpec, VolumeGrant};

use super::progress::{Counters, PhaseSink, Progress};
use super::{Global, output};

/// Restore a snapshot through the addon that made it.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    /// Directory to restore tree components into; each goes to TARGET/<component name>.
    #[arg(long, short = 't', conflicts_with = "original")]
    target: Option<PathBuf>,
    /// Restore each directory to where it was backed up from (overwriting what is there).
    #[arg(long)]
    original: bool,
    /// Restore only this component (repeatable; default: all).
    #[arg(long = "component", value_name = "NAME")]
    components: Vec<String>,
    #[command(flatten)]
    job: super::JobArgs,
    /// Use this addon instead of the one recorded in the snapshot (name or .wasm path).
    #[arg(long)]
    addon: Option<String>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let (repo, lock) = super::repo::open_locked(g, "restore").await?;
    let snapshot = repo.find_snapshot(&args.snapshot).await?;
    let components: Vec<ComponentRecord> = run::components(&snapshot, &args.components)?;

    let runtime = crate::addons::runtime(g)?;
    if args.addon.is_none() && stowaway_addons::builtin(&snapshot.addon.name).is_none() {
        bail!(
            "snapshot {} was made by addon {} {} ({}), which is not built in: give its component \
             with --addon PATH",
            snapshot.id.short(),
            snapshot.addon.name,
            snapshot.addon.version,
            snapshot.addon.digest
        );
    }
    let addon_name = args
        .addon
        .clone()
        .unwrap_or_else(|| snapshot.addon.name.clone());
    let addon = Arc::new(crate::addons::load(&runtime, &addon_name)?);
    let recorded = snapshot
        .addon
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&snapshot.addon.digest);
    if args.addon.is_none() && !recorded.is_empty() && recorded != addon.digest() {
        tracing::info!(
            addon = %addon.info().label(),
            snapshot_addon = %format!("{} {}", snapshot.addon.name, snapshot.addon.version),
            "restoring with a different build of the addon than the one that made the snapshot"
        );
    }

    let mut grants = Vec::new();
    if components.iter().any(|c| c.kind == ComponentKind::Tree) {
        if args.target.is_none() && !args.original {
            bail!("give --target DIR (or --original) to restore the snapshot's directories");
        }
        if let Some(target) = &args.target {
            std::fs::create_dir_all(target)
                .with_context(|| format!("creating the target directory {}", target.display()))?;
        }
        for c in components.iter().filter(|c| c.kind == ComponentKind::Tree) {
            let dir = match &args.target {
                Some(target) => target.join(&c.name),
                None => match c.attributes.iter().find(|(k, _)| k == "path") {
                    Some((_, path)) if std::path::Path::new(path).is_absolute() => {
                        PathBuf::from(path)
                    }
                    _ => bail!(
                        "component {} does not record where it came from: use --target DIR",
                        c.name
                    ),
                },
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            grants.push(VolumeGrant {
                name: c.name.clone(),
                path: dir,
            });
        }
    }

    let total: u64 = components.iter().map(|c| c.size).sum();
    let done = Arc::new(AtomicU64::new(0));
    let cancel = stowaway_runtime::CancelToken::new();
    let interrupted = super::progress::cancel_on_ctrl_c(cancel.clone());
    let phase = Arc::new(Mutex::new(String::new()));
    let sink = Arc::new(RestoreSink {
        phase: PhaseSink(phase.clone()),
        bytes: done.clone(),
    });
    let progress = Progress::start(
        g,
        "restore",
        Counters {
            items: Box::new(|| 0),
            bytes: Box::new({
                let done = done.clone();
                move || done.load(Ordering::Relaxed)
            }),
            total_bytes: Arc::new(AtomicU64::new(total)),
            phase,
        },
    );
    let spec = JobSpec {
        volumes: grants.clone(),
        cancel,
        progress: Some(sink),
        ..args.job.spec(
            &addon,
            format!("cli-{}", std::process::id()),
            args.job.params.clone(),
        )?
    };
    let result = run::restore(addon, repo.clone(), components.clone(), spec).await;
    drop(progress);
    lock.release().await?;
    if interrupted.load(Ordering::SeqCst) {
        return Err(super::progress::Interrupted.into());
    }
    let attributes = result?;
    let warnings = run::warnings(&attributes);

    let elapsed = started.elapsed();
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "components": components.iter().map(|c| &c.name).collect::<Vec<_>>(),
            "bytes": total,
            "target": args.target,
            "warnings": warnings,
            "seconds": elapsed.as_secs_f64(),
        }))?;
    } else if !g.quiet {
        for grant in &grants {
            println!(
                "restored component {} to {}",
                grant.name,
                grant.path.display()
            );
        }
        println!(
            "restored {} from snapshot {} in {:.1}s",
            output::bytes(total),
            snapshot.id.short(),
            elapsed.as_secs_f64()
        );
        if warnings > 0 {
            println!("warning: {warnings} entries could not be restored (see the log)");
        }
    }
    Ok(if warnings > 0 {
        super::EXIT_WARNINGS
    } else {
        0
    })
}

/// Progress of a restore: the addon's phase and the bytes it read.
struct RestoreSink {
    phase: PhaseSink,
    bytes: Arc<AtomicU64>,
}

impl stowaway_runtime::ProgressSink for RestoreSink {
    fn report(&self, progress: &stowaway_runtime::AddonProgress) {
        self.phase.report(progress);
    }

    fn transferred(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}
