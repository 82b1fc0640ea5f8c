//! Every registered engine against `walker`: on every workload and on
//! thousands of random valid, terminating programs (see `vm_perf::random`).
//! A last test proves the checker itself can fail: deliberately wrong
//! engines are caught.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use vm_perf::engine::{CompileError, Engine, Registered, Technique, Tier};
use vm_perf::front::printer::print;
use vm_perf::random::{seeded, shape_for_seed};
use vm_perf::reference::check::{Outcome, compare};
use vm_perf::reference::stack::on_native_stack;
use vm_perf::reference::{held_to_walker, magnitude};
use vm_perf::workloads::WORKLOADS;
use vm_perf::{Expr, Program, engines};

const BUDGET: u64 = 5_000_000;

/// Checks every engine on one generated program; the error names the engine
/// and shows the program as text. `Ok`: the engines compared with walker
/// (none when walker needs more than `BUDGET` steps).
fn check_all(engines: &[&dyn Engine], seed: u64) -> Result<Vec<&'static str>, String> {
    let (expr, args) = seeded(seed);
    let text = print(&expr);
    let program =
        Program::validate(expr).map_err(|e| format!("generator made an invalid program: {e}"))?;
    let mut compared = Vec::new();
    for engine in engines {
        match compare(*engine, &program, &args, BUDGET) {
            Outcome::Agree(_) => compared.push(engine.name()),
            Outcome::Skipped(_) => {}
            mismatch => {
                return Err(format!(
                    "engine `{}` on seed {seed}, args {args:?}: {mismatch}\n{text}",
                    engine.name()
                ));
            }
        }
    }
    Ok(compared)
}

#[test]
fn every_engine_gives_every_workloads_expected_value() {
    for w in WORKLOADS {
        let program = w.program().unwrap();
        let magnitude = magnitude(&program, &w.args());
        for engine in engines() {
            if held_to_walker(*engine, &program, magnitude).is_err() {
                continue;
            }
            // On the native stack the engine declares (walker recurses per
            // guest call, `deep_recursion` to the limit).
            let got = on_native_stack(engine.native_stack(&program), || {
                let code = engine
                    .compile(&program)
                    .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
                code.execute(&w.args())
            })
            .unwrap();
            assert_eq!(
                got,
                w.expected(),
                "engine {} on workload {}",
                engine.name(),
                w.name
            );
        }
    }
}

proptest! {
    // 10,000 random programs per run, each on every engine.
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_engine_agrees_with_walker_on_random_programs(seed in any::<u64>()) {
        match check_all(engines(), seed) {
            Err(e) => prop_assert!(false, "{}", e),
            Ok(compared) => {
                if let Some(missed) = missed(&compared) {
                    prop_assert!(false, "{} was not compared on seed {}", missed, seed);
                }
            }
        }
    }
}

/// An engine that must have been compared whenever walker finished (one
/// without an exact range that is not a peer: nothing exempts it) but was not.
fn missed(compared: &[&str]) -> Option<&'static str> {
    if compared.is_empty() {
        return None; // walker ran out of steps: nobody is compared
    }
    engines()
        .iter()
        .filter(|e| e.exact_magnitude().is_none() && e.tier() != Tier::Peer)
        .map(|e| e.name())
        .find(|name| !compared.contains(name))
}

/// The property above checks each program; this proves the programs get
/// compared: on the first 300 seeds walker finishes almost always, and every
/// engine (peers with doubles included) is compared on a good share of them.
#[test]
fn random_programs_are_compared_on_every_engine() {
    const SEEDS: u64 = 300;
    let mut finished = 0;
    let mut per_engine = vec![0u64; engines().len()];
    for seed in 0..SEEDS {
        let compared = check_all(engines(), seed).unwrap();
        if compared.is_empty() {
            continue;
        }
        finished += 1;
        assert_eq!(missed(&compared), None, "seed {seed}");
        for (count, engine) in per_engine.iter_mut().zip(engines()) {
            *count += u64::from(compared.contains(&engine.name()));
        }
    }
    assert!(
        finished * 10 >= SEEDS * 9,
        "walker finished {finished} of {SEEDS}"
    );
    for (count, engine) in per_engine.iter().zip(engines()) {
        // LuaJIT's doubles: about half of these programs leave ±2⁵³.
        assert!(
            count * 3 >= finished,
            "{} compared on only {count} of {finished} programs",
            engine.name()
        );
    }
}

#[test]
fn order_of_evaluation_and_scoping_corner_cases() {
    use Expr::*;
    let cases: Vec<(Expr, Vec<i64>, i64)> = vec![
        // The store happens before both reads.
        (
            Expr::let_(
                Litr(1),
                Expr::add(Expr::then(Expr::set(0, Litr(5)), Get(0)), Get(0)),
            ),
            vec![],
            10,
        ),
        // The left operand is read before the right one stores.
        (
            Expr::let_(
                Litr(1),
                Expr::add(Get(0), Expr::then(Expr::set(0, Litr(5)), Get(0))),
            ),
            vec![],
            6,
        ),
        // Set and While are worth 0.
        (
            Expr::let_(Litr(1), Expr::add(Expr::set(0, Litr(9)), Get(0))),
            vec![],
            9,
        ),
        (
            Expr::add(Expr::while_(Litr(0), Litr(1)), Litr(4)),
            vec![],
            4,
        ),
        // Shadowing: the inner store does not touch the outer local.
        (
            Expr::let_(
                Litr(1),
                Expr::add(
                    Expr::let_(Litr(2), Expr::then(Expr::set(0, Litr(7)), Get(0))),
                    Get(0),
                ),
            ),
            vec![],
            8,
        ),
        // Wrapping.
        (Expr::add(Arg(0), Litr(1)), vec![i64::MAX], i64::MIN),
        (Expr::add(Litr(i64::MIN), Litr(-1)), vec![], i64::MAX),
        // A let's value is its body's; a loop with a negative count never runs.
        (
            Expr::let_(
                Arg(0),
                Expr::then(Expr::while_(Get(0), Expr::set(0, Litr(0))), Litr(3)),
            ),
            vec![-4],
            3,
        ),
    ];
    for (expr, args, want) in cases {
        let program = Program::validate(expr).unwrap();
        let magnitude = magnitude(&program, &args);
        for engine in engines() {
            if held_to_walker(*engine, &program, magnitude).is_err() {
                continue;
            }
            let got = engine.compile(&program).unwrap().execute(&args).unwrap();
            assert_eq!(
                got,
                want,
                "engine {} on {:?}",
                engine.name(),
                program.expr()
            );
        }
    }
}

// ---- The checker can fail: three engines with classic bugs. ----

fn eval(e: &Expr, args: &[i64], locals: &mut Vec<i64>, bug: Bug) -> i64 {
    let ev = |e: &Expr, locals: &mut Vec<i64>| eval(e, args, locals, bug);
    match e {
        Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
            unreachable!("Level 2 is refused before compile")
        }
        Expr::Litr(n) => *n,
        Expr::Arg(i) => args[*i],
        Expr::Get(d) => locals[locals.len() - 1 - d],
        Expr::Add(a, b) if bug == Bug::RightToLeft => {
            let b = ev(b, locals);
            ev(a, locals).wrapping_add(b)
        }
        Expr::Add(a, b) if bug == Bug::Saturating => {
            let a = ev(a, locals);
            a.saturating_add(ev(b, locals))
        }
        Expr::Add(a, b) => {
            let a = ev(a, locals);
            a.wrapping_add(ev(b, locals))
        }
        Expr::Let(i, b) => {
            let v = ev(i, locals);
            locals.push(v);
            let r = ev(b, locals);
            let first = locals[0];
            locals.pop();
            if bug == Bug::FirstLocal && locals.is_empty() {
                first
            } else {
                r
            }
        }
        Expr::Set(d, v) => {
            let v = ev(v, locals);
            let slot = locals.len() - 1 - d;
            locals[slot] = v;
            0
        }
        Expr::While(c, b) => {
            while ev(c, locals) > 0 {
                ev(b, locals);
            }
            0
        }
        Expr::Then(a, b) => {
            ev(a, locals);
            ev(b, locals)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    RightToLeft,
    Saturating,
    FirstLocal,
}

macro_rules! wrong_engine {
    ($name:ident, $bug:expr) => {
        struct $name;
        impl Technique for $name {
            const NAME: &'static str = stringify!($name);
            const TIER: Tier = Tier::Original;
            const SUMMARY: &'static str = "deliberately wrong";
            type Code = Program;
            fn compile(p: &Program) -> Result<Program, CompileError> {
                Ok(p.clone())
            }
            unsafe fn execute(
                p: &Program,
                args: &[i64],
            ) -> Result<i64, vm_perf::CallDepthExceeded> {
                Ok(eval(p.expr(), args, &mut Vec::new(), $bug))
            }
            fn show(p: &Program) -> String {
                print(p.expr())
            }
        }
    };
}

wrong_engine!(RightToLeft, Bug::RightToLeft);
wrong_engine!(Saturating, Bug::Saturating);
wrong_engine!(FirstLocal, Bug::FirstLocal);

#[test]
fn the_checker_catches_deliberately_wrong_engines() {
    let wrong: [&dyn Engine; 3] = [
        &Registered::<RightToLeft>::NEW,
        &Registered::<Saturating>::NEW,
        &Registered::<FirstLocal>::NEW,
    ];
    for engine in wrong {
        let caught = (0..2_000u64).find_map(|seed| check_all(&[engine], seed).err());
        let report =
            caught.unwrap_or_else(|| panic!("{} was not caught in 2,000 programs", engine.name()));
        assert!(report.contains(engine.name()), "{report}");
    }
}

// ---- Level 2: functions, recursion, the call limit. ----

/// Every engine that runs Level 2 against walker on one generated Level-2
/// program ([`vm_perf::random::calls`]): the same value, or the same *call
/// depth exceeded*. Engines below Level 2 refuse and are skipped by the
/// rule. `Ok`: the engines compared.
fn check_level_two(seed: u64) -> Result<Vec<&'static str>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (source, args) = vm_perf::random::calls::program(&mut rng, &shape_for_seed(seed));
    let text = vm_perf::front::printer::print_source(&source);
    let program =
        Program::validate(source).map_err(|e| format!("generator made an invalid program: {e}"))?;
    let mut compared = Vec::new();
    // Engines below Level 2 refuse: skipped before walker runs for them.
    for engine in engines().iter().filter(|e| e.supports(&program).is_ok()) {
        match compare(*engine, &program, &args, BUDGET) {
            Outcome::Agree(_) => compared.push(engine.name()),
            // Nothing but a refusal (below Level 2, a peer's limits) or an
            // exact range exempts an engine once walker has finished.
            Outcome::Skipped(why)
                if compared.contains(&"walker") && engine.exact_magnitude().is_none() =>
            {
                return Err(format!(
                    "engine `{}` skipped on Level-2 seed {seed}: {why}\n{text}",
                    engine.name()
                ));
            }
            Outcome::Skipped(_) => {}
            mismatch => {
                return Err(format!(
                    "engine `{}` on Level-2 seed {seed}, args {args:?}: {mismatch}\n{text}",
                    engine.name()
                ));
            }
        }
    }
    Ok(compared)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_level_two_engine_agrees_with_walker_on_random_level_two_programs(seed in any::<u64>()) {
        check_level_two(seed).map_err(TestCaseError::fail)?;
    }
}

/// An instruction set with more variants than this has eight registers in
/// every operand (`register_preserve_none`): its engines also run programs
/// whose hot loops rank eight values, as many as `tests/coverage.rs`
/// counts for them.
const WIDE_SET: usize = 1000;

fn wide_engines() -> &'static [&'static dyn Engine] {
    static WIDE: std::sync::OnceLock<Vec<&'static dyn Engine>> = std::sync::OnceLock::new();
    WIDE.get_or_init(|| {
        engines()
            .iter()
            .copied()
            .filter(|e| e.variants().len() > WIDE_SET)
            .collect()
    })
}

/// The wide engines on the Level-1 and the Level-2 program of `seed`, both
/// ranking eight values.
fn check_wide(seed: u64) -> Result<(), String> {
    let shape = vm_perf::random::wide_shape_for_seed(seed);
    let one = vm_perf::random::program(&mut StdRng::seed_from_u64(seed), &shape);
    let two = vm_perf::random::calls::program(&mut StdRng::seed_from_u64(seed), &shape);
    for (source, args) in [(one.0.into(), one.1), two] {
        let text = vm_perf::front::printer::print_source(&source);
        let program = Program::validate(source)
            .map_err(|e| format!("generator made an invalid program: {e}"))?;
        for engine in wide_engines() {
            match compare(*engine, &program, &args, BUDGET) {
                Outcome::Agree(_) | Outcome::Skipped(_) => {}
                mismatch => {
                    return Err(format!(
                        "engine `{}` on wide seed {seed}, args {args:?}: {mismatch}\n{text}",
                        engine.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 80_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn eight_register_engines_agree_with_walker_on_programs_ranking_eight_values(seed in any::<u64>()) {
        if !wide_engines().is_empty() {
            check_wide(seed).map_err(TestCaseError::fail)?;
        }
    }
}

/// The Level-2 property above compares what walker finishes: it finishes
/// almost every generated program, with a value or *call depth exceeded*.
#[test]
fn level_two_programs_are_compared() {
    const SEEDS: u64 = 200;
    let finished = (0..SEEDS)
        .filter(|&seed| check_level_two(seed).unwrap().contains(&"walker"))
        .count() as u64;
    assert!(
        finished * 10 >= SEEDS * 9,
        "walker finished {finished} of {SEEDS}"
    );
}
