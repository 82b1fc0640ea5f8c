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
//! no vtable), plus a store for every value and a load for every use of it —
//! the memory traffic the original comparison set out to show — and one
//! more callee-saved register than `closures` in a node with two children
//! (`sp` must survive the first call). There is no operand-location variant
//! (the original's design had none): a literal operand is pushed like any
//! other value.
//!
//! Trade-off: the same indirect call per node as `closures`, plus a memory
//! store and load for every intermediate value.
//!
//! Unsafe code rests on trusting this module's own compiler (its stack
//! heights, slots and argument indices); there is no verifier.

use super::closures::{Arena, Env, Line, thin_closure};
use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
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
    struct Node = Fn(env: &Env, sp: Sp);
}

/// The compiled program: the root closure (compiled for its value), buffer
/// sizes, and the tree's shape for `show`.
pub struct Code {
    root: Node,
    locals: usize,
    max_stack: usize,
    tree: Vec<Line<Shape>>,
    /// Owns `root` and every closure it reaches.
    _arena: Arena,
}

/// What one closure does, for `show` (kept small: compile time is measured).
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
        }
    }
}

struct Compiler<'a> {
    /// Highest stack height any closure reaches.
    max_stack: usize,
    tree: Vec<Line<Shape>>,
    arena: &'a Arena,
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

    fn node(&self, f: impl Fn(&Env, Sp) + 'static) -> Node {
        Node::new_in(self.arena, f)
    }

    /// A closure that pushes `e`'s value; `height` values are below it.
    fn value(&mut self, e: &Expr, scope: usize, height: usize, depth: u16) -> Node {
        self.reach(height + 1);
        match *e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
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
                self.line(depth, Shape::Add);
                let a = self.value(a, scope, height, depth + 1);
                let b = self.value(b, scope, height + 1, depth + 1);
                self.node(move |env, sp| {
                    a.call(env, sp);
                    // SAFETY: `b` runs one slot up, which this node reached.
                    let top = unsafe { sp.add(1) };
                    b.call(env, top);
                    // SAFETY: `a` and `b` left their values at `sp`, `sp + 1`.
                    unsafe { *sp = (*sp).wrapping_add(*top) };
                })
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            // Reading has no effect and `+` cannot trap.
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => None,
            Expr::Add(ref a, ref b) | Expr::Then(ref a, ref b) => {
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
    compile: compile, execute: run, show: show;
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let arena = Arena::per_node(program);
    let mut c = Compiler {
        max_stack: 0,
        tree: Vec::with_capacity(program.node_count()),
        arena: &arena,
    };
    let root = c.value(program.expr(), 0, 0, 0);
    let (max_stack, tree) = (c.max_stack, c.tree);
    Ok(Code {
        root,
        locals: program.max_locals(),
        max_stack,
        tree,
        _arena: arena,
    })
}

/// Runs the tree from its root closure, on a fresh frame of locals and value stack.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> i64 {
    // Locals first, then the value stack, in one allocation.
    let mut frame = vec![0i64; code.locals + code.max_stack];
    let locals = frame.as_mut_ptr();
    // SAFETY: `code.locals` is within `frame`.
    let sp = unsafe { locals.add(code.locals) };
    // The `Env` and `Sp` invariants: buffers sized from the program, the
    // caller covers `arg_count`, and the stack starts empty (height 0).
    let env = Env {
        args: args.as_ptr(),
        locals,
    };
    code.root.call(&env, sp);
    // SAFETY: the root closure is compiled for its value: it wrote it at
    // `sp`, a slot of `frame` (`max_stack` ≥ 1 for a value).
    unsafe { *sp }
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} local slots, value stack {} deep; children indented under their parent,\n\
         ; effects run in order at one level\n",
        code.locals, code.max_stack
    );
    for Line { depth, what } in &code.tree {
        _ = writeln!(out, "{:pad$}{what}", "", pad = 2 * *depth as usize);
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
}
