//! Unit-test checks every engine module runs on itself (test builds only),
//! and [`conformance_tests!`], which expands them into `#[test]` functions
//! inside an engine's `tests` module. Every engine runs the standard set:
//! agreement with `walker` on hand-written tricky programs and on every
//! workload, deep programs on a 2 MiB stack, a 10⁷-iteration loop on a
//! 256 KiB stack, and Level 2 ([`LEVEL_TWO`]: values and *call depth
//! exceeded* at the limit, each run on the native stack the engine
//! declares), which an engine below Level 2 passes by refusing every
//! program with the reason. Some engines add program lists aimed at their own
//! mistakes and checks aimed at their own shape (long straight lines, far
//! assignments). The shared differential property test lives in `tests/`.
//!
//! Test names matter: `scripts/asan.sh` skips the stack-size tests by name
//! (`deep_programs`, `256_kib`, `long_straight_line`), so each check here is
//! a test of the same name.

use super::stack::on_native_stack;
use crate::engine::{Engine, Registered, RunError, Technique};
use crate::engines::walker::Walker;
use crate::front::ast::Expr;
use crate::front::compile_source;
use crate::front::program::{Level, MAX_DEPTH, Program};
use std::fmt::Display;

/// Small programs that catch the classic mistakes: evaluation order, `Set`
/// and `While` values, shadowing, wrapping, scopes inside loops.
pub const TRICKY: &[(&str, &[i64])] = &[
    ("", &[]),
    ("5", &[]),
    ("arg(2)", &[1, 2, 3]),
    ("let x = 1; (x = 5) + x", &[]),
    ("let x = 1; { x = 5; x } + x", &[]),
    ("let x = 1; x + { x = 5; x }", &[]),
    ("let x = 1; x + (x = 7) + x", &[]),
    ("let x = 3; while x { x = x + -1 }", &[]),
    ("let x = 3; (while x { x = x + -1 }) + 4", &[]),
    ("let x = 1; let x = x + 10; x", &[]),
    ("let x = 1; { let x = 20; x = x + 1 }; x", &[]),
    ("let x = 1; { let y = 20; x = y + 1; y }", &[]),
    (
        "let a = 1; let b = 2; let c = 3; a + b + c + { a = c; b = a; a + b }",
        &[],
    ),
    ("9223372036854775807 + 1", &[]),
    ("arg(0) + arg(0) + arg(0)", &[i64::MIN]),
    ("let x = { let y = 4; y + y }; x + x", &[]),
    (
        "let n = arg(0); let t = 0; while n { let k = n; t = t + k; n = n + -1 }; t",
        &[10],
    ),
    ("let n = arg(0); while n + 1 { n = n + -1 }; n", &[-5]),
    ("let n = arg(0); while n { n = n + -1 }; n", &[-5]),
    (
        "let i = 3; let s = 0; while i { let j = i; while j { s = s + j; j = j + -1 }; i = i + -1 }; s",
        &[],
    ),
    ("let x = 5; while { x = x + -1; x } { x = x + -1 }; x", &[]),
    ("let x = 0; let y = (x = 4) + (while 0 { }) + x; y + x", &[]),
    (
        "let x = 2; { x = x + x; x = x + x }; x + (x = 1) + { 7 }",
        &[],
    ),
    ("let x = 5; x; 3; arg(0); x = 2; x", &[1]),
    (
        "let a = 1; let b = { a = a + 1; a } + { let a = 100; a }; a + b",
        &[],
    ),
    ("{}", &[]),
    ("let x = 0; while x + -3 { }; 0", &[]),
];

/// Programs aimed at the mistakes register allocation and fusion invite
/// (run after [`TRICKY`]): reading a local in place while a later operand
/// stores to it, a destination clobbered before its old value is read,
/// scopes reusing registers, loop conditions fused with the body's last
/// store. For every register-allocating engine (`register_bytecode*`,
/// `tail_calls`, `jit`, `tape_continuations_fused`).
pub const REGISTER_TRICKY: &[(&str, &[i64])] = &[
    ("let x = 1; let y = 2; x = y + x; x", &[]),
    ("let x = 1; let y = 2; x = y + (x + 3); x", &[]),
    ("let x = 1; let y = 2; x = (y + 1) + x; x", &[]),
    ("let x = 1; let y = 2; x = (x + y) + (y + x); x", &[]),
    (
        "let x = 1; let y = 2; y = x + { x = 10; y } + x; x + y",
        &[],
    ),
    ("let x = 1; x = 3 + x; x", &[]),
    ("let x = 1; x = 3 + { x = 4; x }; x", &[]),
    ("let x = 1; x = { let y = x + 1; y + x }; x", &[]),
    ("let x = 1; x = { x = 9; 2 } + x; x", &[]),
    ("let x = 1; x = x + arg(0); x = arg(0) + x; x", &[5]),
    ("let x = 1; x = (x = 4) + x; x", &[]),
    ("let x = 3; while x { x = x + -1 }; x", &[]),
    (
        "let x = 3; let y = 0; while x { y = y + x; x = y + -100 }; x + y",
        &[],
    ),
    ("let x = 3; while x { x = -5 + x }; x", &[]),
    ("let x = 0; while x { x = x + -1 }; x", &[]),
    (
        "let x = 3; let y = 10; while x { x = y + -1; y = 0 }; x + y",
        &[],
    ),
    (
        "let x = 4; let y = 0; while x { y = y + x; x = x + -1; { let z = 1; z } }; y",
        &[],
    ),
    ("let x = 4; while x { let y = x; x = y + -1 }; x", &[]),
    ("let x = 2; while x { x = x + -1; x = x + 0 }; x", &[]),
    ("let x = 7; let y = 0; while y + x { y = y + -1 }; y", &[]),
    (
        "let x = 2; let y = 0; while x { x = x + -1; while y { } }; x",
        &[],
    ),
    (
        "let a = 1; let b = 2; a = b + (a + (b + (a + 1))); b = a + (b + -3); a + b",
        &[],
    ),
];

/// Programs for the continuation engines and `register_closures` (run after
/// [`TRICKY`]): evaluation order, shadowing, spills, values of
/// `Set`/`While`/`Let`, wrapping and loops, in longer chains and deeper
/// scopes.
pub const CONTINUATION_TRICKY: &[(&str, &[i64])] = &[
    ("let x = 1; { x = 5; x } + x", &[]),
    ("let x = 1; x + { x = x + 10; x } + x", &[]),
    ("let x = 1; let x = x + 10; { let x = x + 100; x } + x", &[]),
    ("let x = 3; (x = 4) + x", &[]),
    ("let n = 3; (while n { n = n + -1 }) + 7", &[]),
    ("9223372036854775807 + 1", &[]),
    ("-9223372036854775808 + -1 + arg(0)", &[-5]),
    ("1; 2; arg(0)", &[42]),
    ("let a = 1; let b = { let c = 7; c }; b + a", &[]),
    ("{ let y = 2; y } + { let z = 3; z + arg(0) }", &[4]),
    (
        "let a = 1; let b = 2; let c = 3; let d = 4; a = a + d; \
         b = { let e = 5; a = a + e; e + c }; \
         while d { let f = d; c = c + f + a; d = d + -1 }; a + b + c + d",
        &[],
    ),
    (
        "let n = arg(0); 1 + (n + { let m = n; while m { n = n + 1; m = m + -1 }; n })",
        &[5],
    ),
    (
        "let a = 3; let b = 0; let c = 0; while a { a = a + -1; b = b + { let t = a; t + t } }; b",
        &[],
    ),
    (
        "let i = 3; let s = 0; while { i = i + -1; i + 1 } { s = s + i }; s",
        &[],
    ),
    (
        "let s = 0; let i = arg(0); while i { let j = i; while j { s = s + j; j = j + -1 }; i = i + -1 }; s",
        &[6],
    ),
    ("while -5 { }; while 0 { }", &[]),
    (
        "let a = 1; let b = 2; let c = 3; let d = 4; let e = 5; a + b + c + d + e + { a = 10; e = 20; a + e }",
        &[],
    ),
    (
        "let a = arg(0); let b = arg(1); let c = a + b; { let d = c + a; let e = d + b; \
         a = e; { let f = a + b + c + d + e; b = f; c = f + f } }; a + b + c",
        &[3, 4],
    ),
    ("let x = 0; x + (while x { }) + (x = 9) + x", &[]),
    (
        "let a = 1; let b = 2; let c = 3; a = { let d = 4; let e = 5; a + b + c + d + e }; { let q = 1; b = q }; a + b + c",
        &[],
    ),
    (
        "let n = arg(0); let t = 0; while n { t = t + { let u = n; let v = u + u; let w = v + u; w }; n = n + -1 }; t",
        &[100],
    ),
    (
        "let x = 5; { let y = x; while y { let z = y; x = x + z; y = y + -1 } }; x",
        &[],
    ),
    ("{}", &[]),
    ("let a = 7; a = a + a; a", &[]),
    (
        "let a = 1; let b = 2; let c = 3; c = b; b = a; a = c; (a + b) + (c + (a + (b + c)))",
        &[],
    ),
    ("let a = 1; let b = 2; { let c = 3; a = 5 }; a + b", &[]),
    ("let a = 1; let b = 2; let c = 3; a + c", &[]),
    ("let a = 1; let b = 2; let c = 3; let d = 4; a", &[]),
    (
        "let a = 1; let b = 2; let c = { let d = 3; b = d + a; a = b + d; 0 }; a + b + c",
        &[],
    ),
    (
        "let a = 1; let b = 2; let c = 3; while a { let d = c; a = a + -1; c = d + b }; c",
        &[],
    ),
    (
        "let i = 3; let s = 0; while { let j = i; while j { s = s + 1; j = j + -1 }; \
         i = i + -1; i + 1 } { s = s + 100 }; s",
        &[],
    ),
    (
        "let x = 2; while { let y = x; x = x + -1; y } { x = x + 0 }; x",
        &[],
    ),
];

/// Programs for engines with an `Add`-of-a-literal handler (run after
/// [`TRICKY`]): the literal's sign and size, wrapping, the handler as the
/// first, last and only step of a chain, in loop conditions and bodies, with
/// a literal left operand, and with a nested right operand beside it.
pub const LITERAL_OPERANDS: &[(&str, &[i64])] = &[
    ("arg(0) + 1", &[41]),
    ("arg(0) + -1", &[-41]),
    ("arg(0) + 0", &[7]),
    ("arg(0) + 9223372036854775807", &[1]),
    ("arg(0) + -9223372036854775808", &[-1]),
    ("1 + 2", &[]),
    ("1 + arg(0)", &[5]),
    ("let x = arg(0); x = x + 3; x + 4 + 5", &[10]),
    ("let x = arg(0); while x + -2 { x = x + -1 }; x", &[9]),
    (
        "let x = arg(0); let t = 0; while x { t = t + 2 + x + -1; x = x + -1 }; t",
        &[6],
    ),
    ("let x = arg(0); x + (x + 1) + ((x + 2) + 3)", &[100]),
    (
        "let x = { arg(0) + 8 }; { let y = x + -8; y + y } + 1",
        &[3],
    ),
    ("{ let x = 5; x } + 1; (while 0 { }) + 2", &[]),
    ("let x = 1; (x = 4) + 6 + x", &[]),
];

fn walker_value(program: &Program, args: &[i64]) -> i64 {
    // SAFETY: the callers pass the arguments the program needs.
    unsafe { Walker::execute(&Walker::compile(program).unwrap(), args) }.unwrap()
}

fn engine_value<T: Technique>(program: &Program, args: &[i64]) -> i64 {
    let engine = &Registered::<T>::NEW;
    // On the stack an engine that recurses per guest call declares.
    on_native_stack(engine.native_stack(program), || {
        engine.compile(program).unwrap().execute(args).unwrap()
    })
}

/// `T` agrees with the walker on `program`, and `show` produces something.
fn check<T: Technique>(program: &Program, args: &[i64], what: impl Display) {
    let engine = &Registered::<T>::NEW;
    let code = engine.compile(program).unwrap();
    let shown = code.show();
    let got = on_native_stack(engine.native_stack(program), || {
        engine.compile(program).unwrap().execute(args).unwrap()
    });
    assert_eq!(
        got,
        walker_value(program, args),
        "{} disagrees with walker on {what} {args:?}\n{shown}",
        T::NAME
    );
    assert!(!shown.is_empty(), "{} shows nothing for {what}", T::NAME);
}

/// `T`'s listing (`show`) of the program `src`, without its header line:
/// for the tests of an engine's own listing.
pub fn listing<T: Technique>(src: &str) -> Vec<String> {
    let program = compile_source("listing", src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let shown = T::show(&T::compile(&program).unwrap());
    shown.lines().skip(1).map(str::to_owned).collect()
}

/// `T`'s whole listing (`show`) of the workload called `name`.
pub fn workload_listing<T: Technique>(name: &str) -> String {
    let program = crate::workloads::workload(name).unwrap().program().unwrap();
    T::show(&T::compile(&program).unwrap())
}

/// `T` agrees with the walker on [`TRICKY`], then on each `extra` list, and
/// on every workload: with its first argument (the trip count) cut to 50
/// against the walker, and with its own arguments against its expected
/// value.
pub fn agrees_with_walker<T: Technique>(extra: &[&[(&str, &[i64])]]) {
    for (src, args) in TRICKY.iter().chain(extra.iter().copied().flatten()) {
        let program = compile_source("tricky", src).unwrap_or_else(|e| panic!("{src}: {e}"));
        check::<T>(&program, args, src);
    }
    // Workloads run millions of steps: too slow under Miri.
    let workloads = if cfg!(miri) {
        &[][..]
    } else {
        crate::workloads::WORKLOADS
    };
    // Each engine on the workloads of the levels it runs.
    for w in workloads
        .iter()
        .filter(|w| w.program().unwrap().level() <= T::LEVEL)
    {
        let program = w.program().unwrap();
        let mut args = w.args();
        if let Some(a) = args.first_mut() {
            *a = (*a).min(50);
        }
        check::<T>(&program, &args, w.name);
        assert_eq!(
            engine_value::<T>(&program, &w.args()),
            w.expected(),
            "{} on {}",
            T::NAME,
            w.name
        );
    }
}

/// Programs exactly [`MAX_DEPTH`] deep, in every nesting shape, compile, run
/// and drop on a 2 MiB thread.
pub fn deep_programs_fit_in_2_mib<T: Technique>() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            type Wrap = fn(Expr) -> Expr;
            // (wrapper, how many levels it adds)
            let shapes: [(Wrap, usize); 9] = [
                (|e| Expr::add(e, Expr::Litr(1)), 1),
                (|e| Expr::add(Expr::Arg(0), e), 1),
                (|e| Expr::then(Expr::Litr(1), e), 1),
                (|e| Expr::then(e, Expr::Get(0)), 1),
                (|e| Expr::set(0, e), 1),
                (|e| Expr::let_(e, Expr::Get(0)), 1),
                (|e| Expr::let_(Expr::Arg(0), e), 1),
                (
                    |e| Expr::then(Expr::while_(Expr::Litr(0), e), Expr::Get(0)),
                    2,
                ),
                (
                    |e| {
                        Expr::let_(
                            Expr::Litr(1),
                            Expr::while_(Expr::Get(0), Expr::then(Expr::set(0, Expr::Litr(0)), e)),
                        )
                    },
                    3,
                ),
            ];
            for (i, (shape, levels)) in shapes.into_iter().enumerate() {
                // A leaf, wrappings, and an outer `Let` so `Get(0)`/`Set(0)`
                // are in scope: at most `MAX_DEPTH` levels in all.
                let mut e = Expr::Arg(0);
                for _ in 0..(MAX_DEPTH - 2) / levels {
                    e = shape(e);
                }
                let e = Expr::let_(Expr::Litr(3), e);
                let program = Program::validate(e).unwrap();
                assert!(program.depth() >= MAX_DEPTH - 1);
                check::<T>(&program, &[2], format_args!("deep shape {i}"));
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// More programs at the depth limit on a 2 MiB stack: right- and
/// left-nested sums, nested lets, nested loops.
pub fn deep_programs<T: Technique>() {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let leaf = || Expr::Get(0);
            let mut right = leaf();
            let mut left = leaf();
            for i in 0..MAX_DEPTH - 2 {
                right = Expr::add(Expr::Litr(i as i64), right);
                left = Expr::add(left, Expr::Arg(0));
            }
            let mut lets = Expr::add(Expr::Get(0), Expr::Get(MAX_DEPTH - 3));
            for i in 0..MAX_DEPTH - 2 {
                lets = Expr::let_(Expr::add(Expr::Litr(i as i64), Expr::Arg(0)), lets);
            }
            let mut loops = Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(1)));
            for _ in 0..MAX_DEPTH - 5 {
                loops = Expr::while_(Expr::Litr(0), loops);
            }
            for (what, body) in [("right", right), ("left", left)] {
                let p = Program::validate(Expr::let_(Expr::Arg(0), body)).unwrap();
                assert!(p.depth() >= MAX_DEPTH - 1, "{what}");
                check::<T>(&p, &[3], what);
            }
            let p = Program::validate(lets).unwrap();
            check::<T>(&p, &[3], "lets");
            let p = Program::validate(Expr::let_(Expr::Arg(0), Expr::then(loops, Expr::Get(0))))
                .unwrap();
            check::<T>(&p, &[3], "loops");
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A 10⁷-iteration loop on a 256 KiB thread: loop back-edges must not grow
/// the native stack.
pub fn long_loop_fits_in_256_kib<T: Technique>() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let program =
                compile_source("loop", "let n = arg(0); while n { n = n + -1 }; 7").unwrap();
            let n = if cfg!(miri) { 1_000 } else { 10_000_000 };
            assert_eq!(engine_value::<T>(&program, &[n]), 7);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A 10⁸-iteration loop on a 256 KiB thread
/// ([`super::stack::hundred_million_iterations`]). `tests/stack.rs` runs it on
/// every engine that relies on tail calls; the `become` engines also run it
/// in their unit tests, which CI runs at opt-level 0.
#[cfg(feature = "nightly")]
pub fn hundred_million_iterations<T: Technique>() {
    super::stack::hundred_million_iterations(&Registered::<T>::NEW);
}

/// A 200,000-step straight line compiled, run and dropped on a 256 KiB
/// thread ([`super::stack::long_straight_line`]).
pub fn long_straight_line<T: Technique>() {
    super::stack::long_straight_line(&Registered::<T>::NEW);
}

/// Assignments to locals `n` scopes out, for many `n`: the value must come
/// back out through every scope in between (registers shifting, spilling
/// and reloading on the way).
pub fn far_assignments<T: Technique>() {
    for n in [1, 2, 3, 4, 5, 62, 63, 64, 65, 70, 130] {
        // let x = arg(0); { let … (n lets) …; x = x + 7 + innermost }; x
        let mut inner = Expr::then(
            Expr::set(
                n,
                Expr::add(Expr::add(Expr::Get(n), Expr::Litr(7)), Expr::Get(0)),
            ),
            Expr::Get(n - 1),
        );
        for i in 0..n {
            inner = Expr::let_(Expr::add(Expr::Litr(i as i64), Expr::Get(0)), inner);
        }
        let e = Expr::let_(Expr::Arg(0), Expr::add(inner, Expr::Get(0)));
        let p = Program::validate(e).unwrap();
        check::<T>(&p, &[100], format_args!("assignment {n} scopes out"));
    }
}

/// What a Level-2 program gives: its value, or the run error.
type Answer = Result<i64, RunError>;

/// The run error of a program that needs more than `MAX_CALLS` active calls.
const DEPTH: Answer = Err(RunError::CallDepthExceeded);

/// `main` after `down`, whose `down(n)` makes `n + 1` calls active at once.
macro_rules! concat_down {
    ($main:literal) => {
        concat!(
            "fn down(n) { if 0 < n { down(n - 1) + 1 } else { 0 } } ",
            $main
        )
    };
}

/// Level-2 programs with their answers, as the language defines them: the
/// depth limit at 9,999, 10,000 and 10,001 active calls (through self and
/// mutual recursion, calls in loops, in loop conditions and in the
/// arguments of calls), calls as arguments of calls, `if` in conditions,
/// functions never called, `-` and `<` wrapping and signed, parameters
/// assigned (only the current call's copy changes), `arg(i)` inside
/// functions, and `if` without `else`.
pub const LEVEL_TWO: &[(&str, &[i64], Answer)] = &[
    (
        "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(arg(0))",
        &[20],
        Ok(6765),
    ),
    // The depth limit: `n + 1` calls active for `down(n)`.
    (concat_down!("down(arg(0))"), &[9_998], Ok(9_998)),
    (concat_down!("down(arg(0))"), &[9_999], Ok(9_999)),
    (concat_down!("down(arg(0))"), &[10_000], DEPTH),
    (concat_down!("down(arg(0))"), &[1_000_000], DEPTH),
    // Mutual recursion, to the limit and past it.
    (
        "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } } \
         fn odd(n) { if n < 1 { 0 } else { even(n - 1) } } even(arg(0))",
        &[10],
        Ok(1),
    ),
    (
        "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } } \
         fn odd(n) { if n < 1 { 0 } else { even(n - 1) } } even(arg(0))",
        &[9_999],
        Ok(0),
    ),
    (
        "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } } \
         fn odd(n) { if n < 1 { 0 } else { even(n - 1) } } even(arg(0))",
        &[10_000],
        DEPTH,
    ),
    // Calls return: a loop of calls each reaching the limit never exceeds it.
    (
        concat_down!("let i = arg(1); let t = 0; while i { t = t + down(arg(0)); i = i - 1 }; t"),
        &[9_999, 3],
        Ok(29_997),
    ),
    (
        concat_down!("let i = arg(1); let t = 0; while i { t = t + down(arg(0)); i = i - 1 }; t"),
        &[10_000, 3],
        DEPTH,
    ),
    // A call in the arguments of a call: `id` adds one active call on top
    // of `n + 1` downs.
    (
        "fn id(x) { x } fn down(n) { if 0 < n { id(down(n - 1) + 1) } else { id(0) } } down(arg(0))",
        &[9_998],
        Ok(9_998),
    ),
    (
        "fn id(x) { x } fn down(n) { if 0 < n { id(down(n - 1) + 1) } else { id(0) } } down(arg(0))",
        &[9_999],
        DEPTH,
    ),
    // Calls in loop bodies and loop conditions, at the limit and past it.
    (
        "fn down(n) { while 0 < n { n = down(n - 1) }; n } down(arg(0)) + 5",
        &[9_999],
        Ok(5),
    ),
    (
        "fn down(n) { while 0 < n { n = down(n - 1) }; n } down(arg(0)) + 5",
        &[10_000],
        DEPTH,
    ),
    (
        "fn c(n) { if 0 < n { c(n - 1) } else { 0 } } while c(arg(0)) { }; 7",
        &[9_999],
        Ok(7),
    ),
    (
        "fn c(n) { if 0 < n { c(n - 1) } else { 0 } } while c(arg(0)) { }; 7",
        &[10_000],
        DEPTH,
    ),
    // Recursion without end always fails, wherever the call sits.
    (
        "fn f(n) { if f(n - 1) < 0 { 1 } else { 2 } } f(0)",
        &[],
        DEPTH,
    ),
    ("fn f() { 1 + f() } 5", &[], Ok(5)),
    ("fn f() { 1 + f() } 5 + f()", &[], DEPTH),
    // Calls in loop conditions.
    (
        "fn pos(x) { 0 < x } fn dec(x) { x - 1 } \
         let n = arg(0); let c = 0; while pos(n) { n = dec(n); c = c + 2 }; c + n",
        &[5],
        Ok(10),
    ),
    (
        "fn pos(x) { 0 < x } fn dec(x) { x - 1 } \
         let n = arg(0); let c = 0; while pos(n) { n = dec(n); c = c + 2 }; c + n",
        &[-3],
        Ok(-3),
    ),
    // Calls as arguments of calls.
    (
        "fn add(a, b) { a + b } fn neg(x) { 0 - x } \
         add(add(arg(0), neg(arg(1))), add(neg(add(1, 2)), arg(1)))",
        &[10, 4],
        Ok(7),
    ),
    // `if` in conditions, of loops and of `if`s.
    (
        "let x = arg(0); let n = 0; while if x < 3 { 0 } else { x } { x = x - 1; n = n + 1 }; n + x",
        &[10],
        Ok(10),
    ),
    (
        "if if arg(0) < 0 { 0 } else { 1 } { 100 } else { 200 }",
        &[-5],
        Ok(200),
    ),
    (
        "if if arg(0) < 0 { 0 } else { 1 } { 100 } else { 200 }",
        &[5],
        Ok(100),
    ),
    // `if` without `else` is worth 0; `else if` chains.
    (
        "(if 0 { 5 }) + (if 1 { 7 }) + (if -1 { 100 } else if arg(0) { 1000 } else { 10000 })",
        &[1],
        Ok(1007),
    ),
    (
        "(if 0 { 5 }) + (if 1 { 7 }) + (if -1 { 100 } else if arg(0) { 1000 } else { 10000 })",
        &[0],
        Ok(10007),
    ),
    // Functions never called: their `arg(3)` still needs four arguments,
    // and their endless recursion never runs.
    (
        "fn never(a, b) { never(a, b) + arg(3) } fn used(x) { x + 1 } used(arg(0))",
        &[41, 0, 0, 0],
        Ok(42),
    ),
    // `-` and `<`: wrapping, signed, left to right.
    ("-9223372036854775808 - 1", &[], Ok(i64::MAX)),
    ("9223372036854775807 - -1", &[], Ok(i64::MIN)),
    ("arg(0) - arg(1)", &[i64::MIN, 1], Ok(i64::MAX)),
    ("arg(0) - arg(1)", &[i64::MAX, -1], Ok(i64::MIN)),
    (
        "(-1 < 0) + (0 < -1) + (arg(0) < arg(1)) + (arg(1) < arg(0)) + (arg(0) < arg(0))",
        &[i64::MIN, i64::MAX],
        Ok(2),
    ),
    ("let x = 9223372036854775807; x + 1 < x", &[], Ok(1)),
    ("5 - 3 - 1", &[], Ok(1)),
    ("let x = 5; x - -1 - x", &[], Ok(1)),
    ("1 - (arg(0) < 3)", &[2], Ok(0)),
    ("let x = 1; (x = 5) - x + { x = 7; x } - x", &[], Ok(-5)),
    // Parameters assigned: only the current call's copy changes.
    (
        "fn f(a, b) { a = a + 10; b = a + b; a + b } let x = 1; f(x, x) + x",
        &[],
        Ok(24),
    ),
    (
        "fn g(n) { if 0 < n { let m = n; n = 0; g(m - 1) + n + m } else { n } } g(arg(0))",
        &[3],
        Ok(6),
    ),
    (
        "fn clobber(a) { a = 99; a } let a = 5; clobber(a) + a",
        &[],
        Ok(104),
    ),
    (
        "fn f(a, b) { let c = a - b; let d = c + b; d - a + c } f(10, 3)",
        &[],
        Ok(7),
    ),
    // Sixteen parameters, in order.
    (
        "fn s(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p) \
         { a - b - c - d - e - f - g - h - i - j - k - l - m - n - o - p } \
         s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)",
        &[],
        Ok(-134),
    ),
    (
        "fn pick(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p) { a - p + h } \
         pick(arg(0), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, arg(1))",
        &[1, 16],
        Ok(-7),
    ),
    // `arg(i)` inside functions reads the run's arguments.
    (
        "fn f(x) { x + arg(1) } fn g() { arg(0) - f(arg(2)) } g() + f(0)",
        &[10, 20, 30],
        Ok(-20),
    ),
    // Calls in `let`, in assignments, in loops; loops in functions.
    (
        "fn sq(x) { let t = 0; let i = x; while i { t = t + x; i = i - 1 }; t } \
         let s = 0; let k = arg(0); while k { s = s + sq(k); k = k - 1 }; s",
        &[4],
        Ok(30),
    ),
    (
        "fn tri(n) { if n < 1 { 0 } else { n + tri(n - 1) } } \
         let i = 0; let t = 0; while i < arg(0) { t = t + tri(i); i = i + 1 }; t",
        &[5],
        Ok(20),
    ),
    // A function and a local may share a name.
    ("fn x(x) { x + 1 } let x = 4; x(x)", &[], Ok(5)),
    ("fn f() { 1 } f() + f()", &[], Ok(2)),
];

/// Calls nested `levels` deep in the body, 10,000 and 10,001 active: the
/// native stack a recursive engine declares must grow with the nesting of
/// its bodies, not only with the number of calls.
pub fn deep_call_sites(levels: usize) -> [(String, i64, Answer); 2] {
    let nested = "(1 + ".repeat(levels) + "deep(n - 1)" + &")".repeat(levels);
    let src = format!("fn deep(n) {{ if 0 < n {{ {nested} }} else {{ 0 }} }} deep(arg(0))");
    let each = levels as i64;
    [(src.clone(), 9_999, Ok(9_999 * each)), (src, 10_000, DEPTH)]
}

/// `T` gives each [`LEVEL_TWO`] program's answer, and walker's, on
/// the native stack each declares for it; an engine below Level 2 refuses
/// every one with the reason instead.
pub fn level_two<T: Technique>() {
    let deep = deep_call_sites(20);
    let deep = deep
        .iter()
        .map(|(s, a, want)| (s.as_str(), std::slice::from_ref(a), *want));
    for (src, args, want) in LEVEL_TWO.iter().copied().chain(deep) {
        let program = compile_source("level two", src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let engine = &Registered::<T>::NEW;
        if T::LEVEL < Level::Two {
            let why = engine.supports(&program).unwrap_err();
            assert!(why.contains("Level 2"), "{}: {why}", T::NAME);
            continue;
        }
        let walker = &Registered::<Walker>::NEW;
        let runs: [(&dyn Engine, &str); 2] = [(walker, "walker"), (engine, T::NAME)];
        for (e, who) in runs {
            let got = on_native_stack(e.native_stack(&program), || {
                e.compile(&program).unwrap().execute(args)
            });
            assert_eq!(got, want, "{who} on {src} {args:?}");
        }
    }
}

/// Expands, inside an engine's `#[cfg(test)] mod tests`, to one `#[test]`
/// per check of this module, each named like its check:
///
/// ```ignore
/// conformance_tests!(Bytecode);
/// conformance_tests!(Jit, extra: [REGISTER_TRICKY]);
/// conformance_tests!(
///     TapeContinuations,
///     extra: [CONTINUATION_TRICKY],
///     also: [deep_programs, long_straight_line, far_assignments],
/// );
/// ```
///
/// The standard set is `agrees_with_walker`, `deep_programs_fit_in_2_mib`,
/// `long_loop_fits_in_256_kib` and `level_two` (which an engine below
/// Level 2 passes by refusing every program with the reason); `extra` names more program lists of this
/// module for `agrees_with_walker`, `also` more checks of this module.
/// `closure_chains`, `tail_calling` and `guaranteed_tail_calls` (in place of
/// `extra` and `also`) name the sets that families of engines share.
macro_rules! conformance_tests {
    // The closure engines that keep locals in closure arguments or chains of
    // steps (`register_closures` and the continuation closures): continuation
    // and literal-operand programs, and deep, long and far-reaching code.
    ($engine:ty, closure_chains $(,)?) => {
        $crate::reference::conformance::conformance_tests!(
            $engine,
            extra: [CONTINUATION_TRICKY, LITERAL_OPERANDS],
            also: [deep_programs, long_straight_line, far_assignments],
        );
    };
    // Engines whose every edge, back-edges included, is a tail call (the
    // register-threaded engines and the `become` engines): register and
    // continuation programs, and the stack checks that such calls need
    // (`tests/stack.rs` adds the 10^8-iteration loop for all of them).
    ($engine:ty, tail_calling $(,)?) => {
        $crate::reference::conformance::conformance_tests!(
            $engine,
            extra: [REGISTER_TRICKY, CONTINUATION_TRICKY],
            also: [deep_programs, long_straight_line, far_assignments],
        );
    };
    // The `become` engines (nightly only) also run the 10^8-iteration loop in
    // their unit tests, which CI runs at opt-level 0.
    ($engine:ty, guaranteed_tail_calls $(,)?) => {
        $crate::reference::conformance::conformance_tests!($engine, tail_calling);

        #[test]
        fn hundred_million_iterations() {
            $crate::reference::conformance::hundred_million_iterations::<$engine>();
        }
    };
    (
        $engine:ty
        $(, extra: [$($extra:ident),* $(,)?])?
        $(, also: [$($check:ident),* $(,)?])?
        $(,)?
    ) => {
        #[test]
        fn agrees_with_walker() {
            $crate::reference::conformance::agrees_with_walker::<$engine>(&[
                $($($crate::reference::conformance::$extra),*)?
            ]);
        }

        #[test]
        fn deep_programs_fit_in_2_mib() {
            $crate::reference::conformance::deep_programs_fit_in_2_mib::<$engine>();
        }

        #[test]
        fn long_loop_fits_in_256_kib() {
            $crate::reference::conformance::long_loop_fits_in_256_kib::<$engine>();
        }

        #[test]
        fn level_two() {
            $crate::reference::conformance::level_two::<$engine>();
        }

        $($(
            #[test]
            fn $check() {
                $crate::reference::conformance::$check::<$engine>();
            }
        )*)?
    };
}
pub(crate) use conformance_tests;

/// The reference itself: walker (and the budgeted walker) give every
/// [`LEVEL_TWO`] answer the language defines.
#[test]
fn walker_gives_the_level_two_answers() {
    level_two::<Walker>();
    for (src, args, want) in LEVEL_TWO {
        let program = compile_source("level two", src).unwrap();
        let traced = super::trace(&program, args, u64::MAX).unwrap();
        assert_eq!(traced.answer(), *want, "budgeted walker on {src} {args:?}");
    }
}
