//! Snapshot objects: deleting one whose `deletionPolicy` is `WipeOut` forgets its snapshot in
//! the repository (its data is freed by the next prune); `Delete` (the default) removes the
//! object only.
//!
//! Only WipeOut snapshots carry the finalizer, so deleting an ordinary Snapshot object never
//! waits for the operator.

use stowaway_api::Snapshot;
use stowaway_api::common::DeletionPolicy;

use crate::names::FINALIZER;

/// What to do with a Snapshot object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Nothing,
    /// Add the finalizer (a WipeOut snapshot not being deleted).
    AddFinalizer,
    /// Forget this repository snapshot id, then remove the finalizer.
    Forget(String),
    /// Remove the finalizer without touching the repository.
    Release,
}

/// Decides for `snapshot`; `repository_usable` says whether its Repository exists and is not
/// being deleted (a repository being wiped out takes its snapshots along anyway).
pub fn decide(snapshot: &Snapshot, repository_usable: bool) -> Decision {
    let has_finalizer = snapshot
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    let wipe = snapshot.spec.deletion_policy == DeletionPolicy::WipeOut;
    if snapshot.metadata.deletion_timestamp.is_none() {
        return if wipe && !has_finalizer {
            Decision::AddFinalizer
        } else {
            Decision::Nothing
        };
    }
    if !has_finalizer {
        return Decision::Nothing;
    }
    match (&snapshot.spec.snapshot_id, wipe && repository_usable) {
        (Some(id), true) => Decision::Forget(id.clone()),
        _ => Decision::Release,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn snapshot(
        policy: DeletionPolicy,
        deleting: bool,
        finalizer: bool,
        id: Option<&str>,
    ) -> Snapshot {
        let mut s: Snapshot = serde_yaml::from_str(
            "apiVersion: storage.stowaway.dev/v1alpha1\nkind: Snapshot\nmetadata: {name: s}\nspec: {repository: repo}\n",
        )
        .expect("snapshot");
        s.spec.deletion_policy = policy;
        s.spec.snapshot_id = id.map(str::to_owned);
        if deleting {
            s.metadata.deletion_timestamp =
                Some(Time("2026-01-01T00:00:00Z".parse().expect("time")));
        }
        if finalizer {
            s.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        }
        s
    }

    #[test]
    fn decisions() {
        use DeletionPolicy::{Delete, WipeOut};
        let cases = [
            (
                snapshot(WipeOut, false, false, Some("ab")),
                true,
                Decision::AddFinalizer,
            ),
            (
                snapshot(WipeOut, false, true, Some("ab")),
                true,
                Decision::Nothing,
            ),
            (
                snapshot(Delete, false, false, Some("ab")),
                true,
                Decision::Nothing,
            ),
            (
                snapshot(WipeOut, true, true, Some("ab")),
                true,
                Decision::Forget("ab".into()),
            ),
            (
                snapshot(WipeOut, true, true, Some("ab")),
                false,
                Decision::Release,
            ),
            (snapshot(WipeOut, true, true, None), true, Decision::Release),
            (
                snapshot(Delete, true, true, Some("ab")),
                true,
                Decision::Release,
            ),
            (
                snapshot(Delete, true, false, Some("ab")),
                true,
                Decision::Nothing,
            ),
        ];
        for (i, (s, usable, expected)) in cases.into_iter().enumerate() {
            assert_eq!(decide(&s, usable), expected, "case {i}");
        }
    }
}
