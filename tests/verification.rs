//! The runner holds every execution to the value `walker` gives: a wrong
//! engine stops the run, and a refusal or an exact range the program leaves
//! is `n/a` in the results, never a time.

mod stand_ins;

use stand_ins::{NARROW, OFF_BY_ONE, PICKY, measure, sum_case};
use vm_perf::clock::Clock;
use vm_perf::engines;
use vm_perf::harness::report;

#[test]
fn a_wrong_engine_stops_the_run() {
    let walker = engines()[0];
    let err = measure(&sum_case(), &[walker, &OFF_BY_ONE], Clock::Thread).unwrap_err();
    assert_eq!(err.subject, "off_by_one");
    assert_eq!(err.workload, "sum");
    assert!(err.message.contains("130001"), "{err}");
}

#[test]
fn every_execution_is_verified_and_refusals_are_na() {
    let walker = engines()[0];
    let r = measure(&sum_case(), &[walker, &PICKY, &NARROW], Clock::Thread).unwrap();
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
