//! The headline of every report: the ladder from `walker` to the JITs,
//! one technique per step, each measured against the engine it changes in
//! the same run (time and, when counted, instructions per loop iteration),
//! with the peers and the native candle placed beside it.

use crate::harness::results::{RUST, Results, WALKER};
use crate::harness::stats::{fmt_ratio, geomean, sig3};

/// One step of the ladder: `engine` changes one thing about `from`.
pub struct Step {
    pub engine: &'static str,
    pub label: &'static str,
    /// The engine this step is measured against (`""` for the first).
    pub from: &'static str,
    pub change: &'static str,
}

/// The ladder, bottom to top.
pub const STEPS: &[Step] = &[
    Step {
        engine: WALKER,
        label: "tree walker",
        from: "",
        change: "the reference: a recursive `match` over the tree",
    },
    Step {
        engine: "bytecode",
        label: "bytecode",
        from: WALKER,
        change: "the tree flattened into stack instructions, run by one `match` loop",
    },
    Step {
        engine: "closures",
        label: "closures",
        from: WALKER,
        change: "the tree compiled once into nested closures, so no `match` on node kinds",
    },
    Step {
        engine: "tape_continuations",
        label: "threaded code",
        from: "bytecode",
        change: "each handler tail-calls the next, so no central dispatch loop",
    },
    Step {
        engine: "register_bytecode",
        label: "register machine",
        from: "bytecode",
        change: "three-address instructions over registers instead of a value stack",
    },
    Step {
        engine: "register_continuations",
        label: "register + threaded",
        from: "register_bytecode",
        change: "the register machine on threaded handlers, hot locals in handler arguments",
    },
    Step {
        engine: "register_continuations_fused",
        label: "fused",
        from: "register_continuations",
        change: "declared superinstructions (add-and-loop-test, two adds in one)",
    },
    Step {
        engine: "template_jit",
        label: "template JIT",
        from: "register_continuations_fused",
        change: "x86-64 code, one fixed template per node, so no dispatch is left",
    },
    Step {
        engine: "copy_patch_jit",
        label: "copy-and-patch",
        from: "template_jit",
        change: "the templates written by rustc from Rust stencils, copied and patched, instead of by hand",
    },
    Step {
        engine: "jit",
        label: "Cranelift",
        from: "template_jit",
        change: "an optimising compiler, with SSA values and register allocation",
    },
];

/// What the page shows beside the ladder: the native candle and the peers.
fn beside(r: &Results) -> Vec<&str> {
    let mut v: Vec<&str> = r
        .subjects
        .iter()
        .filter(|s| s.name == RUST || s.tier == "peer")
        .map(|s| s.name.as_str())
        .collect();
    v.sort_by(|a, b| {
        let g = |s: &str| r.geomean_ratio(s, WALKER).unwrap_or(f64::INFINITY);
        g(a).total_cmp(&g(b)).reverse()
    });
    v
}

/// Geometric mean of instructions per loop iteration over the run's
/// workloads, if they were counted.
fn instructions(r: &Results, subject: &str) -> Option<f64> {
    let c = r.instructions.as_ref()?;
    geomean(
        r.workloads
            .iter()
            .filter_map(|w| c.per_iteration(subject, &w.name)),
    )
}

/// Geometric mean over workloads of `subject`'s instructions ÷ `base`'s,
/// on the workloads both ran.
fn instruction_ratio(r: &Results, subject: &str, base: &str) -> Option<f64> {
    let c = r.instructions.as_ref()?;
    geomean(
        r.workloads.iter().filter_map(|w| {
            Some(c.per_iteration(subject, &w.name)? / c.per_iteration(base, &w.name)?)
        }),
    )
}

fn count(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => sig3(v),
        None => "—".into(),
    }
}

/// `2.1× faster` for a time ratio of 0.48 (`fewer`/`more` for counts).
fn step(ratio: Option<f64>, less: &str, more: &str) -> String {
    match ratio {
        Some(x) if x <= 1.0 => format!("{} {less}", fmt_ratio(1.0 / x)),
        Some(x) => format!("{} {more}", fmt_ratio(x)),
        None => "—".into(),
    }
}

/// A table: header and rows of cells (inline Markdown), `left` columns
/// aligned left, the rest right.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub left: Vec<bool>,
}

/// The ladder's rows for the steps this run measured.
pub fn ladder(r: &Results) -> Table {
    let counted = r.instructions.is_some();
    let rows = STEPS
        .iter()
        .filter(|s| r.has(s.engine))
        .map(|s| {
            let vs = if s.from.is_empty() {
                s.change.to_string()
            } else {
                format!("vs `{}`: {}", s.from, s.change)
            };
            let from = (!s.from.is_empty()).then_some(s.from);
            vec![
                s.label.to_string(),
                format!("`{}`", s.engine),
                vs,
                step(
                    from.and_then(|f| r.geomean_ratio(s.engine, f)),
                    "faster",
                    "slower",
                ),
                r.geomean_ratio(s.engine, WALKER)
                    .map_or("—".into(), fmt_ratio),
                count(instructions(r, s.engine)),
                if counted {
                    step(
                        from.and_then(|f| instruction_ratio(r, s.engine, f)),
                        "fewer",
                        "more",
                    )
                } else {
                    "—".into()
                },
            ]
        })
        .collect();
    Table {
        header: [
            "step",
            "engine",
            "what the step changes",
            "time: this step",
            "time vs `walker`",
            "instructions / iteration",
            "instructions: this step",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        left: vec![true, true, true, false, false, false, false],
    }
}

/// The ladder step whose time is nearest `subject`'s (in ratio).
fn nearest(r: &Results, subject: &str) -> Option<String> {
    let t = r.geomean_ratio(subject, WALKER)?;
    let (s, x) = STEPS
        .iter()
        .filter_map(|s| Some((s, r.geomean_ratio(s.engine, WALKER)?)))
        .min_by(|a, b| (t / a.1).ln().abs().total_cmp(&(t / b.1).ln().abs()))?;
    let how = if (t / x - 1.0).abs() < 0.05 {
        "level with".to_string()
    } else if t < x {
        format!("{} faster than", fmt_ratio(x / t))
    } else {
        format!("{} slower than", fmt_ratio(t / x))
    };
    Some(format!("{how} `{}` ({})", s.engine, s.label))
}

/// The peers and the `rust` candle, placed against the ladder.
pub fn peers(r: &Results) -> Table {
    let rows = beside(r)
        .into_iter()
        .map(|name| {
            let what = r
                .subjects
                .iter()
                .find(|s| s.name == name)
                .map_or("", |s| s.summary.as_str());
            vec![
                format!("`{name}`"),
                what.to_string(),
                r.geomean_ratio(name, WALKER).map_or("—".into(), fmt_ratio),
                count(instructions(r, name)),
                nearest(r, name).unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    Table {
        header: [
            "beside it",
            "what it is",
            "time vs `walker`",
            "instructions / iteration",
            "nearest step",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        left: vec![true, true, false, false, true],
    }
}

/// Geometric mean of `subject`'s instructions per loop iteration over one
/// level's workloads, if they were counted.
fn instructions_at(r: &Results, subject: &str, level: u8) -> Option<f64> {
    let c = r.instructions.as_ref()?;
    geomean(
        r.workloads_at(Some(level))
            .filter_map(|w| c.per_iteration(subject, &w.name)),
    )
}

/// Each subject's place on every language level, ordered by the highest
/// level: a design's order on loops of additions beside its order on calls
/// and branches, and how far it moved. `None` for a run of one level.
pub fn levels(r: &Results) -> Option<Table> {
    let levels = r.levels();
    let (&first, &last) = (levels.first()?, levels.last()?);
    if first == last {
        return None;
    }
    let subjects: Vec<&str> = r
        .subjects
        .iter()
        .filter(|s| s.name != "rust_opt")
        .map(|s| s.name.as_str())
        .collect();
    // 1-based place of each subject among those measured on `level`.
    let place = |level: u8| -> Vec<Option<usize>> {
        let times: Vec<Option<f64>> = subjects
            .iter()
            .map(|s| r.geomean_ratio_at(s, WALKER, Some(level)))
            .collect();
        times
            .iter()
            .map(|t| {
                let t = (*t)?;
                Some(1 + times.iter().flatten().filter(|o| **o < t).count())
            })
            .collect()
    };
    let (low, high) = (place(first), place(last));
    let mut order: Vec<usize> = (0..subjects.len()).collect();
    order.sort_by_key(|&i| (high[i].unwrap_or(usize::MAX), low[i].unwrap_or(usize::MAX)));
    let rows = order
        .into_iter()
        .map(|i| {
            let s = subjects[i];
            let tier = r
                .subjects
                .iter()
                .find(|x| x.name == s)
                .map_or("", |x| x.tier.as_str());
            let time = |level| {
                r.geomean_ratio_at(s, WALKER, Some(level))
                    .map_or(crate::harness::table::NA.into(), fmt_ratio)
            };
            let rank = |p: Option<usize>| p.map_or("—".into(), |p| p.to_string());
            let moved = match (low[i], high[i]) {
                (Some(a), Some(b)) if b < a => format!("up {}", a - b),
                (Some(a), Some(b)) if b > a => format!("down {}", b - a),
                (Some(_), Some(_)) => "same".into(),
                _ => "—".into(),
            };
            vec![
                format!("`{s}`"),
                tier.to_string(),
                time(first),
                rank(low[i]),
                time(last),
                rank(high[i]),
                moved,
                count(instructions_at(r, s, first)),
                count(instructions_at(r, s, last)),
            ]
        })
        .collect();
    Some(Table {
        header: vec![
            "engine".into(),
            "tier".into(),
            format!("Level {first}: time vs `walker`"),
            "place".into(),
            format!("Level {last}: time vs `walker`"),
            "place".into(),
            format!("Level {last} vs Level {first}"),
            format!("Level {first}: instructions / iteration"),
            format!("Level {last}: instructions / iteration"),
        ],
        rows,
        left: vec![true, true, false, false, false, false, true, false, false],
    })
}

/// How the ladder was measured, in one paragraph of Markdown.
pub fn note(r: &Results) -> String {
    let workloads = r
        .workloads
        .iter()
        .map(|w| format!("`{}`", w.name))
        .collect::<Vec<_>>()
        .join(", ");
    let counts = if r.instructions.is_some() {
        "instructions per loop iteration counted with callgrind (execute stage only)"
    } else {
        "no instruction counts in this run (`vm-perf bench --instructions` into the same \
         `--out` folder adds them)"
    };
    let rust = if r.has(RUST) {
        " The `rust` candle is the same loop in Rust with every operand read black-boxed, so \
         it cannot be folded; `rust_opt`, plain Rust, folds some loops away and is not a rung."
    } else {
        ""
    };
    format!(
        "Geometric means over the workloads of one {} run ({workloads}; an engine that refuses \
         a workload is compared on the rest). Each \"this step\" column divides an engine's \
         time (or instructions) by those of the engine its step changes, on the same \
         workloads; {counts}.{rust}",
        if r.settings.quick { "quick" } else { "full" },
    )
}

/// A table as Markdown.
pub fn markdown(t: &Table) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|",
        t.header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for left in &t.left {
        out.push_str(if *left { " :--- |" } else { " ---: |" });
    }
    out.push('\n');
    for row in &t.rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

/// The ladder, the peers beside it, the order on each level and the note,
/// as Markdown.
pub fn section_markdown(r: &Results) -> String {
    let levels = levels(r).map_or(String::new(), |t| {
        format!(
            "Every engine's place on each level (geometric means of its time vs `walker` over \
             that level's workloads), in its Level-2 order:\n\n{}\n",
            markdown(&t)
        )
    });
    format!(
        "{}\n{}\n{levels}{}\n",
        markdown(&ladder(r)),
        markdown(&peers(r)),
        note(r)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::harness::{Case, Clock, Settings, runner};
    use crate::workloads::workload;

    /// A few milliseconds' run of `engines` on `sum` and `fib`, candles included.
    pub(crate) fn tiny_run(engines: &[&str]) -> Results {
        run_on(engines, &["sum", "fib"])
    }

    /// The same on chosen workloads.
    pub(crate) fn run_on(engines: &[&str], workloads: &[&str]) -> Results {
        let settings = Settings {
            quick: true,
            rounds: 0,
            max_rounds: 5,
            sample_ms: 0.2,
            warmup_rounds: 1,
            budget_seconds: 0.02,
            seed: 1,
            clock: Clock::Thread,
        };
        let cases: Vec<Case> = workloads
            .iter()
            .map(|w| Case::builtin(workload(w).unwrap()))
            .collect();
        let engines: Vec<_> = engines
            .iter()
            .map(|e| crate::engine::engine(e).unwrap())
            .collect();
        runner::run(
            &cases,
            &engines,
            true,
            &settings,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap()
    }

    #[test]
    fn the_ladder_has_a_row_per_measured_step_and_the_candle_beside_it() {
        let r = tiny_run(&["walker", "bytecode", "register_bytecode"]);
        let t = ladder(&r);
        let engines: Vec<&str> = t.rows.iter().map(|row| row[1].as_str()).collect();
        assert_eq!(engines, ["`walker`", "`bytecode`", "`register_bytecode`"]);
        assert!(t.rows.iter().all(|row| row.len() == t.header.len()));
        // Each step against the engine it changes, `walker` against none.
        assert_eq!(t.rows[0][3], "—");
        assert!(
            t.rows[2][2].starts_with("vs `bytecode`: "),
            "{:?}",
            t.rows[2]
        );
        assert!(t.rows[1][3].ends_with(" faster") || t.rows[1][3].ends_with(" slower"));
        assert_eq!(t.rows[0][4], "1.00×");
        // Not counted: no instruction figures, and the note says how to get them.
        assert!(t.rows.iter().all(|row| row[5] == "—" && row[6] == "—"));
        assert!(note(&r).contains("--instructions"));
        let p = peers(&r);
        assert_eq!(p.rows.len(), 1, "only the `rust` candle: {:?}", p.rows);
        assert_eq!(p.rows[0][0], "`rust`");
        assert!(p.rows[0][4].contains("than `") || p.rows[0][4].starts_with("level with"));
        let md = section_markdown(&r);
        assert!(md.starts_with("| step | engine |") && md.contains("| ---: |"));
    }

    #[test]
    fn the_levels_table_places_every_engine_on_each_level() {
        assert!(
            levels(&tiny_run(&["walker"])).is_none(),
            "one level: no table"
        );
        let r = run_on(&["walker", "bytecode"], &["sum", "fib_recursive"]);
        let t = levels(&r).unwrap();
        assert_eq!(t.header[2], "Level 1: time vs `walker`");
        assert_eq!(t.header[4], "Level 2: time vs `walker`");
        let names: Vec<&str> = t.rows.iter().map(|row| row[0].as_str()).collect();
        for name in ["`walker`", "`bytecode`", "`rust`"] {
            assert!(names.contains(&name), "{names:?}");
        }
        assert!(!names.contains(&"`rust_opt`"));
        let walker = t.rows.iter().find(|row| row[0] == "`walker`").unwrap();
        assert_eq!((walker[2].as_str(), walker[4].as_str()), ("1.00×", "1.00×"));
        // Places are 1-based ranks among the engines measured on that level,
        // and the rows follow the Level-2 places.
        let places: Vec<usize> = t
            .rows
            .iter()
            .filter_map(|row| row[5].parse().ok())
            .collect();
        assert!(
            places.windows(2).all(|w| w[0] <= w[1]) && places[0] == 1,
            "{places:?}"
        );
        assert!(t.rows.iter().all(|row| row.len() == t.header.len()));
        assert!(section_markdown(&r).contains("| engine | tier | Level 1: time vs `walker` |"));
    }

    #[test]
    fn every_step_is_measured_against_an_earlier_step() {
        for (i, s) in STEPS.iter().enumerate().skip(1) {
            assert!(
                STEPS[..i].iter().any(|e| e.engine == s.from),
                "{} is measured against {}, which is not below it",
                s.engine,
                s.from
            );
        }
        assert_eq!(STEPS[0].engine, WALKER);
    }

    #[test]
    fn a_step_reads_as_faster_or_slower() {
        assert_eq!(step(Some(0.5), "faster", "slower"), "2.00× faster");
        assert_eq!(step(Some(1.25), "faster", "slower"), "1.25× slower");
        assert_eq!(step(None, "faster", "slower"), "—");
    }
}
