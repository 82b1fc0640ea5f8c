//! Every table a report shows, in order: the times (when the run measured
//! any) and then the instruction counts (when `bench --instructions` wrote
//! to the same folder), so the two sit side by side in every format.

use crate::harness::results::Results;
use crate::harness::table::{self, Grid};

/// Whether the results hold any measured time (a folder that has only seen
/// `bench --instructions` has none).
pub fn timed(r: &Results) -> bool {
    r.cells.iter().any(|c| c.execute.is_some())
}

/// The time tables (if [`timed`]), then instructions per loop iteration
/// (the counts per execution stay in `results.json` and `instructions.md`).
pub fn all(r: &Results) -> Vec<Grid> {
    let mut out = if timed(r) {
        table::grids(r)
    } else {
        Vec::new()
    };
    if let Some(c) = &r.instructions {
        out.extend(table::count_grids(&c.counts).into_iter().take(1));
    }
    out
}

/// The header line about the instruction counts, if there are any.
pub fn counts_line(r: &Results) -> Option<String> {
    let timed = timed(r).then_some((&r.build, &r.machine));
    Some(r.instructions.as_ref()?.line(timed))
}
