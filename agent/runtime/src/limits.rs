//! Limits on one addon run: memory, deadline, cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Resource limits for one job.
#[derive(Debug, Clone)]
pub struct JobLimits {
    /// Upper bound of the addon's linear memory, in bytes.
    pub memory_bytes: u64,
    /// The job is cancelled when it runs longer than this.
    pub deadline: Option<Duration>,
    /// Time an addon has to stop on its own once cancelled, before it is interrupted.
    pub grace: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            memory_bytes: 256 * 1024 * 1024,
            deadline: None,
            grace: Duration::from_secs(10),
        }
    }
}

/// Why a job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Someone asked (Ctrl-C, a deleted session).
    Requested,
    /// The deadline passed.
    Deadline,
}

/// A cancellation flag shared between the host and a running job. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    flag: AtomicBool,
    since: Mutex<Option<(Instant, CancelReason)>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the job: the addon sees `is-cancelled`, and is interrupted after the grace period.
    pub fn cancel(&self) {
        self.cancel_with(CancelReason::Requested);
    }

    pub(crate) fn cancel_with(&self, reason: CancelReason) {
        let mut since = self.0.since.lock().unwrap_or_else(PoisonError::into_inner);
        if since.is_none() {
            *since = Some((Instant::now(), reason));
            self.0.flag.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
    }

    pub(crate) fn since(&self) -> Option<(Instant, CancelReason)> {
        *self.0.since.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tracks the deadline of a running job; consulted on every epoch tick.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    pub limits: JobLimits,
    pub started: Instant,
    pub cancel: CancelToken,
}

/// Raised from the epoch callback to interrupt an addon that did not stop in time.
#[derive(Debug, thiserror::Error)]
#[error("interrupted ({reason:?})")]
pub(crate) struct Interrupted {
    pub reason: CancelReason,
}

impl Deadline {
    /// Whether the job is cancelled, counting a deadline that has passed.
    pub fn is_cancelled(&self) -> bool {
        // tick() cancels once the deadline has passed; its interrupt verdict is for callers
        // that can stop the guest.
        let _ = self.tick();
        self.cancel.is_cancelled()
    }

    /// Called on each epoch tick: cancels at the deadline, interrupts after the grace period.
    pub fn tick(&self) -> Result<(), Interrupted> {
        let now = Instant::now();
        if let Some(limit) = self.limits.deadline
            && now.duration_since(self.started) >= limit
        {
            self.cancel.cancel_with(CancelReason::Deadline);
        }
        match self.cancel.since() {
            Some((since, reason)) if now.duration_since(since) >= self.limits.grace => {
                Err(Interrupted { reason })
            }
            _ => Ok(()),
        }
    }
}

/// Caps the linear memory and tables of a store, remembering when it said no.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub memory_bytes: usize,
    pub exceeded: bool,
}

const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 64;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_cancels_then_interrupts_after_grace() {
        let cancel = CancelToken::new();
        let deadline = Deadline {
            limits: JobLimits {
                memory_bytes: 0,
                deadline: Some(Duration::ZERO),
                grace: Duration::from_millis(30),
            },
            started: Instant::now(),
            cancel: cancel.clone(),
        };
        assert!(deadline.tick().is_ok(), "first tick only cancels");
        assert!(cancel.is_cancelled());
        std::thread::sleep(Duration::from_millis(40));
        let err = deadline.tick().expect_err("grace period is over");
        assert_eq!(err.reason, CancelReason::Deadline);
    }

    #[test]
    fn explicit_cancel_keeps_its_reason() {
        let cancel = CancelToken::new();
        cancel.cancel();
        cancel.cancel_with(CancelReason::Deadline);
        assert_eq!(
            cancel.since().map(|(_, r)| r),
            Some(CancelReason::Requested)
        );
    }
}
