//! What every reconcile shares: the client, the clock, the event recorder and the settings.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::events::{Recorder, Reporter};

use crate::addon_registry::{self, BuiltinAddon};
use crate::job::JobSettings;
use crate::metrics::Metrics;

/// The time source (tests pass a controllable one).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared state of the reconcilers.
#[derive(Clone)]
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Now.
    pub clock: Clock,
    /// Records Events on the reconciled objects.
    pub recorder: Recorder,
    /// How executor Jobs are made.
    pub job: JobSettings,
    /// The addons built into `stowaway`, as they describe themselves (they need no Addon
    /// object; the leader installs one for each, see [`crate::addon_registry`]).
    pub builtin_addons: Vec<BuiltinAddon>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Context {
    /// A context using the system clock.
    pub fn new(
        client: kube::Client,
        job: JobSettings,
        builtin_addons: Vec<BuiltinAddon>,
    ) -> Context {
        let reporter = Reporter {
            controller: "stowaway-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clock: Arc::new(Timestamp::now),
            job,
            builtin_addons,
            metrics: Arc::default(),
        }
    }

    /// The same context with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Context {
        self.clock = clock;
        self
    }

    /// Now, by the context's clock.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Whether an addon of this name exists without an Addon object: a built-in one, or the
    /// KubeStash name of one (`postgres-addon` for `postgres`, `pvc-addon` and
    /// `workload-addon` for `volume`).
    pub fn is_builtin_addon(&self, name: &str) -> bool {
        addon_registry::builtin(name, &self.builtin_addons).is_some()
    }
}
