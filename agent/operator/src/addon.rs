//! The Addon reconciler's decisions: a third-party addon names its WebAssembly component by
//! URL and SHA-256 (`spec.source`); the operator downloads it (at most
//! [`MAX_COMPONENT_BYTES`]), checks the digest and reports the outcome in the status. It never
//! runs the component: the executor that does downloads and checks it again.
//!
//! [`validate_source`] is shared with the admission webhook; [`readiness`] is what a
//! BackupConfiguration sees of the addon it uses. Built-in addons and KubeStash catalog
//! entries have no source and are always usable.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use stowaway_api::Addon;
use stowaway_api::addon::{AddonPhase, AddonSource, AddonStatus};
use stowaway_api::common::ConditionStatus;
use stowaway_api::size;

use crate::admission::FieldError;
use crate::backup_configuration::Lookup;
use crate::conditions;
use crate::events::Note;

/// Condition: the component was downloaded and matches `spec.source.sha256`.
pub const COMPONENT_VERIFIED: &str = "ComponentVerified";
/// Reason of a True [`COMPONENT_VERIFIED`].
pub const DIGEST_VERIFIED: &str = "DigestVerified";
/// Reason: the download failed (connection, HTTP status, timeout).
pub const DOWNLOAD_FAILED: &str = "DownloadFailed";
/// Reason: the component's SHA-256 differs from `spec.source.sha256`.
pub const DIGEST_MISMATCH: &str = "DigestMismatch";
/// Reason: the component is larger than [`MAX_COMPONENT_BYTES`].
pub const TOO_LARGE: &str = "TooLarge";
/// Reason: `spec.source` is not valid (the webhook refuses it too).
pub const INVALID_SOURCE: &str = "InvalidSource";

/// Largest component the operator downloads: 64 MiB.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;
/// How soon a failed download is tried again.
pub const RETRY_DOWNLOAD: Duration = Duration::from_secs(2 * 60);
/// How soon a component that did not match (digest, size) is downloaded again: the file at
/// the URL may be replaced.
pub const RETRY_MISMATCH: Duration = Duration::from_secs(10 * 60);

/// The outcome of downloading a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded, and its SHA-256 is the expected one.
    Verified {
        /// Its size in bytes.
        size: u64,
    },
    /// The download failed: why.
    DownloadFailed(String),
    /// Downloaded, with another SHA-256 (lower-case hex).
    DigestMismatch {
        /// The digest found.
        actual: String,
    },
    /// Larger than the limit (the download was stopped there).
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// What the operator should do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The new status (`None`: leave it).
    pub status: Option<AddonStatus>,
    /// Events to record on the Addon.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Checks `spec.source`: an `https://` URL (plain `http://` only to 127.0.0.1, for tests)
/// and a SHA-256 of 64 hex digits.
pub fn validate_source(source: &AddonSource) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Err(message) = check_url(&source.url) {
        errors.push(FieldError::new("spec.source.url", message));
    }
    if source.sha256.is_empty() {
        errors.push(FieldError::new("spec.source.sha256", "required"));
    } else if source.sha256.len() != 64 || !source.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.push(FieldError::new(
            "spec.source.sha256",
            format!(
                "must be the SHA-256 of the component as 64 hex digits, not {:?}",
                source.sha256
            ),
        ));
    }
    errors
}

/// Whether the operator (and the executor) may download from `url`.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("required".to_owned());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e}): {url:?}"))?;
    match parsed.scheme() {
        "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "http" if parsed.host_str() == Some("127.0.0.1") => Ok(()),
        _ => Err(format!(
            "must be an https:// URL (http:// only to 127.0.0.1), not {url:?}"
        )),
    }
}

/// The digest `spec.source.sha256` asks for, lower case.
fn expected_digest(source: &AddonSource) -> String {
    source.sha256.to_ascii_lowercase()
}

/// Whether the component must be downloaded now: the Addon has a valid source that was not
/// verified for its current generation, or whose failed check is older than the retry delay.
pub fn needs_fetch(addon: &Addon, now: Timestamp) -> bool {
    let Some(source) = &addon.spec.source else {
        return false;
    };
    if !validate_source(source).is_empty() {
        return false;
    }
    let Some(status) = &addon.status else {
        return true;
    };
    let condition = conditions::get(&status.conditions, COMPONENT_VERIFIED);
    let same_generation =
        condition.is_some_and(|c| c.observed_generation == addon.metadata.generation);
    match status.phase {
        Some(AddonPhase::Ready) => {
            !same_generation || status.digest.as_deref() != Some(&expected_digest(source))
        }
        Some(AddonPhase::Failed) => {
            let retry = match condition.and_then(|c| c.reason.as_deref()) {
                Some(DOWNLOAD_FAILED) => RETRY_DOWNLOAD,
                _ => RETRY_MISMATCH,
            };
            let since = condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0);
            !same_generation
                || since.is_none_or(|since| now.duration_since(since).unsigned_abs() >= retry)
        }
        None => true,
    }
}

/// Decides the status of `addon` from the outcome of downloading its component (`None`: not
/// downloaded this time).
pub fn decide(addon: &Addon, fetched: Option<&Fetched>, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let Some(source) = &addon.spec.source else {
        return plan;
    };
    let previous = addon.status.clone().unwrap_or_default();
    let mut status = AddonStatus {
        conditions: previous.conditions.clone(),
        ..AddonStatus::default()
    };
    let expected = expected_digest(source);
    let invalid = validate_source(source);
    let (ok, reason, message, retry) = if !invalid.is_empty() {
        let message = invalid
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        (false, INVALID_SOURCE, message, None)
    } else {
        match fetched {
            None => {
                plan.requeue_after = retry_of(&previous);
                return plan;
            }
            Some(Fetched::Verified { size: bytes }) => {
                status.digest = Some(expected.clone());
                status.size = Some(size::format(*bytes));
                (
                    true,
                    DIGEST_VERIFIED,
                    format!(
                        "downloaded {} from {}; its SHA-256 matches spec.source.sha256",
                        size::format(*bytes),
                        source.url
                    ),
                    None,
                )
            }
            Some(Fetched::DownloadFailed(why)) => (
                false,
                DOWNLOAD_FAILED,
                format!("downloading {}: {why}; retrying", source.url),
                Some(RETRY_DOWNLOAD),
            ),
            Some(Fetched::DigestMismatch { actual }) => (
                false,
                DIGEST_MISMATCH,
                format!(
                    "the component at {} has SHA-256 {actual}, not the {expected} of \
                     spec.source.sha256: it was not accepted (fix the digest if the file \
                     changed on purpose)",
                    source.url
                ),
                Some(RETRY_MISMATCH),
            ),
            Some(Fetched::TooLarge { limit }) => (
                false,
                TOO_LARGE,
                format!(
                    "the component at {} is larger than {}: not accepted",
                    source.url,
                    size::format(*limit)
                ),
                Some(RETRY_MISMATCH),
            ),
        }
    };
    status.phase = Some(if ok {
        AddonPhase::Ready
    } else {
        AddonPhase::Failed
    });
    conditions::set(
        &mut status.conditions,
        COMPONENT_VERIFIED,
        ok,
        reason,
        message.clone(),
        now,
    );
    if let Some(c) = status
        .conditions
        .iter_mut()
        .find(|c| c.type_ == COMPONENT_VERIFIED)
    {
        c.observed_generation = addon.metadata.generation;
    }
    let before = conditions::get(&previous.conditions, COMPONENT_VERIFIED);
    let same = before.is_some_and(|c| {
        (c.status == ConditionStatus::True) == ok && c.reason.as_deref() == Some(reason)
    });
    if !same {
        plan.events.push(if ok {
            Note::normal(reason, message)
        } else {
            Note::warning(reason, message)
        });
    }
    if !ok && previous.phase == Some(AddonPhase::Ready) {
        tracing::warn!(addon = %addon.name_any(), reason, "a verified addon component no longer verifies");
    }
    plan.status = Some(status);
    plan.requeue_after = retry;
    plan
}

fn retry_of(status: &AddonStatus) -> Option<Duration> {
    match status.phase {
        Some(AddonPhase::Failed) => Some(
            match conditions::get(&status.conditions, COMPONENT_VERIFIED)
                .and_then(|c| c.reason.as_deref())
            {
                Some(DOWNLOAD_FAILED) => RETRY_DOWNLOAD,
                Some(INVALID_SOURCE) => return None,
                _ => RETRY_MISMATCH,
            },
        ),
        _ => None,
    }
}

/// Whether a BackupConfiguration may use `addon`: one without a source always; one with a
/// source once its component was verified for the digest the spec names now.
pub fn readiness(addon: &Addon) -> Lookup {
    let Some(source) = &addon.spec.source else {
        return Lookup::Ready;
    };
    let status = addon.status.clone().unwrap_or_default();
    if status.phase == Some(AddonPhase::Ready)
        && status.digest.as_deref() == Some(&expected_digest(source))
    {
        return Lookup::Ready;
    }
    let why = match status.phase {
        Some(AddonPhase::Failed) => conditions::get(&status.conditions, COMPONENT_VERIFIED)
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "its component could not be verified".to_owned()),
        _ => format!(
            "its component ({}) has not been downloaded and verified yet",
            source.url
        ),
    };
    Lookup::NotReady(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn now() -> Timestamp {
        at("2026-03-01T12:00:00Z")
    }

    fn addon(url: &str, sha256: &str) -> Addon {
        let mut a = Addon::new("backup-redis", Default::default());
        a.metadata.generation = Some(1);
        a.spec.source = Some(AddonSource {
            url: url.into(),
            sha256: sha256.into(),
        });
        a
    }

    #[test]
    fn source_validation() {
        // (url, sha256, expected errors as (path, message))
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
        let cases: [Case<'_>; 9] = [
            ("https://addons.example/redis.wasm", SHA, vec![]),
            (
                "http://127.0.0.1:8080/redis.wasm",
                &SHA.to_uppercase(),
                vec![],
            ),
            (
                "http://addons.example/redis.wasm",
                SHA,
                vec![(
                    "spec.source.url",
                    "must be an https:// URL (http:// only to 127.0.0.1), not \"http://addons.example/redis.wasm\"",
                )],
            ),
            (
                "http://localhost/redis.wasm",
                SHA,
                vec![(
                    "spec.source.url",
                    "must be an https:// URL (http:// only to 127.0.0.1), not \"http://localhost/redis.wasm\"",
                )],
            ),
            (
                "file:///etc/passwd",
                SHA,
                vec![(
                    "spec.source.url",
                    "must be an https:// URL (http:// only to 127.0.0.1), not \"file:///etc/passwd\"",
                )],
            ),
            (
                "redis.wasm",
                SHA,
                vec![(
                    "spec.source.url",
                    "not a URL (relative URL without a base): \"redis.wasm\"",
                )],
            ),
            (
                "",
                "",
                vec![
                    ("spec.source.url", "required"),
                    ("spec.source.sha256", "required"),
                ],
            ),
            (
                "https://addons.example/redis.wasm",
                &SHA[..63],
                vec![(
                    "spec.source.sha256",
                    "must be the SHA-256 of the component as 64 hex digits, not \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\"",
                )],
            ),
            (
                "https://addons.example/redis.wasm",
                &format!("sha256:{}", &SHA[7..]),
                vec![(
                    "spec.source.sha256",
                    "must be the SHA-256 of the component as 64 hex digits, not \"sha256:1884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
                )],
            ),
        ];
        for (url, sha, want) in cases {
            let got = validate_source(&AddonSource {
                url: url.into(),
                sha256: sha.into(),
            });
            let want: Vec<FieldError> = want
                .into_iter()
                .map(|(p, m)| FieldError::new(p, m))
                .collect();
            assert_eq!(got, want, "{url} {sha}");
        }
    }

    #[test]
    fn outcomes_table() {
        let url = "https://addons.example/redis.wasm";
        let cases = [
            (
                Fetched::Verified { size: 2048 },
                AddonPhase::Ready,
                DIGEST_VERIFIED,
                false,
                None,
            ),
            (
                Fetched::DownloadFailed("HTTP 404 Not Found".into()),
                AddonPhase::Failed,
                DOWNLOAD_FAILED,
                true,
                Some(RETRY_DOWNLOAD),
            ),
            (
                Fetched::DigestMismatch {
                    actual: "00".repeat(32),
                },
                AddonPhase::Failed,
                DIGEST_MISMATCH,
                true,
                Some(RETRY_MISMATCH),
            ),
            (
                Fetched::TooLarge {
                    limit: MAX_COMPONENT_BYTES,
                },
                AddonPhase::Failed,
                TOO_LARGE,
                true,
                Some(RETRY_MISMATCH),
            ),
        ];
        for (fetched, phase, reason, warning, requeue) in cases {
            let a = addon(url, SHA);
            let plan = decide(&a, Some(&fetched), now());
            let status = plan.status.clone().expect("status");
            assert_eq!(status.phase, Some(phase), "{fetched:?}");
            let c = conditions::get(&status.conditions, COMPONENT_VERIFIED).expect("condition");
            assert_eq!(c.reason.as_deref(), Some(reason));
            assert_eq!(c.observed_generation, Some(1));
            assert_eq!(plan.events.len(), 1);
            assert_eq!(plan.events[0].warning, warning);
            assert_eq!(plan.requeue_after, requeue);
            assert_eq!(status.digest.is_some(), phase == AddonPhase::Ready);

            // The same outcome again: same status, no second event.
            let mut again = a.clone();
            again.status = Some(status.clone());
            let second = decide(&again, Some(&fetched), now());
            assert_eq!(second.status, Some(status));
            assert!(second.events.is_empty());
        }
        let mismatch = decide(
            &addon(url, SHA),
            Some(&Fetched::DigestMismatch {
                actual: "00".repeat(32),
            }),
            now(),
        );
        let message = mismatch.events[0].message.clone();
        assert!(
            message.contains(&"00".repeat(32)) && message.contains(SHA),
            "{message}"
        );
        let verified = decide(
            &addon(url, SHA),
            Some(&Fetched::Verified { size: 2048 }),
            now(),
        );
        let status = verified.status.expect("status");
        assert_eq!(status.size.as_deref(), Some("2.00 KiB"));
        assert_eq!(status.digest.as_deref(), Some(SHA));
    }

    #[test]
    fn invalid_source_fails_without_download() {
        let a = addon("http://addons.example/x.wasm", SHA);
        assert!(!needs_fetch(&a, now()));
        let plan = decide(&a, None, now());
        let status = plan.status.expect("status");
        assert_eq!(status.phase, Some(AddonPhase::Failed));
        let c = conditions::get(&status.conditions, COMPONENT_VERIFIED).expect("condition");
        assert_eq!(c.reason.as_deref(), Some(INVALID_SOURCE));
        assert_eq!(plan.requeue_after, None, "only a spec change helps");
    }

    #[test]
    fn when_to_download() {
        let url = "https://addons.example/redis.wasm";
        let fresh = addon(url, SHA);
        assert!(needs_fetch(&fresh, now()), "never checked");
        let mut no_source = fresh.clone();
        no_source.spec.source = None;
        assert!(!needs_fetch(&no_source, now()));
        assert_eq!(decide(&no_source, None, now()), Plan::default());

        let ready = {
            let mut a = fresh.clone();
            a.status = decide(&a, Some(&Fetched::Verified { size: 1 }), now()).status;
            a
        };
        assert!(!needs_fetch(&ready, now()), "verified for this generation");
        let mut new_digest = ready.clone();
        if let Some(s) = &mut new_digest.spec.source {
            s.sha256 = "ab".repeat(32);
        }
        assert!(needs_fetch(&new_digest, now()), "another digest");
        let mut new_generation = ready.clone();
        new_generation.metadata.generation = Some(2);
        assert!(needs_fetch(&new_generation, now()), "the spec changed");

        let failed = {
            let mut a = fresh.clone();
            a.status = decide(
                &a,
                Some(&Fetched::DownloadFailed("connection refused".into())),
                now(),
            )
            .status;
            a
        };
        assert!(!needs_fetch(&failed, now()), "just failed");
        let later = now() + jiff::SignedDuration::from_secs(119);
        assert!(!needs_fetch(&failed, later));
        let later = now() + jiff::SignedDuration::from_secs(120);
        assert!(needs_fetch(&failed, later), "retry delay passed");
        let mut changed = failed.clone();
        changed.metadata.generation = Some(2);
        assert!(needs_fetch(&changed, now()), "the spec changed");
        // Not downloaded this time: the failure stands, looked at again later.
        let plan = decide(&failed, None, now());
        assert_eq!(plan.status, None);
        assert_eq!(plan.requeue_after, Some(RETRY_DOWNLOAD));
    }

    #[test]
    fn readiness_table() {
        let url = "https://addons.example/redis.wasm";
        let mut builtin = Addon::new("volume", Default::default());
        builtin.status = None;
        assert_eq!(readiness(&builtin), Lookup::Ready, "no source");
        let fresh = addon(url, SHA);
        assert_eq!(
            readiness(&fresh),
            Lookup::NotReady(format!(
                "its component ({url}) has not been downloaded and verified yet"
            ))
        );
        let mut ready = fresh.clone();
        ready.status = decide(&ready, Some(&Fetched::Verified { size: 1 }), now()).status;
        assert_eq!(readiness(&ready), Lookup::Ready);
        let mut upper = ready.clone();
        if let Some(s) = &mut upper.spec.source {
            s.sha256 = SHA.to_uppercase();
        }
        assert_eq!(readiness(&upper), Lookup::Ready, "hex digits in any case");
        let mut other = ready.clone();
        if let Some(s) = &mut other.spec.source {
            s.sha256 = "ab".repeat(32);
        }
        assert!(
            matches!(readiness(&other), Lookup::NotReady(_)),
            "verified for another digest"
        );
        let mut failed = fresh.clone();
        failed.status = decide(
            &failed,
            Some(&Fetched::DigestMismatch {
                actual: "00".repeat(32),
            }),
            now(),
        )
        .status;
        match readiness(&failed) {
            Lookup::NotReady(why) => assert!(why.starts_with("DigestMismatch: "), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
