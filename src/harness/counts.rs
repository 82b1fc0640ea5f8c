//! Instruction counts of the execute stage (`vm-perf bench
//! --instructions`, counted by [`instructions`](super::instructions)) as
//! results carry them: `results.json` keeps them beside the times of the
//! same `--out` folder, whichever of the two runs came first, and the
//! reports show them as tables of instructions per loop iteration.

use super::machine::{Build, Machine};
use super::stats::geomean;
use super::table::Grid;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One counted cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub subject: String,
    pub workload: String,
    pub iterations: u64,
    /// Instructions of one execution; `None` when the engine refused.
    pub instructions: Option<u64>,
    /// Why the engine did not run the program (`n/a` in tables).
    pub refused: Option<String>,
}

/// One `bench --instructions` run: what was counted, where and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstructionCounts {
    pub machine: Machine,
    pub build: Build,
    /// Seconds since the Unix epoch when the counting started.
    pub started_unix: u64,
    pub counts: Vec<Count>,
}

impl InstructionCounts {
    /// The instruction counts kept in `dir/results.json`, if it has any.
    pub fn kept_in(dir: &Path) -> Option<InstructionCounts> {
        let text = std::fs::read_to_string(dir.join("results.json")).ok()?;
        super::report::json::parse(&text).ok()?.instructions
    }

    /// Instructions per loop iteration of `subject` on `workload`.
    pub fn per_iteration(&self, subject: &str, workload: &str) -> Option<f64> {
        let c = self
            .counts
            .iter()
            .find(|c| c.subject == subject && c.workload == workload)?;
        Some(c.instructions? as f64 / c.iterations as f64)
    }

    /// One line for report headers: how the counts were taken and, unless
    /// they match the times' (`timed`), on which build and machine.
    pub fn line(&self, timed: Option<(&Build, &Machine)>) -> String {
        let what = "counted with callgrind, execute stage only";
        // A machine's reported frequency may move between runs.
        let same = |m: &Machine| Machine {
            mhz: None,
            ..m.clone()
        };
        match timed {
            Some((build, machine))
                if *build == self.build && same(machine) == same(&self.machine) =>
            {
                format!("{what}, same build and machine as the times")
            }
            _ => format!(
                "{what}, by {} on {}",
                self.build.line(),
                self.machine.line()
            ),
        }
    }
}

fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        super::stats::sig3(v)
    }
}

/// Grids of instructions per iteration and per execution.
pub fn grids(counts: &[Count]) -> Vec<Grid> {
    let mut workloads: Vec<&str> = Vec::new();
    let mut subjects: Vec<&str> = Vec::new();
    for c in counts {
        if !workloads.contains(&c.workload.as_str()) {
            workloads.push(&c.workload);
        }
        if !subjects.contains(&c.subject.as_str()) {
            subjects.push(&c.subject);
        }
    }
    let get = |s: &str, w: &str| counts.iter().find(|c| c.subject == s && c.workload == w);
    let per_iter = |s: &str, w: &str| {
        get(s, w).and_then(|c| c.instructions.map(|i| i as f64 / c.iterations as f64))
    };
    // Fewest instructions first, by geometric mean per iteration.
    let mut ranked: Vec<(&str, f64)> = subjects
        .iter()
        .map(|s| {
            (
                *s,
                geomean(workloads.iter().filter_map(|w| per_iter(s, w))).unwrap_or(f64::INFINITY),
            )
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let tier =
        |s: &str| crate::engine::engine(s).map_or("native".to_string(), |e| e.tier().to_string());
    let mut header = vec!["engine".to_string(), "tier".to_string()];
    header.extend(workloads.iter().map(|w| w.to_string()));
    let mut h1 = header.clone();
    h1.push("geomean".into());
    let per_iteration = Grid {
        title:
            "Instructions per loop iteration, execute stage only (callgrind; exact and repeatable)"
                .into(),
        header: h1,
        rows: ranked
            .iter()
            .map(|(s, g)| {
                let mut row = vec![s.to_string(), tier(s)];
                row.extend(
                    workloads
                        .iter()
                        .map(|w| per_iter(s, w).map_or("n/a".into(), sig)),
                );
                row.push(if g.is_finite() { sig(*g) } else { "n/a".into() });
                row
            })
            .collect(),
    };
    let total = Grid {
        title: "Instructions per execution (execute stage only)".into(),
        header,
        rows: ranked
            .iter()
            .map(|(s, _)| {
                let mut row = vec![s.to_string(), tier(s)];
                row.extend(workloads.iter().map(|w| {
                    get(s, w)
                        .and_then(|c| c.instructions)
                        .map_or("n/a".into(), |i| i.to_string())
                }));
                row
            })
            .collect(),
    };
    vec![per_iteration, total]
}
