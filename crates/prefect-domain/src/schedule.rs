//! Deployment schedules: interval, cron and RRule, and the dates each produces.
//!
//! Wire shapes, validation messages and `get_dates` follow Prefect 3.9.1's
//! `prefect/server/schemas/schedules.py` as it runs on Python 3.11/3.12 (the
//! pendulum code path for intervals). The golden tests in
//! `tests/golden/schedules.json` were produced by that code.
//!
//! Every schedule computes in its own time zone, and the three kinds resolve
//! local times that don't exist or happen twice differently, because Prefect uses
//! a different datetime library for each:
//!
//! | kind | skipped local time (spring forward) | repeated local time (fall back) |
//! |---|---|---|
//! | interval (pendulum) | moved forward by the gap | the later one (standard time) |
//! | cron (whenever, "compatible") | moved forward by the gap | the earlier one |
//! | rrule (dateutil) | read with the offset after the change | the earlier one |
//!
//! ```
//! use prefect_domain::schedule::Schedule;
//!
//! let schedule: Schedule = serde_json::from_str(r#"{"cron": "0 9 * * *", "timezone": "America/New_York"}"#).unwrap();
//! let schedule = schedule.validated().unwrap();
//! let start = "2026-03-07T00:00:00Z".parse().unwrap();
//! let dates = schedule.get_dates(Some(2), start, None);
//! assert_eq!(dates[0].to_rfc3339(), "2026-03-07T14:00:00+00:00");
//! assert_eq!(dates[1].to_rfc3339(), "2026-03-08T13:00:00+00:00");
//! ```

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// At most this many candidate dates are examined after the first one.
pub const MAX_ITERATIONS: usize = 1000;
/// Longest accepted RRule string (about a year of RDATEs plus room).
pub const MAX_RRULE_LENGTH: usize = 6500;

/// Any of Prefect's schedule kinds (`SCHEDULE_TYPES`), told apart by their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Schedule {
    Interval(IntervalSchedule),
    Cron(CronSchedule),
    RRule(RRuleSchedule),
}

/// Runs every `interval`, counted from `anchor_date`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IntervalSchedule {
    /// Seconds (a float on the wire); ISO 8601 (`PT1H`) and `[D day[s], ]HH:MM:SS` strings are accepted too.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub interval: Interval,
    /// Defaults to the time the schedule was read. The offset given is kept on the wire.
    #[serde(default = "anchor_now", serialize_with = "ser_anchor", deserialize_with = "de_anchor")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub anchor_date: DateTime<FixedOffset>,
    /// IANA name; inferred as `UTC` when absent (an offset never names a zone).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Runs at the times a cron expression matches, read in `timezone` (UTC if absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CronSchedule {
    pub cron: String,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Day-of-month and day-of-week restrictions combine with OR (cron) rather than AND (fcron).
    #[serde(default = "yes")]
    pub day_or: bool,
}

/// Runs at the occurrences of an RFC 5545 recurrence rule (dateutil's dialect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RRuleSchedule {
    pub rrule: String,
    #[serde(default = "utc_name")]
    pub timezone: Option<String>,
}

fn yes() -> bool {
    true
}

fn utc_name() -> Option<String> {
    Some("UTC".to_owned())
}

fn anchor_now() -> DateTime<FixedOffset> {
    crate::time::now().fixed_offset()
}

/// A positive duration, kept in microseconds like Python's `timedelta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(i64);

impl Interval {
    /// A duration from whole microseconds.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Whole microseconds.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// As a chrono duration.
    pub fn as_delta(self) -> TimeDelta {
        TimeDelta::microseconds(self.0)
    }

    /// Seconds as Python's `timedelta.total_seconds()`.
    pub fn total_seconds(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Python's `timedelta.days`/remainder split: whole days (floored) and the rest.
    fn days_and_rest(self) -> (i64, i64) {
        (self.0.div_euclid(DAY_MICROS), self.0.rem_euclid(DAY_MICROS))
    }
}

const DAY_MICROS: i64 = 86_400_000_000;

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.total_seconds())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(deserializer)? {
            // pydantic rounds float seconds to the microsecond
            serde_json::Value::Number(n) => {
                let secs = n.as_f64().ok_or_else(|| D::Error::custom("Input should be a valid timedelta"))?;
                Ok(Self((secs * 1e6).round() as i64))
            }
            serde_json::Value::Bool(b) => Ok(Self(if b { 1_000_000 } else { 0 })),
            serde_json::Value::String(s) => parse_duration(&s).map(Self).ok_or_else(|| D::Error::custom("Input should be a valid timedelta")),
            _ => Err(D::Error::custom("Input should be a valid timedelta")),
        }
    }
}

/// Parses the string forms pydantic accepts for a `timedelta`: ISO 8601 (`P1DT2H`,
/// with pydantic's 365-day years and 30-day months), `[-]HH:MM:SS[.f]` optionally
/// preceded by `N day[s][,]`, and `Nd`.
fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('P').or_else(|| s.strip_prefix('p')) {
        return parse_iso_duration(rest);
    }
    let (days, clock) = match s.find(['d', 'D']) {
        Some(i) => {
            let days: i64 = s[..i].trim().parse().ok()?;
            let rest = s[i..].trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim_start_matches(',').trim();
            (days, rest)
        }
        None => (0, s),
    };
    let mut micros = days.checked_mul(DAY_MICROS)?;
    if !clock.is_empty() {
        let parts: Vec<&str> = clock.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let hours: i64 = parts[0].parse().ok()?;
        let minutes: i64 = parts[1].parse().ok()?;
        let seconds: f64 = parts.get(2).map_or(Some(0.0), |p| p.parse().ok())?;
        micros += hours * 3_600_000_000 + minutes * 60_000_000 + (seconds * 1e6).round() as i64;
    }
    Some(micros)
}

fn parse_iso_duration(s: &str) -> Option<i64> {
    let mut micros = 0i64;
    let mut in_time = false;
    let mut number = String::new();
    let mut seen = false;
    for c in s.chars() {
        match c {
            'T' | 't' => in_time = true,
            '0'..='9' | '.' => number.push(c),
            _ => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let unit = match (in_time, c.to_ascii_uppercase()) {
                    (false, 'Y') => 365.0 * 86_400.0,
                    (false, 'M') => 30.0 * 86_400.0,
                    (false, 'W') => 7.0 * 86_400.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
                micros += (value * unit * 1e6).round() as i64;
                seen = true;
            }
        }
    }
    (seen && number.is_empty()).then_some(micros)
}

/// pydantic's datetime output: `Z` for UTC, microseconds only when present.
fn ser_anchor<S: Serializer>(anchor: &DateTime<FixedOffset>, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    let text = if anchor.offset().local_minus_utc() == 0 {
        anchor.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    } else {
        anchor.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    };
    // AutoSi picks 3, 6 or 9 digits; pydantic always writes 6 when there is a fraction.
    serializer.serialize_str(&six_digit_fraction(&text))
}

fn six_digit_fraction(text: &str) -> String {
    let Some(dot) = text.find('.') else {
        return text.to_owned();
    };
    let end = text[dot + 1..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |i| dot + 1 + i);
    let mut digits = text[dot + 1..end].to_owned();
    digits.truncate(6);
    while digits.len() < 6 {
        digits.push('0');
    }
    format!("{}.{}{}", &text[..dot], digits, &text[end..])
}

/// Accepts RFC 3339 (with `T` or a space, seconds optional), a bare date, a
/// naive date-time (read as UTC, as Prefect does) or Unix seconds.
fn de_anchor<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<DateTime<FixedOffset>, D::Error> {
    use serde::de::Error as _;
    let value = serde_json::Value::deserialize(deserializer)?;
    let parsed = match &value {
        serde_json::Value::String(s) => parse_anchor(s),
        serde_json::Value::Number(n) => n.as_f64().and_then(|secs| DateTime::from_timestamp_micros((secs * 1e6).round() as i64)).map(|d| d.fixed_offset()),
        _ => None,
    };
    parsed
        .map(|d| crate::time::truncate(d.with_timezone(&Utc)).with_timezone(d.offset()))
        .ok_or_else(|| D::Error::custom(format!("Value error, Unable to parse string [{}]", value.as_str().unwrap_or_default())))
}

fn parse_anchor(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    let normalized = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&normalized) {
        return Some(d);
    }
    for format in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(&normalized.replace('Z', "+00:00"), format) {
            return Some(d);
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&normalized, format) {
            return Some(d.and_utc().fixed_offset());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().fixed_offset())
}

// ---------------------------------------------------------------------------
// Validation

impl Schedule {
    /// Checks Prefect's rules and fills the defaults its validators fill
    /// (an interval schedule's timezone). Errors name the field as Prefect does.
    pub fn validated(self) -> Result<Self> {
        Ok(match self {
            Self::Interval(s) => Self::Interval(s.validated()?),
            Self::Cron(s) => Self::Cron(s.validated()?),
            Self::RRule(s) => Self::RRule(s.validated()?),
        })
    }

    /// The dates the schedule produces; see [`IntervalSchedule::get_dates`].
    pub fn get_dates(&self, n: Option<usize>, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        match self {
            Self::Interval(s) => s.get_dates(n, start, end),
            Self::Cron(s) => s.get_dates(n, start, end),
            Self::RRule(s) => s.get_dates(n, start, end),
        }
    }
}

/// Is `name` one of the IANA zones Prefect lists (`zoneinfo.available_timezones()`)?
fn is_known_timezone(name: &str) -> bool {
    Tz::from_str(name).is_ok()
}

fn invalid_timezone(name: &str) -> Error {
    // Prefect raises this from a model validator, so pydantic reports no field.
    Error::invalid("", format!(r#"Value error, Invalid timezone: "{name}" (specify in IANA tzdata format, for example, America/New_York)"#))
}

impl IntervalSchedule {
    /// Interval must be positive; timezone must be an IANA name (an empty string passes,
    /// as in Prefect) and defaults to `UTC`.
    pub fn validated(mut self) -> Result<Self> {
        if self.interval.0 <= 0 {
            return Err(Error::invalid("interval", "Value error, interval must be positive"));
        }
        match &self.timezone {
            Some(tz) if !tz.is_empty() && !is_known_timezone(tz) => {
                return Err(invalid_timezone(tz));
            }
            Some(_) => {}
            None => self.timezone = Some("UTC".to_owned()),
        }
        Ok(self)
    }
}

impl CronSchedule {
    /// The expression must parse as croniter would, without its random (`R`) and hashed (`H`) forms.
    pub fn validated(self) -> Result<Self> {
        if parse_cron(&self.cron, self.day_or).is_none() {
            return Err(Error::invalid("cron", format!(r#"Value error, Invalid cron string: "{}""#, self.cron)));
        }
        if let Some(tz) = &self.timezone
            && !tz.is_empty()
            && !is_known_timezone(tz)
        {
            return Err(invalid_timezone(tz));
        }
        Ok(self)
    }
}

impl RRuleSchedule {
    /// The rule must parse and be at most [`MAX_RRULE_LENGTH`] characters.
    pub fn validated(self) -> Result<Self> {
        if let Err(reason) = RuleText::parse(&self.rrule).and_then(|text| text.check_until(false)).and_then(|text| text.build().map(|_| ())) {
            return Err(Error::invalid("rrule", format!(r#"Value error, Invalid RRule string "{}": {reason}"#, self.rrule)));
        }
        let length = self.rrule.chars().count();
        if length > MAX_RRULE_LENGTH {
            let head: String = self.rrule.chars().take(40).collect();
            return Err(Error::invalid("rrule", format!("Value error, Invalid RRule string \"{head}...\"\nMax length is {MAX_RRULE_LENGTH}, got {length}")));
        }
        // Prefect's `TimeZone` is a pattern alternation of every zone name, searched
        // unanchored, so any string containing a zone name passes (and fails later).
        if let Some(tz) = &self.timezone
            && !chrono_tz::TZ_VARIANTS.iter().any(|z| tz.contains(z.name()))
        {
            return Err(Error::invalid("timezone", "String should match pattern of IANA time zone names"));
        }
        Ok(self)
    }
}

// ---------------------------------------------------------------------------
// Local time helpers

fn zone(name: Option<&str>) -> Option<Tz> {
    match name {
        None | Some("") => Some(Tz::UTC),
        Some(name) => Tz::from_str(name).ok(),
    }
}

/// The UTC offsets in force just before and just after a local time, used when
/// that time falls in a gap. Transitions are never closer than a day apart.
fn offsets_around(tz: Tz, wall: NaiveDateTime) -> (FixedOffset, FixedOffset) {
    let before = tz.offset_from_utc_datetime(&(wall - TimeDelta::days(1))).fix();
    let after = tz.offset_from_utc_datetime(&(wall + TimeDelta::days(1))).fix();
    (before, after)
}

fn at_offset(tz: Tz, wall: NaiveDateTime, offset: FixedOffset) -> DateTime<Tz> {
    tz.from_utc_datetime(&(wall - TimeDelta::seconds(offset.local_minus_utc().into())))
}

/// How a local time that is skipped or repeated becomes an instant.
#[derive(Clone, Copy)]
enum Resolve {
    /// pendulum: gaps move forward, repeated times take the later offset.
    Pendulum,
    /// whenever's "compatible": gaps move forward, repeated times take the earlier offset.
    Compatible,
    /// dateutil: gaps read with the offset after the change, repeated times take the earlier one.
    Dateutil,
}

fn localize(tz: Tz, wall: NaiveDateTime, how: Resolve) -> DateTime<Tz> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(d) => d,
        LocalResult::Ambiguous(early, late) => match how {
            Resolve::Pendulum => late,
            Resolve::Compatible | Resolve::Dateutil => early,
        },
        LocalResult::None => {
            let (before, after) = offsets_around(tz, wall);
            match how {
                Resolve::Pendulum | Resolve::Compatible => at_offset(tz, wall, before),
                Resolve::Dateutil => at_offset(tz, wall, after),
            }
        }
    }
}

fn default_n(n: Option<usize>, end: Option<DateTime<Utc>>) -> usize {
    // With an end, return everything up to it (bounded by MAX_ITERATIONS); else one date.
    n.unwrap_or(if end.is_some() { MAX_ITERATIONS } else { 1 })
}

// ---------------------------------------------------------------------------
// Interval

impl IntervalSchedule {
    /// Up to `n` dates on or after `start` and not after `end`, sorted. `n`
    /// defaults to 1, or to [`MAX_ITERATIONS`] when `end` is given; at most
    /// `MAX_ITERATIONS + 2` candidates are examined.
    ///
    /// Intervals of whole days keep the anchor's wall-clock time across DST
    /// changes; shorter ones step in elapsed time. As in pendulum, dates compare
    /// by wall-clock time in the schedule's zone, so an hourly schedule yields the
    /// repeated hour of a fall-back night once.
    pub fn get_dates(&self, n: Option<usize>, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        let Some(tz) = zone(self.timezone.as_deref()) else {
            return Vec::new();
        };
        let is_utc = matches!(self.timezone.as_deref(), Some("UTC"));
        let n = default_n(n, end);
        let anchor = self.anchor_date.with_timezone(&tz);
        let start = start.with_timezone(&tz);
        let end = end.map(|e| e.with_timezone(&tz));
        let wall = |d: &DateTime<Tz>| d.naive_local();
        let (days, rest) = self.interval.days_and_rest();
        let total = self.interval.0;

        // pendulum's add(): with a day component the sum is taken on the wall clock and localized;
        // without one it is exact elapsed time.
        let add = |d: &DateTime<Tz>, add_days: i64, add_micros: i64| -> DateTime<Tz> {
            if add_days == 0 {
                d.checked_add_signed(TimeDelta::microseconds(add_micros)).unwrap_or(*d)
            } else {
                let shifted = d.naive_local() + TimeDelta::days(add_days) + TimeDelta::microseconds(add_micros);
                localize(tz, shifted, Resolve::Pendulum)
            }
        };
        let jump = |k: i64| -> DateTime<Tz> { if days == 0 || rest == 0 { add(&anchor, days * k, rest * k) } else { add(&anchor, 0, total * k) } };

        let mut offset: i64 = 0;
        let mut next = if wall(&start) >= wall(&anchor) && days != 0 && rest == 0 && !is_utc {
            // Stepping day by day can move the wall-clock time for good at a DST gap,
            // so walk from the anchor rather than jumping.
            seek_days(anchor, start, days, |d, k| add(d, days * k, 0))
        } else {
            let elapsed = (start - anchor).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
            offset = (elapsed / self.interval.total_seconds()) as i64;
            let mut next = jump(offset);
            while wall(&next) > wall(&start) {
                offset -= 1;
                next = jump(offset);
            }
            next
        };
        let before_anchor_days = wall(&start) < wall(&anchor) && days != 0 && rest == 0;
        let step = |d: &DateTime<Tz>, offset: &mut i64| -> DateTime<Tz> {
            if before_anchor_days && *offset < 0 {
                *offset += 1;
                jump(*offset)
            } else {
                add(d, days, rest)
            }
        };
        while wall(&next) < wall(&start) {
            next = step(&next, &mut offset);
        }

        let mut seen = HashSet::new();
        let mut dates = Vec::new();
        let mut counter = 0;
        loop {
            if end.is_some_and(|e| wall(&next) > wall(&e)) {
                break;
            }
            if seen.insert(wall(&next)) {
                dates.push(next.with_timezone(&Utc));
            }
            if seen.len() >= n || counter > MAX_ITERATIONS {
                break;
            }
            counter += 1;
            next = step(&next, &mut offset);
        }
        dates.sort();
        dates
    }
}

/// Steps `anchor` forward by whole-day intervals until it is at or after `start`,
/// jumping over the stretches between DST transitions in one addition. Equal to
/// stepping one interval at a time, which is what Prefect's seek preserves.
fn seek_days(anchor: DateTime<Tz>, start: DateTime<Tz>, days: i64, advance: impl Fn(&DateTime<Tz>, i64) -> DateTime<Tz>) -> DateTime<Tz> {
    let mut current = anchor;
    while current.timestamp_micros() < start.timestamp_micros() {
        let boundary = next_transition(current, start).unwrap_or(start);
        let span = (boundary.date_naive() - current.date_naive()).num_days();
        let count = (span.div_euclid(days) - 1).max(1);
        current = advance(&current, count);
    }
    current
}

/// The first instant after `from` (and before `until`) where the zone's offset
/// changes, as a local time just after the change.
fn next_transition(from: DateTime<Tz>, until: DateTime<Tz>) -> Option<DateTime<Tz>> {
    let tz = from.timezone();
    let offset_at = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut lo = from.with_timezone(&Utc);
    let initial = offset_at(lo);
    let limit = until.with_timezone(&Utc);
    // Daily probes find the day; transitions are never less than a day apart.
    let mut hi = lo;
    loop {
        if hi >= limit {
            return None;
        }
        hi = (hi + TimeDelta::days(1)).min(limit);
        if offset_at(hi) != initial {
            break;
        }
        lo = hi;
    }
    while hi - lo > TimeDelta::seconds(1) {
        let mid = lo + (hi - lo) / 2;
        if offset_at(mid) == initial {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi.with_timezone(&tz))
}

// ---------------------------------------------------------------------------
// Cron

/// Parses croniter's grammar with croner: five fields, or six/seven where
/// croniter puts seconds sixth (croner wants them first) and the year seventh.
fn parse_cron(expression: &str, day_or: bool) -> Option<croner::Cron> {
    use croner::parser::{CronParser, Seconds, Year};
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.iter().any(|f| f.eq_ignore_ascii_case("r") || f.eq_ignore_ascii_case("h")) {
        return None;
    }
    let pattern = match fields.as_slice() {
        [nickname] if nickname.starts_with('@') => (*nickname).to_owned(),
        [_, _, _, _, _] => format!("0 {}", fields.join(" ")),
        [m, h, dom, mon, dow, s] => format!("{s} {m} {h} {dom} {mon} {dow}"),
        [m, h, dom, mon, dow, s, y] => format!("{s} {m} {h} {dom} {mon} {dow} {y}"),
        _ => return None,
    };
    CronParser::builder().seconds(Seconds::Required).year(Year::Optional).dom_and_dow(!day_or).build().parse(&pattern).ok()
}

/// Wall-clock times are fed to croner as UTC values so that it never applies DST itself.
fn cron_next(cron: &croner::Cron, after: NaiveDateTime) -> Option<NaiveDateTime> {
    cron.find_next_occurrence(&after.and_utc(), false).ok().map(|d| d.naive_utc())
}

impl CronSchedule {
    /// Up to `n` dates on or after `start` and not after `end`, sorted, with
    /// croniter's matching on the wall clock of the schedule's zone. A time skipped
    /// by DST runs just after the change (or, when `start` lies inside the change,
    /// right away); a repeated time runs once, the first time.
    pub fn get_dates(&self, n: Option<usize>, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        let (Some(tz), Some(cron)) = (zone(self.timezone.as_deref()), parse_cron(&self.cron, self.day_or)) else {
            return Vec::new();
        };
        let n = default_n(n, end);
        let local_start = start.with_timezone(&tz);
        let start_wall = local_start.naive_local();
        // croniter returns matches strictly after this; one second back includes `start`.
        let mut seek_from = start_wall - TimeDelta::seconds(1);
        if start.timestamp_subsec_micros() > 0 {
            seek_from += TimeDelta::seconds(1);
        }
        let mut lookback: Vec<DateTime<Tz>> = Vec::new();
        if let Some((at, gap)) = last_transition(tz, start + TimeDelta::seconds(1)) {
            let since = (start - at).num_seconds();
            let after_wall = at.with_timezone(&tz).naive_local();
            if gap < 0 && (0..-gap).contains(&since) {
                // Inside a repeated hour: its wall times were already used the first time round.
                seek_from = after_wall - TimeDelta::seconds(gap) - TimeDelta::seconds(1);
            } else if gap > 0 && (0..gap).contains(&since) {
                // Just after a skipped hour: times that fell in it are due now.
                let mut wall = seek_from - TimeDelta::seconds(gap);
                while let Some(t) = cron_next(&cron, wall).filter(|t| *t < after_wall) {
                    lookback.push(localize(tz, t, Resolve::Compatible));
                    wall = t;
                }
            }
        }

        let mut seen = HashSet::new();
        let mut dates = Vec::new();
        let mut lookback = lookback.into_iter().peekable();
        // The cron cursor stays on wall-clock matches; localizing may move a gap time.
        let mut cursor = seek_from;
        let mut pending = cron_next(&cron, cursor);
        for _ in 0..MAX_ITERATIONS + 2 {
            let main = pending.map(|t| localize(tz, t, Resolve::Compatible));
            // Merge the look-back candidates with the main sequence by instant.
            let candidate = match (lookback.peek(), main) {
                (Some(l), Some(m)) if *l <= m => lookback.next(),
                (Some(_), None) => lookback.next(),
                (_, Some(m)) => {
                    if let Some(t) = pending {
                        cursor = t;
                    }
                    pending = cron_next(&cron, cursor);
                    Some(m)
                }
                (None, None) => None,
            };
            let Some(candidate) = candidate else { break };
            let instant = candidate.with_timezone(&Utc);
            if end.is_some_and(|e| instant > e) {
                break;
            }
            if instant >= start && seen.insert(instant) {
                dates.push(instant);
            }
            if seen.len() >= n {
                break;
            }
        }
        dates.sort();
        dates
    }
}

/// The latest offset change strictly before `before`, and its size in seconds
/// (positive when clocks go forward).
fn last_transition(tz: Tz, before: DateTime<Utc>) -> Option<(DateTime<Utc>, i64)> {
    let offset_at = |t: DateTime<Utc>| i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc());
    let now_offset = offset_at(before - TimeDelta::seconds(1));
    let mut hi = before - TimeDelta::seconds(1);
    let mut lo = hi;
    // Only a change within the last day can matter here (gaps are at most a few hours).
    for _ in 0..2 {
        lo -= TimeDelta::hours(12);
        if offset_at(lo) != now_offset {
            while hi - lo > TimeDelta::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(mid) == now_offset {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            return Some((hi, now_offset - offset_at(lo)));
        }
        hi = lo;
    }
    None
}

// ---------------------------------------------------------------------------
// RRule

/// An rrule string split into dateutil's lines, with every date-time reduced to
/// its wall-clock digits: Prefect relabels all of them with the schedule's zone.
struct RuleText {
    dtstart: Option<(NaiveDateTime, bool)>,
    /// (name, value) for RRULE / EXRULE / RDATE / EXDATE.
    lines: Vec<(String, String)>,
}

fn parse_ical_datetime(value: &str) -> std::result::Result<(NaiveDateTime, bool), String> {
    let aware = value.ends_with('Z');
    let digits = value.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(digits, "%Y%m%dT%H%M%S")
        .or_else(|_| NaiveDate::parse_from_str(digits, "%Y%m%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()))
        .map(|d| (d, aware))
        .map_err(|_| format!("unknown string format: {value}"))
}

fn wall_digits(wall: NaiveDateTime) -> String {
    wall.format("%Y%m%dT%H%M%SZ").to_string()
}

impl RuleText {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let upper = text.to_uppercase();
        let raw: Vec<&str> = upper.split_whitespace().collect();
        if raw.is_empty() {
            return Err("empty string".to_owned());
        }
        let mut dtstart = None;
        let mut lines = Vec::new();
        for line in &raw {
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value),
                None if raw.len() == 1 => ("RRULE", *line),
                None => return Err(format!("unsupported property: {line}")),
            };
            let (name, params) = name.split_once(';').map_or((name, ""), |(n, p)| (n, p));
            match name {
                "DTSTART" => {
                    let (wall, aware) = parse_ical_datetime(value)?;
                    dtstart = Some((wall, aware || params.contains("TZID=")));
                }
                "RRULE" | "EXRULE" => lines.push((name.to_owned(), value.to_owned())),
                "RDATE" | "EXDATE" => {
                    for v in value.split(',') {
                        let (wall, _) = parse_ical_datetime(v)?;
                        lines.push((name.to_owned(), wall_digits(wall)));
                    }
                }
                other => return Err(format!("unsupported property: {other}")),
            }
        }
        for (name, value) in &lines {
            if name == "RRULE" || name == "EXRULE" {
                for part in value.split(';') {
                    if !part.contains('=') {
                        return Err("not enough values to unpack (expected 2, got 1)".to_owned());
                    }
                }
            }
        }
        Ok(Self { dtstart, lines })
    }

    /// dateutil refuses an UNTIL whose "awareness" differs from DTSTART's. With no
    /// DTSTART, validation adopts UNTIL's, while expansion uses a floating 2020-01-01.
    fn check_until(self, expanding: bool) -> std::result::Result<Self, String> {
        let dtstart_aware = match self.dtstart {
            Some((_, aware)) => Some(aware),
            None => expanding.then_some(false),
        };
        if let Some(dtstart_aware) = dtstart_aware {
            for (name, value) in &self.lines {
                if name != "RRULE" && name != "EXRULE" {
                    continue;
                }
                if let Some(until) = value.split(';').find_map(|p| p.strip_prefix("UNTIL="))
                    && until.ends_with('Z') != dtstart_aware
                {
                    return Err("RRULE UNTIL values must be specified in UTC when DTSTART is timezone-aware".to_owned());
                }
            }
        }
        Ok(self)
    }

    /// The crate's rule set over wall-clock times (all labelled UTC), plus the
    /// UNTIL of a lone RRULE that also has a COUNT (dateutil honours both; the
    /// crate refuses the pair, so that bound is applied by the caller).
    fn build(&self) -> std::result::Result<(rrule::RRuleSet, Option<NaiveDateTime>), String> {
        let dtstart = self.dtstart.map_or_else(|| NaiveDate::from_ymd_opt(2020, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default(), |(w, _)| w);
        let mut text = format!("DTSTART:{}", wall_digits(dtstart));
        let mut extra_until = None;
        let rules = self.lines.iter().filter(|(n, _)| n == "RRULE").count();
        for (name, value) in &self.lines {
            let value = if name == "RRULE" || name == "EXRULE" {
                let has_count = value.split(';').any(|p| p.starts_with("COUNT="));
                let mut parts = Vec::new();
                for part in value.split(';').filter(|p| !p.is_empty()) {
                    if let Some(until) = part.strip_prefix("UNTIL=") {
                        let (wall, _) = parse_ical_datetime(until)?;
                        if has_count {
                            if rules > 1 || name == "EXRULE" {
                                return Err("COUNT and UNTIL together are only supported on a single RRULE".to_owned());
                            }
                            extra_until = Some(wall);
                            continue;
                        }
                        parts.push(format!("UNTIL={}", wall_digits(wall)));
                    } else {
                        parts.push(part.to_owned());
                    }
                }
                parts.join(";")
            } else {
                value.clone()
            };
            text.push_str(&format!("\n{name}:{value}"));
        }
        let set: rrule::RRuleSet = text.parse().map_err(|e: rrule::RRuleError| e.to_string())?;
        Ok((set, extra_until))
    }
}

impl RRuleSchedule {
    /// Up to `n` occurrences on or after `start` and not after `end`, sorted. The
    /// rule's DTSTART (2020-01-01T00:00 when absent), UNTIL, RDATE and EXDATE are
    /// read as wall-clock times in the schedule's zone, whatever zone they name.
    /// Returns nothing for a rule Prefect accepts but cannot expand (a `Z` UNTIL
    /// without DTSTART, an unknown zone), where Prefect raises.
    pub fn get_dates(&self, n: Option<usize>, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        let Some(tz) = self.timezone.as_deref().and_then(|name| Tz::from_str(name).ok()) else {
            return Vec::new();
        };
        let Ok((set, extra_until)) = RuleText::parse(&self.rrule).and_then(|t| t.check_until(true)).and_then(|t| t.build()) else {
            return Vec::new();
        };
        let n = default_n(n, end);
        // Occurrences are generated in wall-clock order; a few hours of slack
        // covers any offset difference between a wall time and `start`.
        let from_wall = start.with_timezone(&tz).naive_local() - TimeDelta::hours(30);
        let mut seen = HashSet::new();
        let mut dates = Vec::new();
        let mut counter = 0;
        for wall in set.into_iter().map(|d| d.naive_utc()) {
            if extra_until.is_some_and(|u| wall > u) {
                break;
            }
            if wall < from_wall {
                continue;
            }
            let local = localize(tz, wall, Resolve::Dateutil);
            let instant = local.with_timezone(&Utc);
            if instant < start {
                continue;
            }
            if end.is_some_and(|e| instant > e) {
                break;
            }
            // ZoneInfo datetimes compare by wall clock, so a repeated hour counts once.
            if seen.insert(local.naive_local()) {
                dates.push(instant);
            }
            if seen.len() >= n || counter > MAX_ITERATIONS {
                break;
            }
            counter += 1;
        }
        dates.sort();
        dates
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn read(json: &str) -> Result<Schedule> {
        serde_json::from_str::<Schedule>(json).map_err(|e| Error::invalid("body", e.to_string()))?.validated()
    }

    #[test]
    fn untagged_union_picks_the_kind_by_fields() {
        assert!(matches!(read(r#"{"interval": 60}"#).unwrap(), Schedule::Interval(_)));
        assert!(matches!(read(r#"{"cron": "* * * * *"}"#).unwrap(), Schedule::Cron(_)));
        assert!(matches!(read(r#"{"rrule": "FREQ=DAILY"}"#).unwrap(), Schedule::RRule(_)));
        assert!(serde_json::from_str::<Schedule>(r#"{"cron": "* * * * *", "interval": 5}"#).is_err());
    }

    #[test]
    fn interval_validation_messages() {
        for body in [r#"{"interval": 0}"#, r#"{"interval": -5}"#, r#"{"interval": 1e-7}"#] {
            assert_eq!(read(body).unwrap_err(), Error::invalid("interval", "Value error, interval must be positive"));
        }
        let err = read(r#"{"interval": 60, "timezone": "Mars/Base"}"#).unwrap_err();
        assert_eq!(err.to_string(), r#": Value error, Invalid timezone: "Mars/Base" (specify in IANA tzdata format, for example, America/New_York)"#);
        assert!(read(r#"{"interval": "PT-1H"}"#).is_err());
        assert!(read(r#"{"interval": "3600"}"#).is_err());
    }

    #[test]
    fn interval_string_forms() {
        for (text, secs) in [
            ("PT1H", 3600.0),
            ("P1D", 86400.0),
            ("P1W", 604800.0),
            ("PT0.5S", 0.5),
            ("01:00:00", 3600.0),
            ("1 day, 1:00:00", 90000.0),
            ("P1Y", 31536000.0),
            ("P1M", 2592000.0),
            ("PT1H30M15.5S", 5415.5),
            ("1d", 86400.0),
        ] {
            let Schedule::Interval(s) = read(&format!(r#"{{"interval": "{text}"}}"#)).unwrap() else { panic!() };
            assert_eq!(s.interval.total_seconds(), secs, "{text}");
        }
    }

    #[test]
    fn cron_validation_messages() {
        for bad in ["* * * *", "61 * * * *", "H * * * *", "*/0 * * * *", "0 0 * * 8"] {
            let err = read(&format!(r#"{{"cron": "{bad}"}}"#)).unwrap_err();
            assert_eq!(err, Error::invalid("cron", format!(r#"Value error, Invalid cron string: "{bad}""#)), "{bad}");
        }
        for good in [
            "0 0 * * * 30",
            "@daily",
            "@hourly",
            "0 0 L * *",
            "0 0 * * MON#2",
            "0 0 ? * *",
            "0 0 * * 7",
            "0 0 31 2 *",
            "0 0 * JAN-MAR *",
            "0 0 * * sun-sat",
            "0 0 1,15 * 1-5/2",
        ] {
            read(&format!(r#"{{"cron": "{good}"}}"#)).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        assert!(read(r#"{"cron": "0 0 * * *", "timezone": "Nope"}"#).is_err());
        assert!(read(r#"{"cron": "0 0 * * *", "timezone": "EST"}"#).is_ok());
    }

    #[test]
    fn six_field_cron_puts_seconds_last() {
        let s = read(r#"{"cron": "0 0 * * * 30"}"#).unwrap();
        let dates = s.get_dates(Some(2), utc("2026-01-01T00:00:00Z"), None);
        assert_eq!(dates, vec![utc("2026-01-01T00:00:30Z"), utc("2026-01-02T00:00:30Z")]);
    }

    #[test]
    fn rrule_validation_messages() {
        let err = read(r#"{"rrule": "FREQ=FOO"}"#).unwrap_err();
        assert!(err.to_string().starts_with(r#"rrule: Value error, Invalid RRule string "FREQ=FOO": "#), "{err}");
        let err = read(r#"{"rrule": ""}"#).unwrap_err();
        assert_eq!(err, Error::invalid("rrule", r#"Value error, Invalid RRule string "": empty string"#));
        let err = read(r#"{"rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY;UNTIL=20260105T000000Z"}"#).unwrap_err();
        assert!(err.to_string().ends_with("RRULE UNTIL values must be specified in UTC when DTSTART is timezone-aware"), "{err}");
        let long = format!("RRULE:FREQ=DAILY{}", "\nRDATE:20260101T000000".repeat(500));
        let err = read(&serde_json::json!({ "rrule": long }).to_string()).unwrap_err();
        assert_eq!(err, Error::invalid("rrule", format!("Value error, Invalid RRule string \"{}...\"\nMax length is 6500, got {}", &long[..40], long.len())));
        assert!(read(r#"{"rrule": "FREQ=DAILY", "timezone": "Nope"}"#).is_err());
        // Prefect's pattern is searched, not matched, so this passes validation.
        assert!(read(r#"{"rrule": "FREQ=DAILY", "timezone": "xxUTCxx"}"#).is_ok());
        // COUNT with UNTIL is accepted, as dateutil does.
        assert!(read(r#"{"rrule": "FREQ=DAILY;COUNT=3;UNTIL=20260101T000000"}"#).is_ok());
    }

    #[test]
    fn serialized_shapes_match_prefect() {
        let cases = [
            (
                r#"{"interval": 86400, "anchor_date": "2026-03-07T07:30:00Z", "timezone": "America/New_York"}"#,
                r#"{"interval":86400.0,"anchor_date":"2026-03-07T07:30:00Z","timezone":"America/New_York"}"#,
            ),
            (
                r#"{"interval": "P1DT1H", "anchor_date": "2026-01-01T00:00:00-05:00"}"#,
                r#"{"interval":90000.0,"anchor_date":"2026-01-01T00:00:00-05:00","timezone":"UTC"}"#,
            ),
            (r#"{"interval": 90.5, "anchor_date": "2026-01-01T00:00:00"}"#, r#"{"interval":90.5,"anchor_date":"2026-01-01T00:00:00Z","timezone":"UTC"}"#),
            (r#"{"interval": 60, "anchor_date": "2026-01-01T00:00:00+00:00"}"#, r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00Z","timezone":"UTC"}"#),
            (
                r#"{"interval": 60, "anchor_date": "2026-01-01T00:00:00.123456789+05:30"}"#,
                r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00.123456+05:30","timezone":"UTC"}"#,
            ),
            (r#"{"interval": 60, "anchor_date": "2026-01-01"}"#, r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00Z","timezone":"UTC"}"#),
            (r#"{"interval": 60, "anchor_date": "2026-01-01 10:00"}"#, r#"{"interval":60.0,"anchor_date":"2026-01-01T10:00:00Z","timezone":"UTC"}"#),
            (
                r#"{"interval": 60, "anchor_date": "2026-01-01T00:00:00.5-04:00"}"#,
                r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00.500000-04:00","timezone":"UTC"}"#,
            ),
            (r#"{"interval": 60, "anchor_date": 1767225600}"#, r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00Z","timezone":"UTC"}"#),
            (
                r#"{"interval": 60, "anchor_date": "2026-01-01T00:00:00Z", "timezone": ""}"#,
                r#"{"interval":60.0,"anchor_date":"2026-01-01T00:00:00Z","timezone":""}"#,
            ),
            (r#"{"rrule": "FREQ=DAILY"}"#, r#"{"rrule":"FREQ=DAILY","timezone":"UTC"}"#),
            (r#"{"rrule": "FREQ=DAILY", "timezone": null}"#, r#"{"rrule":"FREQ=DAILY","timezone":null}"#),
            (r#"{"cron": "0 9 * * *"}"#, r#"{"cron":"0 9 * * *","timezone":null,"day_or":true}"#),
        ];
        for (input, expected) in cases {
            let schedule = read(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(serde_json::to_string(&schedule).unwrap(), expected, "{input}");
            let again: Schedule = serde_json::from_str(expected).unwrap();
            assert_eq!(again.validated().unwrap(), schedule, "{input}");
        }
    }

    #[test]
    fn missing_anchor_defaults_to_now() {
        let before = crate::time::now();
        let Schedule::Interval(s) = read(r#"{"interval": 60}"#).unwrap() else { panic!() };
        assert!(s.anchor_date >= before && s.anchor_date <= crate::time::now());
        assert_eq!(s.timezone.as_deref(), Some("UTC"));
    }

    #[test]
    fn default_n_is_one_without_end() {
        let s = read(r#"{"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(s.get_dates(None, utc("2026-01-01T00:30:00Z"), None), vec![utc("2026-01-01T01:00:00Z")]);
        let all = s.get_dates(None, utc("2026-01-01T00:00:00Z"), Some(utc("2026-03-01T00:00:00Z")));
        assert_eq!(all.len(), MAX_ITERATIONS);
    }
}
