//! The result tables, built once as plain grids of strings and rendered
//! both to the terminal (comfy-table) and to Markdown.
//!
//! Rows are engines and candles, fastest first by geometric mean (of times,
//! or of instruction counts); columns are workloads, grouped by language
//! level, each level closed by its own geometric mean when a run has more
//! than one. Refused cells read `n/a`.

use super::counts::Count;
use super::results::{RUST, Results, WALKER, WorkloadInfo};
use super::stats::{fmt_ns, fmt_ratio, geomean, sig3};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

/// A titled table of strings; column 0 names the row, column 1 its tier.
pub struct Grid {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub(crate) const NA: &str = "n/a";

/// What a column of a time table shows.
enum Column<'r> {
    Workload(&'r WorkloadInfo),
    /// The geometric mean over one level's workloads (shown only when the
    /// run has more than one level, right after that level's workloads).
    LevelGeomean(u8),
}

/// The columns after the row's name and tier: the workloads grouped by
/// level, each group followed by its geometric mean when there are several.
/// `means: false` leaves the means out (a grid of nanoseconds per iteration).
fn columns(r: &Results, means: bool) -> Vec<Column<'_>> {
    let levels = r.levels();
    let mut out = Vec::new();
    for &level in &levels {
        out.extend(r.workloads_at(Some(level)).map(Column::Workload));
        if means && levels.len() > 1 {
            out.push(Column::LevelGeomean(level));
        }
    }
    out
}

fn header(r: &Results, means: bool, last: &[&str]) -> Vec<String> {
    let mut h = vec!["engine".to_string(), "tier".to_string()];
    h.extend(columns(r, means).iter().map(|c| match c {
        Column::Workload(w) => w.name.clone(),
        Column::LevelGeomean(l) => format!("Level {l} geomean"),
    }));
    h.extend(last.iter().map(|s| s.to_string()));
    h
}

/// A cell's noise, and the form it ran in when that is not the engine's
/// usual one (LuaJIT's `int64` beyond ±2⁵³).
fn noise(r: &Results, subject: &str, workload: &str) -> String {
    let Some(cell) = r.cell(subject, workload) else {
        return String::new();
    };
    let mut text = match &cell.execute {
        Some(s) => format!(" ±{:.0}%", s.noise() * 100.0),
        None => String::new(),
    };
    if let Some(form) = cell.form.as_deref().filter(|f| *f == WIDE_FORM) {
        text.push(' ');
        text.push_str(form);
    }
    text
}

/// The form a cell names in tables (the others are the engine's usual one).
const WIDE_FORM: &str = "int64";

/// A note for the title when some cell ran in the wide form.
fn form_note(r: &Results) -> &'static str {
    if r.cells.iter().any(|c| c.form.as_deref() == Some(WIDE_FORM)) {
        "; `int64`: LuaJIT in 64-bit integers (its JIT without allocation sinking), where values leave its doubles' exact range"
    } else {
        ""
    }
}

fn geo(r: &Results, subject: &str, base: &str, level: Option<u8>) -> String {
    if !r.has(base) {
        return "—".into();
    }
    r.geomean_ratio_at(subject, base, level)
        .map_or(NA.into(), fmt_ratio)
}

/// A row's cell closing one level's workloads: `(subject, level)` → text.
type LevelTail<'a> = dyn Fn(&str, u8) -> String + 'a;

/// One row per subject, fastest first: name, tier, for each workload
/// `value(subject, workload)` with the cell's noise (or `n/a`), each level
/// closed by `level_tail(subject, level)` when there are several and it is
/// given, then `tail(subject)`.
fn execute_rows(
    r: &Results,
    value: impl Fn(&str, &str) -> Option<String>,
    level_tail: Option<&LevelTail>,
    tail: impl Fn(&str) -> Vec<String>,
) -> Vec<Vec<String>> {
    let columns = columns(r, level_tail.is_some());
    r.ranked()
        .into_iter()
        .map(|s| {
            let mut row = vec![s.name.clone(), s.tier.clone()];
            for c in &columns {
                row.push(match c {
                    Column::Workload(w) => match value(&s.name, &w.name) {
                        Some(v) => format!("{v}{}", noise(r, &s.name, &w.name)),
                        None => NA.into(),
                    },
                    Column::LevelGeomean(level) => {
                        level_tail.map_or(String::new(), |f| f(&s.name, *level))
                    }
                });
            }
            row.extend(tail(&s.name));
            row
        })
        .collect()
}

/// Ratios of median execute time to `base` (`rust` or `walker`), with
/// each cell's own noise, the geometric mean to `base` per level (when the
/// run has several) and the geometric means over all workloads to both bases.
pub fn ratio_grid(r: &Results, base: &str) -> Option<Grid> {
    if !r.has(base) {
        return None;
    }
    let title = match base {
        RUST => format!(
            "Execute time relative to the `rust` candle (lower is faster; ± is the 95% CI of the median{})",
            form_note(r)
        ),
        b => format!(
            "Execute time relative to `{b}` (lower is faster; ± is the 95% CI of the median{})",
            form_note(r)
        ),
    };
    let rows = execute_rows(
        r,
        |s, w| r.ratio(s, w, base).map(fmt_ratio),
        Some(&|s, level| geo(r, s, base, Some(level))),
        |s| vec![geo(r, s, RUST, None), geo(r, s, WALKER, None)],
    );
    Some(Grid {
        title,
        header: header(r, true, &["geomean vs rust", "geomean vs walker"]),
        rows,
    })
}

/// Median execute time per loop iteration (per call, for the recursive
/// workloads), with no means: nanoseconds of different workloads do not mix.
pub fn per_iteration_grid(r: &Results) -> Grid {
    let rows = execute_rows(
        r,
        |s, w| r.per_iteration(s, w).map(fmt_ns),
        None,
        |_| vec![],
    );
    Grid {
        title: format!(
            "Median execute time per loop iteration (whole program time ÷ iterations{})",
            form_note(r)
        ),
        header: header(r, false, &[]),
        rows,
    }
}

/// Median compile time per engine and workload (candles have none), with
/// the geometric mean per level (when there are several) and overall.
pub fn compile_grid(r: &Results) -> Grid {
    let median = |s: &str, w: &str| {
        r.cell(s, w)
            .and_then(|c| c.compile.as_ref())
            .map(|c| c.median)
    };
    let mean = |s: &str, level: Option<u8>| {
        geomean(r.workloads_at(level).filter_map(|w| median(s, &w.name))).map_or(NA.into(), fmt_ns)
    };
    let columns = columns(r, true);
    let rows = r
        .ranked()
        .into_iter()
        .filter(|s| s.tier != "native")
        .map(|s| {
            let mut row = vec![s.name.clone(), s.tier.clone()];
            for c in &columns {
                row.push(match c {
                    Column::Workload(w) => median(&s.name, &w.name).map_or(NA.into(), fmt_ns),
                    Column::LevelGeomean(level) => mean(&s.name, Some(*level)),
                });
            }
            row.push(mean(&s.name, None));
            row
        })
        .collect();
    Grid {
        title: "Median compile time".into(),
        header: header(r, true, &["geomean"]),
        rows,
    }
}

/// Every grid a report shows, in order.
pub fn grids(r: &Results) -> Vec<Grid> {
    let mut g = Vec::new();
    g.extend(ratio_grid(r, RUST));
    g.extend(ratio_grid(r, WALKER));
    g.push(per_iteration_grid(r));
    g.push(compile_grid(r));
    g
}

/// Instruction counts: whole numbers from 100 on, three significant
/// digits below.
fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        sig3(v)
    }
}

/// Grids of instructions per iteration and per execution.
pub fn count_grids(counts: &[Count]) -> Vec<Grid> {
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

/// The grid as a terminal table.
pub fn terminal(grid: &Grid) -> String {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(grid.header.iter().map(Cell::new));
    for row in &grid.rows {
        t.add_row(row.iter().map(Cell::new));
    }
    for i in 2..grid.header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("{}\n{t}\n", grid.title)
}

/// The grid as a Markdown table.
pub fn markdown(grid: &Grid) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "**{}**\n\n| {} |\n",
        grid.title,
        grid.header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out.push('|');
    for i in 0..grid.header.len() {
        out.push_str(if i < 2 { " :--- |" } else { " ---: |" });
    }
    out.push('\n');
    for row in &grid.rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::results::fabricated::fabricated as run;

    #[test]
    fn tables_group_workloads_by_level_with_their_geomeans() {
        let r = run(&[("a", 2), ("b", 1), ("c", 2)], |s, _| {
            if s == "rust" { 1.0 } else { 4.0 }
        });
        let grid = ratio_grid(&r, WALKER).unwrap();
        assert_eq!(
            grid.header,
            [
                "engine",
                "tier",
                "b",
                "Level 1 geomean",
                "a",
                "c",
                "Level 2 geomean",
                "geomean vs rust",
                "geomean vs walker"
            ]
        );
        let rust = grid.rows.iter().find(|row| row[0] == "rust").unwrap();
        assert_eq!(rust[3], "0.250×");
        assert_eq!(rust[6], "0.250×");
        // Nanoseconds per iteration get no means, only the grouping.
        let per = per_iteration_grid(&r);
        assert_eq!(per.header[2..], ["b", "a", "c"]);
        // One level: the columns as before.
        let one = run(&[("a", 1), ("b", 1)], |_, _| 5.0);
        assert_eq!(
            ratio_grid(&one, RUST).unwrap().header[2..],
            ["a", "b", "geomean vs rust", "geomean vs walker"]
        );
    }
}
