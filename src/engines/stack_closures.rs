//! `stack_closures` — like `closures`, but intermediate values live on an
//! explicit value stack instead of in the closures' return values.
//!
//! **Compile** turns the tree into nested `Box<dyn Fn(&mut Env)>` closures
//! that return nothing: a closure compiled *for its value* leaves exactly one
//! value pushed (`Add` runs both operands, pops two, pushes the sum), one
//! compiled *for effect* leaves the stack as it found it. Effect context is
//! where values are thrown away — the first half of `Then`, a loop body — so
//! `x = 1; …` pushes no `0` just to pop it, and a pure leaf there compiles to
//! nothing at all. Because every closure's stack effect is fixed, the
//! compiler knows the stack height before every closure and computes the
//! exact maximum, which sizes the stack.
//! **Locals** are slots resolved at compile time exactly as in `closures`
//! (`Get(d)` at scope `s` is slot `s - 1 - d`). One buffer per execute holds
//! [`Program::max_locals`] local slots followed by the value stack.
//! **Control**: `While` is a native `loop` inside its closure that runs the
//! condition, pops it and tests it; native stack depth is the tree's depth.
//!
//! Trade-off: the same indirect call per node as `closures`, plus a memory
//! store and load for every intermediate value — the cost the original
//! comparison set out to show.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt::{self, Write};

pub struct StackClosures;

/// What every closure runs against.
///
/// Invariant (upheld by [`StackClosures::execute`], the only place an `Env`
/// is made): `args` points at [`Program::arg_count`] values, `locals` at
/// [`Program::max_locals`] slots, and `sp` (the next free stack slot) into a
/// stack of `Code::max_stack` slots, at the height the compiler assumed for
/// the closure being entered.
pub struct Env {
    args: *const i64,
    locals: *mut i64,
    sp: *mut i64,
}

impl Env {
    /// # Safety
    ///
    /// The compiler's height for this point is below `max_stack`.
    #[inline(always)]
    unsafe fn push(&mut self, v: i64) {
        // SAFETY: the caller's promise: `sp` is below the stack's end.
        unsafe {
            *self.sp = v;
            self.sp = self.sp.add(1);
        }
    }

    /// # Safety
    ///
    /// The compiler's height for this point is at least 1.
    #[inline(always)]
    unsafe fn pop(&mut self) -> i64 {
        // SAFETY: the caller's promise: a value sits below `sp`.
        unsafe {
            self.sp = self.sp.sub(1);
            *self.sp
        }
    }
}

type Node = Box<dyn Fn(&mut Env)>;

/// The compiled program: the root closure (compiled for its value), buffer
/// sizes, and the tree's shape for `show`.
pub struct Code {
    root: Node,
    locals: usize,
    max_stack: usize,
    tree: Vec<Line>,
}

struct Line {
    depth: u16,
    what: Shape,
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

struct Compiler {
    /// Highest stack height any closure reaches.
    max_stack: usize,
    tree: Vec<Line>,
}

// Every `unsafe` block in the closures below relies on the `Env` invariant
// and on the height bookkeeping in `Compiler`: `height` is the number of
// values on the stack when the closure starts; a value closure ends at
// `height + 1`, an effect closure at `height`, and `max_stack` is at least
// every height reached. Local slots are below `max_locals` and argument
// indices below `arg_count` by validation, as in `closures`.
impl Compiler {
    fn line(&mut self, depth: u16, what: Shape) {
        self.tree.push(Line { depth, what });
    }

    fn reach(&mut self, height: usize) {
        self.max_stack = self.max_stack.max(height);
    }

    /// A closure that pushes `e`'s value; `height` values are below it.
    fn value(&mut self, e: &Expr, scope: usize, height: usize, depth: u16) -> Node {
        self.reach(height + 1);
        match *e {
            Expr::Litr(n) => {
                self.line(depth, Shape::Push(n));
                // SAFETY: pushes at `height < max_stack` (see `Compiler`).
                Box::new(move |env| unsafe { env.push(n) })
            }
            Expr::Arg(i) => {
                self.line(depth, Shape::PushArg(i));
                // SAFETY: `i < arg_count`; pushes at `height < max_stack`.
                Box::new(move |env| unsafe { env.push(*env.args.add(i)) })
            }
            Expr::Get(d) => {
                let slot = scope - 1 - d;
                self.line(depth, Shape::PushLocal(slot));
                // SAFETY: `slot < scope ≤ max_locals`; pushes below `max_stack`.
                Box::new(move |env| unsafe { env.push(*env.locals.add(slot)) })
            }
            Expr::Add(ref a, ref b) => {
                self.line(depth, Shape::Add);
                let a = self.value(a, scope, height, depth + 1);
                let b = self.value(b, scope, height + 1, depth + 1);
                Box::new(move |env| {
                    a(env);
                    b(env);
                    // SAFETY: `a` and `b` left two values above `height`.
                    unsafe {
                        let y = env.pop();
                        let top = env.sp.sub(1);
                        *top = (*top).wrapping_add(y);
                    }
                })
            }
            Expr::Let(ref init, ref body) => {
                self.line(depth, Shape::Let(scope));
                let init = self.value(init, scope, height, depth + 1);
                let body = self.value(body, scope + 1, height, depth + 1);
                Box::new(move |env| {
                    init(env);
                    // SAFETY: `init` pushed one value; `scope < max_locals`
                    // because the body has `scope + 1` locals in scope.
                    unsafe { *env.locals.add(scope) = env.pop() };
                    body(env);
                })
            }
            Expr::Then(ref a, ref b) => {
                let at = self.tree.len();
                self.line(depth, Shape::Then);
                let a = self.effect(a, scope, height, depth + 1);
                let b = self.value(b, scope, height, depth + 1);
                match a {
                    Some(a) => Box::new(move |env| {
                        a(env);
                        b(env);
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
                Box::new(move |env| {
                    run(env);
                    // SAFETY: `run` leaves `height` values; `height + 1` was
                    // counted into `max_stack` above.
                    unsafe { env.push(0) };
                })
            }
        }
    }

    /// A closure that runs `e` for its effects only (`None`: it has none).
    fn effect(&mut self, e: &Expr, scope: usize, height: usize, depth: u16) -> Option<Node> {
        match *e {
            // Reading has no effect and `+` cannot trap.
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => None,
            Expr::Add(ref a, ref b) | Expr::Then(ref a, ref b) => {
                let first = self.effect(a, scope, height, depth);
                let second = self.effect(b, scope, height, depth);
                match (first, second) {
                    (Some(a), Some(b)) => Some(Box::new(move |env| {
                        a(env);
                        b(env);
                    })),
                    (one, other) => one.or(other),
                }
            }
            Expr::Let(ref init, ref body) => {
                self.line(depth, Shape::LetForEffect(scope));
                let init = self.value(init, scope, height, depth + 1);
                let body = self.effect(body, scope + 1, height, depth + 1);
                Some(match body {
                    Some(body) => Box::new(move |env| {
                        init(env);
                        // SAFETY: as in the value `Let`.
                        unsafe { *env.locals.add(scope) = env.pop() };
                        body(env);
                    }),
                    None => Box::new(move |env| {
                        init(env);
                        // SAFETY: as in the value `Let`.
                        unsafe { *env.locals.add(scope) = env.pop() };
                    }),
                })
            }
            Expr::Set(d, ref value) => {
                let slot = scope - 1 - d;
                self.line(depth, Shape::Set(slot));
                let value = self.value(value, scope, height, depth + 1);
                Some(Box::new(move |env| {
                    value(env);
                    // SAFETY: `value` pushed one value; `slot < scope ≤ max_locals`.
                    unsafe { *env.locals.add(slot) = env.pop() };
                }))
            }
            Expr::While(ref cond, ref body) => {
                self.line(depth, Shape::While);
                let cond = self.value(cond, scope, height, depth + 1);
                let body = self.effect(body, scope, height, depth + 1);
                Some(match body {
                    Some(body) => Box::new(move |env| {
                        loop {
                            cond(env);
                            // SAFETY: `cond` pushed one value.
                            if unsafe { env.pop() } <= 0 {
                                break;
                            }
                            body(env);
                        }
                    }),
                    None => Box::new(move |env| {
                        loop {
                            cond(env);
                            // SAFETY: `cond` pushed one value.
                            if unsafe { env.pop() } <= 0 {
                                break;
                            }
                        }
                    }),
                })
            }
        }
    }
}

impl Technique for StackClosures {
    const NAME: &'static str = "stack_closures";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "nested closures passing values on an explicit value stack";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let mut c = Compiler {
            max_stack: 0,
            tree: Vec::with_capacity(program.node_count()),
        };
        let root = c.value(program.expr(), 0, 0, 0);
        Ok(Code {
            root,
            locals: program.max_locals(),
            max_stack: c.max_stack,
            tree: c.tree,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        // Locals first, then the value stack, in one allocation.
        let mut frame = vec![0i64; code.locals + code.max_stack];
        let locals = frame.as_mut_ptr();
        // SAFETY: `code.locals` is within `frame`.
        let sp = unsafe { locals.add(code.locals) };
        // The `Env` invariant: buffers sized from the program, the caller
        // covers `arg_count`, and the stack starts empty (height 0).
        let mut env = Env {
            args: args.as_ptr(),
            locals,
            sp,
        };
        (code.root)(&mut env);
        // SAFETY: the root closure is compiled for its value: it pushed one.
        unsafe { env.pop() }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::compile_source;

    crate::engines::conformance::conformance_tests!(StackClosures);

    #[test]
    fn max_stack_is_exact() {
        let max = |src| {
            StackClosures::compile(&compile_source("t", src).unwrap())
                .unwrap()
                .max_stack
        };
        assert_eq!(max("1 + (2 + (3 + (4 + 5)))"), 5);
        assert_eq!(max("1 + 2 + 3 + 4 + 5"), 2);
        assert_eq!(max("let x = 1; x = 2; 3"), 1);
        assert_eq!(max("let x = 1; 1 + (x = 2)"), 2);
    }
}
