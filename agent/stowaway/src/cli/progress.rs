//! Progress bars on a terminal (none when stderr is not one, or with --quiet/--json), and
//! Ctrl-C handling.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stowaway_runtime::{AddonProgress, CancelToken, ProgressSink};

use super::Global;

/// Returned when the user pressed Ctrl-C; mapped to exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub(crate) struct Interrupted;

/// Cancels `token` on Ctrl-C. The returned flag tells whether that happened.
pub(crate) fn cancel_on_ctrl_c(token: CancelToken) -> Arc<std::sync::atomic::AtomicBool> {
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = fired.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!("stowaway: stopping (Ctrl-C); nothing partial is recorded");
            token.cancel();
        }
    });
    fired
}

/// What a progress line shows, sampled by the drawing task.
pub(crate) struct Counters {
    /// Items done (files).
    pub items: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Bytes done.
    pub bytes: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Bytes in all, when known (enables the bar and the ETA).
    pub total_bytes: Arc<AtomicU64>,
    /// What the addon says it is doing.
    pub phase: Arc<Mutex<String>>,
}

/// A progress display; dropping it clears the line.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Whether a progress bar is drawn: stderr is a terminal, and neither --quiet nor --json.
    pub fn shown(g: &Global) -> bool {
        !g.quiet && !g.json && std::io::stderr().is_terminal()
    }

    /// Starts drawing `counters` ten times a second, if [`Progress::shown`].
    pub fn start(g: &Global, verb: &'static str, counters: Counters) -> Progress {
        if !Self::shown(g) {
            return Progress {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(verb);
        let drawn = bar.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                let bytes = (counters.bytes)();
                let items = (counters.items)();
                let total = counters.total_bytes.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let rate = bytes as f64 / secs;
                let phase = counters
                    .phase
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let mut msg = format!(
                    "{items} files, {}, {}/s",
                    super::output::bytes(bytes),
                    super::output::bytes(rate as u64)
                );
                if total > 0 {
                    drawn.set_length(total);
                    drawn.set_position(bytes.min(total));
                    if rate > 0.0 && total > bytes {
                        let eta = Duration::from_secs_f64((total - bytes) as f64 / rate);
                        msg.push_str(&format!(
                            ", ETA {}",
                            humantime::format_duration(Duration::from_secs(eta.as_secs()))
                        ));
                    }
                }
                if !phase.is_empty() {
                    msg.push_str(&format!(" ({phase})"));
                }
                drawn.set_message(msg);
                drawn.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Progress {
            bar: Some(bar),
            task: Some(task),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Forwards addon progress reports into the phase shown on the bar.
pub(crate) struct PhaseSink(pub Arc<Mutex<String>>);

impl ProgressSink for PhaseSink {
    fn report(&self, progress: &AddonProgress) {
        let mut phase = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = progress.phase.clone();
    }
}
