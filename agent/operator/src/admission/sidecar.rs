//! Sidecars write only their own target's sessions (pure rules; the webhook's
//! `/sidecar-access` gathers what they need).
//!
//! The Role a sidecar gets ([`crate::sidecar_rbac`]) covers every BackupSession,
//! RestoreSession and Snapshot of its namespace, since RBAC cannot select objects by label.
//! So the validating webhook looks at every create and update of those kinds (and of their
//! `status`) by a service account: when the writer is the sidecar of a target (its pod,
//! named in the token's `authentication.kubernetes.io/pod-name`, carries
//! `stowaway.dev/sidecar-target`; without that claim, the sidecar pods running as the
//! account), the object must be for that target:
//!
//! - a BackupSession: one of its invoker's targets (a BackupBatch has several members);
//! - a RestoreSession: its `spec.target`;
//! - a Snapshot: its `spec.appRef`, else its BackupSession's invoker's targets.
//!
//! On an update, a sidecar may change no claim annotation but its own target's
//! (`claim.stowaway.dev/<kind>.<name>`, [`crate::claim`]). Writers that are not sidecars
//! (the operator, users, other controllers) pass unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::Resource;
use serde_json::Value;
use stowaway_api::common::TypedObjectReference;
use stowaway_api::{BackupSession, RestoreSession, Snapshot};

use crate::claim::CLAIM_PREFIX;
use crate::invoker::Invoker;
use crate::names::sidecar_target;

/// The `userInfo.extra` key of a bound service-account token naming the pod it was issued to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// Prefix of a service account's user name: `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// A service account writing, from the request's `userInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pod its token was issued to, when the token says.
    pub pod: Option<String>,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceAccount {}/{}", self.namespace, self.name)?;
        if let Some(pod) = &self.pod {
            write!(f, " (pod {pod})")?;
        }
        Ok(())
    }
}

/// The service account behind `user`, or `None` for other users.
pub fn account(user: &UserInfo) -> Option<Account> {
    let rest = user
        .username
        .as_deref()?
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some(Account {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        pod: user
            .extra
            .as_ref()
            .and_then(|e| e.get(POD_NAME_EXTRA))
            .and_then(|v| v.first())
            .filter(|p| !p.is_empty())
            .cloned(),
    })
}

/// The kinds whose writes sidecars are checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarded {
    /// BackupSession (and its status).
    BackupSession,
    /// RestoreSession (and its status).
    RestoreSession,
    /// Snapshot (and its status).
    Snapshot,
}

impl Guarded {
    /// The guarded kind of `group` and `kind`.
    pub fn of(group: &str, kind: &str) -> Option<Guarded> {
        fn is<K: Resource<DynamicType = ()>>(group: &str, kind: &str) -> bool {
            K::group(&()) == group && K::kind(&()) == kind
        }
        if is::<BackupSession>(group, kind) {
            Some(Guarded::BackupSession)
        } else if is::<RestoreSession>(group, kind) {
            Some(Guarded::RestoreSession)
        } else if is::<Snapshot>(group, kind) {
            Some(Guarded::Snapshot)
        } else {
            None
        }
    }

    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            Guarded::BackupSession => "BackupSession",
            Guarded::RestoreSession => "RestoreSession",
            Guarded::Snapshot => "Snapshot",
        }
    }
}

/// Whose an object is, as far as the object itself says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// These targets (label values, [`sidecar_target`]).
    Targets(BTreeSet<String>),
    /// The targets of this invoker (`kind`, `name`), to be read.
    Invoker {
        /// `BackupConfiguration` or `BackupBatch`.
        kind: String,
        /// Its name.
        name: String,
    },
    /// The invoker's targets of this BackupSession, to be read.
    Session(String),
}

/// The label value of a target.
fn value_of(target: &TypedObjectReference) -> String {
    sidecar_target(&target.kind, &target.name)
}

/// Whose the object `object` of kind `kind` is (from its JSON).
pub fn owner(kind: Guarded, object: &Value) -> Result<Owner, String> {
    let field = |path: &[&str]| -> Option<&Value> {
        path.iter()
            .try_fold(object, |v, k| v.get(*k))
            .filter(|v| !v.is_null())
    };
    let parse =
        |what: &str, value: Option<&Value>| -> Result<Option<TypedObjectReference>, String> {
            value
                .map(|v| serde_json::from_value(v.clone()))
                .transpose()
                .map_err(|e| format!("{what}: {e}"))
        };
    match kind {
        Guarded::BackupSession => {
            let invoker = parse("spec.invoker", field(&["spec", "invoker"]))?
                .ok_or("spec.invoker: required")?;
            Ok(Owner::Invoker {
                kind: invoker.kind,
                name: invoker.name,
            })
        }
        Guarded::RestoreSession => {
            let target = parse("spec.target", field(&["spec", "target"]))?;
            Ok(Owner::Targets(target.iter().map(value_of).collect()))
        }
        Guarded::Snapshot => {
            if let Some(app) = parse("spec.appRef", field(&["spec", "appRef"]))? {
                return Ok(Owner::Targets(BTreeSet::from([value_of(&app)])));
            }
            match field(&["spec", "backupSession"]).and_then(Value::as_str) {
                Some(session) if !session.is_empty() => Ok(Owner::Session(session.to_owned())),
                _ => Ok(Owner::Targets(BTreeSet::new())),
            }
        }
    }
}

/// The targets (label values) of an invoker.
pub fn invoker_targets(invoker: Invoker<'_>) -> BTreeSet<String> {
    invoker
        .targets()
        .into_iter()
        .filter_map(|(_, t)| t.map(value_of))
        .collect()
}

/// The claim annotations (keys) whose values differ between `old` and `new`.
pub fn changed_claims(old: Option<&Value>, new: &Value) -> BTreeSet<String> {
    let claims = |object: Option<&Value>| -> BTreeMap<String, Value> {
        object
            .and_then(|o| o.pointer("/metadata/annotations"))
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.starts_with(CLAIM_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (before, after) = (claims(old), claims(Some(new)));
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// A writer that is the sidecar of `targets` (label values; empty: not a sidecar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    /// Who.
    pub account: Account,
    /// The targets its sidecar pods serve.
    pub targets: BTreeSet<String>,
}

/// One object being written, reduced to what the rule looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its kind.
    pub kind: Guarded,
    /// `namespace/name`.
    pub name: String,
    /// The targets it is for (label values).
    pub targets: BTreeSet<String>,
    /// Claim annotations the write changes.
    pub changed_claims: BTreeSet<String>,
}

/// Whether `writer` may write `written`; the denial says why, naming both targets.
pub fn check(writer: &Writer, written: &Written) -> Result<(), String> {
    if writer.targets.is_empty() {
        return Ok(());
    }
    let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    let mine = list(&writer.targets);
    if written.targets.is_disjoint(&writer.targets) {
        let theirs = if written.targets.is_empty() {
            "no target".to_owned()
        } else {
            list(&written.targets)
        };
        return Err(format!(
            "{} is the Stowaway sidecar of {mine}; {} {} is for {theirs}: a sidecar may write \
             only the sessions and snapshots of its own target",
            writer.account,
            written.kind.kind(),
            written.name
        ));
    }
    let allowed: BTreeSet<String> = writer
        .targets
        .iter()
        .map(|t| format!("{CLAIM_PREFIX}{t}"))
        .collect();
    let foreign: Vec<&String> = written.changed_claims.difference(&allowed).collect();
    if !foreign.is_empty() {
        return Err(format!(
            "{} is the Stowaway sidecar of {mine}; it may not change the claim {} of {} {}: a \
             sidecar claims work for its own target only",
            writer.account,
            foreign
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            written.kind.kind(),
            written.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(name: &str, pod: Option<&str>) -> UserInfo {
        UserInfo {
            username: Some(name.into()),
            extra: pod.map(|p| BTreeMap::from([(POD_NAME_EXTRA.to_owned(), vec![p.to_owned()])])),
            ..UserInfo::default()
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn accounts_come_from_service_account_user_names() {
        assert_eq!(
            account(&user("system:serviceaccount:shop:web", Some("web-1"))),
            Some(Account {
                namespace: "shop".into(),
                name: "web".into(),
                pod: Some("web-1".into())
            })
        );
        assert_eq!(
            account(&user("system:serviceaccount:shop:web", None)).and_then(|a| a.pod),
            None
        );
        for other in [
            "admin",
            "system:serviceaccount:",
            "system:serviceaccount:shop",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:",
            "system:serviceaccount:a:b:c",
            "system:node:worker-1",
        ] {
            assert_eq!(account(&user(other, Some("p"))), None, "{other}");
        }
        assert_eq!(account(&UserInfo::default()), None);
    }

    #[test]
    fn guarded_kinds_are_the_session_kinds_and_snapshots() {
        assert_eq!(
            Guarded::of("core.stowaway.dev", "BackupSession"),
            Some(Guarded::BackupSession)
        );
        assert_eq!(
            Guarded::of("core.stowaway.dev", "RestoreSession"),
            Some(Guarded::RestoreSession)
        );
        assert_eq!(
            Guarded::of("storage.stowaway.dev", "Snapshot"),
            Some(Guarded::Snapshot)
        );
        for (group, kind) in [
            ("core.stowaway.dev", "Snapshot"),
            ("core.stowaway.dev", "BackupConfiguration"),
            ("storage.stowaway.dev", "Repository"),
            ("", "Pod"),
        ] {
            assert_eq!(Guarded::of(group, kind), None, "{group}/{kind}");
        }
    }

    #[test]
    fn owners_of_each_kind() {
        let session = json!({"spec": {"invoker": {"apiGroup": "core.stowaway.dev",
            "kind": "BackupConfiguration", "name": "db"}, "session": "daily"}});
        assert_eq!(
            owner(Guarded::BackupSession, &session),
            Ok(Owner::Invoker {
                kind: "BackupConfiguration".into(),
                name: "db".into()
            })
        );
        assert_eq!(
            owner(Guarded::BackupSession, &json!({"spec": {}})),
            Err("spec.invoker: required".into())
        );
        let restore =
            json!({"spec": {"target": {"apiGroup": "apps", "kind": "StatefulSet", "name": "pg"}}});
        assert_eq!(
            owner(Guarded::RestoreSession, &restore),
            Ok(Owner::Targets(set(&["statefulset.pg"])))
        );
        assert_eq!(
            owner(
                Guarded::RestoreSession,
                &json!({"spec": {"dataSource": {}}})
            ),
            Ok(Owner::Targets(BTreeSet::new()))
        );
        let snapshot = json!({"spec": {"appRef": {"kind": "Deployment", "name": "web"},
            "backupSession": "s1", "repository": "r"}});
        assert_eq!(
            owner(Guarded::Snapshot, &snapshot),
            Ok(Owner::Targets(set(&["deployment.web"])))
        );
        assert_eq!(
            owner(
                Guarded::Snapshot,
                &json!({"spec": {"backupSession": "s1", "repository": "r"}})
            ),
            Ok(Owner::Session("s1".into()))
        );
        let broken = json!({"spec": {"target": {"kind": 5}}});
        let err = owner(Guarded::RestoreSession, &broken).expect_err("not a reference");
        assert!(err.starts_with("spec.target: "), "{err}");
    }

    #[test]
    fn changed_claims_compare_old_and_new() {
        let with = |claims: Value| json!({"metadata": {"annotations": claims}});
        let old = with(json!({"claim.stowaway.dev/deployment.web": "web-1", "other": "x"}));
        let same = with(json!({"claim.stowaway.dev/deployment.web": "web-1", "other": "y"}));
        assert_eq!(changed_claims(Some(&old), &same), BTreeSet::new());
        let taken = with(json!({"claim.stowaway.dev/deployment.web": "web-2",
            "claim.stowaway.dev/deployment.db": "db-0"}));
        assert_eq!(
            changed_claims(Some(&old), &taken),
            set(&[
                "claim.stowaway.dev/deployment.db",
                "claim.stowaway.dev/deployment.web"
            ])
        );
        // Removed, and a create (no old object).
        assert_eq!(
            changed_claims(Some(&old), &json!({"metadata": {}})),
            set(&["claim.stowaway.dev/deployment.web"])
        );
        assert_eq!(
            changed_claims(None, &old),
            set(&["claim.stowaway.dev/deployment.web"])
        );
    }

    fn web_sidecar() -> Writer {
        Writer {
            account: Account {
                namespace: "shop".into(),
                name: "web".into(),
                pod: Some("web-7d9-x2".into()),
            },
            targets: set(&["deployment.web"]),
        }
    }

    fn written(targets: &[&str], claims: &[&str]) -> Written {
        Written {
            kind: Guarded::BackupSession,
            name: "shop/s1".into(),
            targets: set(targets),
            changed_claims: set(claims),
        }
    }

    #[test]
    fn a_sidecar_writes_its_own_targets_objects_only() {
        let me = web_sidecar();
        // (targets of the object, claims changed, allowed)
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&["deployment.web"], &[], true),
            (
                &["deployment.web"],
                &["claim.stowaway.dev/deployment.web"],
                true,
            ),
            // A batch session of both members: the web sidecar claims its own part only.
            (
                &["deployment.web", "statefulset.db"],
                &["claim.stowaway.dev/deployment.web"],
                true,
            ),
            (
                &["deployment.web", "statefulset.db"],
                &["claim.stowaway.dev/statefulset.db"],
                false,
            ),
            (&["statefulset.db"], &[], false),
            (
                &["statefulset.db"],
                &["claim.stowaway.dev/deployment.web"],
                false,
            ),
            (&[], &[], false),
        ];
        for (targets, claims, allowed) in cases {
            assert_eq!(
                check(&me, &written(targets, claims)).is_ok(),
                *allowed,
                "{targets:?} {claims:?}"
            );
        }
        // Not a sidecar: anything goes (RBAC decides).
        let other = Writer {
            targets: BTreeSet::new(),
            ..web_sidecar()
        };
        assert_eq!(
            check(
                &other,
                &written(&["statefulset.db"], &["claim.stowaway.dev/x"])
            ),
            Ok(())
        );
    }

    #[test]
    fn denials_name_both_targets() {
        let me = web_sidecar();
        assert_eq!(
            check(&me, &written(&["statefulset.db"], &[])),
            Err(
                "ServiceAccount shop/web (pod web-7d9-x2) is the Stowaway sidecar of \
                 deployment.web; BackupSession shop/s1 is for statefulset.db: a sidecar may \
                 write only the sessions and snapshots of its own target"
                    .into()
            )
        );
        let restore = Written {
            kind: Guarded::RestoreSession,
            ..written(&[], &[])
        };
        let message = check(&me, &restore).expect_err("denied");
        assert!(
            message.contains("RestoreSession shop/s1 is for no target"),
            "{message}"
        );
        assert_eq!(
            check(
                &me,
                &written(
                    &["deployment.web", "statefulset.db"],
                    &["claim.stowaway.dev/statefulset.db"]
                )
            ),
            Err(
                "ServiceAccount shop/web (pod web-7d9-x2) is the Stowaway sidecar of \
                 deployment.web; it may not change the claim claim.stowaway.dev/statefulset.db \
                 of BackupSession shop/s1: a sidecar claims work for its own target only"
                    .into()
            )
        );
    }
}
