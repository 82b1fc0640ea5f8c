//! `closures` — the whole program compiled into one tree of nested boxed
//! closures (indirect threading).
//!
//! **Compile** turns every AST node into one `Box<dyn Fn(&mut Env) -> i64>`
//! that owns the closures of its children and captures its operands (the
//! literal, the argument index, the resolved local slot). The node kind is
//! decided once, at compile time; at run time a node is just an indirect call.
//! **Values** are the closures' Rust return values, so intermediates live in
//! registers and on the native stack. **Locals** live on a locals stack in
//! [`Env`]: the number of locals in scope is fixed at every node, so `Get(d)`
//! resolves at compile time to the absolute slot `scope - 1 - d`, a `Let`
//! stores into slot `scope`, and leaving a scope costs nothing. The buffer
//! holds exactly [`Program::max_locals`] slots.
//! **Control** is Rust's: `While` is a native `loop` inside its closure, so
//! native stack depth is the tree's depth (≤ `MAX_DEPTH`), never the
//! iteration count.
//!
//! Trade-off: no instruction decoding and no value stack, but one indirect
//! call (and return) per node, and the tree is scattered over the heap.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt::Write;

pub struct Closures;

/// What every closure runs against.
///
/// Invariant (upheld by [`Closures::execute`], the only place an `Env` is
/// made): `locals` points at [`Program::max_locals`] writable slots and
/// `args` at [`Program::arg_count`] readable values, of the program the
/// closures were compiled from.
pub struct Env {
    args: *const i64,
    locals: *mut i64,
}

type Node = Box<dyn Fn(&mut Env) -> i64>;

/// The compiled program: the root closure and, for `show`, the tree's shape.
pub struct Code {
    root: Node,
    locals: usize,
    tree: Vec<Line>,
}

/// One closure as `show` lists it: nesting depth and what it does.
struct Line {
    depth: u16,
    what: Shape,
}

enum Shape {
    Litr(i64),
    Arg(usize),
    Get(usize),
    Add,
    Let(usize),
    Set(usize),
    While,
    Then,
}

fn build(e: &Expr, scope: usize, depth: u16, tree: &mut Vec<Line>) -> Node {
    let mut line = |what| tree.push(Line { depth, what });
    match *e {
        Expr::Litr(n) => {
            line(Shape::Litr(n));
            Box::new(move |_| n)
        }
        Expr::Arg(i) => {
            line(Shape::Arg(i));
            // SAFETY: `i < Program::arg_count` by validation and `env.args`
            // holds that many values (the `Env` invariant).
            Box::new(move |env| unsafe { *env.args.add(i) })
        }
        Expr::Get(d) => {
            let slot = scope - 1 - d;
            line(Shape::Get(slot));
            // SAFETY: validation proved `d < scope` and `scope ≤ max_locals`,
            // so `slot < max_locals`, the size of `env.locals` (invariant).
            Box::new(move |env| unsafe { *env.locals.add(slot) })
        }
        Expr::Add(ref a, ref b) => {
            line(Shape::Add);
            let a = build(a, scope, depth + 1, tree);
            let b = build(b, scope, depth + 1, tree);
            Box::new(move |env| {
                let x = a(env);
                x.wrapping_add(b(env))
            })
        }
        Expr::Let(ref init, ref body) => {
            line(Shape::Let(scope));
            let init = build(init, scope, depth + 1, tree);
            let body = build(body, scope + 1, depth + 1, tree);
            Box::new(move |env| {
                let v = init(env);
                // SAFETY: the body has `scope + 1` locals in scope, which
                // validation bounds by `max_locals`: `scope < max_locals`.
                unsafe { *env.locals.add(scope) = v };
                body(env)
            })
        }
        Expr::Set(d, ref value) => {
            let slot = scope - 1 - d;
            line(Shape::Set(slot));
            let value = build(value, scope, depth + 1, tree);
            Box::new(move |env| {
                let v = value(env);
                // SAFETY: as for `Get`: `slot < scope ≤ max_locals`.
                unsafe { *env.locals.add(slot) = v };
                0
            })
        }
        Expr::While(ref cond, ref body) => {
            line(Shape::While);
            let cond = build(cond, scope, depth + 1, tree);
            let body = build(body, scope, depth + 1, tree);
            Box::new(move |env| {
                while cond(env) > 0 {
                    body(env);
                }
                0
            })
        }
        Expr::Then(ref a, ref b) => {
            line(Shape::Then);
            let a = build(a, scope, depth + 1, tree);
            let b = build(b, scope, depth + 1, tree);
            Box::new(move |env| {
                a(env);
                b(env)
            })
        }
    }
}

impl Technique for Closures {
    const NAME: &'static str = "closures";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "nested boxed closures, one per node (indirect threading)";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let mut tree = Vec::with_capacity(program.node_count());
        let root = build(program.expr(), 0, 0, &mut tree);
        Ok(Code {
            root,
            locals: program.max_locals(),
            tree,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let mut locals = vec![0i64; code.locals];
        // The `Env` invariant: `locals` is sized from the program, and the
        // caller guarantees `args` covers its argument count.
        let mut env = Env {
            args: args.as_ptr(),
            locals: locals.as_mut_ptr(),
        };
        (code.root)(&mut env)
    }

    fn show(code: &Code) -> String {
        let mut out = format!(
            "; {} closures, {} local slots; children indented under their parent\n",
            code.tree.len(),
            code.locals
        );
        for Line { depth, what } in &code.tree {
            let pad = 2 * *depth as usize;
            _ = match what {
                Shape::Litr(n) => writeln!(out, "{:pad$}litr {n}", ""),
                Shape::Arg(i) => writeln!(out, "{:pad$}arg {i}", ""),
                Shape::Get(s) => writeln!(out, "{:pad$}get L{s}", ""),
                Shape::Add => writeln!(out, "{:pad$}add", ""),
                Shape::Let(s) => writeln!(out, "{:pad$}let L{s} = init; body", ""),
                Shape::Set(s) => writeln!(out, "{:pad$}set L{s}", ""),
                Shape::While => writeln!(out, "{:pad$}while cond {{ body }}", ""),
                Shape::Then => writeln!(out, "{:pad$}then", ""),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(Closures);

    #[test]
    fn show_lists_the_closure_tree() {
        let p = crate::front::compile_source("t", "let x = arg(0); x = x + 1").unwrap();
        let shown = Closures::show(&Closures::compile(&p).unwrap());
        let body: Vec<_> = shown.lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "let L0 = init; body",
                "  arg 0",
                "  set L0",
                "    add",
                "      get L0",
                "      litr 1"
            ]
        );
    }
}
