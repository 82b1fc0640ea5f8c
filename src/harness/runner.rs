//! Interleaved, verified timing of every engine on every case, in one process.
//!
//! 1. Prepare: each engine that supports a case compiles it once; the result
//!    is checked against the case's expected value before any timing.
//! 2. Calibrate: each cell gets a repetition count so one sample lasts about
//!    `sample_ns`, with the budget shared evenly by all cells.
//! 3. Rounds: every round visits every cell once, in a freshly shuffled order,
//!    taking one compile sample and one execute sample. Drift of the machine
//!    (another process, frequency changes) thus hits every engine alike
//!    instead of whichever happened to run at the time. The first
//!    `warmup_rounds` are discarded.
//!
//! Every execution — warm-up and calibration included — is compared with the
//! expected value inside the timed loop; a single wrong value stops the run
//! with an error naming the engine. The comparison costs one predictable
//! branch per execution, the same for every engine. The spans themselves
//! are [`timing`](super::timing)'s, shared with `scale`: an engine in a
//! helper process runs and times the same loop there, on the run's clock.

use super::case::{Candle, Case, Subject};
use super::machine::{Build, Machine};
use super::results::{Cell, Results, SubjectInfo, WorkloadInfo};
use super::settings::{Clock, Settings};
use super::stats::Summary;
use super::timing::{compile_ns, execute_ns};
use crate::clock::Stopwatch;
use crate::engine::{Engine, Executable};
use crate::reference::stack::{declared_stack, on_native_stack};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::hint::black_box;
use std::time::Instant;

/// The run stopped: an engine computed a wrong value (or could not run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrong {
    pub subject: String,
    pub workload: String,
    pub message: String,
}

impl std::fmt::Display for Wrong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}: {}", self.subject, self.workload, self.message)
    }
}

impl std::error::Error for Wrong {}

enum Code {
    Engine(Box<dyn Executable>),
    Native(Candle),
}

struct Prepared<'a> {
    subject: Subject<'a>,
    case: usize,
    code: Code,
    reps: u64,
    compile_reps: u64,
    cell: Cell,
}

impl Prepared<'_> {
    /// Runs `reps` verified executions; returns elapsed nanoseconds.
    #[inline(never)]
    fn time_execute(&mut self, case: &Case, reps: u64, clock: Clock) -> Result<f64, Wrong> {
        let args = black_box(case.args.as_slice());
        let expected = case.expected;
        let timed = match &self.code {
            Code::Engine(exe) => execute_ns(exe.as_ref(), args, reps, expected, clock),
            Code::Native(f) => {
                let start = Stopwatch::start(clock);
                let mut bad = Ok(());
                for _ in 0..reps {
                    let v = f(args);
                    if v != expected {
                        bad = Err(format!("Ok({v})"));
                        break;
                    }
                }
                bad.map(|()| start.elapsed_ns())
            }
        };
        self.cell.verified_executions += reps;
        timed.map_err(|got| Wrong {
            subject: self.subject.name().to_string(),
            workload: case.name.clone(),
            message: format!("returned {got}, expected Ok({expected})"),
        })
    }

    /// Compiles `reps` times; returns elapsed nanoseconds ([`compile_ns`]).
    fn time_compile(&self, case: &Case, reps: u64, clock: Clock) -> Option<f64> {
        let Subject::Engine(engine) = self.subject else {
            return None;
        };
        compile_ns(engine, &case.program, reps, clock).ok()
    }
}

/// Smallest power of two of repetitions lasting at least `target_ns`.
fn calibrate(
    mut timed: impl FnMut(u64) -> Result<f64, Wrong>,
    target_ns: f64,
) -> Result<u64, Wrong> {
    let mut reps = 1u64;
    loop {
        let ns = timed(reps)?;
        if ns >= target_ns / 4.0 || reps >= 1 << 30 {
            let per = (ns / reps as f64).max(1.0);
            return Ok(((target_ns / per).round() as u64).max(1));
        }
        reps *= 2;
    }
}

/// Measures every subject (engines, then the `rust` and `rust_opt` candles
/// when `candles` is set and the case has them) on every case, all on one
/// thread with the native stack the engines declare for the cases.
pub fn run(
    cases: &[Case],
    engines: &[&dyn Engine],
    candles: bool,
    settings: &Settings,
    progress: &ProgressBar,
) -> Result<Results, Wrong> {
    let stack = cases
        .iter()
        .map(|c| declared_stack(engines.iter().copied(), &c.program))
        .max()
        .unwrap_or(0);
    on_native_stack(stack, || {
        run_here(cases, engines, candles, settings, progress)
    })
}

fn run_here(
    cases: &[Case],
    engines: &[&dyn Engine],
    candles: bool,
    settings: &Settings,
    progress: &ProgressBar,
) -> Result<Results, Wrong> {
    let started = std::time::SystemTime::now();
    let wall = Instant::now();
    let mut subjects: Vec<Subject> = engines.iter().map(|e| Subject::Engine(*e)).collect();
    if candles && cases.iter().any(|c| c.candles.is_some()) {
        subjects.push(Subject::Rust);
        subjects.push(Subject::RustOpt);
    }

    // 1. Prepare and verify once.
    let mut cells: Vec<Prepared> = Vec::new();
    let mut refused: Vec<Cell> = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        for subject in &subjects {
            let blank = Cell {
                subject: subject.name().to_string(),
                workload: case.name.clone(),
                refused: None,
                reps_per_sample: 0,
                execute_ns: Vec::new(),
                compile_ns: Vec::new(),
                verified_executions: 0,
                execute: None,
                compile: None,
                form: None,
            };
            // An engine runs in the form the case picks for it (LuaJIT's
            // wide form beyond 2^53), timed and reported as that form.
            let mut subject = *subject;
            let code = match subject {
                Subject::Engine(e) => match case.form(e).and_then(|form| {
                    subject = Subject::Engine(form);
                    form.compile(&case.program).map_err(|e| e.to_string())
                }) {
                    Ok(code) => Code::Engine(code),
                    Err(why) => {
                        refused.push(Cell {
                            refused: Some(why),
                            ..blank
                        });
                        continue;
                    }
                },
                Subject::Rust | Subject::RustOpt => match case.candles {
                    Some((rust, opt)) => Code::Native(if matches!(subject, Subject::Rust) {
                        rust
                    } else {
                        opt
                    }),
                    None => continue,
                },
            };
            let form = match subject {
                Subject::Engine(e) => e.form().map(str::to_string),
                _ => None,
            };
            let mut p = Prepared {
                subject,
                case: ci,
                code,
                reps: 1,
                compile_reps: 1,
                cell: Cell { form, ..blank },
            };
            p.time_execute(case, 1, settings.clock)?;
            cells.push(p);
        }
    }

    // 2. Calibrate: compile samples get a quarter of an execute sample.
    let (rounds, sample_ns) = settings.plan(cells.len());
    let settings = &Settings {
        rounds,
        ..settings.clone()
    };
    progress.set_length((cells.len() * (settings.rounds + settings.warmup_rounds)) as u64);
    progress.set_message("calibrating");
    for p in &mut cells {
        let case = &cases[p.case];
        p.reps = calibrate(|r| p.time_execute(case, r, settings.clock), sample_ns)?;
        p.cell.reps_per_sample = p.reps;
        if matches!(p.subject, Subject::Engine(_)) {
            p.compile_reps = calibrate(
                |r| Ok(p.time_compile(case, r, settings.clock).unwrap_or(0.0)),
                sample_ns / 4.0,
            )?;
        }
    }

    // 3. Interleaved rounds in shuffled order.
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let mut order: Vec<usize> = (0..cells.len()).collect();
    for round in 0..settings.rounds + settings.warmup_rounds {
        let warm = round < settings.warmup_rounds;
        progress.set_message(if warm {
            "warm-up".to_string()
        } else {
            format!(
                "round {}/{}",
                round + 1 - settings.warmup_rounds,
                settings.rounds
            )
        });
        order.shuffle(&mut rng);
        for &i in &order {
            let p = &mut cells[i];
            let case = &cases[p.case];
            if let Some(ns) = p.time_compile(case, p.compile_reps, settings.clock)
                && !warm
            {
                p.cell.compile_ns.push(ns / p.compile_reps as f64);
            }
            let reps = p.reps;
            let ns = p.time_execute(case, reps, settings.clock)?;
            if !warm {
                p.cell.execute_ns.push(ns / reps as f64);
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();

    let mut done: Vec<Cell> = cells
        .into_iter()
        .map(|p| {
            let mut c = p.cell;
            c.execute = Summary::of(&c.execute_ns);
            c.compile = Summary::of(&c.compile_ns);
            c
        })
        .chain(refused)
        .collect();
    // Stable order: by subject as listed, then workload as listed.
    let pos = |name: &str| {
        subjects
            .iter()
            .position(|s| s.name() == name)
            .unwrap_or(usize::MAX)
    };
    let wpos = |name: &str| {
        cases
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    };
    done.sort_by_key(|c| (pos(&c.subject), wpos(&c.workload)));

    let mut results = Results {
        machine: Machine::detect(),
        build: Build::current(),
        settings: settings.clone(),
        started_unix: started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        wall_seconds: wall.elapsed().as_secs_f64(),
        workloads: cases.iter().map(workload_info).collect(),
        subjects: subjects.iter().map(subject_info).collect(),
        cells: done,
        instructions: None,
        geomeans: Vec::new(),
    };
    results.geomeans = results.geomeans();
    Ok(results)
}

/// What a report says about a case.
pub fn workload_info(c: &Case) -> WorkloadInfo {
    WorkloadInfo {
        name: c.name.clone(),
        description: c.description.clone(),
        args: c.args.clone(),
        expected: c.expected,
        iterations: c.iterations,
        nodes: c.program.node_count(),
        level: c.level(),
    }
}

/// What a report says about a subject.
pub fn subject_info(s: &Subject) -> SubjectInfo {
    SubjectInfo {
        name: s.name().to_string(),
        tier: s.tier(),
        summary: match s {
            Subject::Engine(e) => e.summary().to_string(),
            Subject::Rust => "native Rust candle, every operand read black-boxed".to_string(),
            Subject::RustOpt => "native Rust candle, fully optimised".to_string(),
        },
    }
}
