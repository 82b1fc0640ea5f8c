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
//! through [`Frame`]: the number of locals in scope is fixed at every node, so
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
//! more dependent load) plus saving the one `Frame` pointer and its own
//! address in callee-saved registers across the call. The single `&mut Frame`
//! argument is deliberate: two pointer arguments would save a load in each
//! leaf but cost every inner node another saved register. The one
//! operand-location variant: **`add n`**, an `Add` whose right operand is a
//! literal, adds the captured constant to its left child's value and spends
//! no call on the literal (for any literal, not a chosen one); **`sub n`**
//! and **`lt n`** do the same for `-` and `<`. No arm keys on a value or an
//! index, and no closure does the work of two nodes.
//!
//! **Calls, returns, branches.** Each function's body compiles like main,
//! into its own tree; a table of compiled bodies, filled in once every body
//! is compiled, lets a call come before its callee (mutual recursion): a
//! call closure holds its table entry, by number. A **frame** is a run of
//! slots in the one locals buffer: the body's locals, then the arguments
//! its calls write above them. A call closure evaluates each argument in
//! the caller's frame straight into the slot where the callee's frame will
//! start (a call inside an argument puts its own frame above the arguments
//! already written), checks the depth counter, makes the callee a new
//! [`Frame`] on its own native frame (`locals` moved up to the first
//! argument, one more call active) and calls the body's root closure: the
//! arguments *are* the callee's first locals, nothing is copied. A
//! **return** is the closure's return, with nothing to restore: the
//! caller's `Frame` never changed. So a guest call costs an indirect call
//! per argument, a compare, a three-word `Frame` and two more indirect
//! calls (the call closure and the body's root), and the native stack
//! grows with the calls active: the engine declares what `MAX_CALLS` of
//! them need. The buffer holds main's frame and room for `MAX_CALLS` frames
//! of the largest function's (a Level-1 program's is just its locals). The
//! call that would exceed the limit unwinds the native stack back to `run`
//! (the unwinding panic strategy, which every profile uses), so no closure
//! pays for the check but the calls. A **branch** is a native `if` inside
//! the `If` closure choosing which child to call; `<` is a closure like `+`
//! that returns 0 or 1.
//!
//! Trade-off: no instruction decoding and no value stack, but one indirect
//! call (and return) per node.
//!
//! Unsafe code rests on trusting this module's own compiler (slots from the
//! validated scopes, argument indices from validation); there is no
//! verifier.

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::Cell;
use std::fmt::Write;

/// What every closure of `closures` and `stack_closures` reads: the run's
/// arguments, the active call's locals and how many calls are active. A
/// call makes a new `Frame` for its callee (the same `args`, `locals`
/// moved up to the callee's slots, one more call) on its own native
/// frame, so returning restores nothing.
///
/// Invariant (upheld by the engines' `run` and call closures, the only
/// places a `Frame` is made): `args` points at [`Program::arg_count`]
/// readable values and `locals` at the slots the code running in this
/// frame was compiled to use (its body's frame size), writable, with room
/// above them for `MAX_CALLS - calls` more frames.
pub(crate) struct Frame {
    pub(crate) args: *const i64,
    pub(crate) locals: *mut i64,
    pub(crate) calls: usize,
}

/// Stops a run at the call that would make more than [`MAX_CALLS`]
/// active: unwinds the native stack (every frame of the run is the
/// engine's own recursion) back to [`catch_call_depth`] in the engine's
/// `run`. Unwinding costs the calls that do not fail nothing, and no
/// closure of a Level-1 program can reach it. `resume_unwind` does not run
/// the panic hook: nothing is printed.
#[cold]
#[inline(never)]
pub(crate) fn exceed_call_depth() -> ! {
    std::panic::resume_unwind(Box::new(CallDepthExceeded))
}

/// Runs `run` (a whole execution), turning [`exceed_call_depth`] into the
/// error; any other panic goes on unwinding.
pub(crate) fn catch_call_depth<R>(run: impl FnOnce() -> R) -> Result<R, CallDepthExceeded> {
    // Unwind safety: a run that stopped leaves nothing behind that is used
    // again (its locals are dropped with it).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).map_err(|payload| {
        if payload.is::<CallDepthExceeded>() {
            CallDepthExceeded
        } else {
            std::panic::resume_unwind(payload)
        }
    })
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

    /// Copies `items` into the arena (a node's list of children).
    pub(crate) fn alloc_slice<T: Copy>(&self, items: &[T]) -> &[T] {
        self.0.alloc_slice_copy(items)
    }

    /// `n` values made by `make`, side by side in the arena (a table of
    /// compiled bodies, filled in after every body is compiled).
    pub(crate) fn alloc_table<T>(&self, n: usize, make: impl FnMut(usize) -> T) -> &[T] {
        const { assert!(!std::mem::needs_drop::<T>()) };
        self.0.alloc_slice_fill_with(n, make)
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
    struct Node = Fn(frame: &mut Frame) -> i64;
}

/// The compiled program: the root closure, every function's body and, for
/// `show`, the trees' shapes.
pub struct Code {
    root: Node,
    /// Slots a run's buffer holds: main's frame, then room for `MAX_CALLS`
    /// frames of the largest function's (just main's locals at Level 1).
    locals: usize,
    /// Main's closures, then each function's, one line per closure.
    tree: Vec<Line<Shape>>,
    /// Each function's name and parameters, with its first line in `tree`.
    functions: Vec<(String, String, usize)>,
    /// Owns `root` and every closure it reaches, and the table of bodies.
    _arena: Arena,
}

/// One closure as `show` lists it: its nesting depth and what it does.
/// Shared by the engines whose code is a tree of closures.
pub(crate) struct Line<S> {
    pub(crate) depth: u16,
    pub(crate) what: S,
}

#[derive(strum::EnumDiscriminants)]
#[strum_discriminants(name(ShapeKind), derive(strum::VariantArray, strum::IntoStaticStr))]
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
    Sub,
    SubLit(i64),
    Lt,
    LtLit(i64),
    If,
    /// Calls function `.0`, whose frame starts at slot `.1` of the caller's.
    Call(usize, usize),
}

/// Compiles bodies to closures.
struct Builder<'a> {
    arena: &'a Arena,
    tree: Vec<Line<Shape>>,
    /// Every function's compiled body, by number; filled in once all are
    /// compiled, so a call may precede its callee's compilation.
    bodies: &'a [Cell<Node>],
    /// Slots the body being compiled uses: its locals, and the arguments
    /// its calls write above them (its frame's size).
    frame: usize,
}

impl Builder<'_> {
    /// Compiles `e` with `scope` locals in scope, where slots from `top` up
    /// are free for a call's arguments (`top` ≥ the body's locals).
    fn build(&mut self, e: &Expr, scope: usize, top: usize, depth: u16) -> Node {
        let arena = self.arena;
        let line = |tree: &mut Vec<Line<Shape>>, what| tree.push(Line { depth, what });
        let child = |b: &mut Self, e: &Expr, scope: usize| b.build(e, scope, top, depth + 1);
        match *e {
            Expr::Litr(n) => {
                line(&mut self.tree, Shape::Litr(n));
                Node::new_in(arena, move |_| n)
            }
            Expr::Arg(i) => {
                line(&mut self.tree, Shape::Arg(i));
                // SAFETY: `i < Program::arg_count` by validation and
                // `frame.args` holds that many values (the `Frame` invariant).
                Node::new_in(arena, move |frame| unsafe { *frame.args.add(i) })
            }
            Expr::Get(d) => {
                let slot = scope - 1 - d;
                line(&mut self.tree, Shape::Get(slot));
                // SAFETY: validation proved `d < scope` and `scope` is at
                // most the body's locals, so `slot` is in the frame.
                Node::new_in(arena, move |frame| unsafe { *frame.locals.add(slot) })
            }
            Expr::Add(ref a, ref b) => {
                if let Expr::Litr(n) = **b {
                    line(&mut self.tree, Shape::AddLit(n));
                    let a = child(self, a, scope);
                    return Node::new_in(arena, move |frame| a.call(frame).wrapping_add(n));
                }
                line(&mut self.tree, Shape::Add);
                let a = child(self, a, scope);
                let b = child(self, b, scope);
                Node::new_in(arena, move |frame| {
                    let x = a.call(frame);
                    x.wrapping_add(b.call(frame))
                })
            }
            Expr::Sub(ref a, ref b) => {
                if let Expr::Litr(n) = **b {
                    line(&mut self.tree, Shape::SubLit(n));
                    let a = child(self, a, scope);
                    return Node::new_in(arena, move |frame| a.call(frame).wrapping_sub(n));
                }
                line(&mut self.tree, Shape::Sub);
                let a = child(self, a, scope);
                let b = child(self, b, scope);
                Node::new_in(arena, move |frame| {
                    let x = a.call(frame);
                    x.wrapping_sub(b.call(frame))
                })
            }
            Expr::Lt(ref a, ref b) => {
                if let Expr::Litr(n) = **b {
                    line(&mut self.tree, Shape::LtLit(n));
                    let a = child(self, a, scope);
                    return Node::new_in(arena, move |frame| i64::from(a.call(frame) < n));
                }
                line(&mut self.tree, Shape::Lt);
                let a = child(self, a, scope);
                let b = child(self, b, scope);
                Node::new_in(arena, move |frame| {
                    let x = a.call(frame);
                    i64::from(x < b.call(frame))
                })
            }
            Expr::Let(ref init, ref body) => {
                line(&mut self.tree, Shape::Let(scope));
                let init = child(self, init, scope);
                let body = child(self, body, scope + 1);
                Node::new_in(arena, move |frame| {
                    let v = init.call(frame);
                    // SAFETY: the body has `scope + 1` locals in scope, which
                    // validation bounds by the body's locals, all in the frame.
                    unsafe { *frame.locals.add(scope) = v };
                    body.call(frame)
                })
            }
            Expr::Set(d, ref value) => {
                let slot = scope - 1 - d;
                line(&mut self.tree, Shape::Set(slot));
                let value = child(self, value, scope);
                Node::new_in(arena, move |frame| {
                    let v = value.call(frame);
                    // SAFETY: as for `Get`: `slot < scope`, in the frame.
                    unsafe { *frame.locals.add(slot) = v };
                    0
                })
            }
            Expr::While(ref cond, ref body) => {
                line(&mut self.tree, Shape::While);
                let cond = child(self, cond, scope);
                let body = child(self, body, scope);
                Node::new_in(arena, move |frame| {
                    while cond.call(frame) > 0 {
                        body.call(frame);
                    }
                    0
                })
            }
            Expr::Then(ref a, ref b) => {
                line(&mut self.tree, Shape::Then);
                let a = child(self, a, scope);
                let b = child(self, b, scope);
                Node::new_in(arena, move |frame| {
                    a.call(frame);
                    b.call(frame)
                })
            }
            Expr::If(ref cond, ref yes, ref no) => {
                line(&mut self.tree, Shape::If);
                let cond = child(self, cond, scope);
                let yes = child(self, yes, scope);
                let no = child(self, no, scope);
                Node::new_in(arena, move |frame| {
                    if cond.call(frame) > 0 {
                        yes.call(frame)
                    } else {
                        no.call(frame)
                    }
                })
            }
            Expr::Call(f, ref args) => {
                line(&mut self.tree, Shape::Call(f, top));
                self.frame = self.frame.max(top + args.len());
                // Argument `i` is written to slot `top + i`; a call inside
                // it puts its own arguments and frame above that.
                let args: Vec<Node> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.build(a, scope, top + i, depth + 1))
                    .collect();
                let args = arena.alloc_slice(&args);
                let (args, count) = (args.as_ptr(), args.len());
                let body: *const Cell<Node> = &self.bodies[f];
                Node::new_in(arena, move |frame| {
                    for i in 0..count {
                        // SAFETY: `args` holds `count` nodes in the arena,
                        // which lives as long as this closure.
                        let v = unsafe { *args.add(i) }.call(frame);
                        // SAFETY: `top + count` is within this body's frame.
                        unsafe { *frame.locals.add(top + i) = v };
                    }
                    if frame.calls == MAX_CALLS {
                        exceed_call_depth();
                    }
                    // The callee's frame starts at its first argument: its
                    // parameters are its first locals. It fits: this frame
                    // has room for `MAX_CALLS - calls` more above it.
                    let mut callee = Frame {
                        args: frame.args,
                        // SAFETY: `top` is within this body's frame.
                        locals: unsafe { frame.locals.add(top) },
                        calls: frame.calls + 1,
                    };
                    // SAFETY: the table is in the arena, filled before any run.
                    let body = unsafe { (*body).get() };
                    body.call(&mut callee)
                })
            }
        }
    }
}

technique! {
    Closures = "closures", Original, Code;
    "nested closures, one per node (indirect threading)";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        crate::engine::recursive_native_stack(program, FRAME_BYTES)
    }
    // One line of the tree per closure built, so its shape is the variant.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<ShapeKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        crate::engine::census_of(code.tree.iter().map(|l| ShapeKind::from(&l.what)))
    }
}

/// Native stack per closure nesting level that
/// [`crate::engine::recursion_frames`] counts. The largest closure frame is
/// a call's (144 bytes measured in the test profile, 112 in release); a
/// chain of calls in arguments can make every counted level one, so this
/// bounds the frame of every kind, with a margin.
const FRAME_BYTES: usize = 256;

fn compile(program: &Program) -> Result<Code, CompileError> {
    let arena = Arena::per_node(program);
    let unset = Node::new_in(&arena, |_| unreachable!("every body is set before a run"));
    let bodies = arena.alloc_table(program.functions().len(), |_| Cell::new(unset));
    let mut b = Builder {
        arena: &arena,
        tree: Vec::with_capacity(program.node_count()),
        bodies,
        frame: program.max_locals(),
    };
    let root = b.build(program.expr(), 0, program.max_locals(), 0);
    let mut locals = b.frame;
    let mut largest = 0;
    let mut functions = Vec::with_capacity(bodies.len());
    for (f, facts) in program.functions().iter().zip(program.function_facts()) {
        functions.push((f.name.clone(), f.params.join(", "), b.tree.len()));
        b.frame = facts.max_locals;
        let body = b.build(&f.body, f.arity(), facts.max_locals, 1);
        bodies[functions.len() - 1].set(body);
        largest = largest.max(b.frame);
    }
    if !functions.is_empty() {
        locals += MAX_CALLS * largest;
    }
    let tree = b.tree;
    Ok(Code {
        root,
        locals,
        tree,
        functions,
        _arena: arena,
    })
}

/// Runs the tree from its root closure, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    let mut locals = vec![0i64; code.locals];
    // The `Frame` invariant: `locals` holds main's frame and `MAX_CALLS`
    // of the largest function's, and the caller guarantees `args` covers
    // the argument count.
    let mut frame = Frame {
        args: args.as_ptr(),
        locals: locals.as_mut_ptr(),
        calls: 0,
    };
    catch_call_depth(|| code.root.call(&mut frame))
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} closures, {} local slots; children indented under their parent\n",
        code.tree.len(),
        code.locals
    );
    let mut heads = code.functions.iter().peekable();
    for (at, Line { depth, what }) in code.tree.iter().enumerate() {
        if let Some((name, params, _)) = heads.next_if(|(.., first)| *first == at) {
            _ = writeln!(out, "fn {name}({params}):");
        }
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
            Shape::Sub => writeln!(out, "{:pad$}sub", ""),
            Shape::SubLit(n) => writeln!(out, "{:pad$}sub {n}", ""),
            Shape::Lt => writeln!(out, "{:pad$}lt", ""),
            Shape::LtLit(n) => writeln!(out, "{:pad$}lt {n}", ""),
            Shape::If => writeln!(out, "{:pad$}if cond {{ yes }} else {{ no }}", ""),
            Shape::Call(f, base) => {
                let name = &code.functions[*f].0;
                writeln!(out, "{:pad$}call {name}, its frame from L{base}", "")
            }
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

    #[test]
    fn show_lists_every_function() {
        assert_eq!(
            listing::<Closures>("fn f(a, b) { a - b }\nf(1, 2)"),
            [
                "call f, its frame from L0",
                "  litr 1",
                "  litr 2",
                "fn f(a, b):",
                "  sub",
                "    get L0",
                "    get L1"
            ]
        );
    }
}
