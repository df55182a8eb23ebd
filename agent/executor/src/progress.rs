//! An addon's progress, written to the log: each new phase, and otherwise at most every
//! [`LOG_EVERY`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stowaway_runtime::{AddonProgress, ProgressSink};

/// Least time between two progress lines of the same phase.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs the progress of one addon run (`what`: `backup into repo demo/r` and the like).
pub struct LogProgress {
    what: String,
    last: Mutex<Option<(String, Instant)>>,
    transferred: AtomicU64,
}

impl LogProgress {
    /// A sink for the run described by `what`.
    pub fn new(what: impl Into<String>) -> Self {
        LogProgress {
            what: what.into(),
            last: Mutex::new(None),
            transferred: AtomicU64::new(0),
        }
    }
}

impl ProgressSink for LogProgress {
    fn report(&self, progress: &AddonProgress) {
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = match &*last {
            Some((phase, at)) => phase != &progress.phase || now.duration_since(*at) >= LOG_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        *last = Some((progress.phase.clone(), now));
        tracing::info!(
            run = %self.what,
            phase = %progress.phase,
            items = progress.items_done,
            bytes = progress.bytes_done,
            bytes_total = progress.bytes_total,
            read = self.transferred.load(Ordering::Relaxed),
            "progress"
        );
    }

    fn transferred(&self, bytes: u64) {
        self.transferred.fetch_add(bytes, Ordering::Relaxed);
    }
}
