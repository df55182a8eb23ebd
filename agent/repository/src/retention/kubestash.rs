//! The retention part of a KubeStash `RetentionPolicy` spec and its mapping onto
//! [`RetentionPolicy`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Count, RetentionError, RetentionPolicy};

/// The retention fields of a KubeStash `RetentionPolicy` `spec` (`storage.kubestash.com/
/// v1alpha1`), in its camelCase wire shape. Other spec fields (`usagePolicy`, `default`)
/// are ignored here: they belong to the operator's API types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeStashRetentionSpec {
    /// Remove Snapshots older than this: `30d12h30m`, units `y` (365 days), `mo` (30 days),
    /// `w`, `d`, `h`, `m` (minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retention_period: Option<String>,
    /// How many successful Snapshots to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_snapshots: Option<SuccessfulSnapshots>,
    /// How many failed Snapshots to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_snapshots: Option<FailedSnapshots>,
}

/// `spec.successfulSnapshots`: restic's keep counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessfulSnapshots {
    /// keep-last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<i32>,
    /// keep-hourly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<i32>,
    /// keep-daily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<i32>,
    /// keep-weekly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<i32>,
    /// keep-monthly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<i32>,
    /// keep-yearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<i32>,
}

/// `spec.failedSnapshots`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedSnapshots {
    /// Keep the last n failed Snapshots (KubeStash's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<i32>,
}

/// A KubeStash count: absent or 0 is off, -1 is unlimited (as restic), below is invalid.
fn count(field: &str, value: Option<i32>) -> Result<Count, RetentionError> {
    match value {
        None => Ok(Count::Limit(0)),
        Some(-1) => Ok(Count::Unlimited),
        Some(n) => u32::try_from(n).map(Count::Limit).map_err(|_| {
            RetentionError::InvalidSpec(format!(
                "{field} is {n}: expected a number ≥ 0 (or -1 for unlimited)"
            ))
        }),
    }
}

impl KubeStashRetentionSpec {
    fn max_age(&self) -> Result<Option<Duration>, RetentionError> {
        self.max_retention_period
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(parse_retention_period)
            .transpose()
    }

    /// The policy for successful snapshots (every snapshot in a repository is one):
    /// `successfulSnapshots` as keep counts, `maxRetentionPeriod` as
    /// [`RetentionPolicy::max_age`]. Fails, like KubeStash's webhook, when neither is given.
    pub fn successful_policy(&self) -> Result<RetentionPolicy, RetentionError> {
        let max_age = self.max_age()?;
        let Some(s) = &self.successful_snapshots else {
            if max_age.is_none() {
                return Err(RetentionError::InvalidSpec(
                    "one of maxRetentionPeriod and successfulSnapshots must be given".into(),
                ));
            }
            return Ok(RetentionPolicy {
                max_age,
                ..RetentionPolicy::default()
            });
        };
        Ok(RetentionPolicy {
            keep_last: count("successfulSnapshots.last", s.last)?,
            keep_hourly: count("successfulSnapshots.hourly", s.hourly)?,
            keep_daily: count("successfulSnapshots.daily", s.daily)?,
            keep_weekly: count("successfulSnapshots.weekly", s.weekly)?,
            keep_monthly: count("successfulSnapshots.monthly", s.monthly)?,
            keep_yearly: count("successfulSnapshots.yearly", s.yearly)?,
            max_age,
            ..RetentionPolicy::default()
        })
    }

    /// The policy for failed Snapshot objects (the operator's; a repository holds none):
    /// keep the last `failedSnapshots.last` (default 1), none older than
    /// `maxRetentionPeriod`.
    pub fn failed_policy(&self) -> Result<RetentionPolicy, RetentionError> {
        let last = self.failed_snapshots.as_ref().and_then(|f| f.last);
        Ok(RetentionPolicy {
            keep_last: count("failedSnapshots.last", Some(last.unwrap_or(1)))?,
            max_age: self.max_age()?,
            ..RetentionPolicy::default()
        })
    }
}

impl TryFrom<&KubeStashRetentionSpec> for RetentionPolicy {
    type Error = RetentionError;

    /// [`KubeStashRetentionSpec::successful_policy`].
    fn try_from(spec: &KubeStashRetentionSpec) -> Result<Self, Self::Error> {
        spec.successful_policy()
    }
}

/// Parses a KubeStash `RetentionPeriod` (`2y`, `6mo`, `30d12h30m`) into a fixed duration,
/// as KubeStash converts it: a year is 365 days, a month 30 days, `m` is minutes.
pub fn parse_retention_period(input: &str) -> Result<Duration, RetentionError> {
    let invalid = |reason: &str| RetentionError::InvalidRetentionPeriod {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    const MINUTE: u64 = 60;
    const DAY: u64 = 24 * 60 * MINUTE;
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(
                "expected a number (negative values are not allowed)",
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("a number is too large"))?;
        let after = &rest[digits..];
        let (unit_secs, unit_len) = if after.starts_with("mo") {
            (30 * DAY, 2)
        } else {
            match after.chars().next() {
                Some('y') => (365 * DAY, 1),
                Some('w') => (7 * DAY, 1),
                Some('d') => (DAY, 1),
                Some('h') => (60 * MINUTE, 1),
                Some('m') => (MINUTE, 1),
                Some(other) => {
                    return Err(invalid(&format!("unknown unit {other:?}")));
                }
                None => return Err(invalid("a number has no unit")),
            }
        };
        total = n
            .checked_mul(unit_secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| invalid("it is too long"))?;
        rest = &after[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600;

    #[test]
    fn retention_periods_use_kubestash_units() {
        let p = |s: &str| parse_retention_period(s).expect(s).as_secs();
        assert_eq!(p("30d"), 30 * DAY);
        assert_eq!(p("2mo"), 60 * DAY);
        assert_eq!(p("1y"), 365 * DAY);
        assert_eq!(p("2w"), 14 * DAY);
        assert_eq!(p("30d12h30m"), 30 * DAY + 12 * 3600 + 30 * 60);
        for (bad, why) in [
            ("", "empty"),
            ("5", "no unit"),
            ("5s", "unknown unit 's'"),
            ("-5d", "negative"),
            ("99999999999999999y", "too long"),
        ] {
            let err = parse_retention_period(bad).unwrap_err();
            assert!(
                matches!(err, RetentionError::InvalidRetentionPeriod { .. }),
                "{bad}"
            );
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_kubestash_spec_maps_onto_a_policy() {
        let spec: KubeStashRetentionSpec = serde_json::from_str(
            r#"{
                "default": true,
                "failedSnapshots": {"last": 2},
                "maxRetentionPeriod": "2mo",
                "successfulSnapshots": {"last": 5, "daily": 7, "yearly": -1},
                "usagePolicy": {"allowedNamespaces": {"from": "Same"}}
            }"#,
        )
        .expect("the sample spec of the KubeStash docs parses");
        let policy = RetentionPolicy::try_from(&spec).expect("valid");
        assert_eq!(
            policy,
            RetentionPolicy {
                keep_last: Count::Limit(5),
                keep_daily: Count::Limit(7),
                keep_yearly: Count::Unlimited,
                max_age: Some(Duration::from_secs(60 * DAY)),
                ..RetentionPolicy::default()
            }
        );
        let failed = spec.failed_policy().expect("valid");
        assert_eq!(failed.keep_last, Count::Limit(2));
        assert_eq!(failed.max_age, Some(Duration::from_secs(60 * DAY)));
        // failedSnapshots.last defaults to 1.
        let bare = KubeStashRetentionSpec {
            max_retention_period: Some("7d".into()),
            ..Default::default()
        };
        assert_eq!(
            bare.failed_policy().expect("valid").keep_last,
            Count::Limit(1)
        );
        let only_age = bare.successful_policy().expect("valid");
        assert!(!only_age.has_keep_rules());
        assert_eq!(only_age.max_age, Some(Duration::from_secs(7 * DAY)));
        // The wire shape round-trips in camelCase.
        let json = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(json["successfulSnapshots"]["daily"], 7);
        assert_eq!(json["maxRetentionPeriod"], "2mo");
    }

    #[test]
    fn invalid_specs_are_refused_naming_the_field() {
        let err = KubeStashRetentionSpec::default()
            .successful_policy()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("one of maxRetentionPeriod and successfulSnapshots"),
            "{err}"
        );
        let spec = KubeStashRetentionSpec {
            successful_snapshots: Some(SuccessfulSnapshots {
                weekly: Some(-3),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = spec.successful_policy().unwrap_err();
        assert!(
            err.to_string().contains("successfulSnapshots.weekly is -3"),
            "{err}"
        );
        let spec = KubeStashRetentionSpec {
            max_retention_period: Some("3x".into()),
            ..Default::default()
        };
        let err = spec.successful_policy().unwrap_err();
        assert!(matches!(err, RetentionError::InvalidRetentionPeriod { .. }));
    }
}
