//! Duration literals of task options: `"30s"`, `"1.5s"`, `"2m"`, `"1h 30m"`, or a number of
//! seconds (`30`, `0.25`).

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

    #[test]
    fn rejected_forms() {
        for bad in ["3 parsecs", "", "-1", "1.5 parsecs", "s", "NaN"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }
}
