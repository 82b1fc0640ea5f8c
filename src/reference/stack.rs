//! Rule 4: the native stack. Two parts.
//!
//! **Giving an engine its stack.** An engine that recurses natively per
//! guest call declares the stack a run needs ([`Engine::native_stack`]);
//! [`on_native_stack`] is the one place that runs work on a thread with at
//! least that much, used by the harness (bench, preflight, the instruction
//! child, scale), the command line (`run`, `check`) and the reference's own
//! walker. Engines that keep their frames in their own memory declare
//! nothing and run on the calling thread.
//!
//! **Checking the engines whose stack bound rests on tail calls**
//! ([`Engine::relies_on_tail_calls`]): a 10⁸-iteration loop and a long
//! straight line, each on a 256 KiB stack. `tests/stack.rs` runs them on
//! every such engine, in the test profile and in release, and on engines
//! whose calls are deliberately not tail calls, to prove they fail; the
//! engines' unit tests reach them through `conformance`.
//!
//! Each check runs on a thread of its own with an explicit stack size, so
//! neither `RUST_MIN_STACK` nor the test harness's thread size plays a part,
//! and the thread is named after the engine and the check. A call that is
//! not made a jump grows the stack per step and overflows it within a few
//! thousand steps; Rust then aborts the process and names the thread.

use crate::engine::Engine;
use crate::front::ast::Expr;
use crate::front::compile_source;
use crate::front::program::Program;
use crate::random::balanced::then_tree;

/// The stack the checks run on.
pub const SMALL_STACK: usize = 256 * 1024;

/// What any thread that compiles or runs a program is assumed to have: the
/// stack every stage needs for programs [`MAX_DEPTH`](crate::MAX_DEPTH)
/// deep (the test threads' size, on which `tests/stack.rs` proves it).
pub const ORDINARY_STACK: usize = 2 << 20;

/// The native stack runs of `program` need on any of `engines`: the largest
/// any of them declares ([`Engine::native_stack`]).
pub fn declared_stack<'a>(
    engines: impl IntoIterator<Item = &'a dyn Engine>,
    program: &Program,
) -> usize {
    engines
        .into_iter()
        .map(|e| e.native_stack(program))
        .max()
        .unwrap_or(0)
}

/// Runs `f` where `bytes` of native stack are free for executions: on the
/// calling thread when `bytes` is 0 (nothing declared), else on a new thread
/// with `bytes` beyond an [`ORDINARY_STACK`] for the rest of `f`'s work
/// (compiling, checking, reporting). The stack is reserved virtual memory,
/// touched only as deep as a run goes. A panic in `f` is a panic here.
pub fn on_native_stack<R: Send>(bytes: usize, f: impl FnOnce() -> R + Send) -> R {
    if bytes == 0 {
        return f();
    }
    on_stack(
        "vm-perf: guest calls".into(),
        bytes.saturating_add(ORDINARY_STACK),
        f,
    )
}

/// Runs `f` on a thread named `name` with a stack of `bytes`; a panic there
/// is a panic here.
pub fn on_stack<R: Send>(name: String, bytes: usize, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(name)
            .stack_size(bytes)
            .spawn_scoped(scope, f)
            .expect("a thread can be started")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A 10⁸-iteration loop on a [`SMALL_STACK`]: one back-edge that is a call
/// rather than a jump overflows it at once.
pub fn hundred_million_iterations(engine: &dyn Engine) {
    let program = compile_source(
        "loop",
        "let n = arg(0); let t = 0; while n { t = t + 1; n = n + -1 }; t",
    )
    .expect("valid");
    let n: i64 = if cfg!(miri) { 1_000 } else { 100_000_000 };
    let name = format!("{}: 10^8 iterations on a 256 KiB stack", engine.name());
    on_stack(name, SMALL_STACK, || {
        let code = engine.compile(&program).expect("compiles");
        assert_eq!(code.execute(&[n]), Ok(n), "{}", engine.name());
    });
}

/// A shallow program with a long straight line (200,000 steps in balanced
/// blocks), compiled, run and dropped on a [`SMALL_STACK`]: a chain of
/// steps must be jumps, and dropping it must not recurse per step.
pub fn long_straight_line(engine: &dyn Engine) {
    let n = if cfg!(miri) { 500 } else { 200_000 };
    let line = then_tree(n, &mut |_| {
        Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(1)))
    });
    let program =
        Program::validate(Expr::let_(Expr::Arg(0), Expr::then(line, Expr::Get(0)))).expect("valid");
    let name = format!("{}: a 200,000-step line on a 256 KiB stack", engine.name());
    on_stack(name, SMALL_STACK, || {
        let code = engine.compile(&program).expect("compiles");
        assert_eq!(code.execute(&[5]), Ok(n as i64 + 5), "{}", engine.name());
        drop(code);
        drop(program);
    });
}
