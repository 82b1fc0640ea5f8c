//! Every table a report shows, in order: the times (when the run measured
//! any) and then the instruction counts (when `bench --instructions` wrote
//! to the same folder), so the two sit side by side in every format.

use crate::harness::counts;
use crate::harness::results::Results;
use crate::harness::table::{self, Grid};

/// Whether the results hold any measured time (a folder that has only seen
/// `bench --instructions` has none).
pub fn timed(r: &Results) -> bool {
    r.cells.iter().any(|c| c.execute.is_some())
}

/// The time tables (if [`timed`]), then the instruction count tables.
pub fn all(r: &Results) -> Vec<Grid> {
    let mut out = if timed(r) {
        table::grids(r)
    } else {
        Vec::new()
    };
    if let Some(c) = &r.instructions {
        out.extend(counts::grids(&c.counts));
    }
    out
}
