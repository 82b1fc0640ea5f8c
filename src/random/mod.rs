//! Generated programs, for every test and benchmark that needs more than
//! hand-written ones. Every generator is deterministic in its seed, so a
//! failure names a program that can be made again.
//!
//! - This module: random valid, terminating programs with wild arguments,
//!   shaped by [`Shape`] (the differential and round-trip tests).
//! - [`small`]: small programs with short countdown loops from a tiny
//!   xorshift generator (the peer tests).
//! - [`calls`]: random Level-2 programs (functions, recursion, calls near
//!   and past the call limit) built on this module's generator.
//! - [`balanced`]: large programs of a given size whose depth grows with the
//!   logarithm of it (scaling, large programs, size limits, long straight
//!   lines).
//!
//! The fuzz targets build programs from the fuzzer's bytes instead
//! (`fuzz/src/generate.rs`), so the fuzzer can steer them.
//!
//! For [`program`], termination is by construction: every generated loop counts a fresh local
//! down to zero, and the generator marks that counter read-only for the loop's
//! condition and body (no `Set` can reach it). Trip counts come from small
//! literals or from the first [`Shape::trip_args`] arguments, which are kept
//! small; the other arguments are "wild" (`i64::MIN`, `i64::MAX`, …) so
//! wrapping overflow is exercised everywhere else.

pub mod balanced;
pub mod calls;
pub mod small;

use crate::front::ast::Expr;
use rand::Rng;

/// Knobs for the generator.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Depth budget of the generated tree (soft: loops add a few levels).
    pub depth: usize,
    /// How many loops may nest inside each other.
    pub loop_nesting: usize,
    /// Largest trip count of one loop.
    pub max_trip: i64,
    /// Arguments used as trip counts (the first ones; kept in `0..=max_trip`).
    pub trip_args: usize,
    /// Arguments with arbitrary values.
    pub wild_args: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            depth: 8,
            loop_nesting: 3,
            max_trip: 8,
            trip_args: 2,
            wild_args: 2,
        }
    }
}

/// A generated program with arguments it terminates on.
pub fn program(rng: &mut impl Rng, shape: &Shape) -> (Expr, Vec<i64>) {
    let mut g = Gen {
        rng,
        shape,
        scope: Vec::new(),
        loops: 0,
        calls: None,
    };
    let expr = g.expr(shape.depth);
    let mut args: Vec<i64> = (0..shape.trip_args)
        .map(|_| g.rng.random_range(0..=shape.max_trip))
        .collect();
    for _ in 0..shape.wild_args {
        let v = g.literal();
        args.push(v);
    }
    (expr, args)
}

struct Gen<'a, R> {
    rng: &'a mut R,
    shape: &'a Shape,
    /// Locals in scope, innermost last: `true` = read-only (a loop counter,
    /// or a Level-2 function's fuel).
    scope: Vec<bool>,
    loops: usize,
    /// Level 2's functions and calls ([`calls`]); `None` for Level 1.
    calls: Option<calls::Calls>,
}

impl<R: Rng> Gen<'_, R> {
    fn literal(&mut self) -> i64 {
        match self.rng.random_range(0..10) {
            0 => *[i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1]
                .get(self.rng.random_range(0..4))
                .unwrap_or(&0),
            1 => self.rng.random(),
            2 => *[1 << 53, (1 << 53) + 1, -(1 << 53), 1 << 62]
                .get(self.rng.random_range(0..4))
                .unwrap_or(&0),
            _ => self.rng.random_range(-5..=5),
        }
    }

    fn arg_count(&self) -> usize {
        self.shape.trip_args + self.shape.wild_args
    }

    fn leaf(&mut self) -> Expr {
        let choice = self.rng.random_range(0..10);
        if choice < 4 && !self.scope.is_empty() {
            Expr::Get(self.rng.random_range(0..self.scope.len()))
        } else if choice < 6 && self.arg_count() > 0 {
            Expr::Arg(self.rng.random_range(0..self.arg_count()))
        } else {
            Expr::Litr(self.literal())
        }
    }

    /// A writable local's distance, if any is in scope.
    fn writable(&mut self) -> Option<usize> {
        let n = self.scope.len();
        let candidates: Vec<usize> = (0..n).filter(|&d| !self.scope[n - 1 - d]).collect();
        if candidates.is_empty() {
            None
        } else {
            Some(candidates[self.rng.random_range(0..candidates.len())])
        }
    }

    fn expr(&mut self, depth: usize) -> Expr {
        if depth <= 1 || self.rng.random_range(0..depth + 2) < 2 {
            return self.leaf();
        }
        let d = depth - 1;
        if let Some(e) = self.level_two(d) {
            return e;
        }
        match self.rng.random_range(0..12) {
            0..=2 => {
                let a = self.expr(d);
                Expr::add(a, self.expr(d))
            }
            3 | 4 => {
                let init = self.expr(d);
                self.scope.push(false);
                let body = self.expr(d);
                self.scope.pop();
                Expr::let_(init, body)
            }
            5 | 6 => match self.writable() {
                Some(local) => Expr::set(local, self.expr(d)),
                None => self.leaf(),
            },
            7 | 8 => {
                let a = self.expr(d);
                Expr::then(a, self.expr(d))
            }
            9 if self.rng.random_range(0..4) == 0 => {
                // A loop that never runs: the condition is not positive.
                let cond = Expr::Litr(self.rng.random_range(-3..=0));
                Expr::while_(cond, self.expr(d))
            }
            _ if self.loops < self.shape.loop_nesting => self.counted_loop(d),
            _ => {
                let a = self.expr(d);
                Expr::add(a, self.expr(d))
            }
        }
    }

    /// `Let(trip, While(cond, Then(body, Set(0, Get(0) + -step))))`
    fn counted_loop(&mut self, depth: usize) -> Expr {
        let trip = if self.shape.trip_args > 0 && self.rng.random_bool(0.5) {
            Expr::Arg(self.rng.random_range(0..self.shape.trip_args))
        } else {
            Expr::Litr(self.rng.random_range(0..=self.shape.max_trip))
        };
        self.loops += 1;
        self.scope.push(true);
        let cond = if self.rng.random_bool(0.7) {
            Expr::Get(0)
        } else {
            // Side effects in the condition, re-run on every check.
            let side = self.expr(depth.min(3));
            Expr::then(side, Expr::Get(0))
        };
        let body = self.expr(depth);
        let step = self.rng.random_range(1..=2);
        let countdown = Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(-step)));
        let looped = if self.rng.random_bool(0.5) {
            Expr::then(body, countdown)
        } else {
            Expr::then(countdown, body)
        };
        self.scope.pop();
        self.loops -= 1;
        Expr::let_(trip, Expr::while_(cond, looped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::program::Program;
    use crate::reference::{BudgetError, eval_budgeted};
    use rand::SeedableRng;

    #[test]
    fn generated_programs_are_valid_and_terminate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let (e, args) = program(&mut rng, &Shape::default());
            let p = Program::validate(e).expect("valid");
            assert_ne!(
                eval_budgeted(&p, &args, 10_000_000),
                Err(BudgetError::OutOfSteps)
            );
        }
    }
}
