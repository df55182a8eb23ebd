//! Reading the objects a session needs from the API server, with errors that name them.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::Api;
use serde::de::DeserializeOwned;
use stowaway_operator::storage_access::{self, SecretData};

use crate::error::{ExecuteError, Result};

/// The object `namespace/name` of kind `K`, or `None` when it does not exist.
pub(crate) async fn get_opt<K>(
    client: &kube::Client,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<K>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|e| ExecuteError::kube(format!("reading {kind} {namespace}/{name}"), e))
}

/// The object `namespace/name` of kind `K`; [`ExecuteError::NotFound`] with `hint` when it
/// does not exist.
pub(crate) async fn get<K>(
    client: &kube::Client,
    kind: &'static str,
    namespace: &str,
    name: &str,
    hint: &str,
) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    get_opt(client, kind, namespace, name)
        .await?
        .ok_or_else(|| ExecuteError::NotFound {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!(": {hint}")
            },
        })
}

/// The data of the Secret `namespace/name`, or `None` when it does not exist.
pub(crate) async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>> {
    Ok(get_opt::<Secret>(client, "Secret", namespace, name)
        .await?
        .map(|s| storage_access::secret_data(&s)))
}

/// `namespace` unless the reference names one.
pub(crate) fn namespace_or(reference: Option<&String>, namespace: &str) -> String {
    reference
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| namespace.to_owned())
}
