//! `closures` — the whole program compiled into one tree of nested
//! closures (indirect threading).
//!
//! **Compile** turns every AST node into one closure that captures its
//! children and its operands (the literal, the argument index, the resolved
//! local slot). The node kind is decided once, at compile time; at run time
//! a node is just an indirect call. A child is held as two words, its code
//! pointer and its closure's address, and a bump arena owns every closure,
//! side by side: one allocation per block instead of one per node.
//! **Values** are the closures' Rust return values, so intermediates live in
//! registers and on the native stack. **Locals** live in a buffer reached
//! through [`Env`]: the number of locals in scope is fixed at every node, so
//! `Get(d)` resolves at compile time to the absolute slot `scope - 1 - d`, a
//! `Let` stores into slot `scope`, and leaving a scope costs nothing. The
//! buffer holds exactly [`Program::max_locals`] slots.
//! **Control** is Rust's: `While` is a native `loop` inside its closure, so
//! native stack depth is the tree's depth (≤ `MAX_DEPTH`), never the
//! iteration count.
//!
//! **What a node costs**: a leaf is two or three instructions and a return;
//! a node with children pays a call per child, each two loads (code and data,
//! both in its own closure; a `dyn Fn` would load the code from a vtable, one
//! more dependent load) plus saving the one `Env` pointer and its own
//! address in callee-saved registers across the call. The single `&mut Env`
//! argument is deliberate: two pointer arguments would save a load in each
//! leaf but cost every inner node another saved register. The one
//! operand-location variant: **`add n`**, an `Add` whose right operand is a
//! literal, adds the captured constant to its left child's value and spends
//! no call on the literal (for any literal, not a chosen one). No arm keys
//! on a value or an index, and no closure does the work of two nodes.
//!
//! Trade-off: no instruction decoding and no value stack, but one indirect
//! call (and return) per node.
//!
//! Unsafe code rests on trusting this module's own compiler (slots from the
//! validated scopes, argument indices from validation); there is no
//! verifier.

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

/// A compiled node: its code and the closure it runs, two words stored in
/// the parent closure, so calling a child needs no vtable (a `dyn Fn` call
/// loads its code pointer from the vtable, one more dependent load per
/// node).
#[derive(Clone, Copy)]
struct Node {
    /// # Safety
    ///
    /// `data` is the closure this code was made for ([`Arena::node`]),
    /// still alive; `env` satisfies the [`Env`] invariant.
    code: unsafe fn(data: *const (), env: &mut Env) -> i64,
    data: *const (),
}

impl Node {
    #[inline(always)]
    fn run(self, env: &mut Env) -> i64 {
        // SAFETY: a `Node` is only made by `Arena::node`, which pairs `code`
        // with the closure `data` points at; nodes are held only by closures
        // in the same arena or by the `Code` owning it, which frees them all
        // at once when dropped, and they run only while `execute` borrows
        // that `Code`, with the only `Env` there is.
        unsafe { (self.code)(self.data, env) }
    }
}

/// Owns every closure of a compiled program, side by side in a few large
/// blocks: one allocation per block instead of one per node, and no
/// recursive drop.
struct Arena(bumpalo::Bump);

impl Arena {
    fn node<F: Fn(&mut Env) -> i64 + 'static>(&mut self, f: F) -> Node {
        /// # Safety
        ///
        /// `data` points at a live `F`.
        unsafe fn enter<F: Fn(&mut Env) -> i64>(data: *const (), env: &mut Env) -> i64 {
            // SAFETY: `node` pairs this code only with a pointer to an `F`,
            // alive as long as the arena (the `Node::code` contract).
            unsafe { (*data.cast::<F>())(env) }
        }
        // The bump allocator never runs destructors; closures capture only
        // `Node`s and plain values, which have none.
        const { assert!(!std::mem::needs_drop::<F>()) };
        let f: &F = self.0.alloc(f);
        Node {
            code: enter::<F>,
            data: (f as *const F).cast(),
        }
    }
}

/// The compiled program: the root closure and, for `show`, the tree's shape.
pub struct Code {
    root: Node,
    locals: usize,
    tree: Vec<Line>,
    /// Owns `root` and every closure it reaches.
    _arena: Arena,
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
    AddLit(i64),
    Let(usize),
    Set(usize),
    While,
    Then,
}

fn build(e: &Expr, scope: usize, depth: u16, tree: &mut Vec<Line>, arena: &mut Arena) -> Node {
    let mut line = |what| tree.push(Line { depth, what });
    match *e {
        Expr::Litr(n) => {
            line(Shape::Litr(n));
            arena.node(move |_| n)
        }
        Expr::Arg(i) => {
            line(Shape::Arg(i));
            // SAFETY: `i < Program::arg_count` by validation and `env.args`
            // holds that many values (the `Env` invariant).
            arena.node(move |env| unsafe { *env.args.add(i) })
        }
        Expr::Get(d) => {
            let slot = scope - 1 - d;
            line(Shape::Get(slot));
            // SAFETY: validation proved `d < scope` and `scope ≤ max_locals`,
            // so `slot < max_locals`, the size of `env.locals` (invariant).
            arena.node(move |env| unsafe { *env.locals.add(slot) })
        }
        Expr::Add(ref a, ref b) => {
            if let Expr::Litr(n) = **b {
                line(Shape::AddLit(n));
                let a = build(a, scope, depth + 1, tree, arena);
                return arena.node(move |env| a.run(env).wrapping_add(n));
            }
            line(Shape::Add);
            let a = build(a, scope, depth + 1, tree, arena);
            let b = build(b, scope, depth + 1, tree, arena);
            arena.node(move |env| {
                let x = a.run(env);
                x.wrapping_add(b.run(env))
            })
        }
        Expr::Let(ref init, ref body) => {
            line(Shape::Let(scope));
            let init = build(init, scope, depth + 1, tree, arena);
            let body = build(body, scope + 1, depth + 1, tree, arena);
            arena.node(move |env| {
                let v = init.run(env);
                // SAFETY: the body has `scope + 1` locals in scope, which
                // validation bounds by `max_locals`: `scope < max_locals`.
                unsafe { *env.locals.add(scope) = v };
                body.run(env)
            })
        }
        Expr::Set(d, ref value) => {
            let slot = scope - 1 - d;
            line(Shape::Set(slot));
            let value = build(value, scope, depth + 1, tree, arena);
            arena.node(move |env| {
                let v = value.run(env);
                // SAFETY: as for `Get`: `slot < scope ≤ max_locals`.
                unsafe { *env.locals.add(slot) = v };
                0
            })
        }
        Expr::While(ref cond, ref body) => {
            line(Shape::While);
            let cond = build(cond, scope, depth + 1, tree, arena);
            let body = build(body, scope, depth + 1, tree, arena);
            arena.node(move |env| {
                while cond.run(env) > 0 {
                    body.run(env);
                }
                0
            })
        }
        Expr::Then(ref a, ref b) => {
            line(Shape::Then);
            let a = build(a, scope, depth + 1, tree, arena);
            let b = build(b, scope, depth + 1, tree, arena);
            arena.node(move |env| {
                a.run(env);
                b.run(env)
            })
        }
    }
}

impl Technique for Closures {
    const NAME: &'static str = "closures";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "nested closures, one per node (indirect threading)";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let mut tree = Vec::with_capacity(program.node_count());
        // Closures take 8 to 40 bytes; sizing the first block from the node
        // count saves regrowth.
        let mut arena = Arena(bumpalo::Bump::with_capacity(24 * program.node_count()));
        let root = build(program.expr(), 0, 0, &mut tree, &mut arena);
        Ok(Code {
            root,
            locals: program.max_locals(),
            tree,
            _arena: arena,
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
        code.root.run(&mut env)
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
                Shape::AddLit(n) => writeln!(out, "{:pad$}add {n}", ""),
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

    crate::engines::conformance::conformance_tests!(Closures, extra: [LITERAL_OPERANDS]);

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
                "    add 1",
                "      get L0"
            ]
        );
    }
}
