//! Sizes in status fields (`12.50 MiB`): formatting, parsing and adding them up.

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// `1.50 KiB`-style size with binary units; bytes below 1 KiB are whole (`512 B`).
pub fn format(n: u64) -> String {
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Bytes in a size written by [`format`] (or KubeStash's `12.222 MiB`); `None` if it is not
/// a size. Rounded to the nearest byte.
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let power = UNITS.iter().position(|u| u.eq_ignore_ascii_case(unit))?;
    let bytes = number * 1024f64.powi(i32::try_from(power).ok()?);
    (bytes.is_finite() && bytes >= 0.0).then(|| bytes.round() as u64)
}

/// The formatted sum of sizes; `None` when there is none or one does not parse.
pub fn sum<'a>(sizes: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut total = 0u64;
    let mut any = false;
    for size in sizes {
        total = total.saturating_add(parse(size)?);
        any = true;
    }
    any.then(|| format(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parses_and_sums() {
        assert_eq!(format(512), "512 B");
        assert_eq!(format(1536), "1.50 KiB");
        assert_eq!(format(5 * 1024 * 1024 * 1024), "5.00 GiB");
        assert_eq!(parse("1.50 KiB"), Some(1536));
        assert_eq!(parse("12.222 MiB"), Some(12_815_696));
        assert_eq!(parse("512 B"), Some(512));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("3 parsecs"), None);
        assert_eq!(sum(["1.00 KiB", "512 B"]), Some("1.50 KiB".to_owned()));
        assert_eq!(sum(["1.00 KiB", "?"]), None);
        assert_eq!(sum([]), None);
    }
}
