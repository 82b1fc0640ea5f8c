//! Where a time comes from when an engine's work runs outside the
//! measuring thread, as LuaJIT's does in its helper process: the engine's
//! own figures, on the run's clock, in every harness path (`bench`'s runner
//! and `scale`).

mod stand_ins;

use stand_ins::{REMOTE, scale_for, walker_and_remote};
use vm_perf::clock::Clock;
use vm_perf::workloads::workload;

#[test]
fn bench_uses_a_self_timed_engines_figures_on_the_runs_clock() {
    let iterations = workload("sum")
        .unwrap()
        .iterations(&workload("sum").unwrap().args());
    let nodes = workload("sum").unwrap().program().unwrap().node_count() as f64;
    for clock in [Clock::Thread, Clock::Wall] {
        let r = walker_and_remote(clock);
        let cell = r.cell("remote", "sum").unwrap();
        let per = f64::from(scale_for(clock));
        for ns in &cell.execute_ns {
            assert_eq!(*ns, 10.0 * iterations as f64 * per, "{clock:?}");
        }
        for ns in &cell.compile_ns {
            assert_eq!(*ns, 100.0 * nodes * per, "{clock:?}");
        }
        assert_eq!(cell.execute_ns.len(), r.settings.rounds);
    }
}

#[test]
fn scale_uses_a_self_timed_engines_figures() {
    let dir = std::env::temp_dir().join(format!("vm-perf-scale-test-{}", std::process::id()));
    let mut out = Vec::new();
    vm_perf::harness::scale::run(&mut out, &[REMOTE], true, 100_000, &dir).unwrap();
    let md = std::fs::read_to_string(dir.join("scale.md")).unwrap();
    let row = |title: &str| {
        let table = &md[md.find(title).unwrap()..];
        table
            .lines()
            .find(|l| l.starts_with("| remote |"))
            .unwrap()
            .to_string()
    };
    let compile = row("Compile time per node");
    assert_eq!(compile.matches("100 ns/node").count(), 5, "{compile}");
    assert!(compile.contains("1.00 linear"), "{compile}");
    let execute = row("Execute time per iteration");
    assert_eq!(execute.matches("10.0 ns/iter").count(), 4, "{execute}");
    std::fs::remove_dir_all(&dir).unwrap();
}
