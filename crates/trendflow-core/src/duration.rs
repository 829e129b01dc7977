//! Human durations as written in pipeline files: "500ms", "10s", "1 minute", "3h", "2 days".

use std::time::Duration;

/// Parses "10s", "5 minutes", "3h", "250ms", "1d". A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("`{text}` is not a duration (expected e.g. \"10s\", \"5m\", \"3h\")")
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let seconds = match unit.as_str() {
        "ms" | "millis" | "millisecond" | "milliseconds" => value / 1000.0,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => value,
        "m" | "min" | "mins" | "minute" | "minutes" => value * 60.0,
        "h" | "hour" | "hours" => value * 3600.0,
        "d" | "day" | "days" => value * 86400.0,
        "w" | "week" | "weeks" => value * 7.0 * 86400.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown duration unit `{unit}` (use ms, s, m, h, d)"
            ));
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way it is written in pipeline files.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(10800));
        assert_eq!(
            parse_duration("5 minutes").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(parse_duration("1 minute").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["3h", "5m", "10s", "250ms", "1d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
