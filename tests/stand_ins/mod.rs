//! What the harness tests measure with: stand-in engines (one wrong on
//! purpose, one that refuses everything, one exact only in a narrow range,
//! one that times itself) and settings that make a run take milliseconds.

// Each test file that includes this module uses only some of it.
#![allow(dead_code)]

use indicatif::ProgressBar;
use std::time::Duration;
use vm_perf::clock::Clock;
use vm_perf::engine::{Registered, Technique, TimedRuns};
use vm_perf::harness::runner::Wrong;
use vm_perf::harness::{Case, Results, Settings, run};
use vm_perf::workloads::workload;
use vm_perf::{
    CallDepthExceeded, CompileError, Engine, Executable, Program, RunError, Tier, engines,
};

/// A run of a few rounds of a fraction of a millisecond each.
pub fn tiny(clock: Clock) -> Settings {
    Settings {
        quick: true,
        rounds: 0,
        max_rounds: 7,
        sample_ms: 0.2,
        warmup_rounds: 1,
        budget_seconds: 0.02,
        seed: 1,
        clock,
    }
}

/// A tiny run, with the candles, and no progress bar.
pub fn measure(cases: &[Case], engines: &[&dyn Engine], clock: Clock) -> Result<Results, Wrong> {
    run(cases, engines, true, &tiny(clock), &ProgressBar::hidden())
}

pub fn sum_case() -> Vec<Case> {
    vec![Case::builtin(workload("sum").unwrap())]
}

/// A stand-in engine: walker's answer plus one, or a refusal of everything.
pub struct Fake {
    name: &'static str,
    tier: Tier,
    summary: &'static str,
    exact_magnitude: Option<u64>,
    refuses: bool,
}

/// Compiles anything and answers `walker + 1`.
pub const OFF_BY_ONE: Fake = Fake {
    name: "off_by_one",
    tier: Tier::Beyond,
    summary: "deliberately wrong",
    exact_magnitude: None,
    refuses: false,
};

/// Refuses every program.
pub const PICKY: Fake = Fake {
    name: "picky",
    tier: Tier::Peer,
    summary: "refuses everything",
    exact_magnitude: None,
    refuses: true,
};

/// A pretend exact range of ±1000 (like a float-based peer), and wrong
/// beyond it on purpose, to prove it is never asked there.
pub const NARROW: Fake = Fake {
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

/// Pretends to run elsewhere and reports figures no clock here could give:
/// 10 ns per loop iteration and 100 ns per node on the thread clock, twice
/// that on the wall clock. Its values are walker's, so it is verified like
/// any engine.
pub struct Remote;

pub fn scale_for(clock: Clock) -> u32 {
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

pub const REMOTE: &dyn Engine = &Registered::<Remote>::NEW;

/// `walker` and [`REMOTE`] on `sum`, on `clock`.
pub fn walker_and_remote(clock: Clock) -> Results {
    measure(&sum_case(), &[engines()[0], REMOTE], clock).unwrap()
}
