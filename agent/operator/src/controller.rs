//! The thin kube-rs layer: gathers what a reconciler's decision function needs, calls it, and
//! carries out the plan (create, delete, status patch, events).
//!
//! Every write is idempotent: objects have deterministic names and an object that already
//! exists counts as created, so a reconcile interrupted half-way is finished by the next one.

mod apply;
pub mod backup_configuration;
pub mod backup_session;
mod context;
mod run;

pub use context::{Clock, Context};
pub use run::{RunError, Settings, run};

/// Errors of a reconcile; the controller logs them and tries again with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object has no namespace (a namespaced kind always has one).
    #[error("{kind} {name} has no namespace")]
    NoNamespace {
        /// Kind of the object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A status could not be serialized.
    #[error("serializing the status of {name}: {source}")]
    Serialize {
        /// The object.
        name: String,
        /// The error.
        source: serde_json::Error,
    },
}
