//! Instruction counts of the execute stage (`vm-perf bench
//! --instructions`) as results carry them: `results.json` keeps them beside
//! the times of the same `--out` folder, whichever of the two runs came
//! first. The data only: [`instructions`](super::instructions) counts them
//! and reads them back, [`table`](super::table) renders them.

use super::machine::{Build, Machine};
use serde::{Deserialize, Serialize};

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
