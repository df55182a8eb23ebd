//! Operator metrics in the Prometheus text format: sessions by phase, their durations and
//! sizes, and reconcile failures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Counters shared by the reconcilers and the `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (kind, phase) → finished sessions.
    sessions: BTreeMap<(String, String), u64>,
    /// kind → (sum of seconds, count).
    durations: BTreeMap<String, (f64, u64)>,
    /// kind → bytes written or restored.
    bytes: BTreeMap<String, u64>,
    /// (controller, reason) → failures.
    failures: BTreeMap<(String, String), u64>,
}

impl Metrics {
    /// Records a session that reached a final phase (`kind`: `backup` or `restore`).
    pub fn session_finished(
        &self,
        kind: &str,
        phase: &str,
        duration: Option<Duration>,
        bytes: Option<u64>,
    ) {
        let mut inner = self.lock();
        *inner
            .sessions
            .entry((kind.to_owned(), phase.to_owned()))
            .or_default() += 1;
        if let Some(d) = duration {
            let entry = inner.durations.entry(kind.to_owned()).or_default();
            entry.0 += d.as_secs_f64();
            entry.1 += 1;
        }
        if let Some(b) = bytes {
            *inner.bytes.entry(kind.to_owned()).or_default() += b;
        }
    }

    /// Records a failure of a controller (a failed reconcile or a failed session), by reason.
    pub fn failure(&self, controller: &str, reason: &str) {
        *self
            .lock()
            .failures
            .entry((controller.to_owned(), reason.to_owned()))
            .or_default() += 1;
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP stowaway_sessions_total Sessions that reached a final phase.\n# TYPE stowaway_sessions_total counter"
        );
        for ((kind, phase), n) in &inner.sessions {
            let _ = writeln!(
                out,
                "stowaway_sessions_total{{kind=\"{}\",phase=\"{}\"}} {n}",
                escape(kind),
                escape(phase)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stowaway_session_duration_seconds How long finished sessions took.\n# TYPE stowaway_session_duration_seconds summary"
        );
        for (kind, (sum, count)) in &inner.durations {
            let kind = escape(kind);
            let _ = writeln!(
                out,
                "stowaway_session_duration_seconds_sum{{kind=\"{kind}\"}} {sum}\nstowaway_session_duration_seconds_count{{kind=\"{kind}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stowaway_session_bytes_total Bytes in the snapshots of finished sessions.\n# TYPE stowaway_session_bytes_total counter"
        );
        for (kind, bytes) in &inner.bytes {
            let _ = writeln!(
                out,
                "stowaway_session_bytes_total{{kind=\"{}\"}} {bytes}",
                escape(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stowaway_failures_total Failed sessions and reconciles, by reason.\n# TYPE stowaway_failures_total counter"
        );
        for ((controller, reason), n) in &inner.failures {
            let _ = writeln!(
                out,
                "stowaway_failures_total{{controller=\"{}\",reason=\"{}\"}} {n}",
                escape(controller),
                escape(reason)
            );
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters that are still counters.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_summaries_and_escaped_labels() {
        let m = Metrics::default();
        m.session_finished(
            "backup",
            "Succeeded",
            Some(Duration::from_secs(3)),
            Some(1024),
        );
        m.session_finished(
            "backup",
            "Succeeded",
            Some(Duration::from_millis(1500)),
            Some(1024),
        );
        m.session_finished("backup", "Failed", None, None);
        m.failure("BackupSession", "Backup\"TimedOut");
        let text = m.render();
        for line in [
            "stowaway_sessions_total{kind=\"backup\",phase=\"Succeeded\"} 2",
            "stowaway_sessions_total{kind=\"backup\",phase=\"Failed\"} 1",
            "stowaway_session_duration_seconds_sum{kind=\"backup\"} 4.5",
            "stowaway_session_duration_seconds_count{kind=\"backup\"} 2",
            "stowaway_session_bytes_total{kind=\"backup\"} 2048",
            "stowaway_failures_total{controller=\"BackupSession\",reason=\"Backup\\\"TimedOut\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
