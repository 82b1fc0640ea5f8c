//! One run of a user's program, on one engine or on every engine at once
//! (`vm-perf run`, `vm-perf run --engine all`), held to the reference.
//!
//! An engine with an exact range (LuaJIT's doubles) gives the program's
//! value only while every value on the way stays in that range, so before
//! it runs, walker traces the run and [`held_to_walker`] decides: outside
//! the range the run fails saying why, instead of printing a number
//! scripts would take for the value (doubles past 2⁵³ may not even end a
//! loop). On every engine at once, the same rule decides who is compared
//! and who is skipped. Under a time limit every run, walker's trace
//! included, is under the watchdog ([`crate::guard`]). Every message is the
//! command line's.

use super::budgeted::trace;
use super::stack::on_native_stack;
use super::{Exemption, form_for, reach};
use crate::engine::{Engine, Executable, RunError, engines};
use crate::front::program::Program;
use crate::guard::with_timeout;
use crate::workloads::WORKLOADS;
use std::fmt;
use std::io::Write;
use std::time::Duration;

/// Compiles `program` on `engine`; a refusal names the engine.
pub fn compile_on(engine: &dyn Engine, program: &Program) -> Result<Box<dyn Executable>, String> {
    engine.compile(program).map_err(|e| {
        format!(
            "engine `{}` cannot compile this program: {e}",
            engine.name()
        )
    })
}

/// Compiles and runs `program` on `engine`, on the native stack the engine
/// declares for it: the run's value or its own error (the call depth), or
/// why it could not run at all.
pub fn outcome_on(
    engine: &dyn Engine,
    program: &Program,
    args: &[i64],
) -> Result<Result<i64, RunError>, String> {
    on_native_stack(engine.native_stack(program), || {
        Ok(compile_on(engine, program)?.execute(args))
    })
}

/// Compiles and runs `program` on `engine`; a run without a value is an
/// error naming `file` and why.
pub fn run_on(
    engine: &dyn Engine,
    program: &Program,
    args: &[i64],
    file: &str,
) -> Result<i64, String> {
    outcome_on(engine, program, args)?.map_err(|e| format!("{file}: {e}"))
}

fn io(e: std::io::Error) -> String {
    format!("cannot write output: {e}")
}

/// What the watchdog names when a run of `file` on `engine` runs away.
fn what(file: &str, engine: &dyn Engine) -> String {
    format!("`{file}` on engine `{}`", engine.name())
}

/// The value of `program` (read from `file`) on `engine`, if that engine
/// can give it exactly; each run under `timeout`.
pub fn one_engine(
    engine: &dyn Engine,
    program: &Program,
    args: &[i64],
    timeout: Option<Duration>,
    file: &str,
) -> Result<i64, String> {
    let engine = match engine
        .exact_magnitude()
        .or(engine.calls_held(program).map(|_| 0))
    {
        None => engine,
        Some(_) => {
            let why = format!(
                "`{file}` on engine `walker` (checking that `{}`'s values stay exact)",
                engine.name()
            );
            let traced = with_timeout(timeout, &why, || trace(program, args, u64::MAX))
                .map_err(|e| e.to_string())?;
            // The form that gives the value exactly (LuaJIT's 64-bit
            // integers beyond 2⁵³); the engine accepted the program, so
            // only its range or its own stack can exempt it.
            match form_for(engine, program, traced.reach()) {
                Ok(form) => form,
                Err(why @ (Exemption::Inexact { .. } | Exemption::TooDeep { .. })) => {
                    return Err(format!(
                        "engine `{}` cannot give this program's exact value: {why}; run it on another engine",
                        engine.name()
                    ));
                }
                Err(Exemption::Unsupported(_)) => engine,
            }
        }
    };
    with_timeout(timeout, &what(file, engine), || {
        run_on(engine, program, args, file)
    })
}

/// What one engine did in [`every_engine`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not held to walker's value on this run: why.
    Skipped(Exemption),
    /// The engine's value, or its run's error (the call depth).
    Ran(Result<i64, RunError>),
}

/// A run's outcome as `run --engine all` prints it: the value, or the error.
fn shown(outcome: &Result<i64, RunError>) -> String {
    match outcome {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    }
}

/// As `run --engine all` prints it after the engine's name.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Skipped(Exemption::Inexact { limit, .. }) => {
                write!(f, "skipped: a value exceeds its exact range {limit}")
            }
            Verdict::Skipped(why) => write!(f, "skipped: {why}"),
            Verdict::Ran(outcome) => f.write_str(&shown(outcome)),
        }
    }
}

/// `vm-perf run --engine all`: runs `program` on every engine, walker's
/// traced run first, and writes each engine's name and [`Verdict`] to `out`
/// as it comes. Fails when an engine fails or any value differs from
/// walker's, naming every engine that differs.
pub fn every_engine(
    out: &mut dyn Write,
    program: &Program,
    args: &[i64],
    timeout: Option<Duration>,
    file: &str,
) -> Result<(), String> {
    // Walker's answer (a value or its error) and how far the run reaches,
    // which decides who is held to it.
    let traced = with_timeout(timeout, &what(file, engines()[0]), || {
        trace(program, args, u64::MAX)
    })
    .map_err(|e| e.to_string())?;
    let reference = traced.answer();
    let mut disagree = Vec::new();
    for engine in engines() {
        // The form that runs it (LuaJIT's 64-bit integers beyond 2⁵³).
        let verdict = match form_for(*engine, program, traced.reach()) {
            Err(why) => Verdict::Skipped(why),
            Ok(form) => Verdict::Ran(with_timeout(timeout, &what(file, *engine), || {
                outcome_on(form, program, args)
            })?),
        };
        writeln!(out, "{} {verdict}", engine.name()).map_err(io)?;
        match &verdict {
            Verdict::Ran(got) if *got != reference => {
                disagree.push(format!("{} gave {}", engine.name(), shown(got)));
            }
            _ => {}
        }
    }
    if !disagree.is_empty() {
        return Err(format!(
            "engines disagree with walker's {}: {}",
            shown(&reference),
            disagree.join(", ")
        ));
    }
    // Engines that all fail the same way agree; the run still has no value.
    reference.map(drop).map_err(|e| format!("{file}: {e}"))
}

/// One engine on one built-in workload.
enum Cell {
    /// Not held to the workload's value: unsupported, inexact, or deeper
    /// than its own stack holds.
    Exempt(Exemption),
    Right(i64),
    Wrong(i64),
    /// The engine refused to compile or failed to run it: why.
    Failed(String),
}

/// As `vm-perf check` prints it in its table (padding honoured).
impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&match self {
            Cell::Exempt(Exemption::Unsupported(_)) => "unsupported".into(),
            Cell::Exempt(Exemption::Inexact { .. }) => "inexact".into(),
            Cell::Exempt(Exemption::TooDeep { .. }) => "too deep".into(),
            Cell::Right(v) => v.to_string(),
            Cell::Wrong(v) => format!("WRONG {v}"),
            Cell::Failed(why) => why.clone(),
        })
    }
}

/// `vm-perf check`: every workload on every engine, written to `out` as a
/// table (a row per engine, each written as soon as it is complete). Fails
/// when any value differs from the workload's expected value.
pub fn on_workloads(out: &mut dyn Write) -> Result<(), String> {
    let width = engines().iter().map(|e| e.name().len()).max().unwrap_or(6);
    let mut header = format!("{:width$}", "engine");
    let mut runs = Vec::new();
    for w in WORKLOADS {
        header.push_str(&format!(" {:>14}", w.name));
        let program = w.program().map_err(|e| e.to_string())?;
        let reach = reach(&program, &w.args());
        runs.push((w, program, reach));
    }
    writeln!(out, "{header}").map_err(io)?;
    let mut wrong = 0;
    for engine in engines() {
        let mut line = format!("{:width$}", engine.name());
        for (w, program, reach) in &runs {
            let cell = match form_for(*engine, program, *reach) {
                Err(why) => Cell::Exempt(why),
                Ok(form) => match run_on(form, program, &w.args(), w.name) {
                    Ok(v) if v == w.expected() => Cell::Right(v),
                    Ok(v) => Cell::Wrong(v),
                    Err(why) => Cell::Failed(why),
                },
            };
            wrong += usize::from(matches!(cell, Cell::Wrong(_)));
            line.push_str(&format!(" {cell:>14}"));
        }
        writeln!(out, "{line}").map_err(io)?;
    }
    match wrong {
        0 => Ok(()),
        _ => Err(format!("{wrong} results differ from the expected values")),
    }
}
