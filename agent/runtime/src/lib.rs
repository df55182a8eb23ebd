//! The Stowaway addon runtime: a sandboxed wasmtime host for backup addons.
//!
//! An addon is a WebAssembly component implementing the `stowaway:addon@0.1` world (see
//! `wit/` and `docs/addon-interface.md`). [`Runtime`] owns the one wasmtime engine of the
//! process; [`Runtime::load`] compiles (or loads from the on-disk cache) a component and asks
//! it to describe itself; [`Addon::backup`] and [`Addon::restore`] run one job each in a fresh
//! store with the job's limits and grants:
//!
//! - memory: a cap on linear memory (default 256 MiB);
//! - time: an epoch deadline checked every 10 ms; a cancelled job gets a grace period to
//!   stop, then is interrupted;
//! - files: only the volumes granted to the job, read-only for backups, preopened under
//!   `/volumes/<name>`; the `volumes` interface adds metadata without following symlinks;
//! - programs: only those the addon declares *and* the job grants (`exec`), run on the host
//!   with an empty environment, killed when the job is cancelled or times out;
//! - network: TCP connections only to the endpoints the addon declares and the job grants;
//! - no environment variables, no arguments, no secrets but the declared ones.
//!
//! The runtime knows nothing of Kubernetes; it writes into and reads from a
//! [`stowaway_repository::Repository`].

mod addon;
mod bindings;
mod cache;
mod components;
mod engine;
mod entry;
mod error;
mod exec;
mod file_writer;
mod info;
mod job;
mod limits;
mod logpipe;
mod network;
mod params;
mod volumes;

#[cfg(test)]
mod tests;

pub use addon::{Addon, BackupOutput};
pub use engine::{Runtime, RuntimeOptions};
pub use error::{Error, Failure, Result};
pub use exec::ExecGrant;
pub use info::{AddonInfo, Capability, Operation, Parameter, ParameterType};
pub use job::{AddonProgress, JobSpec, ProgressSink, VolumeGrant};
pub use limits::{CancelToken, JobLimits};
pub use network::Endpoint;
