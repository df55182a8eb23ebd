//! `POST /sidecar-access`: a sidecar writes only its own target's sessions and snapshots
//! ([`crate::admission::sidecar`]). This gathers what the rule needs: whose sidecar the
//! writer is (its pod's label), and whose the object is (a BackupSession's invoker).
//!
//! Accounts of the operator's own namespace pass without a look (the injector never puts a
//! sidecar there), so the operator's writes cost no API call. When the writer's pod or the
//! object's owner cannot be read, a sidecar's write is denied with the reason; so is any
//! write when the API server cannot tell whether the writer is a sidecar.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;
use stowaway_api::{BackupBatch, BackupConfiguration, BackupSession};

use crate::admission::sidecar::{
    Account, Guarded, Owner, Writer, Written, account, changed_claims, check, invoker_targets,
    owner,
};
use crate::invoker::Invoker;
use crate::names::SIDECAR_TARGET_LABEL;

/// The response to one AdmissionReview body sent to `/sidecar-access`.
pub async fn answer(body: &[u8], client: &kube::Client) -> (&'static str, Vec<u8>) {
    let request = match super::parse(body) {
        Ok(r) => r,
        Err(e) => return ("400 Bad Request", e.into_bytes()),
    };
    let response = AdmissionResponse::from(&request);
    let response = match decide(&request, client).await {
        Ok(()) => response,
        Err(message) => {
            tracing::info!(user = ?request.user_info.username, kind = %request.kind.kind,
                name = %request.name, %message, "sidecar write refused");
            response.deny(message)
        }
    };
    super::reply(response)
}

/// Whether the request may proceed; the denial's message otherwise.
pub async fn decide(
    request: &AdmissionRequest<DynamicObject>,
    client: &kube::Client,
) -> Result<(), String> {
    let Some(kind) = Guarded::of(&request.kind.group, &request.kind.kind) else {
        return Ok(());
    };
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(());
    }
    let Some(account) = account(&request.user_info) else {
        return Ok(());
    };
    if account.namespace == client.default_namespace() {
        return Ok(());
    }
    let targets = sidecar_targets(client, &account)
        .await
        .map_err(|e| format!("cannot tell whether {account} is a Stowaway sidecar: {e}"))?;
    if targets.is_empty() {
        return Ok(());
    }
    let writer = Writer { account, targets };
    let namespace = request.namespace.clone().unwrap_or_default();
    let to_json = |o: &DynamicObject| {
        serde_json::to_value(o).map_err(|e| format!("cannot read the object: {e}"))
    };
    let new = match &request.object {
        Some(o) => to_json(o)?,
        None => return Ok(()),
    };
    let old = request.old_object.as_ref().map(to_json).transpose()?;
    let name = Some(request.name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| new.pointer("/metadata/name").and_then(Value::as_str))
        .or_else(|| {
            new.pointer("/metadata/generateName")
                .and_then(Value::as_str)
        })
        .unwrap_or("(unnamed)");
    let claims = if request.sub_resource.is_none() {
        changed_claims(old.as_ref(), &new)
    } else {
        BTreeSet::new()
    };
    for (i, object) in std::iter::once(&new).chain(old.as_ref()).enumerate() {
        let targets = object_targets(client, kind, &namespace, object).await?;
        check(
            &writer,
            &Written {
                kind,
                name: format!("{namespace}/{name}"),
                targets,
                // Claims are compared once, between the two versions.
                changed_claims: if i == 0 {
                    claims.clone()
                } else {
                    BTreeSet::new()
                },
            },
        )?;
    }
    Ok(())
}

/// The targets the account's sidecars serve: its pod's label, else the labels of the
/// sidecar pods running as the account.
async fn sidecar_targets(
    client: &kube::Client,
    account: &Account,
) -> Result<BTreeSet<String>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &account.namespace);
    let label = |pod: &Pod| {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SIDECAR_TARGET_LABEL))
            .cloned()
    };
    if let Some(name) = &account.pod
        && let Some(pod) = pods.get_opt(name).await?
    {
        return Ok(label(&pod).into_iter().collect());
    }
    let list = pods
        .list(&ListParams::default().labels(SIDECAR_TARGET_LABEL))
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            let spec = p.spec.as_ref();
            let runs_as = spec
                .and_then(|s| {
                    s.service_account_name
                        .as_deref()
                        .or(s.service_account.as_deref())
                })
                .filter(|s| !s.is_empty())
                .unwrap_or(crate::sidecar_rbac::DEFAULT_SERVICE_ACCOUNT);
            runs_as == account.name
        })
        .filter_map(label)
        .collect())
}

/// The targets `object` is for, reading its invoker (or its session's) where needed.
async fn object_targets(
    client: &kube::Client,
    kind: Guarded,
    namespace: &str,
    object: &Value,
) -> Result<BTreeSet<String>, String> {
    let owner = owner(kind, object).map_err(|e| format!("{} {e}", kind.kind()))?;
    let (kind, name) = match owner {
        Owner::Targets(targets) => return Ok(targets),
        Owner::Invoker { kind, name } => (kind, name),
        Owner::Session(session) => {
            let api: Api<BackupSession> = Api::namespaced(client.clone(), namespace);
            let found = api
                .get_opt(&session)
                .await
                .map_err(|e| format!("cannot read BackupSession {namespace}/{session}: {e}"))?
                .ok_or_else(|| {
                    format!("the Snapshot's BackupSession {namespace}/{session} does not exist")
                })?;
            (found.spec.invoker.kind, found.spec.invoker.name)
        }
    };
    let missing = || format!("the session's invoker {kind} {namespace}/{name} does not exist");
    let unreadable = |e: kube::Error| format!("cannot read {kind} {namespace}/{name}: {e}");
    match kind.as_str() {
        "BackupConfiguration" => {
            let api: Api<BackupConfiguration> = Api::namespaced(client.clone(), namespace);
            let config = api.get_opt(&name).await.map_err(unreadable)?;
            let config = config.ok_or_else(missing)?;
            Ok(invoker_targets(Invoker::Configuration(&config)))
        }
        "BackupBatch" => {
            let api: Api<BackupBatch> = Api::namespaced(client.clone(), namespace);
            let batch = api.get_opt(&name).await.map_err(unreadable)?;
            let batch = batch.ok_or_else(missing)?;
            Ok(invoker_targets(Invoker::Batch(&batch)))
        }
        _ => Ok(BTreeSet::new()),
    }
}
