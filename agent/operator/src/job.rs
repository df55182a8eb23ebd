//! The Job that runs a backup with `stowaway` when the target has no sidecar (a PVC alone, an
//! external database), or a restore (a volume restore into a workload mounts the workload's
//! claims).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use stowaway_api::common::TypedObjectReference;
use stowaway_api::function::FunctionSpec;
use stowaway_api::hook_template::FunctionHookExecutorSpec;
use stowaway_api::{BackupSession, RestoreSession};

use crate::backup_configuration::managed_labels;
use crate::duration::parse_duration;
use crate::invoker::{Invoker, Member};
use crate::names;
use crate::volume_restore::VolumeClaim;

/// How the operator runs executor Jobs (from its own configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// Image with the `stowaway` binary (the operator's own image by default).
    pub image: String,
    /// Image pull policy (`IfNotPresent` by default).
    pub image_pull_policy: Option<String>,
    /// Service account the Job runs as.
    pub service_account: Option<String>,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            image: "stowaway:latest".to_owned(),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            service_account: None,
        }
    }
}

/// Where a PersistentVolumeClaim target is mounted in the Job.
pub const TARGET_MOUNT: &str = "/stowaway/target";

/// Label on a restore Job and its pod: the RestoreSession.
pub const RESTORE_SESSION_LABEL: &str = "stowaway.dev/restore-session";

/// Name of the Job of a BackupSession (of one member, for a BackupBatch).
pub fn backup_job_name(session: &BackupSession, member: Option<&str>) -> String {
    let name = session.name_any();
    match member {
        Some(member) => names::object_name(&["backup", &name, member]),
        None => names::object_name(&["backup", &name]),
    }
}

/// Name of the Job of a RestoreSession.
pub fn restore_job_name(session: &RestoreSession) -> String {
    names::object_name(&["restore", &session.name_any()])
}

/// The Job running `stowaway execute backup` for `session` (for a BackupBatch, for one
/// member: `--member NAME`, the member's target mounted).
pub fn backup_job(
    session: &BackupSession,
    invoker: Invoker<'_>,
    member: &Member<'_>,
    settings: &JobSettings,
) -> Job {
    let mut labels = managed_labels();
    labels.insert(names::INVOKER_NAME_LABEL.into(), invoker.name());
    labels.insert(
        names::SESSION_NAME_LABEL.into(),
        session.spec.session.clone(),
    );
    labels.insert("stowaway.dev/backup-session".into(), session.name_any());
    if let Some(member) = member.name {
        labels.insert(names::BATCH_MEMBER_LABEL.into(), member.to_owned());
    }
    executor_job(
        &ExecutorJob {
            name: backup_job_name(session, member.name),
            action: "backup",
            session: session.name_any(),
            member: member.name,
            namespace: session.namespace().unwrap_or_default(),
            target: member.target,
            timeout: session.spec.backup_timeout.as_deref(),
            labels,
            owner: session.controller_owner_ref(&()),
            claims: Vec::new(),
            security: None,
        },
        settings,
    )
}

/// The Job running `stowaway execute restore` for `session`; a PersistentVolumeClaim target
/// is mounted writable.
pub fn restore_job(session: &RestoreSession, settings: &JobSettings) -> Job {
    let mut labels = managed_labels();
    labels.insert(RESTORE_SESSION_LABEL.into(), session.name_any());
    executor_job(
        &ExecutorJob {
            name: restore_job_name(session),
            action: "restore",
            session: session.name_any(),
            member: None,
            namespace: session.namespace().unwrap_or_default(),
            target: session.spec.target.as_ref(),
            timeout: session.spec.restore_timeout.as_deref(),
            labels,
            owner: session.controller_owner_ref(&()),
            claims: Vec::new(),
            security: None,
        },
        settings,
    )
}

/// The Job running `stowaway execute restore` for a volume restore into a workload
/// (`volume_restore`): each claim is mounted writable at
/// `/stowaway/volumes/<volume-name>` (`injection::VOLUMES_DIR`), where the executor finds
/// the workload's volumes, and the pod runs as `security` (the workload's user and groups,
/// `Workload::job_security`).
pub fn workload_restore_job(
    session: &RestoreSession,
    settings: &JobSettings,
    claims: &[VolumeClaim],
    security: PodSecurityContext,
) -> Job {
    let mut labels = managed_labels();
    labels.insert(RESTORE_SESSION_LABEL.into(), session.name_any());
    executor_job(
        &ExecutorJob {
            name: restore_job_name(session),
            action: "restore",
            session: session.name_any(),
            member: None,
            namespace: session.namespace().unwrap_or_default(),
            target: None,
            timeout: session.spec.restore_timeout.as_deref(),
            labels,
            owner: session.controller_owner_ref(&()),
            claims: claims
                .iter()
                .map(|c| ClaimMount {
                    volume: names::object_name(&["volume", &c.volume]),
                    claim: c.claim.clone(),
                    path: format!("{}/{}", crate::injection::VOLUMES_DIR, c.volume),
                })
                .collect(),
            security: Some(security),
        },
        settings,
    )
}

/// A claim mounted writable in an executor Job.
struct ClaimMount {
    /// The Job's volume name.
    volume: String,
    claim: String,
    path: String,
}

/// What differs between the executor Jobs of backups and restores.
struct ExecutorJob<'a> {
    name: String,
    /// `backup` or `restore` (the `stowaway execute` subcommand).
    action: &'static str,
    session: String,
    /// The BackupBatch member the Job backs up.
    member: Option<&'a str>,
    namespace: String,
    target: Option<&'a TypedObjectReference>,
    timeout: Option<&'a str>,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
    /// Claims of a workload mounted writable (a volume restore).
    claims: Vec<ClaimMount>,
    /// The pod's security context instead of the default (user and group 65534).
    security: Option<PodSecurityContext>,
}

/// The Job running `stowaway execute <action>`.
///
/// The Job does not retry by itself (`backoffLimit: 0`): retries are new sessions per
/// `retryConfig`. It ends at the session's timeout. A PersistentVolumeClaim target is mounted
/// at [`TARGET_MOUNT`], read-only for backups. The container runs as non-root with a read-only
/// root file system and no privilege escalation; `/tmp` is an emptyDir.
fn executor_job(job: &ExecutorJob<'_>, settings: &JobSettings) -> Job {
    let read_only = job.action == "backup";
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }];
    if let Some(target) = job.target
        && target.kind == "PersistentVolumeClaim"
    {
        volumes.push(Volume {
            name: "target".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: target.name.clone(),
                read_only: Some(read_only),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "target".into(),
            mount_path: TARGET_MOUNT.into(),
            read_only: Some(read_only),
            ..VolumeMount::default()
        });
    }
    for claim in &job.claims {
        volumes.push(Volume {
            name: claim.volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: claim.volume.clone(),
            mount_path: claim.path.clone(),
            read_only: Some(false),
            ..VolumeMount::default()
        });
    }
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let env = vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(field("metadata.name")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "POD_NAMESPACE".into(),
            value_from: Some(field("metadata.namespace")),
            ..EnvVar::default()
        },
    ];
    let active_deadline_seconds = job
        .timeout
        .and_then(|t| parse_duration(t).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .filter(|s| *s > 0);
    let mut args = vec![
        "execute".into(),
        job.action.into(),
        "--namespace".into(),
        job.namespace.clone(),
        "--session".into(),
        job.session.clone(),
    ];
    if let Some(member) = job.member {
        args.extend(["--member".into(), member.to_owned()]);
    }
    let container = Container {
        name: "stowaway".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job.name.clone()),
            namespace: Some(job.namespace.clone()),
            labels: Some(job.labels.clone()),
            owner_references: job.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds,
            ttl_seconds_after_finished: Some(24 * 3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job.labels.clone()),
                    annotations: Some(BTreeMap::from([(
                        "kubectl.kubernetes.io/default-container".to_owned(),
                        "stowaway".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: settings.service_account.clone(),
                    security_context: Some(job.security.clone().unwrap_or(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65534),
                        run_as_group: Some(65534),
                        fs_group: Some(65534),
                        ..PodSecurityContext::default()
                    })),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// What a Job's status says about the run.
pub fn job_state(job: &Job) -> crate::executor::JobState {
    use crate::executor::JobState;
    let Some(status) = &job.status else {
        return JobState::Active;
    };
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" {
            continue;
        }
        match condition.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return JobState::Succeeded,
            "Failed" | "FailureTarget" => {
                let why = match (&condition.reason, &condition.message) {
                    (Some(r), Some(m)) => format!("{r}: {m}"),
                    (Some(r), None) => r.clone(),
                    (None, Some(m)) => m.clone(),
                    (None, None) => "failed".to_owned(),
                };
                return JobState::Failed(why);
            }
            _ => {}
        }
    }
    JobState::Active
}

/// What a Function hook's Job runs.
#[derive(Clone, Debug)]
pub struct HookJob<'a> {
    /// Job name.
    pub name: String,
    /// Namespace (the session's).
    pub namespace: &'a str,
    /// The Function.
    pub function: &'a FunctionSpec,
    /// The HookTemplate's Function executor (extra env, volumes).
    pub executor: &'a FunctionHookExecutorSpec,
    /// Variables for `${...}` in the image, command and args, also given as environment.
    pub vars: &'a BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Owner (the session).
    pub owner: Option<OwnerReference>,
    /// Time limit (the hook's `timeout`).
    pub timeout: Option<std::time::Duration>,
    /// Retries of the pod (the hook's `maxRetry`).
    pub retries: i32,
}

/// The Job of a Function hook: the Function's image, command and args with `${VAR}` and
/// `${VAR:=default}` substituted; an unknown variable without a default is an error naming it.
pub fn hook_job(job: &HookJob<'_>) -> Result<Job, String> {
    use crate::variables::{Unknown, substitute};
    let render = |text: &str, what: &str| {
        substitute(text, job.vars, Unknown::Error)
            .map_err(|var| format!("{what}: variable {var} has no value and no default"))
    };
    let image = render(&job.function.image, "image")?;
    let command = job
        .function
        .command
        .iter()
        .map(|c| render(c, "command"))
        .collect::<Result<Vec<_>, _>>()?;
    let args = job
        .function
        .args
        .iter()
        .map(|a| render(a, "args"))
        .collect::<Result<Vec<_>, _>>()?;
    let valid_env = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let mut env: Vec<EnvVar> = job
        .vars
        .iter()
        .filter(|(k, _)| valid_env(k))
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..EnvVar::default()
        })
        .collect();
    for extra in &job.executor.env {
        env.retain(|e| e.name != extra.name);
        env.push(extra.clone());
    }
    let volumes = job
        .executor
        .volumes
        .iter()
        .map(|v| {
            serde_json::from_value::<Volume>(v.clone())
                .map_err(|e| format!("executor.function.volumes: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut mounts = job.function.volume_mounts.clone();
    mounts.extend(job.executor.volume_mounts.iter().cloned());
    let container = Container {
        name: "hook".into(),
        image: Some(image),
        command: (!command.is_empty()).then_some(command),
        args: (!args.is_empty()).then_some(args),
        working_dir: job.function.working_dir.clone(),
        env: Some(env),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job.name.clone()),
            namespace: Some(job.namespace.to_owned()),
            labels: Some(job.labels.clone()),
            owner_references: job.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(job.retries.max(0)),
            active_deadline_seconds: job
                .timeout
                .and_then(|t| i64::try_from(t.as_secs()).ok())
                .filter(|s| *s > 0),
            ttl_seconds_after_finished: Some(24 * 3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job.labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function() -> FunctionSpec {
        serde_yaml::from_str(
            r#"
image: registry.example/notify:${VERSION:=1.2}
command: [/notify]
args: ["--to=${channel}", "--session=${SESSION}"]
"#,
        )
        .expect("function")
    }

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("SESSION".to_owned(), "db-1".to_owned()),
            ("channel".to_owned(), "ops".to_owned()),
            ("not valid".to_owned(), "x".to_owned()),
        ])
    }

    #[test]
    fn a_function_hook_job_substitutes_variables_and_passes_them_as_env() {
        let function = function();
        let executor: FunctionHookExecutorSpec = serde_yaml::from_str(
            r#"
name: notify
env: [{name: channel, value: override}]
volumes: [{name: scratch, emptyDir: {}}]
volumeMounts: [{name: scratch, mountPath: /scratch}]
"#,
        )
        .expect("executor");
        let vars = vars();
        let job = hook_job(&HookJob {
            name: "hook-db-1-pre-notify".into(),
            namespace: "demo",
            function: &function,
            executor: &executor,
            vars: &vars,
            labels: BTreeMap::new(),
            owner: None,
            timeout: Some(std::time::Duration::from_secs(120)),
            retries: 2,
        })
        .expect("job");
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(2));
        assert_eq!(spec.active_deadline_seconds, Some(120));
        let pod = spec.template.spec.expect("pod");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/notify:1.2"));
        assert_eq!(
            c.args.clone().unwrap_or_default(),
            vec!["--to=ops".to_owned(), "--session=db-1".to_owned()]
        );
        let env: Vec<(String, String)> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        // Variables become env (names that are valid only); the executor's env wins.
        assert_eq!(
            env,
            vec![
                ("SESSION".to_owned(), "db-1".to_owned()),
                ("channel".to_owned(), "override".to_owned()),
            ]
        );
        assert_eq!(pod.volumes.map(|v| v.len()), Some(1));
        assert_eq!(
            c.volume_mounts.as_ref().map(|m| m[0].mount_path.as_str()),
            Some("/scratch")
        );
    }

    #[test]
    fn a_variable_without_value_or_default_is_named() {
        let function = function();
        let executor = FunctionHookExecutorSpec::default();
        let vars = BTreeMap::from([("SESSION".to_owned(), "db-1".to_owned())]);
        let err = hook_job(&HookJob {
            name: "j".into(),
            namespace: "demo",
            function: &function,
            executor: &executor,
            vars: &vars,
            labels: BTreeMap::new(),
            owner: None,
            timeout: None,
            retries: 0,
        })
        .expect_err("channel is missing");
        assert_eq!(err, "args: variable channel has no value and no default");
    }
}
