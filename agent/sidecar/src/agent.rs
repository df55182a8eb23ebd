//! The sidecar's work loop in a cluster: it looks at the BackupSessions and RestoreSessions of
//! its namespace, claims the ones the operator handed to the sidecars of its target (exactly
//! one replica wins each claim, `stowaway_operator::claim`), runs them with the executor
//! library, and marks work that an earlier run of a sidecar left unfinished Failed.
//!
//! [`Agent::sweep`] is one pass (what tests drive); [`Agent::run`] repeats it whenever a
//! session changes (a watch) and every [`RESYNC`] in any case.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use stowaway_api::{BackupSession, RestoreSession, Snapshot};
use stowaway_executor::interrupted::{fail_backup, fail_restore};
use stowaway_executor::{Settings, execute_backup, execute_restore};
use stowaway_operator::claim::{self, Claim, SessionView, claim_annotation};
use stowaway_operator::names::BATCH_MEMBER_LABEL;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::identity::Identity;

/// How often the sessions are looked at even when no change was seen.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Why a pass over the sessions failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A call to the API server failed.
    #[error("Kubernetes API: {what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        source: Box<kube::Error>,
    },
    /// Marking interrupted work Failed failed.
    #[error("marking interrupted work Failed: {0}")]
    Execute(#[from] stowaway_executor::ExecuteError),
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Kube {
        what,
        source: Box::new(source),
    }
}

/// The kind of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkKind {
    /// A BackupSession.
    Backup,
    /// A RestoreSession.
    Restore,
}

/// One session's work for the sidecar's target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Work {
    /// Backup or restore.
    pub kind: WorkKind,
    /// The session's name.
    pub session: String,
}

/// Work this process started in a pass; the handle ends when the work does.
#[derive(Debug)]
pub struct Started {
    /// The work.
    pub work: Work,
    /// The task running it.
    pub handle: JoinHandle<()>,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Work claimed by this sidecar and started.
    pub started: Vec<Started>,
    /// Work another replica claimed first (the claim write met a conflict).
    pub lost: Vec<Work>,
    /// Interrupted work marked Failed, with the reason.
    pub interrupted: Vec<(Work, String)>,
}

/// The sidecar's agent.
pub struct Agent {
    client: kube::Client,
    identity: Identity,
    settings: Arc<Settings>,
    /// Work this process runs now.
    running: Arc<Mutex<HashSet<Work>>>,
    /// Why work this process ran ended without its outcome written (the message used when it
    /// is marked Failed later).
    unrecorded: Arc<Mutex<BTreeMap<Work, String>>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent for the sidecar `identity`, running work with `settings`.
    pub fn new(client: kube::Client, identity: Identity, settings: Settings) -> Agent {
        Agent {
            client,
            identity,
            settings: Arc::new(settings),
            running: Arc::default(),
            unrecorded: Arc::default(),
        }
    }

    /// The sidecar's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The work this process runs now.
    pub fn running(&self) -> BTreeSet<Work> {
        lock(&self.running).iter().cloned().collect()
    }

    fn backups(&self) -> Api<BackupSession> {
        Api::namespaced(self.client.clone(), &self.identity.namespace)
    }

    fn restores(&self) -> Api<RestoreSession> {
        Api::namespaced(self.client.clone(), &self.identity.namespace)
    }

    /// One pass: claims and starts the sessions handed to this target's sidecars, and fails
    /// interrupted ones.
    pub async fn sweep(&self) -> Result<Sweep, AgentError> {
        let me = self.identity.claimant();
        let namespace = &self.identity.namespace;
        let backups = self
            .backups()
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!("listing BackupSessions in {namespace}")))?
            .items;
        let restores = self
            .restores()
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!(
                "listing RestoreSessions in {namespace}"
            )))?
            .items;

        // Pods are read only when another pod holds a claim on open work of this target.
        let claimed_elsewhere = |view: SessionView<'_>| {
            view.open
                && view.for_target
                && view.for_sidecar
                && view.claimed_by.is_some_and(|p| p != me.pod)
        };
        let others_claim = backups
            .iter()
            .any(|s| claimed_elsewhere(claim::backup_view(s, &me)))
            || restores
                .iter()
                .any(|s| claimed_elsewhere(claim::restore_view(s, &me)));
        let running_pods = if others_claim {
            self.running_pods().await?
        } else {
            HashSet::new()
        };

        let mut sweep = Sweep::default();
        for session in backups {
            let work = Work {
                kind: WorkKind::Backup,
                session: session.name_any(),
            };
            let view = claim::backup_view(&session, &me);
            match self.decide(&view, &work, &running_pods) {
                Claim::Ignore | Claim::Running => {}
                Claim::Take => self.take(session, work, &mut sweep).await?,
                Claim::Interrupted(message) => {
                    self.interrupt(work, message, &mut sweep).await?;
                }
            }
        }
        for session in restores {
            let work = Work {
                kind: WorkKind::Restore,
                session: session.name_any(),
            };
            let view = claim::restore_view(&session, &me);
            match self.decide(&view, &work, &running_pods) {
                Claim::Ignore | Claim::Running => {}
                Claim::Take => self.take(session, work, &mut sweep).await?,
                Claim::Interrupted(message) => {
                    self.interrupt(work, message, &mut sweep).await?;
                }
            }
        }
        Ok(sweep)
    }

    fn decide(&self, view: &SessionView<'_>, work: &Work, running_pods: &HashSet<String>) -> Claim {
        let running_here = lock(&self.running).contains(work);
        let decision = claim::decide(view, &self.identity.claimant(), running_here, &|pod| {
            running_pods.contains(pod)
        });
        // Work this process ran whose outcome could not be written keeps its own reason.
        match decision {
            Claim::Interrupted(message) => {
                Claim::Interrupted(lock(&self.unrecorded).get(work).cloned().unwrap_or(message))
            }
            other => other,
        }
    }

    /// The names of the namespace's Running pods.
    async fn running_pods(&self) -> Result<HashSet<String>, AgentError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.identity.namespace);
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!(
                "listing Pods in {}",
                self.identity.namespace
            )))?;
        Ok(list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(|p| p.name_any())
            .collect())
    }

    /// Writes this pod's claim on `session` (a replace carrying the session's
    /// resourceVersion: of several replicas, one wins); starts the work when it won.
    async fn take<K>(&self, mut session: K, work: Work, sweep: &mut Sweep) -> Result<(), AgentError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let me = &self.identity;
        let annotation = claim_annotation(&me.target.kind, &me.target.name);
        session.annotations_mut().insert(annotation, me.pod.clone());
        let api: Api<K> = Api::namespaced(self.client.clone(), &me.namespace);
        match api
            .replace(&work.session, &PostParams::default(), &session)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::info!(session = %work.session, kind = ?work.kind, "another replica claimed it first");
                sweep.lost.push(work);
                return Ok(());
            }
            Err(e) => {
                return Err(kube_error(format!(
                    "claiming {:?} {}",
                    work.kind, work.session
                ))(e));
            }
        }
        tracing::info!(session = %work.session, kind = ?work.kind, pod = %me.pod, "claimed");
        let member = match work.kind {
            WorkKind::Backup => self.member(&work.session).await?,
            WorkKind::Restore => None,
        };
        lock(&self.running).insert(work.clone());
        let handle = tokio::spawn(run_work(
            self.client.clone(),
            Arc::clone(&self.settings),
            self.identity.clone(),
            work.clone(),
            member,
            Arc::clone(&self.running),
            Arc::clone(&self.unrecorded),
        ));
        sweep.started.push(Started { work, handle });
        Ok(())
    }

    /// The BackupBatch member whose snapshots of the session are this target's (`None` for a
    /// BackupConfiguration's session).
    async fn member(&self, session: &str) -> Result<Option<String>, AgentError> {
        let namespace = &self.identity.namespace;
        let found = self
            .backups()
            .get_opt(session)
            .await
            .map_err(kube_error(format!(
                "reading BackupSession {namespace}/{session}"
            )))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let target = &self.identity.target;
        let mine = found.status.iter().flat_map(|s| &s.snapshots).find(|s| {
            s.app_ref
                .as_ref()
                .is_some_and(|a| a.kind.eq_ignore_ascii_case(&target.kind) && a.name == target.name)
        });
        let Some(mine) = mine else {
            return Ok(None);
        };
        let snapshots: Api<Snapshot> = Api::namespaced(self.client.clone(), namespace);
        let object = snapshots
            .get_opt(&mine.name)
            .await
            .map_err(kube_error(format!(
                "reading Snapshot {namespace}/{}",
                mine.name
            )))?;
        Ok(object.and_then(|o| o.labels().get(BATCH_MEMBER_LABEL).cloned()))
    }

    /// Marks the unfinished part of interrupted work Failed with `message`.
    async fn interrupt(
        &self,
        work: Work,
        message: String,
        sweep: &mut Sweep,
    ) -> Result<(), AgentError> {
        mark_failed(&self.client, &self.identity, &work, &message).await?;
        lock(&self.unrecorded).remove(&work);
        sweep.interrupted.push((work, message));
        Ok(())
    }

    /// Runs passes until `shutdown` resolves: on every change to a session, and every
    /// [`RESYNC`]. A failed pass is logged and retried at the next occasion. At shutdown, the
    /// work still running is stopped and marked Failed (nothing half done is recorded).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let changed = Arc::new(Notify::new());
        let watches = [
            tokio::spawn(watch(self.backups(), Arc::clone(&changed))),
            tokio::spawn(watch(self.restores(), Arc::clone(&changed))),
        ];
        let mut tasks: Vec<Started> = Vec::new();
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = changed.notified() => {}
                _ = tick.tick() => {}
            }
            tasks.retain(|t| !t.handle.is_finished());
            match self.sweep().await {
                Ok(sweep) => tasks.extend(sweep.started),
                Err(e) => {
                    tracing::warn!(error = %e, "looking at the sessions failed; trying again")
                }
            }
        }
        for watch in watches {
            watch.abort();
        }
        let message = format!(
            "interrupted: the sidecar in pod {} was stopped while running it",
            self.identity.pod
        );
        for task in tasks.into_iter().filter(|t| !t.handle.is_finished()) {
            task.handle.abort();
            lock(&self.running).remove(&task.work);
            if let Err(e) = mark_failed(&self.client, &self.identity, &task.work, &message).await {
                tracing::warn!(session = %task.work.session, error = %e, "could not mark the stopped work Failed; the next sidecar to look will");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wakes the agent whenever an object of `api` changes; restarts the watch after an error.
async fn watch<K>(api: Api<K>, changed: Arc<Notify>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    loop {
        let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => {
                    tracing::debug!(error = %e, "watch interrupted; the periodic pass covers the gap");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Runs claimed work; when it fails before its outcome is written, marks it Failed with the
/// error.
async fn run_work(
    client: kube::Client,
    settings: Arc<Settings>,
    identity: Identity,
    work: Work,
    member: Option<String>,
    running: Arc<Mutex<HashSet<Work>>>,
    unrecorded: Arc<Mutex<BTreeMap<Work, String>>>,
) {
    let namespace = &identity.namespace;
    let result = match work.kind {
        WorkKind::Backup => execute_backup(
            &client,
            &settings,
            namespace,
            &work.session,
            member.as_deref(),
        )
        .await
        .map(|report| report.succeeded()),
        WorkKind::Restore => execute_restore(&client, &settings, namespace, &work.session)
            .await
            .map(|report| report.succeeded()),
    };
    match result {
        Ok(succeeded) => {
            tracing::info!(session = %work.session, kind = ?work.kind, succeeded, "finished");
        }
        Err(e) => {
            let message = e.to_string();
            tracing::error!(session = %work.session, kind = ?work.kind, error = %message, "failed");
            if let Err(write) = mark_failed(&client, &identity, &work, &message).await {
                tracing::warn!(session = %work.session, error = %write, "could not record the failure; the next pass will");
                lock(&unrecorded).insert(work.clone(), message);
            }
        }
    }
    lock(&running).remove(&work);
}

/// Marks the unfinished part of `work` Failed with `message`.
async fn mark_failed(
    client: &kube::Client,
    identity: &Identity,
    work: &Work,
    message: &str,
) -> stowaway_executor::Result<Vec<String>> {
    match work.kind {
        WorkKind::Backup => {
            fail_backup(
                client,
                &identity.namespace,
                &work.session,
                &identity.target,
                message,
            )
            .await
        }
        WorkKind::Restore => {
            fail_restore(client, &identity.namespace, &work.session, message).await
        }
    }
}
