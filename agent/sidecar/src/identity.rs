//! Who the sidecar is: its pod, namespace and node from the downward API, and its target
//! (the workload it serves) from the environment the injector sets.

use stowaway_api::common::TypedObjectReference;
use stowaway_operator::claim;

/// Environment variable naming the sidecar's pod (downward API).
pub const POD_NAME: &str = "POD_NAME";
/// Environment variable naming the pod's namespace (downward API).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Environment variable naming the pod's node (downward API).
pub const NODE_NAME: &str = "NODE_NAME";
/// Environment variable with the target's kind (`Deployment`, `StatefulSet`, `DaemonSet`).
pub const TARGET_KIND: &str = "STOWAWAY_TARGET_KIND";
/// Environment variable with the target's name.
pub const TARGET_NAME: &str = "STOWAWAY_TARGET_NAME";

/// Why the sidecar cannot tell who it is.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A variable the injector sets is missing or empty.
    #[error(
        "environment variable {0} is not set: `stowaway sidecar` runs in a pod the Stowaway \
         injector prepared (or pass --config FILE for the standalone sidecar)"
    )]
    Missing(&'static str),
    /// The target kind is not one a sidecar serves.
    #[error("{TARGET_KIND}={0}: a sidecar serves a Deployment, StatefulSet or DaemonSet")]
    UnsupportedKind(String),
}

/// Who the sidecar is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The pod's namespace (the target's, and its sessions').
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The node the pod runs on, when known.
    pub node: Option<String>,
    /// The workload the sidecar serves.
    pub target: TypedObjectReference,
}

impl Identity {
    /// Reads the identity through `var` (`std::env::var` in the binary).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Identity, IdentityError> {
        let required = |name: &'static str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(IdentityError::Missing(name))
        };
        let kind = required(TARGET_KIND)?;
        let kind = ["Deployment", "StatefulSet", "DaemonSet"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(&kind))
            .ok_or(IdentityError::UnsupportedKind(kind))?;
        let namespace = required(POD_NAMESPACE)?;
        Ok(Identity {
            pod: required(POD_NAME)?,
            node: var(NODE_NAME).filter(|v| !v.is_empty()),
            target: TypedObjectReference {
                api_group: Some("apps".into()),
                kind: kind.to_owned(),
                name: required(TARGET_NAME)?,
                namespace: Some(namespace.clone()),
            },
            namespace,
        })
    }

    /// The identity the claim rules use.
    pub fn claimant(&self) -> claim::Identity {
        claim::Identity {
            pod: self.pod.clone(),
            target_kind: self.target.kind.clone(),
            target_name: self.target.name.clone(),
        }
    }

    /// `Kind namespace/name` of the target, for messages.
    pub fn target_label(&self) -> String {
        format!(
            "{} {}/{}",
            self.target.kind, self.namespace, self.target.name
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_injected_environment() {
        let identity = Identity::from_env(env(&[
            (POD_NAME, "web-7d9f-abcde"),
            (POD_NAMESPACE, "demo"),
            (NODE_NAME, "node-1"),
            (TARGET_KIND, "deployment"),
            (TARGET_NAME, "web"),
        ]))
        .expect("identity");
        assert_eq!(identity.pod, "web-7d9f-abcde");
        assert_eq!(identity.node.as_deref(), Some("node-1"));
        assert_eq!(identity.target.kind, "Deployment");
        assert_eq!(identity.target.api_group.as_deref(), Some("apps"));
        assert_eq!(identity.target_label(), "Deployment demo/web");
        let claimant = identity.claimant();
        assert_eq!(claimant.target_kind, "Deployment");
        assert_eq!(claimant.target_name, "web");
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let err = Identity::from_env(env(&[(TARGET_KIND, "Deployment"), (TARGET_NAME, "web")]))
            .expect_err("no pod");
        assert!(
            matches!(err, IdentityError::Missing(POD_NAMESPACE)),
            "{err}"
        );
        assert!(err.to_string().contains("--config FILE"), "{err}");
        let err = Identity::from_env(env(&[
            (POD_NAME, "p"),
            (POD_NAMESPACE, "demo"),
            (TARGET_KIND, "CronJob"),
            (TARGET_NAME, "x"),
        ]))
        .expect_err("kind");
        assert_eq!(
            err.to_string(),
            "STOWAWAY_TARGET_KIND=CronJob: a sidecar serves a Deployment, StatefulSet or DaemonSet"
        );
    }
}
