//! `walker` — the reference: a recursive `match` over the AST.
//!
//! **Compile** produces nothing new: the code *is* the validated tree (a clone,
//! so the engine owns it like every other engine owns its code).
//! **Values** are Rust return values of the recursive `eval`; **locals** live
//! in one `Vec<i64>` used as a stack, `Let` pushes and pops, `Get(d)` reads
//! `len - 1 - d`. **Control** is Rust's own: `While` is a Rust `loop`, so the
//! native stack depth is the tree's depth, never the iteration count.
//!
//! Trade-off: nothing to compile and obviously right, which is why every other
//! engine is checked against it; every step pays a `match` on a boxed node and
//! a pointer chase.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;

pub struct Walker;

impl Technique for Walker {
    const NAME: &'static str = "walker";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "recursive match over the AST (the reference)";
    type Code = Program;

    fn compile(program: &Program) -> Result<Program, CompileError> {
        Ok(program.clone())
    }

    unsafe fn execute(program: &Program, args: &[i64]) -> i64 {
        let mut locals = Vec::with_capacity(program.max_locals());
        eval(program.expr(), args, &mut locals)
    }

    fn show(program: &Program) -> String {
        crate::front::printer::print(program.expr())
    }
}

fn eval(e: &Expr, args: &[i64], locals: &mut Vec<i64>) -> i64 {
    match e {
        Expr::Litr(n) => *n,
        Expr::Arg(i) => args[*i],
        Expr::Get(d) => locals[locals.len() - 1 - d],
        Expr::Add(a, b) => {
            let a = eval(a, args, locals);
            a.wrapping_add(eval(b, args, locals))
        }
        Expr::Let(init, body) => {
            let v = eval(init, args, locals);
            locals.push(v);
            let r = eval(body, args, locals);
            locals.pop();
            r
        }
        Expr::Set(d, v) => {
            let v = eval(v, args, locals);
            let slot = locals.len() - 1 - d;
            locals[slot] = v;
            0
        }
        Expr::While(c, body) => {
            while eval(c, args, locals) > 0 {
                eval(body, args, locals);
            }
            0
        }
        Expr::Then(a, b) => {
            eval(a, args, locals);
            eval(b, args, locals)
        }
    }
}

/// Runs out of steps: the budgeted walker gave up before the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfSteps;

/// The walker with a step budget, for fuzzing and random testing: every node
/// evaluated costs one step. Kept apart from [`Walker`] so the measured engine
/// carries no counter on its fast path.
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
        return Err(BudgetError::Args(crate::engine::ArgError {
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
    Args(crate::engine::ArgError),
}

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
