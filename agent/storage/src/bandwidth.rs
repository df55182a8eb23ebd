//! Bandwidth limits: a token bucket shared by all transfers in one direction.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Lets at most `rate` bytes per second through on average, with bursts of up to one
/// second's worth. A transfer takes its bytes at once and then waits off the debt, so
/// concurrent transfers share the rate.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes that may pass without waiting; negative while in debt.
    available: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A bucket for `rate` bytes per second (at least 1).
    pub(crate) fn new(rate: u64) -> TokenBucket {
        let rate = rate.max(1) as f64;
        TokenBucket {
            rate,
            burst: rate,
            state: Mutex::new(State {
                available: rate,
                refilled: Instant::now(),
            }),
        }
    }

    /// Takes `bytes` from the bucket, sleeping until the rate allows them.
    pub(crate) async fn take(&self, bytes: u64) {
        let wait = {
            let mut state = match self.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let elapsed = now.duration_since(state.refilled).as_secs_f64();
            state.available = (state.available + elapsed * self.rate).min(self.burst);
            state.refilled = now;
            state.available -= bytes as f64;
            if state.available < 0.0 {
                Duration::from_secs_f64(-state.available / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_the_average_rate() {
        let bucket = TokenBucket::new(1000);
        let start = Instant::now();
        bucket.take(1000).await; // the initial burst
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.take(500).await;
        bucket.take(1500).await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.99..2.01).contains(&elapsed), "{elapsed}");
        // After idling, at most one second's worth passes at once.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        bucket.take(3000).await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.99..2.01).contains(&elapsed), "{elapsed}");
    }
}
