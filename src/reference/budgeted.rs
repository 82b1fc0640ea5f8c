//! The walker again, with a step budget and a trace: what the tests and the
//! fuzzers run first, to learn a program's value (and whether it ends at
//! all) before any engine is asked.
//!
//! Every node evaluated costs one step, so a program that never ends is cut
//! off instead of hung on. The trace is the largest magnitude of any value
//! produced on the way, which decides whether an engine with a smaller exact
//! range is held to the answer ([`super::held_to_walker`]). It is kept apart
//! from the `walker` engine (`engines/walker.rs`) so the measured engine
//! carries no counter on its fast path; `walker`'s conformance tests and the
//! differential tests hold the two to the same answers.

use crate::engine::ArgError;
use crate::front::ast::Expr;
use crate::front::program::Program;

/// Runs out of steps: the budgeted walker gave up before the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfSteps;

/// The program's value, if it ends within `budget` steps (nodes evaluated).
pub fn eval_budgeted(program: &Program, args: &[i64], budget: u64) -> Result<i64, BudgetError> {
    eval_traced(program, args, budget).map(|(v, _)| v)
}

/// Like [`eval_budgeted`], also reporting the largest magnitude of any value
/// produced on the way (what decides whether a double-based peer is exact).
pub fn eval_traced(
    program: &Program,
    args: &[i64],
    budget: u64,
) -> Result<(i64, u64), BudgetError> {
    if args.len() < program.arg_count() {
        return Err(BudgetError::Args(ArgError {
            needed: program.arg_count(),
            given: args.len(),
        }));
    }
    let mut st = Budget {
        args,
        locals: Vec::new(),
        steps: budget,
        max_magnitude: 0,
    };
    let v = st
        .eval(program.expr())
        .map_err(|_| BudgetError::OutOfSteps)?;
    Ok((v, st.max_magnitude))
}

/// Why a budgeted run produced no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetError {
    OutOfSteps,
    Args(ArgError),
}

impl std::fmt::Display for BudgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetError::OutOfSteps => f.write_str("walker ran out of steps"),
            BudgetError::Args(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BudgetError {}

struct Budget<'a> {
    args: &'a [i64],
    locals: Vec<i64>,
    steps: u64,
    max_magnitude: u64,
}

impl Budget<'_> {
    fn eval(&mut self, e: &Expr) -> Result<i64, OutOfSteps> {
        self.steps = self.steps.checked_sub(1).ok_or(OutOfSteps)?;
        let v = match e {
            Expr::Litr(n) => *n,
            Expr::Arg(i) => self.args[*i],
            Expr::Get(d) => self.locals[self.locals.len() - 1 - d],
            Expr::Add(a, b) => {
                let a = self.eval(a)?;
                a.wrapping_add(self.eval(b)?)
            }
            Expr::Let(init, body) => {
                let v = self.eval(init)?;
                self.locals.push(v);
                let r = self.eval(body);
                self.locals.pop();
                r?
            }
            Expr::Set(d, v) => {
                let v = self.eval(v)?;
                let slot = self.locals.len() - 1 - d;
                self.locals[slot] = v;
                0
            }
            Expr::While(c, body) => {
                while self.eval(c)? > 0 {
                    self.eval(body)?;
                }
                0
            }
            Expr::Then(a, b) => {
                self.eval(a)?;
                self.eval(b)?
            }
        };
        self.max_magnitude = self.max_magnitude.max(v.unsigned_abs());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stops_an_endless_loop() {
        let p = Program::validate(Expr::while_(Expr::Litr(1), Expr::Litr(0))).unwrap();
        assert_eq!(eval_budgeted(&p, &[], 10_000), Err(BudgetError::OutOfSteps));
    }

    #[test]
    fn traced_reports_the_largest_magnitude() {
        let p = Program::validate(Expr::add(Expr::Arg(0), Expr::Litr(-10))).unwrap();
        assert_eq!(eval_traced(&p, &[3], 100), Ok((-7, 10)));
    }
}
