//! Stack safety for every engine (rule 4): a 10⁷-iteration loop on a thread
//! with a 256 KiB stack, and programs nested to the depth limit on a 2 MiB
//! stack (the default for test threads). The engines that rely on tail calls
//! ([`Engine::relies_on_tail_calls`]) also run a 10⁸-iteration loop and a
//! 200,000-step straight line on 256 KiB ([`vm_perf::reference::stack`]),
//! and the last tests prove those checks fail on engines whose calls are not
//! tail calls. Guest calls: every Level-2 engine meets the call limit
//! exactly (10,000 active calls succeed, 10,001 fail) on exactly the native
//! stack it declares. Every thread here sets its own stack size. CI runs this file
//! in the test profile and in release.

use vm_perf::engine::{CompileError, Engine, Registered, Technique, Tier};
use vm_perf::engines::walker::Walker;
use vm_perf::front::printer::print;
use vm_perf::reference::stack;
use vm_perf::{Expr, Function, MAX_CALLS, MAX_DEPTH, Program, RunError, Source, engines};

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

/// Active calls at the limit: the call that would make one more fails.
const LIMIT: i64 = MAX_CALLS as i64;

/// `fn deep(n) { if 0 < n { 1 + (1 + … deep(n - 1)) } else { 0 } }`, the
/// call `levels` additions deep in the body; `deep(n)` makes `n + 1`
/// calls active and is worth `n × levels`.
fn countdown(levels: usize) -> Program {
    let mut e = Expr::call(0, vec![Expr::sub(Expr::Get(0), Expr::Litr(1))]);
    for _ in 0..levels {
        e = Expr::add(Expr::Litr(1), e);
    }
    let body = Expr::if_(Expr::lt(Expr::Litr(0), Expr::Get(0)), e, Expr::Litr(0));
    let deep = Function {
        name: "deep".into(),
        params: vec!["n".into()],
        body,
    };
    Program::validate(Source {
        functions: vec![deep],
        main: Expr::call(0, vec![Expr::Arg(0)]),
    })
    .unwrap()
}

/// Nesting of the call site in [`the_call_limit_holds_on_exactly_the_declared_stack`]:
/// shallow, and deep enough that the stack a recursive engine declares must
/// grow with it.
const CALL_SITE_NESTING: [usize; 2] = [1, 100];

/// Exactly 10,000 active calls succeed and 10,001 fail with *call depth
/// exceeded*, the calls nested `levels` deep in the body, on a thread of
/// exactly the native stack `engine` declares for the program
/// ([`Engine::native_stack`]; an engine that declares none, on 256 KiB:
/// its frames are in its own memory). Returns what it declared.
fn call_limit_on_the_declared_stack(engine: &dyn Engine, levels: usize) -> usize {
    let program = countdown(levels);
    let declared = engine.native_stack(&program);
    let bytes = if declared == 0 { 256 * 1024 } else { declared };
    for (fuel, want) in [
        (LIMIT - 1, Ok((LIMIT - 1) * levels as i64)),
        (LIMIT, Err(RunError::CallDepthExceeded)),
    ] {
        let name = limit_thread(engine.name(), fuel + 1, levels, bytes);
        let got = stack::on_stack(name, bytes, || {
            engine.compile(&program).unwrap().execute(&[fuel])
        });
        assert_eq!(got, want, "{} on {} calls", engine.name(), fuel + 1);
    }
    declared
}

fn limit_thread(engine: &str, calls: i64, levels: usize, bytes: usize) -> String {
    format!("{engine}: {calls} calls nested {levels} deep on {bytes} bytes")
}

/// Every engine that runs Level 2 meets the call limit on exactly the stack
/// it declares. CI runs this in release too.
#[test]
fn the_call_limit_holds_on_exactly_the_declared_stack() {
    let mut recursive = 0;
    for levels in CALL_SITE_NESTING {
        for engine in engines() {
            if engine.supports(&countdown(levels)).is_ok() {
                let declared = call_limit_on_the_declared_stack(*engine, levels);
                recursive += usize::from(declared > 0);
            }
        }
    }
    // Walker recurses natively per call: it declares a stack.
    assert!(recursive >= CALL_SITE_NESTING.len(), "{recursive}");
}

/// `walker`, declaring a thirty-second of the stack it declares (which
/// keeps a margin of two, four times that in builds with debug assertions):
/// right about every value, wrong about its stack.
struct UnderDeclared;

impl Technique for UnderDeclared {
    const NAME: &'static str = "UnderDeclared";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "walker declaring too little stack";
    const LEVEL: vm_perf::Level = vm_perf::Level::Two;
    type Code = Program;
    fn compile(p: &Program) -> Result<Program, CompileError> {
        Walker::compile(p)
    }
    unsafe fn execute(p: &Program, args: &[i64]) -> Result<i64, vm_perf::CallDepthExceeded> {
        // SAFETY: this function's contract is `Walker::execute`'s.
        unsafe { Walker::execute(p, args) }
    }
    fn native_stack(p: &Program) -> usize {
        Walker::native_stack(p) / 32
    }
    fn show(p: &Program) -> String {
        Walker::show(p)
    }
}

#[test]
fn the_call_limit_check_catches_an_engine_that_declares_too_little() {
    let deepest = CALL_SITE_NESTING[CALL_SITE_NESTING.len() - 1];
    let engine = &Registered::<UnderDeclared>::NEW;
    let bytes = engine.native_stack(&countdown(deepest));
    must_catch(
        "the_call_limit_check_catches_an_engine_that_declares_too_little",
        engine,
        |e| {
            call_limit_on_the_declared_stack(e, CALL_SITE_NESTING[CALL_SITE_NESTING.len() - 1]);
        },
        (
            "fn f(n) { if 0 < n { f(n - 1) + 1 } else { 0 } } f(arg(0))",
            5,
            5,
        ),
        &limit_thread("UnderDeclared", LIMIT, deepest, bytes),
    );
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
