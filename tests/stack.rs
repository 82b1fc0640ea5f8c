//! Stack safety for every engine (rule 4): a 10⁷-iteration loop on a thread
//! with a 256 KiB stack, and programs nested to the depth limit on a 2 MiB
//! stack (the default for test threads). CI runs this file in the test
//! profile and in release.

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
            assert_eq!(parsed, expr, "{shape}");
        }
        let too_deep = "(".repeat(MAX_DEPTH + 1) + "1" + &")".repeat(MAX_DEPTH + 1);
        assert!(vm_perf::front::parser::parse(&too_deep).is_err());
    });
}
