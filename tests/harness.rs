//! Tests of the measurement harness itself (never of timings): it verifies
//! every result, rejects a wrong engine, its JSON round-trips, and its HTML
//! has a chart per workload.

use indicatif::ProgressBar;
use vm_perf::harness::report::{self, charts, html, json};
use vm_perf::harness::runner::Wrong;
use vm_perf::harness::{Case, Clock, Results, Settings, run};
use vm_perf::workloads::{WORKLOADS, workload};
use vm_perf::{CompileError, Engine, Executable, Program, RunError, Tier, engines};

fn tiny() -> Settings {
    Settings {
        quick: true,
        rounds: 0,
        max_rounds: 7,
        sample_ms: 0.2,
        warmup_rounds: 1,
        budget_seconds: 0.02,
        seed: 1,
        clock: Clock::Thread,
    }
}

/// A stand-in engine: walker's answer plus one, or a refusal of everything.
struct Fake {
    name: &'static str,
    tier: Tier,
    summary: &'static str,
    exact_magnitude: Option<u64>,
    refuses: bool,
}

/// Compiles anything and answers `walker + 1`.
const OFF_BY_ONE: Fake = Fake {
    name: "off_by_one",
    tier: Tier::Beyond,
    summary: "deliberately wrong",
    exact_magnitude: None,
    refuses: false,
};

/// Refuses every program.
const PICKY: Fake = Fake {
    name: "picky",
    tier: Tier::Peer,
    summary: "refuses everything",
    exact_magnitude: None,
    refuses: true,
};

/// A pretend exact range of ±1000 (like a float-based peer), and wrong
/// beyond it on purpose, to prove it is never asked there.
const NARROW: Fake = Fake {
    name: "narrow",
    tier: Tier::Peer,
    summary: "exact only up to 1000",
    exact_magnitude: Some(1000),
    refuses: false,
};

struct OffByOneCode(Box<dyn Executable>);

impl Engine for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    fn tier(&self) -> Tier {
        self.tier
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn exact_magnitude(&self) -> Option<u64> {
        self.exact_magnitude
    }
    fn supports(&self, _: &Program) -> Result<(), String> {
        if self.refuses {
            return Err("nothing is good enough".into());
        }
        Ok(())
    }
    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, CompileError> {
        if self.refuses {
            return Err(CompileError("refused".into()));
        }
        Ok(Box::new(OffByOneCode(engines()[0].compile(program)?)))
    }
}

impl Executable for OffByOneCode {
    fn arg_count(&self) -> usize {
        self.0.arg_count()
    }
    fn execute(&self, args: &[i64]) -> Result<i64, RunError> {
        self.0.execute(args).map(|v| v.wrapping_add(1))
    }
    fn show(&self) -> String {
        self.0.show()
    }
}

/// A tiny run, with the candles, and no progress bar.
fn measure(cases: &[Case], engines: &[&dyn Engine]) -> Result<Results, Wrong> {
    run(cases, engines, true, &tiny(), &ProgressBar::hidden())
}

fn sum_case() -> Vec<Case> {
    vec![Case::builtin(workload("sum").unwrap())]
}

#[test]
fn a_wrong_engine_stops_the_run() {
    let walker = engines()[0];
    let err = measure(&sum_case(), &[walker, &OFF_BY_ONE]).unwrap_err();
    assert_eq!(err.subject, "off_by_one");
    assert_eq!(err.workload, "sum");
    assert!(err.message.contains("130001"), "{err}");
}

#[test]
fn every_execution_is_verified_and_refusals_are_na() {
    let walker = engines()[0];
    let r = measure(&sum_case(), &[walker, &PICKY, &NARROW]).unwrap();
    let narrow = r.cell("narrow", "sum").unwrap().refused.as_deref().unwrap();
    assert!(narrow.contains("exact range"), "{narrow}");
    let w = r.cell("walker", "sum").unwrap();
    assert_eq!(r.settings.rounds, 7);
    assert_eq!(w.execute_ns.len(), 7);
    assert_eq!(w.compile_ns.len(), 7);
    // Warm-up, calibration and rounds all count as verified executions.
    assert!(w.verified_executions > 8 * w.reps_per_sample);
    assert!(r.cell("rust", "sum").unwrap().execute.is_some());
    assert!(r.cell("rust_opt", "sum").is_some());
    let p = r.cell("picky", "sum").unwrap();
    assert_eq!(p.refused.as_deref(), Some("nothing is good enough"));
    assert!(p.execute.is_none());
    assert_eq!(r.ratio("walker", "sum", "walker"), Some(1.0));
    let md = report::md::render(&r, "charts", 1);
    assert!(md.contains("n/a") && md.contains("| peer |"), "{md}");
}

#[test]
fn json_round_trips() {
    let r = measure(&sum_case(), &[engines()[0]]).unwrap();
    let text = json::render(&r);
    assert_eq!(json::parse(&text).unwrap(), r);
    assert!(text.contains("\"rustc\"") && text.contains("\"cpu\""));
}

#[test]
fn html_has_a_chart_per_workload_and_files_are_written() {
    // `deep_recursion` holds MAX_CALLS calls, which walker (and its
    // budgeted twin) hold on the native stack: a thread with room for them.
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(html_has_a_chart_per_workload_and_files_are_written_here)
        .unwrap()
        .join()
        .unwrap();
}

fn html_has_a_chart_per_workload_and_files_are_written_here() {
    let cases: Vec<Case> = WORKLOADS.iter().map(Case::builtin).collect();
    let r = measure(&cases, &[engines()[0]]).unwrap();
    let page = html::render(&r);
    for w in WORKLOADS {
        let id = format!(
            "id=\"chart-{}\"",
            charts::file_name(w.name).trim_end_matches(".svg")
        );
        let at = page
            .find(&id)
            .unwrap_or_else(|| panic!("no chart for {}", w.name));
        assert!(
            page[at..]
                .trim_start_matches(&id)
                .trim_start_matches(">")
                .trim_start()
                .starts_with("<svg"),
            "{}",
            w.name
        );
    }
    assert!(page.contains("id=\"chart-geomean\""));
    assert!(
        !page.contains("src=\"http"),
        "the page must be self-contained"
    );

    let dir = std::env::temp_dir().join(format!("vm-perf-report-test-{}", std::process::id()));
    let written = report::write_all(&r, &dir).unwrap();
    for f in [
        "results.json",
        "results.csv",
        "results.md",
        "index.html",
        "charts/geomean.svg",
    ] {
        assert!(written.contains(&dir.join(f)), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * WORKLOADS.len());

    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "# Title\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nTail\n",
    )
    .unwrap();
    report::update_readme(&r, &readme, "docs/results").unwrap();
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.starts_with("# Title") && text.ends_with("Tail\n") && !text.contains("\nold\n"));
    assert!(text.contains("](docs/results/sum.svg)") && dir.join("docs/results/sum.svg").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_break_even_section_is_in_both_reports() {
    let cases: Vec<Case> = ["sum", "fib"]
        .iter()
        .map(|w| Case::builtin(workload(w).unwrap()))
        .collect();
    let all = engines();
    let r = measure(&cases, &all[..3]).unwrap();
    let page = html::render(&r);
    let md = report::md::render(&r, "charts", 1);
    for w in ["sum", "fib"] {
        let file = report::breakeven::chart_file(w);
        let id = file.trim_end_matches(".svg");
        assert!(page.contains(&format!("<figure id=\"{id}\">\n<svg")), "{w}");
        assert!(md.contains(&format!("![{id}](charts/{file})")), "{w}");
    }
    assert!(md.contains("overtakes `walker`**") && md.contains("overtakes the best interpreter**"));
    assert!(page.contains("overtakes <code>walker</code></h3>"));
    assert!(page.contains("overtakes the best interpreter</h3>"));
    // Every engine row of the break-even tables has a cell per workload.
    for g in report::breakeven::grids(&r) {
        assert_eq!(g.header.len(), 4);
        assert!(g.rows.iter().all(|row| row.len() == 4), "{}", g.title);
    }
}

#[test]
fn every_engine_links_to_its_section_with_what_it_compiled_sum_into() {
    let walker = engines()[0];
    let r = measure(&sum_case(), &[walker, &PICKY]).unwrap();
    let page = html::render(&r);
    assert!(page.contains("<td><a href=\"#engine-walker\">walker</a></td>"));
    let at = page.find("<section id=\"engine-walker\"").unwrap();
    let section = &page[at..at + page[at..].find("</section>").unwrap()];
    let summary = report::teach::split(report::teach::doc("walker").unwrap()).0;
    assert!(summary.starts_with("`walker` — "), "{summary}");
    assert!(section.contains("<p><code>walker</code> — "), "{section}");
    let sum = workload("sum").unwrap().program().unwrap();
    let shown = walker.compile(&sum).unwrap().show();
    let first = shown.lines().next().unwrap();
    let first = first
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(section.contains("<summary>What it compiled <code>sum</code> into</summary>"));
    assert!(section.contains(&first), "{section}");
    // An engine of no module of this build gets its summary, and no listing.
    let at = page.find("<section id=\"engine-picky\"").unwrap();
    let section = &page[at..at + page[at..].find("</section>").unwrap()];
    assert!(section.contains("<p>refuses everything</p>") && !section.contains("<details>"));
    // Candles have no section.
    assert!(!page.contains("id=\"engine-rust\""));
}
