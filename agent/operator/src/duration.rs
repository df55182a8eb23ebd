//! Go `time.ParseDuration` syntax, as used by KubeStash fields such as `backupTimeout: 2h`,
//! `retryConfig.delay: 30s` and a hook's `timeout: 1m30s`.
//!
//! A duration is a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`): `300ms`, `1.5h`, `2h45m`. A bare `0` is also
//! accepted. Unlike Go, negative durations are refused: no field of ours wants one.

use std::time::Duration;

/// The units accepted, for error messages.
const UNITS: &str = "use ns, us, ms, s, m, h";

/// The largest duration Go can represent (`math.MaxInt64` nanoseconds, about 292 years);
/// anything longer is refused, as Go does.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string was refused. Each message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("{input:?}: empty duration (expected e.g. 30s, 1m30s, 2h)")]
    Empty {
        /// The string given.
        input: String,
    },
    /// The string starts with `-`.
    #[error("{input:?}: negative durations are not allowed")]
    Negative {
        /// The string given.
        input: String,
    },
    /// A number was expected at `at` (a unit with no number, or a lone `.`).
    #[error("{input:?}: expected a number at {at:?}")]
    ExpectedNumber {
        /// The string given.
        input: String,
        /// The rest of the string where the number was expected.
        at: String,
    },
    /// A number is not followed by a unit.
    #[error("{input:?}: missing unit after {number:?} ({UNITS})")]
    MissingUnit {
        /// The string given.
        input: String,
        /// The number that has no unit.
        number: String,
    },
    /// A unit is not one of `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    #[error("{input:?}: unknown unit {unit:?} ({UNITS})")]
    UnknownUnit {
        /// The string given.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// The duration is longer than Go can represent (about 292 years).
    #[error("{input:?}: duration too large (the maximum is about 292 years)")]
    TooLarge {
        /// The string given.
        input: String,
    },
}

/// Parses a Go-style duration (`300ms`, `1.5h`, `2h45m`, `0`), refusing negative ones.
///
/// Fractions are computed exactly and truncated to the nanosecond.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = || s.to_owned();
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(DurationError::Negative { input: input() });
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty { input: input() });
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, optionally a '.' and more digits; at least one digit overall.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let frac_len = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::ExpectedNumber {
                input: input(),
                at: rest.to_owned(),
            });
        }
        let number = &rest[..rest.len() - after_num.len()];

        // The unit: everything up to the next digit or '.'.
        let unit_len = after_num
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_num.len());
        let (unit, after_unit) = after_num.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "" => {
                return Err(DurationError::MissingUnit {
                    input: input(),
                    number: number.to_owned(),
                });
            }
            "ns" => 1,
            // U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go accepts both.
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: input(),
                    unit: unit.to_owned(),
                });
            }
        };

        let too_large = || DurationError::TooLarge { input: input() };
        let mut whole: u128 = 0;
        for d in int_part.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(too_large)?;
        }
        let mut value = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
        // The fraction, exact and truncated: fraction digits * unit / 10^digits. Digits past
        // the 19th are ignored (together they are worth less than a nanosecond).
        let frac_digits = &frac_part[..frac_part.len().min(19)];
        if !frac_digits.is_empty() {
            let mut numerator: u128 = 0;
            for d in frac_digits.bytes() {
                numerator = numerator * 10 + u128::from(d - b'0');
            }
            let scale = 10u128.pow(frac_digits.len() as u32);
            value += numerator * unit_nanos / scale;
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(too_large)?;
        rest = after_unit;
    }

    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration as Go's `time.Duration.String` does: `1h2m3s`, `1h0m0s`, `1.5s`,
/// `300ms`, `2µs`, `0s`.
///
/// At a second or more it prints hours, minutes and seconds (the hours and minutes only when
/// non-zero, leading), with the fractional seconds exact and trailing zeros removed; below a
/// second it uses the largest of `ms`, `µs`, `ns` that keeps an integer part.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_owned();
    }
    if total < 1_000_000_000 {
        let (unit, scale) = if total < 1_000 {
            ("ns", 1)
        } else if total < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(total, scale));
    }
    let hours = total / 3_600_000_000_000;
    let minutes = total / 60_000_000_000 % 60;
    let seconds = decimal(total % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / scale` as a decimal with the trailing zeros of the fraction removed.
/// `scale` is a power of ten.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The time from `from` to `to`; zero when `to` is earlier.
pub fn elapsed(from: jiff::Timestamp, to: jiff::Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// How long to wait from `now` until `at`, at least one second (a requeue delay).
pub fn until(now: jiff::Timestamp, at: jiff::Timestamp) -> Duration {
    elapsed(now, at).max(Duration::from_secs(1))
}

/// `start` plus a timeout written as a Go duration (`backupTimeout`, `restoreTimeout`);
/// `None` when there is no timeout or it does not parse (validation reports that).
pub fn deadline(start: jiff::Timestamp, timeout: Option<&str>) -> Option<jiff::Timestamp> {
    let timeout = parse_duration(timeout?).ok()?;
    start
        .checked_add(jiff::SignedDuration::try_from(timeout).ok()?)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("0.000s", Duration::ZERO),
            ("30s", s(30)),
            ("300ms", ms(300)),
            ("1m30s", s(90)),
            ("2h", s(7_200)),
            ("1.5h", s(5_400)),
            ("2h45m", s(9_900)),
            ("1h2m3s", s(3_723)),
            ("1.5s", ms(1_500)),
            (".5s", ms(500)),
            ("5.s", s(5)),
            ("+5s", s(5)),
            ("100ns", Duration::from_nanos(100)),
            ("2us", Duration::from_micros(2)),
            ("2\u{b5}s", Duration::from_micros(2)),
            ("2\u{3bc}s", Duration::from_micros(2)),
            ("1.000000001s", Duration::new(1, 1)),
            // Truncated past the nanosecond, as Go does.
            ("1.0000000019s", Duration::new(1, 1)),
            ("0.1ns", Duration::ZERO),
            ("1s1s", s(2)),
            ("3m2h", s(7_380)),
            ("1.25m", s(75)),
            (
                "0.333333333333333333333333h",
                Duration::new(1_199, 999_999_999),
            ),
            (
                "2562047h47m16.854775807s",
                Duration::new(9_223_372_036, 854_775_807),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn refuses_bad_durations_naming_the_input() {
        let cases: &[(&str, &str)] = &[
            ("", r#""": empty duration (expected e.g. 30s, 1m30s, 2h)"#),
            ("+", r#""+": empty duration (expected e.g. 30s, 1m30s, 2h)"#),
            ("2x", r#""2x": unknown unit "x" (use ns, us, ms, s, m, h)"#),
            ("1H", r#""1H": unknown unit "H" (use ns, us, ms, s, m, h)"#),
            (
                "1 h",
                r#""1 h": unknown unit " h" (use ns, us, ms, s, m, h)"#,
            ),
            (" 1h", r#"" 1h": expected a number at " 1h""#),
            ("1d", r#""1d": unknown unit "d" (use ns, us, ms, s, m, h)"#),
            (
                "1",
                r#""1": missing unit after "1" (use ns, us, ms, s, m, h)"#,
            ),
            (
                "1h30",
                r#""1h30": missing unit after "30" (use ns, us, ms, s, m, h)"#,
            ),
            (
                "00",
                r#""00": missing unit after "00" (use ns, us, ms, s, m, h)"#,
            ),
            ("h", r#""h": expected a number at "h""#),
            (".s", r#"".s": expected a number at ".s""#),
            (
                "1..5s",
                r#""1..5s": missing unit after "1." (use ns, us, ms, s, m, h)"#,
            ),
            ("-5s", r#""-5s": negative durations are not allowed"#),
            ("-0", r#""-0": negative durations are not allowed"#),
            ("+-5s", r#""+-5s": expected a number at "-5s""#),
            (
                "2562047h47m16.854775808s",
                r#""2562047h47m16.854775808s": duration too large (the maximum is about 292 years)"#,
            ),
            (
                "9999999999999999999999h",
                r#""9999999999999999999999h": duration too large (the maximum is about 292 years)"#,
            ),
            (
                "3000000h",
                r#""3000000h": duration too large (the maximum is about 292 years)"#,
            ),
        ];
        for (input, want) in cases {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(err.to_string(), *want, "{input}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_100), "1.1\u{b5}s"),
            (Duration::from_micros(2), "2\u{b5}s"),
            (ms(300), "300ms"),
            (Duration::from_nanos(1_500_001), "1.500001ms"),
            (ms(1_500), "1.5s"),
            (s(1), "1s"),
            (s(59), "59s"),
            (s(60), "1m0s"),
            (s(90), "1m30s"),
            (s(3_600), "1h0m0s"),
            (s(3_723), "1h2m3s"),
            (s(5_400), "1h30m0s"),
            (Duration::new(3_723, 500_000_000), "1h2m3.5s"),
            (Duration::new(61, 1), "1m1.000000001s"),
            (s(100 * 3_600), "100h0m0s"),
            (
                Duration::new(9_223_372_036, 854_775_807),
                "2562047h47m16.854775807s",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn format_then_parse_round_trips() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(7),
            Duration::from_nanos(1_234_567),
            ms(1_500),
            s(3_723),
            Duration::new(86_400 * 3 + 17, 42),
        ];
        for d in samples {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
    }
}
