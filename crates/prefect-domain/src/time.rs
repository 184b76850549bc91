//! Timestamps.
//!
//! Prefect stores and compares times with microsecond precision (state
//! ordering and the unique `(run, timestamp)` index depend on it), so every
//! timestamp the server mints is truncated to whole microseconds. That also
//! keeps SQLite (RFC 3339 text) and PostgreSQL (`timestamptz`, µs) identical.

use chrono::{DurationRound, TimeDelta, Utc};

/// A UTC timestamp, the only kind used on the wire and in storage.
pub type DateTime = chrono::DateTime<Utc>;

/// The current time, truncated to microseconds.
pub fn now() -> DateTime {
    truncate(Utc::now())
}

/// Truncates a timestamp to whole microseconds.
pub fn truncate(t: DateTime) -> DateTime {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// A duration in seconds as the float Prefect puts on the wire.
pub fn seconds(delta: TimeDelta) -> f64 {
    delta.num_microseconds().map_or_else(|| delta.num_milliseconds() as f64 / 1e3, |us| us as f64 / 1e6)
}

/// A float number of seconds as a duration (negative and NaN become zero).
pub fn from_seconds(seconds: f64) -> TimeDelta {
    if !seconds.is_finite() || seconds <= 0.0 {
        return TimeDelta::zero();
    }
    TimeDelta::microseconds((seconds * 1e6).round() as i64)
}

/// A float number of seconds as a duration, keeping the sign.
pub fn from_seconds_signed(seconds: f64) -> TimeDelta {
    if !seconds.is_finite() {
        return TimeDelta::zero();
    }
    TimeDelta::microseconds((seconds * 1e6).round() as i64)
}

/// Seconds in an ISO 8601 duration of days, weeks, hours, minutes and seconds (`P1DT2H`,
/// `PT1.5S`), as Python's timedelta fields accept them; `None` if it is not one.
pub fn iso_duration_seconds(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let (days_part, time_part) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0;
    let mut number = String::new();
    for c in days_part.chars() {
        match c {
            'D' => total += std::mem::take(&mut number).parse::<f64>().ok()? * 86_400.0,
            'W' => total += std::mem::take(&mut number).parse::<f64>().ok()? * 604_800.0,
            _ => number.push(c),
        }
    }
    for c in time_part.chars() {
        match c {
            'H' => total += std::mem::take(&mut number).parse::<f64>().ok()? * 3600.0,
            'M' => total += std::mem::take(&mut number).parse::<f64>().ok()? * 60.0,
            'S' => total += std::mem::take(&mut number).parse::<f64>().ok()?,
            _ => number.push(c),
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_seconds("PT1.5S"), Some(1.5));
        assert_eq!(iso_duration_seconds("P1DT2H3M4S"), Some(86_400.0 + 7_200.0 + 180.0 + 4.0));
        assert_eq!(iso_duration_seconds("P2W"), Some(1_209_600.0));
        assert_eq!(iso_duration_seconds("3600"), None);
        assert_eq!(iso_duration_seconds("PTXS"), None);
    }

    #[test]
    fn now_has_microsecond_precision() {
        let t = now();
        assert_eq!(t.timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn seconds_round_trip() {
        assert_eq!(seconds(from_seconds(1.5)), 1.5);
        assert_eq!(from_seconds(-3.0), TimeDelta::zero());
    }
}
