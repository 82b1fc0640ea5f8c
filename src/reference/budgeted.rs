//! The walker again, with a step budget and a trace: what the tests and the
//! fuzzers run first, to learn a program's value (and whether it ends at
//! all) before any engine is asked.
//!
//! Every node evaluated costs one step, so a program that never ends is cut
//! off instead of hung on. The trace is the largest magnitude of any value
//! produced on the way, which decides whether an engine with a smaller exact
//! range is held to the answer ([`super::held_to_walker`]). Level 2 runs as
//! the language says: the call that would make more than [`MAX_CALLS`]
//! active fails the run with the depth error, an outcome like a value that
//! every engine must match. It is kept apart
//! from the `walker` engine (`engines/walker.rs`) so the measured engine
//! carries no counter on its fast path; `walker`'s conformance tests and the
//! differential tests hold the two to the same answers.

use super::stack::on_native_stack;
use crate::engine::{ArgError, RunError, recursive_native_stack};
use crate::front::ast::{Expr, Function};
use crate::front::program::{MAX_CALLS, Program};

/// Runs out of steps: the budgeted walker gave up before the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfSteps;

/// The program's value, if it ends within `budget` steps (nodes evaluated).
pub fn eval_budgeted(program: &Program, args: &[i64], budget: u64) -> Result<i64, BudgetError> {
    eval_traced(program, args, budget).map(|(v, _)| v)
}

/// Like [`eval_budgeted`], also reporting the largest magnitude of any value
/// produced on the way (what decides whether a double-based peer is exact).
/// A run that exceeds the call depth is [`BudgetError::CallDepthExceeded`];
/// [`trace`] gives its magnitude too.
pub fn eval_traced(
    program: &Program,
    args: &[i64],
    budget: u64,
) -> Result<(i64, u64), BudgetError> {
    let traced = trace(program, args, budget)?;
    match traced.value {
        Some(v) => Ok((v, traced.magnitude)),
        None => Err(BudgetError::CallDepthExceeded),
    }
}

/// A run of the budgeted walker that ended within its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traced {
    /// The program's value; `None`: the run failed with *call depth
    /// exceeded* (what every engine must then fail with too).
    pub value: Option<i64>,
    /// The largest magnitude of any value produced on the way (up to the
    /// failure, for a run that failed).
    pub magnitude: u64,
    /// The most calls active at once (for a run that failed, the
    /// [`MAX_CALLS`] active when one more was refused).
    pub calls: usize,
}

impl Traced {
    /// The run's answer as an engine's run gives it.
    pub fn answer(&self) -> Result<i64, RunError> {
        self.value.ok_or(RunError::CallDepthExceeded)
    }

    /// How far the run reached, for [`super::held_to_walker`].
    pub fn reach(&self) -> Reach {
        Reach {
            magnitude: self.magnitude,
            calls: Some(self.calls),
        }
    }
}

/// Like [`eval_traced`], also reporting the most calls active at once: how
/// far the run [reaches](Reach), which decides whether an engine
/// whose own stack holds fewer calls is held to the answer.
pub fn eval_reach(
    program: &Program,
    args: &[i64],
    budget: u64,
) -> Result<(i64, Reach), BudgetError> {
    let traced = trace(program, args, budget)?;
    match traced.value {
        Some(v) => Ok((v, traced.reach())),
        None => Err(BudgetError::CallDepthExceeded),
    }
}

/// Runs `program` within `budget` steps: its value or the depth error, and
/// the largest magnitude on the way. Runs on a thread with the stack this
/// walker needs for the program's calls ([`native_stack`]).
pub fn trace(program: &Program, args: &[i64], budget: u64) -> Result<Traced, BudgetError> {
    if args.len() < program.arg_count() {
        return Err(BudgetError::Args(ArgError {
            needed: program.arg_count(),
            given: args.len(),
        }));
    }
    on_native_stack(native_stack(program), || {
        let mut st = Budget {
            functions: program.functions(),
            args,
            locals: Vec::new(),
            steps: budget,
            calls: 0,
            deepest: 0,
            max_magnitude: 0,
        };
        let value = match st.eval(program.expr()) {
            Ok(v) => Some(v),
            Err(Stop::CallDepth) => None,
            Err(Stop::OutOfSteps) => return Err(BudgetError::OutOfSteps),
        };
        Ok(Traced {
            value,
            magnitude: st.max_magnitude,
            calls: st.deepest,
        })
    })
}

/// Native stack per frame of [`Budget::eval`]: at most 160 bytes measured
/// per frame [`crate::engine::recursion_frames`] counts, in the test profile and in
/// release (a call whose site is deep in its body costs about 145 bytes a
/// level), doubled for a margin.
const FRAME_BYTES: usize = 320;

/// The native stack this walker needs for `program`'s calls (as the
/// `walker` engine declares its own), `0` without functions.
pub fn native_stack(program: &Program) -> usize {
    recursive_native_stack(program, FRAME_BYTES)
}

/// How far a run reaches: the largest magnitude of any value, and the most
/// calls active at once (`None`: not traced). A bare magnitude converts to
/// a reach of unknown depth, which exempts every engine that declares a
/// depth limit on the program: never held to what it may not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach {
    pub magnitude: u64,
    pub calls: Option<usize>,
}

impl From<u64> for Reach {
    fn from(magnitude: u64) -> Reach {
        Reach {
            magnitude,
            calls: None,
        }
    }
}

/// Why a budgeted run produced no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetError {
    OutOfSteps,
    Args(ArgError),
    /// The run failed as the language says: more than
    /// [`MAX_CALLS`] calls active.
    CallDepthExceeded,
}

impl std::fmt::Display for BudgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetError::OutOfSteps => f.write_str("walker ran out of steps"),
            BudgetError::Args(e) => e.fmt(f),
            BudgetError::CallDepthExceeded => f.write_str("call depth exceeded"),
        }
    }
}

impl std::error::Error for BudgetError {}

/// Why evaluation stopped early.
enum Stop {
    OutOfSteps,
    CallDepth,
}

struct Budget<'a> {
    functions: &'a [Function],
    args: &'a [i64],
    locals: Vec<i64>,
    steps: u64,
    /// Calls active now.
    calls: usize,
    /// The most calls active at once so far.
    deepest: usize,
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
            Expr::Sub(a, b) => {
                let a = self.eval(a)?;
                a.wrapping_sub(self.eval(b)?)
            }
            Expr::Lt(a, b) => {
                let a = self.eval(a)?;
                i64::from(a < self.eval(b)?)
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
            Expr::If(c, t, f) => {
                if self.eval(c)? > 0 {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Call(f, args) => self.call(*f, args)?,
        };
        self.max_magnitude = self.max_magnitude.max(v.unsigned_abs());
        Ok(v)
    }

    /// The arguments left to right in the caller's scope, all before the
    /// call becomes active (and may fail), then the body with them as its
    /// locals above the caller's (the first the outermost): a body reads
    /// only its own (validation), so `Get(d)` counts from the top.
    fn call(&mut self, f: usize, args: &[Expr]) -> Result<i64, Stop> {
        let mut values = Vec::with_capacity(args.len());
        for a in args {
            values.push(self.eval(a)?);
        }
        if self.calls == MAX_CALLS {
            return Err(Stop::CallDepth);
        }
        let frame = self.locals.len();
        self.locals.extend(values);
        self.calls += 1;
        self.deepest = self.deepest.max(self.calls);
        let r = self.eval(&self.functions[f].body);
        self.calls -= 1;
        self.locals.truncate(frame);
        r
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
        use crate::front::ast::{Function, Source};
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
