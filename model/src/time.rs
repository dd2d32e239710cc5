//! Time ranges and time partitions.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

const MS_PER_DAY: i64 = 86_400_000;

/// A half-open time range `[start_ms, end_ms)` in UTC epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start_ms: i64,
    end_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("time range start ({start_ms}) is after its end ({end_ms})")]
pub struct TimeRangeError {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl TimeRange {
    pub fn new(start_ms: i64, end_ms: i64) -> Result<TimeRange, TimeRangeError> {
        if start_ms > end_ms {
            return Err(TimeRangeError { start_ms, end_ms });
        }
        Ok(TimeRange { start_ms, end_ms })
    }

    /// Everything.
    pub fn all() -> TimeRange {
        TimeRange {
            start_ms: i64::MIN,
            end_ms: i64::MAX,
        }
    }

    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    pub fn contains(&self, ts_ms: i64) -> bool {
        self.start_ms <= ts_ms && ts_ms < self.end_ms
    }

    /// Whether the partition's span overlaps this range.
    pub fn overlaps(&self, partition: PartitionKey) -> bool {
        partition.start_ms() < self.end_ms && self.start_ms < partition.end_ms()
    }
}

/// A time partition of the stores: one UTC day. Retention drops whole partitions and queries
/// open only the partitions their time range overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Days since the Unix epoch.
    day: i64,
}

impl PartitionKey {
    pub fn for_ts(ts_ms: i64) -> PartitionKey {
        PartitionKey {
            day: ts_ms.div_euclid(MS_PER_DAY),
        }
    }

    pub fn start_ms(&self) -> i64 {
        self.day.saturating_mul(MS_PER_DAY)
    }

    pub fn end_ms(&self) -> i64 {
        self.day.saturating_add(1).saturating_mul(MS_PER_DAY)
    }

    /// The directory name of the partition, e.g. `2026-11-26`.
    pub fn dir_name(&self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.start_ms()) {
            Some(t) => t.format("%Y-%m-%d").to_string(),
            None => format!("day{}", self.day),
        }
    }

    /// Parses a directory name written by [`PartitionKey::dir_name`].
    pub fn parse_dir_name(name: &str) -> Option<PartitionKey> {
        let date = NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
        let ts = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        Some(PartitionKey::for_ts(ts))
    }
}

/// Parses a duration like `500ms`, `15s`, `15m`, `2h`, `7d` (a bare number is seconds).
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Parses a time as the API takes it: RFC 3339, epoch milliseconds, `now`, or `now-15m`.
pub fn parse_time_param(s: &str, now_ms: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Some(now_ms);
        }
        if let Some(d) = rest.strip_prefix('-') {
            return parse_duration_ms(d).map(|d| now_ms - d);
        }
        if let Some(d) = rest.strip_prefix('+') {
            return parse_duration_ms(d).map(|d| now_ms + d);
        }
        return None;
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    parse_rfc3339_ms(s)
}

/// Parses an RFC 3339 timestamp into UTC epoch ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Formats UTC epoch ms as RFC 3339 with milliseconds and a `Z`.
pub fn format_ts_ms(ts_ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ts_ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ts_ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_half_open() {
        let r = TimeRange::new(10, 20).unwrap();
        assert!(r.contains(10));
        assert!(!r.contains(20));
        assert!(TimeRange::new(21, 20).is_err());
    }

    #[test]
    fn partitions_are_utc_days() {
        let ts = parse_rfc3339_ms("2026-11-26T23:59:59.999Z").unwrap();
        let p = PartitionKey::for_ts(ts);
        assert_eq!(p.dir_name(), "2026-11-26");
        assert_eq!(PartitionKey::for_ts(ts + 1).dir_name(), "2026-11-27");
        assert_eq!(PartitionKey::parse_dir_name("2026-11-26"), Some(p));
        assert_eq!(PartitionKey::for_ts(-1).dir_name(), "1969-12-31");
        let range = TimeRange::new(ts, ts + 10).unwrap();
        assert!(range.overlaps(p));
        assert!(range.overlaps(PartitionKey::for_ts(ts + 1)));
        assert!(!range.overlaps(PartitionKey::for_ts(ts + 100_000_000)));
    }

    #[test]
    fn time_params() {
        assert_eq!(parse_duration_ms("15m"), Some(900_000));
        assert_eq!(parse_duration_ms("7d"), Some(604_800_000));
        assert_eq!(parse_duration_ms("60"), Some(60_000));
        assert_eq!(parse_duration_ms("5x"), None);
        assert_eq!(parse_time_param("now-15m", 1_000_000), Some(100_000));
        assert_eq!(parse_time_param("now", 7), Some(7));
        assert_eq!(
            parse_time_param("1700000000000", 0),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_time_param("1970-01-01T00:00:01Z", 0), Some(1000));
        assert_eq!(parse_time_param("yesterday", 0), None);
    }

    #[test]
    fn rfc3339_round_trip() {
        let ts = parse_rfc3339_ms("2022-10-21T14:05:03.165+02:00").unwrap();
        assert_eq!(format_ts_ms(ts), "2022-10-21T12:05:03.165Z");
        assert_eq!(parse_rfc3339_ms("invalid"), None);
    }
}
