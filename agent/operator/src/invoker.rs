//! What invokes BackupSessions: a BackupConfiguration (one target) or a BackupBatch (several
//! members backed up together), seen the same way by the session and schedule logic.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use stowaway_api::backup_configuration::{
    BackupConfigurationStatus, BackupHooks, RepositoryInfo, RetryConfig, SchedulerSpec,
};
use stowaway_api::common::{AddonInfo, BackendReference, TypedObjectReference};
use stowaway_api::{BackupBatch, BackupConfiguration};

/// A BackupConfiguration or a BackupBatch.
#[derive(Clone, Copy, Debug)]
pub enum Invoker<'a> {
    /// One target.
    Configuration(&'a BackupConfiguration),
    /// Several members.
    Batch(&'a BackupBatch),
}

/// One target of a session run: the configuration's target, or a batch member.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member<'a> {
    /// The batch member's name (`None` for a configuration).
    pub name: Option<&'a str>,
    /// The target (`None` when missing from the spec).
    pub target: Option<&'a TypedObjectReference>,
    /// Addon backing it up.
    pub addon: Option<&'a AddonInfo>,
    /// Repositories its snapshots go to.
    pub repositories: &'a [RepositoryInfo],
}

/// One session (schedule) of an invoker.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView<'a> {
    /// Session name.
    pub name: &'a str,
    /// When it runs.
    pub scheduler: Option<&'a SchedulerSpec>,
    /// Hooks around a run.
    pub hooks: Option<&'a BackupHooks>,
    /// Retries.
    pub retry_config: Option<&'a RetryConfig>,
    /// Time limit of a run.
    pub backup_timeout: Option<&'a str>,
    /// Finished runs kept.
    pub session_history_limit: Option<i32>,
    /// What a run backs up.
    pub members: Vec<Member<'a>>,
}

impl<'a> SessionView<'a> {
    /// Every repository of the run, with the member it belongs to.
    pub fn repositories(&self) -> impl Iterator<Item = (&Member<'a>, &'a RepositoryInfo)> {
        self.members
            .iter()
            .flat_map(|m| m.repositories.iter().map(move |r| (m, r)))
    }
}

impl<'a> Invoker<'a> {
    /// `BackupConfiguration` or `BackupBatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Invoker::Configuration(_) => "BackupConfiguration",
            Invoker::Batch(_) => "BackupBatch",
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &'a ObjectMeta {
        match self {
            Invoker::Configuration(c) => &c.metadata,
            Invoker::Batch(b) => &b.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }

    /// The object's namespace.
    pub fn namespace(&self) -> Option<String> {
        self.meta().namespace.clone()
    }

    /// Its backends.
    pub fn backends(&self) -> &'a [BackendReference] {
        match self {
            Invoker::Configuration(c) => &c.spec.backends,
            Invoker::Batch(b) => &b.spec.backends,
        }
    }

    /// Whether scheduling is paused.
    pub fn paused(&self) -> bool {
        match self {
            Invoker::Configuration(c) => c.spec.paused,
            Invoker::Batch(b) => b.spec.paused,
        }
        .unwrap_or(false)
    }

    /// The status part the two kinds share.
    pub fn status(&self) -> Option<&'a BackupConfigurationStatus> {
        match self {
            Invoker::Configuration(c) => c.status.as_ref(),
            Invoker::Batch(b) => b.status.as_ref().map(|s| &s.common),
        }
    }

    /// Every session, in spec order.
    pub fn sessions(&self) -> Vec<SessionView<'a>> {
        match *self {
            Invoker::Configuration(c) => c
                .spec
                .sessions
                .iter()
                .map(|s| SessionView {
                    name: &s.name,
                    scheduler: s.scheduler.as_ref(),
                    hooks: s.hooks.as_ref(),
                    retry_config: s.retry_config.as_ref(),
                    backup_timeout: s.backup_timeout.as_deref(),
                    session_history_limit: s.session_history_limit,
                    members: vec![Member {
                        name: None,
                        target: c.spec.target.as_ref(),
                        addon: s.addon.as_ref(),
                        repositories: &s.repositories,
                    }],
                })
                .collect(),
            Invoker::Batch(b) => b
                .spec
                .sessions
                .iter()
                .map(|s| SessionView {
                    name: &s.name,
                    scheduler: s.scheduler.as_ref(),
                    hooks: s.hooks.as_ref(),
                    retry_config: s.retry_config.as_ref(),
                    backup_timeout: s.backup_timeout.as_deref(),
                    session_history_limit: s.session_history_limit,
                    members: s
                        .targets
                        .iter()
                        .map(|t| Member {
                            name: Some(&t.name),
                            target: b
                                .spec
                                .targets
                                .iter()
                                .find(|m| m.name == t.name)
                                .map(|m| &m.app_ref),
                            addon: t.addon.as_ref(),
                            repositories: &t.repositories,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The session named `name`.
    pub fn session(&self, name: &str) -> Option<SessionView<'a>> {
        self.sessions().into_iter().find(|s| s.name == name)
    }

    /// The backend a repository names (`None`/empty: the only or the `default`-named one).
    pub fn backend(&self, name: Option<&str>) -> Option<&'a BackendReference> {
        let backends = self.backends();
        match name.filter(|n| !n.is_empty()) {
            Some(name) => backends.iter().find(|b| b.name == name),
            None if backends.len() == 1 => backends.first(),
            None => backends
                .iter()
                .find(|b| b.name.is_empty() || b.name == "default"),
        }
    }

    /// A controller owner reference to the invoker.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        match self {
            Invoker::Configuration(c) => c.controller_owner_ref(&()),
            Invoker::Batch(b) => b.controller_owner_ref(&()),
        }
    }

    /// Whether the invoker is Ready.
    pub fn is_ready(&self) -> bool {
        self.status().and_then(|s| s.phase)
            == Some(stowaway_api::backup_configuration::BackupConfigurationPhase::Ready)
    }

    /// Every target: the configuration's one, or each member's, with the member name.
    pub fn targets(&self) -> Vec<(Option<&'a str>, Option<&'a TypedObjectReference>)> {
        match *self {
            Invoker::Configuration(c) => vec![(None, c.spec.target.as_ref())],
            Invoker::Batch(b) => b
                .spec
                .targets
                .iter()
                .map(|t| (Some(t.name.as_str()), Some(&t.app_ref)))
                .collect(),
        }
    }

    /// Its creation time.
    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.meta().creation_timestamp.as_ref().map(|t| t.0)
    }
}
