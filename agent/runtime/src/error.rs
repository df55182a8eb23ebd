//! Errors of the addon runtime.

use std::fmt;
use std::time::Duration;

/// Result type of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why loading or running an addon failed. Every message names the addon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a WebAssembly component this host can compile.
    #[error("addon {origin}: not a valid WebAssembly component: {reason}")]
    InvalidComponent {
        /// Where the addon came from (built-in name or file path).
        origin: String,
        /// What the compiler said.
        reason: String,
    },
    /// The component was built against an interface line this host does not support.
    #[error(
        "addon {origin}: built against {found}, but this host supports stowaway:addon {supported}"
    )]
    UnsupportedInterface {
        /// Where the addon came from.
        origin: String,
        /// What the component exports or imports.
        found: String,
        /// The lines this host implements.
        supported: String,
    },
    /// The addon's description is unusable (bad name, bad parameter list, ...).
    #[error("addon {origin}: {reason}")]
    InvalidDescription {
        /// Where the addon came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A parameter given for the job does not fit the addon's declaration.
    #[error("addon {addon}: {reason}")]
    InvalidParameter {
        /// Name and version of the addon.
        addon: String,
        /// What is wrong, naming the parameter.
        reason: String,
    },
    /// The job asks for something the addon did not declare (or the host cannot grant).
    #[error("addon {addon}: permission denied: {reason}")]
    PermissionDenied {
        /// Name and version of the addon.
        addon: String,
        /// What was refused.
        reason: String,
    },
    /// The addon ran and failed, trapped, ran out of time or memory.
    #[error("addon {addon}: {failure}")]
    Addon {
        /// Name and version of the addon.
        addon: String,
        /// What happened.
        failure: Failure,
    },
    /// The host could not set up the sandbox (a volume path is missing, ...).
    #[error("addon {addon}: {reason}")]
    Setup {
        /// Name and version of the addon.
        addon: String,
        /// What failed.
        reason: String,
    },
}

/// How an addon run ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The addon returned an error.
    Failed {
        /// The error's kind, as named in the WIT (`invalid-parameter`, `io`, ...).
        kind: String,
        /// The addon's message.
        message: String,
    },
    /// The host failed underneath the addon (for example the repository storage).
    Host(String),
    /// The addon trapped (a panic, an unreachable instruction, an invalid call).
    Trap(String),
    /// The job ran past its deadline and did not stop within the grace period.
    Timeout(Duration),
    /// The job was cancelled.
    Cancelled,
    /// The addon tried to grow its memory past the limit.
    OutOfMemory {
        /// The limit in bytes.
        limit: u64,
    },
}

impl Failure {
    /// A stable short label for metrics and JSON output.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Failed { .. } => "failed",
            Failure::Host(_) => "host-error",
            Failure::Trap(_) => "trap",
            Failure::Timeout(_) => "timeout",
            Failure::Cancelled => "cancelled",
            Failure::OutOfMemory { .. } => "out-of-memory",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Failed { kind, message } if message.is_empty() => write!(f, "failed: {kind}"),
            Failure::Failed { kind, message } => write!(f, "failed ({kind}): {message}"),
            Failure::Host(message) => write!(f, "{message}"),
            Failure::Trap(message) => write!(f, "trapped: {message}"),
            Failure::Timeout(limit) => {
                write!(
                    f,
                    "exceeded its deadline of {} and was stopped",
                    humanize(*limit)
                )
            }
            Failure::Cancelled => write!(f, "cancelled"),
            Failure::OutOfMemory { limit } => write!(
                f,
                "exceeded its memory limit of {} MiB and was stopped",
                limit / (1024 * 1024)
            ),
        }
    }
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 120.0 {
        format!("{secs:.1} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    }
}
