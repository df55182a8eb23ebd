//! The admission webhook server: `POST /mutate` and `POST /validate` over HTTPS answer
//! AdmissionReviews for Stowaway's kinds with the rules of [`crate::admission`]; `POST
//! /inject` injects the sidecar into new pods ([`crate::injection`]); `POST /sidecar-access`
//! keeps each sidecar to its own target's sessions ([`crate::admission::sidecar`]).
//!
//! Every replica serves it (not only the leader). The certificate and key are PEM files, such
//! as a Secret mounted by the chart. For each review the server reads what the rules need from
//! the API server (storages, retention policies, hook templates, addons, the namespace's
//! repositories and labels); a failure to read them denies the request with the reason, so
//! nothing unchecked is admitted (the webhook's `failurePolicy` decides what a timeout does).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use stowaway_api::{
    Addon, BackupConfiguration, BackupStorage, HookTemplate, Repository, RetentionPolicy,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::addon_registry::BuiltinAddon;
use crate::admission::{Catalog, review};
use crate::http;
use crate::injection::SidecarSettings;

pub mod sidecar_access;

/// Errors setting up the webhook's TLS.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate or key could not be read or parsed.
    #[error("webhook {what}: {message}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair.
    #[error("webhook TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS server configuration from a PEM certificate chain and private key.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, WebhookError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| WebhookError::Pem {
            what: "certificate",
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(WebhookError::Pem {
            what: "certificate",
            message: "no CERTIFICATE block found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| WebhookError::Pem {
        what: "key",
        message: e.to_string(),
    })?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Serves AdmissionReviews on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    client: kube::Client,
    builtin_addons: Vec<BuiltinAddon>,
    sidecar: SidecarSettings,
) {
    let builtin_addons = Arc::new(builtin_addons);
    let sidecar = Arc::new(sidecar);
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let client = client.clone();
        let builtin_addons = builtin_addons.clone();
        let sidecar = sidecar.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, acceptor, client, &builtin_addons, &sidecar).await {
                tracing::debug!(%peer, error = %e, "webhook connection failed");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    client: kube::Client,
    builtin_addons: &[BuiltinAddon],
    sidecar: &SidecarSettings,
) -> std::io::Result<()> {
    let mut stream = acceptor.accept(stream).await?;
    let Some(request) = http::read_request(&mut stream).await else {
        return Ok(());
    };
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/mutate") => answer(&request.body, true, &client, builtin_addons).await,
        ("POST", "/validate") => answer(&request.body, false, &client, builtin_addons).await,
        ("POST", "/inject") => inject(&request.body, &client, sidecar).await,
        ("POST", "/sidecar-access") => sidecar_access::answer(&request.body, &client).await,
        _ => {
            return http::respond(&mut stream, "404 Not Found", "text/plain", b"not found\n").await;
        }
    };
    http::respond(&mut stream, status, "application/json", &body).await
}

/// The response to one AdmissionReview of a new Pod: the sidecar patch, or the pod as it is.
/// When the BackupConfigurations cannot be read, the pod is admitted without a sidecar (with a
/// warning), or denied when `fail_closed` is set.
pub async fn inject(
    body: &[u8],
    client: &kube::Client,
    sidecar: &SidecarSettings,
) -> (&'static str, Vec<u8>) {
    let request = match parse(body) {
        Ok(r) => r,
        Err(e) => return ("400 Bad Request", e.into_bytes()),
    };
    let response = inject_response(&request, client, sidecar).await;
    reply(response)
}

async fn inject_response(
    request: &AdmissionRequest<DynamicObject>,
    client: &kube::Client,
    sidecar: &SidecarSettings,
) -> AdmissionResponse {
    use crate::injection::{Decision, decide, patch};
    let allowed = AdmissionResponse::from(request);
    if request.kind.kind != "Pod" || request.operation != Operation::Create {
        return allowed;
    }
    let pod: Option<Pod> = request
        .object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
        .and_then(|v| serde_json::from_value(v).ok());
    let Some(pod) = pod else {
        return allowed.deny("the request holds no readable Pod");
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    let configs = match Api::<BackupConfiguration>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(e) if sidecar.fail_closed => {
            return allowed.deny(format!(
                "cannot read the BackupConfigurations of {namespace} to decide on the Stowaway sidecar: {e}"
            ));
        }
        Err(e) => {
            let mut response = allowed;
            response.warnings = Some(vec![format!(
                "Stowaway could not decide on its sidecar ({e}); the pod starts without it"
            )]);
            return response;
        }
    };
    match decide(&pod, &configs) {
        Decision::Skip(why) => {
            tracing::debug!(%namespace, reason = %why, "no sidecar");
            allowed
        }
        Decision::Inject {
            target,
            because,
            allow_restore,
        } => {
            tracing::info!(%namespace, kind = %target.kind, name = %target.name, %because, allow_restore, "injecting the sidecar");
            let settings = SidecarSettings {
                allow_restore,
                ..sidecar.clone()
            };
            match allowed.clone().with_patch(patch(&pod, &target, &settings)) {
                Ok(response) => response,
                Err(e) if sidecar.fail_closed => {
                    allowed.deny(format!("cannot encode the sidecar patch: {e}"))
                }
                Err(_) => allowed,
            }
        }
    }
}

fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}\n"))?;
    review
        .try_into()
        .map_err(|e| format!("AdmissionReview without a request: {e}\n"))
}

fn reply(response: AdmissionResponse) -> (&'static str, Vec<u8>) {
    match serde_json::to_vec(&response.into_review()) {
        Ok(body) => ("200 OK", body),
        Err(e) => (
            "500 Internal Server Error",
            format!("serializing the response: {e}\n").into_bytes(),
        ),
    }
}

/// The response to one AdmissionReview body.
pub async fn answer(
    body: &[u8],
    mutate: bool,
    client: &kube::Client,
    builtin_addons: &[BuiltinAddon],
) -> (&'static str, Vec<u8>) {
    let request = match parse(body) {
        Ok(r) => r,
        Err(e) => return ("400 Bad Request", e.into_bytes()),
    };
    let response = match catalog(client, request.namespace.as_deref()).await {
        Ok(mut catalog) => {
            catalog.builtin_addons = builtin_addons.to_vec();
            review(&request, &catalog, mutate)
        }
        Err(e) => AdmissionResponse::from(&request).deny(format!(
            "cannot read what the admission rules need from the API server: {e}"
        )),
    };
    reply(response)
}

/// What the admission rules need to see of the cluster.
pub async fn catalog(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Catalog, kube::Error> {
    let lp = ListParams::default();
    let mut catalog = Catalog {
        backup_storages: Api::<BackupStorage>::all(client.clone())
            .list(&lp)
            .await?
            .items,
        retention_policies: Api::<RetentionPolicy>::all(client.clone())
            .list(&lp)
            .await?
            .items,
        hook_templates: Api::<HookTemplate>::all(client.clone())
            .list(&lp)
            .await?
            .items,
        addons: Api::<Addon>::all(client.clone()).list(&lp).await?.items,
        ..Catalog::default()
    };
    if let Some(ns) = namespace {
        catalog.repositories = Api::<Repository>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        if let Some(found) = namespaces.get_opt(ns).await? {
            catalog
                .namespace_labels
                .insert(ns.to_owned(), found.metadata.labels.unwrap_or_default());
        }
    }
    Ok(catalog)
}
