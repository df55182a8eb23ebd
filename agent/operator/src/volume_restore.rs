//! The safe path of a volume restore into a workload (pure decisions).
//!
//! A RestoreSession whose target is a Deployment, StatefulSet or DaemonSet and whose addon
//! restores volumes (`volume`, KubeStash's `workload-addon` and `pvc-addon`) never writes
//! under a running application unless asked to. Its annotation [`RESTORE_MODE_ANNOTATION`]
//! chooses how:
//!
//! - `ScaleDown` (the default): after the preRestore hooks the operator scales the workload
//!   to 0, recording the replicas it had in the workload's annotations
//!   ([`ORIGINAL_REPLICAS_ANNOTATION`], [`SCALED_DOWN_BY_ANNOTATION`], written in the same
//!   patch as `spec.replicas: 0`) and in the RestoreSession's `status.workload`, so that an
//!   operator restarted at any point still scales it back. It waits until the workload's
//!   pods are gone (until the restore's deadline, else [`DEFAULT_POD_WAIT`] after the scale
//!   down), runs the restore Job with the workload's PersistentVolumeClaims mounted writable
//!   at `/stowaway/volumes/<volume-name>`, then scales the workload back to the recorded
//!   count whether the restore succeeded or failed (once the Job's pod has ended), waits for
//!   its pods to be ready when postRestore hooks follow (at most [`READY_WAIT`]), and runs
//!   them. A DaemonSet cannot be scaled: such a restore is refused unless `InPlace`.
//! - `InPlace`: no scaling; the Job mounts the claims while the workload runs (for volumes
//!   shared read-write by several pods, or an application quiesced by preRestore hooks). The
//!   application may read half-restored files or overwrite restored ones.
//!
//! A StatefulSet's claims are those of ordinal 0 (`<template>-<statefulset>-0`): the other
//! ordinals' volumes are not restored.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodSecurityContext, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::ResourceExt;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::restore_session::{RestoreMode, RestoreSessionStatus, WorkloadRestoreStatus};
use stowaway_api::{RestoreSession, Snapshot};

use crate::conditions;
use crate::duration::{elapsed, format_duration, until};
use crate::events::Note;
use crate::names;

/// Annotation on a RestoreSession: `ScaleDown` (default) or `InPlace`.
pub const RESTORE_MODE_ANNOTATION: &str = "stowaway.dev/restore-mode";
/// Annotation on a workload scaled down for a restore: its replicas before.
pub const ORIGINAL_REPLICAS_ANNOTATION: &str = "stowaway.dev/restore-original-replicas";
/// Annotation on a workload scaled down for a restore: the RestoreSession that did it.
pub const SCALED_DOWN_BY_ANNOTATION: &str = "stowaway.dev/scaled-down-by";
/// How long the restore waits for the pods of a scaled-down workload to end when the
/// RestoreSession sets no `restoreTimeout`.
pub const DEFAULT_POD_WAIT: Duration = Duration::from_secs(600);
/// How long, at most, the postRestore hooks wait for the scaled-back workload to be ready.
pub const READY_WAIT: Duration = Duration::from_secs(600);
/// How often the operator looks again while it waits.
pub const POLL: Duration = Duration::from_secs(5);

/// Condition: the workload cannot write to its volumes (its pods are gone), or the restore
/// runs in place.
pub const WORKLOAD_QUIESCED: &str = "WorkloadQuiesced";
/// Condition: the workload was scaled down for the restore.
pub const WORKLOAD_SCALED_DOWN: &str = "WorkloadScaledDown";
/// Condition: the workload was scaled back after the restore.
pub const WORKLOAD_SCALED_BACK: &str = "WorkloadScaledBack";

/// The kinds of workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet (cannot be scaled).
    DaemonSet,
}

impl WorkloadKind {
    /// The workload kind a target names (`apps` group), if it is one.
    pub fn of(target: &TypedObjectReference) -> Option<WorkloadKind> {
        if target.api_group.as_deref() != Some("apps") {
            return None;
        }
        match target.kind.as_str() {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    /// Its kind name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// Whether `session` is a volume restore into a workload: its target is a Deployment,
/// StatefulSet or DaemonSet and its addon (the session's, else the one that wrote the
/// snapshot it restores) is the volume addon.
pub fn applies(session: &RestoreSession, snapshots: &[Snapshot]) -> bool {
    if session.spec.data_source.batch.is_some()
        || session
            .spec
            .target
            .as_ref()
            .and_then(WorkloadKind::of)
            .is_none()
    {
        return false;
    }
    let addon = match &session.spec.addon {
        Some(addon) => Some(addon.name.clone()),
        None => {
            let recorded = session
                .status
                .iter()
                .flat_map(|s| s.dependencies.iter())
                .find(|d| d.reference.kind == "Snapshot")
                .map(|d| d.reference.name.clone());
            let snapshot = match recorded {
                Some(name) => snapshots.iter().find(|s| s.name_any() == name),
                None => crate::restore_session::resolve_snapshot(session, snapshots).ok(),
            };
            snapshot
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.addon.as_ref())
                .map(|a| a.name.clone())
        }
    };
    addon.is_some_and(|a| names::builtin_addon(&a) == "volume")
}

/// The mode [`RESTORE_MODE_ANNOTATION`] asks for (default `ScaleDown`); an error names a
/// value that is neither.
pub fn mode(session: &RestoreSession) -> Result<RestoreMode, String> {
    match session
        .annotations()
        .get(RESTORE_MODE_ANNOTATION)
        .map(|v| v.trim())
    {
        None | Some("") => Ok(RestoreMode::ScaleDown),
        Some(v) if v.eq_ignore_ascii_case("ScaleDown") => Ok(RestoreMode::ScaleDown),
        Some(v) if v.eq_ignore_ascii_case("InPlace") => Ok(RestoreMode::InPlace),
        Some(other) => Err(format!(
            "annotation {RESTORE_MODE_ANNOTATION}: {other:?} is neither ScaleDown nor InPlace"
        )),
    }
}

/// A PersistentVolumeClaim behind one of the workload's pod volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeClaim {
    /// The pod volume's name (the snapshot component's name).
    pub volume: String,
    /// The claim.
    pub claim: String,
}

/// A restore that scaled the workload down, as its annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaledDownBy {
    /// The RestoreSession.
    pub session: String,
    /// The replicas recorded before (`None` when the annotation is not a number).
    pub original: Option<i32>,
}

/// What the operator sees of the workload of a volume restore.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// `spec.replicas` (a Deployment or StatefulSet without one has 1; `None` for a
    /// DaemonSet).
    pub replicas: Option<i32>,
    /// Pods ready (`status.readyReplicas`, a DaemonSet's `numberReady`).
    pub ready: i32,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its pod template.
    pub template: PodTemplateSpec,
    /// Names of a StatefulSet's volume claim templates.
    pub claim_templates: Vec<String>,
    /// Its pod selector.
    pub selector: Option<LabelSelector>,
    /// Its pods that still exist, terminating ones included (filled by the controller).
    pub pods: Vec<String>,
    /// Whether the RestoreSession of [`SCALED_DOWN_BY_ANNOTATION`], when it is another one,
    /// still exists and has not finished (filled by the controller).
    pub other_restore_active: bool,
}

impl Workload {
    fn new(kind: WorkloadKind, meta: &kube::api::ObjectMeta) -> Workload {
        Workload {
            kind,
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone(),
            replicas: None,
            ready: 0,
            annotations: meta.annotations.clone().unwrap_or_default(),
            template: PodTemplateSpec::default(),
            claim_templates: Vec::new(),
            selector: None,
            pods: Vec::new(),
            other_restore_active: false,
        }
    }

    /// The view of a Deployment.
    pub fn deployment(d: &Deployment) -> Workload {
        let spec = d.spec.clone().unwrap_or_default();
        Workload {
            replicas: Some(spec.replicas.unwrap_or(1)),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            template: spec.template,
            selector: Some(spec.selector),
            ..Workload::new(WorkloadKind::Deployment, &d.metadata)
        }
    }

    /// The view of a StatefulSet.
    pub fn stateful_set(s: &StatefulSet) -> Workload {
        let spec = s.spec.clone().unwrap_or_default();
        Workload {
            replicas: Some(spec.replicas.unwrap_or(1)),
            ready: s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            template: spec.template,
            selector: Some(spec.selector),
            claim_templates: spec
                .volume_claim_templates
                .iter()
                .flatten()
                .filter_map(|t| t.metadata.name.clone())
                .collect(),
            ..Workload::new(WorkloadKind::StatefulSet, &s.metadata)
        }
    }

    /// The view of a DaemonSet.
    pub fn daemon_set(d: &DaemonSet) -> Workload {
        let spec = d.spec.clone().unwrap_or_default();
        Workload {
            ready: d.status.as_ref().map_or(0, |s| s.number_ready),
            template: spec.template,
            selector: Some(spec.selector),
            ..Workload::new(WorkloadKind::DaemonSet, &d.metadata)
        }
    }

    /// `Kind name`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.name)
    }

    /// The restore that scaled it down, from its annotations.
    pub fn scaled_down_by(&self) -> Option<ScaledDownBy> {
        let session = self.annotations.get(SCALED_DOWN_BY_ANNOTATION)?;
        Some(ScaledDownBy {
            session: session.clone(),
            original: self
                .annotations
                .get(ORIGINAL_REPLICAS_ANNOTATION)
                .and_then(|v| v.trim().parse().ok()),
        })
    }

    /// The claims behind its pod volumes: template volumes of a PersistentVolumeClaim, and a
    /// StatefulSet's claim templates as ordinal 0's claims (`<template>-<name>-0`).
    pub fn claims(&self) -> Vec<VolumeClaim> {
        let mut claims: Vec<VolumeClaim> = self
            .template
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| {
                v.persistent_volume_claim.as_ref().map(|c| VolumeClaim {
                    volume: v.name.clone(),
                    claim: c.claim_name.clone(),
                })
            })
            .collect();
        for template in &self.claim_templates {
            if !claims.iter().any(|c| &c.volume == template) {
                claims.push(VolumeClaim {
                    volume: template.clone(),
                    claim: format!("{template}-{}-0", self.name),
                });
            }
        }
        claims
    }

    /// Names of all its pod volumes (claim templates included).
    pub fn volume_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .template
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .map(|v| v.name.clone())
            .collect();
        for template in &self.claim_templates {
            if !names.contains(template) {
                names.push(template.clone());
            }
        }
        names
    }

    /// The label selector of its pods (`matchLabels` and `matchExpressions`), else its
    /// template's labels; `None` when neither selects anything.
    pub fn pod_selector(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(selector) = &self.selector {
            for (k, v) in selector.match_labels.iter().flatten() {
                parts.push(format!("{k}={v}"));
            }
            for e in selector.match_expressions.iter().flatten() {
                let values = e.values.clone().unwrap_or_default().join(",");
                match e.operator.as_str() {
                    "In" => parts.push(format!("{} in ({values})", e.key)),
                    "NotIn" => parts.push(format!("{} notin ({values})", e.key)),
                    "Exists" => parts.push(e.key.clone()),
                    "DoesNotExist" => parts.push(format!("!{}", e.key)),
                    _ => {}
                }
            }
        }
        if parts.is_empty() {
            let labels = self
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.as_ref());
            for (k, v) in labels.into_iter().flatten() {
                parts.push(format!("{k}={v}"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// The identity the restore Job runs as: the pod template's security context (its
    /// `fsGroup` included, so the volumes keep the group they have), with the user and group
    /// of the first container that mounts a claim and sets them. Never root: without a user
    /// (or with root's) the Job runs as 65534, and it adds no `fsGroup` of its own, which
    /// would change the group of the application's files.
    pub fn job_security(&self) -> PodSecurityContext {
        let spec = self.template.spec.as_ref();
        let mut security = spec
            .and_then(|s| s.security_context.clone())
            .unwrap_or_default();
        let claims: Vec<String> = self.claims().into_iter().map(|c| c.volume).collect();
        let container = spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .find_map(|c| {
                let mounts = c
                    .volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| claims.contains(&m.name));
                let sc = c.security_context.as_ref()?;
                (mounts && (sc.run_as_user.is_some() || sc.run_as_group.is_some()))
                    .then_some((sc.run_as_user, sc.run_as_group))
            });
        if let Some((user, group)) = container {
            security.run_as_user = user.or(security.run_as_user);
            security.run_as_group = group.or(security.run_as_group);
        }
        if security.run_as_user.unwrap_or(0) == 0 {
            security.run_as_user = Some(65534);
        }
        if security.run_as_group == Some(0) || security.run_as_group.is_none() {
            security.run_as_group = Some(65534);
        }
        security.run_as_non_root = Some(true);
        security
    }
}

/// What [`validate`] found wrong: a reason and a message for the ValidationPassed condition.
pub type Refusal = (&'static str, String);

/// Checks a volume restore before anything happens: the mode, the workload, and that every
/// component to restore is a volume of the workload backed by a claim. Returns the mode.
pub fn validate(
    session: &RestoreSession,
    workload: Option<&Workload>,
    components: &[String],
) -> Result<RestoreMode, Refusal> {
    let mode = mode(session).map_err(|m| ("InvalidRestoreMode", m))?;
    let Some(workload) = workload else {
        let target = session
            .spec
            .target
            .as_ref()
            .map_or_else(|| "?".to_owned(), |t| format!("{} {}", t.kind, t.name));
        return Err(("TargetNotFound", format!("target {target} not found")));
    };
    let namespace = session.namespace();
    if workload.namespace.is_some() && workload.namespace != namespace {
        return Err((
            "TargetInOtherNamespace",
            format!(
                "{} is in namespace {}: the restore Job mounts its PersistentVolumeClaims, so \
                 the RestoreSession must be in the same namespace ({})",
                workload.label(),
                workload.namespace.as_deref().unwrap_or("?"),
                namespace.as_deref().unwrap_or("?")
            ),
        ));
    }
    if mode == RestoreMode::ScaleDown && workload.kind == WorkloadKind::DaemonSet {
        return Err((
            "WorkloadNotScalable",
            format!(
                "{} cannot be scaled down for the restore; annotate the RestoreSession \
                 {RESTORE_MODE_ANNOTATION}: InPlace to restore while it runs (quiesce the \
                 application with preRestore hooks)",
                workload.label()
            ),
        ));
    }
    let claims = workload.claims();
    let volumes = workload.volume_names();
    let mut problems = Vec::new();
    for component in components {
        if claims.iter().any(|c| &c.volume == component) {
            continue;
        }
        if volumes.contains(component) {
            problems.push(format!(
                "volume {component} of {} is not a PersistentVolumeClaim: a restore Job cannot \
                 write into it",
                workload.label()
            ));
        } else {
            problems.push(format!(
                "{} has no volume {component} (its claims: {})",
                workload.label(),
                if claims.is_empty() {
                    "none".to_owned()
                } else {
                    claims
                        .iter()
                        .map(|c| c.volume.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    if !problems.is_empty() {
        return Err(("VolumeNotRestorable", problems.join("; ")));
    }
    Ok(mode)
}

/// The claims of the components to restore, in the order of `components`.
pub fn claims_for(workload: &Workload, components: &[String]) -> Vec<VolumeClaim> {
    let claims = workload.claims();
    components
        .iter()
        .filter_map(|c| claims.iter().find(|claim| &claim.volume == c).cloned())
        .collect()
}

/// Whether another restore holds the workload scaled down: that restore's name.
pub fn held_by_other<'a>(workload: &'a Workload, session: &str) -> Option<&'a str> {
    let by = workload.annotations.get(SCALED_DOWN_BY_ANNOTATION)?;
    (by != session && workload.other_restore_active).then_some(by.as_str())
}

/// A change of the workload's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Scale to 0, recording `original` and the restore in the workload's annotations.
    Down {
        /// The replicas it had.
        original: i32,
    },
    /// Scale back to `replicas` and remove the annotations.
    Back {
        /// The replicas it had before the restore.
        replicas: i32,
    },
}

impl Scale {
    /// The merge patch of the workload (one patch: the record and the replicas change
    /// together or not at all).
    pub fn patch(&self, session: &str) -> serde_json::Value {
        match self {
            Scale::Down { original } => serde_json::json!({
                "metadata": {"annotations": {
                    ORIGINAL_REPLICAS_ANNOTATION: original.to_string(),
                    SCALED_DOWN_BY_ANNOTATION: session,
                }},
                "spec": {"replicas": 0},
            }),
            Scale::Back { replicas } => serde_json::json!({
                "metadata": {"annotations": {
                    ORIGINAL_REPLICAS_ANNOTATION: null,
                    SCALED_DOWN_BY_ANNOTATION: null,
                }},
                "spec": {"replicas": replicas},
            }),
        }
    }
}

/// What to do before the restore Job may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeforeJob {
    /// The workload cannot write: the Job may run.
    Go,
    /// Change the workload (then look again after [`POLL`]).
    Scale(Scale),
    /// Look again after this long.
    Wait(Duration),
    /// Stop the restore: nothing was restored.
    Fail {
        /// Condition reason.
        reason: &'static str,
        /// Why.
        message: String,
    },
}

/// The step before the Job of a volume restore (the restore is Running, its preRestore
/// hooks have run): scale the workload down and wait for its pods to end, per the mode
/// recorded in `status.workload`. `deadline` is the restore's.
pub fn before_job(
    status: &mut RestoreSessionStatus,
    workload: Option<&Workload>,
    session: &str,
    deadline: Option<Timestamp>,
    now: Timestamp,
    events: &mut Vec<Note>,
) -> BeforeJob {
    let record = status.workload.get_or_insert_with(Default::default);
    if record.mode == Some(RestoreMode::InPlace) {
        return BeforeJob::Go;
    }
    if record.pods_gone_at.is_some() {
        return BeforeJob::Go;
    }
    let Some(workload) = workload else {
        return BeforeJob::Fail {
            reason: "TargetNotFound",
            message: "the workload was deleted during the restore: nothing was restored".into(),
        };
    };
    if workload.kind == WorkloadKind::DaemonSet {
        // Refused at validation; a restore recorded without its mode ends here.
        return BeforeJob::Fail {
            reason: "WorkloadNotScalable",
            message: format!(
                "{} cannot be scaled down: nothing was restored",
                workload.label()
            ),
        };
    }
    let current = workload.replicas.unwrap_or(1);
    if let Some(original) = record.original_replicas {
        if current != 0 {
            // Something scaled it up again (an autoscaler, a deployment tool): down again.
            events.push(Note::warning(
                "WorkloadScaledUp",
                format!(
                    "{} was scaled to {current} replicas during the restore; scaling it to 0 \
                     again",
                    workload.label()
                ),
            ));
            return BeforeJob::Scale(Scale::Down { original });
        }
    } else {
        // Not scaled down yet, or the operator stopped between the workload's patch and
        // this status: then the workload's annotations hold the count. Another restore's
        // annotations (it has ended, or it would have kept this one Pending) hold the count
        // it left the workload without.
        let by = workload.scaled_down_by();
        let ours = by.as_ref().is_some_and(|b| b.session == session);
        let original = match &by {
            Some(ScaledDownBy {
                original: Some(n), ..
            }) => *n,
            _ => current,
        };
        record.original_replicas = Some(original);
        record.scaled_down_at = Some(Time(now));
        let message = if original == 0 {
            format!("{} has 0 replicas: nothing to scale down", workload.label())
        } else {
            format!(
                "{} scaled from {original} to 0 replicas for the restore",
                workload.label()
            )
        };
        conditions::set(
            &mut status.conditions,
            WORKLOAD_SCALED_DOWN,
            true,
            "ScaledDown",
            &message,
            now,
        );
        events.push(Note::normal("WorkloadScaledDown", message));
        if current != 0 || (by.is_some() && !ours) {
            return BeforeJob::Scale(Scale::Down { original });
        }
    }
    if workload.pods.is_empty() {
        record.pods_gone_at = Some(Time(now));
        conditions::set(
            &mut status.conditions,
            WORKLOAD_QUIESCED,
            true,
            "PodsGone",
            format!("the pods of {} are gone", workload.label()),
            now,
        );
        return BeforeJob::Go;
    }
    let since = record.scaled_down_at.as_ref().map_or(now, |t| t.0);
    let limit = deadline.unwrap_or_else(|| {
        since
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(DEFAULT_POD_WAIT.as_secs()).unwrap_or(i64::MAX),
            ))
            .unwrap_or(since)
    });
    let pods = workload.pods.join(", ");
    if now >= limit {
        let message = format!(
            "{} pod(s) of {} still exist {} after it was scaled to 0 ({pods}): nothing was \
             restored",
            workload.pods.len(),
            workload.label(),
            format_duration(elapsed(since, now))
        );
        conditions::set(
            &mut status.conditions,
            WORKLOAD_QUIESCED,
            false,
            "PodsRemain",
            &message,
            now,
        );
        return BeforeJob::Fail {
            reason: "WorkloadPodsRemain",
            message,
        };
    }
    conditions::set(
        &mut status.conditions,
        WORKLOAD_QUIESCED,
        false,
        "WaitingForPods",
        format!(
            "waiting for {} pod(s) of {} to end: {pods}",
            workload.pods.len(),
            workload.label()
        ),
        now,
    );
    BeforeJob::Wait(until(now, limit).min(POLL))
}

/// What to do with the workload once the restore's outcome is known, before the
/// postRestore hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfterRestore {
    /// Scale the workload back.
    pub scale: Option<Scale>,
    /// Look again after this long before going on (the Job's pod still runs, or the
    /// workload is not ready for the hooks yet); `None`: go on.
    pub wait: Option<Duration>,
}

/// After the outcome of a volume restore: scale the workload back to its recorded replicas
/// (once the Job's pod has ended), then, when postRestore hooks are to run (`hooks_ahead`),
/// wait for its pods to be ready (at most [`READY_WAIT`]).
pub fn after_restore(
    status: &mut RestoreSessionStatus,
    workload: Option<&Workload>,
    session: &str,
    job_running: bool,
    hooks_ahead: bool,
    now: Timestamp,
    events: &mut Vec<Note>,
) -> AfterRestore {
    let Some(record) = status.workload.as_mut() else {
        return AfterRestore::default();
    };
    let Some(original) = record.original_replicas else {
        return AfterRestore::default();
    };
    let label = workload.map_or_else(|| "the workload".to_owned(), Workload::label);
    let mut after = AfterRestore::default();
    match &record.scaled_back_at {
        None => {
            if job_running {
                conditions::set(
                    &mut status.conditions,
                    WORKLOAD_SCALED_BACK,
                    false,
                    "WaitingForRestoreJob",
                    format!("{label} is scaled back once the restore Job's pod has ended"),
                    now,
                );
                after.wait = Some(POLL);
                return after;
            }
            record.scaled_back_at = Some(Time(now));
            let message = match workload {
                None => format!("the workload was deleted; it had {original} replicas"),
                Some(w) => {
                    // Without this restore's annotations the workload was scaled back
                    // already (the operator stopped before recording it), or never scaled
                    // down (it had 0 replicas).
                    let ours = w.scaled_down_by().is_some_and(|b| b.session == session);
                    if ours || (w.replicas == Some(0) && original != 0) {
                        after.scale = Some(Scale::Back { replicas: original });
                    }
                    if original == 0 {
                        format!("{label} had 0 replicas: nothing to scale back")
                    } else {
                        format!("{label} scaled back to {original} replicas")
                    }
                }
            };
            conditions::set(
                &mut status.conditions,
                WORKLOAD_SCALED_BACK,
                true,
                "ScaledBack",
                &message,
                now,
            );
            events.push(Note::normal("WorkloadScaledBack", message));
            if hooks_ahead && original > 0 && workload.is_some() {
                after.wait = Some(POLL);
            }
        }
        Some(back) => {
            let Some(w) = workload else {
                return after;
            };
            let waited = elapsed(back.0, now);
            if hooks_ahead && w.ready < original {
                if waited < READY_WAIT {
                    after.wait = Some(POLL);
                } else {
                    events.push(Note::warning(
                        "WorkloadNotReady",
                        format!(
                            "{label} has {} of {original} replicas ready {} after it was scaled \
                             back; running the postRestore hooks anyway",
                            w.ready,
                            format_duration(waited)
                        ),
                    ));
                }
            }
        }
    }
    after
}

/// Records the mode of a volume restore when it starts.
pub fn start(status: &mut RestoreSessionStatus, mode: RestoreMode, now: Timestamp) {
    let record = status
        .workload
        .get_or_insert_with(WorkloadRestoreStatus::default);
    record.mode = Some(mode);
    if mode == RestoreMode::InPlace {
        conditions::set(
            &mut status.conditions,
            WORKLOAD_QUIESCED,
            true,
            "InPlace",
            format!(
                "{RESTORE_MODE_ANNOTATION}: InPlace: the volumes are restored while the \
                 workload runs"
            ),
            now,
        );
    }
}

#[cfg(test)]
mod tests;
