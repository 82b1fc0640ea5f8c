//! The walker again, with a step budget and a trace: what the tests and the
//! fuzzers run first, to learn a program's value (and whether it ends at
//! all) before any engine is asked.
//!
//! Every node evaluated costs one step, so a program that never ends is cut
//! off instead of hung on. The trace is the largest magnitude of any value
//! produced on the way, which decides whether an engine with a smaller exact
//! range is held to the answer ([`super::held_to_walker`]). It runs both
//! levels, and fails exactly as every engine must at the call that would
//! make more than [`MAX_CALLS`] active. It is kept apart
//! from the `walker` engine (`engines/walker.rs`) so the measured engine
//! carries no counter on its fast path; `walker`'s conformance tests and the
//! differential tests hold the two to the same answers.

use crate::engine::ArgError;
use crate::front::ast::{Expr, Function};
use crate::front::program::{MAX_CALLS, Program};

/// Why a walk stopped before the program's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    OutOfSteps,
    CallDepthExceeded,
}

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
    eval_reach(program, args, budget).map(|(v, reach)| (v, reach.magnitude))
}

/// Like [`eval_traced`], also reporting the most calls active at once: how
/// far the run [reaches](super::Reach), which decides whether an engine
/// whose own stack holds fewer calls is held to the answer.
pub fn eval_reach(
    program: &Program,
    args: &[i64],
    budget: u64,
) -> Result<(i64, super::Reach), BudgetError> {
    if args.len() < program.arg_count() {
        return Err(BudgetError::Args(ArgError {
            needed: program.arg_count(),
            given: args.len(),
        }));
    }
    let mut st = Budget {
        args,
        functions: program.functions(),
        locals: Vec::new(),
        calls: 0,
        deepest: 0,
        steps: budget,
        max_magnitude: 0,
    };
    let v = st.eval(program.expr()).map_err(|stop| match stop {
        Stop::OutOfSteps => BudgetError::OutOfSteps,
        Stop::CallDepthExceeded => BudgetError::CallDepthExceeded,
    })?;
    let reach = super::Reach {
        magnitude: st.max_magnitude,
        calls: Some(st.deepest),
    };
    Ok((v, reach))
}

/// Why a budgeted run produced no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetError {
    OutOfSteps,
    Args(ArgError),
    /// The run's own error, as every engine must report it.
    CallDepthExceeded,
}

impl std::fmt::Display for BudgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetError::OutOfSteps => f.write_str("walker ran out of steps"),
            BudgetError::Args(e) => e.fmt(f),
            BudgetError::CallDepthExceeded => crate::engine::CallDepthExceeded.fmt(f),
        }
    }
}

impl std::error::Error for BudgetError {}

struct Budget<'a> {
    args: &'a [i64],
    functions: &'a [Function],
    /// Every active call's locals, each frame above its caller's; a body
    /// reads only its own (validation), so `Get(d)` counts from the top.
    locals: Vec<i64>,
    /// Calls active now.
    calls: usize,
    /// The most calls active at once so far.
    deepest: usize,
    steps: u64,
    max_magnitude: u64,
}

impl Budget<'_> {
    fn eval(&mut self, e: &Expr) -> Result<i64, Stop> {
        self.steps = self.steps.checked_sub(1).ok_or(Stop::OutOfSteps)?;
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
            Expr::Sub(a, b) => {
                let a = self.eval(a)?;
                a.wrapping_sub(self.eval(b)?)
            }
            Expr::Lt(a, b) => {
                let a = self.eval(a)?;
                i64::from(a < self.eval(b)?)
            }
            Expr::If(c, t, f) => {
                if self.eval(c)? > 0 {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Call(f, args) => {
                // The arguments are evaluated in the caller's frame, all of
                // them before the call becomes active (and may fail).
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a)?);
                }
                if self.calls == MAX_CALLS {
                    return Err(Stop::CallDepthExceeded);
                }
                let frame = self.locals.len();
                self.locals.extend(values);
                self.calls += 1;
                self.deepest = self.deepest.max(self.calls);
                let r = self.eval(&self.functions[*f].body);
                self.calls -= 1;
                self.locals.truncate(frame);
                r?
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
    fn depth_is_exact_and_ends_the_run() {
        use crate::front::ast::Source;
        // fn down(n) { if 0 < n { down(n - 1) } else { 7 } }; down(arg(0));
        // then a loop that never ends, never reached past the failure.
        let body = Expr::if_(
            Expr::lt(Expr::Litr(0), Expr::Get(0)),
            Expr::call(0, vec![Expr::sub(Expr::Get(0), Expr::Litr(1))]),
            Expr::Litr(7),
        );
        let p = Program::validate(Source {
            functions: vec![Function {
                name: "down".into(),
                params: vec!["n".into()],
                body,
            }],
            main: Expr::then(
                Expr::call(0, vec![Expr::Arg(0)]),
                Expr::while_(Expr::Litr(1), Expr::Litr(0)),
            ),
        })
        .unwrap();
        let limit = MAX_CALLS as i64;
        // down(limit - 1) makes `limit` calls active at its deepest.
        let p2 = Program::validate(Source {
            functions: p.functions().to_vec(),
            main: Expr::call(0, vec![Expr::Arg(0)]),
        })
        .unwrap();
        let big = 1 << 30;
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || {
                assert_eq!(eval_budgeted(&p2, &[limit - 1], big), Ok(7));
                assert_eq!(
                    eval_budgeted(&p2, &[limit], big),
                    Err(BudgetError::CallDepthExceeded)
                );
                assert_eq!(
                    eval_budgeted(&p, &[limit], big),
                    Err(BudgetError::CallDepthExceeded)
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn traced_reports_the_largest_magnitude() {
        let p = Program::validate(Expr::add(Expr::Arg(0), Expr::Litr(-10))).unwrap();
        assert_eq!(eval_traced(&p, &[3], 100), Ok((-7, 10)));
    }
}
