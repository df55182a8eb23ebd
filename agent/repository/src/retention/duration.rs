//! [`CalendarDuration`]: restic's `1y2m3d4h` durations for `keep-within*`.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use super::RetentionError;

/// A duration in calendar units, as restic's `--keep-within` takes it: `1y2m3d4h` means
/// 1 year, 2 months, 3 days and 4 hours (`m` is months, there are no minutes). The zero
/// duration means "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CalendarDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl CalendarDuration {
    /// Whether every part is zero (the option is not set).
    pub fn is_zero(&self) -> bool {
        *self == CalendarDuration::default()
    }

    /// The instant this duration before `reference`, computed as Go's
    /// `reference.AddDate(-years, -months, -days).Add(-hours)` in `time_zone`: the calendar
    /// date moves back by years and months, a day past the end of the month overflows into
    /// the next month (31 March − 1 month = 3 March, not 28 February), then the hours are
    /// subtracted as elapsed time. A wall time that the time zone skips or repeats takes
    /// the offset before the transition (jiff's "compatible" rule).
    ///
    /// `None` if the result lies outside the supported range (years ±9999): no snapshot is
    /// older than that.
    pub fn before(&self, reference: Timestamp, time_zone: &TimeZone) -> Option<Timestamp> {
        let local = reference.to_zoned(time_zone.clone()).datetime();
        // Month arithmetic with Go's normalisation: count months from year 0.
        let months = i64::from(local.year()) * 12 + i64::from(local.month() - 1)
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i16::try_from(months.div_euclid(12)).ok()?;
        let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
        // Day overflow: go from the first of the month.
        let first = Date::new(year, month, 1).ok()?;
        let day_offset = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first
            .checked_add(Span::new().try_days(day_offset).ok()?)
            .ok()?;
        let civil = DateTime::from_parts(date, local.time());
        let zoned = time_zone.to_ambiguous_zoned(civil).compatible().ok()?;
        let hours = Span::new().try_hours(i64::from(self.hours)).ok()?;
        zoned.timestamp().checked_sub(hours).ok()
    }
}

impl FromStr for CalendarDuration {
    type Err = RetentionError;

    /// Parses `6y5m234d37h` (any subset, any order, each unit at most once).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| RetentionError::InvalidDuration {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut d = CalendarDuration::default();
        let mut seen = [false; 4];
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid(
                    "expected a number (negative values are not allowed)",
                ));
            }
            let number: u32 = rest[..digits]
                .parse()
                .map_err(|_| invalid("a number is too large"))?;
            let Some(unit) = rest[digits..].chars().next() else {
                return Err(invalid("a number has no unit (y, m, d or h)"));
            };
            let (slot, field) = match unit {
                'y' => (0, &mut d.years),
                'm' => (1, &mut d.months),
                'd' => (2, &mut d.days),
                'h' => (3, &mut d.hours),
                other => {
                    return Err(invalid(&format!(
                        "unknown unit {other:?} (use y, m for months, d or h)"
                    )));
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(invalid(&format!("the unit {unit:?} appears twice")));
            }
            *field = number;
            rest = &rest[digits + unit.len_utf8()..];
        }
        Ok(d)
    }
}

impl fmt::Display for CalendarDuration {
    /// restic's form: `1y2m3d4h`, zero parts left out (`0h` for zero).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> CalendarDuration {
        s.parse().expect("valid duration")
    }

    #[test]
    fn parses_and_prints_restic_durations() {
        assert_eq!(
            d("1y2m3d4h"),
            CalendarDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(d("4h1y").to_string(), "1y4h");
        assert_eq!(d(" 30d ").to_string(), "30d");
        assert_eq!(d("0d").to_string(), "0h");
        assert!(d("0d").is_zero());
    }

    #[test]
    fn rejects_malformed_durations_with_the_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("7", "no unit"),
            ("7w", "unknown unit 'w'"),
            ("-1d", "negative values are not allowed"),
            ("1d2d", "appears twice"),
            ("d", "expected a number"),
            ("99999999999d", "too large"),
        ] {
            let err = input.parse::<CalendarDuration>().unwrap_err();
            assert!(
                matches!(err, RetentionError::InvalidDuration { .. }),
                "{input}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(reason), "{input}: {text}");
            assert!(text.contains(&format!("{input:?}")), "{input}: {text}");
        }
    }

    #[test]
    fn month_arithmetic_overflows_like_go_add_date() {
        let utc = TimeZone::UTC;
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        // 31 March minus one month is "31 February", which Go normalises to 3 March.
        assert_eq!(
            d("1m").before(at("2021-03-31T10:00:00Z"), &utc),
            Some(at("2021-03-03T10:00:00Z"))
        );
        // 29 February minus one year is "29 February 2019" = 1 March 2019.
        assert_eq!(
            d("1y").before(at("2020-02-29T00:00:00Z"), &utc),
            Some(at("2019-03-01T00:00:00Z"))
        );
        // Days cross month and year boundaries; hours are elapsed time.
        assert_eq!(
            d("1y1m1d25h").before(at("2016-01-01T01:00:00Z"), &utc),
            Some(at("2014-11-29T00:00:00Z"))
        );
    }

    #[test]
    fn days_are_calendar_days_in_the_time_zone() {
        // Central Europe: the night of 26 to 27 March 2022 has 23 hours.
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("posix tz");
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        // 27 March 12:00 CEST (10:00 UTC) minus 1 day = 26 March 12:00 CET (11:00 UTC).
        assert_eq!(
            d("1d").before(at("2022-03-27T10:00:00Z"), &cet),
            Some(at("2022-03-26T11:00:00Z"))
        );
        // While 24 hours are 24 hours.
        assert_eq!(
            d("24h").before(at("2022-03-27T10:00:00Z"), &cet),
            Some(at("2022-03-26T10:00:00Z"))
        );
    }
}
