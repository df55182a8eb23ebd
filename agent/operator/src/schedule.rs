//! Cron schedules with time zones, and the scheduler's decision function.
//!
//! A BackupConfiguration session carries `scheduler.schedule` in Kubernetes CronJob syntax
//! (five fields, as robfig/cron parses them) and an optional `scheduler.timeZone` (an IANA
//! name, UTC by default). [`Schedule::parse`] reads both, [`Schedule::next_after`] finds the
//! next run in the schedule's zone, and [`decide`] is the pure decision the operator takes on
//! each reconcile: wait, run the latest missed instant, skip it as too late, or stay
//! suspended, with [`Decision::persist`] telling it what to record as `lastScheduleTime`.
//!
//! # Daylight saving time
//!
//! Schedules name wall-clock times in their zone. Where the wall clock jumps:
//!
//! - A wall time that does not exist (the spring-forward gap) runs once, at the first instant
//!   after the gap: `30 2 * * *` in America/New_York runs at 03:00 EDT on the switch day.
//!   Several nonexistent wall times of one gap collapse into that single run, and a run
//!   scheduled for that same instant is not repeated: `0 * * * *` runs at 01:00 EST and
//!   03:00 EDT, one real hour apart.
//! - A wall time that occurs twice (the fall-back fold) runs once, at its first occurrence:
//!   `30 1 * * *` in America/New_York runs at 01:30 EDT, not again at 01:30 EST.
//! - Except for schedules that run in every hour of the day (hour field `*` or `0-23`): they keep
//!   their pace in real time through the repeated wall-clock period, so `0 * * * *` runs at
//!   01:00 EDT and again at 01:00 EST, one real hour apart, and `*/15 * * * *` runs every 15
//!   real minutes. Without this, a fall-back would leave a one-hour hole in an hourly
//!   schedule.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// The most missed runs [`decide`] counts; beyond it the `missed` it reports saturates.
pub const MISSED_CAP: u32 = 1_000;

/// How far ahead [`Schedule::next_after`] looks. The sparsest schedule that passes
/// [`Schedule::parse`] is `0 0 29 2 *`, whose runs can be eight years apart (2096 to 2104).
const HORIZON_YEARS: i16 = 8;

/// One nanosecond, to step just before or after an instant.
const NANO: SignedDuration = SignedDuration::from_nanos(1);

/// Why a schedule or its time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule is empty.
    #[error("empty schedule")]
    Empty,
    /// The schedule does not have five fields.
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week), found {found} in {expr:?}"
    )]
    FieldCount {
        /// The schedule as given.
        expr: String,
        /// How many fields it has.
        found: usize,
    },
    /// One field is malformed.
    #[error("field {field:?}: {reason}")]
    Field {
        /// The field's name: `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `@every` was used; Kubernetes CronJob schedules do not support it.
    #[error(
        "{expr:?}: @every is not supported by Kubernetes CronJob schedules; use a five-field \
         expression such as \"*/30 * * * *\" or \"0 */2 * * *\""
    )]
    EveryNotSupported {
        /// The schedule as given.
        expr: String,
    },
    /// An `@` descriptor other than the supported ones.
    #[error(
        "unknown descriptor {0:?} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight \
         or @hourly)"
    )]
    UnknownDescriptor(String),
    /// The time zone is not in the time zone database.
    #[error("unknown time zone {0:?} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
    UnknownTimeZone(String),
    /// The schedule's `CRON_TZ=`/`TZ=` prefix names another zone than the time zone field.
    #[error("the schedule's time zone {in_schedule:?} conflicts with timeZone {time_zone:?}")]
    TimeZoneConflict {
        /// The zone named in the schedule's prefix.
        in_schedule: String,
        /// The zone named by the time zone field.
        time_zone: String,
    },
    /// The day-of-month never occurs in the months given (`0 0 30 2 *`).
    #[error("the schedule never runs: day-of-month {days:?} never occurs in month {months:?}")]
    NeverRuns {
        /// The day-of-month field, normalised.
        days: String,
        /// The month field, normalised.
        months: String,
    },
}

/// The five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Minute,
        Kind::Hour,
        Kind::DayOfMonth,
        Kind::Month,
        Kind::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Minute => "minute",
            Kind::Hour => "hour",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
        }
    }

    fn min(self) -> u32 {
        match self {
            Kind::DayOfMonth | Kind::Month => 1,
            _ => 0,
        }
    }

    /// The largest value `*` covers.
    fn max(self) -> u32 {
        match self {
            Kind::Minute => 59,
            Kind::Hour => 23,
            Kind::DayOfMonth => 31,
            Kind::Month => 12,
            Kind::DayOfWeek => 6,
        }
    }

    /// The largest value that may be written (7 is Sunday in day-of-week).
    fn max_written(self) -> u32 {
        match self {
            Kind::DayOfWeek => 7,
            _ => self.max(),
        }
    }

    fn is_day(self) -> bool {
        matches!(self, Kind::DayOfMonth | Kind::DayOfWeek)
    }

    fn full(self) -> u64 {
        (self.min()..=self.max()).fold(0, |bits, v| bits | 1 << v)
    }
}

/// The values one field matches, as a bit set, and whether it was written as `*` or `?`
/// (which matters for the day-of-month/day-of-week rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn has(self, v: u32) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }

    /// The smallest value `>= from` in the set.
    fn next_from(self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let rest = self.bits >> from;
        (rest != 0).then(|| from + rest.trailing_zeros())
    }

    fn values(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |v| self.has(*v))
    }
}

/// A parsed cron schedule and the time zone it runs in.
///
/// `Display` gives a normalised form that [`Schedule::parse`] reads back to an equal
/// schedule: names and descriptors become numbers, lists are sorted and merged into ranges
/// and steps, and a zone other than UTC is written as a `CRON_TZ=` prefix.
#[derive(Debug, Clone)]
pub struct Schedule {
    fields: [Field; 5],
    zone: String,
    tz: TimeZone,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields && self.zone == other.zone
    }
}

impl Eq for Schedule {}

impl Schedule {
    /// Parses a schedule in Kubernetes CronJob syntax, in `time_zone` (an IANA name; UTC when
    /// `None`).
    ///
    /// Accepts five fields (minute hour day-of-month month day-of-week) made of `*`, values,
    /// lists `a,b`, ranges `a-b` and steps `*/n`, `a-b/n`, `a/n` (`a` to the end, by `n`);
    /// `?` as `*` in the day fields; month names `JAN`-`DEC` and day names `SUN`-`SAT` in any
    /// case; day-of-week 0-7 where both 0 and 7 are Sunday; the descriptors `@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`; and a
    /// `CRON_TZ=Zone ` or `TZ=Zone ` prefix, which must agree with `time_zone` if both are
    /// given. When both day fields are restricted a day matching either runs; when one is `*`
    /// only the other counts. A schedule whose day-of-month never occurs in its months
    /// (`0 0 30 2 *`) is refused.
    pub fn parse(expr: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let (prefix_zone, body) = split_zone_prefix(trimmed);
        let explicit = time_zone.map(resolve_zone).transpose()?;
        let prefixed = prefix_zone.map(resolve_zone).transpose()?;
        let (zone, tz) = match (explicit, prefixed) {
            (Some(explicit), Some(prefixed)) if explicit.0 != prefixed.0 => {
                return Err(ScheduleError::TimeZoneConflict {
                    in_schedule: prefixed.0,
                    time_zone: explicit.0,
                });
            }
            (Some(zone), _) | (None, Some(zone)) => zone,
            (None, None) => ("UTC".to_owned(), TimeZone::UTC),
        };

        let body = if body.starts_with('@') {
            descriptor(body, trimmed)?
        } else {
            body
        };
        let texts: Vec<&str> = body.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = texts[..] else {
            return Err(ScheduleError::FieldCount {
                expr: trimmed.to_owned(),
                found: texts.len(),
            });
        };
        let fields = [
            parse_field(Kind::Minute, minute)?,
            parse_field(Kind::Hour, hour)?,
            parse_field(Kind::DayOfMonth, dom)?,
            parse_field(Kind::Month, month)?,
            parse_field(Kind::DayOfWeek, dow)?,
        ];
        let schedule = Schedule { fields, zone, tz };
        schedule.check_runs()?;
        Ok(schedule)
    }

    /// The IANA name of the schedule's time zone (`UTC` by default).
    pub fn time_zone(&self) -> &str {
        &self.zone
    }

    fn minute(&self) -> Field {
        self.fields[0]
    }

    fn hour(&self) -> Field {
        self.fields[1]
    }

    fn dom(&self) -> Field {
        self.fields[2]
    }

    fn month(&self) -> Field {
        self.fields[3]
    }

    fn dow(&self) -> Field {
        self.fields[4]
    }

    /// Refuses a day-of-month that exists in none of the months (only possible when
    /// day-of-week is `*`, as a restricted day-of-week is OR-ed in).
    fn check_runs(&self) -> Result<(), ScheduleError> {
        if self.dom().star || !self.dow().star {
            return Ok(());
        }
        let Some(first_day) = self.dom().values().next() else {
            return Ok(());
        };
        // The longest each month gets, leap years included.
        let possible = self.month().values().any(|m| {
            let longest = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            first_day <= longest
        });
        if possible {
            return Ok(());
        }
        Err(ScheduleError::NeverRuns {
            days: render(Kind::DayOfMonth, self.dom()),
            months: render(Kind::Month, self.month()),
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.dom().has(date.day().unsigned_abs().into());
        let dow = self
            .dow()
            .has(date.weekday().to_sunday_zero_offset().unsigned_abs().into());
        if self.dom().star || self.dow().star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the schedule runs in every hour of the day, and so keeps its real-time pace
    /// through a repeated (fall-back) wall-clock period.
    fn every_hour(&self) -> bool {
        self.hour().bits == Kind::Hour.full()
    }

    /// The first matching wall-clock minute strictly after `after`, searching
    /// [`HORIZON_YEARS`] ahead.
    fn next_wall(&self, after: DateTime) -> Option<DateTime> {
        let limit = after.year().saturating_add(HORIZON_YEARS);
        let mut date = after.date();
        let mut hour = u32::from(after.hour().unsigned_abs());
        let mut minute = u32::from(after.minute().unsigned_abs()) + 1;
        loop {
            if minute > 59 {
                minute = 0;
                hour += 1;
            }
            if hour > 23 {
                hour = 0;
                minute = 0;
                date = date.tomorrow().ok()?;
            }
            if date.year() > limit {
                return None;
            }
            if !self.month().has(date.month().unsigned_abs().into()) {
                date = first_of_next_month(date)?;
                hour = 0;
                minute = 0;
                continue;
            }
            if !self.day_matches(date) {
                date = date.tomorrow().ok()?;
                hour = 0;
                minute = 0;
                continue;
            }
            match self.hour().next_from(hour) {
                None => {
                    hour = 24;
                    continue;
                }
                Some(h) if h != hour => {
                    hour = h;
                    minute = 0;
                }
                Some(_) => {}
            }
            match self.minute().next_from(minute) {
                None => minute = 60,
                Some(m) => {
                    let hour = i8::try_from(hour).ok()?;
                    let minute = i8::try_from(m).ok()?;
                    return DateTime::new(
                        date.year(),
                        date.month(),
                        date.day(),
                        hour,
                        minute,
                        0,
                        0,
                    )
                    .ok();
                }
            }
        }
    }

    /// The latest wall-clock time shown at or before `t`: the wall time of `t`, except in the
    /// repeated period after a fall-back, where it is the wall time just before the clocks
    /// went back.
    fn high_water(&self, t: Timestamp) -> DateTime {
        let local = self.tz.to_datetime(t);
        let previous = t
            .checked_add(NANO)
            .ok()
            .and_then(|after| self.tz.preceding(after).next());
        if let Some(transition) = previous
            && let Ok(just_before) = transition.timestamp().checked_sub(NANO)
        {
            let peak = self.tz.to_datetime(just_before);
            if peak > local {
                return peak;
            }
        }
        local
    }

    /// The instant a wall time first occurs: itself when unambiguous, its first occurrence in a
    /// fold, the end of the gap (the transition) when it falls in a gap.
    fn first_instant(&self, wall: DateTime) -> Option<Timestamp> {
        match self.tz.to_ambiguous_timestamp(wall).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(wall).ok(),
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(wall).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // `wall` read with the later offset lies before the transition.
                let before_gap = after.to_timestamp(wall).ok()?;
                self.tz
                    .following(before_gap)
                    .next()
                    .map(|transition| transition.timestamp())
            }
        }
    }

    /// The first instant from the second pass through a repeated (fall-back) wall-clock period
    /// that is after `t` and before `limit`; only used for [`Schedule::every_hour`] schedules.
    fn next_repeat(&self, t: Timestamp, limit: Option<Timestamp>) -> Option<Timestamp> {
        // A repeated period that contains `t` started less than a day before it.
        let start = t
            .checked_sub(SignedDuration::from_hours(26))
            .unwrap_or(Timestamp::MIN);
        for transition in self.tz.following(start).take(64) {
            let at = transition.timestamp();
            if limit.is_some_and(|limit| at >= limit) {
                return None;
            }
            let after = transition.offset();
            let before = self.tz.to_offset(at.checked_sub(NANO).ok()?);
            if after >= before {
                continue;
            }
            // The second pass runs from `at` to `end`, showing the wall times of the first.
            let end = at.checked_add(before.duration_since(after)).ok()?;
            if end <= t {
                continue;
            }
            let from = if t >= at {
                t
            } else {
                at.checked_sub(NANO).ok()?
            };
            let Some(wall) = self.next_wall(after.to_datetime(from)) else {
                continue;
            };
            if wall < after.to_datetime(end) {
                return after.to_timestamp(wall).ok();
            }
        }
        None
    }

    /// The first schedule instant strictly after `t`, computed in the schedule's time zone.
    ///
    /// Daylight saving time is handled as follows (see also the module documentation):
    ///
    /// - A wall time that does not exist (spring-forward gap) runs once, at the first instant
    ///   after the gap: `30 2 * * *` in America/New_York runs at 03:00 EDT on the switch day.
    ///   All the nonexistent wall times of a gap give that one instant, and it is not
    ///   repeated if the schedule also names the wall time at the end of the gap.
    /// - A wall time that occurs twice (fall-back fold) runs once, at its first occurrence.
    /// - Schedules whose hour field covers every hour also run through the second pass of a
    ///   fold, so they keep their real-time pace: `0 * * * *` gives one run per real hour
    ///   across both transitions, none doubled, none lost but the nonexistent wall hour.
    ///
    /// Returns `None` when no instant follows within eight years (only at the end of the
    /// supported range, year 9999: [`Schedule::parse`] refuses schedules that never run).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut wall = self.high_water(t);
        let first = loop {
            let Some(next) = self.next_wall(wall) else {
                break None;
            };
            wall = next;
            // Always after `t` by construction; the check guards odd zone histories.
            match self.first_instant(next) {
                Some(instant) if instant > t => break Some(instant),
                _ => {}
            }
        };
        if !self.every_hour() {
            return first;
        }
        match (first, self.next_repeat(t, first)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.zone != "UTC" {
            write!(f, "CRON_TZ={} ", self.zone)?;
        }
        for (i, (kind, field)) in Kind::ALL.iter().zip(self.fields).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&render(*kind, field))?;
        }
        Ok(())
    }
}

/// Splits a `CRON_TZ=Zone ` or `TZ=Zone ` prefix off a schedule.
fn split_zone_prefix(expr: &str) -> (Option<&str>, &str) {
    let Some(rest) = expr
        .strip_prefix("CRON_TZ=")
        .or_else(|| expr.strip_prefix("TZ="))
    else {
        return (None, expr);
    };
    match rest.split_once(char::is_whitespace) {
        Some((zone, body)) => (Some(zone), body.trim_start()),
        None => (Some(rest), ""),
    }
}

/// Looks a zone up, returning its canonical IANA name.
fn resolve_zone(name: &str) -> Result<(String, TimeZone), ScheduleError> {
    let unknown = || ScheduleError::UnknownTimeZone(name.to_owned());
    let tz = TimeZone::get(name).map_err(|_| unknown())?;
    let canonical = tz.iana_name().ok_or_else(unknown)?.to_owned();
    Ok((canonical, tz))
}

/// The five fields an `@` descriptor stands for.
fn descriptor(body: &str, expr: &str) -> Result<&'static str, ScheduleError> {
    let lower = body.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ if lower.starts_with("@every") => {
            return Err(ScheduleError::EveryNotSupported {
                expr: expr.to_owned(),
            });
        }
        _ => return Err(ScheduleError::UnknownDescriptor(body.to_owned())),
    })
}

fn field_error(kind: Kind, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::Field {
        field: kind.name(),
        reason: reason.into(),
    }
}

/// Parses one field: a comma-separated list of `*`, `?`, values, ranges, each with an
/// optional step.
fn parse_field(kind: Kind, text: &str) -> Result<Field, ScheduleError> {
    let mut bits = 0u64;
    let mut star = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(field_error(kind, "empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(kind, step)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            if range == "?" && !kind.is_day() {
                return Err(field_error(
                    kind,
                    "\"?\" is only allowed in day-of-month and day-of-week",
                ));
            }
            // As robfig/cron: `*` with a step above 1 counts as restricted.
            if step.unwrap_or(1) == 1 {
                star = true;
            }
            (kind.min(), kind.max())
        } else if let Some((low, high)) = range.split_once('-') {
            let (low, high) = (parse_value(kind, low)?, parse_value(kind, high)?);
            if low > high {
                return Err(field_error(
                    kind,
                    format!("range {low}-{high} ends before it starts"),
                ));
            }
            (low, high)
        } else {
            let value = parse_value(kind, range)?;
            // `a/n` runs from `a` to the end of the field.
            let high = if step.is_some() {
                kind.max().max(value)
            } else {
                value
            };
            (value, high)
        };
        let step = usize::try_from(step.unwrap_or(1)).unwrap_or(usize::MAX);
        for v in (low..=high).step_by(step) {
            bits |= 1 << v;
        }
    }
    if kind == Kind::DayOfWeek && bits & (1 << 7) != 0 {
        bits = (bits & !(1 << 7)) | 1;
    }
    // Only the day fields care how a full set was written.
    if !kind.is_day() {
        star = bits == kind.full();
    }
    Ok(Field { bits, star })
}

fn parse_step(kind: Kind, text: &str) -> Result<u32, ScheduleError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field_error(kind, format!("step {text:?} is not a number")));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(field_error(kind, "step 0 must be at least 1")),
        Ok(step) => Ok(step),
        // More digits than a u32 holds: larger than any field, so it keeps only the start.
        Err(_) => Ok(u32::MAX),
    }
}

fn parse_value(kind: Kind, text: &str) -> Result<u32, ScheduleError> {
    let out_of_range = || {
        field_error(
            kind,
            format!(
                "{text} is out of range {}-{}",
                kind.min(),
                kind.max_written()
            ),
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let value = text.parse::<u32>().map_err(|_| out_of_range())?;
        if value < kind.min() || value > kind.max_written() {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    let (names, first, what): (&[&str], u32, &str) = match kind {
        Kind::Month => (&MONTH_NAMES, 1, " or a month name (JAN-DEC)"),
        Kind::DayOfWeek => (&DAY_NAMES, 0, " or a day name (SUN-SAT)"),
        _ => (&[], 0, ""),
    };
    names
        .iter()
        .zip(first..)
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, value)| value)
        .ok_or_else(|| field_error(kind, format!("{text:?} is not a number{what}")))
}

fn first_of_next_month(date: Date) -> Option<Date> {
    if date.month() == 12 {
        Date::new(date.year().checked_add(1)?, 1, 1).ok()
    } else {
        Date::new(date.year(), date.month() + 1, 1).ok()
    }
}

/// The normalised text of a field.
fn render(kind: Kind, field: Field) -> String {
    // In the day fields a full set written as a range (`1-31`) is restricted, which
    // changes the day-of-month/day-of-week rule, so only a real `*` prints as `*`.
    if field.bits == kind.full() && (field.star || !kind.is_day()) {
        return "*".to_owned();
    }
    let values: Vec<u32> = field.values().collect();
    if let [first, second, .., last] = values[..] {
        let step = second - first;
        if step >= 2 && values.windows(2).all(|w| w[1] - w[0] == step) {
            return if last + step > kind.max() {
                if first == kind.min() {
                    format!("*/{step}")
                } else {
                    format!("{first}-{}/{step}", kind.max())
                }
            } else {
                format!("{first}-{last}/{step}")
            };
        }
    }
    let mut items = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        match j - i {
            0 => items.push(values[i].to_string()),
            1 => {
                items.push(values[i].to_string());
                items.push(values[j].to_string());
            }
            _ => items.push(format!("{}-{}", values[i], values[j])),
        }
        i = j + 1;
    }
    items.join(",")
}

/// What the operator knows of a schedule's past: `status.lastScheduleTime` and the object's
/// creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleState {
    /// The last instant the operator acted on (ran, skipped as too late, or skipped while
    /// suspended), if any.
    pub last_schedule: Option<Timestamp>,
    /// When the object was created; instants before it never run.
    pub created: Timestamp,
}

/// What the operator should do now; see [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No instant is due: requeue at `next`.
    Wait {
        /// The next instant (`None`: none within the supported range).
        next: Option<Timestamp>,
    },
    /// Start the run for `scheduled_for`, the most recent due instant.
    Run {
        /// The instant this run is for.
        scheduled_for: Timestamp,
        /// Earlier due instants skipped because only the latest runs after a downtime;
        /// saturates at [`MISSED_CAP`].
        missed: u32,
        /// The next instant after now.
        next: Option<Timestamp>,
    },
    /// The most recent due instant is older than the starting deadline: do not run it, record
    /// an event, persist it so it is not reconsidered.
    TooLate {
        /// The instant that was missed.
        scheduled_for: Timestamp,
        /// Earlier due instants also skipped; saturates at [`MISSED_CAP`].
        missed: u32,
        /// The next instant after now.
        next: Option<Timestamp>,
    },
    /// The schedule is suspended: nothing runs, and the due instants are persisted as if
    /// handled so that resuming starts with the next instant.
    Suspended {
        /// The most recent due instant, skipped (`None` if nothing was due).
        last_skipped: Option<Timestamp>,
        /// The next instant after now; requeue then to keep moving `lastScheduleTime`.
        next: Option<Timestamp>,
    },
}

impl Decision {
    /// The new `lastScheduleTime` to persist, or `None` to leave it as it is.
    pub fn persist(&self) -> Option<Timestamp> {
        match *self {
            Decision::Wait { .. } => None,
            Decision::Run { scheduled_for, .. } | Decision::TooLate { scheduled_for, .. } => {
                Some(scheduled_for)
            }
            Decision::Suspended { last_skipped, .. } => last_skipped,
        }
    }

    /// The next schedule instant, when the operator should look again.
    pub fn next(&self) -> Option<Timestamp> {
        match *self {
            Decision::Wait { next }
            | Decision::Run { next, .. }
            | Decision::TooLate { next, .. }
            | Decision::Suspended { next, .. } => next,
        }
    }
}

/// Decides what to do at `now`, with Kubernetes CronJob semantics (pure: the clock is passed
/// in).
///
/// The due instants are those of the schedule in `(last_schedule or created, now]`. None due:
/// [`Decision::Wait`]. Otherwise only the most recent runs ([`Decision::Run`], counting the
/// others as `missed`), unless `starting_deadline` is set and `now - scheduled_for` exceeds it
/// ([`Decision::TooLate`]). When `suspended`, nothing runs ([`Decision::Suspended`]) and the
/// operator keeps moving `lastScheduleTime` forward to the latest due instant, so resuming
/// starts with the next instant instead of making up the runs missed while suspended. In
/// every case [`Decision::persist`] is the `lastScheduleTime` to record.
///
/// Due instants are counted up to [`MISSED_CAP`]; past that the latest is found by searching
/// back from `now`, so a year of downtime on `* * * * *` stays fast.
pub fn decide(
    schedule: &Schedule,
    state: &ScheduleState,
    now: Timestamp,
    starting_deadline: Option<Duration>,
    suspended: bool,
) -> Decision {
    let base = state.last_schedule.unwrap_or(state.created);
    let first = schedule.next_after(base);
    let Some(first) = first.filter(|first| *first <= now) else {
        // Nothing due; `first` is also the next instant after now (or after a
        // `last_schedule` that lies ahead of a skewed clock).
        return if suspended {
            Decision::Suspended {
                last_skipped: None,
                next: first,
            }
        } else {
            Decision::Wait { next: first }
        };
    };
    let (latest, missed) = latest_due(schedule, first, now);
    let next = schedule.next_after(now);
    if suspended {
        return Decision::Suspended {
            last_skipped: Some(latest),
            next,
        };
    }
    let too_late = starting_deadline.is_some_and(|deadline| {
        SignedDuration::try_from(deadline)
            .is_ok_and(|deadline| now.duration_since(latest) > deadline)
    });
    if too_late {
        Decision::TooLate {
            scheduled_for: latest,
            missed,
            next,
        }
    } else {
        Decision::Run {
            scheduled_for: latest,
            missed,
            next,
        }
    }
}

/// The latest instant in `[first, now]` (`first` being a due instant) and how many due
/// instants precede it, counted up to [`MISSED_CAP`].
fn latest_due(schedule: &Schedule, first: Timestamp, now: Timestamp) -> (Timestamp, u32) {
    let mut latest = first;
    let mut missed = 0;
    while let Some(next) = schedule.next_after(latest)
        && next <= now
    {
        if missed == MISSED_CAP {
            return (latest_before(schedule, latest, now), MISSED_CAP);
        }
        latest = next;
        missed += 1;
    }
    (latest, missed)
}

/// The latest instant in `[from, now]`, `from` being an instant: looks back from `now` in
/// doubling windows until one holds an instant, then walks forward through that window.
fn latest_before(schedule: &Schedule, from: Timestamp, now: Timestamp) -> Timestamp {
    let mut window = SignedDuration::from_mins(1);
    loop {
        let start = now
            .checked_sub(window)
            .map_or(from, |start| start.max(from));
        if let Some(mut latest) = schedule.next_after(start).filter(|n| *n <= now) {
            while let Some(next) = schedule.next_after(latest)
                && next <= now
            {
                latest = next;
            }
            return latest;
        }
        if start == from {
            return from;
        }
        window = window.checked_mul(2).unwrap_or(SignedDuration::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn parse(expr: &str) -> Schedule {
        Schedule::parse(expr, None).expect(expr)
    }

    fn parse_in(expr: &str, zone: &str) -> Schedule {
        Schedule::parse(expr, Some(zone)).expect(expr)
    }

    /// The instant of a civil time in a zone (the earlier one in a fold).
    fn at(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .in_tz(zone)
            .expect("valid civil time")
            .timestamp()
    }

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        at("UTC", y, mo, d, h, mi)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect(s)
    }

    /// The runs in `(from, to]`, as wall times with their offsets.
    fn runs(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<String> {
        let tz = TimeZone::get(schedule.time_zone()).expect("zone");
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = schedule.next_after(t).filter(|n| *n <= to) {
            assert!(next > t, "next_after({t}) = {next} is not after it");
            out.push(
                next.to_zoned(tz.clone())
                    .strftime("%F %H:%M%:z")
                    .to_string(),
            );
            t = next;
            assert!(out.len() < 10_000, "runaway");
        }
        out
    }

    /// The real time between successive runs in `(from, to]`, in minutes.
    fn gaps(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<i64> {
        let mut out = Vec::new();
        let mut prev = match schedule.next_after(from) {
            Some(p) if p <= to => p,
            _ => return out,
        };
        while let Some(next) = schedule.next_after(prev).filter(|n| *n <= to) {
            out.push(next.duration_since(prev).as_secs() / 60);
            prev = next;
        }
        out
    }

    // ---- parsing and Display ----

    #[test]
    fn normalises_valid_expressions() {
        let cases = [
            ("0 0 * * *", "0 0 * * *"),
            ("  0   0 * * *  ", "0 0 * * *"),
            ("* * * * *", "* * * * *"),
            ("*/1 * * * *", "* * * * *"),
            ("*/15 * * * *", "*/15 * * * *"),
            ("0,15,30,45 * * * *", "*/15 * * * *"),
            ("45,0,30,15 * * * *", "*/15 * * * *"),
            ("5/15 * * * *", "5-59/15 * * * *"),
            ("0-30/10 * * * *", "0-30/10 * * * *"),
            ("0,30 * * * *", "0,30 * * * *"),
            ("1,2,3,5 * * * *", "1-3,5 * * * *"),
            ("1,2 * * * *", "1,2 * * * *"),
            ("0 0-23 * * *", "0 * * * *"),
            ("0 */2 * * *", "0 */2 * * *"),
            ("0 9-17 * * MON-FRI", "0 9-17 * * 1-5"),
            ("0 9-17 * * mon-fri", "0 9-17 * * 1-5"),
            ("0 0 1 jan,Jul *", "0 0 1 1,7 *"),
            ("0 0 1 JAN-DEC/3 *", "0 0 1 */3 *"),
            ("0 0 * * 7", "0 0 * * 0"),
            ("0 0 * * SUN,7", "0 0 * * 0"),
            ("0 0 * * 5-7", "0 0 * * 0,5,6"),
            ("0 0 * * */2", "0 0 * * */2"),
            ("0 0 * * 0-6", "0 0 * * 0-6"),
            ("0 0 ? * ?", "0 0 * * *"),
            ("0 0 ? * MON", "0 0 * * 1"),
            ("0 0 1-31 * *", "0 0 1-31 * *"),
            ("0 0 */2 * *", "0 0 */2 * *"),
            ("0 0 * * */1", "0 0 * * *"),
            ("59 23 31 12 6", "59 23 31 12 6"),
            ("0 0 * * 1/100", "0 0 * * 1"),
            ("0 0 * * 1/99999999999", "0 0 * * 1"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
            ("@HOURLY", "0 * * * *"),
            (
                "CRON_TZ=Europe/Berlin 30 2 * * *",
                "CRON_TZ=Europe/Berlin 30 2 * * *",
            ),
            (
                "TZ=europe/berlin 30 2 * * *",
                "CRON_TZ=Europe/Berlin 30 2 * * *",
            ),
            ("CRON_TZ=UTC @daily", "0 0 * * *"),
            (
                "CRON_TZ=Asia/Tokyo   @hourly",
                "CRON_TZ=Asia/Tokyo 0 * * * *",
            ),
        ];
        for (input, want) in cases {
            let schedule = parse(input);
            assert_eq!(schedule.to_string(), want, "{input}");
            assert_eq!(
                parse(want),
                schedule,
                "{want} does not read back as {input}"
            );
        }
    }

    #[test]
    fn time_zone_comes_from_the_argument_or_the_prefix() {
        assert_eq!(parse("0 0 * * *").time_zone(), "UTC");
        let berlin = parse_in("30 2 * * *", "Europe/Berlin");
        assert_eq!(berlin.time_zone(), "Europe/Berlin");
        assert_eq!(berlin.to_string(), "CRON_TZ=Europe/Berlin 30 2 * * *");
        assert_eq!(berlin, parse("CRON_TZ=Europe/Berlin 30 2 * * *"));
        // The same zone in both places (any case) is fine.
        assert_eq!(
            Schedule::parse("TZ=EUROPE/BERLIN 30 2 * * *", Some("Europe/Berlin")),
            Ok(berlin.clone())
        );
        assert_ne!(berlin, parse("30 2 * * *"));
        assert_eq!(
            parse_in("0 0 * * *", "america/new_york").time_zone(),
            "America/New_York"
        );
    }

    #[test]
    fn refuses_bad_expressions_saying_why() {
        let cases = [
            ("", "empty schedule"),
            ("   ", "empty schedule"),
            ("0 24 * * *", r#"field "hour": 24 is out of range 0-23"#),
            ("60 * * * *", r#"field "minute": 60 is out of range 0-59"#),
            (
                "0 0 0 * *",
                r#"field "day-of-month": 0 is out of range 1-31"#,
            ),
            (
                "0 0 32 * *",
                r#"field "day-of-month": 32 is out of range 1-31"#,
            ),
            ("0 0 * 0 *", r#"field "month": 0 is out of range 1-12"#),
            ("0 0 * 13 *", r#"field "month": 13 is out of range 1-12"#),
            ("0 0 * * 8", r#"field "day-of-week": 8 is out of range 0-7"#),
            (
                "99999999999 * * * *",
                r#"field "minute": 99999999999 is out of range 0-59"#,
            ),
            ("0 1-24 * * *", r#"field "hour": 24 is out of range 0-23"#),
            (
                "* * * *",
                r#"expected 5 fields (minute hour day-of-month month day-of-week), found 4 in "* * * *""#,
            ),
            (
                "0 * * * * *",
                r#"expected 5 fields (minute hour day-of-month month day-of-week), found 6 in "0 * * * * *""#,
            ),
            (
                "CRON_TZ=Europe/Berlin",
                r#"expected 5 fields (minute hour day-of-month month day-of-week), found 0 in "CRON_TZ=Europe/Berlin""#,
            ),
            ("x * * * *", r#"field "minute": "x" is not a number"#),
            ("-1 * * * *", r#"field "minute": "" is not a number"#),
            (
                "0 0 * FOO *",
                r#"field "month": "FOO" is not a number or a month name (JAN-DEC)"#,
            ),
            (
                "0 0 * * MONDAY",
                r#"field "day-of-week": "MONDAY" is not a number or a day name (SUN-SAT)"#,
            ),
            (
                "0 0 * * JAN",
                r#"field "day-of-week": "JAN" is not a number or a day name (SUN-SAT)"#,
            ),
            (
                "0 0 MON * *",
                r#"field "day-of-month": "MON" is not a number"#,
            ),
            (
                "5-3 * * * *",
                r#"field "minute": range 5-3 ends before it starts"#,
            ),
            (
                "0 0 * * FRI-MON",
                r#"field "day-of-week": range 5-1 ends before it starts"#,
            ),
            ("1-2-3 * * * *", r#"field "minute": "2-3" is not a number"#),
            (
                "*/0 * * * *",
                r#"field "minute": step 0 must be at least 1"#,
            ),
            ("*/x * * * *", r#"field "minute": step "x" is not a number"#),
            ("*/ * * * *", r#"field "minute": step "" is not a number"#),
            ("1,,2 * * * *", r#"field "minute": empty list item"#),
            ("1, * * * *", r#"field "minute": empty list item"#),
            (
                "? * * * *",
                r#"field "minute": "?" is only allowed in day-of-month and day-of-week"#,
            ),
            (
                "0 0 * ? *",
                r#"field "month": "?" is only allowed in day-of-month and day-of-week"#,
            ),
            (
                "@every 1h",
                r#""@every 1h": @every is not supported by Kubernetes CronJob schedules; use a five-field expression such as "*/30 * * * *" or "0 */2 * * *""#,
            ),
            (
                "CRON_TZ=UTC @every 5m",
                r#""CRON_TZ=UTC @every 5m": @every is not supported by Kubernetes CronJob schedules; use a five-field expression such as "*/30 * * * *" or "0 */2 * * *""#,
            ),
            (
                "@fortnightly",
                r#"unknown descriptor "@fortnightly" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"#,
            ),
            (
                "@daily 0",
                r#"unknown descriptor "@daily 0" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"#,
            ),
            (
                "0 0 30 2 *",
                r#"the schedule never runs: day-of-month "30" never occurs in month "2""#,
            ),
            (
                "0 0 31 4,6,9,11 *",
                r#"the schedule never runs: day-of-month "31" never occurs in month "4,6,9,11""#,
            ),
            (
                "0 0 30,31 FEB *",
                r#"the schedule never runs: day-of-month "30,31" never occurs in month "2""#,
            ),
            (
                "CRON_TZ=Mars/Olympus 0 0 * * *",
                r#"unknown time zone "Mars/Olympus" (expected an IANA name such as "Europe/Berlin" or "UTC")"#,
            ),
            (
                "CRON_TZ= 0 0 * * *",
                r#"unknown time zone "" (expected an IANA name such as "Europe/Berlin" or "UTC")"#,
            ),
        ];
        for (input, want) in cases {
            let err = Schedule::parse(input, None).expect_err(input);
            assert_eq!(err.to_string(), want, "{input}");
        }
    }

    #[test]
    fn refuses_unknown_and_conflicting_time_zones() {
        let err = Schedule::parse("0 0 * * *", Some("Mars/Olympus")).expect_err("unknown");
        assert_eq!(err, ScheduleError::UnknownTimeZone("Mars/Olympus".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown time zone "Mars/Olympus" (expected an IANA name such as "Europe/Berlin" or "UTC")"#
        );
        for zone in ["", "Etc/Unknown", "Local", "+02:00"] {
            let err = Schedule::parse("0 0 * * *", Some(zone)).expect_err(zone);
            assert_eq!(err, ScheduleError::UnknownTimeZone(zone.into()), "{zone}");
        }
        let err = Schedule::parse("CRON_TZ=Europe/Berlin 0 0 * * *", Some("America/New_York"))
            .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            r#"the schedule's time zone "Europe/Berlin" conflicts with timeZone "America/New_York""#
        );
        // Even UTC conflicts with an explicit other zone.
        assert!(matches!(
            Schedule::parse("TZ=UTC 0 0 * * *", Some("Asia/Tokyo")),
            Err(ScheduleError::TimeZoneConflict { .. })
        ));
    }

    #[test]
    fn every_is_rejected_with_a_clear_message() {
        let err = Schedule::parse("@every 30m", None).expect_err("@every");
        assert!(matches!(err, ScheduleError::EveryNotSupported { .. }));
        assert!(err.to_string().contains("@every is not supported"), "{err}");
    }

    #[test]
    fn display_reads_back_equal() {
        for expr in [
            "*/7 3,5,7-9 1-10/3,20 */2 1-5",
            "1-59/2 0-22/2 */5 FEB,nov sat,sun",
            "CRON_TZ=Australia/Lord_Howe */15 * 29 2 *",
        ] {
            let Ok(schedule) = Schedule::parse(expr, None) else {
                continue;
            };
            let shown = schedule.to_string();
            assert_eq!(parse(&shown), schedule, "{expr} -> {shown}");
            assert_eq!(parse(&shown).to_string(), shown);
        }
    }

    // ---- next_after in UTC ----

    #[test]
    fn next_after_is_strictly_after() {
        let hourly = parse("0 * * * *");
        assert_eq!(
            hourly.next_after(utc(2026, 1, 1, 10, 0)),
            Some(utc(2026, 1, 1, 11, 0))
        );
        assert_eq!(
            hourly.next_after(ts("2026-01-01T09:59:59.999999999Z")),
            Some(utc(2026, 1, 1, 10, 0))
        );
        let daily = parse("30 2 * * *");
        assert_eq!(
            daily.next_after(utc(2026, 12, 31, 3, 0)),
            Some(utc(2027, 1, 1, 2, 30))
        );
        let steps = parse("5/20 1-3 * * *");
        assert_eq!(
            runs(&steps, utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 23, 59)),
            [
                "2026-01-01 01:05+00:00",
                "2026-01-01 01:25+00:00",
                "2026-01-01 01:45+00:00",
                "2026-01-01 02:05+00:00",
                "2026-01-01 02:25+00:00",
                "2026-01-01 02:45+00:00",
                "2026-01-01 03:05+00:00",
                "2026-01-01 03:25+00:00",
                "2026-01-01 03:45+00:00",
            ]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_follow_the_cron_or_rule() {
        // 2026-06-01 is a Monday.
        let from = utc(2026, 5, 31, 12, 0);
        let to = utc(2026, 6, 30, 12, 0);
        let days = |expr: &str| -> Vec<String> {
            runs(&parse(expr), from, to)
                .into_iter()
                .map(|r| r[..10].to_owned())
                .collect()
        };
        // Both restricted: either matches.
        assert_eq!(
            days("0 0 1,20 * MON"),
            [
                "2026-06-01",
                "2026-06-08",
                "2026-06-15",
                "2026-06-20",
                "2026-06-22",
                "2026-06-29"
            ]
        );
        // Day-of-week `*` (or `?`): only day-of-month counts.
        assert_eq!(days("0 0 1,20 * *"), ["2026-06-01", "2026-06-20"]);
        assert_eq!(days("0 0 1,20 * ?"), ["2026-06-01", "2026-06-20"]);
        // Day-of-month `*` (or `?`): only day-of-week counts.
        let mondays = [
            "2026-06-01",
            "2026-06-08",
            "2026-06-15",
            "2026-06-22",
            "2026-06-29",
        ];
        assert_eq!(days("0 0 * * MON"), mondays);
        assert_eq!(days("0 0 ? * 1"), mondays);
        // 0 and 7 are both Sunday.
        assert_eq!(days("0 0 * * 7"), days("0 0 * * SUN"));
        assert_eq!(days("0 0 * * 0"), days("0 0 * * sun"));
        // As robfig/cron: `1-31` is restricted, so OR-ed with Mondays it is every day;
        // `*/2` is restricted too.
        assert_eq!(days("0 0 1-31 * MON").len(), 30);
        assert_eq!(days("0 0 */2 * MON").len(), 15 + 2);
        // A restricted day-of-week makes a day-of-month that never occurs harmless.
        assert_eq!(days("0 0 31 6 MON"), mondays);
    }

    #[test]
    fn february_29_finds_the_next_leap_year() {
        let leap = parse("0 0 29 2 *");
        assert_eq!(
            leap.next_after(utc(2026, 3, 1, 0, 0)),
            Some(utc(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            leap.next_after(utc(2028, 2, 29, 0, 0)),
            Some(utc(2032, 2, 29, 0, 0))
        );
        // 2100 is not a leap year: eight years between runs.
        assert_eq!(
            leap.next_after(utc(2096, 2, 29, 0, 0)),
            Some(utc(2104, 2, 29, 0, 0))
        );
        // In a zone, at local midnight.
        let tokyo = parse_in("0 0 29 2 *", "Asia/Tokyo");
        assert_eq!(
            tokyo.next_after(utc(2026, 1, 1, 0, 0)),
            Some(ts("2028-02-28T15:00:00Z"))
        );
    }

    #[test]
    fn impossible_schedules_terminate_quickly() {
        // Refused at parse time where the fields alone show it.
        assert!(matches!(
            Schedule::parse("0 0 30 2 *", None),
            Err(ScheduleError::NeverRuns { .. })
        ));
        // The search is bounded: no Feb 29 is left before the end of the supported range.
        let started = std::time::Instant::now();
        let leap = parse("0 0 29 2 *");
        assert_eq!(leap.next_after(utc(9997, 1, 1, 0, 0)), None);
        assert_eq!(parse("0 0 1 1 *").next_after(utc(9999, 6, 1, 0, 0)), None);
        assert_eq!(parse("* * * * *").next_after(Timestamp::MAX), None);
        assert_eq!(
            parse_in("0 * * * *", "America/New_York").next_after(Timestamp::MAX),
            None
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    // ---- daylight saving time ----

    #[test]
    fn new_york_spring_forward() {
        let zone = "America/New_York";
        // 2026-03-08 02:00 EST -> 03:00 EDT.
        let from = at(zone, 2026, 3, 7, 0, 0);
        let to = at(zone, 2026, 3, 9, 23, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            [
                "2026-03-07 02:30-05:00",
                "2026-03-08 03:00-04:00",
                "2026-03-09 02:30-04:00"
            ]
        );
        // The brief's example, from just before the gap.
        assert_eq!(
            parse_in("30 2 * * *", zone).next_after(at(zone, 2026, 3, 8, 1, 59)),
            Some(ts("2026-03-08T03:00:00-04:00"))
        );
        let from = at(zone, 2026, 3, 7, 23, 30);
        let to = at(zone, 2026, 3, 8, 5, 0);
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-03-08 00:00-05:00",
                "2026-03-08 01:00-05:00",
                "2026-03-08 03:00-04:00",
                "2026-03-08 04:00-04:00",
                "2026-03-08 05:00-04:00"
            ]
        );
        assert_eq!(
            gaps(&parse_in("0 * * * *", zone), from, to),
            [60, 60, 60, 60]
        );
        let quarter = parse_in("*/15 * * * *", zone);
        assert_eq!(
            runs(
                &quarter,
                at(zone, 2026, 3, 8, 1, 30),
                at(zone, 2026, 3, 8, 3, 30)
            ),
            [
                "2026-03-08 01:45-05:00",
                "2026-03-08 03:00-04:00",
                "2026-03-08 03:15-04:00",
                "2026-03-08 03:30-04:00"
            ]
        );
        assert_eq!(gaps(&quarter, from, to), vec![15; 17]);
        // Two nonexistent wall times and the end of the gap: one run.
        assert_eq!(
            runs(
                &parse_in("0,30 2,3 * * *", zone),
                at(zone, 2026, 3, 8, 0, 0),
                at(zone, 2026, 3, 8, 12, 0)
            ),
            ["2026-03-08 03:00-04:00", "2026-03-08 03:30-04:00"]
        );
    }

    #[test]
    fn new_york_fall_back() {
        let zone = "America/New_York";
        // 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-01:59 happens twice.
        let from = at(zone, 2026, 10, 31, 0, 0);
        let to = at(zone, 2026, 11, 2, 23, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            [
                "2026-10-31 02:30-04:00",
                "2026-11-01 02:30-05:00",
                "2026-11-02 02:30-05:00"
            ]
        );
        // A fixed time in the repeated hour runs once, at its first occurrence.
        assert_eq!(
            runs(&parse_in("30 1 * * *", zone), from, to),
            [
                "2026-10-31 01:30-04:00",
                "2026-11-01 01:30-04:00",
                "2026-11-02 01:30-05:00"
            ]
        );
        assert_eq!(
            runs(
                &parse_in("*/20 1 * * *", zone),
                at(zone, 2026, 11, 1, 0, 0),
                at(zone, 2026, 11, 1, 12, 0)
            ),
            [
                "2026-11-01 01:00-04:00",
                "2026-11-01 01:20-04:00",
                "2026-11-01 01:40-04:00"
            ]
        );
        // Hourly: one run per real hour, through both passes of 01:00.
        let from = at(zone, 2026, 10, 31, 23, 30);
        let to = ts("2026-11-01T04:00:00-05:00");
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-11-01 00:00-04:00",
                "2026-11-01 01:00-04:00",
                "2026-11-01 01:00-05:00",
                "2026-11-01 02:00-05:00",
                "2026-11-01 03:00-05:00",
                "2026-11-01 04:00-05:00"
            ]
        );
        assert_eq!(
            gaps(&parse_in("0 * * * *", zone), from, to),
            [60, 60, 60, 60, 60]
        );
        let quarter = parse_in("*/15 * * * *", zone);
        assert_eq!(
            runs(
                &quarter,
                ts("2026-11-01T01:40:00-04:00"),
                ts("2026-11-01T01:20:00-05:00")
            ),
            [
                "2026-11-01 01:45-04:00",
                "2026-11-01 01:00-05:00",
                "2026-11-01 01:15-05:00"
            ]
        );
        assert_eq!(gaps(&quarter, from, to), vec![15; 21]);
        // Asked from inside the second pass.
        assert_eq!(
            quarter.next_after(ts("2026-11-01T01:05:00-05:00")),
            Some(ts("2026-11-01T01:15:00-05:00"))
        );
        assert_eq!(
            parse_in("30 1 * * *", zone).next_after(ts("2026-11-01T01:05:00-05:00")),
            Some(ts("2026-11-02T01:30:00-05:00"))
        );
    }

    #[test]
    fn berlin_spring_forward_and_fall_back() {
        let zone = "Europe/Berlin";
        // 2026-03-29 02:00 CET -> 03:00 CEST.
        let from = at(zone, 2026, 3, 28, 12, 0);
        let to = at(zone, 2026, 3, 30, 12, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            ["2026-03-29 03:00+02:00", "2026-03-30 02:30+02:00"]
        );
        let (from, to) = (at(zone, 2026, 3, 29, 0, 30), at(zone, 2026, 3, 29, 4, 0));
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-03-29 01:00+01:00",
                "2026-03-29 03:00+02:00",
                "2026-03-29 04:00+02:00"
            ]
        );
        assert_eq!(gaps(&parse_in("*/15 * * * *", zone), from, to), vec![15; 9]);

        // 2026-10-25 03:00 CEST -> 02:00 CET: 02:00-02:59 happens twice.
        let from = at(zone, 2026, 10, 24, 12, 0);
        let to = at(zone, 2026, 10, 26, 12, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            ["2026-10-25 02:30+02:00", "2026-10-26 02:30+01:00"]
        );
        let (from, to) = (at(zone, 2026, 10, 25, 0, 30), at(zone, 2026, 10, 25, 4, 0));
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-10-25 01:00+02:00",
                "2026-10-25 02:00+02:00",
                "2026-10-25 02:00+01:00",
                "2026-10-25 03:00+01:00",
                "2026-10-25 04:00+01:00"
            ]
        );
        assert_eq!(
            gaps(&parse_in("*/15 * * * *", zone), from, to),
            vec![15; 17]
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        let zone = "Australia/Lord_Howe";
        // 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:00-02:29 does not exist.
        let from = at(zone, 2026, 10, 3, 12, 0);
        let to = at(zone, 2026, 10, 5, 12, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            ["2026-10-04 02:30+11:00", "2026-10-05 02:30+11:00"]
        );
        assert_eq!(
            runs(&parse_in("15 2 * * *", zone), from, to),
            ["2026-10-04 02:30+11:00", "2026-10-05 02:15+11:00"]
        );
        let (from, to) = (at(zone, 2026, 10, 4, 0, 30), at(zone, 2026, 10, 4, 4, 0));
        // Wall 02:00 does not exist: it runs at 02:30, the first instant after the gap.
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-10-04 01:00+10:30",
                "2026-10-04 02:30+11:00",
                "2026-10-04 03:00+11:00",
                "2026-10-04 04:00+11:00"
            ]
        );
        let quarter = parse_in("*/15 * * * *", zone);
        assert_eq!(
            runs(
                &quarter,
                at(zone, 2026, 10, 4, 1, 30),
                at(zone, 2026, 10, 4, 2, 45)
            ),
            [
                "2026-10-04 01:45+10:30",
                "2026-10-04 02:30+11:00",
                "2026-10-04 02:45+11:00"
            ]
        );
        assert_eq!(gaps(&quarter, from, to), vec![15; 11]);

        // 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:30-01:59 happens twice.
        let from = at(zone, 2026, 4, 4, 12, 0);
        let to = at(zone, 2026, 4, 6, 12, 0);
        assert_eq!(
            runs(&parse_in("30 2 * * *", zone), from, to),
            ["2026-04-05 02:30+10:30", "2026-04-06 02:30+10:30"]
        );
        assert_eq!(
            runs(&parse_in("30 1 * * *", zone), from, to),
            ["2026-04-05 01:30+11:00", "2026-04-06 01:30+10:30"]
        );
        let (from, to) = (at(zone, 2026, 4, 4, 23, 30), at(zone, 2026, 4, 5, 3, 0));
        // No whole hour repeats in a half-hour fold.
        assert_eq!(
            runs(&parse_in("0 * * * *", zone), from, to),
            [
                "2026-04-05 00:00+11:00",
                "2026-04-05 01:00+11:00",
                "2026-04-05 02:00+10:30",
                "2026-04-05 03:00+10:30"
            ]
        );
        assert_eq!(
            runs(
                &quarter,
                at(zone, 2026, 4, 5, 1, 15),
                ts("2026-04-05T02:00:00+10:30")
            ),
            [
                "2026-04-05 01:30+11:00",
                "2026-04-05 01:45+11:00",
                "2026-04-05 01:30+10:30",
                "2026-04-05 01:45+10:30",
                "2026-04-05 02:00+10:30"
            ]
        );
        assert_eq!(gaps(&quarter, from, to), vec![15; 15]);
    }

    /// Whether a wall-clock minute matches the schedule's fields.
    fn matches(schedule: &Schedule, wall: DateTime) -> bool {
        schedule.minute().has(wall.minute().unsigned_abs().into())
            && schedule.hour().has(wall.hour().unsigned_abs().into())
            && schedule.month().has(wall.month().unsigned_abs().into())
            && schedule.day_matches(wall.date())
    }

    /// The runs in `(from, to]` found by walking real time minute by minute and applying the
    /// DST rules directly: a matching wall time runs when first shown (or again, for
    /// every-hour schedules, when shown a second time), and a forward jump runs at its end if
    /// it skipped a matching wall time.
    fn scan(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let tz = TimeZone::get(schedule.time_zone()).expect("zone");
        let minute = SignedDuration::from_mins(1);
        let mut t = from
            .checked_sub(SignedDuration::from_hours(48))
            .expect("in range");
        let mut previous = tz.to_datetime(t);
        let mut peak = previous;
        let mut out = Vec::new();
        while t < to {
            t = t.checked_add(minute).expect("in range");
            let wall = tz.to_datetime(t);
            let mut run = false;
            if wall > previous.checked_add(minute).expect("in range") {
                let mut skipped = previous.checked_add(minute).expect("in range");
                while skipped < wall {
                    run |= matches(schedule, skipped);
                    skipped = skipped.checked_add(minute).expect("in range");
                }
            }
            if matches(schedule, wall) && (wall > peak || schedule.every_hour()) {
                run = true;
            }
            if run && t > from {
                out.push(t);
            }
            peak = peak.max(wall);
            previous = wall;
        }
        out
    }

    #[test]
    fn next_after_matches_a_minute_by_minute_scan() {
        // From the day before each transition (and around a year end in UTC), for 60 hours.
        let windows = [
            ("America/New_York", (2026, 3, 7), (2026, 10, 31)),
            ("Europe/Berlin", (2026, 3, 28), (2026, 10, 24)),
            ("Australia/Lord_Howe", (2026, 10, 3), (2026, 4, 4)),
            ("UTC", (2026, 2, 27), (2026, 12, 30)),
        ];
        let exprs = [
            "30 2 * * *",
            "0 * * * *",
            "*/15 * * * *",
            "*/20 1 * * *",
            "0,30 2,3 * * *",
            "* 2 * * *",
            "15 1-3 * * *",
            "0 */2 * * *",
            "59 * * * *",
            "* * * * *",
            "45 1 * * 0",
            "0 0 1 3,4,10,11 *",
        ];
        for (zone, spring, fall) in windows {
            for (y, m, d) in [spring, fall] {
                let from = at(zone, y, m, d, 0, 0);
                let to = from
                    .checked_add(SignedDuration::from_hours(60))
                    .expect("in range");
                for expr in exprs {
                    let schedule = parse_in(expr, zone);
                    let mut got = Vec::new();
                    let mut t = from;
                    while let Some(next) = schedule.next_after(t).filter(|n| *n <= to) {
                        got.push(next);
                        t = next;
                    }
                    assert_eq!(
                        got,
                        scan(&schedule, from, to),
                        "{expr} in {zone} near {y}-{m}"
                    );
                }
            }
        }
    }

    // ---- decide ----

    fn state(last: Option<Timestamp>, created: Timestamp) -> ScheduleState {
        ScheduleState {
            last_schedule: last,
            created,
        }
    }

    fn created() -> Timestamp {
        utc(2026, 1, 1, 0, 30)
    }

    #[test]
    fn first_run_counts_from_creation() {
        let hourly = parse("0 * * * *");
        let fresh = state(None, created());
        assert_eq!(
            decide(&hourly, &fresh, utc(2026, 1, 1, 0, 45), None, false),
            Decision::Wait {
                next: Some(utc(2026, 1, 1, 1, 0))
            }
        );
        // An instant exactly at `now` is due.
        let decision = decide(&hourly, &fresh, utc(2026, 1, 1, 1, 0), None, false);
        assert_eq!(
            decision,
            Decision::Run {
                scheduled_for: utc(2026, 1, 1, 1, 0),
                missed: 0,
                next: Some(utc(2026, 1, 1, 2, 0))
            }
        );
        assert_eq!(decision.persist(), Some(utc(2026, 1, 1, 1, 0)));
        assert_eq!(decision.next(), Some(utc(2026, 1, 1, 2, 0)));
        // Instants before creation never run.
        assert_eq!(
            decide(&hourly, &fresh, utc(2026, 1, 1, 0, 31), None, false).persist(),
            None
        );
    }

    #[test]
    fn restart_after_a_run_does_not_repeat_it() {
        let hourly = parse("0 * * * *");
        let now = ts("2026-01-01T10:00:02Z");
        let before = state(Some(utc(2026, 1, 1, 9, 0)), created());
        let decision = decide(&hourly, &before, now, None, false);
        assert!(matches!(decision, Decision::Run { missed: 0, .. }));
        // The operator persisted lastScheduleTime, then restarted.
        let after = state(decision.persist(), created());
        for now in [now, ts("2026-01-01T10:00:03Z"), ts("2026-01-01T10:59:59Z")] {
            assert_eq!(
                decide(&hourly, &after, now, None, false),
                Decision::Wait {
                    next: Some(utc(2026, 1, 1, 11, 0))
                }
            );
        }
    }

    #[test]
    fn downtime_runs_only_the_latest_and_counts_the_missed() {
        let hourly = parse("0 * * * *");
        let last = state(Some(utc(2026, 1, 1, 10, 0)), created());
        // Down from 10:05 to 13:30: 11:00, 12:00 and 13:00 passed.
        let decision = decide(&hourly, &last, utc(2026, 1, 1, 13, 30), None, false);
        assert_eq!(
            decision,
            Decision::Run {
                scheduled_for: utc(2026, 1, 1, 13, 0),
                missed: 2,
                next: Some(utc(2026, 1, 1, 14, 0))
            }
        );
        assert_eq!(decision.persist(), Some(utc(2026, 1, 1, 13, 0)));
    }

    #[test]
    fn starting_deadline_excludes_a_stale_run() {
        let hourly = parse("0 * * * *");
        let last = state(Some(utc(2026, 1, 1, 10, 0)), created());
        let deadline = Some(Duration::from_secs(10 * 60));
        let decision = decide(&hourly, &last, utc(2026, 1, 1, 13, 30), deadline, false);
        assert_eq!(
            decision,
            Decision::TooLate {
                scheduled_for: utc(2026, 1, 1, 13, 0),
                missed: 2,
                next: Some(utc(2026, 1, 1, 14, 0))
            }
        );
        // Persisted, it is not reconsidered.
        assert_eq!(decision.persist(), Some(utc(2026, 1, 1, 13, 0)));
        let moved = state(decision.persist(), created());
        assert_eq!(
            decide(&hourly, &moved, utc(2026, 1, 1, 13, 31), deadline, false),
            Decision::Wait {
                next: Some(utc(2026, 1, 1, 14, 0))
            }
        );
        // Exactly at the deadline is still in time; a nanosecond later is not.
        assert!(matches!(
            decide(&hourly, &last, utc(2026, 1, 1, 13, 10), deadline, false),
            Decision::Run { .. }
        ));
        assert!(matches!(
            decide(
                &hourly,
                &last,
                ts("2026-01-01T13:10:00.000000001Z"),
                deadline,
                false
            ),
            Decision::TooLate { .. }
        ));
        // A deadline too large for a SignedDuration never excludes anything.
        assert!(matches!(
            decide(
                &hourly,
                &last,
                utc(2026, 1, 1, 13, 30),
                Some(Duration::MAX),
                false
            ),
            Decision::Run { .. }
        ));
    }

    #[test]
    fn suspend_skips_and_resume_starts_with_the_next_instant() {
        let hourly = parse("0 * * * *");
        let mut last = state(Some(utc(2026, 1, 1, 10, 0)), created());
        // Suspended at 10:30; nothing was due yet.
        let decision = decide(&hourly, &last, utc(2026, 1, 1, 10, 30), None, true);
        assert_eq!(
            decision,
            Decision::Suspended {
                last_skipped: None,
                next: Some(utc(2026, 1, 1, 11, 0))
            }
        );
        assert_eq!(decision.persist(), None);
        // The operator requeues at each `next` and persists what was skipped.
        for hour in [11, 12, 13] {
            let now = ts(&format!("2026-01-01T{hour}:00:05Z"));
            let decision = decide(&hourly, &last, now, None, true);
            assert_eq!(
                decision,
                Decision::Suspended {
                    last_skipped: Some(utc(2026, 1, 1, hour, 0)),
                    next: Some(utc(2026, 1, 1, hour + 1, 0))
                }
            );
            last.last_schedule = decision.persist().or(last.last_schedule);
        }
        // Resumed at 13:30: the runs missed while suspended are not made up.
        assert_eq!(
            decide(&hourly, &last, utc(2026, 1, 1, 13, 30), None, false),
            Decision::Wait {
                next: Some(utc(2026, 1, 1, 14, 0))
            }
        );
        // If the operator never looked while suspended, the suspension still skips
        // everything in one go.
        let stale = state(Some(utc(2026, 1, 1, 10, 0)), created());
        let decision = decide(&hourly, &stale, utc(2026, 1, 1, 13, 30), None, true);
        assert_eq!(decision.persist(), Some(utc(2026, 1, 1, 13, 0)));
    }

    #[test]
    fn skewed_clock_behind_last_schedule_waits() {
        let hourly = parse("0 * * * *");
        let ahead = state(Some(utc(2026, 1, 1, 12, 0)), created());
        assert_eq!(
            decide(&hourly, &ahead, utc(2026, 1, 1, 11, 30), None, false),
            Decision::Wait {
                next: Some(utc(2026, 1, 1, 13, 0))
            }
        );
    }

    #[test]
    fn missed_count_is_capped_and_stays_fast() {
        let minutely = parse("* * * * *");
        let last = state(Some(utc(2026, 1, 1, 0, 0)), created());
        // Exactly MISSED_CAP earlier instants: counted, not capped.
        let now = utc(2026, 1, 1, 0, 0)
            .checked_add(SignedDuration::from_mins(i64::from(MISSED_CAP) + 1))
            .expect("in range");
        assert_eq!(
            decide(&minutely, &last, now, None, false),
            Decision::Run {
                scheduled_for: now,
                missed: MISSED_CAP,
                next: now.checked_add(SignedDuration::from_mins(1)).ok()
            }
        );
        // Ten years of downtime: capped, and the latest instant is still exact.
        let started = std::time::Instant::now();
        let now = ts("2036-03-05T12:34:56Z");
        assert_eq!(
            decide(&minutely, &last, now, None, false),
            Decision::Run {
                scheduled_for: ts("2036-03-05T12:34:00Z"),
                missed: MISSED_CAP,
                next: Some(ts("2036-03-05T12:35:00Z"))
            }
        );
        // A sparse schedule after a long downtime.
        let sparse = parse("* 3 1 * *");
        assert_eq!(
            decide(&sparse, &last, now, None, false),
            Decision::Run {
                scheduled_for: ts("2036-03-01T03:59:00Z"),
                missed: MISSED_CAP,
                next: Some(ts("2036-04-01T03:00:00Z"))
            }
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn decide_across_a_dst_gap() {
        let zone = "America/New_York";
        let daily = parse_in("30 2 * * *", zone);
        let last = state(
            Some(at(zone, 2026, 3, 7, 2, 30)),
            at(zone, 2026, 1, 1, 0, 0),
        );
        assert_eq!(
            decide(&daily, &last, at(zone, 2026, 3, 8, 3, 1), None, false),
            Decision::Run {
                scheduled_for: ts("2026-03-08T03:00:00-04:00"),
                missed: 0,
                next: Some(ts("2026-03-09T02:30:00-04:00"))
            }
        );
    }
}
