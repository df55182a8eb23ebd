//! Names, labels and annotations the operator puts on the objects it creates.

use std::fmt::Write as _;

/// Finalizer of the objects whose deletion needs cleanup (data, snapshots).
pub const FINALIZER: &str = "stowaway.dev/cleanup";
/// `app.kubernetes.io/managed-by` on every object the operator creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "stowaway.dev";
/// Name of the BackupConfiguration (or batch) that a session, snapshot or job belongs to.
pub const INVOKER_NAME_LABEL: &str = "stowaway.dev/invoker-name";
/// Kind of the invoker.
pub const INVOKER_KIND_LABEL: &str = "stowaway.dev/invoker-kind";
/// Session name (in the invoker) of a BackupSession.
pub const SESSION_NAME_LABEL: &str = "stowaway.dev/session-name";
/// Label on a BackupBatch's Snapshot objects and executor Jobs: the member they belong to.
pub const BATCH_MEMBER_LABEL: &str = "stowaway.dev/batch-member";
/// On a BackupSession: why it was created (`schedule`, `initial`, `retry`, `on-demand`).
pub const TRIGGER_ANNOTATION: &str = "stowaway.dev/trigger";
/// On a pod: the target it carries a Stowaway sidecar for, as `<kind>.<name>` in lower case
/// (set by the sidecar injector).
pub const SIDECAR_TARGET_LABEL: &str = "stowaway.dev/sidecar-target";

/// The built-in addon a name refers to: KubeStash's catalog names map onto Stowaway's
/// built-in addons (`pvc-addon` and `workload-addon` → `volume`, `postgres-addon` →
/// `postgres`, `mysql-addon` → `mysql`); other names are returned as they are.
pub fn builtin_addon(name: &str) -> &str {
    match name {
        "pvc-addon" | "workload-addon" => "volume",
        other => other.strip_suffix("-addon").unwrap_or(other),
    }
}

/// Longest object name the operator generates: names end up in label values, which
/// Kubernetes limits to 63 characters.
pub const MAX_NAME: usize = 63;

/// A valid object name made of `parts` joined by `-`, at most [`MAX_NAME`] characters.
///
/// Names that would be longer are cut and end in 8 hex digits of a hash of the full name, so
/// that two long names that differ only at the end stay different. The last part (usually a
/// timestamp or a suffix that matters) is kept whole when it is short.
pub fn object_name(parts: &[&str]) -> String {
    let full = parts.join("-").to_ascii_lowercase();
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = fnv1a(&full);
    let tail = parts
        .last()
        .map(|p| p.to_ascii_lowercase())
        .unwrap_or_default();
    let tail = if tail.len() <= 20 {
        tail
    } else {
        String::new()
    };
    let keep = MAX_NAME - 9 - if tail.is_empty() { 0 } else { tail.len() + 1 };
    let mut head: String = full.chars().take(keep).collect();
    while head.ends_with(['-', '.']) {
        head.pop();
    }
    let mut out = head;
    let _ = write!(out, "-{hash:08x}");
    if !tail.is_empty() {
        out.push('-');
        out.push_str(&tail);
    }
    out
}

/// A small stable hash (FNV-1a, 32 bits) used only to keep cut names apart.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Name of the BackupSession of `session` in `invoker` scheduled for `unix` seconds
/// (`<invoker>-<session>-<unix seconds>`, as KubeStash names them).
pub fn backup_session_name(invoker: &str, session: &str, unix: i64) -> String {
    object_name(&[invoker, session, &unix.to_string()])
}

/// Name of the retry of BackupSession `failed`: `<first>-retry<N>`, where `<first>` is the
/// session that was retried first and N counts the retries. Distinct from every scheduled name,
/// even for a retry created in the same second as its session.
pub fn retry_name(failed: &str) -> String {
    let (base, attempt) = match failed.rsplit_once("-retry") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, n.parse::<u32>().unwrap_or(0))
        }
        _ => (failed, 0),
    };
    object_name(&[base, &format!("retry{}", attempt.saturating_add(1))])
}

/// Name of the Snapshot a BackupSession writes into `repository`.
pub fn snapshot_name(repository: &str, backup_session: &str) -> String {
    object_name(&[repository, backup_session])
}

/// Value of [`SIDECAR_TARGET_LABEL`] for a target.
pub fn sidecar_target(kind: &str, name: &str) -> String {
    let value = format!("{}.{}", kind.to_ascii_lowercase(), name);
    if value.len() <= MAX_NAME {
        value
    } else {
        object_name(&[&kind.to_ascii_lowercase(), name])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_joined() {
        assert_eq!(
            backup_session_name("db", "daily", 1_700_000_000),
            "db-daily-1700000000"
        );
        assert_eq!(snapshot_name("repo", "db-daily-1"), "repo-db-daily-1");
    }

    #[test]
    fn long_names_are_cut_keep_the_timestamp_and_stay_apart() {
        let long = "a".repeat(80);
        let a = backup_session_name(&long, "daily", 1_700_000_000);
        let b = backup_session_name(&long, "weekly", 1_700_000_000);
        assert!(a.len() <= MAX_NAME, "{a}");
        assert!(a.ends_with("-1700000000"), "{a}");
        assert_ne!(a, b);
        let again = backup_session_name(&long, "daily", 1_700_000_000);
        assert_eq!(a, again, "names are stable");
    }

    #[test]
    fn retries_count_up_from_the_first_session() {
        assert_eq!(
            retry_name("db-daily-1700000000"),
            "db-daily-1700000000-retry1"
        );
        assert_eq!(
            retry_name("db-daily-1700000000-retry1"),
            "db-daily-1700000000-retry2"
        );
        assert_eq!(retry_name("x-retryable"), "x-retryable-retry1");
        assert!(retry_name(&"a".repeat(70)).len() <= MAX_NAME);
    }

    #[test]
    fn sidecar_target_values_fit_a_label() {
        assert_eq!(sidecar_target("Deployment", "web"), "deployment.web");
        assert!(sidecar_target("StatefulSet", &"x".repeat(100)).len() <= MAX_NAME);
    }
}
