//! Duration literals of task options: `"30s"`, `"1.5s"`, `"2m"`, `"1h 30m"`, or a number of
//! seconds (`30`, `0.25`).
//!
//! flux reads the durations of its configuration with the same grammar (its own copy, since
//! this crate cannot depend on flux); a test below checks that both accept and refuse the same
//! texts with the same results.

use std::time::Duration;

/// Parses a duration string; the error says what is accepted.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "invalid duration `{text}`: expected a number of seconds or a duration such as \"30s\", \"1.5s\", \"2m\" or \"1h 30m\""
        )
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs).ok_or_else(bad);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.contains('.') {
        let n: f64 = number.parse().map_err(|_| bad())?;
        let scale = match unit.trim() {
            "ms" | "msec" => 1e-3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            _ => return Err(bad()),
        };
        return seconds(n * scale).ok_or_else(bad);
    }
    humantime::parse_duration(t).map_err(|_| bad())
}

fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_finite() && secs >= 0.0 { Duration::try_from_secs_f64(secs).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    /// Texts both this parser and the runtime's must accept.
    const ACCEPTED: &[&str] = &[
        "0",
        "30",
        "0.25",
        " 30 ",
        "1e3",
        "+5",
        "30s",
        "250ms",
        "2m",
        "1h",
        "1d",
        "1w",
        "10us",
        "10ns",
        "1h 30m",
        "1h30m",
        "2 minutes",
        "1.5s",
        "1.5 s",
        "0.5h",
        "2.5min",
        "1.5ms",
        "0.5d",
        "1.5 hours",
        ".5s",
        "5.s",
        "0s",
        "0.0s",
    ];

    /// Texts both must refuse, with the same message.
    const REFUSED: &[&str] = &[
        "",
        "   ",
        "soon",
        "3 parsecs",
        "1.5 parsecs",
        "-1",
        "-1s",
        "-0.5s",
        "s",
        "NaN",
        "inf",
        "1..5s",
        "1.5s 2m",
        "1.5w",
        "1,5s",
        "1e30",
        "18446744073709551616s",
        "1h -30m",
        "30 s s",
    ];

    #[test]
    fn the_runtime_reads_durations_as_the_macro_does() {
        for text in ACCEPTED {
            let here = parse(text);
            assert!(here.is_ok(), "{text:?}: {here:?}");
            assert_eq!(here, flux::__private::parse_duration(text), "{text:?}");
        }
        for text in REFUSED {
            let here = parse(text);
            assert!(here.is_err(), "{text:?}: {here:?}");
            assert_eq!(here, flux::__private::parse_duration(text), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        for bad in ["3 parsecs", "", "-1", "1.5 parsecs", "s", "NaN"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }
}
