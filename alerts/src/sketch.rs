//! A mergeable quantile sketch with a relative-error guarantee (DDSketch, Masson et al., VLDB 2019).
//!
//! Values are counted in buckets whose bounds grow geometrically by `gamma = (1 + a) / (1 - a)`:
//! bucket `i` holds the values in `(gamma^(i-1), gamma^i]`. Any quantile is then answered with a
//! value within a relative error `a` of the exact one, whatever the distribution, and two
//! sketches with the same accuracy merge by adding their bucket counts, so per-window sketches
//! (one per function and second, say) combine into the sketch of any longer window exactly as if
//! it had seen all the values. Durations are non-negative; values at or below
//! [`MIN_INDEXABLE`] (zero included) are counted apart and answered as 0.

use serde::{Deserialize, Serialize};

/// The smallest value given its own bucket; smaller ones count as zero.
pub const MIN_INDEXABLE: f64 = 1e-9;

/// The sketch. Bucket counts live in a dense vector from `offset` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    relative_accuracy: f64,
    /// `ln(gamma)`, kept to index values without recomputing it.
    ln_gamma: f64,
    offset: i32,
    counts: Vec<u64>,
    zero_count: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl QuantileSketch {
    /// A sketch whose quantiles are within `relative_accuracy` (e.g. 0.01 for 1%) of the exact
    /// ones. Panics unless `0 < relative_accuracy < 1`.
    pub fn new(relative_accuracy: f64) -> QuantileSketch {
        assert!(
            relative_accuracy > 0.0 && relative_accuracy < 1.0,
            "relative accuracy must be in (0, 1), not {relative_accuracy}"
        );
        let gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy);
        QuantileSketch {
            relative_accuracy,
            ln_gamma: gamma.ln(),
            offset: 0,
            counts: Vec::new(),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    fn index(&self, value: f64) -> i32 {
        (value.ln() / self.ln_gamma).ceil() as i32
    }

    /// The value that stands for bucket `i`: the point of least relative error in it.
    fn value_of(&self, i: i32) -> f64 {
        let gamma = self.ln_gamma.exp();
        2.0 * (self.ln_gamma * f64::from(i)).exp() / (gamma + 1.0)
    }

    /// Counts a value. NaN is ignored; negative values count as zero.
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Counts a value `n` times.
    pub fn add_n(&mut self, value: f64, n: u64) {
        if value.is_nan() || n == 0 {
            return;
        }
        let value = value.max(0.0);
        self.count += n;
        self.sum += value * n as f64;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value <= MIN_INDEXABLE {
            self.zero_count += n;
            return;
        }
        let i = self.index(value);
        self.grow_to(i);
        self.counts[(i - self.offset) as usize] += n;
    }

    /// Makes room for bucket `i`.
    fn grow_to(&mut self, i: i32) {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(0);
        } else if i < self.offset {
            let extra = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.offset = i;
        } else if (i - self.offset) as usize >= self.counts.len() {
            self.counts.resize((i - self.offset) as usize + 1, 0);
        }
    }

    /// Adds every value `other` counted. Both must have the same accuracy.
    pub fn merge(&mut self, other: &QuantileSketch) {
        assert!(
            (self.relative_accuracy - other.relative_accuracy).abs() < f64::EPSILON,
            "sketches of different accuracies do not merge"
        );
        if other.count == 0 {
            return;
        }
        if !other.counts.is_empty() {
            self.grow_to(other.offset);
            self.grow_to(other.offset + other.counts.len() as i32 - 1);
            let shift = (other.offset - self.offset) as usize;
            for (k, c) in other.counts.iter().enumerate() {
                self.counts[shift + k] += c;
            }
        }
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The exact smallest and largest values counted.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The `q` quantile (0 <= q <= 1) of the values counted: the value of rank
    /// `floor(q * (count - 1))` from 0, within the relative accuracy. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for (k, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                let v = self.value_of(self.offset + k as i32);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The exact quantile of the same rank the sketch answers.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn check_bound(values: &[f64], alpha: f64, what: &str) {
        let mut sketch = QuantileSketch::new(alpha);
        for v in values {
            sketch.add(*v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&sorted, q);
            let got = sketch.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= alpha * want + 1e-12,
                "{what}: q={q} got {got} want {want} (alpha {alpha})"
            );
        }
        assert_eq!(sketch.count(), values.len() as u64);
        assert_eq!(sketch.min(), sorted.first().copied());
        assert_eq!(sketch.max(), sorted.last().copied());
    }

    /// Property: for many random distributions, sizes and accuracies, every quantile is within
    /// the relative accuracy of the exact one.
    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..200 {
            let alpha = [0.001, 0.01, 0.02, 0.05][case % 4];
            let n = rng.random_range(1..3_000);
            let values: Vec<f64> = match case % 5 {
                // Uniform durations, 1 ms to 900 s (Lambda's range).
                0 => (0..n).map(|_| rng.random_range(1.0..900_000.0)).collect(),
                // Log-normal-ish: the long tail of real latencies.
                1 => (0..n)
                    .map(|_| (rng.random_range(0.0f64..1.0).ln() * -2.0).exp() * 20.0)
                    .collect(),
                // Bimodal: warm calls and cold starts.
                2 => (0..n)
                    .map(|_| {
                        if rng.random_bool(0.9) {
                            rng.random_range(5.0..15.0)
                        } else {
                            rng.random_range(800.0..1_500.0)
                        }
                    })
                    .collect(),
                // Few distinct values, zeros included.
                3 => (0..n)
                    .map(|_| f64::from(rng.random_range(0..4u8)) * 100.0)
                    .collect(),
                // Tiny and huge together.
                _ => (0..n)
                    .map(|_| 10f64.powf(rng.random_range(-6.0..7.0)))
                    .collect(),
            };
            check_bound(&values, alpha, &format!("case {case} (n={n})"));
        }
    }

    /// Property: merging the sketches of parts gives the sketch of the whole.
    #[test]
    fn merging_parts_equals_the_sketch_of_the_whole() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let values: Vec<f64> = (0..rng.random_range(0..2_000))
                .map(|_| 10f64.powf(rng.random_range(-1.0..6.0)))
                .collect();
            let cut = rng.random_range(0..=values.len());
            let (mut whole, mut a, mut b) = (
                QuantileSketch::new(0.01),
                QuantileSketch::new(0.01),
                QuantileSketch::new(0.01),
            );
            values.iter().for_each(|v| whole.add(*v));
            values[..cut].iter().for_each(|v| a.add(*v));
            values[cut..].iter().for_each(|v| b.add(*v));
            a.merge(&b);
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                assert_eq!(a.quantile(q), whole.quantile(q));
            }
            assert_eq!(a.count(), whole.count());
            assert!((a.sum() - whole.sum()).abs() <= 1e-6 * whole.sum().abs().max(1.0));
        }
    }

    #[test]
    fn empty_zero_and_nan() {
        let mut s = QuantileSketch::new(0.01);
        assert_eq!(s.quantile(0.5), None);
        s.add(f64::NAN);
        assert_eq!(s.count(), 0);
        s.add(0.0);
        s.add(-3.0);
        s.add(10.0);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 10.0).abs() <= 0.1);
        assert_eq!(s.quantile(1.5), None);
        let mut e = QuantileSketch::new(0.01);
        e.merge(&s);
        assert_eq!(e, {
            let mut c = s.clone();
            c.merge(&QuantileSketch::new(0.01));
            c
        });
    }
}
