//! Retention policies: which snapshots to keep, with restic's `forget` semantics.
//!
//! The module is pure (no I/O) so that the operator can use it on its own objects:
//! [`RetentionPolicy::apply`] takes anything [`Retainable`] and returns a [`Decision`] with
//! the [`Reason`]s for every item. [`ForgetPlan`] groups repository snapshots ([`GroupBy`])
//! and applies a policy to each group; [`Repository::forget`](crate::Repository::forget)
//! then deletes the snapshot files. [`KubeStashRetentionSpec`] maps a KubeStash
//! `RetentionPolicy` spec onto [`RetentionPolicy`].
//!
//! The rules are restic's (`internal/restic/snapshot_policy.go`, restic ≥ 0.17), described
//! in `docs/retention.md`:
//! - snapshots are taken newest first; `keep_last` keeps the first n, `keep_hourly` … `keep_yearly`
//!   keep the newest snapshot of each of the n newest calendar periods that have one (hour, day,
//!   ISO-8601 week, month, year, in the [`Clock`]'s time zone); [`Count::Unlimited`] has no n;
//! - when a count is not used up by the time the oldest snapshot is reached, the oldest is
//!   kept too ("oldest daily snapshot");
//! - `keep_within` keeps everything newer than the newest snapshot minus a
//!   [`CalendarDuration`] (the newest snapshot not in the future, not "now");
//!   `keep_within_<period>` keeps the newest snapshot of each period inside that window;
//! - `keep_tags` keeps snapshots that carry every tag of at least one of its tag lists;
//! - a policy without any rule keeps everything.
//!
//! One addition for KubeStash: `max_age` (its `maxRetentionPeriod`) removes every snapshot
//! older than `now − max_age`, whatever the other rules say.

mod duration;
mod forget;
mod group;
mod kubestash;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use duration::CalendarDuration;
pub use group::{ForgetGroup, ForgetPlan, GroupBy, GroupKey, SnapshotDecision};
pub use kubestash::{
    FailedSnapshots, KubeStashRetentionSpec, SuccessfulSnapshots, parse_retention_period,
};

use crate::snapshot::Snapshot;

/// An invalid retention option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// A `keep-within` duration does not parse.
    #[error(
        "invalid duration {input:?}: {reason} (expected e.g. 1y2m3d4h: years, months, days, hours)"
    )]
    InvalidDuration {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A keep count is neither a number, `-1` nor `unlimited`.
    #[error("invalid count {input:?}: expected a number ≥ 0, or unlimited (or -1)")]
    InvalidCount {
        /// The text given.
        input: String,
    },
    /// A `--group-by` list names something else than host, target and tags.
    #[error(
        "invalid grouping {input:?}: expected a comma-separated list of host, target, tags (or \"\")"
    )]
    InvalidGroupBy {
        /// The text given.
        input: String,
    },
    /// A KubeStash `maxRetentionPeriod` does not parse.
    #[error(
        "invalid retention period {input:?}: {reason} (expected e.g. 30d12h30m: units y, mo, w, d, h, m)"
    )]
    InvalidRetentionPeriod {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A KubeStash spec field is out of range or missing.
    #[error("invalid retention policy: {0}")]
    InvalidSpec(String),
}

/// How many periods a `keep-*` count keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Count {
    /// At most this many (0: the rule is off).
    Limit(u32),
    /// Every period (restic's `unlimited` or `-1`).
    Unlimited,
}

impl Count {
    /// Whether the rule is on (a limit above zero, or unlimited).
    pub fn is_set(self) -> bool {
        self != Count::Limit(0)
    }
}

impl Default for Count {
    fn default() -> Self {
        Count::Limit(0)
    }
}

impl FromStr for Count {
    type Err = RetentionError;

    /// `N`, `unlimited` or `-1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "unlimited" | "-1" => Ok(Count::Unlimited),
            n => n
                .parse::<u32>()
                .map(Count::Limit)
                .map_err(|_| RetentionError::InvalidCount {
                    input: s.to_owned(),
                }),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Limit(n) => write!(f, "{n}"),
            Count::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// The calendar period of a `keep-*` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// No period: every snapshot is its own (`keep-last`).
    Last,
    /// Calendar hour.
    Hour,
    /// Calendar day.
    Day,
    /// ISO-8601 week (Monday to Sunday; week-numbering year).
    Week,
    /// Calendar month.
    Month,
    /// Calendar year.
    Year,
}

impl Period {
    /// restic's adjective: `last`, `hourly`, … `yearly`.
    pub fn adjective(self) -> &'static str {
        match self {
            Period::Last => "last",
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    /// The period's number for a local time: equal numbers mean the same period
    /// (restic's `ymdh`, `ymd`, `yw`, `ym`, `y`; `Last` uses the position `nr`).
    fn key(self, local: &Local, nr: usize) -> i64 {
        match self {
            Period::Last => nr as i64,
            Period::Hour => local.day_key * 100 + local.hour,
            Period::Day => local.day_key,
            Period::Week => local.week_key,
            Period::Month => local.day_key / 100,
            Period::Year => local.day_key / 10_000,
        }
    }
}

/// The calendar fields of one snapshot's time in the policy's time zone.
struct Local {
    /// `YYYYMMDD`.
    day_key: i64,
    hour: i64,
    /// `YYYYWW` with the ISO week-numbering year.
    week_key: i64,
}

impl Local {
    fn new(time: Timestamp, time_zone: &TimeZone) -> Local {
        let zoned = time.to_zoned(time_zone.clone());
        let week = zoned.date().iso_week_date();
        Local {
            day_key: i64::from(zoned.year()) * 10_000
                + i64::from(zoned.month()) * 100
                + i64::from(zoned.day()),
            hour: i64::from(zoned.hour()),
            week_key: i64::from(week.year()) * 100 + i64::from(week.week()),
        }
    }
}

/// Why a snapshot is kept (or, for [`Reason::OlderThan`], removed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The policy has no rule: everything is kept.
    EmptyPolicy,
    /// The snapshot carries every tag of this `keep-tag` list.
    Tags(Vec<String>),
    /// Newer than the newest snapshot minus this (`keep-within`).
    Within(CalendarDuration),
    /// The newest snapshot of its period, counted by `keep-<period>`; `oldest`: the oldest
    /// snapshot, kept because the count was not used up although its period was counted.
    Bucket {
        /// The rule's period.
        period: Period,
        /// Kept as the oldest snapshot.
        oldest: bool,
    },
    /// The newest snapshot of its period inside the `keep-within-<period>` window.
    WithinBucket {
        /// The rule's period.
        period: Period,
        /// The window.
        within: CalendarDuration,
    },
    /// The policy has only a maximum age and the snapshot is not older.
    NotOlderThan(Duration),
    /// Removed: older than the maximum age, whatever other rules matched.
    OlderThan(Duration),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::EmptyPolicy => f.write_str("policy is empty"),
            Reason::Tags(tags) if tags.len() == 1 => write!(f, "tag {}", tags[0]),
            Reason::Tags(tags) => write!(f, "tags {}", tags.join(",")),
            Reason::Within(d) => write!(f, "within {d}"),
            Reason::Bucket { period, oldest } => write!(
                f,
                "{}{} snapshot",
                if *oldest { "oldest " } else { "" },
                period.adjective()
            ),
            Reason::WithinBucket { period, within } => {
                write!(f, "{} within {within}", period.adjective())
            }
            Reason::NotOlderThan(age) => write!(f, "not older than {}", format_age(*age)),
            Reason::OlderThan(age) => write!(f, "older than {}", format_age(*age)),
        }
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `30d12h30m`-style text for a fixed duration (minutes and above; seconds if below).
pub fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    if secs < 60 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    let mut out = String::new();
    for (n, unit) in [
        (minutes / (24 * 60), "d"),
        (minutes / 60 % 24, "h"),
        (minutes % 60, "m"),
    ] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// Which snapshots to keep. The default keeps everything (no rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the n newest snapshots.
    pub keep_last: Count,
    /// Keep the newest snapshot of each of the n newest hours that have one.
    pub keep_hourly: Count,
    /// … days.
    pub keep_daily: Count,
    /// … ISO weeks.
    pub keep_weekly: Count,
    /// … months.
    pub keep_monthly: Count,
    /// … years.
    pub keep_yearly: Count,
    /// Keep every snapshot newer than the newest one minus this.
    pub keep_within: CalendarDuration,
    /// Keep the newest snapshot of each hour inside this window.
    pub keep_within_hourly: CalendarDuration,
    /// … of each day.
    pub keep_within_daily: CalendarDuration,
    /// … of each ISO week.
    pub keep_within_weekly: CalendarDuration,
    /// … of each month.
    pub keep_within_monthly: CalendarDuration,
    /// … of each year.
    pub keep_within_yearly: CalendarDuration,
    /// Keep snapshots carrying all tags of at least one of these lists.
    pub keep_tags: Vec<Vec<String>>,
    /// Remove every snapshot older than `now − max_age`, even one a rule keeps
    /// (KubeStash's `maxRetentionPeriod`; restic has no such option).
    pub max_age: Option<Duration>,
}

/// The time a policy is evaluated at and the time zone of its calendar periods.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Now: snapshots after it are not "the newest" for `keep-within`; `max_age` counts
    /// back from it.
    pub now: Timestamp,
    /// The time zone in which hours, days, weeks, months and years are counted.
    pub time_zone: TimeZone,
}

impl Clock {
    /// The current time in the system time zone (`TZ`, else `/etc/localtime`, else UTC).
    pub fn system() -> Clock {
        Clock {
            now: Timestamp::now(),
            time_zone: TimeZone::system(),
        }
    }
}

/// What a policy needs to know of a snapshot.
pub trait Retainable {
    /// When it was taken.
    fn time(&self) -> Timestamp;
    /// Its tags.
    fn tags(&self) -> &[String];
}

impl Retainable for Snapshot {
    fn time(&self) -> Timestamp {
        self.time
    }

    fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// The verdict on one item given to [`RetentionPolicy::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Its index in the slice given.
    pub index: usize,
    /// Keep (true) or remove.
    pub keep: bool,
    /// Why it is kept; empty for a removed item unless [`Reason::OlderThan`] removed it.
    pub reasons: Vec<Reason>,
}

const PERIODS: [Period; 6] = [
    Period::Last,
    Period::Hour,
    Period::Day,
    Period::Week,
    Period::Month,
    Period::Year,
];

impl RetentionPolicy {
    /// Whether the policy has no rule at all (it then keeps everything).
    pub fn is_empty(&self) -> bool {
        !self.has_keep_rules() && self.max_age.is_none()
    }

    /// Whether any `keep-*` rule is set (`max_age` aside).
    pub fn has_keep_rules(&self) -> bool {
        self.counts().iter().any(|c| c.is_set())
            || !self.keep_within.is_zero()
            || self.within_buckets().iter().any(|d| !d.is_zero())
            || !self.keep_tags.is_empty()
    }

    fn counts(&self) -> [Count; 6] {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
    }

    /// The `keep-within-<period>` windows, for hour … year.
    fn within_buckets(&self) -> [CalendarDuration; 5] {
        [
            self.keep_within_hourly,
            self.keep_within_daily,
            self.keep_within_weekly,
            self.keep_within_monthly,
            self.keep_within_yearly,
        ]
    }

    /// Decides for each item whether to keep it. The result is ordered newest first
    /// (items with equal times in the order given) and covers every item once.
    pub fn apply<T: Retainable>(&self, items: &[T], clock: &Clock) -> Vec<Decision> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(items[i].time()));
        let mut decisions: Vec<Decision> = if self.has_keep_rules() {
            self.apply_keep_rules(items, &order, clock)
        } else {
            let reason = match self.max_age {
                Some(age) => Reason::NotOlderThan(age),
                None => Reason::EmptyPolicy,
            };
            order
                .iter()
                .map(|&index| Decision {
                    index,
                    keep: true,
                    reasons: vec![reason.clone()],
                })
                .collect()
        };
        if let Some(age) = self.max_age {
            let cutoff = jiff::SignedDuration::try_from(age)
                .ok()
                .and_then(|age| clock.now.checked_sub(age).ok());
            for d in &mut decisions {
                if cutoff.is_some_and(|cutoff| items[d.index].time() < cutoff) {
                    d.keep = false;
                    d.reasons = vec![Reason::OlderThan(age)];
                }
            }
        }
        decisions
    }

    /// restic's `ApplyPolicy` on items sorted newest first (`order`).
    fn apply_keep_rules<T: Retainable>(
        &self,
        items: &[T],
        order: &[usize],
        clock: &Clock,
    ) -> Vec<Decision> {
        let tz = &clock.time_zone;
        // The newest snapshot that is not in the future; none: every snapshot is "within".
        let newest = order
            .iter()
            .map(|&i| items[i].time())
            .filter(|t| *t < clock.now)
            .max();
        let window_start = |d: &CalendarDuration| newest.and_then(|t| d.before(t, tz));
        let in_window =
            |start: Option<Timestamp>, t: Timestamp| start.is_none_or(|start| t > start);
        let within_start = window_start(&self.keep_within);
        let bucket_windows: Vec<(Period, CalendarDuration, Option<Timestamp>)> = PERIODS[1..]
            .iter()
            .zip(self.within_buckets())
            .filter(|(_, d)| !d.is_zero())
            .map(|(&p, d)| (p, d, window_start(&d)))
            .collect();

        let mut remaining = self.counts();
        let mut last_kept: [Option<i64>; 6] = [None; 6];
        let mut last_within: Vec<Option<i64>> = vec![None; bucket_windows.len()];
        let mut decisions = Vec::with_capacity(order.len());
        for (nr, &index) in order.iter().enumerate() {
            let item = &items[index];
            let time = item.time();
            let local = Local::new(time, tz);
            let is_oldest = nr + 1 == order.len();
            let mut reasons = Vec::new();

            for tags in &self.keep_tags {
                if tags.iter().all(|t| item.tags().contains(t)) {
                    reasons.push(Reason::Tags(tags.clone()));
                }
            }
            if !self.keep_within.is_zero() && in_window(within_start, time) {
                reasons.push(Reason::Within(self.keep_within));
            }
            for (b, &period) in PERIODS.iter().enumerate() {
                if !remaining[b].is_set() {
                    continue;
                }
                let key = period.key(&local, nr);
                let same = last_kept[b] == Some(key);
                if !same || is_oldest {
                    last_kept[b] = Some(key);
                    if let Count::Limit(n) = &mut remaining[b] {
                        *n -= 1;
                    }
                    reasons.push(Reason::Bucket {
                        period,
                        oldest: same,
                    });
                }
            }
            for (w, (period, within, start)) in bucket_windows.iter().enumerate() {
                if in_window(*start, time) {
                    let key = period.key(&local, nr);
                    if last_within[w] != Some(key) {
                        last_within[w] = Some(key);
                        reasons.push(Reason::WithinBucket {
                            period: *period,
                            within: *within,
                        });
                    }
                }
            }
            decisions.push(Decision {
                index,
                keep: !reasons.is_empty(),
                reasons,
            });
        }
        decisions
    }
}

impl fmt::Display for RetentionPolicy {
    /// A sentence like restic's: `keep 7 daily, 4 weekly snapshots, snapshots with tag x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let counts: Vec<String> = PERIODS
            .iter()
            .zip(self.counts())
            .filter(|(_, c)| c.is_set())
            .map(|(p, c)| {
                let name = match p {
                    Period::Last => "latest",
                    other => other.adjective(),
                };
                match c {
                    Count::Unlimited => format!("all {name}"),
                    Count::Limit(n) => format!("{n} {name}"),
                }
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for (p, d) in PERIODS[1..].iter().zip(self.within_buckets()) {
            if !d.is_zero() {
                parts.push(format!("{} snapshots within {d}", p.adjective()));
            }
        }
        for tags in &self.keep_tags {
            parts.push(format!("snapshots with tags {}", tags.join(",")));
        }
        if !self.keep_within.is_zero() {
            parts.push(format!(
                "all snapshots within {} of the newest",
                self.keep_within
            ));
        }
        if parts.is_empty() {
            parts.push("all snapshots".to_owned());
        }
        write!(f, "keep {}", parts.join(", "))?;
        if let Some(age) = self.max_age {
            write!(f, ", none older than {}", format_age(age))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(Timestamp, Vec<String>);

    impl Retainable for Item {
        fn time(&self) -> Timestamp {
            self.0
        }
        fn tags(&self) -> &[String] {
            &self.1
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn utc(now: &str) -> Clock {
        Clock {
            now: at(now),
            time_zone: TimeZone::UTC,
        }
    }

    fn kept(policy: &RetentionPolicy, items: &[Item], clock: &Clock) -> Vec<usize> {
        policy
            .apply(items, clock)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.index)
            .collect()
    }

    #[test]
    fn counts_parse_like_restic() {
        assert_eq!("5".parse(), Ok(Count::Limit(5)));
        assert_eq!("unlimited".parse(), Ok(Count::Unlimited));
        assert_eq!("-1".parse(), Ok(Count::Unlimited));
        let err = "-2".parse::<Count>().unwrap_err();
        assert_eq!(err, RetentionError::InvalidCount { input: "-2".into() });
        assert!(err.to_string().contains("unlimited"), "{err}");
    }

    #[test]
    fn an_empty_policy_keeps_everything() {
        let items = vec![
            Item(at("2024-01-01T00:00:00Z"), vec![]),
            Item(at("2024-01-02T00:00:00Z"), vec![]),
        ];
        let decisions = RetentionPolicy::default().apply(&items, &utc("2025-01-01T00:00:00Z"));
        assert_eq!(
            decisions,
            vec![
                Decision {
                    index: 1,
                    keep: true,
                    reasons: vec![Reason::EmptyPolicy]
                },
                Decision {
                    index: 0,
                    keep: true,
                    reasons: vec![Reason::EmptyPolicy]
                },
            ]
        );
        assert!(RetentionPolicy::default().is_empty());
    }

    #[test]
    fn the_oldest_snapshot_is_kept_while_a_count_is_left() {
        // Three snapshots on one day: keep-daily 2 keeps the newest (daily) and the oldest.
        let items = vec![
            Item(at("2024-05-17T09:36:51Z"), vec![]),
            Item(at("2024-05-17T09:41:06Z"), vec![]),
            Item(at("2024-05-17T10:02:00Z"), vec![]),
        ];
        let policy = RetentionPolicy {
            keep_daily: Count::Limit(2),
            ..Default::default()
        };
        let decisions = policy.apply(&items, &utc("2024-06-01T00:00:00Z"));
        let reasons: Vec<String> = decisions
            .iter()
            .map(|d| {
                d.reasons
                    .iter()
                    .map(Reason::to_string)
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        assert_eq!(reasons, ["daily snapshot", "", "oldest daily snapshot"]);
        // With keep-daily 1 the count is used up by the newest.
        let policy = RetentionPolicy {
            keep_daily: Count::Limit(1),
            ..Default::default()
        };
        assert_eq!(kept(&policy, &items, &utc("2024-06-01T00:00:00Z")), vec![2]);
    }

    #[test]
    fn keep_within_counts_from_the_newest_snapshot_not_in_the_future() {
        let items = vec![
            Item(at("2024-01-01T00:00:00Z"), vec![]),
            Item(at("2024-01-05T00:00:00Z"), vec![]),
            Item(at("2024-01-09T00:00:00Z"), vec![]),
            Item(at("2030-01-01T00:00:00Z"), vec![]), // clock skew: in the future
        ];
        let policy = RetentionPolicy {
            keep_within: "5d".parse().expect("duration"),
            ..Default::default()
        };
        // Newest not in the future: 9 January; window: after 4 January.
        assert_eq!(
            kept(&policy, &items, &utc("2025-01-01T00:00:00Z")),
            vec![3, 2, 1]
        );
        // If every snapshot is in the future, every snapshot is within.
        assert_eq!(
            kept(&policy, &items, &utc("2000-01-01T00:00:00Z")),
            vec![3, 2, 1, 0]
        );
    }

    #[test]
    fn max_age_removes_old_snapshots_whatever_keeps_them() {
        let items = vec![
            Item(at("2024-01-01T00:00:00Z"), vec!["keep".into()]),
            Item(at("2024-03-01T00:00:00Z"), vec![]),
            Item(at("2024-03-20T00:00:00Z"), vec![]),
        ];
        let clock = utc("2024-04-01T00:00:00Z");
        let month = Duration::from_secs(30 * 24 * 3600);
        let policy = RetentionPolicy {
            keep_last: Count::Limit(2),
            keep_tags: vec![vec!["keep".into()]],
            max_age: Some(month),
            ..Default::default()
        };
        let decisions = policy.apply(&items, &clock);
        assert_eq!(
            decisions
                .iter()
                .map(|d| (d.index, d.keep, d.reasons.clone()))
                .collect::<Vec<_>>(),
            vec![
                (
                    2,
                    true,
                    vec![Reason::Bucket {
                        period: Period::Last,
                        oldest: false
                    }]
                ),
                (1, false, vec![Reason::OlderThan(month)]),
                (0, false, vec![Reason::OlderThan(month)]),
            ]
        );
        assert_eq!(decisions[1].reasons[0].to_string(), "older than 30d");
        // Alone, it keeps what is not older.
        let only_age = RetentionPolicy {
            max_age: Some(month),
            ..Default::default()
        };
        assert!(!only_age.is_empty());
        let decisions = only_age.apply(&items, &clock);
        assert_eq!(decisions[0].reasons[0].to_string(), "not older than 30d");
        assert_eq!(kept(&only_age, &items, &clock), vec![2]);
    }

    #[test]
    fn days_and_weeks_are_counted_in_the_clock_time_zone() {
        // Saturday and Sunday 6 and 7 January 2024 (ISO week 1), then 23:30 UTC on Sunday,
        // which is Monday 8 January 00:30 (week 2) in Berlin (CET, +1).
        let items = vec![
            Item(at("2024-01-06T12:00:00Z"), vec![]),
            Item(at("2024-01-07T12:00:00Z"), vec![]),
            Item(at("2024-01-07T23:30:00Z"), vec![]),
        ];
        let weekly = RetentionPolicy {
            keep_weekly: Count::Limit(2),
            ..Default::default()
        };
        let clock = utc("2024-02-01T00:00:00Z");
        // UTC: one week; the newest, then the oldest with the count left.
        assert_eq!(kept(&weekly, &items, &clock), vec![2, 0]);
        let berlin = Clock {
            time_zone: TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("tz"),
            ..clock
        };
        // Berlin: two weeks, the newest of each; the count is used up before the oldest.
        assert_eq!(kept(&weekly, &items, &berlin), vec![2, 1]);
        let daily = RetentionPolicy {
            keep_daily: Count::Limit(3),
            ..Default::default()
        };
        let decisions = daily.apply(&items, &clock);
        let reasons: Vec<Vec<Reason>> = decisions.into_iter().map(|d| d.reasons).collect();
        let day = |oldest| Reason::Bucket {
            period: Period::Day,
            oldest,
        };
        assert_eq!(reasons, vec![vec![day(false)], vec![], vec![day(false)]]);
        let decisions = daily.apply(&items, &berlin);
        let reasons: Vec<Vec<Reason>> = decisions.into_iter().map(|d| d.reasons).collect();
        assert_eq!(
            reasons,
            vec![vec![day(false)], vec![day(false)], vec![day(false)]]
        );
    }

    #[test]
    fn the_policy_describes_itself() {
        let policy = RetentionPolicy {
            keep_daily: Count::Limit(7),
            keep_monthly: Count::Unlimited,
            keep_within_daily: "1m".parse().expect("duration"),
            keep_tags: vec![vec!["a".into(), "b".into()]],
            keep_within: "2d".parse().expect("duration"),
            max_age: Some(Duration::from_secs(90 * 60)),
            ..Default::default()
        };
        assert_eq!(
            policy.to_string(),
            "keep 7 daily, all monthly snapshots, daily snapshots within 1m, \
             snapshots with tags a,b, all snapshots within 2d of the newest, \
             none older than 1h30m"
        );
    }
}
