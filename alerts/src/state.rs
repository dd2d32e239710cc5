//! The alarm state machine: N datapoints in, one state out, by CloudWatch alarms' rules.
//!
//! Each datapoint is breaching, not breaching or missing. Missing ones are first filled in by
//! the rule's missing-data treatment (`breaching` and `notBreaching` fill them; `missing` and
//! `ignore` leave them out). Then, with `b` breaching datapoints among `p` present ones:
//!
//! - `b >= M`: ALARM;
//! - `p == 0` (nothing to go on): INSUFFICIENT_DATA with `missing`, the current state with `ignore`;
//! - `p < M` (too few datapoints to reach M): with `missing`, ALARM when every present datapoint
//!   breaches, as CloudWatch does with partial data; with `ignore`, the current state;
//! - otherwise OK, or PENDING when `b >= 1`: some datapoints breach, not yet M of them.
//!
//! PENDING is fnlens's own: it is OK as far as notifications go, and tells a reader that the
//! alarm is on its way. docs/alerts.md has the table of examples that `tests::cases` checks.

use serde::{Deserialize, Serialize};

use crate::rule::MissingData;

/// The state of one alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Pending,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Pending => "PENDING",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One datapoint, classified against the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Breaching,
    NotBreaching,
    Missing,
}

/// The next state, given the last N datapoints (in any order: only their counts matter), M,
/// the missing-data treatment and the current state.
pub fn next_state(
    points: &[Point],
    m: usize,
    missing: MissingData,
    current: AlarmState,
) -> AlarmState {
    let fill = |p: Point| match (p, missing) {
        (Point::Missing, MissingData::Breaching) => Point::Breaching,
        (Point::Missing, MissingData::NotBreaching) => Point::NotBreaching,
        (p, _) => p,
    };
    let (mut breaching, mut present) = (0, 0);
    for p in points.iter().copied().map(fill) {
        match p {
            Point::Breaching => {
                breaching += 1;
                present += 1;
            }
            Point::NotBreaching => present += 1,
            Point::Missing => {}
        }
    }
    let quiet = if breaching > 0 {
        AlarmState::Pending
    } else {
        AlarmState::Ok
    };
    if breaching >= m {
        AlarmState::Alarm
    } else if present == 0 {
        match missing {
            MissingData::Ignore => current,
            _ => AlarmState::InsufficientData,
        }
    } else if present < m {
        match missing {
            MissingData::Ignore => current,
            _ if breaching == present => AlarmState::Alarm,
            _ => quiet,
        }
    } else {
        quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datapoints written oldest first as in CloudWatch's documentation: `X` breaching, `0` not
    /// breaching, `-` missing.
    fn points(s: &str) -> Vec<Point> {
        s.split_whitespace()
            .map(|p| match p {
                "X" => Point::Breaching,
                "0" => Point::NotBreaching,
                "-" => Point::Missing,
                other => panic!("bad datapoint {other:?}"),
            })
            .collect()
    }

    fn state(s: &str) -> AlarmState {
        match s {
            "OK" => AlarmState::Ok,
            "PENDING" => AlarmState::Pending,
            "ALARM" => AlarmState::Alarm,
            "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
            other => panic!("bad state {other:?}"),
        }
    }

    /// The table of docs/alerts.md: datapoints, M, then the state under missing, notBreaching,
    /// breaching and ignore (from a current state of OK, and of ALARM for ignore's second
    /// column).
    const CASES: &str = "
        # datapoints   | M | missing           | notBreaching | breaching | ignore (from OK) | ignore (from ALARM)
        # 3 of 3, in the shapes of the CloudWatch documentation's examples
        0 - X          | 3 | PENDING           | PENDING      | PENDING   | OK               | ALARM
        0 - -          | 3 | OK                | OK           | PENDING   | OK               | ALARM
        - - -          | 3 | INSUFFICIENT_DATA | OK           | ALARM     | OK               | ALARM
        X X X          | 3 | ALARM             | ALARM        | ALARM     | ALARM            | ALARM
        X - X          | 3 | ALARM             | PENDING      | ALARM     | OK               | ALARM
        - X -          | 3 | ALARM             | PENDING      | ALARM     | OK               | ALARM
        0 X X          | 3 | PENDING           | PENDING      | PENDING   | PENDING          | PENDING
        # M of N: 3 of 5
        0 X 0 X X      | 3 | ALARM             | ALARM        | ALARM     | ALARM            | ALARM
        X X 0 0 0      | 3 | PENDING           | PENDING      | PENDING   | PENDING          | PENDING
        X - - X 0      | 3 | PENDING           | PENDING      | ALARM     | PENDING          | PENDING
        - - - X X      | 3 | ALARM             | PENDING      | ALARM     | OK               | ALARM
        - - - - -      | 3 | INSUFFICIENT_DATA | OK           | ALARM     | OK               | ALARM
        0 0 0 0 0      | 3 | OK                | OK           | OK        | OK               | OK
        # 2 of 3
        X 0 X          | 2 | ALARM             | ALARM        | ALARM     | ALARM            | ALARM
        X - 0          | 2 | PENDING           | PENDING      | ALARM     | PENDING          | PENDING
        - - X          | 2 | ALARM             | PENDING      | ALARM     | OK               | ALARM
        # 1 of 1
        X              | 1 | ALARM             | ALARM        | ALARM     | ALARM            | ALARM
        0              | 1 | OK                | OK           | OK        | OK               | OK
        -              | 1 | INSUFFICIENT_DATA | OK           | ALARM     | OK               | ALARM
    ";

    #[test]
    fn cases() {
        let modes = [
            MissingData::Missing,
            MissingData::NotBreaching,
            MissingData::Breaching,
            MissingData::Ignore,
        ];
        let mut checked = 0;
        for line in CASES.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            let pts = points(cols[0]);
            let m: usize = cols[1].parse().unwrap();
            for (mode, want) in modes.iter().zip(&cols[2..6]) {
                let got = next_state(&pts, m, *mode, AlarmState::Ok);
                assert_eq!(got, state(want), "{line}: {mode:?}");
            }
            let got = next_state(&pts, m, MissingData::Ignore, AlarmState::Alarm);
            assert_eq!(got, state(cols[6]), "{line}: ignore from ALARM");
            checked += 1;
        }
        assert_eq!(checked, 19);
    }

    #[test]
    fn order_does_not_matter_and_more_breaches_never_lower_the_state() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let all = [Point::Breaching, Point::NotBreaching, Point::Missing];
        for _ in 0..2000 {
            let n = rng.random_range(1..=8);
            let m = rng.random_range(1..=n);
            let mut pts: Vec<Point> = (0..n).map(|_| all[rng.random_range(0..3)]).collect();
            let mode = [
                MissingData::Missing,
                MissingData::NotBreaching,
                MissingData::Breaching,
                MissingData::Ignore,
            ][rng.random_range(0..4)];
            let s = next_state(&pts, m, mode, AlarmState::Ok);
            let mut reversed = pts.clone();
            reversed.reverse();
            assert_eq!(s, next_state(&reversed, m, mode, AlarmState::Ok));
            // Turning one non-breaching datapoint into a breaching one never leaves ALARM.
            if let Some(i) = pts.iter().position(|p| *p == Point::NotBreaching) {
                pts[i] = Point::Breaching;
                if s == AlarmState::Alarm {
                    assert_eq!(next_state(&pts, m, mode, AlarmState::Ok), AlarmState::Alarm);
                }
            }
        }
    }
}
