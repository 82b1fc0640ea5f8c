//! Break-even: when does compiling more pay off?
//!
//! Running a program for `n` loop iterations costs an engine
//! `compile + n × t`: its median compile time plus `n` times its median
//! execute time per iteration (the whole execution ÷ the workload's
//! iterations, so setup is spread over the loop). An engine that compiles
//! more but runs an iteration faster overtakes a cheaper one after
//! `(compile_a − compile_b) / (t_b − t_a)` iterations. Per workload this
//! draws the totals against `n` and tabulates that count for every engine
//! against `walker` and against the best interpreter.

use super::charts::file_name;
use crate::harness::results::{Results, WALKER};
use crate::harness::stats::{fmt_ns, sig3};
use crate::harness::table::Grid;
use plotters::prelude::*;

/// What the section says before its tables, in the reports' Markdown.
pub const EXPLAIN: &str = "Running a program for *n* loop iterations costs an engine \
its compile time plus *n* × its execute time per iteration. An engine that compiles \
more and runs faster overtakes a cheaper one after the iteration count in these tables; \
**from the start** means it compiles no slower, **never** that it does not run faster. \
The **best interpreter** is the engine with the fastest iteration on that workload \
among those that do not emit machine code (all but `jit`, `*_jit`, `luajit` and \
`wasmtime`). The charts draw `walker`, the best interpreter, the engines that \
iterate faster than it and any engine that is cheapest for some *n*.";

/// One engine's cost on one workload, in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    pub name: String,
    pub tier: String,
    /// Median compile time.
    pub compile: f64,
    /// Median execute time per loop iteration.
    pub per_iteration: f64,
}

impl Cost {
    /// Compile once, then run `n` iterations.
    pub fn total(&self, n: f64) -> f64 {
        self.compile + n * self.per_iteration
    }
}

/// When one engine's total drops below another's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Overtakes {
    /// At every `n`: it compiles no slower and iterates faster.
    FromTheStart,
    /// Beyond this many iterations.
    After(f64),
    /// It does not iterate faster.
    Never,
}

/// When `a` overtakes `b`.
pub fn overtakes(a: &Cost, b: &Cost) -> Overtakes {
    if a.per_iteration >= b.per_iteration {
        Overtakes::Never
    } else if a.compile <= b.compile {
        Overtakes::FromTheStart
    } else {
        Overtakes::After((a.compile - b.compile) / (b.per_iteration - a.per_iteration))
    }
}

/// Whether an engine interprets (rather than emitting machine code), by
/// the registry's names: `jit`, `*_jit`, and the JIT peers.
pub fn is_interpreter(name: &str) -> bool {
    !(name.split('_').any(|w| w == "jit") || matches!(name, "luajit" | "wasmtime"))
}

/// Every engine measured on `workload` with both stages, fastest overall first.
pub fn costs(r: &Results, workload: &str) -> Vec<Cost> {
    let Some(w) = r.workloads.iter().find(|w| w.name == workload) else {
        return Vec::new();
    };
    r.ranked()
        .into_iter()
        .filter(|s| s.tier != "native")
        .filter_map(|s| {
            let cell = r.cell(&s.name, workload)?;
            Some(Cost {
                name: s.name.clone(),
                tier: s.tier.clone(),
                compile: cell.compile.as_ref()?.median,
                per_iteration: cell.execute.as_ref()?.median / w.iterations.max(1) as f64,
            })
        })
        .collect()
}

/// The interpreter with the fastest iteration.
pub fn best_interpreter(costs: &[Cost]) -> Option<&Cost> {
    costs
        .iter()
        .filter(|c| is_interpreter(&c.name))
        .min_by(|a, b| a.per_iteration.total_cmp(&b.per_iteration))
}

/// An iteration count, short: `950`, `164k`, `2.41M`, `10k`.
fn count(n: f64) -> String {
    let n = n.ceil();
    let (v, unit) = match n {
        n if n < 1e3 => return format!("{n}"),
        n if n < 1e6 => (n / 1e3, "k"),
        n if n < 1e9 => (n / 1e6, "M"),
        n => (n / 1e9, "G"),
    };
    let digits = sig3(v);
    let digits = match digits.contains('.') {
        true => digits.trim_end_matches('0').trim_end_matches('.'),
        false => &digits,
    };
    format!("{digits}{unit}")
}

fn cell(a: &Cost, b: &Cost) -> String {
    if a.name == b.name {
        return "—".into();
    }
    match overtakes(a, b) {
        Overtakes::FromTheStart => "from the start".into(),
        Overtakes::After(n) if n < 1.0 => "from the start".into(),
        Overtakes::After(n) => count(n),
        Overtakes::Never => "never".into(),
    }
}

/// A grid of engines × workloads, each cell when the engine overtakes the
/// reference `against` picks from that workload's costs.
fn grid(
    r: &Results,
    title: String,
    against: impl Fn(&[Cost]) -> Option<Cost>,
    first: Option<Vec<String>>,
) -> Grid {
    // Columns grouped by language level, as in every table.
    let per_workload: Vec<(Vec<Cost>, Option<Cost>)> = r
        .by_level()
        .into_iter()
        .map(|w| {
            let c = costs(r, &w.name);
            let reference = against(&c);
            (c, reference)
        })
        .collect();
    let mut rows: Vec<Vec<String>> = first.into_iter().collect();
    for s in r.ranked().into_iter().filter(|s| s.tier != "native") {
        let mut row = vec![s.name.clone(), s.tier.clone()];
        for (c, reference) in &per_workload {
            let mine = c.iter().find(|c| c.name == s.name);
            row.push(match (mine, reference) {
                (Some(a), Some(b)) => cell(a, b),
                _ => "n/a".into(),
            });
        }
        rows.push(row);
    }
    let mut header = vec!["engine".to_string(), "tier".to_string()];
    header.extend(r.by_level().into_iter().map(|w| w.name.clone()));
    Grid {
        title,
        header,
        rows,
    }
}

/// The break-even tables: against `walker` (when measured) and against
/// each workload's best interpreter.
pub fn grids(r: &Results) -> Vec<Grid> {
    let mut out = Vec::new();
    if r.has(WALKER) {
        out.push(grid(
            r,
            "Loop iterations after which each engine (compile + execute) overtakes `walker`".into(),
            |c| c.iter().find(|c| c.name == WALKER).cloned(),
            None,
        ));
    }
    let mut names = vec!["best interpreter".to_string(), String::new()];
    names.extend(
        r.by_level()
            .into_iter()
            .map(|w| best_interpreter(&costs(r, &w.name)).map_or("n/a".into(), |c| c.name.clone())),
    );
    out.push(grid(
        r,
        "Loop iterations after which each engine (compile + execute) overtakes the best interpreter"
            .into(),
        |c| best_interpreter(c).cloned(),
        Some(names),
    ));
    out
}

/// File name of a workload's break-even chart (also its HTML id).
pub fn chart_file(workload: &str) -> String {
    format!("breakeven-{}", file_name(workload))
}

/// The engines a chart draws (see [`EXPLAIN`]), and its largest `n`.
fn drawn(costs: &[Cost], iterations: u64) -> (Vec<&Cost>, f64) {
    let walker = costs.iter().find(|c| c.name == WALKER);
    let best = best_interpreter(costs);
    let mut picked: Vec<&Cost> = walker.into_iter().chain(best).collect();
    if let Some(b) = best {
        picked.extend(costs.iter().filter(|c| c.per_iteration < b.per_iteration));
    }
    // The range reaches ten times past the last crossing drawn.
    let mut reach = iterations.max(1) as f64;
    for a in &picked {
        for b in walker.into_iter().chain(best) {
            if let Overtakes::After(n) = overtakes(a, b) {
                reach = reach.max(n);
            }
        }
    }
    let n_max = 10f64.powf((reach * 10.0).log10().ceil()).clamp(1e3, 1e12);
    // Whoever is cheapest somewhere on the range.
    for i in 0..=48 {
        let n = n_max.powf(f64::from(i) / 48.0);
        if let Some(c) = costs
            .iter()
            .min_by(|a, b| a.total(n).total_cmp(&b.total(n)))
        {
            picked.push(c);
        }
    }
    let mut seen = Vec::new();
    picked.retain(|c| {
        let new = !seen.contains(&c.name);
        seen.push(c.name.clone());
        new
    });
    picked.sort_by(|a, b| b.per_iteration.total_cmp(&a.per_iteration));
    (picked, n_max)
}

const COLORS: [RGBColor; 8] = [
    RGBColor(136, 138, 133),
    RGBColor(52, 101, 164),
    RGBColor(78, 154, 6),
    RGBColor(245, 121, 0),
    RGBColor(117, 80, 123),
    RGBColor(204, 0, 0),
    RGBColor(193, 125, 17),
    RGBColor(6, 152, 154),
];

fn draw(svg: &mut String, workload: &str, costs: &[Cost], iterations: u64) -> Result<(), String> {
    let (lines, n_max) = drawn(costs, iterations);
    let y_lo = lines
        .iter()
        .map(|c| c.total(1.0))
        .fold(f64::INFINITY, f64::min);
    let y_hi = lines.iter().map(|c| c.total(n_max)).fold(0.0, f64::max);
    if lines.is_empty() || y_lo <= 0.0 || !y_hi.is_finite() {
        return Err("nothing measured".into());
    }
    let root = SVGBackend::with_string(svg, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: compile + n iterations"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0..n_max).log_scale(),
            (y_lo / 2.0..y_hi * 2.0).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("loop iterations n (log scale)")
        .y_desc("total time (log scale)")
        .x_label_formatter(&|v| count(*v))
        .y_label_formatter(&|v| fmt_ns(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    // The workload's own iteration count, for orientation.
    let here = iterations.max(1) as f64;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(here, y_lo / 2.0), (here, y_hi * 2.0)],
            BLACK.mix(0.3).stroke_width(1),
        )))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(std::iter::once(Text::new(
            format!(" {workload} runs {}", count(here)),
            (here, y_hi * 1.2),
            ("sans-serif", 11),
        )))
        .map_err(|e| e.to_string())?;
    for (i, c) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = (0..=64).map(|k| {
            let n = n_max.powf(f64::from(k) / 64.0);
            (n, c.total(n))
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// A workload's chart: total time against `n`, log–log.
pub fn chart(r: &Results, workload: &str) -> String {
    let iterations = r
        .workloads
        .iter()
        .find(|w| w.name == workload)
        .map_or(1, |w| w.iterations);
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, workload, &costs(r, workload), iterations) {
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"4\" y=\"20\">{workload}: no break-even chart ({e})</text></svg>"
        );
    }
    svg
}

/// `(file name, svg)` for every workload's break-even chart.
pub fn charts(r: &Results) -> Vec<(String, String)> {
    r.by_level()
        .into_iter()
        .map(|w| (chart_file(&w.name), chart(r, &w.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(name: &str, compile: f64, per_iteration: f64) -> Cost {
        Cost {
            name: name.into(),
            tier: "beyond".into(),
            compile,
            per_iteration,
        }
    }

    #[test]
    fn crossings() {
        let walker = cost("walker", 100.0, 10.0);
        let jit = cost("jit", 200_100.0, 0.5);
        // 200,000 ns more compile, 9.5 ns saved per iteration.
        assert_eq!(overtakes(&jit, &walker), Overtakes::After(200_000.0 / 9.5));
        assert_eq!(cell(&jit, &walker), "21.1k");
        assert_eq!(overtakes(&walker, &jit), Overtakes::Never);
        assert_eq!(
            overtakes(&cost("tape", 50.0, 2.0), &walker),
            Overtakes::FromTheStart
        );
        assert_eq!(cell(&walker, &walker), "—");
        assert_eq!(count(950.2), "951");
        assert_eq!(count(2_412_345.0), "2.41M");
        assert_eq!(
            (count(1e3), count(1e4), count(1.5e9)),
            ("1k".into(), "10k".into(), "1.5G".into())
        );
    }

    #[test]
    fn machine_code_engines_are_not_interpreters() {
        for name in ["jit", "template_jit", "luajit", "wasmtime"] {
            assert!(!is_interpreter(name), "{name}");
        }
        for name in [
            "walker",
            "luajit_interp",
            "wasmi",
            "register_bytecode_fused",
        ] {
            assert!(is_interpreter(name), "{name}");
        }
        let c = [
            cost("walker", 1.0, 10.0),
            cost("jit", 1e5, 0.1),
            cost("bytecode", 10.0, 3.0),
        ];
        assert_eq!(best_interpreter(&c).unwrap().name, "bytecode");
        let (lines, n_max) = drawn(&c, 1000);
        let names: Vec<_> = lines.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["walker", "bytecode", "jit"]);
        // jit overtakes bytecode after ~34,500 iterations: ten times past, rounded up.
        assert_eq!(n_max, 1e6);
    }
}
