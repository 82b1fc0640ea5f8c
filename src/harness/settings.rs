//! How long and how carefully `vm-perf bench` measures: the settings a run
//! is given and records in its results.

/// Defined in [`crate::clock`]: the engines that time themselves share it.
pub use crate::clock::Clock;
use serde::{Deserialize, Serialize};

/// How long and how carefully to measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub quick: bool,
    /// Measured rounds (samples per cell). [`run`] derives it from the
    /// budget (at most `max_rounds`); the results record the actual count.
    pub rounds: usize,
    /// Upper bound of `rounds`.
    pub max_rounds: usize,
    /// Target length of one sample in milliseconds. Short samples are
    /// rarely cut by the scheduler on a busy machine, and many of them
    /// give the median a tight interval.
    pub sample_ms: f64,
    /// Rounds run first and thrown away.
    pub warmup_rounds: usize,
    /// Target seconds of sampling for the whole run (all cells, all rounds).
    pub budget_seconds: f64,
    /// Seed of the round order shuffles (recorded so a run can be replayed).
    pub seed: u64,
    /// What a sample's duration is measured with.
    pub clock: Clock,
}

impl Settings {
    /// The default run: about 80 s of sampling, up to 401 rounds.
    pub fn full() -> Settings {
        Settings {
            quick: false,
            rounds: 0,
            max_rounds: 401,
            sample_ms: 1.0,
            warmup_rounds: 3,
            budget_seconds: 80.0,
            seed: 0x5eed,
            clock: Clock::Thread,
        }
    }

    /// `--quick`: about 8 s of sampling, up to 101 rounds.
    pub fn quick() -> Settings {
        Settings {
            quick: true,
            max_rounds: 101,
            warmup_rounds: 1,
            budget_seconds: 8.0,
            ..Settings::full()
        }
    }

    /// Rounds and sample length (ns) for `cells` cells within the budget:
    /// as many ~`sample_ms` rounds as fit, at least 7, at most `max_rounds`.
    pub fn plan(&self, cells: usize) -> (usize, f64) {
        // Compile samples take up to a quarter of an execute sample.
        let budget = self.budget_seconds * 1e9 / 1.25 / cells.max(1) as f64;
        let fit = (budget / (self.sample_ms * 1e6)) as usize;
        let rounds = fit
            .saturating_sub(self.warmup_rounds)
            .clamp(7, self.max_rounds.max(7));
        let sample_ns = (budget / (rounds + self.warmup_rounds) as f64).max(2e5);
        (rounds, sample_ns)
    }
}
