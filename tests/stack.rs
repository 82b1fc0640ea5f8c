//! Stack safety for every engine (rule 4): a 10⁷-iteration loop on a thread
//! with a 256 KiB stack, and programs nested to the depth limit on a 2 MiB
//! stack (the default for test threads). The engines that rely on tail calls
//! ([`Engine::relies_on_tail_calls`]) also run a 10⁸-iteration loop and a
//! 200,000-step straight line on 256 KiB ([`vm_perf::reference::stack`]),
//! and the last tests prove those checks fail on engines whose calls are not
//! tail calls. Every thread here sets its own stack size. CI runs this file
//! in the test profile and in release.

use vm_perf::engine::{CompileError, Engine, Registered, Technique, Tier};
use vm_perf::front::printer::print;
use vm_perf::reference::stack;
use vm_perf::{Expr, MAX_DEPTH, Program, engines};

fn on_stack<T: Send + 'static>(bytes: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn ten_million_iterations_on_a_256_kib_stack() {
    // let n = arg(0); let total = 0; while n { total = total + n; n = n + -1 }; total
    let src = "let n = arg(0); let total = 0; while n { total = total + n; n = n + -1 } total";
    let program = vm_perf::front::compile_source("loop", src).unwrap();
    let n: i64 = 10_000_000;
    for engine in engines() {
        if engine.supports(&program).is_err() {
            continue;
        }
        let p = program.clone();
        let name = engine.name();
        let got = on_stack(256 * 1024, move || {
            let engine = vm_perf::engine(name).unwrap();
            engine.compile(&p).unwrap().execute(&[n]).unwrap()
        });
        assert_eq!(got, n * (n + 1) / 2, "engine {name}");
    }
}

/// Programs of exactly `MAX_DEPTH` levels, in every shape that nests.
fn deep_programs() -> Vec<(&'static str, Expr, i64)> {
    let n = MAX_DEPTH;
    let mut shapes = Vec::new();
    // ((1 + 1) + 1) + …
    let mut e = Expr::Litr(1);
    for _ in 1..n {
        e = Expr::add(e, Expr::Litr(1));
    }
    shapes.push(("left-nested sum", e, n as i64));
    // 1 + (1 + (1 + …)): every operand stays live at once.
    let mut e = Expr::Litr(1);
    for _ in 1..n {
        e = Expr::add(Expr::Litr(1), e);
    }
    shapes.push(("right-nested sum", e, n as i64));
    // let a = 1; let b = a + …: one local per level, all live.
    let mut e = Expr::Get(0);
    for _ in 1..n / 2 {
        e = Expr::let_(Expr::Litr(1), Expr::add(Expr::Get(0), e));
    }
    let e = Expr::let_(Expr::Litr(1), e);
    let depth_sum = (n / 2) as i64;
    shapes.push(("nested lets", e, depth_sum));
    // while loops inside while loops, each running once.
    let mut e = Expr::Litr(0);
    for _ in 0..(n - 1) / 6 {
        e = Expr::let_(
            Expr::Litr(1),
            Expr::while_(Expr::Get(0), Expr::then(Expr::set(0, Expr::Litr(0)), e)),
        );
    }
    shapes.push(("nested loops", Expr::then(e, Expr::Litr(5)), 5));
    // Then chains and nested sets.
    let mut e = Expr::Litr(3);
    for _ in 1..n - 1 {
        e = Expr::then(Expr::Litr(0), e);
    }
    shapes.push(("sequence", e, 3));
    shapes
}

#[test]
fn programs_at_the_depth_limit_run_on_a_2_mib_stack() {
    for (shape, expr, want) in deep_programs() {
        let program = Program::validate(expr).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert!(program.depth() <= MAX_DEPTH);
        for engine in engines() {
            if engine.supports(&program).is_err() {
                continue;
            }
            let p = program.clone();
            let name = engine.name();
            let got = on_stack(2 * 1024 * 1024, move || {
                let engine = vm_perf::engine(name).unwrap();
                let code = engine.compile(&p).unwrap();
                let value = code.execute(&[]).unwrap();
                drop(code);
                value
            });
            assert_eq!(got, want, "engine {name} on {shape}");
        }
    }
}

#[test]
fn the_front_end_handles_the_limit_on_a_2_mib_stack() {
    on_stack(2 * 1024 * 1024, || {
        for (shape, expr, _) in deep_programs() {
            let text = vm_perf::front::printer::print(&expr);
            let parsed =
                vm_perf::front::parser::parse(&text).unwrap_or_else(|e| panic!("{shape}: {e}"));
            assert_eq!(parsed.main, expr, "{shape}");
        }
        let too_deep = "(".repeat(MAX_DEPTH + 1) + "1" + &")".repeat(MAX_DEPTH + 1);
        assert!(vm_perf::front::parser::parse(&too_deep).is_err());
    });
}

fn tail_calling() -> Vec<&'static dyn Engine> {
    engines()
        .iter()
        .copied()
        .filter(|e| e.relies_on_tail_calls())
        .collect()
}

#[test]
fn continuation_engines_declare_that_they_rely_on_tail_calls() {
    // A new continuation engine that forgot `TAIL_CALLS` would skip the
    // checks below unnoticed.
    for engine in engines() {
        let name = engine.name();
        if name.contains("continuations") || name.contains("tail_calls") {
            assert!(engine.relies_on_tail_calls(), "{name}");
        }
    }
    assert!(!tail_calling().is_empty());
}

#[test]
fn tail_calling_engines_run_a_hundred_million_iterations_on_256_kib() {
    for engine in tail_calling() {
        stack::hundred_million_iterations(engine);
    }
}

#[test]
fn tail_calling_engines_run_a_long_straight_line_on_256_kib() {
    for engine in tail_calling() {
        stack::long_straight_line(engine);
    }
}

// ---- The checks can fail: engines whose calls are not tail calls. ----

/// Where a deliberately wrong engine makes a call that is not a tail call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recursion {
    /// Each loop iteration calls the next one and uses its result.
    Loop,
    /// Each step of a `Then` chain calls the rest of the chain likewise.
    Chain,
}

/// A walker that is right about every value, but whose loop (or chain of
/// steps) continues by a call with work after it, so the stack grows per
/// iteration (or per step) however the compiler optimises.
fn eval(e: &Expr, args: &[i64], locals: &mut Vec<i64>, how: Recursion) -> i64 {
    match e {
        Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
            unreachable!("Level 2 is refused before compile")
        }
        Expr::Litr(n) => *n,
        Expr::Arg(i) => args[*i],
        Expr::Get(d) => locals[locals.len() - 1 - d],
        Expr::Add(a, b) => {
            let a = eval(a, args, locals, how);
            a.wrapping_add(eval(b, args, locals, how))
        }
        Expr::Let(init, body) => {
            let v = eval(init, args, locals, how);
            locals.push(v);
            let r = eval(body, args, locals, how);
            locals.pop();
            r
        }
        Expr::Set(d, v) => {
            let v = eval(v, args, locals, how);
            let slot = locals.len() - 1 - d;
            locals[slot] = v;
            0
        }
        Expr::While(c, b) if how == Recursion::Loop => {
            fn iterate(c: &Expr, b: &Expr, args: &[i64], locals: &mut Vec<i64>) -> i64 {
                if eval(c, args, locals, Recursion::Loop) <= 0 {
                    return 0;
                }
                eval(b, args, locals, Recursion::Loop);
                // Not a tail call: the result goes through `black_box`.
                std::hint::black_box(iterate(c, b, args, locals))
            }
            iterate(c, b, args, locals)
        }
        Expr::While(c, b) => {
            while eval(c, args, locals, how) > 0 {
                eval(b, args, locals, how);
            }
            0
        }
        Expr::Then(..) if how == Recursion::Chain => {
            fn leaves<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
                match e {
                    Expr::Then(a, b) => {
                        leaves(a, out);
                        leaves(b, out);
                    }
                    leaf => out.push(leaf),
                }
            }
            fn run(steps: &[&Expr], args: &[i64], locals: &mut Vec<i64>) -> i64 {
                let v = eval(steps[0], args, locals, Recursion::Chain);
                match steps {
                    [_] => v,
                    // Not a tail call: the result goes through `black_box`.
                    [_, rest @ ..] => std::hint::black_box(run(rest, args, locals)),
                    [] => unreachable!("a chain has a step"),
                }
            }
            let mut steps = Vec::new();
            leaves(e, &mut steps);
            run(&steps, args, locals)
        }
        Expr::Then(a, b) => {
            eval(a, args, locals, how);
            eval(b, args, locals, how)
        }
    }
}

/// The deliberately wrong engine: recursing per loop iteration when `LOOP`,
/// else per step of a chain.
struct Recursing<const LOOP: bool>;

impl<const LOOP: bool> Technique for Recursing<LOOP> {
    const NAME: &'static str = if LOOP {
        "RecursingLoop"
    } else {
        "RecursingChain"
    };
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "deliberately not tail-calling";
    const TAIL_CALLS: bool = true;
    type Code = Program;
    fn compile(p: &Program) -> Result<Program, CompileError> {
        Ok(p.clone())
    }
    unsafe fn execute(p: &Program, args: &[i64]) -> Result<i64, vm_perf::CallDepthExceeded> {
        let how = if LOOP {
            Recursion::Loop
        } else {
            Recursion::Chain
        };
        Ok(eval(p.expr(), args, &mut Vec::new(), how))
    }
    fn show(p: &Program) -> String {
        print(p.expr())
    }
}

/// Set in the child process [`must_catch`] starts.
const CHILD: &str = "VM_PERF_STACK_CHECK_CHILD";

/// Proves that `check` catches `engine`, which is right (`small` runs on it
/// and gives its value) but not tail-calling: in a child process (this test
/// binary, running only `test`, which calls back here) the check must
/// overflow the stack of its thread, named `thread`. In the child, this
/// runs the check.
fn must_catch(
    test: &str,
    engine: &dyn Engine,
    check: fn(&dyn Engine),
    small: (&str, i64, i64),
    thread: &str,
) {
    let (source, arg, value) = small;
    let program = vm_perf::front::compile_source("small", source).unwrap();
    assert_eq!(engine.compile(&program).unwrap().execute(&[arg]), Ok(value));
    if std::env::var_os(CHILD).is_some() {
        return check(engine);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{} passed a check it must fail:\n{stderr}",
        engine.name()
    );
    let thread = format!("thread '{thread}'");
    assert!(
        stderr.contains(&thread) && stderr.contains("has overflowed its stack"),
        "{stderr}"
    );
}

#[test]
fn the_loop_check_catches_a_back_edge_that_is_not_a_tail_call() {
    must_catch(
        "the_loop_check_catches_a_back_edge_that_is_not_a_tail_call",
        &Registered::<Recursing<true>>::NEW,
        stack::hundred_million_iterations,
        (
            "let n = arg(0); let t = 0; while n { t = t + 2; n = n + -1 }; t",
            1000,
            2000,
        ),
        "RecursingLoop: 10^8 iterations on a 256 KiB stack",
    );
}

#[test]
fn the_line_check_catches_a_chain_that_is_not_tail_calls() {
    must_catch(
        "the_line_check_catches_a_chain_that_is_not_tail_calls",
        &Registered::<Recursing<false>>::NEW,
        stack::long_straight_line,
        ("let x = arg(0); x = x + 1; x = x + 1; x = x + 1; x", 4, 7),
        "RecursingChain: a 200,000-step line on a 256 KiB stack",
    );
}
