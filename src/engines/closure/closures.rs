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

use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt::Write;

/// Where a run's arguments and locals are: what every closure reads.
/// Shared by the engines whose code is a tree or a list of closures (and
/// `tape_closures`' handlers).
///
/// Invariant (upheld by each of those engines' `run`, the only places an
/// `Env` is made): `args` points at [`Program::arg_count`] readable values
/// and `locals` at [`Program::max_locals`] writable slots, of the program the
/// code was compiled from.
pub struct Env {
    pub(crate) args: *const i64,
    pub(crate) locals: *mut i64,
}

/// Owns every closure of a compiled program, side by side in a few large
/// blocks of a bump allocator: one allocation per block instead of one per
/// closure, and no recursive drop. Shared by the closure engines.
pub(crate) struct Arena(bumpalo::Bump);

impl Arena {
    /// An arena whose first block holds `bytes`, so that a program's closures
    /// (sized from its node count) rarely need a second.
    pub(crate) fn with_capacity(bytes: usize) -> Arena {
        Arena(bumpalo::Bump::with_capacity(bytes))
    }

    /// An arena for one closure per node of `program`: closures take 8 to
    /// 40 bytes, and sizing the first block from the node count saves
    /// regrowth.
    pub(crate) fn per_node(program: &Program) -> Arena {
        Arena::with_capacity(24 * program.node_count())
    }

    /// Moves `closure` into the arena, for as long as the arena lives.
    pub(crate) fn alloc<F>(&self, closure: F) -> &F {
        // The bump allocator never runs destructors; closures capture only
        // nodes and plain values, which have none.
        const { assert!(!std::mem::needs_drop::<F>()) };
        self.0.alloc(closure)
    }
}

/// Defines a closure type reached through two words — its code pointer and
/// its closure's address — instead of a `Box<dyn Fn>`, whose call loads the
/// code pointer from a vtable: one more dependent load, and often a register
/// shuffle, per call. The closure engines hold their children and
/// continuations this way, as the original comparison did.
///
/// `thin_closure! { struct Node = Fn(env: &mut Env) -> i64; }` defines
/// `Node`, `Node::new_in(&arena, closure)` and `node.call(env)` (leave out
/// `-> …` for closures that return nothing).
///
/// Every engine using it keeps the [`Arena`] its nodes live in inside the
/// compiled code that holds them, and nodes never leave that code: so a node
/// is only called while its closure is alive (the soundness of `call`).
macro_rules! thin_closure {
    (
        $(#[$attr:meta])*
        $vis:vis struct $node:ident = Fn($($arg:ident: $ty:ty),* $(,)?);
    ) => {
        thin_closure! { $(#[$attr])* $vis struct $node = Fn($($arg: $ty),*) -> (); }
    };
    (
        $(#[$attr:meta])*
        $vis:vis struct $node:ident = Fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy)]
        $vis struct $node {
            /// # Safety
            ///
            /// `data` is the closure this code was made for, still alive,
            /// and the arguments are what that closure's engine promises.
            code: unsafe fn(*const (), $($ty),*) -> $ret,
            data: *const (),
        }

        impl $node {
            /// Places `f` in `arena`.
            $vis fn new_in<F: Fn($($ty),*) -> $ret + 'static>(
                arena: &$crate::engines::closure::closures::Arena,
                f: F,
            ) -> $node {
                /// # Safety
                ///
                /// `data` points at a live `F`.
                unsafe fn enter<F: Fn($($ty),*) -> $ret>(data: *const (), $($arg: $ty),*) -> $ret {
                    // SAFETY: `new_in` pairs this code only with a pointer to
                    // an `F`, alive as long as its arena (the `code` contract).
                    unsafe { (*data.cast::<F>())($($arg),*) }
                }
                let f: &F = arena.alloc(f);
                $node {
                    code: enter::<F>,
                    data: (f as *const F).cast(),
                }
            }

            /// Runs the closure.
            #[inline(always)]
            $vis fn call(self, $($arg: $ty),*) -> $ret {
                // SAFETY: a node is only made by `new_in`, which pairs `code`
                // with the closure `data` points at; the engine keeps the
                // arena alive in the compiled code holding the node and
                // calls it only while its `execute` borrows that code, with
                // the arguments its invariant describes.
                unsafe { (self.code)(self.data, $($arg),*) }
            }
        }
    };
}
pub(crate) use thin_closure;

thin_closure! {
    /// A compiled node.
    struct Node = Fn(env: &mut Env) -> i64;
}

/// The compiled program: the root closure and, for `show`, the tree's shape.
pub struct Code {
    root: Node,
    locals: usize,
    tree: Vec<Line<Shape>>,
    /// Owns `root` and every closure it reaches.
    _arena: Arena,
}

/// One closure as `show` lists it: its nesting depth and what it does.
/// Shared by the engines whose code is a tree of closures.
pub(crate) struct Line<S> {
    pub(crate) depth: u16,
    pub(crate) what: S,
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

fn build(e: &Expr, scope: usize, depth: u16, tree: &mut Vec<Line<Shape>>, arena: &Arena) -> Node {
    let mut line = |what| tree.push(Line { depth, what });
    match *e {
        Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
            unreachable!("Level 2 is refused before compile")
        }
        Expr::Litr(n) => {
            line(Shape::Litr(n));
            Node::new_in(arena, move |_| n)
        }
        Expr::Arg(i) => {
            line(Shape::Arg(i));
            // SAFETY: `i < Program::arg_count` by validation and `env.args`
            // holds that many values (the `Env` invariant).
            Node::new_in(arena, move |env| unsafe { *env.args.add(i) })
        }
        Expr::Get(d) => {
            let slot = scope - 1 - d;
            line(Shape::Get(slot));
            // SAFETY: validation proved `d < scope` and `scope ≤ max_locals`,
            // so `slot < max_locals`, the size of `env.locals` (invariant).
            Node::new_in(arena, move |env| unsafe { *env.locals.add(slot) })
        }
        Expr::Add(ref a, ref b) => {
            if let Expr::Litr(n) = **b {
                line(Shape::AddLit(n));
                let a = build(a, scope, depth + 1, tree, arena);
                return Node::new_in(arena, move |env| a.call(env).wrapping_add(n));
            }
            line(Shape::Add);
            let a = build(a, scope, depth + 1, tree, arena);
            let b = build(b, scope, depth + 1, tree, arena);
            Node::new_in(arena, move |env| {
                let x = a.call(env);
                x.wrapping_add(b.call(env))
            })
        }
        Expr::Let(ref init, ref body) => {
            line(Shape::Let(scope));
            let init = build(init, scope, depth + 1, tree, arena);
            let body = build(body, scope + 1, depth + 1, tree, arena);
            Node::new_in(arena, move |env| {
                let v = init.call(env);
                // SAFETY: the body has `scope + 1` locals in scope, which
                // validation bounds by `max_locals`: `scope < max_locals`.
                unsafe { *env.locals.add(scope) = v };
                body.call(env)
            })
        }
        Expr::Set(d, ref value) => {
            let slot = scope - 1 - d;
            line(Shape::Set(slot));
            let value = build(value, scope, depth + 1, tree, arena);
            Node::new_in(arena, move |env| {
                let v = value.call(env);
                // SAFETY: as for `Get`: `slot < scope ≤ max_locals`.
                unsafe { *env.locals.add(slot) = v };
                0
            })
        }
        Expr::While(ref cond, ref body) => {
            line(Shape::While);
            let cond = build(cond, scope, depth + 1, tree, arena);
            let body = build(body, scope, depth + 1, tree, arena);
            Node::new_in(arena, move |env| {
                while cond.call(env) > 0 {
                    body.call(env);
                }
                0
            })
        }
        Expr::Then(ref a, ref b) => {
            line(Shape::Then);
            let a = build(a, scope, depth + 1, tree, arena);
            let b = build(b, scope, depth + 1, tree, arena);
            Node::new_in(arena, move |env| {
                a.call(env);
                b.call(env)
            })
        }
    }
}

technique! {
    Closures = "closures", Original, Code;
    "nested closures, one per node (indirect threading)";
    compile: compile, execute: run, show: show;
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let mut tree = Vec::with_capacity(program.node_count());
    let arena = Arena::per_node(program);
    let root = build(program.expr(), 0, 0, &mut tree, &arena);
    Ok(Code {
        root,
        locals: program.max_locals(),
        tree,
        _arena: arena,
    })
}

/// Runs the tree from its root closure, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> i64 {
    let mut locals = vec![0i64; code.locals];
    // The `Env` invariant: `locals` is sized from the program, and the
    // caller guarantees `args` covers its argument count.
    let mut env = Env {
        args: args.as_ptr(),
        locals: locals.as_mut_ptr(),
    };
    code.root.call(&mut env)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::listing;

    crate::engines::conformance::conformance_tests!(Closures, extra: [LITERAL_OPERANDS]);

    #[test]
    fn show_lists_the_closure_tree() {
        assert_eq!(
            listing::<Closures>("let x = arg(0); x = x + 1"),
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
