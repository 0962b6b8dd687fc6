//! Durations written as text, in one syntax for all of flux: the configuration's durations
//! (`flux.toml`, `FLUX_*` variables) are read here, and `#[flux::task]` reads its duration
//! options with a copy of this grammar in the macro crate, whose tests check that the two agree.
//!
//! The syntax, surrounding whitespace aside:
//!
//! - a number of seconds: `30`, `0.25`;
//! - a number with a decimal point and one unit: `1.5s`, `0.5h`, `2.5 min`;
//! - whole numbers with units, one or several: `30s`, `250ms`, `2m`, `1h 30m`.
//!
//! Units are `ms`, `s`, `m` (minutes), `h` and `d`, also spelt out (`sec`, `seconds`, `min`,
//! `minutes`, `hr`, `hours`, `days`, ...); whole numbers also take the finer and coarser units
//! humantime knows (`us`, `ns`, `w`, ...). Negative durations are refused.

use std::time::Duration;

/// What a duration must look like, for error messages.
pub(crate) const EXPECTED: &str =
    "expected a number of seconds or a duration such as \"30s\", \"1.5s\", \"2m\" or \"1h 30m\"";

/// Parses `text` as a duration; the error quotes `text` and says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let duration = if trimmed.is_empty() {
        None
    } else if let Ok(secs) = trimmed.parse::<f64>() {
        from_seconds(secs)
    } else {
        with_units(trimmed)
    };
    duration.ok_or_else(|| format!("invalid duration `{text}`: {EXPECTED}"))
}

/// `1.5s` (a decimal number and one unit), or whole numbers with units in humantime's syntax.
fn with_units(text: &str) -> Option<Duration> {
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    if !number.contains('.') {
        return humantime::parse_duration(text).ok();
    }
    let number: f64 = number.parse().ok()?;
    from_seconds(number * unit_seconds(unit.trim())?)
}

/// The seconds in one `unit`, for decimal numbers.
fn unit_seconds(unit: &str) -> Option<f64> {
    match unit {
        "ms" | "msec" => Some(1e-3),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600.0),
        "d" | "day" | "days" => Some(86400.0),
        _ => None,
    }
}

/// `secs` seconds, if that is a duration (finite, not negative, not too long).
fn from_seconds(secs: f64) -> Option<Duration> {
    if secs.is_finite() && secs >= 0.0 { Duration::try_from_secs_f64(secs).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_seconds() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 0.25 "), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn decimal_numbers_take_one_unit() {
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.5h"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("2.5 min"), Ok(Duration::from_secs(150)));
        assert_eq!(parse("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse("0.5d"), Ok(Duration::from_secs(43200)));
        assert!(parse("1.5w").is_err());
        assert!(parse("1.5s 2m").is_err());
    }

    #[test]
    fn whole_numbers_take_units_as_humantime_does() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86400)));
    }

    #[test]
    fn the_error_quotes_the_text_and_says_what_is_accepted() {
        for bad in ["", "  ", "soon", "3 parsecs", "-1", "-1s", "1.5 parsecs", "s", "NaN", "inf", "1..5s"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "invalid duration `{bad}`: expected a number of seconds or a duration such as \"30s\", \"1.5s\", \"2m\" or \"1h 30m\""
                )
            );
        }
    }
}
