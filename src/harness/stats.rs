//! Summaries of timing samples: median with a distribution-free confidence
//! interval, min and max, and the geometric mean used to rank engines.
//!
//! Timings on a shared machine are skewed (interrupts, other processes only
//! ever make a run slower), so we report the median, not the mean, and its
//! 95 % confidence interval from order statistics: no normality assumed.

use serde::{Deserialize, Serialize};

/// What one cell's samples come to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub samples: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Lower end of the 95 % confidence interval of the median.
    pub ci_low: f64,
    /// Upper end of the 95 % confidence interval of the median.
    pub ci_high: f64,
}

impl Summary {
    /// Summarises `samples` (any order). `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        // Ranks n/2 ± 1.96·√n/2 bracket the median with ≈95 % confidence
        // (normal approximation of the binomial; conservative for small n).
        let half = 1.96 * (n as f64).sqrt() / 2.0;
        let lo = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
        let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
        Some(Summary {
            samples: n,
            min: s[0],
            median,
            max: s[n - 1],
            ci_low: s[lo],
            ci_high: s[hi],
        })
    }

    /// Half the confidence interval's width relative to the median: the
    /// "±" shown next to every number.
    pub fn noise(&self) -> f64 {
        if self.median > 0.0 {
            (self.ci_high - self.ci_low) / 2.0 / self.median
        } else {
            0.0
        }
    }

    /// The same summary with every value divided by `d` (e.g. per iteration).
    pub fn scaled(&self, d: f64) -> Summary {
        Summary {
            samples: self.samples,
            min: self.min / d,
            median: self.median / d,
            max: self.max / d,
            ci_low: self.ci_low / d,
            ci_high: self.ci_high / d,
        }
    }
}

/// Geometric mean of positive values; `None` if there are none.
pub fn geomean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        if v > 0.0 && v.is_finite() {
            sum += v.ln();
            n += 1;
        }
    }
    (n > 0).then(|| (sum / n as f64).exp())
}

/// Least-squares slope of `ln y` against `ln x`: the growth exponent
/// (1 = linear, 2 = quadratic). `None` with fewer than two points.
pub fn growth_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Three significant digits, without exponent notation.
pub fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// A duration in nanoseconds as a short human string (`1.23 µs`).
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", sig3(v))
}

/// A ratio as a short string (`12.3×`, `0.852×`).
pub fn fmt_ratio(r: f64) -> String {
    format!("{}×", sig3(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_interval() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert!(s.ci_low <= s.median && s.median <= s.ci_high);
        let even = Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Summary::of(&[]).is_none());
        let same = Summary::of(&[7.0; 30]).unwrap();
        assert_eq!(same.noise(), 0.0);
    }

    #[test]
    fn geomean_and_exponent() {
        assert!((geomean([2.0, 8.0]).unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(geomean([]), None);
        assert_eq!(fmt_ns(1234.0), "1.23 µs");
        assert_eq!(fmt_ns(0.004_21), "0.00421 ns");
        assert_eq!(fmt_ratio(123.4), "123×");
        assert_eq!(fmt_ratio(0.5), "0.500×");
        let linear: Vec<_> = (1..6)
            .map(|i| (10f64.powi(i), 3.0 * 10f64.powi(i)))
            .collect();
        assert!((growth_exponent(&linear).unwrap() - 1.0).abs() < 1e-9);
        let square: Vec<_> = (1..6).map(|i| (i as f64, (i * i) as f64)).collect();
        assert!((growth_exponent(&square).unwrap() - 2.0).abs() < 1e-9);
    }
}
