//! The time the scheduler sees: [`SystemClock`] in production, [`ManualClock`] in tests,
//! which move time by hand so that a schedule's runs and a downtime are simulated without
//! waiting.

use std::time::Duration;

use jiff::Timestamp;

/// Longest real sleep of [`SystemClock::sleep_until`] before it looks at the clock again, so
/// that a wall clock set forward or a machine waking from suspend is noticed.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// A source of wall-clock time that can be waited on.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;

    /// Returns once [`Clock::now`] has reached `deadline` (at once if it has).
    async fn sleep_until(&self, deadline: Timestamp);
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        loop {
            let now = Timestamp::now();
            if now >= deadline {
                return;
            }
            let left = Duration::try_from(deadline.duration_since(now)).unwrap_or(MAX_SLEEP);
            tokio::time::sleep(left.min(MAX_SLEEP)).await;
        }
    }
}

/// A clock that moves only when told to; sleepers wake when it passes their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: tokio::sync::watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> ManualClock {
        ManualClock {
            now: tokio::sync::watch::Sender::new(now),
        }
    }

    /// Sets the time (it may go back, as a wall clock can).
    pub fn set(&self, now: Timestamp) {
        self.now.send_replace(now);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| {
            *now = now
                .checked_add(
                    jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MAX);
        });
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let mut now = self.now.subscribe();
        // `wait_for` checks the current value first; the sender lives as long as `self`.
        let _ = now.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect(s)
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_it_passes_their_deadline() {
        let clock = std::sync::Arc::new(ManualClock::new(ts("2026-01-01T00:00:00Z")));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(ts("2026-01-01T00:05:00Z")).await }
        });
        clock.advance(Duration::from_secs(240));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before the deadline");
        clock.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(clock.now(), ts("2026-01-01T00:05:00Z"));
        // A deadline already passed returns at once.
        clock.sleep_until(ts("2025-01-01T00:00:00Z")).await;
    }

    #[tokio::test]
    async fn the_system_clock_returns_for_a_past_deadline() {
        let clock = SystemClock;
        let before = clock.now();
        clock.sleep_until(before).await;
        assert!(clock.now() >= before);
    }
}
