//! Unit-test checks every engine module runs on itself (test builds only):
//! agreement with `walker` on hand-written tricky programs and on every
//! workload, deep programs on a 2 MiB stack, and a 10⁷-iteration loop on a
//! 256 KiB stack. The shared differential property test lives in `tests/`.

use crate::engine::{Engine, Registered, Technique};
use crate::engines::walker::Walker;
use crate::front::ast::Expr;
use crate::front::compile_source;
use crate::front::program::{MAX_DEPTH, Program};

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

fn walker_value(program: &Program, args: &[i64]) -> i64 {
    // SAFETY: the callers pass the arguments the program needs.
    unsafe { Walker::execute(&Walker::compile(program).unwrap(), args) }
}

fn engine_value<T: Technique>(program: &Program, args: &[i64]) -> i64 {
    let code = Registered::<T>::NEW.compile(program).unwrap();
    code.execute(args).unwrap()
}

/// `T` agrees with the walker on [`TRICKY`], on extra programs and on every
/// workload, and `show` produces something for each.
pub fn agrees_with_walker<T: Technique>(extra: &[(&str, &[i64])]) {
    for (src, args) in TRICKY.iter().chain(extra) {
        let program = compile_source("tricky", src).unwrap();
        assert_eq!(
            engine_value::<T>(&program, args),
            walker_value(&program, args),
            "{} on {src:?} {args:?}",
            T::NAME
        );
        let code = T::compile(&program).unwrap();
        assert!(!T::show(&code).is_empty());
    }
    // Workloads run millions of steps: too slow under Miri.
    let workloads = if cfg!(miri) {
        &[][..]
    } else {
        crate::workloads::WORKLOADS
    };
    for w in workloads {
        let program = w.program().unwrap();
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
            for (shape, levels) in shapes {
                // A leaf, wrappings, and an outer `Let` so `Get(0)`/`Set(0)`
                // are in scope: at most `MAX_DEPTH` levels in all.
                let mut e = Expr::Arg(0);
                for _ in 0..(MAX_DEPTH - 2) / levels {
                    e = shape(e);
                }
                let e = Expr::let_(Expr::Litr(3), e);
                let program = Program::validate(e).unwrap();
                assert!(program.depth() >= MAX_DEPTH - 1);
                let args = [2];
                assert_eq!(
                    engine_value::<T>(&program, &args),
                    walker_value(&program, &args)
                );
                let code = T::compile(&program).unwrap();
                assert!(!T::show(&code).is_empty());
            }
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
