//! The results of one `vm-perf bench` run: every sample, and the views the
//! reports share (ratios, geometric means, the ranking).

use super::counts::InstructionCounts;
use super::machine::{Build, Machine};
use super::settings::Settings;
use super::stats::{Summary, geomean};
use serde::{Deserialize, Serialize};

/// Everything one run measured, as written to `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub build: Build,
    pub settings: Settings,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Wall-clock seconds the measurement took.
    pub wall_seconds: f64,
    pub workloads: Vec<WorkloadInfo>,
    /// Engines and candles, registry order (candles last).
    pub subjects: Vec<SubjectInfo>,
    pub cells: Vec<Cell>,
    /// Instruction counts of the execute stage, when `bench --instructions`
    /// wrote to the same `--out` folder (kept by runs of either kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<InstructionCounts>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub description: String,
    pub args: Vec<i64>,
    pub expected: i64,
    pub iterations: u64,
    pub nodes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectInfo {
    pub name: String,
    /// `original`, `beyond`, `fused`, `peer`, or `native` for candles.
    pub tier: String,
    pub summary: String,
}

/// One engine (or candle) on one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub subject: String,
    pub workload: String,
    /// Why the engine did not run this program (`n/a` in tables).
    pub refused: Option<String>,
    /// Executions timed together in one execute sample.
    pub reps_per_sample: u64,
    /// Nanoseconds per execution, one value per sample, in time order.
    pub execute_ns: Vec<f64>,
    /// Nanoseconds per compile, one value per sample (empty for candles).
    pub compile_ns: Vec<f64>,
    /// Executions run and verified, warm-up included.
    pub verified_executions: u64,
    pub execute: Option<Summary>,
    pub compile: Option<Summary>,
    /// For an engine with more than one form, the one this cell ran
    /// (LuaJIT: `double`, or `int64` where values leave ±2⁵³).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
}

/// The reference rows ratios are taken against.
pub const RUST: &str = "rust";
pub const WALKER: &str = "walker";

impl Results {
    pub fn cell(&self, subject: &str, workload: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.subject == subject && c.workload == workload)
    }

    /// Median execute nanoseconds, if measured.
    pub fn median(&self, subject: &str, workload: &str) -> Option<f64> {
        self.cell(subject, workload)?
            .execute
            .as_ref()
            .map(|s| s.median)
    }

    /// Median nanoseconds per loop iteration.
    pub fn per_iteration(&self, subject: &str, workload: &str) -> Option<f64> {
        let w = self.workloads.iter().find(|w| w.name == workload)?;
        Some(self.median(subject, workload)? / w.iterations as f64)
    }

    /// How many times slower than `base` (`> 1`: slower).
    pub fn ratio(&self, subject: &str, workload: &str, base: &str) -> Option<f64> {
        Some(self.median(subject, workload)? / self.median(base, workload)?)
    }

    /// Geometric mean over workloads of [`Results::ratio`]; only workloads
    /// where both rows were measured count.
    pub fn geomean_ratio(&self, subject: &str, base: &str) -> Option<f64> {
        geomean(
            self.workloads
                .iter()
                .filter_map(|w| self.ratio(subject, &w.name, base)),
        )
    }

    /// The base that exists in this run for ranking: `rust`, else `walker`,
    /// else the first subject.
    pub fn rank_base(&self) -> Option<&str> {
        [RUST, WALKER]
            .into_iter()
            .find(|b| self.subjects.iter().any(|s| s.name == *b))
            .or_else(|| self.subjects.first().map(|s| s.name.as_str()))
    }

    /// Subjects, fastest first by geometric-mean ratio to the rank base;
    /// rows with nothing measured come last.
    pub fn ranked(&self) -> Vec<&SubjectInfo> {
        let base = self.rank_base().unwrap_or(WALKER).to_string();
        let mut rows: Vec<(&SubjectInfo, f64)> = self
            .subjects
            .iter()
            .map(|s| {
                (
                    s,
                    self.geomean_ratio(&s.name, &base).unwrap_or(f64::INFINITY),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.1.total_cmp(&b.1));
        rows.into_iter().map(|(s, _)| s).collect()
    }

    pub fn has(&self, subject: &str) -> bool {
        self.subjects.iter().any(|s| s.name == subject)
    }

    pub fn tier_of(&self, subject: &str) -> &str {
        self.subjects
            .iter()
            .find(|s| s.name == subject)
            .map_or("", |s| s.tier.as_str())
    }
}
