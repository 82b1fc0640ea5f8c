//! The two spans the harness times, defined once for `bench` ([`runner`])
//! and `scale` ([`scale`]) alike, so every engine is timed on the same clock
//! over the same span wherever its work runs:
//!
//! - **execute**: `reps` runs, each value compared with the expected one;
//! - **compile**: `reps` compiles from the validated program to runnable
//!   code (for a peer: the translation into its input and its own load or
//!   compile). Freeing the code is left out: the programs are dropped after
//!   the clock stops.
//!
//! An engine whose work runs in a helper process (LuaJIT) times both spans
//! itself, on the clock it is handed ([`Executable::execute_timed`],
//! [`Engine::compile_timed`]): a clock here would see only the pipe.
//!
//! [`runner`]: super::runner
//! [`scale`]: super::scale

use crate::clock::{Clock, Stopwatch};
use crate::engine::{CompileError, Engine, Executable};
use crate::front::program::Program;
use std::hint::black_box;

/// Nanoseconds for `reps` verified runs of `exe` on `clock`; `Err` with
/// what a run returned instead of `expected` (the runs stop there).
#[inline(never)]
pub fn execute_ns(
    exe: &dyn Executable,
    args: &[i64],
    reps: u64,
    expected: i64,
    clock: Clock,
) -> Result<f64, String> {
    let args = black_box(args);
    match exe.execute_timed(args, reps, expected, clock) {
        Ok(Some(runs)) => match runs.wrong {
            None => Ok(runs.time.as_nanos() as f64),
            Some(v) => Err(format!("Ok({v})")),
        },
        Err(e) => Err(format!("{:?}", Err::<i64, _>(e))),
        Ok(None) => {
            let start = Stopwatch::start(clock);
            for _ in 0..reps {
                match exe.execute(args) {
                    Ok(v) if v == expected => {}
                    other => return Err(format!("{other:?}")),
                }
            }
            Ok(start.elapsed_ns())
        }
    }
}

/// Nanoseconds for `reps` compiles of `program` on `engine`, on `clock`.
pub fn compile_ns(
    engine: &dyn Engine,
    program: &Program,
    reps: u64,
    clock: Clock,
) -> Result<f64, CompileError> {
    let mut inside: Option<f64> = None;
    let mut kept = Vec::with_capacity(reps as usize);
    let start = Stopwatch::start(clock);
    for _ in 0..reps {
        let (code, timed) = engine.compile_timed(black_box(program), clock)?;
        if let Some(t) = timed {
            *inside.get_or_insert(0.0) += t.as_nanos() as f64;
        }
        kept.push(black_box(code));
    }
    let ns = inside.unwrap_or_else(|| start.elapsed_ns());
    drop(kept);
    Ok(ns)
}
