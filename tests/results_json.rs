//! What `results.json` records and reads back: it round-trips, says which
//! machine and build the times come from (and files written before those
//! fields existed still load), and keeps instruction counts beside the
//! times of the same folder, in it and in the reports rewritten from it.

mod stand_ins;

use stand_ins::{REMOTE, measure, sum_case, walker_and_remote};
use vm_perf::clock::Clock;
use vm_perf::engines;
use vm_perf::harness::counts::{Count, InstructionCounts};
use vm_perf::harness::machine::{Build, Machine};
use vm_perf::harness::report::{self, json};
use vm_perf::harness::{Case, instructions};
use vm_perf::workloads::workload;

#[test]
fn json_round_trips() {
    let r = measure(&sum_case(), &[engines()[0]], Clock::Thread).unwrap();
    let text = json::render(&r);
    assert_eq!(json::parse(&text).unwrap(), r);
    assert!(text.contains("\"rustc\"") && text.contains("\"cpu\""));
}

#[test]
fn results_say_which_machine_and_build_they_come_from() {
    let r = walker_and_remote(Clock::Thread);
    assert_eq!(r.machine, Machine::detect());
    let text = json::render(&r);
    for field in [
        "\"family\"",
        "\"model\"",
        "\"stepping\"",
        "\"caches\"",
        "\"mhz\"",
        "\"features\"",
    ] {
        assert!(text.contains(field), "{field} missing from results.json");
    }
    // Results written before these fields existed still load.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "vendor",
        "family",
        "model",
        "stepping",
        "microcode",
        "mhz",
        "caches",
        "cpu_flags",
        "virtualised",
    ] {
        old["machine"].as_object_mut().unwrap().remove(key);
    }
    let old = json::parse(&old.to_string()).unwrap();
    assert_eq!(old.machine.family, None);
    assert_eq!(old.cells, r.cells);
}

/// Counts as `bench --instructions` records them (callgrind itself runs in
/// CI's smoke leg; here only where they go matters).
fn counts() -> InstructionCounts {
    InstructionCounts {
        machine: Machine::detect(),
        build: Build::current(),
        started_unix: 0,
        counts: vec![
            Count {
                subject: "walker".into(),
                workload: "sum".into(),
                iterations: 10_000,
                instructions: Some(1_234_000),
                refused: None,
            },
            Count {
                subject: "remote".into(),
                workload: "sum".into(),
                iterations: 10_000,
                instructions: None,
                refused: Some("runs in a helper process".into()),
            },
        ],
    }
}

#[test]
fn instruction_counts_join_the_times_in_the_same_reports() {
    let dir = std::env::temp_dir().join(format!("vm-perf-counts-test-{}", std::process::id()));
    let timed = walker_and_remote(Clock::Thread);
    report::write_all(&timed, &dir).unwrap();
    let cases = vec![Case::builtin(workload("sum").unwrap())];
    let both = instructions::keep(&dir, counts(), &[engines()[0], REMOTE], &cases).unwrap();
    // The times a timed run left are kept, the counts added.
    assert_eq!(both.cells, timed.cells);
    let kept = json::parse(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(kept, both);
    assert_eq!(InstructionCounts::kept_in(&dir), both.instructions);
    let c = both.instructions.as_ref().unwrap();
    assert_eq!(c.per_iteration("walker", "sum"), Some(123.4));
    for file in ["results.md", "index.html"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            text.contains("Median execute time per loop iteration"),
            "{file}"
        );
        assert!(text.contains("Instructions per loop iteration"), "{file}");
        assert!(text.contains("123"), "{file}");
    }
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("same build and machine as the times"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Without a timed run first, the counts make results of their own.
    let alone = instructions::keep(&dir, counts(), &[engines()[0], REMOTE], &cases).unwrap();
    assert!(alone.cells.is_empty());
    assert_eq!(alone.workloads, timed.workloads);
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("Instructions per loop iteration"), "{md}");
    assert!(!md.contains("Median execute time"), "{md}");
    assert!(md.contains("execute stage only, by rustc"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}
