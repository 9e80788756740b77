//! The text form of durations (`"250ms"`, `"1.5s"`, `"2m"`) and latency
//! ranges (`"1ms..20ms"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::LatencyRange;

/// Units, largest first, with their length in nanoseconds.
const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

const EXPECTED: &str = "expected a number with a unit (h, m, s, ms, us, ns), like \"250ms\", \"1.5s\" or \"2m\"";

/// Formats a duration exactly, in the largest unit that divides it:
/// `"250ms"`, `"2s"`, `"1m"`, `"1500us"`; zero is `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let (unit, len) =
        UNITS.iter().find(|(_, len)| nanos % len == 0).expect("every duration is a whole number of nanoseconds");
    format!("{}{unit}", nanos / len)
}

/// Parses a duration: a non-negative decimal number and a unit among `h`,
/// `m`, `s`, `ms`, `us` and `ns` (`"250ms"`, `"1.5s"`, `"2m"`). The value must
/// be a whole number of nanoseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.starts_with('-') {
        return Err(format!("negative duration `{s}`, {EXPECTED}"));
    }
    let malformed = || format!("invalid duration `{s}`, {EXPECTED}");
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(malformed)?;
    let (number, unit) = text.split_at(split);
    let &(_, unit_len) = UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(malformed)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(fraction) || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    let too_large = || format!("duration `{s}` is too large");
    let scale = u32::try_from(fraction.len()).ok().and_then(|len| 10u128.checked_pow(len)).ok_or_else(malformed)?;
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| malformed())? };
    let fraction_nanos = fraction.checked_mul(unit_len).ok_or_else(malformed)?;
    if fraction_nanos % scale != 0 {
        return Err(format!("duration `{s}` is finer than a nanosecond"));
    }
    let nanos =
        whole.checked_mul(unit_len).and_then(|n| n.checked_add(fraction_nanos / scale)).ok_or_else(too_large)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_large())?;
    let subsec = u32::try_from(nanos % 1_000_000_000).expect("below one second");
    Ok(Duration::new(secs, subsec))
}

impl FromStr for LatencyRange {
    type Err = String;

    /// Parses `"MIN..MAX"` or a single duration (then `min == max`). The
    /// order of `MIN` and `MAX` is checked by validation, not here.
    fn from_str(s: &str) -> Result<LatencyRange, String> {
        let in_range =
            |e: String| format!("{e} (in range `{s}`, expected \"MIN..MAX\" like \"1ms..20ms\" or one duration)");
        match s.split_once("..") {
            Some((min, max)) => Ok(LatencyRange {
                min: parse_duration(min).map_err(in_range)?,
                max: parse_duration(max).map_err(in_range)?,
            }),
            None => parse_duration(s).map(LatencyRange::fixed),
        }
    }
}

impl fmt::Display for LatencyRange {
    /// `"MIN..MAX"`, or one duration when `min == max`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            f.write_str(&format_duration(self.min))
        } else {
            write!(f, "{}..{}", format_duration(self.min), format_duration(self.max))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_the_largest_exact_unit() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::from_nanos(1_000_000_001), "1000000001ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn parses_units_and_fractions() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 3ms "), Ok(Duration::from_millis(3)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "5", "ms", "-1s", "1.s", ".5s", "1..2s", "1.2.3s", "1 s", "1sec", "+1s", "1e3ms", "0.5ns"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_duration("-1s").unwrap_err().starts_with("negative duration"));
        assert!(parse_duration("99999999999999999999999h").unwrap_err().contains("too large"));
        assert!(parse_duration("5").unwrap_err().contains("expected a number with a unit"));
    }

    #[test]
    fn ranges_round_trip() {
        let range: LatencyRange = "1ms..20ms".parse().unwrap();
        assert_eq!(range.min, Duration::from_millis(1));
        assert_eq!(range.max, Duration::from_millis(20));
        assert_eq!(range.to_string(), "1ms..20ms");
        let fixed: LatencyRange = "3ms".parse().unwrap();
        assert_eq!(fixed, LatencyRange::fixed(Duration::from_millis(3)));
        assert_eq!(fixed.to_string(), "3ms");
        assert!("1ms..".parse::<LatencyRange>().is_err());
        assert!("1ms..-2ms".parse::<LatencyRange>().is_err());
    }
}
