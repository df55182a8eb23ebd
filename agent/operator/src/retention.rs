//! Applying a RetentionPolicy after a successful BackupSession: forget the repository
//! snapshots the policy no longer keeps, prune, and say which Snapshot objects go with them.
//!
//! The policy maps onto the repository's retention rules (`successfulSnapshots` → keep
//! counts, `maxRetentionPeriod` → maximum age), applied per host and target as
//! `stowaway forget` does by default. `failedSnapshots.last` applies to failed Snapshot
//! objects, which have no data in the repository.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;
use stowaway_api::common::RunPhase;
use stowaway_api::{RetentionPolicy, Snapshot};
use stowaway_repository::{
    Clock, FailedSnapshots, ForgetPlan, GroupBy, KubeStashRetentionSpec, PruneOptions,
    SuccessfulSnapshots,
};

/// The retention rules of a RetentionPolicy object, in the repository's terms.
pub fn repository_spec(policy: &RetentionPolicy) -> KubeStashRetentionSpec {
    let spec = &policy.spec;
    KubeStashRetentionSpec {
        max_retention_period: spec.max_retention_period.clone(),
        successful_snapshots: spec
            .successful_snapshots
            .as_ref()
            .map(|s| SuccessfulSnapshots {
                last: s.last,
                hourly: s.hourly,
                daily: s.daily,
                weekly: s.weekly,
                monthly: s.monthly,
                yearly: s.yearly,
            }),
        failed_snapshots: spec
            .failed_snapshots
            .as_ref()
            .map(|f| FailedSnapshots { last: f.last }),
    }
}

/// What applying the policy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Ids (hex) of the repository snapshots forgotten.
    pub forgotten: Vec<String>,
    /// Snapshots kept.
    pub kept: usize,
    /// Bytes of packs prune deleted, or marked for deletion by a later prune.
    pub pruned_bytes: u64,
}

/// Forgets what `policy` does not keep in `repository` (index loaded or not), then prunes.
/// Errors are messages for the session's status.
pub async fn apply(
    repository: &stowaway_repository::Repository,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<Applied, String> {
    let rules = repository_spec(policy)
        .successful_policy()
        .map_err(|e| format!("RetentionPolicy {}: {e}", policy.name_any()))?;
    let snapshots = repository
        .snapshots()
        .await
        .map_err(|e| format!("listing snapshots: {e}"))?;
    let clock = Clock {
        now,
        time_zone: TimeZone::UTC,
    };
    let plan = ForgetPlan::new(snapshots, &rules, GroupBy::default(), &clock);
    let remove = plan.remove_ids();
    let mut applied = Applied {
        forgotten: remove.iter().map(|id| id.to_hex()).collect(),
        kept: plan.kept(),
        pruned_bytes: 0,
    };
    if remove.is_empty() {
        return Ok(applied);
    }
    repository
        .forget(&remove)
        .await
        .map_err(|e| format!("forgetting {} snapshot(s): {e}", remove.len()))?;
    let report = repository
        .prune(&PruneOptions::default(), &())
        .await
        .map_err(|e| format!("pruning after forgetting {} snapshot(s): {e}", remove.len()))?;
    applied.pruned_bytes = report.deleted_bytes + report.marked_bytes;
    Ok(applied)
}

/// Snapshot objects to delete after the policy ran: those of forgotten repository snapshots,
/// and failed ones beyond `failedSnapshots.last` (default 1), oldest first.
pub fn snapshot_objects_to_delete(
    objects: &[Snapshot],
    repository: &str,
    applied: &Applied,
    policy: &RetentionPolicy,
) -> Vec<String> {
    let ours: Vec<&Snapshot> = objects
        .iter()
        .filter(|s| s.spec.repository == repository)
        .collect();
    let mut delete: Vec<String> = ours
        .iter()
        .filter(|s| {
            s.spec
                .snapshot_id
                .as_ref()
                .is_some_and(|id| applied.forgotten.iter().any(|f| f == id))
        })
        .map(|s| s.name_any())
        .collect();
    let keep_failed = policy
        .spec
        .failed_snapshots
        .as_ref()
        .and_then(|f| f.last)
        .unwrap_or(1)
        .max(0);
    let mut failed: Vec<&&Snapshot> = ours
        .iter()
        .filter(|s| s.status.as_ref().and_then(|s| s.phase) == Some(RunPhase::Failed))
        .collect();
    failed.sort_by_key(|s| {
        std::cmp::Reverse(
            s.metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        )
    });
    delete.extend(
        failed
            .iter()
            .skip(usize::try_from(keep_failed).unwrap_or(0))
            .map(|s| s.name_any()),
    );
    delete.sort();
    delete.dedup();
    delete
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use stowaway_api::snapshot::SnapshotStatus;

    use super::*;

    fn policy(yaml: &str) -> RetentionPolicy {
        serde_yaml::from_str(&format!(
            "apiVersion: storage.stowaway.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {{name: keep}}\nspec: {yaml}\n"
        ))
        .expect("policy")
    }

    fn object(
        name: &str,
        repo: &str,
        id: Option<&str>,
        phase: RunPhase,
        created: &str,
    ) -> Snapshot {
        let mut s: Snapshot = serde_yaml::from_str(&format!(
            "apiVersion: storage.stowaway.dev/v1alpha1\nkind: Snapshot\nmetadata: {{name: {name}}}\nspec: {{repository: {repo}}}\n"
        ))
        .expect("snapshot");
        s.spec.snapshot_id = id.map(str::to_owned);
        s.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
        s.status = Some(SnapshotStatus {
            phase: Some(phase),
            ..SnapshotStatus::default()
        });
        s
    }

    #[test]
    fn the_policy_maps_field_by_field() {
        let p = policy(
            "{maxRetentionPeriod: 30d, successfulSnapshots: {last: 5, daily: 7}, failedSnapshots: {last: 2}}",
        );
        let spec = repository_spec(&p);
        assert_eq!(spec.max_retention_period.as_deref(), Some("30d"));
        let s = spec.successful_snapshots.as_ref().expect("successful");
        assert_eq!((s.last, s.daily, s.weekly), (Some(5), Some(7), None));
        assert_eq!(spec.failed_snapshots.as_ref().and_then(|f| f.last), Some(2));
        assert!(spec.successful_policy().is_ok());
    }

    #[test]
    fn objects_of_forgotten_snapshots_and_old_failures_are_deleted() {
        let p = policy("{successfulSnapshots: {last: 1}, failedSnapshots: {last: 1}}");
        let objects = [
            object(
                "a",
                "repo",
                Some("aaaa"),
                RunPhase::Succeeded,
                "2026-01-01T00:00:00Z",
            ),
            object(
                "b",
                "repo",
                Some("bbbb"),
                RunPhase::Succeeded,
                "2026-01-02T00:00:00Z",
            ),
            object("f1", "repo", None, RunPhase::Failed, "2026-01-03T00:00:00Z"),
            object("f2", "repo", None, RunPhase::Failed, "2026-01-04T00:00:00Z"),
            object(
                "other",
                "elsewhere",
                Some("aaaa"),
                RunPhase::Failed,
                "2026-01-01T00:00:00Z",
            ),
        ];
        let applied = Applied {
            forgotten: vec!["aaaa".into()],
            kept: 1,
            pruned_bytes: 0,
        };
        assert_eq!(
            snapshot_objects_to_delete(&objects, "repo", &applied, &p),
            vec!["a".to_owned(), "f1".to_owned()]
        );
    }
}
