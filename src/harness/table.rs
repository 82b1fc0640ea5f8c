//! The result tables, built once as plain grids of strings and rendered
//! both to the terminal (comfy-table) and to Markdown.
//!
//! Rows are engines and candles, fastest first by geometric mean (of times,
//! or of instruction counts); columns are workloads. Refused cells read
//! `n/a`.

use super::counts::Count;
use super::results::{RUST, Results, WALKER};
use super::stats::{fmt_ns, fmt_ratio, geomean, sig3};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

/// A titled table of strings; column 0 names the row, column 1 its tier.
pub struct Grid {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const NA: &str = "n/a";

fn header(r: &Results, last: &[&str]) -> Vec<String> {
    let mut h = vec!["engine".to_string(), "tier".to_string()];
    h.extend(r.workloads.iter().map(|w| w.name.clone()));
    h.extend(last.iter().map(|s| s.to_string()));
    h
}

fn noise(r: &Results, subject: &str, workload: &str) -> String {
    match r.cell(subject, workload).and_then(|c| c.execute.as_ref()) {
        Some(s) => format!(" ±{:.0}%", s.noise() * 100.0),
        None => String::new(),
    }
}

fn geo(r: &Results, subject: &str, base: &str) -> String {
    if !r.has(base) {
        return "—".into();
    }
    r.geomean_ratio(subject, base).map_or(NA.into(), fmt_ratio)
}

/// One row per subject, fastest first: name, tier, for each workload
/// `value(subject, workload)` with the cell's noise (or `n/a`), then
/// `tail(subject)`.
fn execute_rows(
    r: &Results,
    value: impl Fn(&str, &str) -> Option<String>,
    tail: impl Fn(&str) -> Vec<String>,
) -> Vec<Vec<String>> {
    r.ranked()
        .into_iter()
        .map(|s| {
            let mut row = vec![s.name.clone(), s.tier.clone()];
            for w in &r.workloads {
                row.push(match value(&s.name, &w.name) {
                    Some(v) => format!("{v}{}", noise(r, &s.name, &w.name)),
                    None => NA.into(),
                });
            }
            row.extend(tail(&s.name));
            row
        })
        .collect()
}

/// Ratios of median execute time to `base` (`rust` or `walker`), with
/// each cell's own noise and the geometric means to both bases.
pub fn ratio_grid(r: &Results, base: &str) -> Option<Grid> {
    if !r.has(base) {
        return None;
    }
    let title = match base {
        RUST => "Execute time relative to the `rust` candle (lower is faster; ± is the 95% CI of the median)".to_string(),
        b => format!("Execute time relative to `{b}` (lower is faster; ± is the 95% CI of the median)"),
    };
    let rows = execute_rows(
        r,
        |s, w| r.ratio(s, w, base).map(fmt_ratio),
        |s| vec![geo(r, s, RUST), geo(r, s, WALKER)],
    );
    Some(Grid {
        title,
        header: header(r, &["geomean vs rust", "geomean vs walker"]),
        rows,
    })
}

/// Median execute time per loop iteration.
pub fn per_iteration_grid(r: &Results) -> Grid {
    let rows = execute_rows(r, |s, w| r.per_iteration(s, w).map(fmt_ns), |_| vec![]);
    Grid {
        title: "Median execute time per loop iteration (whole program time ÷ iterations)".into(),
        header: header(r, &[]),
        rows,
    }
}

/// Median compile time per engine and workload (candles have none).
pub fn compile_grid(r: &Results) -> Grid {
    let rows = r
        .ranked()
        .into_iter()
        .filter(|s| s.tier != "native")
        .map(|s| {
            let mut row = vec![s.name.clone(), s.tier.clone()];
            let mut all = Vec::new();
            for w in &r.workloads {
                let c = r.cell(&s.name, &w.name).and_then(|c| c.compile.as_ref());
                row.push(c.map_or(NA.into(), |c| fmt_ns(c.median)));
                all.extend(c.map(|c| c.median));
            }
            row.push(geomean(all).map_or(NA.into(), fmt_ns));
            row
        })
        .collect();
    Grid {
        title: "Median compile time".into(),
        header: header(r, &["geomean"]),
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
