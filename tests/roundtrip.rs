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
