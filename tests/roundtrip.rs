//! Printing then parsing gives back the same AST, for thousands of random ASTs.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use vm_perf::Source;
use vm_perf::front::parser::parse;
use vm_perf::front::printer::{print, print_source};
use vm_perf::random::{Shape, program};

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_identity(seed in any::<u64>(), depth in 1usize..14) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape { depth, ..Shape::default() };
        let (expr, _) = program(&mut rng, &shape);
        let text = print(&expr);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e} at {:?} in\n{text}", e.span)))?;
        prop_assert_eq!(back, Source::from(expr), "printed as\n{}", text);
    }
}

#[test]
fn the_printed_form_is_a_fixed_point() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..500 {
        let (expr, _) = program(
            &mut rng,
            &Shape {
                depth: 10,
                ..Shape::default()
            },
        );
        let once = print(&expr);
        assert_eq!(print_source(&parse(&once).unwrap()), once);
    }
}

/// A small generator of Level-2 trees for this test alone: every node kind,
/// in every position, with names that collide where they may (a parameter
/// named like the printer's own `let` names, a function named like a local).
/// The programs need not end: they are only printed and parsed.
mod level_two {
    use rand::Rng;
    use rand::rngs::StdRng;
    use vm_perf::{Expr, Function, Source};

    const FUNCTION_NAMES: &[&str] = &["f", "g", "a", "fib", "b_", "v26"];
    const PARAM_NAMES: &[&str] = &["a", "b", "c", "n", "a_", "v26", "x"];

    pub fn source(rng: &mut StdRng, depth: usize) -> Source {
        let count = rng.random_range(0..=3);
        let mut names: Vec<&str> = FUNCTION_NAMES.to_vec();
        let mut signatures = Vec::new();
        for _ in 0..count {
            let name = names.swap_remove(rng.random_range(0..names.len()));
            let mut pool = PARAM_NAMES.to_vec();
            let params: Vec<String> = (0..rng.random_range(0..=3))
                .map(|_| {
                    pool.swap_remove(rng.random_range(0..pool.len()))
                        .to_string()
                })
                .collect();
            signatures.push((name.to_string(), params));
        }
        let arities: Vec<usize> = signatures.iter().map(|(_, p)| p.len()).collect();
        let functions = signatures
            .into_iter()
            .map(|(name, params)| {
                let body = expr(rng, params.len(), depth, &arities);
                Function { name, params, body }
            })
            .collect();
        Source {
            functions,
            main: expr(rng, 0, depth, &arities),
        }
    }

    fn leaf(rng: &mut StdRng, scope: usize) -> Expr {
        match rng.random_range(0..4) {
            0 if scope > 0 => Expr::Get(rng.random_range(0..scope)),
            1 => Expr::Arg(rng.random_range(0..3)),
            2 => Expr::Litr(
                *[0, -1, 1, i64::MIN, i64::MAX, -7]
                    .get(rng.random_range(0..6))
                    .unwrap(),
            ),
            _ => Expr::Litr(rng.random_range(-1000..1000)),
        }
    }

    fn expr(rng: &mut StdRng, scope: usize, depth: usize, arities: &[usize]) -> Expr {
        if depth == 0 || rng.random_ratio(1, 5) {
            return leaf(rng, scope);
        }
        let sub = |rng: &mut StdRng, scope| expr(rng, scope, depth - 1, arities);
        match rng.random_range(0..12) {
            0 => Expr::add(sub(rng, scope), sub(rng, scope)),
            1 => Expr::let_(sub(rng, scope), sub(rng, scope + 1)),
            2 if scope > 0 => Expr::set(rng.random_range(0..scope), sub(rng, scope)),
            3 => Expr::while_(sub(rng, scope), sub(rng, scope)),
            4 => Expr::then(sub(rng, scope), sub(rng, scope)),
            5 => Expr::sub(sub(rng, scope), sub(rng, scope)),
            6 => Expr::lt(sub(rng, scope), sub(rng, scope)),
            7 | 8 => Expr::if_(sub(rng, scope), sub(rng, scope), sub(rng, scope)),
            9 if !arities.is_empty() => {
                let f = rng.random_range(0..arities.len());
                Expr::call(f, (0..arities[f]).map(|_| sub(rng, scope)).collect())
            }
            _ => leaf(rng, scope),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn level_two_programs_print_then_parse_to_themselves(seed in any::<u64>(), depth in 1usize..8) {
        let source = level_two::source(&mut StdRng::seed_from_u64(seed), depth);
        vm_perf::Program::validate(source.clone())
            .map_err(|e| TestCaseError::fail(format!("the generator made an invalid program: {e}")))?;
        let text = print_source(&source);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e} at {:?} in\n{text}", e.span)))?;
        prop_assert_eq!(back, source, "printed as\n{}", text);
    }
}
