//! Retries of transient failures with jittered exponential backoff.
//!
//! HTTP backends already retry single requests (object_store's `RetryConfig`, a few quick
//! attempts); this layer retries whole [`crate::Storage`] operations, so every backend,
//! including the fault-injecting test wrapper and local I/O, gets the same treatment.

use std::future::Future;
use std::time::Duration;

use crate::config::RetryPolicy;
use crate::error::Result;

/// Runs `attempt(n)` for n = 1, 2, … until it succeeds, fails with an error that is not
/// [retryable](crate::Error::is_retryable), or `policy.max_attempts` attempts have failed.
/// Before attempt `n` it sleeps a random time in `[0, policy.backoff_cap(n)]` ("full
/// jitter", so concurrent clients do not retry in lockstep).
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &'static str,
    key: &str,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Err(error) if error.is_retryable() && n < policy.max_attempts.max(1) => {
                n += 1;
                let delay = jitter(policy.backoff_cap(n));
                tracing::debug!(operation, key, attempt = n, ?delay, %error, "retrying");
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                if error.is_retryable() && n > 1 {
                    tracing::warn!(operation, key, attempts = n, %error, "giving up");
                }
                return Err(error);
            }
            Ok(value) => return Ok(value),
        }
    }
}

fn jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Error;

    fn transient() -> Error {
        Error::Transient {
            key: "k".into(),
            source: object_store::Error::Generic {
                store: "test",
                source: "flaky".into(),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        let started = tokio::time::Instant::now();
        let value = retry(&policy, "get", "k", |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 4 { Err(transient()) } else { Ok(n) } }
        })
        .await
        .expect("succeeds on the fourth attempt");
        assert_eq!(value, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Three waits of at most 100, 200 and 400 ms.
        assert!(started.elapsed() <= Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_and_never_retries_permanent_errors() {
        let calls = AtomicU32::new(0);
        let err = retry(&RetryPolicy::fast(3), "put", "k", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(transient()) }
        })
        .await
        .expect_err("always failing");
        assert!(err.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let err = retry(&RetryPolicy::fast(3), "get", "k", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::NotFound { key: "k".into() }) }
        })
        .await
        .expect_err("not found");
        assert!(matches!(err, Error::NotFound { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
