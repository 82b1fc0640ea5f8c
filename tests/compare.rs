//! `vm-perf compare` on fabricated runs: the change per engine and workload
//! with its interval, significance only when the intervals are apart, the
//! per-engine summary and rank changes, the warnings, `--fail-above` and
//! Markdown.
//!
//! The files are written as JSON text with exactly the fields a
//! `results.json` had when `compare` was added, so a later vm-perf that
//! adds fields must still read them (serde defaults).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One cell: median execute ns with its 95 % interval.
type Cell = (&'static str, &'static str, f64, f64, f64);

fn cell_json((subject, workload, median, low, high): Cell) -> String {
    format!(
        r#"{{"subject":"{subject}","workload":"{workload}","refused":null,"reps_per_sample":10,
"execute_ns":[{low},{median},{high}],"compile_ns":[100.0,100.0,100.0],"verified_executions":40,
"execute":{{"samples":3,"min":{low},"median":{median},"max":{high},"ci_low":{low},"ci_high":{high}}},
"compile":{{"samples":3,"min":100.0,"median":100.0,"max":100.0,"ci_low":100.0,"ci_high":100.0}}}}"#
    )
}

fn results_json(cpu: &str, subjects: &[(&str, &str)], cells: &[Cell]) -> String {
    let subjects: Vec<String> = subjects
        .iter()
        .map(|(name, tier)| format!(r#"{{"name":"{name}","tier":"{tier}","summary":"s"}}"#))
        .collect();
    let cells: Vec<String> = cells.iter().copied().map(cell_json).collect();
    format!(
        r#"{{"machine":{{"cpu":"{cpu}","cores":2,"os":"Debian","kernel":"6.1","arch":"x86_64"}},
"build":{{"rustc":"rustc 1.95.0","profile":"release","opt_level":"3","debug_assertions":false,
"rustflags":"","target":"x86_64-unknown-linux-gnu","vm_perf_version":"0.1.0"}},
"settings":{{"quick":true,"rounds":3,"max_rounds":101,"sample_ms":1.0,"warmup_rounds":1,
"budget_seconds":8.0,"seed":24301,"clock":"thread"}},
"started_unix":1,"wall_seconds":1.0,
"workloads":[
{{"name":"sum","description":"d","args":[10000,13],"expected":130000,"iterations":10000,"nodes":20}},
{{"name":"fib","description":"d","args":[90,100],"expected":5,"iterations":9000,"nodes":40}}],
"subjects":[{}],
"cells":[{}]}}"#,
        subjects.join(","),
        cells.join(",")
    )
}

const BASE_SUBJECTS: &[(&str, &str)] = &[
    ("walker", "original"),
    ("bytecode", "original"),
    ("closures", "original"),
    ("rust", "native"),
];

const BASE: &[Cell] = &[
    ("walker", "sum", 1000.0, 990.0, 1010.0),
    ("walker", "fib", 2000.0, 1980.0, 2020.0),
    ("bytecode", "sum", 500.0, 495.0, 505.0),
    ("bytecode", "fib", 800.0, 790.0, 810.0),
    ("closures", "sum", 1200.0, 1190.0, 1210.0),
    ("closures", "fib", 2400.0, 2380.0, 2420.0),
    ("rust", "sum", 10.0, 9.9, 10.1),
    ("rust", "fib", 20.0, 19.9, 20.1),
];

/// The new run as `(engine, workload, median, half its interval's width
/// relative to it)`: bytecode +20 % on sum and −15 % on fib, both outside
/// the noise; walker within it; closures overtakes walker; `tape` is new.
const NEW: &[(&str, &str, f64, f64)] = &[
    ("walker", "sum", 1005.0, 0.02),
    ("walker", "fib", 2000.0, 0.005),
    ("bytecode", "sum", 600.0, 0.01),
    ("bytecode", "fib", 680.0, 0.01),
    ("closures", "sum", 900.0, 0.01),
    ("closures", "fib", 1800.0, 0.01),
    ("tape", "sum", 5000.0, 0.002),
    ("tape", "fib", 10000.0, 0.002),
    ("rust", "sum", 10.0, 0.01),
    ("rust", "fib", 20.0, 0.005),
];

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("vm-perf-compare-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn two_runs(f: &Files, new_cpu: &str) -> (PathBuf, PathBuf) {
    let mut new_subjects = BASE_SUBJECTS.to_vec();
    new_subjects.insert(3, ("tape", "beyond"));
    let new: Vec<Cell> = NEW
        .iter()
        .map(|&(s, w, m, half)| (s, w, m, m * (1.0 - half), m * (1.0 + half)))
        .collect();
    (
        f.write("base.json", &results_json("CPU A", BASE_SUBJECTS, BASE)),
        f.write("new.json", &results_json(new_cpu, &new_subjects, &new)),
    )
}

fn compare(base: &Path, new: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec![OsStr::new("compare"), base.as_os_str(), new.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let out = common::vm_perf(args, b"");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The terminal table's row for `engine` on `workload`, cells trimmed.
fn row(text: &str, engine: &str, workload: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            l.split(['│', '┆'])
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cells| {
            cells.first().map(String::as_str) == Some(engine)
                && cells.get(1).map(String::as_str) == Some(workload)
        })
        .unwrap_or_else(|| panic!("no row {engine} {workload} in\n{text}"))
}

#[test]
fn changes_are_significant_only_when_the_intervals_are_apart() {
    let f = Files::new("terminal");
    let (base, new) = two_runs(&f, "CPU A");
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, Some(0), "{err}");
    // Per iteration: sum has 10,000 iterations, 500 ns → 0.05 ns.
    assert_eq!(
        row(&out, "bytecode", "sum"),
        [
            "bytecode",
            "sum",
            "0.0500 ns",
            "0.0600 ns",
            "+20%",
            "+18% … +22%",
            "slower"
        ]
    );
    assert_eq!(
        row(&out, "bytecode", "fib")[4..],
        ["−15%", "−17% … −13%", "faster"]
    );
    // +0.5 % inside overlapping intervals is no change.
    assert_eq!(
        row(&out, "walker", "sum")[4..],
        ["+0.5%", "−2.5% … +3.5%", "no change"]
    );
    // Per engine: geomean of +20 % and −15 %, and the ranks (vs rust).
    let closures = row(&out, "closures", "original");
    assert_eq!(closures[2], "−25%");
    assert_eq!(closures[5], "4 → 3 (↑1)");
    assert_eq!(row(&out, "walker", "original")[5], "3 → 4 (↓1)");
    assert!(
        out.contains("4 of 8 engine × workload cells changed significantly: 3 faster, 1 slower."),
        "{out}"
    );
    assert!(
        out.contains("warning: engines only in the new run, not compared: `tape`"),
        "{out}"
    );
    assert!(!out.contains("different machines"), "{out}");
}

#[test]
fn different_machines_are_warned_about() {
    let f = Files::new("machines");
    let (base, new) = two_runs(&f, "CPU B");
    let (code, out, _) = compare(&base, &new, &[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("warning: the runs come from different machines (cpu `CPU A` → `CPU B`)"),
        "{out}"
    );
}

#[test]
fn fail_above_sets_the_exit_status() {
    let f = Files::new("fail");
    let (base, new) = two_runs(&f, "CPU A");
    let (code, _, err) = compare(&base, &new, &["--fail-above", "10"]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(
        err.trim_end(),
        "vm-perf: 1 significant slowdown above 10%: bytecode on sum +20%"
    );
    // Above the slowdown's size, or the same run twice: success.
    assert_eq!(compare(&base, &new, &["--fail-above", "25"]).0, Some(0));
    assert_eq!(compare(&base, &base, &["--fail-above", "0"]).0, Some(0));
    // The other way round, bytecode's fib change is the slowdown.
    let (code, _, err) = compare(&new, &base, &["--fail-above", "5"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("bytecode on fib +18%"), "{err}");
}

#[test]
fn markdown_for_a_pull_request() {
    let f = Files::new("markdown");
    let (base, new) = two_runs(&f, "CPU B");
    let (code, out, _) = compare(&base, &new, &["--markdown"]);
    assert_eq!(code, Some(0));
    let base_name = base.display().to_string();
    assert!(
        out.starts_with(&format!(
            "### vm-perf: `{}` against `{base_name}`",
            new.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("> **Warning**: the runs come from different machines"),
        "{out}"
    );
    assert!(
        out.contains("| bytecode | sum | 0.0500 ns | 0.0600 ns | +20% | +18% … +22% | slower |"),
        "{out}"
    );
    assert!(out.contains("**Significant changes**"), "{out}");
    assert!(
        out.contains("<details><summary>All 8 engine × workload cells</summary>"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("</details>"), "{out}");
}

#[test]
fn files_that_are_not_results_are_errors() {
    let f = Files::new("bad");
    let good = f.write("good.json", &results_json("CPU A", BASE_SUBJECTS, BASE));
    let bad = f.write("bad.json", "{\"cells\": 3}");
    let (code, _, err) = compare(&good, &bad, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!(
            "vm-perf: error: {}: not a vm-perf results.json",
            bad.display()
        )),
        "{err}"
    );
    let (code, _, err) = compare(&f.dir.join("missing.json"), &good, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("missing.json: cannot read file"), "{err}");
}

#[test]
fn drift_that_hits_every_engine_cancels_relative_to_walker() {
    let f = Files::new("drift");
    // The same engines 3 % slower across the board, intervals ±1 %.
    let drifted: Vec<Cell> = BASE
        .iter()
        .map(|&(s, w, m, low, high)| (s, w, m * 1.03, low * 1.03, high * 1.03))
        .collect();
    let base = f.write("base.json", &results_json("CPU A", BASE_SUBJECTS, BASE));
    let new = f.write("new.json", &results_json("CPU A", BASE_SUBJECTS, &drifted));
    let (code, out, _) = compare(&base, &new, &["--fail-above", "2"]);
    assert_eq!(code, Some(3));
    assert!(
        out.contains("warning: every engine moved the same way (geometric mean +3.0%)"),
        "{out}"
    );
    assert_eq!(row(&out, "bytecode", "sum")[6], "slower");
    let (code, out, err) = compare(
        &base,
        &new,
        &["--fail-above", "2", "--relative-to", "walker"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("moved the same way"), "{out}");
    assert_eq!(
        row(&out, "bytecode", "sum"),
        [
            "bytecode",
            "sum",
            "0.500×",
            "0.500×",
            "+0.0%",
            "−3.9% … +4.1%",
            "no change"
        ]
    );
    // When the reference itself moved, every engine moves against it.
    let walker_faster: Vec<Cell> = BASE
        .iter()
        .map(|&(s, w, m, low, high)| match s {
            "walker" => (s, w, m * 0.8, low * 0.8, high * 0.8),
            _ => (s, w, m, low, high),
        })
        .collect();
    let moved = f.write(
        "moved.json",
        &results_json("CPU A", BASE_SUBJECTS, &walker_faster),
    );
    let (_, out, _) = compare(&base, &moved, &["--relative-to", "walker"]);
    assert!(
        out.contains("warning: every engine moved the same way against `walker` (geometric mean +25%): `walker` itself moved by −20%"),
        "{out}"
    );
    assert!(!out.contains("native candle"), "{out}");
    // The reference has no row of its own, and must be in both runs.
    assert!(!out.lines().any(|l| l.starts_with("│ walker ")), "{out}");
    let (code, _, err) = compare(&base, &new, &["--relative-to", "tape"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim_end(),
        "vm-perf: error: `tape` is not measured in both runs"
    );
}
