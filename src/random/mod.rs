//! Generated programs, for every test and benchmark that needs more than
//! hand-written ones. Every generator is deterministic in its seed, so a
//! failure names a program that can be made again.
//!
//! - This module: random valid, terminating programs with wild arguments,
//!   shaped by [`Shape`] (the differential and round-trip tests).
//! - [`small`]: small programs with short countdown loops from a tiny
//!   xorshift generator (the peer tests).
//! - [`balanced`]: large programs of a given size whose depth grows with the
//!   logarithm of it (scaling, large programs, size limits, long straight
//!   lines).
//!
//! The fuzz targets build programs from the fuzzer's bytes instead
//! (`fuzz/src/generate.rs`), so the fuzzer can steer them.
//!
//! For [`program`], termination is by construction: every generated loop counts a fresh local
//! down to zero, and the generator marks that counter read-only for the loop's
//! condition and body (no `Set` can reach it) except for the one step that
//! counts it down. That step is the body's last or first statement, or
//! inside the condition (`while { s = s + -1; s } { … }`), or in the
//! condition of an inner loop that every pass of the outer one runs (in its
//! body's statements or in its own condition): a loop that tests a counter
//! another loop steps, the shape of a nest that shares one counter. Trip
//! counts come from small literals or from the first [`Shape::trip_args`]
//! arguments, which are kept small; the other arguments are "wild"
//! (`i64::MIN`, `i64::MAX`, …) so wrapping overflow is exercised everywhere
//! else.
//!
//! The shapes aim at every operand location of the register engines too:
//! blocks of several locals (more than any engine has registers, so some
//! live in frame slots), and statements that make a local busier than the
//! loop counter (`x = x + x + x + 1`), so that the counter is the one a
//! register allocator leaves in a slot.

pub mod balanced;
pub mod small;

use crate::front::ast::Expr;
use rand::{Rng, SeedableRng};

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

/// The shape the differential tests give seed `seed`: shallow to deep
/// trees, one to four nested loops.
pub fn shape_for_seed(seed: u64) -> Shape {
    Shape {
        depth: 3 + (seed % 14) as usize,
        loop_nesting: 1 + (seed % 4) as usize,
        ..Shape::default()
    }
}

/// The program and arguments the differential tests make from `seed`
/// (`tests/differential.rs`, and `tests/coverage.rs`, which checks these
/// programs reach every instruction of every engine).
pub fn seeded(seed: u64) -> (Expr, Vec<i64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    program(&mut rng, &shape_for_seed(seed))
}

/// A generated program with arguments it terminates on.
pub fn program(rng: &mut impl Rng, shape: &Shape) -> (Expr, Vec<i64>) {
    let mut g = Gen {
        rng,
        shape,
        scope: Vec::new(),
        loops: 0,
    };
    let expr = if shape.loop_nesting > 0 && g.rng.random_bool(0.5) {
        g.spine(shape.depth)
    } else {
        g.expr(shape.depth)
    };
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
    /// Locals in scope, innermost last: `true` = a loop counter (read-only).
    scope: Vec<bool>,
    loops: usize,
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
        match self.rng.random_range(0..15) {
            12 => self.locals_block(d),
            13 => match self.writable() {
                Some(local) => self.busy(local),
                None => self.leaf(),
            },
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

    /// `Let(a, Let(b, … body))`: two to five locals at once, so more are
    /// live than an engine has registers.
    fn locals_block(&mut self, depth: usize) -> Expr {
        let n = self.rng.random_range(2..=5);
        let inits: Vec<Expr> = (0..n)
            .map(|_| {
                let init = self.leaf();
                self.scope.push(false);
                init
            })
            .collect();
        let mut e = self.expr(depth);
        for init in inits.into_iter().rev() {
            self.scope.pop();
            e = Expr::let_(init, e);
        }
        e
    }

    /// The shape of a measured program: locals, a loop over them, and a
    /// value that reads them (`let a = …; let b = …; while … { … }; a + b`),
    /// so what the loops did shows in the program's value.
    fn spine(&mut self, depth: usize) -> Expr {
        let n = self.rng.random_range(1..=4);
        let inits: Vec<Expr> = (0..n)
            .map(|_| {
                let init = self.leaf();
                self.scope.push(false);
                init
            })
            .collect();
        let work = self.counted_loop(depth.saturating_sub(1).max(2));
        let mut value = Expr::Get(self.rng.random_range(0..n));
        if n > 1 && self.rng.random_bool(0.5) {
            value = Expr::add(value, Expr::Get(self.rng.random_range(0..n)));
        }
        let mut e = Expr::then(work, value);
        for init in inits.into_iter().rev() {
            self.scope.pop();
            e = Expr::let_(init, e);
        }
        e
    }

    /// `x = x + x + x + leaf`: local `x` used four times, busier than a
    /// loop counter a loop around it reads once or twice.
    fn busy(&mut self, local: usize) -> Expr {
        let x = || Expr::Get(local);
        let leaf = self.leaf();
        Expr::set(local, Expr::add(Expr::add(Expr::add(x(), x()), x()), leaf))
    }

    /// `Set(d, Get(d) + -step)`: the step of the counter at distance `d`.
    fn countdown(&mut self, d: usize) -> Expr {
        let step = self.rng.random_range(1..=2);
        Expr::set(d, Expr::add(Expr::Get(d), Expr::Litr(-step)))
    }

    /// A condition that steps the counter at distance `d` and tests it:
    /// `{ side; d = d + -step; d }`, or `… ; d + k` (small `k ≥ 0`, still
    /// counting down to an end).
    fn stepping_cond(&mut self, d: usize, depth: usize) -> Expr {
        let step = self.countdown(d);
        let test = if self.rng.random_bool(0.7) {
            Expr::Get(d)
        } else {
            Expr::add(Expr::Get(d), Expr::Litr(self.rng.random_range(0..=1)))
        };
        let cond = Expr::then(step, test);
        if self.rng.random_bool(0.3) {
            Expr::then(self.expr(depth.min(3)), cond)
        } else {
            cond
        }
    }

    /// The distance of the innermost loop counter from here.
    fn innermost_counter(&self) -> usize {
        let n = self.scope.len();
        (0..n)
            .find(|&d| self.scope[n - 1 - d])
            .expect("inside a loop")
    }

    /// A loop that steps the counter of the loop around it in its own
    /// condition (every check counts it down, so it ends), with a body that
    /// cannot write it. Run once per pass of the enclosing loop, it is
    /// that loop's step.
    fn stepping_loop(&mut self, depth: usize) -> Expr {
        let d = self.innermost_counter();
        self.loops += 1;
        let cond = self.stepping_cond(d, depth);
        let body = self.body(depth);
        self.loops -= 1;
        Expr::while_(cond, body)
    }

    /// Statements around `middle`, every one run whenever the whole is
    /// (mostly before it, so `middle` often ends the whole).
    fn around(&mut self, middle: Expr, depth: usize) -> Expr {
        let mut e = middle;
        if self.rng.random_bool(0.5) {
            e = Expr::then(self.expr(depth), e);
        }
        if self.rng.random_bool(0.25) {
            e = Expr::then(e, self.expr(depth));
        }
        e
    }

    /// `Let(trip, While(cond, body))`, the counter read-only except for its
    /// one step: after or before the body (`Then(body, Set(0, Get(0) +
    /// -step))`), inside the condition, or in the condition of an inner loop
    /// in the body or in the condition.
    fn counted_loop(&mut self, depth: usize) -> Expr {
        let trip = if self.shape.trip_args > 0 && self.rng.random_bool(0.5) {
            Expr::Arg(self.rng.random_range(0..self.shape.trip_args))
        } else {
            Expr::Litr(self.rng.random_range(0..=self.shape.max_trip))
        };
        let case = self.rng.random_range(0..10);
        // Three locals around a loop whose counter a condition steps, made
        // busier than the counter inside the loop: the counter is the one
        // left in a frame slot.
        let busy = if case < 6 && self.rng.random_bool(0.5) {
            3
        } else {
            0
        };
        let mut inits: Vec<Expr> = (0..busy)
            .map(|_| {
                self.scope.push(false);
                Expr::Litr(self.rng.random_range(0..=2))
            })
            .collect();
        if case == 6 {
            // The step, read-only like a counter.
            self.scope.push(true);
            inits.push(Expr::Litr(self.rng.random_range(-2..=-1)));
        }
        self.loops += 1;
        self.scope.push(true);
        let nested = self.loops < self.shape.loop_nesting;
        let (cond, body) = match case {
            // The condition steps the counter.
            0 | 1 => {
                let cond = self.stepping_cond(0, depth);
                (cond, self.body(depth))
            }
            // An inner loop in the body steps it in its condition.
            2 | 3 if nested => {
                let inner = self.stepping_loop(depth);
                let body = self.around(inner, depth);
                (Expr::Get(0), body)
            }
            // An inner loop in the condition steps it.
            4 | 5 if nested => {
                let inner = self.stepping_loop(depth.min(4));
                let cond = Expr::then(inner, Expr::Get(0));
                (cond, self.expr(depth))
            }
            // The body steps it by the read-only local declared just
            // around it, which holds -1 or -2.
            6 => {
                let body = self.expr(depth);
                let countdown = Expr::set(0, Expr::add(Expr::Get(0), Expr::Get(1)));
                (Expr::Get(0), Expr::then(body, countdown))
            }
            _ => {
                let cond = if self.rng.random_bool(0.7) {
                    Expr::Get(0)
                } else {
                    // Side effects in the condition, re-run on every check.
                    let side = self.expr(depth.min(3));
                    Expr::then(side, Expr::Get(0))
                };
                let body = self.expr(depth);
                let countdown = self.countdown(0);
                let looped = if self.rng.random_bool(0.5) {
                    Expr::then(body, countdown)
                } else {
                    Expr::then(countdown, body)
                };
                (cond, looped)
            }
        };
        self.scope.pop();
        self.loops -= 1;
        let mut e = Expr::let_(trip, Expr::while_(cond, body));
        for init in inits.into_iter().rev() {
            self.scope.pop();
            e = Expr::let_(init, e);
        }
        e
    }

    /// A loop body: any expression, or three busy statements (on the
    /// locals in scope, which `counted_loop` may have just made).
    fn body(&mut self, depth: usize) -> Expr {
        if self.rng.random_bool(0.5) {
            return self.expr(depth);
        }
        let mut e = match self.writable() {
            Some(x) => self.busy(x),
            None => return self.expr(depth),
        };
        for _ in 0..2 {
            if let Some(x) = self.writable() {
                let next = self.busy(x);
                e = Expr::then(e, next);
            }
        }
        e
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
