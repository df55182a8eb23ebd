//! Stowaway's sidecar agent, which lives beside a workload in its pod, and the standalone
//! sidecar, which does the same without Kubernetes.
//!
//! - [`identity`]: who the sidecar is (pod, namespace, target) from the injected environment;
//! - [`agent`]: the work loop: claim the sessions handed to the target's sidecars (one
//!   replica wins each), run them with `stowaway-executor`, fail interrupted work;
//! - [`cluster`]: both side by side in an injected pod, until it stops;
//! - [`api`]: the HTTP/1.1 server on `127.0.0.1:PORT` and on a Unix socket in a volume the
//!   pod's containers share: `POST /v1/backups`, `GET /v1/backups/NAME`, `GET /v1/snapshots`,
//!   `POST /v1/restores`, `GET /v1/restores/NAME` (docs/sidecar.md);
//! - [`store`]: what the handlers do, behind the [`store::SessionStore`] trait: the cluster
//!   ([`store::KubeStore`] for one configuration, [`store::TargetStore`] for the one that
//!   targets the workload), local runs ([`store::LocalStore`], the standalone sidecar) or
//!   memory ([`store::MemoryStore`], for tests);
//! - [`standalone`]: `stowaway sidecar --config FILE`: configuration, schedule, backups,
//!   retention and restores against a repository (docs/sidecar.md);
//! - [`token`]: the optional bearer token;
//! - [`wire`]: the JSON of requests and answers, shared with the client;
//! - [`client`]: the client `stowaway trigger` uses;
//! - [`names`]: names and annotations of on-demand sessions.

pub mod agent;
pub mod api;
pub mod client;
pub mod cluster;
pub mod identity;
pub mod names;
pub mod standalone;
pub mod store;
pub mod token;
pub mod wire;

#[cfg(test)]
mod testing;
