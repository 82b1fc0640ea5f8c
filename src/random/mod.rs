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
//! condition and body (no `Set` can reach it) except for the one step that
//! counts it down. That step is the body's last or first statement, or
//! inside the condition (`while { s = s + -1; s } { … }`), or in the
//! condition of an inner loop that every pass of the outer one runs (in its
//! body's statements or in its own condition): a loop that tests a counter
//! another loop steps, the shape of a nest that shares one counter. Trip
//! counts come from small literals or from the first [`Shape::trip_args`]
//! arguments, which are kept small, and steps from literals, from
//! read-only locals or from the next [`Shape::step_args`] arguments, kept
//! in `-2..=-1`; the other arguments are "wild" (`i64::MIN`, `i64::MAX`, …)
//! so wrapping overflow is exercised everywhere else. A hot loop may also
//! step its counter by `n = n + n`, which doubles a positive count until it
//! wraps to zero or below (at most 63 passes, so only over a loop-free
//! body), or end it by setting it to a sum of two steps.
//!
//! The shapes aim at every operand location of every engine too (the
//! coverage test checks that the differential's programs build every
//! variant): blocks of several locals (more than any engine has registers,
//! so some live in frame slots), statements that make a local busier than
//! the loop counter (`x = x + x + x + 1`), so that the counter is the one a
//! register allocator leaves in a slot, and hot loops, which draw a
//! location (a register, a frame slot, a constant, or a value computed into
//! the accumulator) for the counter and for each operand of its step, and
//! make the allocator agree by ranking values with the reads of a loop that
//! never runs.

pub mod balanced;
pub mod calls;
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
    /// Arguments used as loop steps (after the trip counts; kept in `-2..=-1`).
    pub step_args: usize,
    /// Arguments with arbitrary values.
    pub wild_args: usize,
    /// How many values a hot loop ranks above the rest, so that a register
    /// allocator with that many registers for locals keeps them there and
    /// its handlers see every register in every operand.
    pub hot_values: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            depth: 8,
            loop_nesting: 3,
            max_trip: 8,
            trip_args: 2,
            step_args: 2,
            wild_args: 2,
            hot_values: 3,
        }
    }
}

/// The shape the differential tests give seed `seed`: shallow to deep
/// trees, one to four nested loops.
pub fn shape_for_seed(seed: u64) -> Shape {
    Shape {
        depth: 3 + (seed % 14) as usize,
        loop_nesting: 1 + (seed % 4) as usize,
        // One program in five ranks eight values: the register engines
        // have three registers for locals, or eight (`rust-preserve-none`).
        hot_values: if seed % 5 == 4 { 8 } else { 3 },
        ..Shape::default()
    }
}

/// [`shape_for_seed`] with hot loops that rank eight values: the programs
/// the tests add for an instruction set of eight registers in every
/// operand (`register_preserve_none`), whose thousands of variants a few
/// programs in five cannot all reach.
pub fn wide_shape_for_seed(seed: u64) -> Shape {
    Shape {
        hot_values: 8,
        ..shape_for_seed(seed)
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
        calls: None,
    };
    let expr = match g.rng.random_range(0..20) {
        0..=6 if shape.loop_nesting > 0 => g.spine(shape.depth),
        7..=13 if shape.loop_nesting > 0 => g.hot_loops(shape.depth),
        _ => g.expr(shape.depth),
    };
    let args = g.args();
    (expr, args)
}

// The state a generator carries for Level 2 ([`calls`] builds the programs);
// declared here so that this module never names its child.

/// What the generator may call from the body it is building.
struct Calls {
    functions: Vec<Kind>,
    place: Place,
    /// Fuelled calls the current body may still make.
    fuelled_left: usize,
}

#[derive(Clone, Copy)]
enum Kind {
    /// First parameter is the fuel; `arity` counts it.
    Fuelled { arity: usize },
    /// Calls nothing.
    Leaf { arity: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Main,
    /// The branch of a fuelled function that runs while its fuel (the
    /// outermost local of the body) is positive.
    Burning,
    /// Anywhere else in a function: no fuelled calls.
    Cold,
    /// A leaf function's body: no calls at all.
    Leaf,
}

/// What the generator may do with a local in scope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Local {
    /// Any statement may store to it.
    Writable,
    /// A loop counter: read-only but for its loop's one step.
    Counter,
    /// A loop step: read-only, holding -2 or -1 for its whole scope.
    Step,
    /// A Level-2 function's fuel parameter: read-only, so recursion on it
    /// ends ([`calls`]).
    Fuel,
}

/// Which values a hot loop's reads rank first, second, … (`ranks`, as many
/// as the shape's `hot_values`), and which it must leave to frame slots
/// (`cold`: not ranked, read little); `doubles` if its step is `n + n`.
#[derive(Default)]
struct Plan {
    ranks: Vec<Option<Expr>>,
    cold: Vec<Expr>,
    doubles: bool,
}

/// An operand of a hot loop's step: a leaf, or a value of a kind computed
/// into `acc`.
enum Planned {
    Leaf(Expr, Term),
    Acc(Term),
}

/// What a hot loop's operand holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Term {
    /// The loop's counter.
    Counter,
    /// A step: `-2..=-1`.
    Step,
    /// A value the loop does not change, in `-2..=max_trip`.
    Bounded,
    /// Anything.
    Any,
}

struct Gen<'a, R> {
    rng: &'a mut R,
    shape: &'a Shape,
    /// Locals in scope, innermost last.
    scope: Vec<Local>,
    loops: usize,
    /// Level 2's functions and calls ([`calls`]); `None` for Level 1.
    calls: Option<Calls>,
}

impl<R: Rng> Gen<'_, R> {
    /// Arguments as every generated program takes them: the trip arguments
    /// small, then the step arguments (-2 or -1), the others wild.
    fn args(&mut self) -> Vec<i64> {
        let mut args: Vec<i64> = (0..self.shape.trip_args)
            .map(|_| self.rng.random_range(0..=self.shape.max_trip))
            .collect();
        for _ in 0..self.shape.step_args {
            let step = self.rng.random_range(-2..=-1);
            args.push(step);
        }
        for _ in 0..self.shape.wild_args {
            let v = self.literal();
            args.push(v);
        }
        args
    }

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
        self.shape.trip_args + self.shape.step_args + self.shape.wild_args
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
        let candidates: Vec<usize> = (0..n)
            .filter(|&d| self.scope[n - 1 - d] == Local::Writable)
            .collect();
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
                self.scope.push(Local::Writable);
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

    /// `n` writable locals brought into scope, each initialised by a leaf:
    /// their inits, outermost first (the caller wraps its body in them).
    fn writable_locals(&mut self, n: usize) -> Vec<Expr> {
        (0..n)
            .map(|_| {
                let init = self.leaf();
                self.scope.push(Local::Writable);
                init
            })
            .collect()
    }

    /// `Let(a, Let(b, … body))`: two to five locals at once, so more are
    /// live than an engine has registers.
    fn locals_block(&mut self, depth: usize) -> Expr {
        let n = self.rng.random_range(2..=5);
        let inits = self.writable_locals(n);
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
        let inits = self.writable_locals(n);
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
            .find(|&d| self.scope[n - 1 - d] == Local::Counter)
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

    /// A trip count: a small literal or a trip argument.
    fn trip(&mut self) -> Expr {
        if self.shape.trip_args > 0 && self.rng.random_bool(0.5) {
            Expr::Arg(self.rng.random_range(0..self.shape.trip_args))
        } else {
            Expr::Litr(self.rng.random_range(0..=self.shape.max_trip))
        }
    }

    /// One to three [`Gen::hot_loop`]s in a row, their values summed.
    fn hot_loops(&mut self, depth: usize) -> Expr {
        let mut e = self.hot_loop(depth);
        for _ in 0..self.rng.random_range(0..=2) {
            let next = self.hot_loop(depth);
            e = if self.rng.random_bool(0.5) {
                Expr::add(e, next)
            } else {
                Expr::then(e, next)
            };
        }
        e
    }

    /// A loop over hot locals, so that the register engines see every
    /// operand location in every operand of a sum and of a loop's step and
    /// test: `let v = …; let s = -1; …; { let n = trip; while c { b } }; v +
    /// w`. Two to five locals around the loop, some of them read-only steps
    /// (`-2..=-1`, a literal or a step argument). The counter `n` is
    /// stepped by `n + s`, `s + n` or `n + n` (which doubles until it wraps
    /// to zero or below; only in a loop-free body), or set to `s + s` (the
    /// last pass); the step is the body's last statement, or the
    /// condition's (`{ n = …; n }`), or it comes first in a condition whose
    /// value is a sum of `n` and a fixed small value (`{ n = n + s; n + 3
    /// }`), of `n` and `n`, or of two steps. Which values the allocator
    /// keeps in registers is chosen with the step: the body begins with a
    /// loop that never runs (`while 0 { h0; h0; h0; h0; h1; h1; h1; h2; h2
    /// }`) whose reads weigh like a nested loop's, ranking `h0`, `h1`, `h2`
    /// above anything else the loop reads.
    fn hot_loop(&mut self, depth: usize) -> Expr {
        let hot = self.shape.hot_values;
        let count = self.rng.random_range(2..=hot + 2);
        let inits: Vec<Expr> = (0..count)
            .map(|i| {
                if i > 0 && self.rng.random_bool(0.5) {
                    self.scope.push(Local::Step);
                    if self.shape.step_args > 0 && self.rng.random_bool(0.5) {
                        self.step_arg()
                    } else {
                        Expr::Litr(self.rng.random_range(-2..=-1))
                    }
                } else {
                    let init = self.leaf();
                    self.scope.push(Local::Writable);
                    init
                }
            })
            .collect();
        let trip = self.trip();
        self.loops += 1;
        self.scope.push(Local::Counter);
        let case = self.rng.random_range(0..3);
        let mut plan = Plan {
            ranks: vec![None; hot],
            ..Plan::default()
        };
        // The step, or in case 2 the test after the step: `n + s`, `s +
        // s`, `n + n`, every way round, the test decreasing with `n`.
        let planned = self.planned_step(&mut plan);
        plan.doubles &= case < 2;
        self.fill_ranks(&mut plan);
        let loop_free = plan.doubles
            || depth < 4
            || self.loops >= self.shape.loop_nesting
            || self.rng.random_bool(0.6);
        let heat = (0..hot).flat_map(|k| {
            let reads = hot + 1 - k;
            plan.ranks[k]
                .iter()
                .flat_map(move |h| std::iter::repeat_n(h.clone(), reads))
        });
        let heat = heat.reduce(Expr::then).unwrap_or(Expr::Litr(0));
        let mut body = self.hot_statement();
        // Mostly: without the ranking loop the body may be unrolled.
        if self.rng.random_bool(0.65) {
            let never = Expr::Litr(self.rng.random_range(-1..=0));
            body = Expr::then(Expr::while_(never, heat), body);
        }
        for _ in 0..self.rng.random_range(0..=2) {
            let next = self.hot_statement();
            body = Expr::then(body, next);
        }
        if let Some(sum) = self.planned_sum(&plan) {
            body = Expr::then(body, sum);
        }
        if !loop_free {
            let nested = self.expr(depth - 1);
            body = Expr::then(body, nested);
        }
        let (cond, body) = match case {
            0 => (Expr::Get(0), Expr::then(body, Expr::set(0, planned))),
            1 => (Expr::then(Expr::set(0, planned), Expr::Get(0)), body),
            _ => {
                let step = if self.rng.random_bool(0.5) {
                    self.sum(Term::Counter, Term::Step)
                } else {
                    self.sum(Term::Step, Term::Counter)
                };
                let test = if self.rng.random_bool(0.7) {
                    planned
                } else {
                    // A fixed small value in the test, not only a step.
                    let (a, b) = match self.rng.random_range(0..2) {
                        0 => (Term::Counter, Term::Bounded),
                        _ => (Term::Bounded, Term::Counter),
                    };
                    self.sum(a, b)
                };
                (Expr::then(Expr::set(0, step), test), body)
            }
        };
        self.scope.pop();
        self.loops -= 1;
        let mut value = Expr::add(
            Expr::Get(self.rng.random_range(0..count)),
            Expr::Get(self.rng.random_range(0..count)),
        );
        // Statements after the loop weigh little: they read the loop's
        // registers and slots as the loop left them.
        for _ in 0..self.rng.random_range(0..=2) {
            let statement = self.hot_statement();
            value = Expr::then(statement, value);
        }
        let mut e = Expr::then(Expr::let_(trip, Expr::while_(cond, body)), value);
        for init in inits.into_iter().rev() {
            self.scope.pop();
            e = Expr::let_(init, e);
        }
        e
    }

    /// The steps in scope and the step arguments, as leaves.
    fn steps(&self) -> Vec<Expr> {
        let n = self.scope.len();
        let locals = (0..n)
            .filter(|&d| self.scope[n - 1 - d] == Local::Step)
            .map(Expr::Get);
        let first = self.shape.trip_args;
        locals
            .chain((first..first + self.shape.step_args).map(Expr::Arg))
            .collect()
    }

    /// The hot loop's step `p + q` (the counter at distance 0), with a
    /// location drawn for the counter and for each operand, and `plan`
    /// ranking the values so that they land there.
    fn planned_step(&mut self, plan: &mut Plan) -> Expr {
        // Below `hot`: a register; `hot`: a frame slot.
        let hot = self.shape.hot_values;
        let counter = self.rng.random_range(0..=hot);
        if counter < hot {
            plan.ranks[counter] = Some(Expr::Get(0));
        } else {
            plan.cold.push(Expr::Get(0));
        }
        let mut steps = self.steps();
        let (p, q) = (
            self.planned(plan, &mut steps),
            self.planned(plan, &mut steps),
        );
        let term = |o: &Planned| match o {
            Planned::Leaf(_, t) | Planned::Acc(t) => *t,
        };
        plan.doubles = term(&p) == Term::Counter && term(&q) == Term::Counter;
        if let (Planned::Acc(t), Planned::Acc(_)) = (&p, &q)
            && let Some(w) = self.cold_writable(plan)
        {
            // `{ w = x; w } + w`: `w` in a slot, read twice from `acc`.
            plan.doubles = *t == Term::Counter;
            let x = self.value(*t, &steps);
            return Expr::add(Expr::then(Expr::set(w, x), Expr::Get(w)), Expr::Get(w));
        }
        let read = |g: &mut Self, o: Planned| match o {
            Planned::Leaf(e, _) => e,
            Planned::Acc(t) => {
                let x = g.value(t, &steps);
                if g.rng.random_bool(0.5) {
                    Expr::then(Expr::Litr(0), x)
                } else {
                    Expr::add(x, Expr::Litr(0))
                }
            }
        };
        let p = read(self, p);
        Expr::add(p, read(self, q))
    }

    /// A leaf of kind `t` (a counter or a step) from the hot loop.
    fn value(&mut self, t: Term, steps: &[Expr]) -> Expr {
        match t {
            Term::Counter => Expr::Get(0),
            _ if steps.is_empty() || self.rng.random_bool(0.3) => {
                Expr::Litr(self.rng.random_range(-2..=-1))
            }
            _ => steps[self.rng.random_range(0..steps.len())].clone(),
        }
    }

    /// An operand of the hot loop's step, in a location drawn at random:
    /// the counter, or a step (`steps` holds the ones not placed yet).
    fn planned(&mut self, plan: &mut Plan, steps: &mut Vec<Expr>) -> Planned {
        let counter_cold = plan.cold.contains(&Expr::Get(0));
        // Below `hot`: a register; `hot`: a slot; `hot + 1`: a constant;
        // `hot + 2`: `acc`.
        let hot = self.shape.hot_values;
        match self.rng.random_range(0..hot + 3) {
            k if k < hot => match &plan.ranks[k] {
                Some(Expr::Get(0)) => Planned::Leaf(Expr::Get(0), Term::Counter),
                Some(h) => Planned::Leaf(h.clone(), Term::Step),
                None if !steps.is_empty() => {
                    // A local if there is one: an argument in a register
                    // holds it for the whole program, other loops included.
                    let locals = steps.iter().filter(|s| matches!(s, Expr::Get(_))).count();
                    let i = self
                        .rng
                        .random_range(0..if locals > 0 { locals } else { steps.len() });
                    let s = steps.remove(i);
                    plan.ranks[k] = Some(s.clone());
                    Planned::Leaf(s, Term::Step)
                }
                None => Planned::Leaf(Expr::Litr(-1), Term::Step),
            },
            k if k == hot && counter_cold && self.rng.random_bool(0.5) => {
                Planned::Leaf(Expr::Get(0), Term::Counter)
            }
            k if k == hot && !steps.is_empty() => {
                // Often an argument: a frame slot to the register engines,
                // an argument operand to the tape ones.
                let args = steps.iter().filter(|s| matches!(s, Expr::Arg(_))).count();
                let i = match self.rng.random_range(0..steps.len()) {
                    _ if args > 0 && self.rng.random_bool(0.5) => steps.len() - 1,
                    i => i,
                };
                let s = steps.remove(i);
                plan.cold.push(s.clone());
                Planned::Leaf(s, Term::Step)
            }
            k if k <= hot + 1 => {
                Planned::Leaf(Expr::Litr(self.rng.random_range(-2..=-1)), Term::Step)
            }
            _ if self.rng.random_bool(0.5) => Planned::Acc(Term::Counter),
            _ => Planned::Acc(Term::Step),
        }
    }

    /// A writable local no rank holds, marked cold, if there is one.
    fn cold_writable(&mut self, plan: &mut Plan) -> Option<usize> {
        let n = self.scope.len();
        let free: Vec<usize> = (0..n)
            .filter(|&d| {
                self.scope[n - 1 - d] == Local::Writable
                    && !plan.ranks.contains(&Some(Expr::Get(d)))
            })
            .collect();
        let w = *free.get(self.rng.random_range(0..free.len().max(1)))?;
        plan.cold.push(Expr::Get(w));
        Some(w)
    }

    /// `w = ({ c = x; c } + p) + q`, `c` a writable local no rank holds:
    /// the fused tier's two-add op reading `acc` for `c` (a slot store
    /// leaves its value there), into a ranked local if one is writable,
    /// `p` and `q` often `c` or a ranked value.
    fn planned_sum(&mut self, plan: &Plan) -> Option<Expr> {
        let n = self.scope.len();
        let writable =
            |e: &Expr| matches!(*e, Expr::Get(d) if self.scope[n - 1 - d] == Local::Writable);
        let cold: Vec<usize> = (0..n)
            .filter(|&d| writable(&Expr::Get(d)) && !plan.ranks.contains(&Some(Expr::Get(d))))
            .collect();
        let hot: Vec<Expr> = plan.ranks.iter().flatten().cloned().collect();
        let hot_writable: Vec<Expr> = hot.iter().filter(|e| writable(e)).cloned().collect();
        let c = *cold.get(self.rng.random_range(0..cold.len().max(1)))?;
        let w = match hot_writable.get(self.rng.random_range(0..hot_writable.len().max(1))) {
            Some(Expr::Get(w)) if self.rng.random_bool(0.8) => *w,
            _ => self.writable()?,
        };
        let x = self.operand();
        let read = |g: &mut Self| match g.rng.random_range(0..4) {
            0 => Expr::Get(c),
            1 if !hot.is_empty() => hot[g.rng.random_range(0..hot.len())].clone(),
            2 => Expr::Litr(g.literal()),
            _ => g.operand(),
        };
        let t = Expr::then(Expr::set(c, x), Expr::Get(c));
        let p = read(self);
        let q = read(self);
        Some(Expr::set(w, Expr::add(Expr::add(t, p), q)))
    }

    /// Fills the ranks the step left free with other locals and arguments,
    /// none of the cold ones, so that the cold ones stay in slots.
    fn fill_ranks(&mut self, plan: &mut Plan) {
        let free = |e: &Expr| !plan.cold.contains(e) && !plan.ranks.contains(&Some(e.clone()));
        let mut locals: Vec<Expr> = (0..self.scope.len()).map(Expr::Get).filter(free).collect();
        // Arguments last: one in a register holds it in other loops too.
        let mut args: Vec<Expr> = (0..self.arg_count()).map(Expr::Arg).filter(free).collect();
        for rank in plan.ranks.iter_mut().filter(|r| r.is_none()) {
            let from = if locals.is_empty() {
                &mut args
            } else {
                &mut locals
            };
            if from.is_empty() {
                break;
            }
            *rank = Some(from.swap_remove(self.rng.random_range(0..from.len())));
        }
    }

    /// A step argument's leaf.
    fn step_arg(&mut self) -> Expr {
        let first = self.shape.trip_args;
        Expr::Arg(first + self.rng.random_range(0..self.shape.step_args))
    }

    /// A leaf of kind `t`, the hot loop's counter at distance 0.
    fn term(&mut self, t: Term) -> Expr {
        let n = self.scope.len();
        let steps: Vec<usize> = (0..n)
            .filter(|&d| self.scope[n - 1 - d] == Local::Step)
            .collect();
        let step = |g: &mut Self| match g.rng.random_range(0..3) {
            0 if !steps.is_empty() => Expr::Get(steps[g.rng.random_range(0..steps.len())]),
            1 if g.shape.step_args > 0 => g.step_arg(),
            _ => Expr::Litr(g.rng.random_range(-2..=-1)),
        };
        match t {
            Term::Counter => Expr::Get(0),
            Term::Step => step(self),
            Term::Bounded => match self.rng.random_range(0..3) {
                0 => step(self),
                1 if self.shape.trip_args > 0 => {
                    Expr::Arg(self.rng.random_range(0..self.shape.trip_args))
                }
                _ => Expr::Litr(self.rng.random_range(-2..=2)),
            },
            Term::Any => self.operand(),
        }
    }

    /// A leaf that is mostly a local (often one of the innermost few, a
    /// hot loop's own) or an argument.
    fn operand(&mut self) -> Expr {
        let n = self.scope.len();
        match self.rng.random_range(0..10) {
            0..=2 if n > 0 => Expr::Get(self.rng.random_range(0..n.min(6))),
            3..=5 if n > 0 => Expr::Get(self.rng.random_range(0..n)),
            6 | 7 if self.arg_count() > 0 => Expr::Arg(self.rng.random_range(0..self.arg_count())),
            _ => Expr::Litr(self.literal()),
        }
    }

    /// `e`, or its value computed into a temporary: `{ 0; e }` or `e + 0`.
    fn dress(&mut self, e: Expr) -> Expr {
        match self.rng.random_range(0..6) {
            0 => Expr::then(Expr::Litr(0), e),
            1 => Expr::add(e, Expr::Litr(0)),
            _ => e,
        }
    }

    /// `p + q`, `p` of kind `a` and `q` of kind `b`, each read in place or
    /// computed first ([`Gen::dress`]); or, when the kinds are the same, one
    /// value stored and read twice: `{ w = p; w } + w`.
    fn sum(&mut self, a: Term, b: Term) -> Expr {
        if a == b
            && self.rng.random_bool(0.3)
            && let Some(w) = self.writable()
        {
            let p = self.term(a);
            return Expr::add(Expr::then(Expr::set(w, p), Expr::Get(w)), Expr::Get(w));
        }
        let p = self.term(a);
        let p = self.dress(p);
        let q = self.term(b);
        let q = self.dress(q);
        Expr::add(p, q)
    }

    /// A statement of a hot loop: `w = p + q`, or a sum of three whose two
    /// adds the fused tier makes one (`(t + p) + q`, `p + (q + t)`, and
    /// such a sum as an operand), `t` computed (`{ w = x; w }`, `{ 0; x }`,
    /// `x + y`) and `p`, `q` often reading what `t` just stored.
    fn hot_statement(&mut self) -> Expr {
        let w = self.writable().expect("a hot loop has a writable local");
        let value = match self.rng.random_range(0..6) {
            0..=2 => self.sum(Term::Any, Term::Any),
            kind => {
                let (t, stored) = self.computed();
                let read = |g: &mut Self| match stored {
                    Some(s) if g.rng.random_bool(0.4) => Expr::Get(s),
                    _ => g.operand(),
                };
                let p = read(self);
                let q = read(self);
                match kind {
                    3 => Expr::add(Expr::add(t, p), q),
                    4 => Expr::add(p, Expr::add(q, t)),
                    _ => {
                        let first = self.operand();
                        Expr::add(first, Expr::add(Expr::add(t, p), q))
                    }
                }
            }
        };
        Expr::set(w, value)
    }

    /// A computed operand, and the local it stores to and ends reading,
    /// if any.
    fn computed(&mut self) -> (Expr, Option<usize>) {
        match self.rng.random_range(0..3) {
            0 => {
                let x = self.operand();
                (Expr::then(Expr::Litr(0), x), None)
            }
            1 => {
                let (x, y) = (self.operand(), self.operand());
                (Expr::add(x, y), None)
            }
            _ => {
                let w = self.writable().expect("a hot loop has a writable local");
                let x = self.operand();
                (Expr::then(Expr::set(w, x), Expr::Get(w)), Some(w))
            }
        }
    }

    /// `Let(trip, While(cond, body))`, the counter read-only except for its
    /// one step: after or before the body (`Then(body, Set(0, Get(0) +
    /// -step))`), inside the condition, or in the condition of an inner loop
    /// in the body or in the condition.
    fn counted_loop(&mut self, depth: usize) -> Expr {
        let trip = self.trip();
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
                self.scope.push(Local::Writable);
                Expr::Litr(self.rng.random_range(0..=2))
            })
            .collect();
        if case == 6 {
            // The step, read-only like a counter.
            self.scope.push(Local::Step);
            inits.push(Expr::Litr(self.rng.random_range(-2..=-1)));
        }
        self.loops += 1;
        self.scope.push(Local::Counter);
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
