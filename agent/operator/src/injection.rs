//! Sidecar injection (pure): whether a new pod gets the Stowaway sidecar, and the pod it
//! becomes. The webhook (`/inject`) turns the difference into a JSON patch.
//!
//! A pod gets the sidecar when it has none yet and either carries the annotation
//! `stowaway.dev/inject: "true"` (usually set on the workload's pod template) or belongs to a
//! workload (Deployment, StatefulSet, DaemonSet) that a BackupConfiguration of its namespace
//! targets and that configuration carries the same annotation (the sidecar mode). Injection
//! only happens when a pod is created, so nothing restarts by surprise; `stowaway inject`
//! triggers a rollout when a user asks for one.
//!
//! The sidecar container:
//! - runs `stowaway sidecar`, with its identity from the downward API (`POD_NAME`,
//!   `POD_NAMESPACE`, `NODE_NAME`) and its target in `STOWAWAY_TARGET_KIND`/`_NAME`;
//! - mounts the volumes the application containers mount (data volumes only: not Secrets,
//!   ConfigMaps, projected or downward-API volumes) read-only under `/stowaway/volumes/<name>`;
//! - shares an emptyDir at `/var/run/stowaway` with every application container: the on-demand
//!   API's Unix socket lives there;
//! - runs as non-root with a read-only root file system, no privilege escalation and no
//!   capabilities; it takes the user and group of the application container that mounts the
//!   data, so that it can read what the application wrote.
//!
//! The pod gets the label `stowaway.dev/sidecar-target=<kind>.<name>`, by which the operator
//! sees that a sidecar runs for the target.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod,
    ResourceRequirements, SecurityContext, Volume, VolumeMount,
};
use stowaway_api::BackupConfiguration;
use stowaway_api::common::TypedObjectReference;

use crate::names;

/// Name of the injected container.
pub const CONTAINER: &str = "stowaway";
/// Annotation asking for the sidecar (on a pod, its template, or a BackupConfiguration).
pub const INJECT_ANNOTATION: &str = "stowaway.dev/inject";
/// Where the application volumes are mounted in the sidecar.
pub const VOLUMES_DIR: &str = "/stowaway/volumes";
/// The shared directory of the on-demand API's Unix socket.
pub const SOCKET_DIR: &str = "/var/run/stowaway";
/// Name of the shared socket volume.
pub const SOCKET_VOLUME: &str = "stowaway-socket";
/// Name of the sidecar's scratch volume (its `/tmp`; the root file system is read-only).
pub const TMP_VOLUME: &str = "stowaway-tmp";

/// How the sidecar is injected (from the operator's configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct SidecarSettings {
    /// Image with the `stowaway` binary.
    pub image: String,
    /// Image pull policy.
    pub image_pull_policy: Option<String>,
    /// Requests and limits of the sidecar container.
    pub resources: Option<ResourceRequirements>,
    /// Port of the on-demand API on 127.0.0.1.
    pub api_port: u16,
    /// Deny a pod when the webhook cannot decide (instead of admitting it without a sidecar).
    pub fail_closed: bool,
    /// Whether this sidecar's on-demand API may create RestoreSessions
    /// (`STOWAWAY_ALLOW_RESTORE`); set per pod from [`Decision::Inject`].
    pub allow_restore: bool,
}

impl Default for SidecarSettings {
    fn default() -> Self {
        SidecarSettings {
            image: "stowaway:latest".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            resources: None,
            api_port: 8089,
            fail_closed: false,
            allow_restore: false,
        }
    }
}

impl SidecarSettings {
    /// These settings with a CPU request and a memory request and limit (Kubernetes
    /// quantities such as `50m` and `256Mi`).
    pub fn with_resources(mut self, cpu_request: &str, memory: &str) -> Self {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let quantity = |q: &str| Quantity(q.to_owned());
        self.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity(cpu_request)),
                ("memory".to_owned(), quantity(memory)),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), quantity(memory))])),
            ..ResourceRequirements::default()
        });
        self
    }
}

/// Why a pod gets the sidecar, or why not.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Inject, for this target.
    Inject {
        /// The workload (or the pod itself when it has none).
        target: TypedObjectReference,
        /// What asked for it.
        because: String,
        /// Whether the sidecar's on-demand API may create RestoreSessions: the annotation
        /// `stowaway.dev/allow-restore: "true"` on the pod or on the BackupConfiguration in
        /// sidecar mode (the one that also grants the sidecar RestoreSession creation).
        allow_restore: bool,
    },
    /// Leave the pod alone.
    Skip(String),
}

/// The workload a pod belongs to, from its owner references: a ReplicaSet's pods belong to
/// the Deployment named by the ReplicaSet without its `pod-template-hash` suffix.
pub fn workload_of(pod: &Pod) -> Option<TypedObjectReference> {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let reference = |kind: &str, name: &str| TypedObjectReference {
        api_group: Some("apps".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: pod.metadata.namespace.clone(),
    };
    match owner.kind.as_str() {
        "StatefulSet" | "DaemonSet" => Some(reference(&owner.kind, &owner.name)),
        "ReplicaSet" => {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"));
            match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) => Some(reference("Deployment", deployment)),
                None => Some(reference("ReplicaSet", &owner.name)),
            }
        }
        _ => None,
    }
}

fn asks(annotations: Option<&BTreeMap<String, String>>) -> Option<bool> {
    annotations
        .and_then(|a| a.get(INJECT_ANNOTATION))
        .map(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn allows_restore(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(crate::sidecar_rbac::ALLOW_RESTORE_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether `pod` gets the sidecar, given the BackupConfigurations of its namespace.
pub fn decide(pod: &Pod, configs: &[BackupConfiguration]) -> Decision {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    if containers
        .unwrap_or_default()
        .iter()
        .any(|c| c.name == CONTAINER)
    {
        return Decision::Skip("the pod already has the sidecar".into());
    }
    let pod_says = asks(pod.metadata.annotations.as_ref());
    if pod_says == Some(false) {
        return Decision::Skip(format!("the pod says {INJECT_ANNOTATION}: false"));
    }
    let workload = workload_of(pod);
    if pod_says == Some(true) {
        let target = workload.unwrap_or_else(|| TypedObjectReference {
            api_group: Some(String::new()),
            kind: "Pod".into(),
            name: pod
                .metadata
                .name
                .clone()
                .or_else(|| pod.metadata.generate_name.clone())
                .unwrap_or_default(),
            namespace: pod.metadata.namespace.clone(),
        });
        return Decision::Inject {
            target,
            because: format!("the pod carries {INJECT_ANNOTATION}: true"),
            allow_restore: allows_restore(pod.metadata.annotations.as_ref()),
        };
    }
    let Some(workload) = workload else {
        return Decision::Skip("the pod belongs to no Deployment, StatefulSet or DaemonSet".into());
    };
    let config = configs.iter().find(|c| {
        asks(c.metadata.annotations.as_ref()) == Some(true)
            && c.spec
                .target
                .as_ref()
                .is_some_and(|t| t.kind == workload.kind && t.name == workload.name)
    });
    match config {
        Some(config) => Decision::Inject {
            because: format!(
                "BackupConfiguration {} targets {} {} in sidecar mode",
                config.metadata.name.as_deref().unwrap_or("?"),
                workload.kind,
                workload.name
            ),
            target: workload,
            allow_restore: allows_restore(pod.metadata.annotations.as_ref())
                || allows_restore(config.metadata.annotations.as_ref()),
        },
        None => Decision::Skip(format!(
            "no BackupConfiguration in sidecar mode targets {} {}",
            workload.kind, workload.name
        )),
    }
}

/// Volumes whose data the sidecar backs up: those holding application data, not
/// configuration or credentials.
fn is_data_volume(volume: &Volume) -> bool {
    volume.secret.is_none()
        && volume.config_map.is_none()
        && volume.projected.is_none()
        && volume.downward_api.is_none()
        && volume.name != SOCKET_VOLUME
        && volume.name != TMP_VOLUME
}

/// `pod` with the sidecar injected for `target`.
pub fn inject(pod: &Pod, target: &TypedObjectReference, settings: &SidecarSettings) -> Pod {
    let mut pod = pod.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        names::SIDECAR_TARGET_LABEL.into(),
        names::sidecar_target(&target.kind, &target.name),
    );
    let Some(spec) = pod.spec.as_mut() else {
        return pod;
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    let data: Vec<String> = volumes
        .iter()
        .filter(|v| is_data_volume(v))
        .map(|v| v.name.clone())
        .collect();
    // The user of the first application container mounting data: the sidecar reads as it.
    let app_user = spec.containers.iter().find_map(|c| {
        let mounts_data = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| data.contains(&m.name));
        let sc = c.security_context.as_ref()?;
        (mounts_data && (sc.run_as_user.is_some() || sc.run_as_group.is_some()))
            .then_some((sc.run_as_user, sc.run_as_group))
    });
    let mounted: Vec<String> = data
        .into_iter()
        .filter(|name| {
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .any(|c| c.volume_mounts.iter().flatten().any(|m| &m.name == name))
        })
        .collect();
    for name in [SOCKET_VOLUME, TMP_VOLUME] {
        if !volumes.iter().any(|v| v.name == name) {
            volumes.push(Volume {
                name: name.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
        }
    }
    for container in &mut spec.containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.name == SOCKET_VOLUME) {
            mounts.push(VolumeMount {
                name: SOCKET_VOLUME.into(),
                mount_path: SOCKET_DIR.into(),
                ..VolumeMount::default()
            });
        }
    }
    let mut mounts: Vec<VolumeMount> = mounted
        .iter()
        .map(|name| VolumeMount {
            name: name.clone(),
            mount_path: format!("{VOLUMES_DIR}/{name}"),
            read_only: Some(true),
            ..VolumeMount::default()
        })
        .collect();
    mounts.push(VolumeMount {
        name: SOCKET_VOLUME.into(),
        mount_path: SOCKET_DIR.into(),
        ..VolumeMount::default()
    });
    mounts.push(VolumeMount {
        name: TMP_VOLUME.into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    });
    let field = |path: &str| EnvVar {
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    };
    let env = vec![
        EnvVar {
            name: "POD_NAME".into(),
            ..field("metadata.name")
        },
        EnvVar {
            name: "POD_NAMESPACE".into(),
            ..field("metadata.namespace")
        },
        EnvVar {
            name: "NODE_NAME".into(),
            ..field("spec.nodeName")
        },
        value("STOWAWAY_TARGET_KIND", target.kind.clone()),
        value("STOWAWAY_TARGET_NAME", target.name.clone()),
        value("STOWAWAY_VOLUMES_DIR", VOLUMES_DIR.into()),
        value("STOWAWAY_SOCKET", format!("{SOCKET_DIR}/sidecar.sock")),
        value("STOWAWAY_API_PORT", settings.api_port.to_string()),
    ];
    let mut env = env;
    if settings.allow_restore {
        env.push(value("STOWAWAY_ALLOW_RESTORE", "true".into()));
    }
    let (run_as_user, run_as_group) = app_user.unwrap_or((None, None));
    spec.containers.push(Container {
        name: CONTAINER.into(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(vec!["sidecar".into()]),
        env: Some(env),
        resources: settings.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user,
            run_as_group,
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    });
    pod
}

/// The JSON patch turning `pod` into the pod with the sidecar.
pub fn patch(
    pod: &Pod,
    target: &TypedObjectReference,
    settings: &SidecarSettings,
) -> json_patch::Patch {
    let before = serde_json::to_value(pod).unwrap_or_default();
    let after = serde_json::to_value(inject(pod, target, settings)).unwrap_or_default();
    json_patch::diff(&before, &after)
}

#[cfg(test)]
mod tests;
