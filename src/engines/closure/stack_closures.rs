//! `stack_closures` — like `closures`, but intermediate values live on an
//! explicit value stack instead of in the closures' return values.
//!
//! **Compile** turns the tree into nested closures (held as two words each,
//! `closures`' `thin_closure!`, in one arena) that return nothing: a closure
//! compiled *for its value* writes it to the top of the stack (`Add` runs
//! both operands into the two slots there and adds the second into the
//! first), one compiled *for effect* leaves nothing. Effect context is where
//! values are thrown away — the first half of `Then`, a loop body — so
//! `x = 1; …` pushes no `0` just to drop it, and a pure leaf there compiles
//! to nothing at all. Because every closure's stack effect is fixed, the
//! compiler knows the stack height before every closure and computes the
//! exact maximum, which sizes the stack.
//! **The stack pointer** is an argument: a parent passes each child the slot
//! its value goes to (`sp` for the first operand, `sp + 1` for the second),
//! so it stays in a register, and no closure returns or stores a new one.
//! **Locals** are slots resolved at compile time exactly as in `closures`
//! (`Get(d)` at scope `s` is slot `s - 1 - d`). One buffer per execute holds
//! [`Program::max_locals`] local slots followed by the value stack.
//! **Control**: `While` is a native `loop` inside its closure that runs the
//! condition, reads it from the stack and tests it; native stack depth is
//! the tree's depth.
//!
//! **What a node costs**: `closures`' call per child (two loads to reach it,
//! no vtable), plus a store for every value and a load for every use of it,
//! and one more callee-saved register than `closures` in a node with two
//! children (`sp` must survive the first call). There is no operand-location
//! variant: a literal operand is pushed like any other value, for `-` and
//! `<` as for `+`.
//!
//! **Calls, returns, branches.** A call pushes its arguments like operands,
//! left to right; those slots then *are* the callee's **frame**: its
//! parameters are its first locals, and its own value stack starts above
//! its locals (so a frame is the body's locals and its value stack, in the
//! one buffer, which has room for `MAX_CALLS` frames of the largest
//! function's above main's). The call closure checks the depth counter,
//! makes the callee's [`Frame`] on its own native frame (`locals` at the
//! first argument, one more call active) and calls the body's root closure
//! with the callee's stack pointer; a **return** is that closure returning,
//! then one copy of the value from the callee's stack base down to where
//! the first argument was. Bodies are reached through a table of compiled
//! bodies, filled in once all are compiled (mutual recursion, callees
//! defined later). A guest call is a native call, so the native stack grows
//! with the calls active and the engine declares what `MAX_CALLS` need; the
//! call that would exceed the limit unwinds it back to `run`, so only calls
//! pay for the check. A **branch**: `If` runs its condition, reads it from
//! the stack and calls one branch; in effect context its branches compile
//! for effect. `Sub` and `Lt` are `Add`'s shape.
//!
//! Trade-off: the same indirect call per node as `closures`, plus a memory
//! store and load for every intermediate value.
//!
//! Unsafe code rests on trusting this module's own compiler (its stack
//! heights, slots and argument indices); there is no verifier.

use super::closures::{Arena, Frame, Line, catch_call_depth, exceed_call_depth, thin_closure};
use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::Cell;
use std::fmt::{self, Write};

/// The top of the value stack: the slot a closure compiled for its value
/// writes its value to. It is an argument, not a field of [`Env`], so it
/// stays in a register; and because every closure's stack effect is fixed, a
/// parent knows where each child's value lands (`sp`, `sp + 1`, …) and no
/// closure returns a new one. Invariant: a closure entered with `sp` at the
/// compiler's height `h` for it may write slots `h..max_stack`, which lie in
/// the stack buffer.
type Sp = *mut i64;

thin_closure! {
    /// A compiled node, holding its children as two-word closures.
    struct Node = Fn(frame: &Frame, sp: Sp);
}

/// The compiled program: the root closure (compiled for its value), buffer
/// sizes, and the tree's shape for `show`.
pub struct Code {
    root: Node,
    locals: usize,
    max_stack: usize,
    /// Slots a run's buffer holds: main's locals and value stack, then room
    /// for `MAX_CALLS` frames of the largest function's (at Level 1, just
    /// main's).
    slots: usize,
    /// Main's closures, then each function's, one line per closure.
    tree: Vec<Line<Shape>>,
    /// Each function's name and parameters, with its first line in `tree`.
    functions: Vec<(String, String, usize)>,
    /// Owns `root` and every closure it reaches, and the table of bodies.
    _arena: Arena,
}

/// What one closure does, for `show` (kept small: compile time is measured).
#[derive(strum::EnumDiscriminants)]
#[strum_discriminants(name(ShapeKind), derive(strum::VariantArray, strum::IntoStaticStr))]
enum Shape {
    Push(i64),
    PushArg(usize),
    PushLocal(usize),
    Add,
    Let(usize),
    LetForEffect(usize),
    Set(usize),
    While,
    Then,
    ThenElided,
    Zero,
    Sub,
    Lt,
    If,
    IfForEffect,
    /// Calls function `.0`, whose frame has `.1` local slots.
    Call(usize, usize),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Push(n) => write!(f, "push {n}"),
            Shape::PushArg(i) => write!(f, "push arg {i}"),
            Shape::PushLocal(s) => write!(f, "push L{s}"),
            Shape::Add => write!(f, "add: run both, pop 2, push sum"),
            Shape::Let(s) => write!(f, "let: pop into L{s}, then body"),
            Shape::LetForEffect(s) => write!(f, "let: pop into L{s}, then body for effect"),
            Shape::Set(s) => write!(f, "set: pop into L{s}"),
            Shape::While => write!(f, "while: run cond, pop, stop unless > 0, run body"),
            Shape::Then => write!(f, "then: first for effect, second for value"),
            Shape::ThenElided => write!(f, "then: first part has no effect, compiled away"),
            Shape::Zero => write!(f, "run for effect, then push 0"),
            Shape::Sub => write!(f, "sub: run both, pop 2, push difference"),
            Shape::Lt => write!(f, "lt: run both, pop 2, push 1 if less else 0"),
            Shape::If => write!(f, "if: run cond, pop, run one branch for value"),
            Shape::IfForEffect => write!(f, "if: run cond, pop, run one branch for effect"),
            Shape::Call(function, locals) => write!(
                f,
                "call #{function}: push the arguments, which begin its frame \
                 ({locals} local slots, then its stack); its value goes where the first was"
            ),
        }
    }
}

struct Compiler<'a> {
    /// Highest stack height any closure of the body being compiled reaches.
    max_stack: usize,
    tree: Vec<Line<Shape>>,
    arena: &'a Arena,
    /// Every function's compiled body, by number; filled in once all are
    /// compiled, so a call may precede its callee's compilation.
    bodies: &'a [Cell<Node>],
    /// Every function's local slots, by number.
    locals: Vec<usize>,
}

// Every `unsafe` block in the closures below relies on the `Env` and `Sp`
// invariants and on the height bookkeeping in `Compiler`: `height` is the
// number of values on the stack when the closure starts, so its `sp` is the
// stack's base plus `height`; a value closure writes its value at `sp` (and
// may use the slots above as scratch), an effect closure only uses slots at
// and above `sp`, and `max_stack` is above every slot written. So `sp + 1`
// for a second operand is in bounds because the parent reached
// `height + 2`. Local slots are below `max_locals` and argument indices
// below `arg_count` by validation, as in `closures`.
impl Compiler<'_> {
    fn line(&mut self, depth: u16, what: Shape) {
        self.tree.push(Line { depth, what });
    }

    fn reach(&mut self, height: usize) {
        self.max_stack = self.max_stack.max(height);
    }

    fn node(&self, f: impl Fn(&Frame, Sp) + 'static) -> Node {
        Node::new_in(self.arena, f)
    }

    /// A closure that pushes `a op b` (`+`, `-` or `<`; a function item,
    /// so each operator is its own closure type with the operation
    /// inlined); `height` values are below it.
    fn binary(
        &mut self,
        shape: Shape,
        (a, b): (&Expr, &Expr),
        scope: usize,
        height: usize,
        depth: u16,
        op: impl Fn(i64, i64) -> i64 + 'static,
    ) -> Node {
        self.line(depth, shape);
        let a = self.value(a, scope, height, depth + 1);
        let b = self.value(b, scope, height + 1, depth + 1);
        self.node(move |env, sp| {
            a.call(env, sp);
            // SAFETY: `b` runs one slot up, which `value` reached for it.
            let top = unsafe { sp.add(1) };
            b.call(env, top);
            // SAFETY: `a` and `b` left their values at `sp`, `sp + 1`.
            unsafe { *sp = op(*sp, *top) };
        })
    }

    /// A closure that pushes `e`'s value; `height` values are below it.
    fn value(&mut self, e: &Expr, scope: usize, height: usize, depth: u16) -> Node {
        self.reach(height + 1);
        match *e {
            Expr::Sub(ref a, ref b) => {
                self.binary(Shape::Sub, (a, b), scope, height, depth, i64::wrapping_sub)
            }
            Expr::Lt(ref a, ref b) => {
                let less = |x, y| i64::from(x < y);
                self.binary(Shape::Lt, (a, b), scope, height, depth, less)
            }
            Expr::If(ref cond, ref yes, ref no) => {
                self.line(depth, Shape::If);
                let cond = self.value(cond, scope, height, depth + 1);
                let yes = self.value(yes, scope, height, depth + 1);
                let no = self.value(no, scope, height, depth + 1);
                self.node(move |frame, sp| {
                    cond.call(frame, sp);
                    // SAFETY: `cond` left its value at `sp`.
                    if unsafe { *sp } > 0 {
                        yes.call(frame, sp);
                    } else {
                        no.call(frame, sp);
                    }
                })
            }
            Expr::Call(f, ref args) => {
                let callee_locals = self.locals[f];
                self.line(depth, Shape::Call(f, callee_locals));
                // Argument `i` is pushed at height `height + i`.
                let args: Vec<Node> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.value(a, scope, height + i, depth + 1))
                    .collect();
                let args = self.arena.alloc_slice(&args);
                let (args, count) = (args.as_ptr(), args.len());
                let body: *const Cell<Node> = &self.bodies[f];
                self.node(move |frame, sp| {
                    for i in 0..count {
                        // SAFETY: `args` holds `count` nodes in the arena,
                        // which lives as long as this closure; argument `i`
                        // is compiled for height `height + i`.
                        unsafe { (*args.add(i)).call(frame, sp.add(i)) };
                    }
                    if frame.calls == MAX_CALLS {
                        exceed_call_depth();
                    }
                    // The arguments are the callee's first locals; its
                    // value stack starts above its locals. The buffer has
                    // room for `MAX_CALLS - calls` frames above `sp`.
                    let callee = Frame {
                        args: frame.args,
                        locals: sp,
                        calls: frame.calls + 1,
                    };
                    // SAFETY: within the callee's frame, as above.
                    let base = unsafe { sp.add(callee_locals) };
                    // SAFETY: the table is in the arena, filled before any run.
                    let body = unsafe { (*body).get() };
                    body.call(&callee, base);
                    // SAFETY: the body is compiled for its value, at `base`.
                    unsafe { *sp = *base };
                })
            }
            Expr::Litr(n) => {
                self.line(depth, Shape::Push(n));
                // SAFETY: `sp` is a slot of the stack (see `Compiler`).
                self.node(move |_, sp| unsafe { *sp = n })
            }
            Expr::Arg(i) => {
                self.line(depth, Shape::PushArg(i));
                // SAFETY: `i < arg_count`; `sp` is a slot of the stack.
                self.node(move |env, sp| unsafe { *sp = *env.args.add(i) })
            }
            Expr::Get(d) => {
                let slot = scope - 1 - d;
                self.line(depth, Shape::PushLocal(slot));
                // SAFETY: `slot < scope ≤ max_locals`; `sp` is a slot of the stack.
                self.node(move |env, sp| unsafe { *sp = *env.locals.add(slot) })
            }
            Expr::Add(ref a, ref b) => {
                self.binary(Shape::Add, (a, b), scope, height, depth, i64::wrapping_add)
            }
            Expr::Let(ref init, ref body) => {
                self.line(depth, Shape::Let(scope));
                let init = self.value(init, scope, height, depth + 1);
                let body = self.value(body, scope + 1, height, depth + 1);
                self.node(move |env, sp| {
                    init.call(env, sp);
                    // SAFETY: `init` left a value at `sp`; `scope < max_locals`
                    // because the body has `scope + 1` locals in scope.
                    unsafe { *env.locals.add(scope) = *sp };
                    body.call(env, sp);
                })
            }
            Expr::Then(ref a, ref b) => {
                let at = self.tree.len();
                self.line(depth, Shape::Then);
                let a = self.effect(a, scope, height, depth + 1);
                let b = self.value(b, scope, height, depth + 1);
                match a {
                    Some(a) => self.node(move |env, sp| {
                        a.call(env, sp);
                        b.call(env, sp);
                    }),
                    None => {
                        self.tree[at].what = Shape::ThenElided;
                        b
                    }
                }
            }
            Expr::Set(..) | Expr::While(..) => {
                // Run it for effect, then push its value, 0.
                self.line(depth, Shape::Zero);
                let run = self.effect(e, scope, height, depth + 1);
                let run = run.expect("Set and While always have an effect");
                self.node(move |env, sp| {
                    run.call(env, sp);
                    // SAFETY: `sp` is a slot of the stack (see `Compiler`).
                    unsafe { *sp = 0 };
                })
            }
        }
    }

    /// A closure that runs `e` for its effects only (`None`: it has none).
    fn effect(&mut self, e: &Expr, scope: usize, height: usize, depth: u16) -> Option<Node> {
        match *e {
            // Reading has no effect and `+`, `-`, `<` cannot trap.
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => None,
            // A call has the effects of its callee: run it for its value.
            Expr::Call(..) => Some(self.value(e, scope, height, depth)),
            Expr::If(ref cond, ref yes, ref no) => {
                self.line(depth, Shape::IfForEffect);
                let cond = self.value(cond, scope, height, depth + 1);
                let yes = self.effect(yes, scope, height, depth + 1);
                let no = self.effect(no, scope, height, depth + 1);
                // A branch without effects runs nothing (not even a line).
                let nothing = self.node(|_, _| {});
                let (yes, no) = (yes.unwrap_or(nothing), no.unwrap_or(nothing));
                Some(self.node(move |frame, sp| {
                    cond.call(frame, sp);
                    // SAFETY: `cond` left its value at `sp`.
                    if unsafe { *sp } > 0 {
                        yes.call(frame, sp);
                    } else {
                        no.call(frame, sp);
                    }
                }))
            }
            Expr::Add(ref a, ref b)
            | Expr::Then(ref a, ref b)
            | Expr::Sub(ref a, ref b)
            | Expr::Lt(ref a, ref b) => {
                let first = self.effect(a, scope, height, depth);
                let second = self.effect(b, scope, height, depth);
                match (first, second) {
                    (Some(a), Some(b)) => Some(self.node(move |env, sp| {
                        a.call(env, sp);
                        b.call(env, sp);
                    })),
                    (one, other) => one.or(other),
                }
            }
            Expr::Let(ref init, ref body) => {
                self.line(depth, Shape::LetForEffect(scope));
                let init = self.value(init, scope, height, depth + 1);
                let body = self.effect(body, scope + 1, height, depth + 1);
                Some(match body {
                    Some(body) => self.node(move |env, sp| {
                        init.call(env, sp);
                        // SAFETY: as in the value `Let`.
                        unsafe { *env.locals.add(scope) = *sp };
                        body.call(env, sp);
                    }),
                    None => self.node(move |env, sp| {
                        init.call(env, sp);
                        // SAFETY: as in the value `Let`.
                        unsafe { *env.locals.add(scope) = *sp };
                    }),
                })
            }
            Expr::Set(d, ref value) => {
                let slot = scope - 1 - d;
                self.line(depth, Shape::Set(slot));
                let value = self.value(value, scope, height, depth + 1);
                Some(self.node(move |env, sp| {
                    value.call(env, sp);
                    // SAFETY: `value` left a value at `sp`; `slot < scope ≤ max_locals`.
                    unsafe { *env.locals.add(slot) = *sp };
                }))
            }
            Expr::While(ref cond, ref body) => {
                self.line(depth, Shape::While);
                let cond = self.value(cond, scope, height, depth + 1);
                let body = self.effect(body, scope, height, depth + 1);
                Some(match body {
                    Some(body) => self.node(move |env, sp| {
                        loop {
                            cond.call(env, sp);
                            // SAFETY: `cond` left a value at `sp`.
                            if unsafe { *sp } <= 0 {
                                break;
                            }
                            body.call(env, sp);
                        }
                    }),
                    None => self.node(move |env, sp| {
                        loop {
                            cond.call(env, sp);
                            // SAFETY: `cond` left a value at `sp`.
                            if unsafe { *sp } <= 0 {
                                break;
                            }
                        }
                    }),
                })
            }
        }
    }
}

technique! {
    StackClosures = "stack_closures", Original, Code;
    "nested closures passing values on an explicit value stack";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        crate::engine::recursive_native_stack(program, FRAME_BYTES)
    }
    // One line of the tree per closure built (or elided), by its shape.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<ShapeKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        crate::engine::census_of(code.tree.iter().map(|l| ShapeKind::from(&l.what)))
    }
}

/// Native stack per closure nesting level that
/// [`crate::engine::recursion_frames`] counts. The largest closure frame is
/// a call's (144 bytes measured in the test profile, 128 in release); a
/// chain of calls in arguments can make every counted level one, so this
/// bounds the frame of every kind, with a margin.
const FRAME_BYTES: usize = 256;

fn compile(program: &Program) -> Result<Code, CompileError> {
    let arena = Arena::per_node(program);
    let unset = Node::new_in(&arena, |_, _| {
        unreachable!("every body is set before a run")
    });
    let bodies = arena.alloc_table(program.functions().len(), |_| Cell::new(unset));
    let mut c = Compiler {
        max_stack: 0,
        tree: Vec::with_capacity(program.node_count()),
        arena: &arena,
        bodies,
        locals: program
            .function_facts()
            .iter()
            .map(|f| f.max_locals)
            .collect(),
    };
    let root = c.value(program.expr(), 0, 0, 0);
    let max_stack = c.max_stack;
    let mut largest = 0;
    let mut functions = Vec::with_capacity(bodies.len());
    for (f, function) in program.functions().iter().enumerate() {
        functions.push((
            function.name.clone(),
            function.params.join(", "),
            c.tree.len(),
        ));
        c.max_stack = 0;
        let body = c.value(&function.body, function.arity(), 0, 1);
        bodies[f].set(body);
        largest = largest.max(c.locals[f] + c.max_stack);
    }
    let mut slots = program.max_locals() + max_stack;
    if !functions.is_empty() {
        slots += MAX_CALLS * largest;
    }
    Ok(Code {
        root,
        locals: program.max_locals(),
        max_stack,
        slots,
        tree: c.tree,
        functions,
        _arena: arena,
    })
}

/// Runs the tree from its root closure, on a fresh frame of locals and
/// value stack (and room for the calls' frames above them).
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // Locals first, then the value stack, in one allocation; calls put
    // their frames above, each starting at its arguments.
    let mut frame = vec![0i64; code.slots];
    let locals = frame.as_mut_ptr();
    // SAFETY: `code.locals` is within `frame`.
    let sp = unsafe { locals.add(code.locals) };
    // The `Frame` and `Sp` invariants: buffers sized from the program, the
    // caller covers `arg_count`, and the stack starts empty (height 0).
    let main = Frame {
        args: args.as_ptr(),
        locals,
        calls: 0,
    };
    catch_call_depth(|| {
        code.root.call(&main, sp);
        // SAFETY: the root closure is compiled for its value: it wrote it at
        // `sp`, a slot of `frame` (`max_stack` ≥ 1 for a value).
        unsafe { *sp }
    })
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} local slots, value stack {} deep; children indented under their parent,\n\
         ; effects run in order at one level\n",
        code.locals, code.max_stack
    );
    let mut heads = code.functions.iter().peekable();
    for (at, Line { depth, what }) in code.tree.iter().enumerate() {
        if let Some((name, params, _)) = heads.next_if(|(.., first)| *first == at) {
            _ = writeln!(out, "fn {name}({params}):");
        }
        let pad = 2 * *depth as usize;
        _ = match what {
            Shape::Call(f, locals) => writeln!(
                out,
                "{:pad$}call {}: push the arguments, which begin its frame \
                 ({locals} local slots, then its stack); its value goes where the first was",
                "", code.functions[*f].0
            ),
            _ => writeln!(out, "{:pad$}{what}", ""),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::compile_source;

    crate::engines::conformance::conformance_tests!(StackClosures);

    #[test]
    fn max_stack_is_exact() {
        let max = |src| {
            compile(&compile_source("t", src).unwrap())
                .unwrap()
                .max_stack
        };
        assert_eq!(max("1 + (2 + (3 + (4 + 5)))"), 5);
        assert_eq!(max("1 + 2 + 3 + 4 + 5"), 2);
        assert_eq!(max("let x = 1; x = 2; 3"), 1);
        assert_eq!(max("let x = 1; 1 + (x = 2)"), 2);
    }

    #[test]
    fn show_lists_every_function() {
        use crate::engines::conformance::listing;
        assert_eq!(
            listing::<StackClosures>("fn f(a, b) { a - b }\nf(1, 2)")[1..],
            [
                "call f: push the arguments, which begin its frame (2 local slots, \
                 then its stack); its value goes where the first was",
                "  push 1",
                "  push 2",
                "fn f(a, b):",
                "  sub: run both, pop 2, push difference",
                "    push L0",
                "    push L1"
            ]
        );
    }
}
