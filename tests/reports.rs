//! The reports a run writes, rendered from its results: every file
//! written, a chart per workload in the self-contained HTML page, the
//! README section and its charts, the break-even section in Markdown and
//! HTML, and a section per engine with what it compiled `sum` into.

mod stand_ins;

use stand_ins::{PICKY, measure, sum_case};
use vm_perf::clock::Clock;
use vm_perf::engines;
use vm_perf::harness::Case;
use vm_perf::harness::report::{self, charts, html};
use vm_perf::workloads::{WORKLOADS, workload};

#[test]
fn html_has_a_chart_per_workload_and_files_are_written() {
    let cases: Vec<Case> = WORKLOADS.iter().map(Case::builtin).collect();
    let r = measure(&cases, &[engines()[0]], Clock::Thread).unwrap();
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
    let r = measure(&cases, &all[..3], Clock::Thread).unwrap();
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
    let r = measure(&sum_case(), &[walker, &PICKY], Clock::Thread).unwrap();
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
