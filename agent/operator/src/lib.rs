//! Stowaway's operator: it drives the declarative API of `stowaway-api`.
//!
//! Each reconciler is a pure decision function (the observed state in, the actions out) in a
//! module named for its kind; [`controller`] is the thin kube-rs layer that gathers the state,
//! calls the decision function and carries out the actions. [`schedule`] parses cron schedules
//! and [`admission`] holds the defaulting and validation rules of the admission webhook.

pub mod addon;
pub mod addon_registry;
pub mod admission;
pub mod backup_batch;
pub mod backup_blueprint;
pub mod backup_configuration;
pub mod backup_session;
pub mod backup_storage;
pub mod batch_restore;
pub mod claim;
pub mod conditions;
pub mod controller;
pub mod duration;
pub mod events;
pub mod executor;
pub mod health;
pub mod hooks;
pub mod http;
pub mod injection;
pub mod integrity;
pub mod invoker;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod repository;
pub mod repository_access;
pub mod restore_session;
pub mod retention;
pub mod schedule;
pub mod sidecar_rbac;
pub mod snapshot;
pub mod snapshot_mirror;
pub mod storage_access;
#[cfg(test)]
mod testing;
pub mod variables;
pub mod volume_restore;
pub mod webhook;

/// Chooses ring as the process's TLS crypto provider. Both of rustls's providers are built
/// into the binary (ring through kube, aws-lc-rs through the storage clients), so rustls
/// cannot choose by itself and kube's client would panic; call this before any client is made.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
