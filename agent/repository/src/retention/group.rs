//! Grouping repository snapshots and applying a policy to each group: [`ForgetPlan`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{Clock, Reason, RetentionError, RetentionPolicy};
use crate::id::SnapshotId;
use crate::snapshot::{Snapshot, Target};

/// Which snapshot fields form the groups a policy is applied to separately (restic's
/// `--group-by`; our `target` stands for restic's `paths`). Default: host and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By target (kind and name).
    pub target: bool,
    /// By the set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            target: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// No grouping: one group of all snapshots.
    pub const NONE: GroupBy = GroupBy {
        host: false,
        target: false,
        tags: false,
    };

    /// The key of `snapshot`'s group.
    pub fn key(&self, snapshot: &Snapshot) -> GroupKey {
        GroupKey {
            hostname: self.host.then(|| snapshot.hostname.clone()),
            target: self.target.then(|| snapshot.target.clone()),
            tags: self.tags.then(|| {
                let mut tags = snapshot.tags.clone();
                tags.sort();
                tags.dedup();
                tags
            }),
        }
    }
}

impl FromStr for GroupBy {
    type Err = RetentionError;

    /// A comma-separated list of `host`, `target`, `tags`; the empty string groups nothing.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut g = GroupBy::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "target" => g.target = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(RetentionError::InvalidGroupBy {
                        input: s.to_owned(),
                    });
                }
            }
        }
        Ok(g)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [
            (self.host, "host"),
            (self.target, "target"),
            (self.tags, "tags"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&parts.join(","))
    }
}

/// The fields a group shares; `None` for a field not grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupKey {
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Tags (sorted, without duplicates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    /// Orders groups by host, then target (kind, name), then tags.
    fn compare(&self, other: &GroupKey) -> std::cmp::Ordering {
        let target = |k: &GroupKey| k.target.as_ref().map(|t| (t.kind.clone(), t.name.clone()));
        self.hostname
            .cmp(&other.hostname)
            .then_with(|| target(self).cmp(&target(other)))
            .then_with(|| self.tags.cmp(&other.tags))
    }
}

impl fmt::Display for GroupKey {
    /// `host db-0, target app (postgres), tags [daily]`, or `all snapshots`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.hostname {
            parts.push(format!("host {host}"));
        }
        if let Some(t) = &self.target {
            parts.push(format!("target {} ({})", t.name, t.kind));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags [{}]", tags.join(",")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDecision {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Keep (true) or remove.
    pub keep: bool,
    /// Why (see [`super::Decision::reasons`]).
    pub reasons: Vec<Reason>,
}

/// One group and the verdicts on its snapshots, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetGroup {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// Its snapshots, newest first.
    pub snapshots: Vec<SnapshotDecision>,
}

/// A policy applied to every group of a list of snapshots. Nothing is deleted until the
/// caller passes [`ForgetPlan::remove_ids`] to
/// [`Repository::forget`](crate::Repository::forget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetPlan {
    /// The groups, ordered by key.
    pub groups: Vec<ForgetGroup>,
}

impl ForgetPlan {
    /// Groups `snapshots` by `group_by` and applies `policy` to each group. Snapshots with
    /// equal times keep the order given ([`Repository::snapshots`](crate::Repository::snapshots)
    /// sorts them by id).
    pub fn new(
        snapshots: Vec<Snapshot>,
        policy: &RetentionPolicy,
        group_by: GroupBy,
        clock: &Clock,
    ) -> ForgetPlan {
        let mut groups: Vec<(GroupKey, Vec<Snapshot>)> = Vec::new();
        for snapshot in snapshots {
            let key = group_by.key(&snapshot);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(snapshot),
                None => groups.push((key, vec![snapshot])),
            }
        }
        groups.sort_by(|a, b| a.0.compare(&b.0));
        let groups = groups
            .into_iter()
            .map(|(key, members)| {
                let decisions = policy.apply(&members, clock);
                let mut slots: BTreeMap<usize, Snapshot> =
                    members.into_iter().enumerate().collect();
                let snapshots = decisions
                    .into_iter()
                    .filter_map(|d| {
                        slots.remove(&d.index).map(|snapshot| SnapshotDecision {
                            snapshot,
                            keep: d.keep,
                            reasons: d.reasons,
                        })
                    })
                    .collect();
                ForgetGroup { key, snapshots }
            })
            .collect();
        ForgetPlan { groups }
    }

    /// Ids of the snapshots to remove, in plan order.
    pub fn remove_ids(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| &g.snapshots)
            .filter(|d| !d.keep)
            .map(|d| d.snapshot.id)
            .collect()
    }

    /// How many snapshots are kept.
    pub fn kept(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.snapshots)
            .filter(|d| d.keep)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_parses_lists_and_the_empty_string() {
        assert_eq!("".parse(), Ok(GroupBy::NONE));
        assert_eq!("host,target".parse(), Ok(GroupBy::default()));
        let all: GroupBy = " tags , host,target".parse().expect("valid");
        assert_eq!(all.to_string(), "host,target,tags");
        let err = "host,paths".parse::<GroupBy>().unwrap_err();
        assert_eq!(
            err,
            RetentionError::InvalidGroupBy {
                input: "host,paths".into()
            }
        );
        assert!(err.to_string().contains("host, target, tags"), "{err}");
    }
}
