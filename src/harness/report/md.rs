//! `results.md` and the full results page (`docs/RESULTS.md`): the machine,
//! the ladder, the tables, the charts and how to read them; and the README's
//! engine table, from the registry.

use super::grids::{all as grids, counts_line, timed};
use crate::harness::results::Results;
use crate::harness::table::markdown;

/// The "how to read this" text shared by the Markdown and HTML reports.
pub const HOW_TO_READ: &str = "\
- **Ratio**: median execute time of the engine divided by the median of the base \
(the `rust` candle, or `walker`) on the same workload, measured in the same run. \
`4.0×` means four times slower than the base; below `1×` is faster. Ratios from \
different runs or machines are not comparable cell by cell, but they are far more \
stable than absolute times.
- **Geomean**: the geometric mean of a row's ratios over the workloads it ran; \
rows are sorted by it, fastest first. `n/a` cells (an engine that refuses a \
program) are left out of its mean.
- **Noise (±)**: half the width of the 95% confidence interval of the median, \
relative to the median, from order statistics over the samples. Rounds visit \
every cell in a shuffled order, so drift of a shared machine hits every engine \
alike; a difference smaller than the two cells' ± is not a difference.
- **Per iteration**: the whole execution divided by the workload's hot-loop \
iteration count; it includes the setup, so short workloads slightly overstate it.
- **Tiers**: `original` (the ten techniques of the original comparison), \
`beyond` (techniques it did not have), `fused` (with declared superinstructions), \
`peer` (real embeddable interpreters), `native` (the Rust candles).
- **Instructions per iteration** (`vm-perf bench --instructions`, valgrind's \
callgrind): the instructions one execution retires, execute stage only, divided by \
the workload's iterations. Exact and repeatable, and comparable between machines \
of one architecture, where times are comparable only within one run.";

/// What the times cover, for every engine and candle alike.
pub const SPANS: &str = "execute: one run of the program with its arguments, compared with the \
expected value; compile: from the validated program to runnable code (for a peer: translating \
it into the peer's input, Lua source or a Wasm module, plus the peer's own load or compile; a \
runtime that hosts many programs, a Lua state, is made once and not counted; one that frees a \
program's code only with itself, a wasmi engine or a Cranelift module, is made per program and \
counted), not freeing it. LuaJIT runs in a helper process that times both spans itself, on the \
same clock";

/// How the times were taken, for the reports' headers.
pub fn run_line(r: &Results) -> String {
    format!(
        "{} mode, {} measured rounds after {} warm-up, {:.0} s wall time, samples timed in {}, every execution verified",
        if r.settings.quick { "quick" } else { "full" },
        r.settings.rounds,
        r.settings.warmup_rounds,
        r.wall_seconds,
        r.settings.clock
    )
}

/// The Markdown body; charts are linked as `{chart_dir}/<name>.svg`.
pub fn render(r: &Results, chart_dir: &str, level: usize) -> String {
    let h = "#".repeat(level);
    let mut out = String::new();
    out.push_str(&format!("{h} Benchmark results\n\n"));
    out.push_str(&format!("- Machine: {}\n", r.machine.line()));
    out.push_str(&format!("- Build: {}\n", r.build.line()));
    if timed(r) {
        out.push_str(&format!("- Run: {}\n- Spans: {SPANS}\n", run_line(r)));
    }
    if let Some(line) = counts_line(r) {
        out.push_str(&format!("- Instruction counts: {line}\n"));
    }
    out.push('\n');
    if timed(r) {
        out.push_str(&format!("{h}# The ladder\n\n"));
        out.push_str(&super::ladder::section_markdown(r));
        out.push('\n');
    }
    for g in grids(r) {
        out.push_str(&markdown(&g));
        out.push('\n');
    }
    let refused: Vec<_> = r
        .cells
        .iter()
        .filter_map(|c| Some((c, c.refused.as_ref()?)))
        .collect();
    if !refused.is_empty() {
        out.push_str("Not applicable:\n\n");
        for (c, why) in refused {
            out.push_str(&format!("- `{}` on `{}`: {why}\n", c.subject, c.workload));
        }
        out.push('\n');
    }
    if timed(r) {
        out.push_str(&format!("{h}# Charts\n\n"));
        for (file, _) in super::charts::all(r) {
            let name = file.trim_end_matches(".svg");
            out.push_str(&format!("![{name}]({chart_dir}/{file})\n\n"));
        }
    }
    out.push_str(&format!(
        "{h}# When does compiling more pay off?\n\n{}\n\n",
        super::breakeven::EXPLAIN
    ));
    for g in super::breakeven::grids(r) {
        out.push_str(&markdown(&g));
        out.push('\n');
    }
    for w in &r.workloads {
        let file = super::breakeven::chart_file(&w.name);
        let name = file.trim_end_matches(".svg");
        out.push_str(&format!("![{name}]({chart_dir}/{file})\n\n"));
    }
    out.push_str(&format!("{h}# How to read this\n\n{HOW_TO_READ}\n"));
    out
}

/// Every engine of this build from the registry: tier, name and summary,
/// as a Markdown table (the README's engine table).
pub fn engine_table() -> String {
    let mut out = String::from("| tier | engine | technique |\n| :--- | :--- | :--- |\n");
    for e in crate::engine::engines() {
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            e.tier(),
            e.name(),
            e.summary().replace('|', "\\|")
        ));
    }
    out
}
