//! What the harness reports about where its numbers come from (never the
//! numbers themselves): an engine whose work runs outside the measuring
//! thread, as LuaJIT's does in its helper process, is timed by its own
//! figures on the run's clock in every harness path (`bench`'s runner and
//! `scale`); results carry the machine's identity and, after `bench
//! --instructions`, instruction counts beside the times.

use indicatif::ProgressBar;
use std::time::Duration;
use vm_perf::clock::Clock;
use vm_perf::engine::{Registered, Technique, TimedRuns};
use vm_perf::harness::counts::{Count, InstructionCounts};
use vm_perf::harness::machine::{Build, Machine};
use vm_perf::harness::report::{self, json};
use vm_perf::harness::{Case, Results, Settings, instructions, run};
use vm_perf::workloads::workload;
use vm_perf::{CallDepthExceeded, CompileError, Engine, Executable, Program, Tier, engines};

/// Pretends to run elsewhere and reports figures no clock here could give:
/// 10 ns per loop iteration and 100 ns per node on the thread clock, twice
/// that on the wall clock. Its values are walker's, so it is verified like
/// any engine.
struct Remote;

fn scale_for(clock: Clock) -> u32 {
    match clock {
        Clock::Thread => 1,
        Clock::Wall => 2,
    }
}

impl Technique for Remote {
    const NAME: &'static str = "remote";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "times itself";
    /// Walker's code, and the program's size.
    type Code = (Box<dyn Executable>, u32);

    fn compile(program: &Program) -> Result<Self::Code, CompileError> {
        Ok((engines()[0].compile(program)?, program.node_count() as u32))
    }
    fn compile_timed(
        program: &Program,
        clock: Clock,
    ) -> Option<Result<(Self::Code, Duration), CompileError>> {
        let code = Self::compile(program);
        Some(code.map(|c| {
            let time = Duration::from_nanos(100) * c.1 * scale_for(clock);
            (c, time)
        }))
    }
    unsafe fn execute((code, _): &Self::Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
        Ok(code.execute(args).unwrap())
    }
    unsafe fn execute_timed(
        (code, _): &Self::Code,
        args: &[i64],
        reps: u64,
        expected: i64,
        clock: Clock,
    ) -> Option<TimedRuns> {
        let runs = (0..reps).map(|_| code.execute(args).unwrap());
        let wrong = runs.into_iter().find(|v| *v != expected);
        // `sum` and `scale`'s programs loop arg(0) times.
        let per_run = Duration::from_nanos(10 * args[0] as u64) * scale_for(clock);
        Some(TimedRuns {
            time: per_run * reps as u32,
            wrong,
        })
    }
    fn show((code, _): &Self::Code) -> String {
        code.show()
    }
}

const REMOTE: &dyn Engine = &Registered::<Remote>::NEW;

fn tiny(clock: Clock) -> Settings {
    let quick = Settings::quick();
    Settings {
        max_rounds: 7,
        sample_ms: 0.2,
        budget_seconds: 0.02,
        seed: 1,
        clock,
        ..quick
    }
}

fn measure(clock: Clock) -> Results {
    let cases = vec![Case::builtin(workload("sum").unwrap())];
    run(
        &cases,
        &[engines()[0], REMOTE],
        true,
        &tiny(clock),
        &ProgressBar::hidden(),
    )
    .unwrap()
}

#[test]
fn bench_uses_a_self_timed_engines_figures_on_the_runs_clock() {
    let iterations = workload("sum")
        .unwrap()
        .iterations(&workload("sum").unwrap().args());
    let nodes = workload("sum").unwrap().program().unwrap().node_count() as f64;
    for clock in [Clock::Thread, Clock::Wall] {
        let r = measure(clock);
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

#[test]
fn results_say_which_machine_and_build_they_come_from() {
    let r = measure(Clock::Thread);
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
    let timed = measure(Clock::Thread);
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
