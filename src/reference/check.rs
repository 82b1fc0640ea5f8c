//! The differential check: one engine against walker on one program and its
//! arguments. The differential tests (`tests/differential.rs`) run it on
//! every engine for thousands of random programs, the peer tests
//! (`tests/peers.rs`) on every peer.
//!
//! Walker runs first, under a step budget, so a program that does not end is
//! skipped rather than hung on; then [`held_to_walker`] decides whether the
//! engine is asked at all.

use super::budgeted::{BudgetError, eval_traced};
use super::held_to_walker;
use crate::engine::Engine;
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
        Err(BudgetError::CallDepthExceeded) => {
            return Outcome::Skipped("walker: call depth exceeded".into());
        }
    };
    if let Err(why) = held_to_walker(engine, program, magnitude) {
        return Outcome::Skipped(why.to_string());
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
