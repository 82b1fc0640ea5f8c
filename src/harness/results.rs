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
    /// Every row's geometric-mean ratios to `rust` and to `walker`, per
    /// language level and over all workloads: derived from `cells` when
    /// the file is written ([`Results::geomeans`]), for readers of the JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geomeans: Vec<Geomean>,
}

/// One row's geometric mean of ratios to `base` over the workloads of one
/// language level (`level: None`: over all workloads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geomean {
    pub subject: String,
    pub base: String,
    pub level: Option<u8>,
    pub ratio: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub description: String,
    pub args: Vec<i64>,
    pub expected: i64,
    pub iterations: u64,
    pub nodes: usize,
    /// The language level the program needs (1 or 2); results written
    /// before there were levels hold only Level-1 workloads.
    #[serde(default = "level_one")]
    pub level: u8,
}

fn level_one() -> u8 {
    1
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
        self.geomean_ratio_at(subject, base, None)
    }

    /// [`Results::geomean_ratio`] over the workloads of one level
    /// (`None`: all of them).
    pub fn geomean_ratio_at(&self, subject: &str, base: &str, level: Option<u8>) -> Option<f64> {
        geomean(
            self.workloads_at(level)
                .filter_map(|w| self.ratio(subject, &w.name, base)),
        )
    }

    /// The language levels among the workloads, lowest first.
    pub fn levels(&self) -> Vec<u8> {
        let mut levels: Vec<u8> = self.workloads.iter().map(|w| w.level).collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    /// The workloads of one level (`None`: all), in run order.
    pub fn workloads_at(&self, level: Option<u8>) -> impl Iterator<Item = &WorkloadInfo> {
        self.workloads
            .iter()
            .filter(move |w| level.is_none_or(|l| w.level == l))
    }

    /// The workloads grouped by level: every Level-1 workload, then every
    /// Level-2 one, each in run order (the column order of every table).
    pub fn by_level(&self) -> Vec<&WorkloadInfo> {
        let mut all: Vec<&WorkloadInfo> = self.workloads.iter().collect();
        all.sort_by_key(|w| w.level);
        all
    }

    /// Every row's geometric means to `rust` and `walker` (those present),
    /// per level when there is more than one, and over all workloads.
    pub fn geomeans(&self) -> Vec<Geomean> {
        let levels = self.levels();
        let mut scopes: Vec<Option<u8>> = Vec::new();
        if levels.len() > 1 {
            scopes.extend(levels.iter().map(|l| Some(*l)));
        }
        scopes.push(None);
        let mut out = Vec::new();
        for s in &self.subjects {
            for base in [RUST, WALKER].into_iter().filter(|b| self.has(b)) {
                for &level in &scopes {
                    if let Some(ratio) = self.geomean_ratio_at(&s.name, base, level) {
                        out.push(Geomean {
                            subject: s.name.clone(),
                            base: base.to_string(),
                            level,
                            ratio,
                        });
                    }
                }
            }
        }
        out
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

/// Fabricated results for the reports' unit tests.
#[cfg(test)]
pub(crate) mod fabricated {
    use super::*;

    /// A run of `rust`, `walker` and `fast` over `workloads` (name, level),
    /// every cell's median from `median(subject, workload index)`.
    pub(crate) fn fabricated(
        workloads: &[(&str, u8)],
        median: impl Fn(&str, usize) -> f64,
    ) -> Results {
        let subjects = ["walker", "fast", "rust"];
        let mut cells = Vec::new();
        for s in subjects {
            for (i, (w, _)) in workloads.iter().enumerate() {
                let m = median(s, i);
                cells.push(Cell {
                    subject: s.into(),
                    workload: (*w).into(),
                    refused: None,
                    reps_per_sample: 1,
                    execute_ns: vec![m],
                    compile_ns: vec![],
                    verified_executions: 1,
                    execute: Summary::of(&[m]),
                    compile: None,
                    form: None,
                });
            }
        }
        Results {
            machine: Machine::detect(),
            build: Build::current(),
            settings: Settings::full(),
            started_unix: 0,
            wall_seconds: 0.0,
            workloads: workloads
                .iter()
                .map(|(name, level)| WorkloadInfo {
                    name: (*name).into(),
                    description: String::new(),
                    args: vec![],
                    expected: 0,
                    iterations: 10,
                    nodes: 1,
                    level: *level,
                })
                .collect(),
            subjects: subjects
                .iter()
                .map(|s| SubjectInfo {
                    name: (*s).into(),
                    tier: if *s == "rust" { "native" } else { "beyond" }.into(),
                    summary: String::new(),
                })
                .collect(),
            cells,
            instructions: None,
            geomeans: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fabricated::fabricated as run;
    use super::*;

    #[test]
    fn workloads_written_before_levels_are_level_one() {
        let w: WorkloadInfo = serde_json::from_str(
            r#"{"name":"sum","description":"d","args":[1],"expected":1,"iterations":1,"nodes":3}"#,
        )
        .unwrap();
        assert_eq!(w.level, 1);
    }

    #[test]
    fn geomeans_per_level_and_overall() {
        // `fast` is 2× faster than walker on Level 1, 8× on Level 2.
        let r = run(&[("a", 2), ("b", 1), ("c", 2)], |s, i| match (s, i) {
            ("walker", _) => 800.0,
            ("fast", 1) => 400.0,
            ("fast", _) => 100.0,
            _ => 10.0,
        });
        assert_eq!(r.levels(), vec![1, 2]);
        let names: Vec<_> = r.by_level().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(near(r.geomean_ratio_at("fast", WALKER, Some(1)), 0.5));
        assert!(near(r.geomean_ratio_at("fast", WALKER, Some(2)), 0.125));
        let all = r.geomean_ratio("fast", WALKER).unwrap();
        assert!((all - (0.5f64 * 0.125 * 0.125).cbrt()).abs() < 1e-12);
        // The JSON carries them: per level and overall, to both bases.
        let g = r.geomeans();
        let find = |base: &str, level| {
            g.iter()
                .find(|g| g.subject == "fast" && g.base == base && g.level == level)
                .map(|g| g.ratio)
        };
        assert!(near(find(WALKER, Some(2)), 0.125));
        assert!(near(find(RUST, Some(1)), 40.0));
        assert_eq!(find(WALKER, None), Some(all));
        // A run of one level has only the overall means.
        let one = run(&[("a", 1), ("b", 1)], |_, _| 5.0);
        assert!(one.geomeans().iter().all(|g| g.level.is_none()));
    }
}
