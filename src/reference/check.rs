//! The differential check: one engine against walker on one program and its
//! arguments. The differential tests (`tests/differential.rs`) run it on
//! every engine for thousands of random programs, the peer tests
//! (`tests/peers.rs`) on every peer.
//!
//! Walker runs first, under a step budget, so a program that does not end is
//! skipped rather than hung on; then [`held_to_walker`] decides whether the
//! engine is asked at all. Its answer is a value or the run error *call
//! depth exceeded*: an engine must give the same value, or fail the same
//! way.

use super::budgeted::{BudgetError, trace};
use super::held_to_walker;
use super::stack::on_native_stack;
use crate::engine::{Engine, RunError};
use crate::front::program::Program;
use std::fmt;

/// What a run gives: a value, or the run error *call depth exceeded*.
pub type Answer = Result<i64, RunError>;

/// What comparing one engine with the walker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both gave this answer: the same value, or both failed with *call
    /// depth exceeded*.
    Agree(Answer),
    /// The engine was not asked: the reason.
    Skipped(String),
    /// The engine gave something else (or failed otherwise).
    Mismatch {
        expected: Answer,
        got: Result<Answer, String>,
    },
}

/// An answer as people read it: the value, or the error.
pub fn show(answer: &Answer) -> String {
    match answer {
        Ok(v) => v.to_string(),
        Err(e) => format!("`{e}`"),
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Agree(a) => write!(f, "agree on {}", show(a)),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
            Outcome::Mismatch {
                expected,
                got: Ok(a),
            } => write!(
                f,
                "walker gives {}, engine gives {}",
                show(expected),
                show(a)
            ),
            Outcome::Mismatch {
                expected,
                got: Err(e),
            } => write!(f, "walker gives {}, engine fails: {e}", show(expected)),
        }
    }
}

/// Runs `engine` against the walker. `budget` bounds the walker's steps.
/// Each runs on the native stack it declares for the program.
pub fn compare(engine: &dyn Engine, program: &Program, args: &[i64], budget: u64) -> Outcome {
    let traced = match trace(program, args, budget) {
        Ok(t) => t,
        Err(BudgetError::OutOfSteps) => {
            return Outcome::Skipped(format!("walker needs more than {budget} steps"));
        }
        Err(e) => return Outcome::Skipped(e.to_string()),
    };
    if let Err(why) = held_to_walker(engine, program, traced.reach()) {
        return Outcome::Skipped(why.to_string());
    }
    let expected = traced.answer();
    let got = on_native_stack(engine.native_stack(program), || {
        let code = engine
            .compile(program)
            .map_err(|e| format!("compile error: {e}"))?;
        match code.execute(args) {
            Err(RunError::Args(e)) => Err(e.to_string()),
            answer => Ok(answer),
        }
    });
    match got {
        Ok(answer) if answer == expected => Outcome::Agree(answer),
        got => Outcome::Mismatch { expected, got },
    }
}
