//! Large programs of a given size whose depth grows only with the logarithm
//! of it: balanced trees, so even 10⁶ nodes stay far below `MAX_DEPTH` and
//! every engine's compile recursion stays shallow.
//!
//! - [`then_tree`]: any sequence of items joined by `Then`;
//! - [`sized`]: exactly `n` nodes of straight-line code (size limits);
//! - [`scaling`]: the programs `vm-perf scale` compiles, a cycle of four
//!   statements touching locals at several distances;
//! - [`mixed`]: every node kind, seeded (the large-program tests).

use crate::front::ast::Expr;
use crate::front::program::{MAX_DEPTH, Program};

/// `item(0)`, …, `item(n - 1)` joined by `Then` into a balanced tree (made
/// in that order, each left half one item shorter when `n` is odd). Depth:
/// ⌈log₂ n⌉ plus the items' own. `n` must be at least 1.
pub fn then_tree(n: usize, item: &mut impl FnMut(usize) -> Expr) -> Expr {
    fn range(lo: usize, hi: usize, item: &mut impl FnMut(usize) -> Expr) -> Expr {
        if hi - lo == 1 {
            return item(lo);
        }
        let mid = lo + (hi - lo) / 2;
        let left = range(lo, mid, item);
        Expr::then(left, range(mid, hi, item))
    }
    assert!(n > 0, "a Then tree needs at least one item");
    range(0, n, item)
}

/// A program of exactly `nodes` nodes (at least 5) and depth `O(log nodes)`:
/// balanced blocks of straight-line additions and stores to one local
/// initialised from `arg(0)`. Runs once through, with no loop.
pub fn sized(nodes: usize) -> Expr {
    // Exactly `nodes` nodes (at least 1).
    fn build(nodes: usize) -> Expr {
        match nodes {
            0 | 1 => Expr::Get(0),
            2 => Expr::set(0, Expr::Get(0)),
            3 => Expr::add(Expr::Get(0), Expr::Litr(3)),
            4 => Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(1))),
            _ => {
                let half = (nodes - 1) / 2;
                let left = build(half);
                Expr::then(left, build(nodes - 1 - half))
            }
        }
    }
    Expr::let_(
        Expr::Arg(0),
        Expr::then(build(nodes.saturating_sub(4)), Expr::Get(0)),
    )
}

/// Statement `i` of a [`scaling`] program.
fn statement(i: usize) -> Expr {
    use Expr::*;
    let lit = (i % 97) as i64;
    // Locals in scope: 0 = zero, 1 = b, 2 = a (argument copy).
    match i % 4 {
        0 => Expr::set(2, Expr::add(Get(2), Litr(lit))),
        1 => Expr::set(1, Expr::add(Get(1), Get(2))),
        2 => Expr::let_(
            Expr::add(Get(1), Litr(lit)),
            Expr::set(2, Expr::add(Get(0), Get(3))),
        ),
        _ => Expr::while_(Get(0), Expr::set(0, Litr(0))),
    }
}

/// A valid program of roughly `nodes` AST nodes (at least 13), one argument:
/// a [`then_tree`] over a cycle of four statements (an update of an
/// argument local, a local-to-local add, a `Let` with a store to an outer
/// local, and a zero-trip `While`), what `vm-perf scale` compiles.
pub fn scaling(nodes: usize) -> Program {
    use Expr::*;
    // About six nodes per statement with its share of `Then`s.
    let statements = (nodes.saturating_sub(7) / 6).max(1);
    let body = Expr::then(
        then_tree(statements, &mut statement),
        Expr::add(Get(2), Get(1)),
    );
    let expr = Expr::let_(Arg(0), Expr::let_(Litr(1), Expr::let_(Litr(0), body)));
    let program = Program::validate(expr).expect("generated programs are valid");
    debug_assert!(program.depth() <= MAX_DEPTH);
    program
}

/// A balanced tree of about `n` nodes mixing every node kind, valid with
/// `scope` locals in scope and reading `arg(0)` and `arg(1)`; `seed` is a
/// linear congruential generator's state, advanced once per node. Loops
/// never run their body (their condition ends in `-1`), so running the
/// program costs one pass.
pub fn mixed(n: usize, scope: usize, seed: &mut u64) -> Expr {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let r = (*seed >> 33) as usize;
    if n <= 2 {
        let leaf = match r % 3 {
            0 if scope > 0 => Expr::Get(r / 3 % scope),
            1 => Expr::Arg(r / 3 % 2),
            _ => Expr::Litr((r / 3 % 100) as i64 - 50),
        };
        return match n {
            2 if scope > 0 => Expr::set(r / 7 % scope, leaf),
            _ => leaf,
        };
    }
    let left = (n - 1) / 2;
    let right = n - 1 - left;
    match r % 8 {
        0..=2 => Expr::add(mixed(left, scope, seed), mixed(right, scope, seed)),
        3..=4 => Expr::then(mixed(left, scope, seed), mixed(right, scope, seed)),
        5..=6 => Expr::let_(mixed(left, scope, seed), mixed(right, scope + 1, seed)),
        // `while { c; -1 } { b }`: compiled like any loop, but the body
        // never runs, so running the program stays cheap.
        _ => Expr::while_(
            Expr::then(
                mixed(left.saturating_sub(1).max(1), scope, seed),
                Expr::Litr(-1),
            ),
            mixed(right, scope, seed),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn then_tree_keeps_the_order_and_is_shallow() {
        let e = then_tree(1000, &mut |i| Expr::Litr(i as i64));
        assert_eq!(e.node_count(), 1999);
        assert!(e.depth() <= 11, "{}", e.depth());
        let mut seen = Vec::new();
        let _ = then_tree(5, &mut |i| {
            seen.push(i);
            Expr::Litr(0)
        });
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn sized_is_shallow_and_exact() {
        let e = sized(100_000);
        assert_eq!(e.node_count(), 100_000);
        assert!(e.depth() < 60);
        assert!(Program::validate(e).is_ok());
    }

    #[test]
    fn scaling_programs_have_the_asked_size_and_bounded_depth() {
        for n in [10, 100, 1000, 100_000] {
            let p = scaling(n);
            assert!(
                p.node_count() >= n / 2 && p.node_count() <= n * 2 + 20,
                "{n}: {}",
                p.node_count()
            );
            assert!(p.depth() < 40, "{n}: depth {}", p.depth());
            assert_eq!(p.arg_count(), 1);
        }
    }

    #[test]
    fn mixed_programs_are_valid_and_shallow() {
        let e = mixed(10_000, 0, &mut 42);
        assert!(e.node_count() >= 5_000, "{}", e.node_count());
        let p = Program::validate(e).unwrap();
        assert!(p.depth() <= 40, "{}", p.depth());
    }
}
