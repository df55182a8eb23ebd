//! Parameter helpers: inherent methods on [`Job`] and a constructor for [`Parameter`].

use crate::{AddonError, Job, Parameter, ParameterType, Progress, error};

impl Job {
    /// The value of parameter `name`, or `None` when it is not set. The host has already
    /// checked the parameters against `describe()` and filled in defaults, so `None` only
    /// happens for parameters without default that the user left out, or undeclared names.
    pub fn param(&self, name: &str) -> Option<String> {
        self.parameters()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A `boolean` parameter (`true`/`false`, also `yes`/`no`, `1`/`0`), or `default` when it
    /// is not set. Any other value is [`AddonError::InvalidParameter`].
    pub fn param_bool(&self, name: &str, default: bool) -> Result<bool, AddonError> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                "" => Ok(default),
                _ => Err(error::invalid_parameter(
                    name,
                    format!("{v:?} is not a boolean"),
                )),
            },
        }
    }

    /// An `integer` parameter, or `default` when it is not set (or empty). A value that is
    /// not a signed 64-bit integer is [`AddonError::InvalidParameter`].
    pub fn param_int(&self, name: &str, default: i64) -> Result<i64, AddonError> {
        match self.param(name) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| error::invalid_parameter(name, format!("{v:?} is not an integer"))),
        }
    }

    /// A `text` parameter that must not be empty.
    pub fn param_required(&self, name: &str) -> Result<String, AddonError> {
        match self.param(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(error::invalid_parameter(name, "is missing or empty")),
        }
    }

    /// An `integer` parameter holding a TCP port (1-65535), or `default` when it is not set.
    pub fn param_port(&self, name: &str, default: u16) -> Result<u16, AddonError> {
        let port = self.param_int(name, i64::from(default))?;
        u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| error::invalid_parameter(name, format!("{port} is not a TCP port")))
    }

    /// A `text` parameter split on whitespace (for example extra arguments of a program).
    /// Empty when the parameter is not set.
    pub fn param_words(&self, name: &str) -> Vec<String> {
        self.param(name)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// A `text-list` parameter whose items may also be comma-separated on a line (`a,b` or
    /// one per line), trimmed, without empty items.
    pub fn param_items(&self, name: &str) -> Vec<String> {
        self.param_list(name)
            .iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A `text-list` parameter: its lines (`\n`-separated, a trailing `\r` removed), without
    /// empty lines. Empty when the parameter is not set.
    pub fn param_list(&self, name: &str) -> Vec<String> {
        self.param(name).map(|v| split_list(&v)).unwrap_or_default()
    }

    /// Reports progress: `phase` (such as `"scan"`), items and bytes done so far, totals
    /// unknown. The host rate-limits, so calling it every few hundred items is fine.
    pub fn report(&self, phase: &str, items_done: u64, bytes_done: u64) {
        self.report_progress(&Progress {
            phase: phase.to_string(),
            items_done,
            items_total: None,
            bytes_done,
            bytes_total: None,
        });
    }

    /// [`AddonError::Cancelled`] if the job was cancelled (or ran out of time), else `Ok`.
    /// Meant for `job.check_cancelled()?` in loops.
    pub fn check_cancelled(&self) -> Result<(), AddonError> {
        if self.is_cancelled() {
            Err(AddonError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Splits a `text-list` value into its non-empty lines.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

impl Parameter {
    /// A parameter declaration for [`AddonInfo::parameters`](crate::AddonInfo). A parameter
    /// without `default` is required.
    pub fn new(
        name: &str,
        kind: ParameterType,
        description: &str,
        default: Option<&str>,
    ) -> Parameter {
        Parameter {
            name: name.to_string(),
            type_: kind,
            description: description.to_string(),
            default: default.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_list;

    #[test]
    fn lists_drop_empty_lines_and_carriage_returns() {
        assert_eq!(split_list("a\r\n\nb c\n  \n"), vec!["a", "b c"]);
        assert!(split_list("").is_empty());
    }
}
