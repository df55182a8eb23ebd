//! Which hook of a session runs next, and recording a hook's outcome (pure).
//!
//! Pre-hooks run in order before any data is read; the first failure ends the session without
//! a backup. Post-hooks run after the outcome is known, each if its `executionPolicy` matches
//! (`Always` by default, `OnSuccess`, `OnFailure`); all that match run even if one fails, and
//! a failed post-hook fails the session.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use stowaway_api::common::{HookExecutionPolicy, HookExecutionStatus, HookInfo, HookStatus};
use stowaway_api::hook_template::PodHookExecutionStrategy;

use crate::conditions;

/// Before or after the backup or restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before.
    Pre,
    /// After.
    Post,
}

/// Phase of a hook that succeeded.
pub const SUCCEEDED: &str = "Succeeded";
/// Phase of a hook that failed.
pub const FAILED: &str = "Failed";
/// Phase of a post-hook whose execution policy did not match the outcome.
pub const SKIPPED: &str = "Skipped";

/// What to do about the hooks of a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Run the hook at this index of the stage's list.
    Run(usize),
    /// Every hook that should run has run; the names of those that failed.
    Done {
        /// Failed hooks.
        failed: Vec<String>,
    },
}

fn phase<'a>(list: &'a [HookExecutionStatus], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|h| h.name == name)
        .and_then(|h| h.phase.as_deref())
}

/// The pre-hooks' progress: the first one not run yet, or done (stopping at a failure).
pub fn pre(hooks: &[HookInfo], status: Option<&HookStatus>) -> Progress {
    let done = status.map(|s| s.pre_hooks.as_slice()).unwrap_or_default();
    for (i, hook) in hooks.iter().enumerate() {
        match phase(done, &hook.name) {
            Some(SUCCEEDED) => {}
            Some(FAILED) => {
                return Progress::Done {
                    failed: vec![hook.name.clone()],
                };
            }
            _ => return Progress::Run(i),
        }
    }
    Progress::Done { failed: Vec::new() }
}

/// What the pre-hooks allow now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Run the hook at this index.
    Run(usize),
    /// A pre-hook failed: stop, with this message.
    Stop(String),
    /// Every pre-hook succeeded: go on.
    Go,
}

/// [`pre`] as a gate: `what` names the hooks (`pre-backup`), `consequence` what a failure
/// means (`no data was backed up`).
pub fn pre_gate(
    hooks: &[HookInfo],
    status: Option<&HookStatus>,
    what: &str,
    consequence: &str,
) -> Gate {
    match pre(hooks, status) {
        Progress::Run(i) => Gate::Run(i),
        Progress::Done { failed } if !failed.is_empty() => Gate::Stop(format!(
            "{what} hook {} failed: {consequence}",
            failed.join(", ")
        )),
        Progress::Done { .. } => Gate::Go,
    }
}

/// Whether a post-hook runs after this outcome.
pub fn applies(hook: &HookInfo, succeeded: bool) -> bool {
    match hook.execution_policy.unwrap_or_default() {
        HookExecutionPolicy::Always => true,
        HookExecutionPolicy::OnSuccess => succeeded,
        HookExecutionPolicy::OnFailure => !succeeded,
    }
}

/// The post-hooks' progress after an outcome: the next matching one not run yet, or done.
pub fn post(hooks: &[HookInfo], status: Option<&HookStatus>, succeeded: bool) -> Progress {
    let done = status.map(|s| s.post_hooks.as_slice()).unwrap_or_default();
    let mut failed = Vec::new();
    for (i, hook) in hooks.iter().enumerate() {
        if !applies(hook, succeeded) {
            continue;
        }
        match phase(done, &hook.name) {
            Some(SUCCEEDED) => {}
            Some(FAILED) => failed.push(hook.name.clone()),
            _ => return Progress::Run(i),
        }
    }
    Progress::Done { failed }
}

/// Post-hooks whose policy does not match the outcome, marked Skipped in the status.
pub fn mark_skipped(hooks: &[HookInfo], status: &mut HookStatus, succeeded: bool) {
    for hook in hooks.iter().filter(|h| !applies(h, succeeded)) {
        if phase(&status.post_hooks, &hook.name).is_none() {
            status.post_hooks.push(HookExecutionStatus {
                name: hook.name.clone(),
                phase: Some(SKIPPED.to_owned()),
            });
        }
    }
}

/// The pods a `Pod` hook executor runs in: the Running ones, those with a matching owner
/// reference when `owner` is given (its `kind`, `name` and `apiVersion`, each when present),
/// by name; the first alone for `ExecuteOnOne`.
pub fn select_pods<'a>(
    pods: &'a [Pod],
    owner: Option<&serde_json::Value>,
    strategy: PodHookExecutionStrategy,
) -> Vec<&'a Pod> {
    let field = |key: &str| owner.and_then(|o| o.get(key)).and_then(|v| v.as_str());
    let (kind, name, api_version) = (field("kind"), field("name"), field("apiVersion"));
    let mut chosen: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        })
        .filter(|p| {
            owner.is_none()
                || p.owner_references().iter().any(|o| {
                    kind.is_none_or(|k| o.kind == k)
                        && name.is_none_or(|n| o.name == n)
                        && api_version.is_none_or(|v| o.api_version == v)
                })
        })
        .collect();
    chosen.sort_by_key(|p| p.name_any());
    if strategy == PodHookExecutionStrategy::ExecuteOnOne {
        chosen.truncate(1);
    }
    chosen
}

/// Records a hook's outcome in the status and in the condition of its stage
/// (`condition_type`, such as `PreBackupHooksExecutionSucceeded`).
pub fn record(
    status: &mut HookStatus,
    conditions_list: &mut Vec<stowaway_api::common::Condition>,
    stage: Stage,
    name: &str,
    outcome: &Result<(), String>,
    condition_type: &str,
    now: Timestamp,
) {
    let list = match stage {
        Stage::Pre => &mut status.pre_hooks,
        Stage::Post => &mut status.post_hooks,
    };
    let phase = if outcome.is_ok() { SUCCEEDED } else { FAILED };
    match list.iter_mut().find(|h| h.name == name) {
        Some(entry) => entry.phase = Some(phase.to_owned()),
        None => list.push(HookExecutionStatus {
            name: name.to_owned(),
            phase: Some(phase.to_owned()),
        }),
    }
    match outcome {
        Ok(()) => {
            // A stage is True once no hook of it failed.
            if !conditions::get(conditions_list, condition_type)
                .is_some_and(|c| c.status == stowaway_api::common::ConditionStatus::False)
            {
                conditions::set(
                    conditions_list,
                    condition_type,
                    true,
                    "HookExecutionSucceeded",
                    "",
                    now,
                );
            }
        }
        Err(message) => conditions::set(
            conditions_list,
            condition_type,
            false,
            "HookExecutionFailed",
            format!("hook {name}: {message}"),
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, policy: Option<HookExecutionPolicy>) -> HookInfo {
        HookInfo {
            name: name.into(),
            execution_policy: policy,
            ..HookInfo::default()
        }
    }

    fn status(pre: &[(&str, &str)], post: &[(&str, &str)]) -> HookStatus {
        let list = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(n, p)| HookExecutionStatus {
                    name: (*n).into(),
                    phase: Some((*p).into()),
                })
                .collect()
        };
        HookStatus {
            pre_hooks: list(pre),
            post_hooks: list(post),
        }
    }

    #[test]
    fn pre_hooks_run_in_order_and_stop_at_a_failure() {
        let hooks = [hook("quiesce", None), hook("flush", None)];
        assert_eq!(pre(&hooks, None), Progress::Run(0));
        assert_eq!(
            pre(&hooks, Some(&status(&[("quiesce", SUCCEEDED)], &[]))),
            Progress::Run(1)
        );
        assert_eq!(
            pre(&hooks, Some(&status(&[("quiesce", FAILED)], &[]))),
            Progress::Done {
                failed: vec!["quiesce".into()]
            }
        );
        assert_eq!(
            pre(
                &hooks,
                Some(&status(
                    &[("quiesce", SUCCEEDED), ("flush", SUCCEEDED)],
                    &[]
                ))
            ),
            Progress::Done { failed: vec![] }
        );
        assert_eq!(pre(&[], None), Progress::Done { failed: vec![] });
    }

    #[test]
    fn post_hooks_follow_their_policy_and_all_run_despite_failures() {
        let hooks = [
            hook("notify", None),
            hook("celebrate", Some(HookExecutionPolicy::OnSuccess)),
            hook("page", Some(HookExecutionPolicy::OnFailure)),
        ];
        assert_eq!(post(&hooks, None, true), Progress::Run(0));
        let s = status(&[], &[("notify", FAILED)]);
        assert_eq!(
            post(&hooks, Some(&s), true),
            Progress::Run(1),
            "continues after a failure"
        );
        assert_eq!(
            post(&hooks, Some(&s), false),
            Progress::Run(2),
            "OnSuccess skipped on failure"
        );
        let s = status(&[], &[("notify", FAILED), ("page", SUCCEEDED)]);
        assert_eq!(
            post(&hooks, Some(&s), false),
            Progress::Done {
                failed: vec!["notify".into()]
            }
        );
        let mut s = HookStatus::default();
        mark_skipped(&hooks, &mut s, false);
        assert_eq!(s.post_hooks.len(), 1);
        assert_eq!(s.post_hooks[0].name, "celebrate");
        assert_eq!(s.post_hooks[0].phase.as_deref(), Some(SKIPPED));
    }

    #[test]
    fn recording_sets_phase_and_condition() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let mut s = HookStatus::default();
        let mut c = Vec::new();
        record(&mut s, &mut c, Stage::Pre, "a", &Ok(()), "Pre", now);
        assert!(conditions::is_true(&c, "Pre"));
        record(
            &mut s,
            &mut c,
            Stage::Pre,
            "b",
            &Err("HTTP 500".into()),
            "Pre",
            now,
        );
        record(&mut s, &mut c, Stage::Pre, "c", &Ok(()), "Pre", now);
        let cond = conditions::get(&c, "Pre").expect("condition");
        assert_eq!(
            cond.message.as_deref(),
            Some("hook b: HTTP 500"),
            "a later success does not hide a failure"
        );
        assert_eq!(s.pre_hooks[1].phase.as_deref(), Some(FAILED));
    }

    fn pod(name: &str, phase: &str, owner: Option<(&str, &str)>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.owner_references = owner.map(|(kind, owner)| {
            vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: kind.into(),
                    name: owner.into(),
                    uid: "u".into(),
                    ..Default::default()
                },
            ]
        });
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn pod_hooks_run_in_running_pods_by_name_one_or_all() {
        let pods = vec![
            pod("db-2", "Running", Some(("StatefulSet", "db"))),
            pod("db-0", "Pending", Some(("StatefulSet", "db"))),
            pod("db-1", "Running", Some(("StatefulSet", "db"))),
            pod("cache-0", "Running", Some(("StatefulSet", "cache"))),
        ];
        let names =
            |chosen: Vec<&Pod>| -> Vec<String> { chosen.iter().map(|p| p.name_any()).collect() };
        assert_eq!(
            names(select_pods(
                &pods,
                None,
                PodHookExecutionStrategy::ExecuteOnOne
            )),
            vec!["cache-0"]
        );
        let owner = serde_json::json!({"kind": "StatefulSet", "name": "db"});
        assert_eq!(
            names(select_pods(
                &pods,
                Some(&owner),
                PodHookExecutionStrategy::ExecuteOnAll
            )),
            vec!["db-1", "db-2"]
        );
        assert_eq!(
            names(select_pods(
                &pods,
                Some(&owner),
                PodHookExecutionStrategy::ExecuteOnOne
            )),
            vec!["db-1"]
        );
        let nobody = serde_json::json!({"kind": "Deployment"});
        assert!(
            select_pods(&pods, Some(&nobody), PodHookExecutionStrategy::ExecuteOnAll).is_empty()
        );
    }
}
