//! Repository integrity (pure): when the Repository reconciler checks a repository's structure
//! (every index readable, every pack the index names present with its size, every snapshot's
//! trees and data reachable: `stowaway check` without `--read-data`), and what the result
//! makes of the statuses.
//!
//! - A check is due when the last one (the `IntegrityVerified` condition's
//!   `lastTransitionTime`, rewritten by every check) is older than the interval: 24 hours, or
//!   the Repository's annotation `stowaway.dev/integrity-check-interval` (a duration such as
//!   `6h`; `0` or `never` turns checks off).
//! - Repository `status.integrity` is whether the check found no error; the condition says
//!   how many errors and the first.
//! - Each Snapshot object whose snapshot the check walked gets `status.integrity` false when
//!   an error names its snapshot, else true; its components likewise (the check names
//!   damaged snapshots, not components). Snapshots taken after the check began keep what
//!   they have until the next check.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::common::{Condition, ConditionStatus, ReadinessPhase};
use stowaway_api::{Repository, Snapshot};

use crate::conditions;
use crate::duration::parse_duration;

/// Condition of a Repository: the last integrity check passed (`True`) or found damage.
pub const INTEGRITY_VERIFIED: &str = "IntegrityVerified";
/// Reason: the check found no error.
pub const CHECK_PASSED: &str = "IntegrityCheckPassed";
/// Reason (and event): the check found damage.
pub const CHECK_FAILED: &str = "IntegrityCheckFailed";
/// Annotation setting a Repository's check interval (`0` or `never`: no checks).
pub const INTERVAL_ANNOTATION: &str = "stowaway.dev/integrity-check-interval";
/// Interval between checks unless annotated.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// Problems, one sentence each, with the ids (hex) of the snapshots they damage.
    pub errors: Vec<(String, Vec<String>)>,
    /// Ids (hex) of the snapshots the check walked.
    pub checked: BTreeSet<String>,
}

impl CheckResult {
    /// The ids of the damaged snapshots.
    pub fn damaged(&self) -> BTreeSet<&str> {
        self.errors
            .iter()
            .flat_map(|(_, ids)| ids.iter().map(String::as_str))
            .collect()
    }
}

/// The check interval of `repo`; `None` when checks are off. An annotation that does not
/// parse is reported and the default used.
pub fn interval(repo: &Repository) -> Result<Option<Duration>, String> {
    let Some(value) = repo.annotations().get(INTERVAL_ANNOTATION) else {
        return Ok(Some(DEFAULT_INTERVAL));
    };
    let value = value.trim();
    if value == "0" || value.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    match parse_duration(value) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(format!("annotation {INTERVAL_ANNOTATION}: {e}")),
    }
}

/// Whether `repo` is due for a check at `now`: Ready, not paused, checks on, and the last
/// check older than the interval (or none yet).
pub fn due(repo: &Repository, now: Timestamp) -> bool {
    let status = repo.status.as_ref();
    if status.and_then(|s| s.phase) != Some(ReadinessPhase::Ready)
        || repo.spec.paused.unwrap_or(false)
    {
        return false;
    }
    let every = match interval(repo) {
        Ok(Some(every)) => every,
        Ok(None) => return false,
        Err(_) => DEFAULT_INTERVAL,
    };
    let last = status
        .and_then(|s| conditions::get(&s.conditions, INTEGRITY_VERIFIED))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    last.is_none_or(|last| crate::duration::elapsed(last, now) >= every)
}

/// The Repository's integrity condition after `result` at `now` (its time is the check's,
/// even when the status did not change).
pub fn condition(result: &CheckResult, now: Timestamp) -> Condition {
    let (status, reason, message) = match result.errors.first() {
        None => (
            ConditionStatus::True,
            CHECK_PASSED,
            format!(
                "{} snapshot(s) checked: indexes, packs and trees are sound",
                result.checked.len()
            ),
        ),
        Some((first, _)) => (
            ConditionStatus::False,
            CHECK_FAILED,
            format!(
                "{} error(s), {} snapshot(s) damaged; first: {first}",
                result.errors.len(),
                result.damaged().len()
            ),
        ),
    };
    Condition {
        type_: INTEGRITY_VERIFIED.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
        ..Condition::default()
    }
}

/// The Snapshot objects (of `objects`) whose integrity `result` changes, with the new value:
/// objects of a walked snapshot only.
pub fn snapshot_updates(objects: &[&Snapshot], result: &CheckResult) -> Vec<(String, bool)> {
    let damaged = result.damaged();
    objects
        .iter()
        .filter_map(|object| {
            let id = object.spec.snapshot_id.as_deref()?;
            if !result.checked.contains(id) {
                return None;
            }
            let sound = !damaged.contains(id);
            let status = object.status.as_ref();
            let current = status.and_then(|s| s.integrity);
            let components_agree = status.is_none_or(|s| {
                s.components
                    .values()
                    .all(|c| c.integrity.is_none_or(|i| i == sound))
            });
            (current != Some(sound) || !components_agree).then(|| (object.name_any(), sound))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use stowaway_api::repository::RepositoryStatus;
    use stowaway_api::snapshot::{Component, SnapshotSpec, SnapshotStatus};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn repo(phase: ReadinessPhase, last: Option<&str>, annotation: Option<&str>) -> Repository {
        let mut repo: Repository = serde_json::from_value(serde_json::json!({
                "apiVersion": "storage.stowaway.dev/v1alpha1", "kind": "Repository",
                "metadata": {"name": "r", "namespace": "demo"},
                "spec": {"appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "web"},
                         "storageRef": {"name": "s"}, "path": "p"}}))
        .expect("repository");
        if let Some(value) = annotation {
            repo.annotations_mut()
                .insert(INTERVAL_ANNOTATION.into(), value.into());
        }
        let mut status = RepositoryStatus {
            phase: Some(phase),
            ..RepositoryStatus::default()
        };
        if let Some(last) = last {
            status
                .conditions
                .push(condition(&CheckResult::default(), at(last)));
        }
        repo.status = Some(status);
        repo
    }

    #[test]
    fn a_check_is_due_after_the_interval() {
        let now = at("2026-11-24T12:00:00Z");
        let ready = ReadinessPhase::Ready;
        assert!(due(&repo(ready, None, None), now), "never checked");
        assert!(!due(&repo(ready, Some("2026-11-24T00:00:00Z"), None), now));
        assert!(due(&repo(ready, Some("2026-11-23T12:00:00Z"), None), now));
        assert!(due(
            &repo(ready, Some("2026-11-24T05:00:00Z"), Some("6h")),
            now
        ));
        assert!(!due(
            &repo(ready, Some("2026-11-24T07:00:00Z"), Some("6h")),
            now
        ));
        assert!(!due(&repo(ready, None, Some("never")), now), "off");
        assert!(!due(&repo(ready, None, Some("0")), now), "off");
        assert!(!due(&repo(ReadinessPhase::NotReady, None, None), now));
        let mut paused = repo(ready, None, None);
        paused.spec.paused = Some(true);
        assert!(!due(&paused, now));
        let bad = repo(ready, Some("2026-11-24T00:00:00Z"), Some("often"));
        assert!(
            !due(&bad, now),
            "a bad annotation falls back to the default"
        );
        assert!(
            interval(&bad)
                .expect_err("bad")
                .starts_with("annotation stowaway.dev/integrity-check-interval: ")
        );
    }

    fn snapshot(name: &str, id: &str, integrity: Option<bool>) -> Snapshot {
        let mut s = Snapshot::new(
            name,
            SnapshotSpec {
                snapshot_id: Some(id.into()),
                ..SnapshotSpec::default()
            },
        );
        s.status = Some(SnapshotStatus {
            integrity,
            components: BTreeMap::from([(
                "dump".to_owned(),
                Component {
                    integrity,
                    ..Component::default()
                },
            )]),
            ..SnapshotStatus::default()
        });
        s
    }

    #[test]
    fn the_result_marks_exactly_the_damaged_snapshots() {
        let result = CheckResult {
            errors: vec![("pack 1a2b is missing".into(), vec!["bbbb".into()])],
            checked: ["aaaa", "bbbb"].into_iter().map(String::from).collect(),
        };
        let a = snapshot("a", "aaaa", Some(true));
        let b = snapshot("b", "bbbb", Some(true));
        let c = snapshot("c", "cccc", None);
        let fresh = snapshot("d", "aaaa", None);
        let updates = snapshot_updates(&[&a, &b, &c, &fresh], &result);
        assert_eq!(
            updates,
            [("b".to_owned(), false), ("d".to_owned(), true)],
            "a is already right; c was not walked"
        );
        let cond = condition(&result, at("2026-11-24T12:00:00Z"));
        assert_eq!(cond.status, ConditionStatus::False);
        assert_eq!(cond.reason.as_deref(), Some(CHECK_FAILED));
        assert_eq!(
            cond.message.as_deref(),
            Some("1 error(s), 1 snapshot(s) damaged; first: pack 1a2b is missing")
        );
        let sound = condition(
            &CheckResult {
                errors: Vec::new(),
                checked: result.checked.clone(),
            },
            at("2026-11-24T12:00:00Z"),
        );
        assert_eq!(sound.status, ConditionStatus::True);
        assert_eq!(
            sound.message.as_deref(),
            Some("2 snapshot(s) checked: indexes, packs and trees are sound")
        );
    }
}
