//! Restoring a BackupBatch run together: a RestoreSession with `spec.dataSource.batch`.
//!
//! The batch restore picks one BackupSession of the batch (named, or the latest Succeeded),
//! so every member comes back from the same run, and creates one ordinary RestoreSession per
//! member (owned by it, named `<restore>-<member>`): the member's target, its snapshot of that
//! run, its addon's restore task. Those member restores do the work as any restore does
//! (pausing the member's own BackupConfigurations, sidecar or Job, per-component status);
//! this one pauses the batch's schedules for the whole time, orders the members
//! (`Parallel` or `Sequential`, a failure stopping a sequential restore), and reports one
//! component per member.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::{AddonInfo, RunPhase, TypedObjectReference};
use stowaway_api::restore_session::{
    BatchRestoreSource, ComponentRestoreStatus, ExecutionOrder, RestoreDataSource, RestorePhase,
    RestoreSessionSpec, RestoreSessionStatus,
};
use stowaway_api::{BackupBatch, BackupSession, RestoreSession, Snapshot};

use crate::addon_registry::restore_addon;
use crate::backup_configuration::managed_labels;
use crate::conditions;
use crate::events::Note;
use crate::hooks::{self, Gate, Stage};
use crate::invoker::Invoker;
use crate::names;
use crate::restore_session::{
    BACKUPS_RESUMED, VALIDATION_PASSED, hook_lists, post_hooks_then_outcome, wait_for_backup,
};

/// Label on a member restore: the batch restore it belongs to.
pub const PARENT_LABEL: &str = "stowaway.dev/batch-restore";

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The batch restore.
    pub session: &'a RestoreSession,
    /// The BackupBatch, if it exists.
    pub batch: Option<&'a BackupBatch>,
    /// BackupSessions of the batch.
    pub backup_sessions: &'a [BackupSession],
    /// Snapshot objects of the batch's runs.
    pub snapshots: &'a [Snapshot],
    /// The member restores that exist.
    pub children: &'a [RestoreSession],
    /// The time of this decision.
    pub now: Timestamp,
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status.
    pub status: RestoreSessionStatus,
    /// Member restores to create.
    pub create_children: Vec<RestoreSession>,
    /// Pause the batch (`spec.paused: true`).
    pub pause_batch: bool,
    /// Resume the batch (`spec.paused: false`).
    pub resume_batch: bool,
    /// The batch restore's own hook to run now (stage, index in `spec.hooks`).
    pub run_hook: Option<(Stage, usize)>,
    /// Events to record.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Decides what a batch restore needs now.
pub fn decide(observed: &Observed<'_>, source: &BatchRestoreSource) -> Plan {
    let session = observed.session;
    let now = observed.now;
    let mut status = session.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    if matches!(
        status.phase,
        Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid)
    ) {
        resume(&mut status, &mut plan, now);
        plan.status = status;
        return plan;
    }
    let members = match resolve(observed, source) {
        Ok(m) => m,
        Err((reason, message)) => {
            if status.phase == Some(RestorePhase::Running) {
                // Resolved once already: the batch or its snapshots went away meanwhile.
                finish(
                    &mut status,
                    session,
                    &mut plan,
                    now,
                    Some((reason, message)),
                );
            } else {
                status.phase = Some(RestorePhase::Invalid);
                conditions::set(
                    &mut status.conditions,
                    VALIDATION_PASSED,
                    false,
                    reason,
                    &message,
                    now,
                );
                plan.events.push(Note::warning(reason, message));
                resume(&mut status, &mut plan, now);
            }
            plan.status = status;
            return plan;
        }
    };

    if status.phase != Some(RestorePhase::Running) {
        conditions::set(
            &mut status.conditions,
            VALIDATION_PASSED,
            true,
            "ResourceValidationPassed",
            "",
            now,
        );
        // Pause the batch's schedules, then wait for a running batch backup to end.
        if let Some(batch) = observed.batch
            && !batch.spec.paused.unwrap_or(false)
            && status.paused_backups.is_empty()
        {
            plan.pause_batch = true;
            status.paused_backups.push(TypedObjectReference {
                api_group: Some(stowaway_api::CORE_GROUP.into()),
                kind: "BackupBatch".into(),
                namespace: batch.namespace(),
                name: batch.name_any(),
            });
        }
        if let Some(wait) = wait_for_backup(&mut status, observed.backup_sessions, "batch", now) {
            plan.requeue_after = Some(wait);
            plan.status = status;
            return plan;
        }
        status.phase = Some(RestorePhase::Running);
        status.total_components = i32::try_from(members.len()).ok();
        for member in &members {
            status
                .components
                .entry(member.name.clone())
                .or_insert_with(|| ComponentRestoreStatus {
                    phase: Some(RestorePhase::Pending),
                    ..ComponentRestoreStatus::default()
                });
        }
        plan.events.push(Note::normal(
            "RestoreStarted",
            format!(
                "restoring BackupSession {} of BackupBatch {}: {}",
                members
                    .first()
                    .map(|m| m.backup_session.as_str())
                    .unwrap_or("?"),
                source.name,
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    // Running: the batch restore's pre-restore hooks before any member starts.
    let (pre_hooks, _) = hook_lists(session);
    if observed.children.is_empty() {
        match hooks::pre_gate(
            pre_hooks,
            status.hooks.as_ref(),
            "pre-restore",
            "nothing was restored",
        ) {
            Gate::Run(i) => {
                plan.run_hook = Some((Stage::Pre, i));
                plan.status = status;
                return plan;
            }
            Gate::Stop(message) => {
                for component in status.components.values_mut() {
                    if !is_final(component.phase) {
                        component.phase = Some(RestorePhase::Failed);
                        component.error = Some(message.clone());
                    }
                }
                finish(
                    &mut status,
                    session,
                    &mut plan,
                    now,
                    Some(("PreRestoreHookFailed", message)),
                );
                plan.status = status;
                return plan;
            }
            Gate::Go => {}
        }
    }

    // Each member's state from its restore, creating them in order.
    let sequential = source.execution_order == Some(ExecutionOrder::Sequential);
    let mut blocked_by: Option<String> = None;
    for member in &members {
        let child_name = child_name(session, &member.name);
        let child = observed
            .children
            .iter()
            .find(|c| c.name_any() == child_name);
        let entry = status.components.entry(member.name.clone()).or_default();
        if let Some(first) = &blocked_by {
            if !is_final(entry.phase) {
                entry.phase = Some(RestorePhase::Failed);
                entry.error = Some(format!(
                    "not restored: member {first} failed before it (Sequential order)"
                ));
            }
            continue;
        }
        match child {
            None => {
                plan.create_children.push(member.restore(session));
                entry.phase = Some(RestorePhase::Running);
                if sequential {
                    break;
                }
            }
            Some(child) => {
                let (phase, error) = child_outcome(child);
                entry.phase = Some(phase);
                entry.error = error;
                entry.duration = child.status.as_ref().and_then(|s| s.duration.clone());
                if sequential {
                    match phase {
                        RestorePhase::Succeeded => {}
                        RestorePhase::Failed => blocked_by = Some(member.name.clone()),
                        _ => break,
                    }
                }
            }
        }
    }
    if status.components.values().all(|c| is_final(c.phase)) {
        let failed: Vec<String> = status
            .components
            .iter()
            .filter(|(_, c)| c.phase == Some(RestorePhase::Failed))
            .map(|(name, c)| match &c.error {
                Some(e) => format!("{name}: {e}"),
                None => format!("{name} failed"),
            })
            .collect();
        let failure = (!failed.is_empty()).then(|| ("RestoreFailed", failed.join("; ")));
        finish(&mut status, session, &mut plan, now, failure);
    }
    plan.status = status;
    plan
}

/// One member to restore: where from and into what.
#[derive(Clone, Debug, PartialEq)]
struct MemberRestore {
    name: String,
    backup_session: String,
    target: TypedObjectReference,
    snapshot: String,
    repository: String,
    addon: Option<AddonInfo>,
}

impl MemberRestore {
    /// The member's own RestoreSession, owned by the batch restore.
    fn restore(&self, parent: &RestoreSession) -> RestoreSession {
        let mut labels = managed_labels();
        labels.insert(PARENT_LABEL.into(), parent.name_any());
        labels.insert(names::BATCH_MEMBER_LABEL.into(), self.name.clone());
        let addon = self.addon.as_ref().map(restore_addon);
        RestoreSession {
            metadata: ObjectMeta {
                name: Some(child_name(parent, &self.name)),
                namespace: parent.namespace(),
                labels: Some(labels),
                owner_references: parent.controller_owner_ref(&()).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: RestoreSessionSpec {
                target: Some(self.target.clone()),
                data_source: RestoreDataSource {
                    repository: Some(self.repository.clone()),
                    snapshot: Some(self.snapshot.clone()),
                    encryption_secret: parent.spec.data_source.encryption_secret.clone(),
                    ..RestoreDataSource::default()
                },
                addon,
                restore_timeout: parent.spec.restore_timeout.clone(),
                ..RestoreSessionSpec::default()
            },
            status: None,
        }
    }
}

/// Name of a member's restore.
pub fn child_name(parent: &RestoreSession, member: &str) -> String {
    names::object_name(&[&parent.name_any(), member])
}

/// The BackupSession to restore and each member's snapshot of it.
fn resolve(
    observed: &Observed<'_>,
    source: &BatchRestoreSource,
) -> Result<Vec<MemberRestore>, (&'static str, String)> {
    let Some(batch) = observed.batch else {
        return Err((
            "BatchNotFound",
            format!("BackupBatch {} not found", source.name),
        ));
    };
    let succeeded = |s: &&BackupSession| {
        s.status.as_ref().and_then(|s| s.phase) == Some(BackupSessionPhase::Succeeded)
    };
    let run = match source.backup_session.as_deref() {
        None | Some("" | "latest") => observed
            .backup_sessions
            .iter()
            .filter(succeeded)
            .max_by_key(|s| {
                (
                    s.metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
                    s.name_any(),
                )
            })
            .ok_or((
                "SnapshotNotFound",
                format!("BackupBatch {} has no Succeeded BackupSession", source.name),
            ))?,
        Some(name) => {
            let found = observed
                .backup_sessions
                .iter()
                .find(|s| s.name_any() == name)
                .ok_or((
                    "SnapshotNotFound",
                    format!(
                        "BackupSession {name} of BackupBatch {} not found",
                        source.name
                    ),
                ))?;
            if !succeeded(&found) {
                return Err((
                    "SnapshotNotFound",
                    format!(
                        "BackupSession {name} is not Succeeded: it holds no complete backup of every member"
                    ),
                ));
            }
            found
        }
    };
    let run_name = run.name_any();
    let invoker = Invoker::Batch(batch);
    let members = invoker
        .session(&run.spec.session)
        .map(|s| s.members)
        .unwrap_or_default();
    for wanted in &source.members {
        if !members.iter().any(|m| m.name == Some(wanted.as_str())) {
            return Err((
                "MemberNotFound",
                format!(
                    "spec.dataSource.batch.members: {wanted} is not a member of session {} of BackupBatch {}",
                    run.spec.session, source.name
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for member in &members {
        let Some(name) = member.name else { continue };
        if !source.members.is_empty() && !source.members.iter().any(|m| m == name) {
            continue;
        }
        let Some(target) = member.target else {
            return Err((
                "TargetNotFound",
                format!("member {name} has no target in BackupBatch {}", source.name),
            ));
        };
        // The member's first repository with a Succeeded snapshot of this run.
        let snapshot = member
            .repositories
            .iter()
            .find_map(|repo| {
                observed.snapshots.iter().find(|s| {
                    s.spec.backup_session.as_deref() == Some(run_name.as_str())
                        && s.spec.repository == repo.name
                        && s.status.as_ref().and_then(|st| st.phase) == Some(RunPhase::Succeeded)
                })
            })
            .ok_or((
                "SnapshotNotFound",
                format!("BackupSession {run_name} has no Succeeded snapshot of member {name}"),
            ))?;
        let mut target = target.clone();
        if target.namespace.is_none() {
            target.namespace = batch.namespace();
        }
        out.push(MemberRestore {
            name: name.to_owned(),
            backup_session: run_name.clone(),
            target,
            snapshot: snapshot.name_any(),
            repository: snapshot.spec.repository.clone(),
            addon: member.addon.cloned(),
        });
    }
    if source.execution_order == Some(ExecutionOrder::Sequential) && !source.members.is_empty() {
        out.sort_by_key(|m| source.members.iter().position(|w| *w == m.name));
    }
    Ok(out)
}

/// A member restore's phase and error, as the batch restore reports them.
fn child_outcome(child: &RestoreSession) -> (RestorePhase, Option<String>) {
    let Some(status) = &child.status else {
        return (RestorePhase::Running, None);
    };
    match status.phase {
        Some(RestorePhase::Succeeded) => (RestorePhase::Succeeded, None),
        Some(RestorePhase::Failed | RestorePhase::Invalid) => {
            let errors: Vec<String> = status
                .components
                .iter()
                .filter_map(|(n, c)| c.error.as_ref().map(|e| format!("{n}: {e}")))
                .collect();
            let error = if errors.is_empty() {
                status
                    .conditions
                    .iter()
                    .rev()
                    .find(|c| c.status != stowaway_api::common::ConditionStatus::True)
                    .or(status.conditions.last())
                    .and_then(|c| c.message.clone())
                    .unwrap_or_else(|| format!("RestoreSession {} failed", child.name_any()))
            } else {
                errors.join(", ")
            };
            (RestorePhase::Failed, Some(error))
        }
        _ => (RestorePhase::Running, None),
    }
}

fn is_final(phase: Option<RestorePhase>) -> bool {
    matches!(phase, Some(RestorePhase::Succeeded | RestorePhase::Failed))
}

/// The outcome is known: the batch restore's post-restore hooks, then the final phase and
/// the batch resumed.
fn finish(
    status: &mut RestoreSessionStatus,
    session: &RestoreSession,
    plan: &mut Plan,
    now: Timestamp,
    failure: Option<(&'static str, String)>,
) {
    match post_hooks_then_outcome(status, session, now, &mut plan.events, failure) {
        Some(hook) => {
            status.phase = Some(RestorePhase::Running);
            plan.run_hook = Some(hook);
        }
        None => resume(status, plan, now),
    }
}

/// Resumes the batch if this restore paused it (once).
fn resume(status: &mut RestoreSessionStatus, plan: &mut Plan, now: Timestamp) {
    if status.paused_backups.is_empty() || conditions::is_true(&status.conditions, BACKUPS_RESUMED)
    {
        return;
    }
    plan.resume_batch = true;
    conditions::set(
        &mut status.conditions,
        BACKUPS_RESUMED,
        true,
        "BackupsResumed",
        format!(
            "resumed {}",
            status
                .paused_backups
                .iter()
                .map(|p| format!("{} {}", p.kind, p.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        now,
    );
}

#[cfg(test)]
mod tests;
