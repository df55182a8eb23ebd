//! `stowaway execute backup|restore`: does the work of a BackupSession or RestoreSession the
//! operator has started (the command of the executor Jobs, see `docs/operator.md`).
//!
//! The outcome is written to the Snapshot objects (backup) or the RestoreSession's status
//! (restore) before the command exits: 0 when everything it did succeeded (or there was
//! nothing left to do), 1 otherwise.

use std::path::PathBuf;

use anyhow::Context as _;
use stowaway_executor::{
    BackupReport, ComponentResult, RestoreReport, Settings, SnapshotResult, execute_backup,
    execute_restore,
};
use stowaway_runtime::{Runtime, RuntimeOptions};

use super::{EXIT_FAILURE, Global, output};

/// What to execute.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Back up a Running BackupSession into each of its repositories.
    Backup(Args),
    /// Restore the components of a Running RestoreSession into its target.
    Restore(Args),
}

/// Which session, and where its target is.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Namespace of the session.
    #[arg(long)]
    namespace: String,
    /// Name of the BackupSession or RestoreSession.
    #[arg(long)]
    session: String,
    /// The BackupBatch member to back up (the Job of each member names it).
    #[arg(long)]
    member: Option<String>,
    /// Where the PersistentVolumeClaim target is mounted.
    #[arg(long, default_value = stowaway_operator::job::TARGET_MOUNT)]
    target_root: PathBuf,
    /// Host name recorded in the snapshots (stable, so that the next backup finds its
    /// parent and retention groups the snapshots of a target together).
    #[arg(long, default_value = stowaway_executor::DEFAULT_HOSTNAME)]
    hostname: String,
    /// Memory limit of the addon in MiB.
    #[arg(long, default_value_t = 256)]
    memory_limit_mib: u64,
}

pub(crate) async fn run(g: &Global, command: Command) -> anyhow::Result<u8> {
    let (backup, args) = match command {
        Command::Backup(args) => (true, args),
        Command::Restore(args) => (false, args),
    };
    if !backup && args.member.is_some() {
        anyhow::bail!("--member is for backups of a BackupBatch; a restore takes none");
    }
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API to talk to: `stowaway execute` runs in the Job the operator creates \
         for a session, or set KUBECONFIG to a kubeconfig file",
    )?;
    // The Job's root file system is read-only: compiled addons go to /tmp (an emptyDir).
    let cache_dir = g
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("stowaway"))
        .join("addons");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache_dir),
        no_cache: false,
    })?;
    let settings = Settings {
        target_root: args.target_root,
        hostname: args.hostname,
        memory_bytes: args.memory_limit_mib.saturating_mul(1024 * 1024),
        ..Settings::new(runtime, stowaway_addons::builtin, builtin_names)
    };
    let succeeded = if backup {
        let report = execute_backup(
            &client,
            &settings,
            &args.namespace,
            &args.session,
            args.member.as_deref(),
        )
        .await?;
        print_backup(g, &report)?;
        report.succeeded()
    } else {
        let report = execute_restore(&client, &settings, &args.namespace, &args.session).await?;
        print_restore(g, &report)?;
        report.succeeded()
    };
    Ok(if succeeded { 0 } else { EXIT_FAILURE })
}

fn builtin_names() -> Vec<&'static str> {
    stowaway_addons::builtin_names().collect()
}

fn print_backup(g: &Global, report: &BackupReport) -> anyhow::Result<()> {
    if g.json {
        let snapshots: Vec<serde_json::Value> = report
            .snapshots
            .iter()
            .map(|s| {
                let (phase, id, error) = match &s.result {
                    SnapshotResult::Succeeded { id, .. } => ("Succeeded", Some(id), None),
                    SnapshotResult::Failed { error } => ("Failed", None, Some(error)),
                    SnapshotResult::AlreadyFinished { .. } => ("AlreadyFinished", None, None),
                };
                serde_json::json!({
                    "snapshot": s.name, "repository": s.repository, "result": phase,
                    "id": id, "error": error,
                })
            })
            .collect();
        return output::json(&serde_json::json!({
            "namespace": report.namespace,
            "backupSession": report.session,
            "snapshots": snapshots,
            "succeeded": report.succeeded(),
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for s in &report.snapshots {
        match &s.result {
            SnapshotResult::Succeeded { id, size } => println!(
                "snapshot {} (repository {}): succeeded, {} as {}",
                s.name,
                s.repository,
                output::bytes(*size),
                &id[..id.len().min(12)]
            ),
            SnapshotResult::Failed { error } => println!(
                "snapshot {} (repository {}): failed: {error}",
                s.name, s.repository
            ),
            SnapshotResult::AlreadyFinished { phase } => println!(
                "snapshot {} (repository {}): already {phase:?}",
                s.name, s.repository
            ),
        }
    }
    Ok(())
}

fn print_restore(g: &Global, report: &RestoreReport) -> anyhow::Result<()> {
    if g.json {
        let components: serde_json::Map<String, serde_json::Value> = report
            .components
            .iter()
            .map(|(name, c)| {
                let value = match c {
                    ComponentResult::Succeeded => serde_json::json!({"result": "Succeeded"}),
                    ComponentResult::Failed { error } => {
                        serde_json::json!({"result": "Failed", "error": error})
                    }
                    ComponentResult::AlreadyFinished { .. } => {
                        serde_json::json!({"result": "AlreadyFinished"})
                    }
                };
                (name.clone(), value)
            })
            .collect();
        return output::json(&serde_json::json!({
            "namespace": report.namespace,
            "restoreSession": report.session,
            "snapshot": report.snapshot,
            "components": components,
            "succeeded": report.succeeded(),
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for (name, c) in &report.components {
        match c {
            ComponentResult::Succeeded => println!("component {name}: restored"),
            ComponentResult::Failed { error } => println!("component {name}: failed: {error}"),
            ComponentResult::AlreadyFinished { phase } => {
                println!("component {name}: already {phase:?}")
            }
        }
    }
    Ok(())
}
