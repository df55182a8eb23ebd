//! `stowaway crds`: prints the CustomResourceDefinitions of Stowaway's Kubernetes API.

use std::io::Write;

/// Print the CRDs as multi-document YAML (`stowaway crds | kubectl apply -f -`).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> anyhow::Result<u8> {
    let yaml = stowaway_api::crds_yaml()?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    out.flush()?;
    Ok(0)
}
