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

#[cfg(test)]
mod tests {
    use super::*;

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
