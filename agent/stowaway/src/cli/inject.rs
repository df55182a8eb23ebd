//! `stowaway inject`: give a running workload the Stowaway sidecar, or take it away, by a
//! rollout the user asks for (docs/sidecar.md, "Injecting into running workloads").
//!
//! The sidecar is injected when a pod is created, never into a running one. This command
//! sets `stowaway.dev/inject: "true"` and a `stowaway.dev/restartedAt` time on the workload's
//! pod template (as `kubectl rollout restart` sets its own annotation), so that the
//! workload's controller replaces its pods and the webhook injects the new ones. `--remove`
//! takes both annotations away, which rolls the pods back without the sidecar.

use std::io::Write;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use stowaway_api::BackupConfiguration;
use stowaway_operator::injection::{CONTAINER, INJECT_ANNOTATION};

use super::Global;

/// The time of the last rollout `stowaway inject` asked for, on the pod template.
pub(crate) const RESTARTED_AT_ANNOTATION: &str = "stowaway.dev/restartedAt";
/// Name of the chart's sidecar-injecting webhook in its MutatingWebhookConfiguration.
pub(crate) const INJECT_WEBHOOK: &str = "inject.stowaway.dev";

/// Give a running workload the Stowaway sidecar (or take it away) by rolling its pods.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workload: deployment/NAME, statefulset/NAME or daemonset/NAME.
    workload: String,
    /// Its namespace (default: the current kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Print the change instead of making it.
    #[arg(long)]
    dry_run: bool,
    /// Take the sidecar away: remove the annotations, rolling the pods without it.
    #[arg(long)]
    remove: bool,
}

/// A kind of workload whose pods can be rolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    /// The kind's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }

    /// The name `kubectl` takes (`deployment/web`).
    fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }
}

/// The workload `KIND/NAME` names, or why it cannot be rolled.
pub(crate) fn parse_workload(text: &str) -> Result<(Kind, String), String> {
    let Some((kind, name)) = text.split_once('/') else {
        return Err(format!(
            "{text:?}: name the workload as KIND/NAME, such as deployment/web"
        ));
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "{text:?}: expected KIND/NAME, such as deployment/web"
        ));
    }
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deployment" | "deployments" | "deploy" | "deployment.apps" => Kind::Deployment,
        "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => Kind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => Kind::DaemonSet,
        "pod" | "pods" | "po" => {
            return Err(format!(
                "{text}: a bare Pod cannot be rolled; the sidecar is injected when a pod is \
                 created, so recreate it with the annotation {INJECT_ANNOTATION}: \"true\" (or \
                 inject into the Deployment, StatefulSet or DaemonSet that owns it)"
            ));
        }
        "job" | "jobs" | "cronjob" | "cronjobs" | "cj" => {
            return Err(format!(
                "{text}: a Job cannot be rolled; add the annotation {INJECT_ANNOTATION}: \
                 \"true\" to its pod template and its next pods get the sidecar"
            ));
        }
        "replicaset" | "replicasets" | "rs" | "replicationcontroller" | "rc" => {
            return Err(format!(
                "{text}: inject into the Deployment that owns it; a {kind} does not roll its pods"
            ));
        }
        other => {
            return Err(format!(
                "{text}: {other:?} is not a workload that can be rolled (deployment, \
                 statefulset or daemonset)"
            ));
        }
    };
    Ok((kind, name.to_owned()))
}

/// The merge patch of the pod template: the annotations set (`remove`: taken away).
pub(crate) fn patch(remove: bool, now: Timestamp) -> Value {
    let annotations = if remove {
        json!({ INJECT_ANNOTATION: null, RESTARTED_AT_ANNOTATION: null })
    } else {
        json!({ INJECT_ANNOTATION: "true", RESTARTED_AT_ANNOTATION: now.to_string() })
    };
    json!({"spec": {"template": {"metadata": {"annotations": annotations}}}})
}

/// What the command sees of the workload and the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The pod template's `stowaway.dev/inject`, if any.
    pub template_inject: Option<String>,
    /// Whether it carries [`RESTARTED_AT_ANNOTATION`].
    pub template_restarted: bool,
    /// The workload's pods.
    pub pods: usize,
    /// Those with the sidecar.
    pub with_sidecar: usize,
    /// BackupConfigurations in sidecar mode targeting the workload (`None`: unknown).
    pub sidecar_configs: Option<Vec<String>>,
    /// Whether the chart's injecting webhook is installed (`None`: unknown).
    pub webhook: Option<bool>,
}

/// What to do, and what to warn about.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// Nothing; the reason.
    Nothing(String),
    /// Patch the workload with this.
    Patch(Value),
}

/// Decides what `stowaway inject` (or `--remove`) does about a workload; returns the action
/// and the warnings to print.
pub(crate) fn decide(
    remove: bool,
    label: &str,
    seen: &Observed,
    now: Timestamp,
) -> (Action, Vec<String>) {
    let mut warnings = Vec::new();
    let configs = seen
        .sidecar_configs
        .as_deref()
        .unwrap_or_default()
        .join(", ");
    if !remove {
        if seen.pods > 0 && seen.with_sidecar == seen.pods {
            return (
                Action::Nothing(format!(
                    "every pod of {label} ({}) already carries the Stowaway sidecar: nothing to do",
                    seen.pods
                )),
                warnings,
            );
        }
        match seen.webhook {
            Some(true) => {}
            Some(false) => warnings.push(format!(
                "no MutatingWebhookConfiguration has the webhook {INJECT_WEBHOOK}: is the \
                 Stowaway chart installed (with injection.enabled)? Without it the new pods \
                 start without the sidecar"
            )),
            None => warnings.push(format!(
                "cannot list MutatingWebhookConfigurations to see whether {INJECT_WEBHOOK} is \
                 installed; without it the new pods start without the sidecar"
            )),
        }
        return (Action::Patch(patch(false, now)), warnings);
    }
    if let Some(value) = seen
        .template_inject
        .as_deref()
        .filter(|v| !v.trim().eq_ignore_ascii_case("true"))
    {
        return (
            Action::Nothing(format!(
                "the pod template of {label} already refuses the sidecar ({INJECT_ANNOTATION}:                  {value:?}): nothing to do"
            )),
            warnings,
        );
    }
    let asks = seen.template_inject.is_some() || seen.template_restarted;
    if !asks {
        let reason = if seen.with_sidecar == 0 {
            format!(
                "{label} has no sidecar and its pod template does not ask for one: nothing to do"
            )
        } else if !configs.is_empty() {
            format!(
                "the pods of {label} get the sidecar from BackupConfiguration {configs} (its \
                 annotation {INJECT_ANNOTATION}: \"true\"), not from the pod template: remove \
                 that annotation, then restart the pods (kubectl rollout restart)"
            )
        } else {
            format!(
                "the pod template of {label} does not ask for the sidecar any more; {} of its \
                 pods still carry it until they are restarted (kubectl rollout restart)",
                seen.with_sidecar
            )
        };
        return (Action::Nothing(reason), warnings);
    }
    if !configs.is_empty() {
        warnings.push(format!(
            "BackupConfiguration {configs} puts {label} in sidecar mode (annotation \
             {INJECT_ANNOTATION}: \"true\"): the new pods get the sidecar again until that \
             annotation goes"
        ));
    }
    (Action::Patch(patch(true, now)), warnings)
}

/// The label selector as the API takes it (`app=web,tier in (a,b)`).
pub(crate) fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    parts.join(",")
}

pub(crate) async fn run(_g: &Global, args: Args) -> anyhow::Result<u8> {
    let (kind, name) = parse_workload(&args.workload).map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes API to talk to: set KUBECONFIG to a kubeconfig file")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    inject(
        &client,
        &namespace,
        kind,
        &name,
        &args,
        Timestamp::now(),
        &mut out,
        &mut err,
    )
    .await
}

/// The pod template and selector of the workload, through the API of its kind.
async fn workload(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<(PodTemplateSpec, LabelSelector)>, kube::Error> {
    Ok(match kind {
        Kind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec)
            .map(|s| (s.template, s.selector)),
        Kind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec)
            .map(|s| (s.template, s.selector)),
        Kind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec)
            .map(|s| (s.template, s.selector)),
    })
}

async fn apply_patch(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
    patch: &Value,
) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    let patch = Patch::Merge(patch);
    match kind {
        Kind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch(name, &params, &patch)
                .await?;
        }
        Kind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &patch)
                .await?;
        }
        Kind::DaemonSet => {
            Api::<DaemonSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &patch)
                .await?;
        }
    }
    Ok(())
}

/// Looks, decides, and patches (unless `--dry-run`); prints what it did to `out` and the
/// warnings to `err`.
#[allow(
    clippy::too_many_arguments,
    reason = "the command's inputs, kept apart for tests"
)]
pub(crate) async fn inject(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
    args: &Args,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let label = format!("{}/{name}", kind.resource());
    let (template, selector) = workload(client, namespace, kind, name)
        .await
        .with_context(|| format!("reading {label} in namespace {namespace}"))?
        .ok_or_else(|| anyhow::anyhow!("{label} not found in namespace {namespace}"))?;
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector_text(&selector)))
        .await
        .with_context(|| format!("listing the pods of {label}"))?
        .items;
    let with_sidecar = pods
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers.iter().any(|c| c.name == CONTAINER))
        })
        .count();
    let sidecar_configs = Api::<BackupConfiguration>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .ok()
        .map(|list| {
            list.items
                .iter()
                .filter(|c| {
                    let annotated = c
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(INJECT_ANNOTATION))
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                    annotated
                        && c.spec
                            .target
                            .as_ref()
                            .is_some_and(|t| t.kind == kind.name() && t.name == name)
                })
                .filter_map(|c| c.metadata.name.clone())
                .collect()
        });
    let webhook = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .ok()
        .map(|list| {
            list.items
                .iter()
                .flat_map(|c| c.webhooks.iter().flatten())
                .any(|w| w.name == INJECT_WEBHOOK)
        });
    let seen = Observed {
        template_inject: annotations.get(INJECT_ANNOTATION).cloned(),
        template_restarted: annotations.contains_key(RESTARTED_AT_ANNOTATION),
        pods: pods.len(),
        with_sidecar,
        sidecar_configs,
        webhook,
    };
    let (action, warnings) = decide(args.remove, &label, &seen, now);
    for warning in &warnings {
        writeln!(err, "warning: {warning}")?;
    }
    let patch = match action {
        Action::Nothing(reason) => {
            writeln!(out, "{reason}")?;
            return Ok(0);
        }
        Action::Patch(patch) => patch,
    };
    if args.dry_run {
        writeln!(
            out,
            "would patch {label} in namespace {namespace} (merge patch):\n{}",
            serde_json::to_string_pretty(&patch)?
        )?;
        return Ok(0);
    }
    apply_patch(client, namespace, kind, name, &patch)
        .await
        .with_context(|| format!("patching {label} in namespace {namespace}"))?;
    let done = if args.remove {
        "took the Stowaway sidecar away from the pod template; its pods roll without it"
    } else {
        "asked for the Stowaway sidecar on the pod template; its pods roll and the new ones get it"
    };
    writeln!(out, "{label} in namespace {namespace}: {done}.")?;
    writeln!(
        out,
        "Watch the rollout: kubectl rollout status {label} -n {namespace}"
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests;
