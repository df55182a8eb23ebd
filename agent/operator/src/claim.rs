//! How sidecars share the work of a target (pure): which sessions a sidecar takes, and how
//! exactly one replica takes each.
//!
//! The operator hands a session's work for a target to the sidecars of that target once the
//! pre-hooks ran: a BackupSession's `status.snapshots[].executor` says `Sidecar` for the
//! target's snapshots (a BackupBatch may give some members to sidecars and others to Jobs),
//! and a RestoreSession's `RestoreExecutorEnsured` condition has reason `SidecarExecutor`.
//! Every sidecar of the target sees it; each tries to write its pod name into the target's
//! claim annotation ([`claim_annotation`]) with a replace that carries the session's
//! `resourceVersion`. The API server accepts one such write and answers the others with a
//! conflict, so exactly one replica runs the work and the others stay idle.
//!
//! A claimed session whose claimant is gone (its pod no longer Running) or restarted (the
//! claimant is this pod, but this process did not start the work) was interrupted: the
//! sidecar marks what was unfinished Failed with a reason saying so, and the operator's usual
//! outcome and retry rules follow. Nothing half done is ever recorded: a snapshot is committed
//! to the repository only once all its data is there.

use std::collections::BTreeMap;

use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::{Condition, ConditionStatus, RunPhase, TypedObjectReference};
use stowaway_api::restore_session::RestorePhase;
use stowaway_api::{BackupSession, RestoreSession};

/// Prefix of the claim annotations: `claim.stowaway.dev/<kind>.<name>` names the pod whose
/// sidecar runs the session's work for that target.
pub const CLAIM_PREFIX: &str = "claim.stowaway.dev/";
/// Reason of the executor condition when the target's sidecar has the work.
pub const SIDECAR_EXECUTOR: &str = "SidecarExecutor";

/// The claim annotation of a target (the value of its sidecar label as the name part).
pub fn claim_annotation(kind: &str, name: &str) -> String {
    format!("{CLAIM_PREFIX}{}", crate::names::sidecar_target(kind, name))
}

/// Who a sidecar is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its pod's name.
    pub pod: String,
    /// Its target.
    pub target_kind: String,
    /// Its target's name.
    pub target_name: String,
}

impl Identity {
    fn is_target(&self, target: &TypedObjectReference) -> bool {
        target.kind.eq_ignore_ascii_case(&self.target_kind) && target.name == self.target_name
    }
}

/// What a sidecar does about one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not for this sidecar, or not now.
    Ignore,
    /// Try to claim it (a replace with the session's resourceVersion).
    Take,
    /// Claimed by this pod and being run by this process: carry on.
    Running,
    /// Claimed but interrupted: mark its unfinished work Failed with this message.
    Interrupted(String),
}

/// The state of a session as the claim rules see it (the same for backups and restores).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView<'a> {
    /// Whether the session runs and its work is not finished.
    pub open: bool,
    /// Whether the operator handed it to the sidecars.
    pub for_sidecar: bool,
    /// Whether it is for this sidecar's target.
    pub for_target: bool,
    /// The claimant's pod, if claimed.
    pub claimed_by: Option<&'a str>,
}

/// Decides what `me` does about a session. `running_here` says whether this process runs it
/// now; `pod_running` whether a pod of the namespace is Running.
pub fn decide(
    view: &SessionView<'_>,
    me: &Identity,
    running_here: bool,
    pod_running: &dyn Fn(&str) -> bool,
) -> Claim {
    if !view.for_target || !view.for_sidecar {
        return Claim::Ignore;
    }
    match view.claimed_by {
        None if view.open => Claim::Take,
        None => Claim::Ignore,
        Some(_) if !view.open => Claim::Ignore,
        Some(pod) if pod == me.pod => {
            if running_here {
                Claim::Running
            } else {
                Claim::Interrupted(format!(
                    "interrupted: the sidecar in pod {pod} restarted while running it"
                ))
            }
        }
        Some(pod) if pod_running(pod) => Claim::Ignore,
        Some(pod) => Claim::Interrupted(format!(
            "interrupted: pod {pod}, whose sidecar was running it, is gone or no longer running"
        )),
    }
}

fn handed_to_sidecar(conditions: &[Condition], condition: &str) -> bool {
    conditions.iter().any(|c| {
        c.type_ == condition
            && c.status == ConditionStatus::True
            && c.reason.as_deref() == Some(SIDECAR_EXECUTOR)
    })
}

fn claimant<'a>(
    annotations: Option<&'a BTreeMap<String, String>>,
    me: &Identity,
) -> Option<&'a str> {
    annotations
        .and_then(|a| a.get(&claim_annotation(&me.target_kind, &me.target_name)))
        .map(String::as_str)
        .filter(|p| !p.is_empty())
}

/// The claim view of a BackupSession for `me`: its snapshots of my target; open while the
/// session is Running and one of them is not finished; for the sidecar when the operator
/// gave them to the sidecar (after the pre-hooks).
pub fn backup_view<'a>(session: &'a BackupSession, me: &Identity) -> SessionView<'a> {
    let status = session.status.as_ref();
    let mine: Vec<_> = status
        .map(|s| s.snapshots.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| s.app_ref.as_ref().is_some_and(|t| me.is_target(t)))
        .collect();
    let unfinished = mine
        .iter()
        .any(|s| !matches!(s.phase, Some(RunPhase::Succeeded | RunPhase::Failed)));
    let executor_ensured = status.is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == crate::backup_session::EXECUTOR_ENSURED && c.status == ConditionStatus::True
        })
    });
    SessionView {
        open: status.and_then(|s| s.phase) == Some(BackupSessionPhase::Running) && unfinished,
        for_sidecar: executor_ensured
            && mine
                .iter()
                .all(|s| s.executor.as_deref() == Some("Sidecar")),
        for_target: !mine.is_empty(),
        claimed_by: claimant(session.metadata.annotations.as_ref(), me),
    }
}

/// The claim view of a RestoreSession for `me`: open while Running with a component not
/// finished; for the target named in its spec.
pub fn restore_view<'a>(session: &'a RestoreSession, me: &Identity) -> SessionView<'a> {
    let status = session.status.as_ref();
    let unfinished = status.is_some_and(|s| {
        s.components.values().any(|c| {
            !matches!(
                c.phase,
                Some(RestorePhase::Succeeded | RestorePhase::Failed)
            )
        })
    });
    SessionView {
        open: status.and_then(|s| s.phase) == Some(RestorePhase::Running) && unfinished,
        for_sidecar: status.is_some_and(|s| {
            handed_to_sidecar(&s.conditions, crate::restore_session::EXECUTOR_ENSURED)
        }),
        for_target: session
            .spec
            .target
            .as_ref()
            .is_some_and(|t| me.is_target(t)),
        claimed_by: claimant(session.metadata.annotations.as_ref(), me),
    }
}

#[cfg(test)]
mod tests;
