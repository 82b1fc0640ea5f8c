//! `vm-perf scale`: does compile time grow linearly with program size, and
//! execute time linearly with the iteration count?
//!
//! Programs of 10 to 1,000,000 nodes are generated as balanced trees of
//! `Then` over a cycle of four small statements (an update of an argument
//! local, a local-to-local add, a `Let` with a store to an outer local, and
//! a zero-trip `While`), so their depth grows with log₂ of the size and
//! stays far below `MAX_DEPTH`. Every engine's result on every generated
//! program is checked against `walker`'s.
//!
//! Each point is the fastest of several samples (preemption only adds
//! time). The growth exponent is the least-squares slope of log time against log
//! size over the sizes from 1,000 nodes up (below that, fixed costs
//! dominate): 1 is linear, 2 quadratic. Cache effects make the largest
//! sizes somewhat slower per node even for a linear algorithm, so up to
//! [`NEAR_LINEAR_UP_TO`] the verdict is "near-linear"; above it, "worse
//! than linear", which for a compiler is a bug to fix.

use super::stats::{fmt_ns, growth_exponent};
use super::table::{Grid, markdown, terminal};
use crate::engine::Engine;
use crate::front::ast::Expr;
use crate::front::program::{MAX_DEPTH, Program};
use cpu_time::ThreadTime;
use std::hint::black_box;
use std::io::Write;

/// A call this slow (thread CPU ns) is timed once, not sampled.
const SLOW_NS: f64 = 0.25e9;
/// After a compile this slow, an engine skips the larger sizes.
const GIVE_UP_NS: f64 = 2e9;

/// Exponents up to this count as linear (measurement noise).
pub const LINEAR_UP_TO: f64 = 1.15;
/// Up to this, growth is linear work slowed by caches: a program that
/// outgrows L2 costs a few times more per node, which over two or three
/// decades of size lifts the exponent by up to ~0.3.
pub const NEAR_LINEAR_UP_TO: f64 = 1.35;

fn statement(i: usize) -> Expr {
    use Expr::*;
    let lit = (i % 97) as i64;
    // Locals in scope: 0 = zero, 1 = b, 2 = a (argument copy).
    match i % 4 {
        0 => Expr::set(2, Expr::add(Get(2), Litr(lit))),
        1 => Expr::set(1, Expr::add(Get(1), Get(2))),
        2 => Expr::let_(
            Expr::add(Get(1), Litr(lit)),
            Expr::set(2, Expr::add(Get(0), Get(3))),
        ),
        _ => Expr::while_(Get(0), Expr::set(0, Litr(0))),
    }
}

fn balanced(lo: usize, hi: usize) -> Expr {
    if hi - lo == 1 {
        return statement(lo);
    }
    let mid = lo + (hi - lo) / 2;
    Expr::then(balanced(lo, mid), balanced(mid, hi))
}

/// A valid program of roughly `nodes` AST nodes (at least 13), one argument.
pub fn generate(nodes: usize) -> Program {
    use Expr::*;
    // About six nodes per statement with its share of `Then`s.
    let statements = (nodes.saturating_sub(7) / 6).max(1);
    let body = Expr::then(balanced(0, statements), Expr::add(Get(2), Get(1)));
    let expr = Expr::let_(Arg(0), Expr::let_(Litr(1), Expr::let_(Litr(0), body)));
    let program = Program::validate(expr).expect("generated programs are valid");
    debug_assert!(program.depth() <= MAX_DEPTH);
    program
}

/// Fastest of `samples` timings of `f` (ns of this thread's CPU time per
/// call), each sample repeated so it lasts at least `min_ns`. The largest
/// sizes run for tens of milliseconds, longer than a scheduler time slice
/// on a busy machine, so wall time would charge them for other processes;
/// thread CPU time does not, and the minimum drops what noise remains.
/// What `f` returns is dropped after the clock stops.
fn fastest_ns<T>(samples: usize, min_ns: f64, mut f: impl FnMut() -> T) -> f64 {
    let start = ThreadTime::now();
    drop(black_box(f()));
    let once = start.elapsed().as_nanos() as f64;
    if once >= SLOW_NS {
        // Seconds per call: one sample says enough, preemption aside.
        return once;
    }
    let reps = ((min_ns / once.max(1.0)).ceil() as usize).clamp(1, 100_000);
    let mut kept = Vec::with_capacity(reps);
    (0..samples)
        .map(|_| {
            let start = ThreadTime::now();
            for _ in 0..reps {
                kept.push(black_box(f()));
            }
            let ns = start.elapsed().as_nanos() as f64 / reps as f64;
            kept.clear();
            ns
        })
        .fold(f64::INFINITY, f64::min)
}

fn verdict(exp: Option<f64>) -> String {
    match exp {
        Some(e) if e <= LINEAR_UP_TO => format!("{e:.2} linear"),
        Some(e) if e <= NEAR_LINEAR_UP_TO => format!("{e:.2} near-linear (caches)"),
        Some(e) => format!("{e:.2} WORSE THAN LINEAR"),
        None => "n/a".into(),
    }
}

/// One engine's timings at each size: `(size, ns)`; `None` = refused.
type Series = Vec<(usize, Option<f64>)>;

fn grid(
    title: &str,
    unit: &str,
    sizes: &[usize],
    rows: &[(&dyn Engine, Series)],
    per: bool,
) -> Grid {
    let mut header = vec!["engine".to_string(), "tier".to_string()];
    header.extend(sizes.iter().map(|s| format!("{s} {unit}")));
    header.push("exponent".into());
    let rows = rows
        .iter()
        .map(|(e, series)| {
            let mut row = vec![e.name().to_string(), e.tier().to_string()];
            row.extend(series.iter().map(|(n, t)| match t {
                Some(t) if per => {
                    format!("{}/{}", fmt_ns(t / *n as f64), unit.trim_end_matches('s'))
                }
                Some(t) => fmt_ns(*t),
                None => "n/a".into(),
            }));
            let points: Vec<(f64, f64)> = series
                .iter()
                .filter(|(n, _)| *n >= 1000)
                .filter_map(|(n, t)| Some((*n as f64, (*t)?)))
                .collect();
            row.push(verdict(growth_exponent(&points)));
            row
        })
        .collect();
    Grid {
        title: title.into(),
        header,
        rows,
    }
}

/// Measures and prints both scaling tables; writes `scale.md` to `out_dir`.
pub fn run(
    out: &mut impl Write,
    engines: &[&dyn Engine],
    quick: bool,
    max_nodes: usize,
    out_dir: &std::path::Path,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let max_nodes = if quick {
        max_nodes.min(100_000)
    } else {
        max_nodes
    };
    let sizes: Vec<usize> = (1..=7)
        .map(|k| 10usize.pow(k))
        .filter(|&n| n <= max_nodes.max(10))
        .collect();
    let (samples, min_ns) = if quick { (9, 1e6) } else { (21, 2e6) };
    let walker = crate::engine::engines()[0];

    // Compile time against size.
    let programs: Vec<(usize, Program, i64)> = sizes
        .iter()
        .map(|&n| {
            let p = generate(n);
            let expected = walker
                .compile(&p)
                .map(|c| c.execute(&[5]).expect("one argument"))
                .map_err(|e| e.to_string());
            (p.node_count(), p, expected.unwrap_or(0))
        })
        .collect();
    let node_sizes: Vec<usize> = programs.iter().map(|(n, _, _)| *n).collect();
    let bar = indicatif::ProgressBar::new((engines.len() * (programs.len() + 4)) as u64);
    let mut compile_rows = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for e in engines {
        let mut series = Vec::new();
        let mut gave_up = false;
        for (n, p, expected) in &programs {
            bar.inc(1);
            if gave_up || e.supports(p).is_err() {
                series.push((*n, None));
                continue;
            }
            let first = ThreadTime::now();
            let code = e
                .compile(p)
                .map_err(|x| format!("{} cannot compile a {n}-node program: {x}", e.name()))?;
            let first_ns = first.elapsed().as_nanos() as f64;
            let got = code.execute(&[5]).map_err(|x| x.to_string())?;
            if got != *expected {
                return Err(format!(
                    "{} returned {got} on the {n}-node program, walker {expected}",
                    e.name()
                ));
            }
            drop(code);
            let s = if *n >= 100_000 {
                samples.min(5)
            } else {
                samples
            };
            let ns = if first_ns >= SLOW_NS {
                first_ns
            } else {
                fastest_ns(s, min_ns, || e.compile(black_box(p)))
            };
            series.push((*n, Some(ns)));
            if ns > GIVE_UP_NS {
                gave_up = true;
                skipped.push(format!(
                    "{}: compiling {n} nodes took {:.1} s; larger sizes skipped",
                    e.name(),
                    ns / 1e9
                ));
            }
        }
        compile_rows.push((*e, series));
    }

    // Execute time against iterations (the `sum` workload's shape).
    let sum = crate::workloads::workload("sum")
        .expect("sum workload")
        .program()
        .map_err(|e| e.to_string())?;
    let counts: Vec<usize> = if quick {
        vec![1_000, 10_000, 100_000, 1_000_000]
    } else {
        vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };
    let mut exec_rows = Vec::new();
    for e in engines {
        let mut series = Vec::new();
        let code = if e.supports(&sum).is_ok() {
            e.compile(&sum).ok()
        } else {
            None
        };
        for &n in &counts {
            let Some(code) = &code else {
                series.push((n, None));
                continue;
            };
            let args = [n as i64, 13];
            let expected = 13 * n as i64;
            if code.execute(&args) != Ok(expected) {
                return Err(format!("{} got a wrong sum for {n} iterations", e.name()));
            }
            let s = if n >= 1_000_000 {
                samples.min(5)
            } else {
                samples
            };
            series.push((
                n,
                Some(fastest_ns(s, min_ns, || {
                    assert_eq!(code.execute(black_box(&args)), Ok(expected))
                })),
            ));
        }
        bar.inc(4);
        exec_rows.push((*e, series));
    }
    bar.finish_and_clear();

    let grids = [
        grid(
            "Compile time per node against program size (generated balanced programs)",
            "nodes",
            &node_sizes,
            &compile_rows,
            true,
        ),
        grid(
            "Execute time per iteration against iteration count (`sum`)",
            "iters",
            &counts,
            &exec_rows,
            true,
        ),
    ];
    let mut md = String::from("# Scaling\n\n");
    for g in &grids {
        writeln!(out, "{}", terminal(g)).map_err(io)?;
        md.push_str(&markdown(g));
        md.push('\n');
    }
    for line in &skipped {
        writeln!(out, "{line}").map_err(io)?;
        md.push_str(&format!("- {line}\n"));
    }
    writeln!(
        out,
        "exponent: least-squares slope of log time against log size from 1000 up; ≤ {LINEAR_UP_TO} linear, ≤ {NEAR_LINEAR_UP_TO} near-linear (cache effects), above: worse than linear."
    )
    .map_err(io)?;
    std::fs::create_dir_all(out_dir).map_err(io)?;
    std::fs::write(out_dir.join("scale.md"), md).map_err(io)?;
    writeln!(out, "Written to {}", out_dir.join("scale.md").display()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_programs_have_the_asked_size_and_bounded_depth() {
        for n in [10, 100, 1000, 100_000] {
            let p = generate(n);
            assert!(
                p.node_count() >= n / 2 && p.node_count() <= n * 2 + 20,
                "{n}: {}",
                p.node_count()
            );
            assert!(p.depth() < 40, "{n}: depth {}", p.depth());
            assert_eq!(p.arg_count(), 1);
        }
    }
}
