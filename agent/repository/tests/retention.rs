//! Retention policies against an independent, naive model of restic's rules (property
//! tests), restic's own test timeline, its documented example, and `forget` on a real
//! repository.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;
use stowaway_repository::{
    AddonRef, BackupSummary, CalendarDuration, Clock, Count, Decision, Error, ForgetPlan, GroupBy,
    InitOptions, KdfParams, Period, Reason, Retainable, RetentionPolicy, Snapshot, SnapshotId,
    SnapshotMeta, Target,
};
use stowaway_storage::Storage;

// ---------------------------------------------------------------------------------------
// The reference model: restic's rules restated as plainly as possible, sharing no code
// with the implementation (calendar keys are strings, ISO weeks and Go's AddDate are
// computed by hand, each rule is evaluated on its own over the whole list).
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Item {
    time: Timestamp,
    tags: Vec<String>,
}

impl Retainable for Item {
    fn time(&self) -> Timestamp {
        self.time
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// The ISO-8601 week of a date: the week belongs to the year of its Thursday.
fn iso_week(date: Date) -> (i16, i16) {
    let monday_based = match date.weekday() {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    };
    let mut thursday = date;
    for _ in 0..monday_based {
        thursday = thursday.yesterday().unwrap();
    }
    for _ in 0..3 {
        thursday = thursday.tomorrow().unwrap();
    }
    (thursday.year(), (thursday.day_of_year() - 1) / 7 + 1)
}

fn model_key(period: Period, time: Timestamp, tz: &TimeZone, nr: usize) -> String {
    let local = time.to_zoned(tz.clone()).datetime();
    let (y, m, d, h) = (local.year(), local.month(), local.day(), local.hour());
    match period {
        Period::Last => format!("#{nr}"),
        Period::Hour => format!("{y:04}-{m:02}-{d:02} {h:02}"),
        Period::Day => format!("{y:04}-{m:02}-{d:02}"),
        Period::Week => {
            let (wy, w) = iso_week(local.date());
            format!("{wy:04}-W{w:02}")
        }
        Period::Month => format!("{y:04}-{m:02}"),
        Period::Year => format!("{y:04}"),
    }
}

/// Go's `t.AddDate(-years, -months, -days).Add(-hours)`, day by day.
fn model_window_start(d: &CalendarDuration, newest: Timestamp, tz: &TimeZone) -> Timestamp {
    let local = newest.to_zoned(tz.clone()).datetime();
    let mut year = i32::from(local.year()) - d.years as i32;
    let mut month = i32::from(local.month()) - d.months as i32;
    while month < 1 {
        month += 12;
        year -= 1;
    }
    let mut date = Date::new(year as i16, month as i8, 1).unwrap();
    let offset = i32::from(local.day()) - 1 - d.days as i32;
    for _ in 0..offset.max(0) {
        date = date.tomorrow().unwrap();
    }
    for _ in 0..(-offset).max(0) {
        date = date.yesterday().unwrap();
    }
    let civil = DateTime::from_parts(date, local.time());
    let zoned = tz.to_ambiguous_zoned(civil).compatible().unwrap();
    zoned.timestamp() - (d.hours as i64).hours()
}

const PERIODS: [Period; 6] = [
    Period::Last,
    Period::Hour,
    Period::Day,
    Period::Week,
    Period::Month,
    Period::Year,
];

fn model(policy: &RetentionPolicy, items: &[Item], clock: &Clock) -> Vec<Decision> {
    let tz = &clock.time_zone;
    // Newest first; equal times in the order given.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].time.cmp(&items[a].time));
    let n = order.len();
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); n];

    let counts = [
        policy.keep_last,
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    let windows = [
        (Period::Hour, policy.keep_within_hourly),
        (Period::Day, policy.keep_within_daily),
        (Period::Week, policy.keep_within_weekly),
        (Period::Month, policy.keep_within_monthly),
        (Period::Year, policy.keep_within_yearly),
    ];
    let any_rule = counts.iter().any(|c| *c != Count::Limit(0))
        || !policy.keep_within.is_zero()
        || windows.iter().any(|(_, d)| !d.is_zero())
        || !policy.keep_tags.is_empty();

    if !any_rule {
        for r in &mut reasons {
            r.push(match policy.max_age {
                Some(age) => Reason::NotOlderThan(age),
                None => Reason::EmptyPolicy,
            });
        }
    } else {
        let newest = order
            .iter()
            .map(|&i| items[i].time)
            .filter(|t| *t < clock.now)
            .max();
        let inside = |d: &CalendarDuration, t: Timestamp| match newest {
            None => true,
            Some(newest) => t > model_window_start(d, newest, tz),
        };
        // keep-tag
        for (pos, &i) in order.iter().enumerate() {
            for list in &policy.keep_tags {
                if list.iter().all(|t| items[i].tags.contains(t)) {
                    reasons[pos].push(Reason::Tags(list.clone()));
                }
            }
        }
        // keep-within
        if !policy.keep_within.is_zero() {
            for (pos, &i) in order.iter().enumerate() {
                if inside(&policy.keep_within, items[i].time) {
                    reasons[pos].push(Reason::Within(policy.keep_within));
                }
            }
        }
        // keep-<period> n: the first snapshot of each of the first n runs of equal periods;
        // the oldest snapshot too when fewer than n runs start before it.
        for (period, count) in PERIODS.iter().zip(counts) {
            let limit = match count {
                Count::Limit(0) => continue,
                Count::Limit(c) => c as usize,
                Count::Unlimited => usize::MAX,
            };
            let keys: Vec<String> = order
                .iter()
                .enumerate()
                .map(|(pos, &i)| model_key(*period, items[i].time, tz, pos))
                .collect();
            let heads: Vec<usize> = (0..n)
                .filter(|&pos| pos == 0 || keys[pos] != keys[pos - 1])
                .collect();
            for &pos in heads.iter().take(limit) {
                reasons[pos].push(Reason::Bucket {
                    period: *period,
                    oldest: false,
                });
            }
            let last = n.wrapping_sub(1);
            if n > 0 && !heads.contains(&last) && heads.len() < limit {
                reasons[last].push(Reason::Bucket {
                    period: *period,
                    oldest: true,
                });
            }
        }
        // keep-within-<period>: the first snapshot of each run inside the window.
        for (period, within) in windows {
            if within.is_zero() {
                continue;
            }
            let mut previous: Option<String> = None;
            for (pos, &i) in order.iter().enumerate() {
                if !inside(&within, items[i].time) {
                    continue;
                }
                let key = model_key(period, items[i].time, tz, pos);
                if previous.as_ref() != Some(&key) {
                    reasons[pos].push(Reason::WithinBucket { period, within });
                }
                previous = Some(key);
            }
        }
    }
    // The reasons in the implementation's order: tags, within, periods, within-periods.
    let rank = |r: &Reason| match r {
        Reason::Tags(_) => 0,
        Reason::Within(_) => 1,
        Reason::Bucket { period, .. } => 2 + *period as usize,
        Reason::WithinBucket { period, .. } => 10 + *period as usize,
        _ => 20,
    };
    let mut decisions: Vec<Decision> = order
        .iter()
        .zip(reasons)
        .map(|(&index, mut reasons)| {
            reasons.sort_by_key(rank);
            Decision {
                index,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect();
    if let Some(age) = policy.max_age {
        let cutoff = clock.now - jiff::SignedDuration::from_secs(age.as_secs() as i64);
        for d in &mut decisions {
            if items[d.index].time < cutoff {
                d.keep = false;
                d.reasons = vec![Reason::OlderThan(age)];
            }
        }
    }
    decisions
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

fn time_zones() -> Vec<TimeZone> {
    vec![
        TimeZone::UTC,
        TimeZone::fixed(jiff::tz::offset(-7)),
        TimeZone::posix("IST-5:30").unwrap(),
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap(),
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap(),
        // Lord Howe Island: a half-hour daylight-saving shift.
        TimeZone::posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").unwrap(),
    ]
}

/// Snapshot times: a random walk back from a start in 1995..2035 with steps of minutes,
/// hours, days or months (so that periods repeat, collide and skip), some equal.
fn timeline() -> impl Strategy<Value = Vec<Timestamp>> {
    let start = 800_000_000i64..2_050_000_000;
    // Whole minutes, hours and days as well as odd seconds, so that window boundaries
    // (newest − 7d, …) fall exactly on snapshots now and then.
    let step = prop_oneof![
        2 => (0i64..120).prop_map(|m| m * 60),
        2 => (0i64..72).prop_map(|h| h * 3600),
        2 => (0i64..40).prop_map(|d| d * 86_400),
        1 => (0i64..14).prop_map(|mo| mo * 30 * 86_400),
        2 => 0i64..3 * 86_400,
        1 => 0i64..400 * 86_400,
        1 => Just(0i64),
    ];
    (start, prop::collection::vec(step, 0..60)).prop_map(|(start, steps)| {
        let mut t = start;
        steps
            .into_iter()
            .map(|s| {
                t -= s;
                Timestamp::from_second(t).unwrap()
            })
            .collect()
    })
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(vec!["a", "b", "c"], 0..=3)
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn count() -> impl Strategy<Value = Count> {
    prop_oneof![
        4 => Just(Count::Limit(0)),
        4 => (1u32..8).prop_map(Count::Limit),
        1 => Just(Count::Unlimited),
    ]
}

fn calendar_duration() -> impl Strategy<Value = CalendarDuration> {
    prop_oneof![
        3 => Just(CalendarDuration::default()),
        2 => (0u32..2, 0u32..14, 0u32..40, 0u32..50).prop_map(|(years, months, days, hours)| {
            CalendarDuration { years, months, days, hours }
        }),
    ]
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        prop::array::uniform6(count()),
        calendar_duration(),
        prop::array::uniform5(calendar_duration()),
        prop::collection::vec(tags().prop_filter("a tag list", |t| !t.is_empty()), 0..3),
        prop::option::weighted(
            0.2,
            (1u64..2_000).prop_map(|h| Duration::from_secs(h * 3600)),
        ),
    )
        .prop_map(|(c, keep_within, w, keep_tags, max_age)| RetentionPolicy {
            keep_last: c[0],
            keep_hourly: c[1],
            keep_daily: c[2],
            keep_weekly: c[3],
            keep_monthly: c[4],
            keep_yearly: c[5],
            keep_within,
            keep_within_hourly: w[0],
            keep_within_daily: w[1],
            keep_within_weekly: w[2],
            keep_within_monthly: w[3],
            keep_within_yearly: w[4],
            keep_tags,
            max_age,
        })
}

fn items_and_clock() -> impl Strategy<Value = (Vec<Item>, Clock)> {
    timeline()
        .prop_flat_map(|times| {
            let n = times.len();
            (
                Just(times),
                prop::collection::vec(tags(), n),
                0usize..6,
                // "now": mostly after the newest snapshot, sometimes before some of them.
                prop_oneof![4 => 0i64..90 * 86_400, 1 => -30 * 86_400i64..0],
            )
        })
        .prop_map(|(times, tags, tz, now_offset)| {
            let newest = times.iter().max().copied().unwrap_or(Timestamp::UNIX_EPOCH);
            let items = times
                .into_iter()
                .zip(tags)
                .map(|(time, tags)| Item { time, tags })
                .collect();
            let clock = Clock {
                now: newest + jiff::SignedDuration::from_secs(now_offset),
                time_zone: time_zones().swap_remove(tz),
            };
            (items, clock)
        })
}

fn kept_set(decisions: &[Decision]) -> BTreeSet<usize> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.index)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The implementation decides exactly as the naive model, reasons included.
    #[test]
    fn apply_equals_the_reference_model((items, clock) in items_and_clock(), policy in policy()) {
        let got = policy.apply(&items, &clock);
        let want = model(&policy, &items, &clock);
        prop_assert_eq!(&got, &want);
        // Every item is decided exactly once.
        let indices: BTreeSet<usize> = got.iter().map(|d| d.index).collect();
        prop_assert_eq!(indices.len(), items.len());
        prop_assert_eq!(got.len(), items.len());
    }

    /// Count rules keep at most the sum of their counts (restic's `Sum` check, which holds
    /// with the oldest-snapshot rule too: keeping the oldest uses up a count).
    #[test]
    fn counts_bound_what_they_keep((items, clock) in items_and_clock(), counts in prop::array::uniform6(0u32..6)) {
        let policy = RetentionPolicy {
            keep_last: Count::Limit(counts[0]),
            keep_hourly: Count::Limit(counts[1]),
            keep_daily: Count::Limit(counts[2]),
            keep_weekly: Count::Limit(counts[3]),
            keep_monthly: Count::Limit(counts[4]),
            keep_yearly: Count::Limit(counts[5]),
            ..RetentionPolicy::default()
        };
        let sum: u32 = counts.iter().sum();
        let kept = kept_set(&policy.apply(&items, &clock));
        if sum > 0 {
            prop_assert!(kept.len() <= sum as usize, "{} > {}", kept.len(), sum);
            // The newest snapshot is always kept.
            if let Some(newest) = (0..items.len()).max_by_key(|&i| (items[i].time, std::cmp::Reverse(i))) {
                prop_assert!(kept.contains(&newest));
            }
        }
    }

    /// A policy that asks for more never removes a snapshot the smaller one keeps.
    #[test]
    fn more_generous_policies_keep_supersets((items, clock) in items_and_clock(), small in policy(), extra in policy()) {
        let small = RetentionPolicy { max_age: None, ..small };
        let more = |a: Count, b: Count| match (a, b) {
            (Count::Unlimited, _) | (_, Count::Unlimited) => Count::Unlimited,
            (Count::Limit(x), Count::Limit(y)) => Count::Limit(x + y),
        };
        let longer = |a: CalendarDuration, b: CalendarDuration| {
            if a.is_zero() { a } else {
                CalendarDuration {
                    years: a.years + b.years,
                    months: a.months + b.months,
                    days: a.days + b.days,
                    hours: a.hours + b.hours,
                }
            }
        };
        let big = RetentionPolicy {
            keep_last: more(small.keep_last, extra.keep_last),
            keep_hourly: more(small.keep_hourly, extra.keep_hourly),
            keep_daily: more(small.keep_daily, extra.keep_daily),
            keep_weekly: more(small.keep_weekly, extra.keep_weekly),
            keep_monthly: more(small.keep_monthly, extra.keep_monthly),
            keep_yearly: more(small.keep_yearly, extra.keep_yearly),
            keep_within: longer(small.keep_within, extra.keep_within),
            keep_tags: small.keep_tags.iter().chain(&extra.keep_tags).cloned().collect(),
            ..small.clone()
        };
        // An empty policy keeps everything; only compare rule sets that are in force.
        prop_assume!(small.has_keep_rules());
        let kept_small = kept_set(&small.apply(&items, &clock));
        let kept_big = kept_set(&big.apply(&items, &clock));
        prop_assert!(kept_small.is_subset(&kept_big), "{:?} ⊄ {:?}", kept_small, kept_big);
    }

    /// A plan applies the policy to each group on its own, and loses no snapshot.
    #[test]
    fn a_plan_applies_the_policy_per_group(
        (items, clock) in items_and_clock(),
        hosts in prop::collection::vec(0usize..2, 60),
        targets in prop::collection::vec(0usize..2, 60),
        group_by in (any::<bool>(), any::<bool>(), any::<bool>()),
        policy in policy(),
    ) {
        let group_by = GroupBy { host: group_by.0, target: group_by.1, tags: group_by.2 };
        let snapshots: Vec<Snapshot> = items
            .iter()
            .enumerate()
            .map(|(i, item)| snapshot(i, item.time, ["h0", "h1"][hosts[i]], ["t0", "t1"][targets[i]], &item.tags))
            .collect();
        let plan = ForgetPlan::new(snapshots.clone(), &policy, group_by, &clock);
        // The model: group by hand, apply the model to each group.
        let mut groups: HashMap<(String, String, Vec<String>), Vec<usize>> = HashMap::new();
        for (i, s) in snapshots.iter().enumerate() {
            let mut tags = s.tags.clone();
            tags.sort();
            tags.dedup();
            let key = (
                if group_by.host { s.hostname.clone() } else { String::new() },
                if group_by.target { s.target.name.clone() } else { String::new() },
                if group_by.tags { tags } else { Vec::new() },
            );
            groups.entry(key).or_default().push(i);
        }
        prop_assert_eq!(plan.groups.len(), groups.len());
        let mut want_removed = BTreeSet::new();
        for members in groups.values() {
            let group_items: Vec<Item> = members.iter().map(|&i| items[i].clone()).collect();
            for d in model(&policy, &group_items, &clock) {
                if !d.keep {
                    want_removed.insert(snapshots[members[d.index]].id);
                }
            }
        }
        let removed: BTreeSet<SnapshotId> = plan.remove_ids().into_iter().collect();
        prop_assert_eq!(removed.len() + plan.kept(), snapshots.len());
        prop_assert_eq!(removed, want_removed);
        for group in &plan.groups {
            for d in &group.snapshots {
                prop_assert_eq!(&group_by.key(&d.snapshot), &group.key);
            }
        }
    }
}

/// A snapshot for grouping tests (its id encodes `i`).
fn snapshot(i: usize, time: Timestamp, host: &str, target: &str, tags: &[String]) -> Snapshot {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Snapshot {
        id: SnapshotId::from_bytes(id),
        time,
        hostname: host.into(),
        username: String::new(),
        target: Target {
            kind: "volume".into(),
            name: target.into(),
        },
        addon: AddonRef::default(),
        tags: tags.to_vec(),
        parent: None,
        session: None,
        components: Vec::new(),
        attributes: Vec::new(),
        summary: BackupSummary::default(),
        original: None,
    }
}

// ---------------------------------------------------------------------------------------
// restic's test timeline (internal/restic/snapshot_policy_test.go), in UTC
// ---------------------------------------------------------------------------------------

const RESTIC_TIMELINE: &[(&str, &[&str])] = &[
    ("2014-09-01 10:20:30", &[]),
    ("2014-09-02 10:20:30", &[]),
    ("2014-09-05 10:20:30", &[]),
    ("2014-09-06 10:20:30", &[]),
    ("2014-09-08 10:20:30", &[]),
    ("2014-09-09 10:20:30", &[]),
    ("2014-09-10 10:20:30", &[]),
    ("2014-09-11 10:20:30", &[]),
    ("2014-09-20 10:20:30", &[]),
    ("2014-09-22 10:20:30", &[]),
    ("2014-08-08 10:20:30", &[]),
    ("2014-08-10 10:20:30", &[]),
    ("2014-08-12 10:20:30", &[]),
    ("2014-08-13 10:20:30", &[]),
    ("2014-08-13 10:20:30.1", &[]),
    ("2014-08-15 10:20:30", &[]),
    ("2014-08-18 10:20:30", &[]),
    ("2014-08-20 10:20:30", &[]),
    ("2014-08-21 10:20:30", &[]),
    ("2014-08-22 10:20:30", &[]),
    ("2014-10-01 10:20:30", &["foo"]),
    ("2014-10-02 10:20:30", &["foo"]),
    ("2014-10-05 10:20:30", &["foo"]),
    ("2014-10-06 10:20:30", &["foo"]),
    ("2014-10-08 10:20:30", &["foo"]),
    ("2014-10-09 10:20:30", &["foo"]),
    ("2014-10-10 10:20:30", &["foo"]),
    ("2014-10-11 10:20:30", &["foo"]),
    ("2014-10-20 10:20:30", &["foo"]),
    ("2014-10-22 10:20:30", &["foo"]),
    ("2014-11-08 10:20:30", &["foo"]),
    ("2014-11-10 10:20:30", &["foo"]),
    ("2014-11-12 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30.1", &["bar"]),
    ("2014-11-15 10:20:30", &["foo", "bar"]),
    ("2014-11-18 10:20:30", &[]),
    ("2014-11-20 10:20:30", &[]),
    ("2014-11-21 10:20:30", &[]),
    ("2014-11-22 10:20:30", &[]),
    ("2015-09-01 10:20:30", &[]),
    ("2015-09-02 10:20:30", &[]),
    ("2015-09-05 10:20:30", &[]),
    ("2015-09-06 10:20:30", &[]),
    ("2015-09-08 10:20:30", &[]),
    ("2015-09-09 10:20:30", &[]),
    ("2015-09-10 10:20:30", &[]),
    ("2015-09-11 10:20:30", &[]),
    ("2015-09-20 10:20:30", &[]),
    ("2015-09-22 10:20:30", &[]),
    ("2015-08-08 10:20:30", &[]),
    ("2015-08-10 10:20:30", &[]),
    ("2015-08-12 10:20:30", &[]),
    ("2015-08-13 10:20:30", &[]),
    ("2015-08-13 10:20:30.1", &[]),
    ("2015-08-15 10:20:30", &[]),
    ("2015-08-18 10:20:30", &[]),
    ("2015-08-20 10:20:30", &[]),
    ("2015-08-21 10:20:30", &[]),
    ("2015-08-22 10:20:30", &[]),
    ("2015-10-01 10:20:30", &[]),
    ("2015-10-02 10:20:30", &[]),
    ("2015-10-05 10:20:30", &[]),
    ("2015-10-06 10:20:30", &[]),
    ("2015-10-08 10:20:30", &[]),
    ("2015-10-09 10:20:30", &[]),
    ("2015-10-10 10:20:30", &[]),
    ("2015-10-11 10:20:30", &[]),
    ("2015-10-20 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-11-08 10:20:30", &[]),
    ("2015-11-10 10:20:30", &[]),
    ("2015-11-12 10:20:30", &[]),
    ("2015-11-13 10:20:30", &[]),
    ("2015-11-13 10:20:30.1", &[]),
    ("2015-11-15 10:20:30", &[]),
    ("2015-11-18 10:20:30", &[]),
    ("2015-11-20 10:20:30", &[]),
    ("2015-11-21 10:20:30", &[]),
    ("2015-11-22 10:20:30", &[]),
    ("2016-01-01 01:02:03", &[]),
    ("2016-01-01 01:03:03", &[]),
    ("2016-01-01 07:08:03", &[]),
    ("2016-01-03 07:02:03", &[]),
    ("2016-01-04 10:23:03", &[]),
    ("2016-01-04 11:23:03", &[]),
    ("2016-01-04 12:23:03", &[]),
    ("2016-01-04 12:24:03", &[]),
    ("2016-01-04 12:28:03", &[]),
    ("2016-01-04 12:30:03", &[]),
    ("2016-01-04 16:23:03", &[]),
    ("2016-01-05 09:02:03", &[]),
    ("2016-01-06 08:02:03", &[]),
    ("2016-01-07 10:02:03", &[]),
    ("2016-01-08 20:02:03", &[]),
    ("2016-01-09 21:02:03", &[]),
    ("2016-01-12 21:02:03", &[]),
    ("2016-01-12 21:08:03", &[]),
    ("2016-01-18 12:02:03", &[]),
];

fn restic_items() -> Vec<Item> {
    RESTIC_TIMELINE
        .iter()
        .map(|(time, tags)| Item {
            time: time
                .parse::<DateTime>()
                .unwrap()
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        })
        .collect()
}

fn restic_clock() -> Clock {
    Clock {
        now: "2020-01-01T00:00:00Z".parse().unwrap(),
        time_zone: TimeZone::UTC,
    }
}

/// `(time, reasons)` of the kept items, newest first.
fn kept_with_reasons(policy: &RetentionPolicy) -> Vec<(String, String)> {
    let items = restic_items();
    let decisions = policy.apply(&items, &restic_clock());
    assert_eq!(decisions, model(policy, &items, &restic_clock()));
    decisions
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| {
            let time = items[d.index]
                .time
                .to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string();
            let reasons: Vec<String> = d.reasons.iter().map(Reason::to_string).collect();
            (time, reasons.join(", "))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(t, r)| (t.to_string(), r.to_string()))
        .collect()
}

#[test]
fn restic_timeline_keep_last_5_daily_5() {
    // restic's golden file policy_keep_snapshots_9.
    let policy = RetentionPolicy {
        keep_last: Count::Limit(5),
        keep_daily: Count::Limit(5),
        ..Default::default()
    };
    assert_eq!(
        kept_with_reasons(&policy),
        pairs(&[
            ("2016-01-18 12:02:03", "last snapshot, daily snapshot"),
            ("2016-01-12 21:08:03", "last snapshot, daily snapshot"),
            ("2016-01-12 21:02:03", "last snapshot"),
            ("2016-01-09 21:02:03", "last snapshot, daily snapshot"),
            ("2016-01-08 20:02:03", "last snapshot, daily snapshot"),
            ("2016-01-07 10:02:03", "daily snapshot"),
        ])
    );
}

#[test]
fn restic_timeline_keep_yearly_10_keeps_the_oldest() {
    // Three years have snapshots; with counts left, the oldest snapshot is kept too.
    let policy = RetentionPolicy {
        keep_yearly: Count::Limit(10),
        ..Default::default()
    };
    assert_eq!(
        kept_with_reasons(&policy),
        pairs(&[
            ("2016-01-18 12:02:03", "yearly snapshot"),
            ("2015-11-22 10:20:30", "yearly snapshot"),
            ("2014-11-22 10:20:30", "yearly snapshot"),
            ("2014-08-08 10:20:30", "oldest yearly snapshot"),
        ])
    );
}

#[test]
fn restic_timeline_weekly_monthly_and_equal_times() {
    let weekly = RetentionPolicy {
        keep_weekly: Count::Limit(2),
        ..Default::default()
    };
    assert_eq!(
        kept_with_reasons(&weekly),
        pairs(&[
            ("2016-01-18 12:02:03", "weekly snapshot"),
            ("2016-01-12 21:08:03", "weekly snapshot"),
        ])
    );
    // Five snapshots share 2015-10-22 10:20:30: the first of them in the order given
    // (untagged) stands for October 2015.
    let monthly = RetentionPolicy {
        keep_monthly: Count::Limit(6),
        ..Default::default()
    };
    let items = restic_items();
    let decisions = monthly.apply(&items, &restic_clock());
    let kept: Vec<usize> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.index)
        .collect();
    assert_eq!(kept, vec![102, 83, 69, 49, 59, 39]);
    assert!(items[69].tags.is_empty());
}

#[test]
fn restic_timeline_keep_tags_and_within() {
    let tags = RetentionPolicy {
        keep_tags: vec![vec!["foo".into()], vec!["bar".into()]],
        ..Default::default()
    };
    let kept = kept_with_reasons(&tags);
    assert_eq!(kept.len(), 14 + 1 + 1 + 3, "{kept:?}");
    assert!(kept.contains(&(
        "2014-11-15 10:20:30".to_string(),
        "tag foo, tag bar".to_string()
    )));
    let both = RetentionPolicy {
        keep_tags: vec![vec!["foo".into(), "bar".into()]],
        ..Default::default()
    };
    let kept = kept_with_reasons(&both);
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept.iter().all(|(_, r)| r == "tags foo,bar"));

    // 1m14d before 2016-01-18 12:02:03 is 2015-12-04 12:02:03: only the 2016 snapshots.
    let within = RetentionPolicy {
        keep_within: "1m14d".parse().unwrap(),
        ..Default::default()
    };
    let kept = kept_with_reasons(&within);
    assert_eq!(kept.len(), 19);
    assert!(
        kept.iter()
            .all(|(t, r)| t.starts_with("2016") && r == "within 1m14d")
    );
    // The window is open: a snapshot exactly 8 days before the newest is outside 8d.
    let eight_days = RetentionPolicy {
        keep_within: "8d".parse().unwrap(),
        ..Default::default()
    };
    let kept = kept_with_reasons(&eight_days);
    assert_eq!(kept.len(), 3, "{kept:?}");
    let mut items = restic_items();
    items.push(Item {
        time: "2016-01-10T12:02:03Z".parse().unwrap(),
        tags: Vec::new(),
    });
    let decisions = eight_days.apply(&items, &restic_clock());
    assert!(
        !decisions
            .iter()
            .any(|d| d.keep && d.index == items.len() - 1)
    );
    // keep-within-daily 7d: the newest of each day after 2016-01-11 12:02:03.
    let within_daily = RetentionPolicy {
        keep_within_daily: "7d".parse().unwrap(),
        ..Default::default()
    };
    assert_eq!(
        kept_with_reasons(&within_daily),
        pairs(&[
            ("2016-01-18 12:02:03", "daily within 7d"),
            ("2016-01-12 21:08:03", "daily within 7d"),
        ])
    );
}

/// restic's documentation: with a daily backup for 100 years, `--keep-daily 7
/// --keep-weekly 5 --keep-monthly 12 --keep-yearly 75` keeps the 7 newest days, the
/// weekly snapshots not already kept, the month ends of the last year and 75 year ends.
#[test]
fn restic_documented_example_of_a_century_of_daily_backups() {
    let mut items = Vec::new();
    let mut date = Date::new(1925, 1, 1).unwrap();
    let end = Date::new(2024, 12, 31).unwrap();
    while date <= end {
        let time = date
            .at(5, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp();
        items.push(Item {
            time,
            tags: Vec::new(),
        });
        date = date.tomorrow().unwrap();
    }
    let policy = RetentionPolicy {
        keep_daily: Count::Limit(7),
        keep_weekly: Count::Limit(5),
        keep_monthly: Count::Limit(12),
        keep_yearly: Count::Limit(75),
        ..Default::default()
    };
    let clock = Clock {
        now: "2025-01-01T00:00:00Z".parse().unwrap(),
        time_zone: TimeZone::UTC,
    };
    let kept: BTreeSet<String> = policy
        .apply(&items, &clock)
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| {
            items[d.index]
                .time
                .to_zoned(TimeZone::UTC)
                .date()
                .to_string()
        })
        .collect();
    let mut want = BTreeSet::new();
    // Daily: 25 to 31 December 2024.
    for day in 25..=31 {
        want.insert(format!("2024-12-{day}"));
    }
    // Weekly: Tuesday 31 December (ISO week 2025-W01), then the Sundays 29, 22, 15, 8.
    for day in ["2024-12-29", "2024-12-22", "2024-12-15", "2024-12-08"] {
        want.insert(day.to_string());
    }
    // Monthly: the last day of each month of 2024.
    for (month, last) in [
        (1, 31),
        (2, 29),
        (3, 31),
        (4, 30),
        (5, 31),
        (6, 30),
        (7, 31),
        (8, 31),
        (9, 30),
        (10, 31),
        (11, 30),
    ] {
        want.insert(format!("2024-{month:02}-{last}"));
    }
    // Yearly: 31 December of 2024 back to 1950 (75 years); the count is used up before
    // the oldest snapshot, so 1925 is not kept.
    for year in 1950..=2024 {
        want.insert(format!("{year}-12-31"));
    }
    assert_eq!(kept.len(), 7 + 3 + 11 + 74);
    assert_eq!(kept, want);
}

// ---------------------------------------------------------------------------------------
// forget on a repository
// ---------------------------------------------------------------------------------------

async fn repo() -> stowaway_repository::Repository {
    let options = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    let repo = stowaway_repository::Repository::init(Storage::memory(), "pw", options)
        .await
        .unwrap();
    repo.load_index().await.unwrap();
    repo
}

async fn commit(
    repo: &stowaway_repository::Repository,
    time: &str,
    host: &str,
    tags: &[&str],
) -> SnapshotId {
    let backup = repo.start_backup(None).unwrap();
    let meta = SnapshotMeta {
        time: Some(time.parse().unwrap()),
        hostname: Some(host.into()),
        target: Target {
            kind: "volume".into(),
            name: "data".into(),
        },
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..SnapshotMeta::default()
    };
    backup.commit(meta, Vec::new()).await.unwrap().id
}

#[tokio::test]
async fn forget_deletes_the_planned_snapshots_and_nothing_else() {
    let repo = repo().await;
    let mut ids = Vec::new();
    for (day, tags) in [
        ("2024-03-01T10:00:00Z", &["nightly"][..]),
        ("2024-03-02T10:00:00Z", &[][..]),
        ("2024-03-02T22:00:00Z", &[][..]),
        ("2024-03-03T10:00:00Z", &[][..]),
    ] {
        ids.push(commit(&repo, day, "a", tags).await);
    }
    let other_host = commit(&repo, "2024-01-01T00:00:00Z", "b", &[]).await;

    let policy = RetentionPolicy {
        keep_daily: Count::Limit(2),
        keep_tags: vec![vec!["nightly".into()]],
        ..Default::default()
    };
    let clock = Clock {
        now: "2024-04-01T00:00:00Z".parse().unwrap(),
        time_zone: TimeZone::UTC,
    };
    let plan = ForgetPlan::new(
        repo.snapshots().await.unwrap(),
        &policy,
        GroupBy::default(),
        &clock,
    );
    assert_eq!(plan.groups.len(), 2);
    assert_eq!(
        plan.groups[0].key.to_string(),
        "host a, target data (volume)"
    );
    // Host a: 3 March (daily), 2 March 22:00 (daily), 1 March (tag); 2 March 10:00 goes.
    // Host b: its only snapshot is kept (daily).
    assert_eq!(plan.remove_ids(), vec![ids[1]]);
    let reasons: Vec<String> = plan.groups[0].snapshots[3]
        .reasons
        .iter()
        .map(Reason::to_string)
        .collect();
    assert_eq!(reasons, ["tag nightly"]);

    repo.forget(&plan.remove_ids()).await.unwrap();
    let mut left: Vec<SnapshotId> = repo
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    left.sort();
    let mut want = vec![ids[0], ids[2], ids[3], other_host];
    want.sort();
    assert_eq!(left, want);
    assert!(matches!(
        repo.read_snapshot(&ids[1]).await,
        Err(Error::Storage(stowaway_storage::Error::NotFound { .. }))
    ));
    // Forgetting again (a snapshot already gone) succeeds; the lock was released.
    repo.forget(&[ids[1]]).await.unwrap();
    assert!(repo.locks().await.unwrap().is_empty());
    // The repository is still consistent.
    let report = repo
        .check(stowaway_repository::CheckOptions { read_data: true }, &())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test]
async fn forget_runs_beside_backups_and_prune() {
    let repo = repo().await;
    let id = commit(&repo, "2024-03-01T10:00:00Z", "a", &[]).await;
    // A backup's shared lock does not stop forget.
    let backup_lock = repo.lock(false, "backup").await.unwrap();
    let other = commit(&repo, "2024-03-02T10:00:00Z", "a", &[]).await;
    repo.forget(&[other]).await.unwrap();
    backup_lock.release().await.unwrap();
    // Nor does prune's exclusive lock: prune keeps the data of snapshots it has read.
    let prune_lock = repo.lock(true, "prune").await.unwrap();
    repo.forget(&[id]).await.unwrap();
    prune_lock.release().await.unwrap();
    assert!(repo.snapshots().await.unwrap().is_empty());
}
