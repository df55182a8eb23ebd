//! Stowaway's executor: it does the work of a BackupSession or a RestoreSession that the
//! operator has started, and records the outcome where the operator reads it.
//!
//! The Job the operator creates for a target without a sidecar runs
//! `stowaway execute backup|restore --namespace NS --session NAME`, which calls
//! [`execute_backup`] or [`execute_restore`]; the sidecar will call them too.
//!
//! | concept | module |
//! |---|---|
//! | a BackupSession: one backup per repository, recorded in its Snapshot objects | [`backup`] |
//! | a RestoreSession: the listed components into the target | [`restore`] |
//! | what the addon is granted for a target (a claim, a workload's volumes, an endpoint, credentials) | [`target`] |
//! | task parameters as the addon's `NAME=VALUE` pairs | [`params`] |
//! | Repository → BackupStorage → Secrets → the opened repository | [`repository`] |
//! | restoring beside the data, then moving it into place | [`staging`] |
//! | one addon run on an opened repository, without Kubernetes | [`run`] |
//! | status writes and the reports returned | [`report`] |
//! | failing work an interrupted executor left unfinished | [`interrupted`] |
//! | progress in the log | [`progress`] |
//! | settings (runtime, built-in addons, target root, volumes directory, host name) | [`settings`] |
//! | errors | [`error`] |
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use stowaway_executor::{Settings, execute_backup};
//! let runtime = stowaway_runtime::Runtime::new(Default::default())?;
//! # fn builtin(_: &str) -> Option<&'static [u8]> { None }
//! # fn names() -> Vec<&'static str> { Vec::new() }
//! let settings = Settings::new(runtime, builtin, names);
//! let report = execute_backup(&client, &settings, "demo", "db-daily-1700000000", None).await?;
//! assert!(report.succeeded());
//! # Ok(())
//! # }
//! ```

pub mod backup;
mod cluster;
pub mod error;
pub mod interrupted;
pub mod params;
pub mod progress;
pub mod report;
pub mod repository;
pub mod restore;
pub mod run;
pub mod settings;
pub mod staging;
pub mod target;

pub use backup::execute_backup;
pub use error::{ExecuteError, Result};
pub use report::{BackupReport, ComponentResult, RestoreReport, SnapshotOutcome, SnapshotResult};
pub use restore::execute_restore;
pub use settings::{BuiltinAddons, BuiltinNames, DEFAULT_HOSTNAME, Settings};
