//! Kubernetes Events the reconcilers ask for.

/// One Event to record on the object being reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason a user can search for, such as `MissedSchedule`.
    pub reason: String,
    /// What happened and, for failures, what to do about it.
    pub message: String,
}

impl Note {
    /// A `Normal` event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}
