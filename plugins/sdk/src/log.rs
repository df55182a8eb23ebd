//! Writing to the host's log.
//!
//! Records go to the agent's log, tagged with the addon and the job. Use fields for values a
//! program may want to filter on:
//!
//! ```ignore
//! use stowaway_addon::log;
//! log::info("scan finished");
//! log::warn_with("file vanished", &[("path", "data/a.txt")]);
//! ```
//!
//! Text written to stderr (for example a panic message) also ends up in the host's log, as
//! plain lines without level or fields.

use crate::LogLevel;
use crate::bindings::stowaway::addon::host;

/// Writes a record with `level`, `message` and structured `fields`.
pub fn log(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    host::log(level, message, &fields);
}

/// Writes a [`LogLevel::Trace`] record.
pub fn trace(message: &str) {
    log(LogLevel::Trace, message, &[]);
}

/// Writes a [`LogLevel::Debug`] record.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message, &[]);
}

/// Writes a [`LogLevel::Info`] record.
pub fn info(message: &str) {
    log(LogLevel::Info, message, &[]);
}

/// Writes a [`LogLevel::Warn`] record.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message, &[]);
}

/// Writes a [`LogLevel::Error`] record.
pub fn error(message: &str) {
    log(LogLevel::Error, message, &[]);
}

/// Writes a [`LogLevel::Debug`] record with fields.
pub fn debug_with(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Debug, message, fields);
}

/// Writes a [`LogLevel::Info`] record with fields.
pub fn info_with(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Info, message, fields);
}

/// Writes a [`LogLevel::Warn`] record with fields.
pub fn warn_with(message: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Warn, message, fields);
}
