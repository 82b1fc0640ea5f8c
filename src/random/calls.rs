//! Random Level-2 programs: functions, calls, `-`, `<` and `if`, around the
//! Level-1 shapes of the parent module's generator, which builds every body
//! and main and asks here ([`Gen::level_two`]) for the Level-2 nodes.
//!
//! Termination is by construction, as for loops. A *fuelled* function's
//! first parameter is its fuel, read-only in its body; the body is
//! `if 0 < fuel { … } else { … }` (or the same test written the other way
//! round), and only the branch that runs while the fuel is positive calls
//! fuelled functions, each with the fuel minus 1 or 2. Every chain of calls
//! thus burns fuel, and mutual recursion is as safe as self-recursion. A
//! *leaf* function makes no calls. Main passes a fuelled function a small
//! literal fuel, and a body makes at most two fuelled calls, so fuel `f`
//! costs about `2^f` calls (times the trips of loops around them).
//!
//! Loops may test with `<` too ([`Gen::lt_loop`]): a read-only counter
//! counts down to a literal, or up from 0 to a trip written in the test or
//! held in a read-only local, so they end as the Level-1 loops do.
//!
//! A quarter of the programs are *deep* instead: a ring of one to three
//! functions that each make exactly one call, on fuel near the call limit
//! ([`MAX_CALLS`]), so runs reach 9,999, 10,000 and 10,001 active calls and
//! beyond; the last fail on purpose with *call depth exceeded*, and every
//! engine must fail with them.

use super::{Calls, Gen, Kind, Local, Place, Shape};
use crate::front::ast::{Expr, Function, Source};
use crate::front::program::MAX_CALLS;
use rand::Rng;

/// Largest fuel main passes.
const MAX_FUEL: i64 = 4;

/// A random Level-2 program and arguments it ends on (or fails on with
/// *call depth exceeded*, for the deep ones that go past the limit).
pub fn program(rng: &mut impl Rng, shape: &Shape) -> (Source, Vec<i64>) {
    if rng.random_range(0..4) == 0 {
        return deep(rng, shape);
    }
    let count = rng.random_range(1..=4);
    let functions: Vec<Kind> = (0..count)
        .map(|_| {
            let arity = rng.random_range(0..=3);
            if rng.random_range(0..3) == 0 {
                Kind::Leaf { arity }
            } else {
                Kind::Fuelled { arity: arity + 1 }
            }
        })
        .collect();
    let body_shape = Shape {
        depth: shape.depth.min(6),
        loop_nesting: shape.loop_nesting.min(1),
        ..shape.clone()
    };
    let mut calls = Calls {
        functions: functions.clone(),
        place: Place::Main,
        fuelled_left: 0,
    };
    let mut defined = Vec::new();
    for (i, kind) in functions.iter().enumerate() {
        let (arity, place) = match *kind {
            Kind::Fuelled { arity } => (arity, Place::Burning),
            Kind::Leaf { arity } => (arity, Place::Leaf),
        };
        calls.place = place;
        calls.fuelled_left = 2;
        let (body, back) = body(rng, &body_shape, arity, calls);
        calls = back;
        defined.push(Function {
            name: format!("f{i}"),
            params: (0..arity).map(|p| format!("p{p}")).collect(),
            body,
        });
    }
    calls.place = Place::Main;
    calls.fuelled_left = 3;
    let mut g = Gen::new(rng, shape, Some(calls));
    let main = g.expr(shape.depth);
    let args = g.args();
    (
        Source {
            functions: defined,
            main,
        },
        args,
    )
}

/// A function body with `arity` parameters in scope (the first read-only
/// when it is fuel); gives `calls` back.
fn body(rng: &mut impl Rng, shape: &Shape, arity: usize, calls: Calls) -> (Expr, Calls) {
    let burning = calls.place == Place::Burning;
    let mut g = Gen::new(rng, shape, Some(calls));
    g.scope = (0..arity)
        .map(|p| {
            if burning && p == 0 {
                Local::Fuel
            } else {
                Local::Writable
            }
        })
        .collect();
    let e = if burning {
        g.fuel_guard(shape.depth)
    } else {
        g.expr(shape.depth)
    };
    (e, g.calls.take().expect("the generator keeps its calls"))
}

impl<R: Rng> Gen<'_, R> {
    /// A Level-2 node at most `depth` deep, sometimes, when generating a
    /// Level-2 program; `None`: the caller makes a Level-1 node.
    pub(super) fn level_two(&mut self, depth: usize) -> Option<Expr> {
        self.calls.as_ref()?;
        Some(match self.rng.random_range(0..10) {
            0 => {
                let a = self.expr(depth);
                Expr::sub(a, self.expr(depth))
            }
            1 => {
                let a = self.expr(depth);
                Expr::lt(a, self.expr(depth))
            }
            2 => {
                let c = self.expr(depth);
                let t = self.expr(depth);
                // Without `else`, the branch not taken is worth 0.
                let e = if self.rng.random_bool(0.3) {
                    Expr::Litr(0)
                } else {
                    self.expr(depth)
                };
                Expr::if_(c, t, e)
            }
            3 | 4 => self.call(depth)?,
            5 => self.lt_loop(depth)?,
            _ => return None,
        })
    }

    /// A loop whose test is a `<` (the compare-and-branch every engine may
    /// lower it to), ending by construction: a counter read-only but for
    /// its one step counts down to a literal (`let n = trip; while k < n {
    /// …; n = n - 1 }`), or up from 0 to the trip, written in the test or
    /// held in a read-only local (`let i = 0; while i < trip { …; i = i + 1
    /// }`).
    fn lt_loop(&mut self, depth: usize) -> Option<Expr> {
        if self.loops >= self.shape.loop_nesting || depth < 2 {
            return None;
        }
        let trip = self.trip();
        let case = self.rng.random_range(0..3);
        let limit = case == 2;
        if limit {
            self.scope.push(Local::Counter);
        }
        self.loops += 1;
        self.scope.push(Local::Counter);
        let body = self.expr(depth - 1);
        self.scope.pop();
        self.loops -= 1;
        let counter = || Expr::Get(0);
        let (init, cond, step) = match case {
            0 => {
                let k = Expr::Litr(self.rng.random_range(-1..=1));
                let down = Expr::sub(counter(), Expr::Litr(1));
                (trip.clone(), Expr::lt(k, counter()), down)
            }
            _ => {
                let bound = if limit { Expr::Get(1) } else { trip.clone() };
                let up = Expr::add(counter(), Expr::Litr(1));
                (Expr::Litr(0), Expr::lt(counter(), bound), up)
            }
        };
        let body = if self.rng.random_bool(0.5) {
            Expr::then(body, Expr::set(0, step))
        } else {
            Expr::then(Expr::set(0, step), body)
        };
        let e = Expr::let_(init, Expr::while_(cond, body));
        Some(if limit {
            self.scope.pop();
            Expr::let_(trip, e)
        } else {
            e
        })
    }

    /// `if 0 < fuel { burning } else { cold }`, or the same test written
    /// `fuel < 1` with the branches swapped; the fuel is the outermost
    /// local in scope.
    fn fuel_guard(&mut self, depth: usize) -> Expr {
        let fuel_at = |g: &Self| Expr::Get(g.scope.len() - 1);
        let positive_first = self.rng.random_bool(0.5);
        let cond = if positive_first {
            Expr::lt(Expr::Litr(0), fuel_at(self))
        } else {
            Expr::lt(fuel_at(self), Expr::Litr(1))
        };
        let burning = self.with_place(Place::Burning, |g| g.expr(depth));
        let cold = self.with_place(Place::Cold, |g| g.expr(depth));
        if positive_first {
            Expr::if_(cond, burning, cold)
        } else {
            Expr::if_(cond, cold, burning)
        }
    }

    fn with_place(&mut self, place: Place, f: impl FnOnce(&mut Self) -> Expr) -> Expr {
        let calls = self.calls.as_mut().expect("a Level-2 program");
        let outer = std::mem::replace(&mut calls.place, place);
        let e = f(self);
        self.calls.as_mut().expect("a Level-2 program").place = outer;
        e
    }

    /// A call this place may make, with arguments at most `depth` deep.
    fn call(&mut self, depth: usize) -> Option<Expr> {
        let calls = self.calls.as_ref()?;
        let place = calls.place;
        let fuelled_ok = matches!(place, Place::Main | Place::Burning) && calls.fuelled_left > 0;
        let callable: Vec<(usize, Kind)> = calls
            .functions
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, k)| match k {
                Kind::Fuelled { .. } => fuelled_ok,
                Kind::Leaf { .. } => place != Place::Leaf,
            })
            .collect();
        if callable.is_empty() {
            return None;
        }
        let (index, kind) = callable[self.rng.random_range(0..callable.len())];
        let mut args = Vec::new();
        let rest = match kind {
            Kind::Fuelled { arity } => {
                self.calls.as_mut()?.fuelled_left -= 1;
                args.push(self.fuel(place));
                arity - 1
            }
            Kind::Leaf { arity } => arity,
        };
        for _ in 0..rest {
            args.push(self.expr(depth));
        }
        Some(Expr::call(index, args))
    }

    /// The fuel a fuelled call passes: less than the caller's own in a
    /// body, small in main.
    fn fuel(&mut self, place: Place) -> Expr {
        if place == Place::Burning {
            let own = Expr::Get(self.scope.len() - 1);
            return Expr::sub(own, Expr::Litr(self.rng.random_range(1..=2)));
        }
        Expr::Litr(self.rng.random_range(-1..=MAX_FUEL))
    }

    fn new<'a>(rng: &'a mut R, shape: &'a Shape, calls: Option<Calls>) -> Gen<'a, R> {
        Gen {
            rng,
            shape,
            scope: Vec::new(),
            loops: 0,
            calls,
        }
    }
}

/// A deep program: a ring of functions that each call the next once on
/// their fuel minus 1, started from main on fuel close to [`MAX_CALLS`].
fn deep(rng: &mut impl Rng, shape: &Shape) -> (Source, Vec<i64>) {
    let ring = rng.random_range(1..=3);
    let arities: Vec<usize> = (0..ring).map(|_| rng.random_range(1..=3)).collect();
    let small = Shape {
        depth: shape.depth.min(4),
        loop_nesting: 0,
        ..shape.clone()
    };
    let mut functions = Vec::new();
    for (i, &arity) in arities.iter().enumerate() {
        let mut g = Gen::new(rng, &small, Some(no_calls()));
        // The fuel, the first parameter, is read-only.
        g.scope = (0..arity)
            .map(|p| if p == 0 { Local::Fuel } else { Local::Writable })
            .collect();
        let fuel = || Expr::Get(arity - 1);
        let mut args = vec![Expr::sub(fuel(), Expr::Litr(1))];
        for _ in 1..arities[(i + 1) % ring] {
            args.push(g.expr(small.depth));
        }
        let call = Expr::call((i + 1) % ring, args);
        let other = g.expr(small.depth);
        let burning = match g.rng.random_range(0..3) {
            0 => Expr::add(call, other),
            1 => Expr::then(other, call),
            _ => Expr::sub(other, call),
        };
        let cold = g.expr(small.depth);
        functions.push(Function {
            name: format!("f{i}"),
            params: (0..arity).map(|p| format!("p{p}")).collect(),
            body: Expr::if_(Expr::lt(Expr::Litr(0), fuel()), burning, cold),
        });
    }
    // Fuel `n` makes `n + 1` calls active at once.
    let limit = MAX_CALLS as i64;
    let fuel = match rng.random_range(0..6) {
        0 => rng.random_range(0..limit - 2),
        1 => limit - 2,
        2 => limit - 1,
        3 => limit,
        4 => limit + 1,
        _ => rng.random_range(limit..4 * limit),
    };
    let mut g = Gen::new(rng, shape, Some(no_calls()));
    let mut args = g.args();
    let fuel = if g.rng.random_bool(0.5) {
        args.push(fuel);
        Expr::Arg(args.len() - 1)
    } else {
        Expr::Litr(fuel)
    };
    let mut call_args = vec![fuel];
    for _ in 1..arities[0] {
        call_args.push(g.expr(3));
    }
    let call = Expr::call(0, call_args);
    let main = match g.rng.random_range(0..3) {
        0 => call,
        1 => Expr::add(g.expr(3), call),
        _ => Expr::let_(call, g.expr(3)),
    };
    (Source { functions, main }, args)
}

fn no_calls() -> Calls {
    Calls {
        functions: Vec::new(),
        place: Place::Leaf,
        fuelled_left: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::program::{Level, Program};
    use crate::reference::{BudgetError, eval_budgeted};
    use rand::SeedableRng;

    #[test]
    fn programs_are_valid_level_two_and_end_or_fail_at_the_limit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let (mut values, mut too_deep, mut at_the_limit) = (0, 0, 0);
        for _ in 0..400 {
            let (source, args) = program(&mut rng, &Shape::default());
            let deep_at = |n: i64| {
                matches!(&source.main, Expr::Call(0, a) if a.first() == Some(&Expr::Litr(n)))
                    || args.last() == Some(&n)
            };
            let p = Program::validate(source.clone()).expect("valid");
            assert_eq!(p.level(), Level::Two);
            assert!(args.len() >= p.arg_count());
            match eval_budgeted(&p, &args, 20_000_000) {
                Ok(_) => values += 1,
                Err(BudgetError::CallDepthExceeded) => too_deep += 1,
                Err(e) => panic!("{e}: {source:?}"),
            }
            at_the_limit += usize::from(deep_at(MAX_CALLS as i64 - 1));
        }
        // Most programs give a value; the deep ones past the limit fail
        // on purpose, and some sit exactly at it.
        assert!(values > 250, "{values}");
        assert!(too_deep > 20, "{too_deep}");
        assert!(at_the_limit > 3, "{at_the_limit}");
    }

    #[test]
    fn bodies_recurse_and_call_each_other() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut recursive, mut mutual) = (0, 0);
        for _ in 0..200 {
            let (source, _) = program(&mut rng, &Shape::default());
            for (i, f) in source.functions.iter().enumerate() {
                let mut callees = Vec::new();
                let mut todo = vec![&f.body];
                while let Some(e) = todo.pop() {
                    if let Expr::Call(g, _) = e {
                        callees.push(*g);
                    }
                    todo.extend(e.children());
                }
                recursive += usize::from(callees.contains(&i));
                mutual += usize::from(callees.iter().any(|&g| g != i));
            }
        }
        assert!(recursive > 50 && mutual > 50, "{recursive} {mutual}");
    }

    #[test]
    fn loops_test_with_less_than_every_way() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        // `k < n` (literal, local), `i < trip` (local, literal or argument),
        // `i < lim` (local, local).
        let (mut literal_left, mut literal_right, mut both_locals) = (0, 0, 0);
        for _ in 0..300 {
            let (source, _) = program(&mut rng, &Shape::default());
            let mut todo: Vec<&Expr> = source.functions.iter().map(|f| &f.body).collect();
            todo.push(&source.main);
            while let Some(e) = todo.pop() {
                if let Expr::While(c, _) = e
                    && let Expr::Lt(a, b) = &**c
                {
                    match (&**a, &**b) {
                        (Expr::Litr(_), Expr::Get(_)) => literal_left += 1,
                        (Expr::Get(_), Expr::Get(_)) => both_locals += 1,
                        (Expr::Get(_), _) => literal_right += 1,
                        other => panic!("{other:?}"),
                    }
                }
                todo.extend(e.children());
            }
        }
        assert!(
            literal_left > 10 && literal_right > 10 && both_locals > 10,
            "{literal_left} {literal_right} {both_locals}"
        );
    }
}
