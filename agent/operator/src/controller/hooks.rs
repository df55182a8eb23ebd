//! Running one hook: look up its HookTemplate, check the template may be used from the
//! session's namespace, and perform its action with the template's executor.
//!
//! - `Operator`: the operator performs `httpGet`, `httpPost` and `tcpSocket` (success: HTTP
//!   200–399, or an open TCP connection).
//! - `Pod`: Running pods of the session's namespace matching `executor.pod.selector` (and
//!   `owner`), one (`ExecuteOnOne`, the first by name) or all (`ExecuteOnAll`): an `exec`
//!   action runs in the pod through the API server (success: exit status 0); an HTTP or TCP
//!   action without a host goes to the pod's IP.
//! - `Function`: a Job runs the Function's image (see `function.rs`); the hook stays running
//!   until the Job ends.
//!
//! Each attempt has the hook's `timeout` (default 30 s); `maxRetry` more attempts follow a
//! failure. `${name}` in the action is replaced by the hook's `params` (then the template's
//! parameter defaults) and by the session variables `NAMESPACE`, `SESSION`, `PHASE` and
//! `TARGET_NAME`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, AttachParams, ListParams};
use serde_json::Value;
use stowaway_api::HookTemplate;
use stowaway_api::common::{Condition, HookInfo, HookStatus};
use stowaway_api::hook_template::HookExecutorType;

use super::Context;

mod function;
use crate::admission::{Catalog, usage_allowed};
use crate::duration::parse_duration;
use crate::events::Note;
use crate::hooks::Stage;
use crate::variables::{Unknown, substitute};

/// The session a hook runs for.
pub(crate) struct Invocation<'a> {
    /// The session's namespace.
    pub namespace: &'a str,
    /// The session's name (Function Jobs are named after it).
    pub session: &'a str,
    /// Owner of a Function Job (the session).
    pub owner: Option<OwnerReference>,
    /// Before or after the work.
    pub stage: Stage,
    /// `NAMESPACE`, `SESSION`, `PHASE`, `TARGET_NAME`.
    pub vars: BTreeMap<String, String>,
}

/// Where a hook stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran and succeeded.
    Succeeded,
    /// It failed; the message is for the status.
    Failed(String),
    /// Its Function Job still runs.
    Running,
}

/// Runs the hook, records a final outcome in the session's hook status and the stage's
/// condition (with a Warning Event for a failure), and returns when to look again.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of a session status a hook writes"
)]
pub(crate) async fn run_and_record(
    ctx: &Context,
    invocation: &Invocation<'_>,
    hook: &HookInfo,
    hook_status: &mut Option<HookStatus>,
    conditions: &mut Vec<Condition>,
    condition: &str,
    events: &mut Vec<Note>,
) -> Duration {
    let outcome = match run(ctx, invocation, hook).await {
        Outcome::Running => return Duration::from_secs(5),
        Outcome::Succeeded => Ok(()),
        Outcome::Failed(e) => {
            events.push(Note::warning(
                "HookFailed",
                format!("hook {}: {e}", hook.name),
            ));
            Err(e)
        }
    };
    let mut status = hook_status.take().unwrap_or_default();
    crate::hooks::record(
        &mut status,
        conditions,
        invocation.stage,
        &hook.name,
        &outcome,
        condition,
        ctx.now(),
    );
    *hook_status = Some(status);
    Duration::from_millis(200)
}

/// Runs `hook` for a session.
pub(crate) async fn run(ctx: &Context, invocation: &Invocation<'_>, hook: &HookInfo) -> Outcome {
    match prepare(ctx, invocation, hook).await {
        Err(e) => Outcome::Failed(e),
        Ok((template, vars)) => execute(ctx, invocation, hook, &template, &vars).await,
    }
}

/// The hook's template, once it may be used here, and the variables of its action.
async fn prepare(
    ctx: &Context,
    invocation: &Invocation<'_>,
    hook: &HookInfo,
) -> Result<(HookTemplate, BTreeMap<String, String>), String> {
    let namespace = invocation.namespace;
    let template_ns = hook
        .hook_template
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_owned());
    let api: Api<HookTemplate> = Api::namespaced(ctx.client.clone(), &template_ns);
    let template = api
        .get_opt(&hook.hook_template.name)
        .await
        .map_err(|e| {
            format!(
                "reading HookTemplate {template_ns}/{}: {e}",
                hook.hook_template.name
            )
        })?
        .ok_or_else(|| {
            format!(
                "HookTemplate {template_ns}/{} not found",
                hook.hook_template.name
            )
        })?;
    let policy = template.spec.usage_policy.as_ref();
    let same_namespace = template_ns == namespace;
    let needs_labels = policy.is_some_and(|p| {
        p.allowed_namespaces.from == stowaway_api::common::FromNamespaces::Selector
    });
    let mut catalog = Catalog::default();
    if needs_labels && !same_namespace {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
        if let Ok(Some(ns)) = namespaces.get_opt(namespace).await {
            catalog
                .namespace_labels
                .insert(namespace.to_owned(), ns.metadata.labels.unwrap_or_default());
        }
    }
    if !usage_allowed(policy, &template_ns, namespace, &catalog) {
        return Err(format!(
            "namespace {namespace} is not allowed to refer HookTemplate {template_ns}/{}: check its usagePolicy",
            hook.hook_template.name
        ));
    }
    let mut vars = invocation.vars.clone();
    for param in &template.spec.params {
        if let Some(default) = &param.default {
            vars.entry(param.name.clone())
                .or_insert_with(|| default.clone());
        }
    }
    if let Some(Value::Object(params)) = &hook.params {
        for (k, v) in params {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(k.clone(), v);
        }
    }
    Ok((template, vars))
}

/// Performs the template's action with its executor.
async fn execute(
    ctx: &Context,
    invocation: &Invocation<'_>,
    hook: &HookInfo,
    template: &HookTemplate,
    vars: &BTreeMap<String, String>,
) -> Outcome {
    let name = template.name_any();
    if template.spec.executor.type_ == HookExecutorType::Function {
        return function::run(ctx, invocation, hook, template, vars).await;
    }
    let Some(action) = template.spec.action.as_ref() else {
        return Outcome::Failed(format!("HookTemplate {name} has no action"));
    };
    let targets = match template.spec.executor.type_ {
        HookExecutorType::Pod => match pods(ctx, invocation.namespace, template).await {
            Ok(pods) => pods,
            Err(e) => return Outcome::Failed(e),
        },
        _ => vec![PodTarget::Operator],
    };
    let timeout = hook
        .timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(30));
    let attempts = u32::try_from(hook.max_retry.unwrap_or(0).max(0)).unwrap_or(0) + 1;
    for target in &targets {
        let mut last = String::new();
        let mut ok = false;
        for attempt in 1..=attempts {
            let attempt_once = async {
                match target {
                    PodTarget::Operator => perform(action, vars, None).await,
                    PodTarget::Pod { name, ip } => {
                        if action.get("exec").is_some() {
                            exec(ctx, invocation.namespace, name, action, vars).await
                        } else {
                            perform(action, vars, ip.as_deref()).await
                        }
                    }
                }
            };
            let result = tokio::time::timeout(timeout, attempt_once)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            match result {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => last = e,
            }
            tracing::warn!(hook = %hook.name, attempt, error = %last, "hook failed");
        }
        if !ok {
            let whose = match target {
                PodTarget::Operator => String::new(),
                PodTarget::Pod { name, .. } => format!("pod {name}: "),
            };
            return Outcome::Failed(if attempts > 1 {
                format!("{whose}{last} (after {attempts} attempts)")
            } else {
                format!("{whose}{last}")
            });
        }
    }
    Outcome::Succeeded
}

/// Where an action runs: from the operator, or at one pod (its exec, or its IP as the
/// default host of an HTTP or TCP action).
enum PodTarget {
    Operator,
    Pod { name: String, ip: Option<String> },
}

/// The pods a `Pod` executor runs in: Running pods of the session's namespace matching the
/// selector (and owner), one or all per the strategy.
async fn pods(
    ctx: &Context,
    namespace: &str,
    template: &HookTemplate,
) -> Result<Vec<PodTarget>, String> {
    let name = template.name_any();
    let spec = template
        .spec
        .executor
        .pod
        .as_ref()
        .ok_or_else(|| format!("HookTemplate {name}: the Pod executor needs executor.pod"))?;
    let selector = spec
        .selector
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("HookTemplate {name}: executor.pod.selector is required"))?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("listing pods with {selector:?} in {namespace}: {e}"))?;
    let chosen = crate::hooks::select_pods(
        &list.items,
        spec.owner.as_ref(),
        spec.strategy.unwrap_or_default(),
    );
    if chosen.is_empty() {
        return Err(format!(
            "no Running pod in {namespace} matches {selector:?} for HookTemplate {name}"
        ));
    }
    Ok(chosen
        .into_iter()
        .map(|p| PodTarget::Pod {
            name: p.name_any(),
            ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()),
        })
        .collect())
}

/// Runs an `exec` action in a pod (its `containerName`, or the pod's first container);
/// success is exit status 0.
async fn exec(
    ctx: &Context,
    namespace: &str,
    pod: &str,
    action: &Value,
    vars: &BTreeMap<String, String>,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let command: Vec<String> = action
        .pointer("/exec/command")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .map(|v| match v {
                    Value::String(s) => {
                        substitute(s, vars, Unknown::Keep).unwrap_or_else(|_| s.clone())
                    }
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if command.is_empty() {
        return Err("exec.command is empty".to_owned());
    }
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(container) = action.get("containerName").and_then(Value::as_str) {
        params = params.container(container);
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut process = api
        .exec(pod, command.clone(), &params)
        .await
        .map_err(|e| format!("exec {command:?}: {e}"))?;
    let mut stderr = String::new();
    if let Some(mut err) = process.stderr() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    let _ = process.join().await;
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
        Some(s) => Err(format!(
            "exec {command:?} failed: {}{}",
            s.message.unwrap_or_else(|| "non-zero exit".to_owned()),
            tail(&stderr)
        )),
        None => Err(format!("exec {command:?}: no exit status{}", tail(&stderr))),
    }
}

/// The end of a command's standard error, for a message.
fn tail(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let start = trimmed.char_indices().rev().nth(299).map_or(0, |(i, _)| i);
    format!(" (stderr: {})", &trimmed[start..])
}

async fn perform(
    action: &Value,
    vars: &BTreeMap<String, String>,
    default_host: Option<&str>,
) -> Result<(), String> {
    let text = |v: Option<&Value>| -> Option<String> {
        v.map(|v| match v {
            Value::String(s) => substitute(s, vars, Unknown::Keep).unwrap_or_else(|_| s.clone()),
            other => other.to_string(),
        })
    };
    if let Some(tcp) = action.get("tcpSocket") {
        let host = text(tcp.get("host"))
            .or_else(|| default_host.map(str::to_owned))
            .ok_or("tcpSocket.host is required for the Operator executor")?;
        let port = text(tcp.get("port")).ok_or("tcpSocket.port is required")?;
        return tokio::net::TcpStream::connect(format!("{host}:{port}"))
            .await
            .map(drop)
            .map_err(|e| format!("connecting to {host}:{port}: {e}"));
    }
    let (method, http) = match (action.get("httpGet"), action.get("httpPost")) {
        (Some(h), _) => (reqwest::Method::GET, h),
        (None, Some(h)) => (reqwest::Method::POST, h),
        (None, None) => {
            return Err("the action has no httpGet, httpPost or tcpSocket".to_owned());
        }
    };
    let host = text(http.get("host"))
        .or_else(|| default_host.map(str::to_owned))
        .ok_or("host is required for the Operator executor")?;
    let scheme = text(http.get("scheme"))
        .unwrap_or_else(|| "HTTP".to_owned())
        .to_ascii_lowercase();
    let port = text(http.get("port"));
    let path = text(http.get("path")).unwrap_or_else(|| "/".to_owned());
    let url = match port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut request = client.request(method, &url);
    if let Some(Value::Array(headers)) = http.get("httpHeaders") {
        for header in headers {
            if let (Some(name), Some(value)) = (text(header.get("name")), text(header.get("value")))
            {
                request = request.header(name, value);
            }
        }
    }
    if let Some(body) = text(http.get("body")) {
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!("{url} answered HTTP {}", status.as_u16()))
    }
}
