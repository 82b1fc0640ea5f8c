//! `walker` — the reference: a recursive `match` over the AST.
//!
//! **Compile** produces nothing new: the code *is* the validated tree (a clone,
//! so the engine owns it like every other engine owns its code).
//! **Values** are Rust return values of the recursive `eval`; **locals** live
//! in one `Vec<i64>` used as a stack, `Let` pushes and pops, `Get(d)` reads
//! `len - 1 - d`. A call pushes its arguments as the callee's first locals
//! and truncates them on return: each body reads only its own frame
//! (validation), so frames need no base pointer. **Control** is Rust's own:
//! `While` is a Rust `loop`, so the native stack depth is the tree's depth,
//! never the iteration count; a guest call is a native call to `eval`, so the
//! stack grows with the calls active, and a counter refuses the call that
//! would make more than `MAX_CALLS` active.
//!
//! Trade-off: nothing to compile and obviously right, which is why every other
//! engine is checked against it (the checks live in `src/reference/`, with a
//! budgeted copy of this walker); every step pays a `match` on a boxed node
//! and a pointer chase. On a Level-1 program the walk's error type is
//! `Infallible`, so the depth check costs Level 1 nothing.
//!
//! **Unsafe code**: none; `run` indexes arguments and locals with bounds
//! checks (the trait's `execute` is an `unsafe fn` for the other engines).

use crate::engine::{CallDepthExceeded, technique};
use crate::front::ast::{Expr, Function};
use crate::front::program::{Level, MAX_CALLS, MAX_PARAMS, Program};
use std::convert::Infallible;

technique! {
    Walker = "walker", Original, Program;
    "recursive match over the AST (the reference)";
    compile: |program| Ok(program.clone()),
    try_execute: run,
    show: |program| crate::front::printer::print_source(program.source());
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        crate::engine::recursive_native_stack(program, FRAME_BYTES)
    }
}

/// Native stack per frame that [`crate::engine::recursion_frames`] counts:
/// at most 128 bytes measured in the test profile and in release (a call
/// straight at the root of its body), 48 per level of nesting around a
/// call site; doubled for a margin. Unoptimised builds (opt-level 0, which
/// the nightly tests of the `become` engines use, with walker as their
/// reference) keep every temporary in its own stack slot: their frames
/// are several times larger, so builds with debug assertions declare more.
const FRAME_BYTES: usize = if cfg!(debug_assertions) { 1024 } else { 256 };

fn run(program: &Program, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    let mut walk = Walk {
        args,
        functions: program.functions(),
        locals: Vec::with_capacity(program.max_locals()),
        calls: 0,
    };
    match program.level() {
        Level::One => walk
            .eval::<Infallible>(program.expr())
            .map_err(|never| match never {}),
        Level::Two => walk.eval::<CallDepthExceeded>(program.expr()),
    }
}

/// How a walk can fail: a Level-1 walk cannot (it makes no call), so its
/// `?`s compile to nothing.
trait Failure: Sized {
    fn call_depth_exceeded() -> Self;
}

impl Failure for Infallible {
    fn call_depth_exceeded() -> Self {
        unreachable!("a Level-1 program makes no call")
    }
}

impl Failure for CallDepthExceeded {
    fn call_depth_exceeded() -> Self {
        CallDepthExceeded
    }
}

struct Walk<'p> {
    args: &'p [i64],
    functions: &'p [Function],
    /// Every active call's locals, each frame above its caller's.
    locals: Vec<i64>,
    /// Calls active now.
    calls: usize,
}

impl<'p> Walk<'p> {
    fn eval<E: Failure>(&mut self, e: &'p Expr) -> Result<i64, E> {
        Ok(match e {
            Expr::Litr(n) => *n,
            Expr::Arg(i) => self.args[*i],
            Expr::Get(d) => self.locals[self.locals.len() - 1 - d],
            Expr::Add(a, b) => {
                let a = self.eval(a)?;
                a.wrapping_add(self.eval(b)?)
            }
            Expr::Let(init, body) => {
                let v = self.eval(init)?;
                self.locals.push(v);
                let r = self.eval(body)?;
                self.locals.pop();
                r
            }
            Expr::Set(d, v) => {
                let v = self.eval(v)?;
                let slot = self.locals.len() - 1 - d;
                self.locals[slot] = v;
                0
            }
            Expr::While(c, body) => {
                while self.eval(c)? > 0 {
                    self.eval(body)?;
                }
                0
            }
            Expr::Then(a, b) => {
                self.eval(a)?;
                self.eval(b)?
            }
            Expr::Sub(a, b) => {
                let a = self.eval(a)?;
                a.wrapping_sub(self.eval(b)?)
            }
            Expr::Lt(a, b) => {
                let a = self.eval(a)?;
                i64::from(a < self.eval(b)?)
            }
            Expr::If(c, t, f) => {
                if self.eval(c)? > 0 {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            Expr::Call(f, args) => self.call(*f, args)?,
        })
    }

    /// Out of line, so the argument buffer is not in every `eval` frame.
    #[inline(never)]
    fn call<E: Failure>(&mut self, f: usize, args: &'p [Expr]) -> Result<i64, E> {
        // Every argument is evaluated in the caller's frame before the call
        // becomes active.
        let mut values = [0; MAX_PARAMS];
        for (value, arg) in values.iter_mut().zip(args) {
            *value = self.eval(arg)?;
        }
        if self.calls == MAX_CALLS {
            return Err(E::call_depth_exceeded());
        }
        let frame = self.locals.len();
        self.locals.extend_from_slice(&values[..args.len()]);
        self.calls += 1;
        let r = self.eval(&self.functions[f].body)?;
        self.calls -= 1;
        self.locals.truncate(frame);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Registered, RunError};
    use crate::front::parser::parse;

    fn run_text(src: &str, args: &[i64]) -> Result<i64, RunError> {
        let program = Program::validate(parse(src).unwrap()).unwrap();
        // Deep recursion near the limit needs a big native stack (virtual
        // memory: only what the run touches is committed).
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(1 << 30)
                .spawn_scoped(s, || {
                    let code = Registered::<Walker>::NEW.compile(&program).unwrap();
                    code.execute(args)
                })
                .unwrap()
                .join()
                .unwrap()
        })
    }

    #[test]
    fn the_language_documents_example() {
        let fib =
            "fn fib(n) {\n    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}\nfib(arg(0))";
        assert_eq!(run_text(fib, &[20]), Ok(6765));
    }

    #[test]
    fn level_two_nodes_mean_what_the_language_says() {
        assert_eq!(run_text("-9223372036854775808 - 1", &[]), Ok(i64::MAX));
        assert_eq!(run_text("-1 < 0", &[]), Ok(1));
        assert_eq!(run_text("0 < -1", &[]), Ok(0));
        assert_eq!(run_text("if 0 { 1 }", &[]), Ok(0));
        assert_eq!(
            run_text("if -5 { 1 } else if 1 { 2 } else { 3 }", &[]),
            Ok(2)
        );
        // Parameters bind in order; a store changes only this call's copy.
        let src = "fn f(a, b) { a = a - b; a }\nlet x = 10; f(x, 3) + x";
        assert_eq!(run_text(src, &[]), Ok(17));
        // Arguments evaluate left to right, in the caller's frame.
        let src = "fn pair(a, b) { a - b }\nlet x = 1; pair({ x = x + 1; x }, { x = x + 10; x })";
        assert_eq!(run_text(src, &[]), Ok(2 - 12));
        // Mutual recursion, and a function defined after its caller.
        let src = "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } }\n\
                   fn odd(n) { if n < 1 { 0 } else { even(n - 1) } }\n\
                   even(arg(0)) - odd(arg(0))";
        assert_eq!(run_text(src, &[7]), Ok(-1));
        assert_eq!(run_text(src, &[8]), Ok(1));
        // `arg(i)` reads the run's arguments inside a function.
        assert_eq!(run_text("fn g() { arg(1) }\ng()", &[5, 6]), Ok(6));
    }

    #[test]
    fn the_call_depth_is_exact() {
        // down(n) is n + 1 calls deep at its deepest.
        let down = "fn down(n) { if 0 < n { down(n - 1) } else { 7 } }\n";
        let limit = MAX_CALLS as i64;
        let main = format!("{down}down(arg(0))");
        assert_eq!(run_text(&main, &[limit - 1]), Ok(7));
        assert_eq!(run_text(&main, &[limit]), Err(RunError::CallDepthExceeded));
        // Nothing runs after the failing call: the endless loop never starts.
        let main = format!("{down}down(arg(0)); while 1 {{ }}");
        assert_eq!(run_text(&main, &[limit]), Err(RunError::CallDepthExceeded));
        // Calls in a loop each return: the depth is that of the active ones.
        let main = format!(
            "{down}let i = 100; while i {{ down({}); i = i - 1 }}",
            limit - 1
        );
        assert_eq!(run_text(&main, &[]), Ok(0));
    }
}
