//! The differential checker: runs an engine and the reference `walker` on the
//! same program and arguments and says whether they agree.
//!
//! Used by the differential tests, the fuzz targets and `vm-perf run
//! --engine all`. The walker runs first, under a step budget, so a program that
//! does not terminate is skipped rather than hung on; a peer is only held to
//! programs it supports and whose values stay within its exact range.

use crate::engine::Engine;
use crate::engines::walker::{BudgetError, eval_traced};
use crate::front::program::Program;
use std::fmt;

/// What comparing one engine with the walker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both gave this value.
    Agree(i64),
    /// The engine was not asked: the reason.
    Skipped(String),
    /// The engine gave something else (or failed).
    Mismatch {
        expected: i64,
        got: Result<i64, String>,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Agree(v) => write!(f, "agree on {v}"),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
            Outcome::Mismatch {
                expected,
                got: Ok(v),
            } => {
                write!(f, "walker gives {expected}, engine gives {v}")
            }
            Outcome::Mismatch {
                expected,
                got: Err(e),
            } => {
                write!(f, "walker gives {expected}, engine fails: {e}")
            }
        }
    }
}

/// Runs `engine` against the walker. `budget` bounds the walker's steps.
pub fn compare(engine: &dyn Engine, program: &Program, args: &[i64], budget: u64) -> Outcome {
    let (expected, magnitude) = match eval_traced(program, args, budget) {
        Ok(r) => r,
        Err(BudgetError::OutOfSteps) => {
            return Outcome::Skipped(format!("walker needs more than {budget} steps"));
        }
        Err(BudgetError::Args(e)) => return Outcome::Skipped(e.to_string()),
    };
    if let Err(why) = engine.supports(program) {
        return Outcome::Skipped(why);
    }
    if let Some(limit) = engine.exact_magnitude()
        && magnitude > limit
    {
        return Outcome::Skipped(format!(
            "a value of magnitude {magnitude} exceeds the engine's exact range {limit}"
        ));
    }
    let got = engine
        .compile(program)
        .map_err(|e| format!("compile error: {e}"))
        .and_then(|code| code.execute(args).map_err(|e| e.to_string()));
    match got {
        Ok(v) if v == expected => Outcome::Agree(v),
        got => Outcome::Mismatch { expected, got },
    }
}
