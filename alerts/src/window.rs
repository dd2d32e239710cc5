//! Rolling windows over the invocation stream: per function and version, one bucket of counts
//! and duration sketches per [`BUCKET_MS`] of invocation end time. A window of any length is the
//! merge of its buckets, so every rule's datapoints come from the same buckets, and an invocation
//! that arrives late still lands in its bucket and counts in every window that covers it.

use std::collections::{BTreeMap, HashMap};

use fnlens_model::{Invocation, Status};

use crate::rule::BUCKET_MS;
use crate::sketch::QuantileSketch;

/// Relative accuracy of the duration quantiles.
pub const SKETCH_ACCURACY: f64 = 0.01;

/// What the windows keep of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the outcome was known: start plus duration, UTC epoch ms. A 15-minute invocation
    /// that times out counts when it ends, not a quarter of an hour in the past.
    pub end_ms: i64,
    pub function: String,
    pub version: String,
    /// Any status but success (timeouts included).
    pub failed: bool,
    pub cold_start: bool,
    pub duration_ms: f64,
    pub init_duration_ms: Option<f64>,
    /// Max memory used over memory size, in percent.
    pub memory_pct: Option<f64>,
}

impl Sample {
    pub fn from_invocation(inv: &Invocation) -> Sample {
        Sample {
            end_ms: inv.end_ts_ms,
            function: inv.function.clone(),
            version: inv.version.clone(),
            failed: inv.status != Status::Success,
            cold_start: inv.cold_start,
            duration_ms: inv.duration_ms,
            init_duration_ms: inv.init_duration_ms,
            memory_pct: memory_pct(inv.max_memory_used_mb, inv.memory_size_mb),
        }
    }
}

/// Max memory used over memory size, in percent; `None` when the size is unknown.
pub fn memory_pct(used_mb: i64, size_mb: i64) -> Option<f64> {
    (size_mb > 0).then(|| used_mb as f64 * 100.0 / size_mb as f64)
}

/// The aggregate of a bucket, or of a window.
#[derive(Debug, Clone, Default)]
pub struct Agg {
    pub invocations: u64,
    pub failed: u64,
    pub cold_starts: u64,
    pub duration: Option<QuantileSketch>,
    pub init_duration: Option<QuantileSketch>,
    pub memory_max: Option<f64>,
    pub memory_sum: f64,
    pub memory_n: u64,
}

fn merge_sketch(into: &mut Option<QuantileSketch>, from: &Option<QuantileSketch>) {
    if let Some(from) = from {
        into.get_or_insert_with(|| QuantileSketch::new(SKETCH_ACCURACY))
            .merge(from);
    }
}

impl Agg {
    fn add(&mut self, s: &Sample) {
        self.invocations += 1;
        self.failed += u64::from(s.failed);
        self.cold_starts += u64::from(s.cold_start);
        self.duration
            .get_or_insert_with(|| QuantileSketch::new(SKETCH_ACCURACY))
            .add(s.duration_ms);
        if let Some(init) = s.init_duration_ms {
            self.init_duration
                .get_or_insert_with(|| QuantileSketch::new(SKETCH_ACCURACY))
                .add(init);
        }
        if let Some(m) = s.memory_pct {
            self.memory_max = Some(self.memory_max.map_or(m, |x| x.max(m)));
            self.memory_sum += m;
            self.memory_n += 1;
        }
    }

    /// Adds `other` in; the sketches only when asked, as counting rules need none.
    fn merge(&mut self, other: &Agg, sketches: bool) {
        self.invocations += other.invocations;
        self.failed += other.failed;
        self.cold_starts += other.cold_starts;
        if let Some(m) = other.memory_max {
            self.memory_max = Some(self.memory_max.map_or(m, |x| x.max(m)));
        }
        self.memory_sum += other.memory_sum;
        self.memory_n += other.memory_n;
        if sketches {
            merge_sketch(&mut self.duration, &other.duration);
            merge_sketch(&mut self.init_duration, &other.init_duration);
        }
    }
}

/// The buckets of every function seen within the horizon.
#[derive(Debug, Default)]
pub struct Windows {
    /// function -> version -> bucket index -> aggregate.
    functions: HashMap<String, HashMap<String, BTreeMap<i64, Agg>>>,
}

impl Windows {
    pub fn add(&mut self, s: &Sample) {
        let bucket = s.end_ms.div_euclid(BUCKET_MS);
        let versions = match self.functions.get_mut(&s.function) {
            Some(v) => v,
            None => self.functions.entry(s.function.clone()).or_default(),
        };
        let buckets = match versions.get_mut(&s.version) {
            Some(b) => b,
            None => versions.entry(s.version.clone()).or_default(),
        };
        buckets.entry(bucket).or_default().add(s);
    }

    /// The functions that have any bucket.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// The aggregate of the buckets that overlap `(start_ms, end_ms]`, over every version or
    /// one. Windows resolve to whole buckets: a window may cover up to one bucket more.
    pub fn aggregate(
        &self,
        function: &str,
        version: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        sketches: bool,
    ) -> Agg {
        let mut agg = Agg::default();
        let Some(versions) = self.functions.get(function) else {
            return agg;
        };
        // Bucket b covers [b * B, (b + 1) * B): it overlaps the window when it ends after its
        // start and begins at or before its end.
        let first = (start_ms + 1).div_euclid(BUCKET_MS);
        let last = end_ms.div_euclid(BUCKET_MS);
        if first > last {
            return agg;
        }
        for (v, buckets) in versions {
            if version.is_some_and(|want| want != v) {
                continue;
            }
            for (_, b) in buckets.range(first..=last) {
                agg.merge(b, sketches);
            }
        }
        agg
    }

    /// Drops buckets that end before `horizon_ms`, and functions left with none.
    pub fn prune(&mut self, horizon_ms: i64) {
        let keep_from = horizon_ms.div_euclid(BUCKET_MS);
        self.functions.retain(|_, versions| {
            versions.retain(|_, buckets| {
                *buckets = buckets.split_off(&keep_from);
                !buckets.is_empty()
            });
            !versions.is_empty()
        });
    }

    /// How many buckets are held, for the server's metrics.
    pub fn bucket_count(&self) -> usize {
        self.functions
            .values()
            .flat_map(|v| v.values())
            .map(BTreeMap::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(end_ms: i64, function: &str, version: &str, failed: bool, d: f64) -> Sample {
        Sample {
            end_ms,
            function: function.into(),
            version: version.into(),
            failed,
            cold_start: false,
            duration_ms: d,
            init_duration_ms: None,
            memory_pct: memory_pct(64, 128),
        }
    }

    #[test]
    fn windows_merge_their_buckets_and_late_samples_count() {
        let mut w = Windows::default();
        let t = 1_700_000_000_000;
        for i in 0..60 {
            w.add(&sample(t + i * 1000, "f", "1", i % 10 == 0, i as f64));
        }
        let all = w.aggregate("f", None, t - 1, t + 60_000, true);
        assert_eq!((all.invocations, all.failed), (60, 6));
        let d = all.duration.unwrap();
        assert_eq!(d.count(), 60);
        assert!((d.quantile(0.5).unwrap() - 29.5).abs() < 1.0);
        assert_eq!(all.memory_max, Some(50.0));
        // The last 10 s: the buckets overlapping (t + 50 s, t + 60 s].
        let last = w.aggregate("f", None, t + 50_000, t + 60_000, false);
        assert_eq!(last.invocations, 10);
        assert!(last.duration.is_none());
        // A late sample lands in its old bucket.
        w.add(&sample(t + 1, "f", "2", true, 1.0));
        assert_eq!(w.aggregate("f", None, t - 1, t + 4_999, false).failed, 2);
        assert_eq!(
            w.aggregate("f", Some("2"), t - 1, t + 60_000, false)
                .invocations,
            1
        );
        assert_eq!(
            w.aggregate("g", None, t - 1, t + 60_000, false).invocations,
            0
        );
        w.prune(t + 30_000);
        assert_eq!(
            w.aggregate("f", None, t - 1, t + 60_000, false).invocations,
            30
        );
        w.prune(t + 120_000);
        assert_eq!(w.functions().count(), 0);
    }
}
