//! Opening the repository named on the command line.

use anyhow::{Context, bail};
use stowaway_repository::{LockGuard, Repository};
use stowaway_storage::{Storage, StorageOptions};
use zeroize::Zeroizing;

use super::Global;

/// The storage of `--repo` / `$STOWAWAY_REPOSITORY`.
pub(crate) fn storage(g: &Global) -> anyhow::Result<Storage> {
    let Some(url) = g.repo.as_deref() else {
        bail!("no repository given: use --repo PATH or set STOWAWAY_REPOSITORY");
    };
    let kib = |limit: Option<u64>| limit.map(|k| k.saturating_mul(1024));
    let options = StorageOptions {
        append_only: g.append_only,
        limit_upload: kib(g.limit_upload),
        limit_download: kib(g.limit_download),
        credentials: g.storage_credentials.clone(),
        ..StorageOptions::default()
    };
    if options.limit_upload == Some(0) || options.limit_download == Some(0) {
        bail!("--limit-upload and --limit-download take a rate above 0 KiB/s");
    }
    Storage::from_url_with(url, &options)
        .with_context(|| format!("opening repository location {url}"))
}

/// A password from a file (one trailing line break removed; empty is refused).
pub(crate) fn password_file(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?,
    );
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(Zeroizing::new(password.to_owned()))
}

/// The password from `--password-file` or `$STOWAWAY_PASSWORD`.
pub(crate) fn password(g: &Global) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = &g.password_file {
        return password_file(path);
    }
    match std::env::var("STOWAWAY_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Zeroizing::new(p)),
        _ => bail!("no password given: set STOWAWAY_PASSWORD or use --password-file FILE"),
    }
}

/// Opens the repository (checking the password).
pub(crate) async fn open(g: &Global) -> anyhow::Result<Repository> {
    let storage = storage(g)?;
    let location = storage.describe();
    let password = password(g)?;
    Repository::open(storage, &password)
        .await
        .with_context(|| format!("opening repository {location}"))
}

/// Opens the repository and loads its index (for backup, restore, check, stats).
pub(crate) async fn open_indexed(g: &Global) -> anyhow::Result<Repository> {
    let repo = open(g).await?;
    repo.load_index().await.context("loading the index")?;
    Ok(repo)
}

/// Opens the repository, takes a shared lock for `operation`, then loads the index. The lock
/// comes first: prune relies on lock times to know which processes may have seen packs it
/// has marked since.
pub(crate) async fn open_locked(
    g: &Global,
    operation: &str,
) -> anyhow::Result<(Repository, LockGuard)> {
    let repo = open(g).await?;
    let lock = repo.lock(false, operation).await?;
    repo.load_index().await.context("loading the index")?;
    Ok((repo, lock))
}
