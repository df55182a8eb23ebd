//! Running one hook: look up its HookTemplate, check the template may be used from the
//! session's namespace, and perform its action.
//!
//! The operator performs `httpGet`, `httpPost` and `tcpSocket` actions of templates with the
//! `Operator` executor (success: HTTP 200–399, or an open TCP connection), with the hook's
//! `timeout` (default 30 s) and `maxRetry`. `${name}` in the host, path, headers and body is
//! replaced by the hook's `params` (then the template's parameter defaults) and by the session
//! variables `NAMESPACE`, `SESSION`, `PHASE` and `TARGET_NAME`. `Pod` (exec in the target's
//! pods) and `Function` (a Job) executors are not supported yet: such a hook fails with a
//! message saying so.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::Api;
use serde_json::Value;
use stowaway_api::HookTemplate;
use stowaway_api::common::HookInfo;
use stowaway_api::hook_template::HookExecutorType;

use super::Context;
use crate::admission::{Catalog, usage_allowed};
use crate::duration::parse_duration;
use crate::variables::{Unknown, substitute};

/// Runs `hook` for a session in `namespace`; the error is the message for the status.
pub(crate) async fn run(
    ctx: &Context,
    namespace: &str,
    hook: &HookInfo,
    session_vars: &BTreeMap<String, String>,
) -> Result<(), String> {
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
    if template.spec.executor.type_ != HookExecutorType::Operator {
        return Err(format!(
            "HookTemplate {template_ns}/{} uses the {:?} executor, which this operator version does not run yet (use the Operator executor with httpGet, httpPost or tcpSocket)",
            hook.hook_template.name, template.spec.executor.type_
        ));
    }
    let action = template.spec.action.as_ref().ok_or_else(|| {
        format!(
            "HookTemplate {template_ns}/{} has no action",
            hook.hook_template.name
        )
    })?;

    let mut vars = session_vars.clone();
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
    let timeout = hook
        .timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(30));
    let attempts = u32::try_from(hook.max_retry.unwrap_or(0).max(0)).unwrap_or(0) + 1;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match tokio::time::timeout(timeout, perform(action, &vars)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {timeout:?}"),
        }
        tracing::warn!(hook = %hook.name, attempt, error = %last, "hook failed");
    }
    Err(if attempts > 1 {
        format!("{last} (after {attempts} attempts)")
    } else {
        last
    })
}

async fn perform(action: &Value, vars: &BTreeMap<String, String>) -> Result<(), String> {
    let text = |v: Option<&Value>| -> Option<String> {
        v.map(|v| match v {
            Value::String(s) => substitute(s, vars, Unknown::Keep).unwrap_or_else(|_| s.clone()),
            other => other.to_string(),
        })
    };
    if let Some(tcp) = action.get("tcpSocket") {
        let host =
            text(tcp.get("host")).ok_or("tcpSocket.host is required for the Operator executor")?;
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
    let host = text(http.get("host")).ok_or("host is required for the Operator executor")?;
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
