//! `stowaway operator`: runs the Kubernetes operator (in the cluster, or against the cluster of
//! `$KUBECONFIG`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use stowaway_operator::controller::{self, Context, Settings};
use stowaway_operator::injection::SidecarSettings;
use stowaway_operator::job::JobSettings;

use super::Global;

/// Run the operator: reconcile Stowaway's custom resources (one replica leads, through a Lease).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Image of the Jobs that run backups for targets without a sidecar.
    #[arg(long, env = "STOWAWAY_IMAGE", default_value = concat!("stowaway:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Service account of those Jobs (the namespace's default when not given).
    #[arg(long, env = "STOWAWAY_JOB_SERVICE_ACCOUNT")]
    job_service_account: Option<String>,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "stowaway")]
    namespace: String,
    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "stowaway-operator")]
    lease_name: String,
    /// How long a leader holds the Lease without renewing it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "STOWAWAY_HEALTH_ADDRESS", default_value = "0.0.0.0:8080")]
    health_address: SocketAddr,
    /// Serve the admission webhook (HTTPS, POST /mutate and /validate) with this PEM
    /// certificate chain (with --webhook-key).
    #[arg(long, env = "STOWAWAY_WEBHOOK_CERT", requires = "webhook_key")]
    webhook_cert: Option<PathBuf>,
    /// PEM private key of the webhook certificate.
    #[arg(long, env = "STOWAWAY_WEBHOOK_KEY", requires = "webhook_cert")]
    webhook_key: Option<PathBuf>,
    /// Address of the admission webhook.
    #[arg(long, env = "STOWAWAY_WEBHOOK_ADDRESS", default_value = "0.0.0.0:8443")]
    webhook_address: SocketAddr,
    /// Image of the injected sidecar (default: --image).
    #[arg(long, env = "STOWAWAY_SIDECAR_IMAGE")]
    sidecar_image: Option<String>,
    /// Port of the sidecar's on-demand API on 127.0.0.1 inside each pod.
    #[arg(long, env = "STOWAWAY_SIDECAR_API_PORT", default_value_t = 8089)]
    sidecar_api_port: u16,
    /// CPU request of the sidecar (Kubernetes quantity).
    #[arg(long, default_value = "50m")]
    sidecar_cpu_request: String,
    /// Memory request and limit of the sidecar (Kubernetes quantity).
    #[arg(long, default_value = "256Mi")]
    sidecar_memory: String,
    /// Deny a new pod when the injector cannot decide (default: admit it without a sidecar).
    #[arg(long, env = "STOWAWAY_INJECTION_FAIL_CLOSED")]
    injection_fail_closed: bool,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    if args.lease_duration < Duration::from_secs(3) {
        anyhow::bail!("--lease-duration must be at least 3s");
    }
    let webhook = match (&args.webhook_cert, &args.webhook_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))
            };
            let tls = stowaway_operator::webhook::tls_config(&read(cert)?, &read(key)?)?;
            Some((args.webhook_address, tls))
        }
        _ => None,
    };
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API to talk to: run the operator in a cluster, or set KUBECONFIG to a kubeconfig file",
    )?;
    let identity = match args.identity {
        Some(identity) => identity,
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    let sidecar = SidecarSettings {
        image: args.sidecar_image.unwrap_or_else(|| args.image.clone()),
        api_port: args.sidecar_api_port,
        fail_closed: args.injection_fail_closed,
        ..SidecarSettings::default()
    }
    .with_resources(&args.sidecar_cpu_request, &args.sidecar_memory);
    let job = JobSettings {
        image: args.image,
        service_account: args.job_service_account,
        ..JobSettings::default()
    };
    // The built-in addons describe themselves once (compiled, or loaded from --cache-dir);
    // the operator installs Addon and Function objects from the descriptions and checks
    // configurations against them, without running any addon.
    let runtime = crate::addons::runtime(g)?;
    let builtin =
        tokio::task::spawn_blocking(move || crate::addons::builtin_descriptions(&runtime))
            .await
            .context("describing the built-in addons")??;
    for addon in &builtin {
        tracing::info!(addon = %addon.name, version = %addon.version, digest = %addon.digest, "built-in addon");
    }
    let ctx = Context::new(client, job, builtin);
    let settings = Settings {
        namespace: args.namespace,
        identity,
        lease_name: args.lease_name,
        lease_duration: args.lease_duration,
        health_address: args.health_address,
        webhook,
        sidecar,
    };
    controller::run(ctx, settings).await?;
    Ok(0)
}
