//! Addons in the cluster: installing the built-in ones as Addon and Function objects, and
//! reconciling an Addon with a `spec.source` (download the component, check its size and
//! SHA-256, report; never run it).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stowaway_api::{Addon, Function};

use super::{Context, Error, apply};
use crate::addon::{Fetched, MAX_COMPONENT_BYTES, check_url, decide, needs_fetch};
use crate::addon_registry::{Install, addon_object, function_object, install};

/// How long a component download may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Reconciles one Addon: a source not verified for its current spec is downloaded and
/// checked; the status says how that went.
pub async fn reconcile(addon: Arc<Addon>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = addon.name_any();
    let now = ctx.now();
    let fetched = match &addon.spec.source {
        Some(source) if needs_fetch(&addon, now) => {
            let fetched = fetch(&source.url, &source.sha256, MAX_COMPONENT_BYTES).await;
            tracing::info!(addon = %name, url = %source.url, outcome = ?fetched, "checked an addon component");
            Some(fetched)
        }
        _ => None,
    };
    let plan = decide(&addon, fetched.as_ref(), now);
    if let Some(status) = &plan.status {
        let api: Api<Addon> = Api::all(ctx.client.clone());
        apply::status(&api, &name, addon.status.as_ref(), status).await?;
    }
    apply::events(&ctx, addon.as_ref(), &plan.events).await;
    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

/// Downloads the component at `url` (following redirects only to allowed URLs), stopping
/// past `limit` bytes, and compares its SHA-256 with `sha256` (hex, any case). The bytes are
/// not kept.
pub async fn fetch(url: &str, sha256: &str, limit: u64) -> Fetched {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if let Err(e) = check_url(attempt.url().as_str()) {
            attempt.error(format!("redirected to a URL that is not allowed: {e}"))
        } else {
            attempt.follow()
        }
    });
    let client = match reqwest::Client::builder()
        .redirect(redirects)
        .timeout(DOWNLOAD_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => return Fetched::DownloadFailed(format!("HTTP client: {}", chain(&e))),
    };
    let mut response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) => return Fetched::DownloadFailed(chain(&e)),
    };
    let status = response.status();
    if !status.is_success() {
        return Fetched::DownloadFailed(format!("the server answered HTTP {status}"));
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Fetched::TooLarge { limit };
    }
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size: u64 = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                size = size.saturating_add(chunk.len() as u64);
                if size > limit {
                    return Fetched::TooLarge { limit };
                }
                digest.update(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Fetched::DownloadFailed(chain(&e)),
        }
    }
    let actual = hex(digest.finish().as_ref());
    if actual.eq_ignore_ascii_case(sha256) {
        Fetched::Verified { size }
    } else {
        Fetched::DigestMismatch { actual }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// An error with its causes, `a: b: c` (reqwest's own message names only the URL).
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Creates or updates the Addon and Function objects of the built-in addons
/// ([`crate::addon_registry`]); objects of those names that a person made (without the
/// `managed-by` label) are left alone with a warning. Returns how many objects were written.
pub async fn install_builtins(ctx: &Context) -> Result<usize, Error> {
    let addons: Api<Addon> = Api::all(ctx.client.clone());
    let functions: Api<Function> = Api::all(ctx.client.clone());
    let mut written = 0;
    for builtin in &ctx.builtin_addons {
        let addon = addon_object(builtin);
        let existing = addons.get_opt(&builtin.name).await?;
        let decision = install(
            &addon.metadata,
            &addon.spec,
            existing.as_ref().map(|e| (&e.metadata, &e.spec)),
        );
        written += usize::from(put(&addons, &addon, existing.as_ref(), decision).await?);
        let function = function_object(builtin, &ctx.job.image);
        let existing = functions.get_opt(&builtin.name).await?;
        let decision = install(
            &function.metadata,
            &function.spec,
            existing.as_ref().map(|e| (&e.metadata, &e.spec)),
        );
        written += usize::from(put(&functions, &function, existing.as_ref(), decision).await?);
    }
    Ok(written)
}

/// Carries out one [`Install`] decision; whether it wrote.
async fn put<K>(
    api: &Api<K>,
    desired: &K,
    existing: Option<&K>,
    decision: Install,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let kind = K::kind(&());
    let name = desired.name_any();
    match (decision, existing) {
        (Install::Create, _) | (Install::Update, None) => {
            apply::create(api, desired).await?;
            tracing::info!(%kind, %name, "installed a built-in addon object");
            Ok(true)
        }
        (Install::Update, Some(existing)) => {
            let mut object = desired.clone();
            let meta = object.meta_mut();
            meta.resource_version = existing.meta().resource_version.clone();
            // Keep what others added to the labels and annotations.
            for (mine, theirs) in [
                (&mut meta.labels, &existing.meta().labels),
                (&mut meta.annotations, &existing.meta().annotations),
            ] {
                for (k, v) in theirs.iter().flatten() {
                    mine.get_or_insert_with(Default::default)
                        .entry(k.clone())
                        .or_insert_with(|| v.clone());
                }
            }
            api.replace(&name, &PostParams::default(), &object).await?;
            tracing::info!(%kind, %name, "updated a built-in addon object");
            Ok(true)
        }
        (Install::UpToDate, _) => Ok(false),
        (Install::Foreign, _) => {
            tracing::warn!(%kind, %name, "an object of a built-in addon's name exists without the label app.kubernetes.io/managed-by; it is left alone and used instead of the built-in description");
            Ok(false)
        }
    }
}
