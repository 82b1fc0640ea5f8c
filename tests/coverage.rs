//! The differential reaches every instruction: for every engine whose
//! compiler builds variants of its own (each instruction with each location
//! its operands may have, each superinstruction, each kind of closure), the
//! programs the differential runs (`vm_perf::random::seeded`) build every
//! one, counted in the compiled code (`Executable::census`), never while it
//! runs. A variant the compiler never emits is listed below with the
//! reason; a listed variant that the programs do make fails the test too,
//! so the list stays honest. `cargo test --test coverage -- --nocapture`
//! prints every engine's variants with their counts.

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use vm_perf::random::{seeded, shape_for_seed, wide_shape_for_seed};
use vm_perf::{Program, engines};

/// As many programs as the differential runs per test run.
const PROGRAMS: u64 = 10_000;

/// Level-2 programs, made as the differential's Level-2 property makes them.
const LEVEL_TWO_PROGRAMS: u64 = 10_000;

/// An instruction set with more variants than this (every register of an
/// eight-register family in every operand) gets `WIDE_PROGRAMS` more
/// programs of each level, whose hot loops rank eight values, as the
/// differential's property for such engines runs them.
const WIDE_SET: usize = 1000;
const WIDE_PROGRAMS: u64 = 80_000;

/// The engines on `register_continuations`' instruction set or on its
/// fused tier's.
const REGISTER_BOTH: &[&str] = &[
    "register_continuations",
    "register_tail_calls",
    "register_continuations_fused",
    "register_tail_calls_fused",
    "register_preserve_none",
    "register_preserve_none_fused",
];

/// The engines of eight registers (nightly).
const EIGHT_REGISTERS: &[&str] = &["register_preserve_none", "register_preserve_none_fused"];

/// `(engines, variant, why no program can build it)`: the compiler never
/// emits it. A listed variant that is built fails the test.
const UNREACHABLE: &[(&[&str], &str, &str)] = &[
    (
        &["tape_continuations_fused"],
        "JumpIfRegNotGt(r0, forward, r0)",
        "two registers compared take the `JumpIfRegNotLt` form",
    ),
    (
        &["tape_continuations_fused"],
        "JumpIfRegNotGt(r0, forward, r1)",
        "two registers compared take the `JumpIfRegNotLt` form",
    ),
    (
        &["tape_continuations_fused"],
        "JumpIfRegNotGt(r1, forward, r0)",
        "two registers compared take the `JumpIfRegNotLt` form",
    ),
    (
        &["tape_continuations_fused"],
        "JumpIfRegNotGt(r1, forward, r1)",
        "two registers compared take the `JumpIfRegNotLt` form",
    ),
    (
        &["register_bytecode"],
        "AddArg",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
    (
        &["register_bytecode"],
        "AddImmJumpIfPos",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
    (
        &["register_bytecode"],
        "AddImmCall",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
    (
        &["register_bytecode"],
        "AddRet",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
    (
        REGISTER_BOTH,
        "Copy(acc, acc)",
        "a copy to the same place is left out",
    ),
    (
        REGISTER_BOTH,
        "Copy(r0, r0)",
        "a copy to the same place is left out",
    ),
    (
        REGISTER_BOTH,
        "Copy(r1, r1)",
        "a copy to the same place is left out",
    ),
    (
        REGISTER_BOTH,
        "Copy(r2, r2)",
        "a copy to the same place is left out",
    ),
    (
        EIGHT_REGISTERS,
        "Copy(r3, r3)",
        "a copy to the same place is left out",
    ),
    (
        EIGHT_REGISTERS,
        "Copy(r4, r4)",
        "a copy to the same place is left out",
    ),
    (
        EIGHT_REGISTERS,
        "Copy(r5, r5)",
        "a copy to the same place is left out",
    ),
    (
        EIGHT_REGISTERS,
        "Copy(r6, r6)",
        "a copy to the same place is left out",
    ),
    (
        EIGHT_REGISTERS,
        "Copy(r7, r7)",
        "a copy to the same place is left out",
    ),
    (
        &[
            "register_continuations_fused",
            "register_tail_calls_fused",
            "register_preserve_none_fused",
        ],
        "AddRet(acc, acc)",
        "the add-and-return shape leaves `acc + acc` to the plain ops",
    ),
];

fn unreachable(engine: &str, variant: &str) -> Option<&'static str> {
    UNREACHABLE
        .iter()
        .find(|(engines, v, _)| engines.contains(&engine) && variant == *v)
        .map(|(_, _, why)| *why)
}

#[test]
fn random_programs_build_every_variant_of_every_engine() {
    let mut programs: Vec<Program> = (0..PROGRAMS)
        .map(|seed| Program::validate(seeded(seed).0).expect("the generator makes valid programs"))
        .collect();
    // And Level-2 programs, made as the differential's Level-2 property
    // makes them.
    programs.extend((0..LEVEL_TWO_PROGRAMS).map(|seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        let (source, _) = vm_perf::random::calls::program(&mut rng, &shape_for_seed(seed));
        Program::validate(source).expect("the generator makes valid programs")
    }));
    let wide = || {
        (0..WIDE_PROGRAMS).flat_map(|seed| {
            let (one, _) = vm_perf::random::program(
                &mut StdRng::seed_from_u64(seed),
                &wide_shape_for_seed(seed),
            );
            let (two, _) = vm_perf::random::calls::program(
                &mut StdRng::seed_from_u64(seed),
                &wide_shape_for_seed(seed),
            );
            [Program::validate(one), Program::validate(two)]
                .map(|p| p.expect("the generator makes valid programs"))
        })
    };
    let mut failures = Vec::new();
    let mut covered = 0;
    for engine in engines() {
        let variants = engine.variants();
        if variants.is_empty() {
            continue;
        }
        covered += 1;
        let mut counts: BTreeMap<String, u64> = variants.iter().map(|v| (v.clone(), 0)).collect();
        let wide_programs: Vec<Program> = if variants.len() > WIDE_SET {
            wide().collect()
        } else {
            Vec::new()
        };
        // An engine below Level 2 refuses those programs.
        for program in programs
            .iter()
            .chain(&wide_programs)
            .filter(|p| engine.supports(p).is_ok())
        {
            let code = engine
                .compile(program)
                .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
            for (variant, n) in code.census() {
                let Some(count) = counts.get_mut(&variant) else {
                    panic!("{}: census names `{variant}`, not a variant", engine.name());
                };
                *count += n as u64;
            }
        }
        println!("{} ({} variants):", engine.name(), variants.len());
        for variant in &variants {
            let count = counts[variant];
            let why = unreachable(engine.name(), variant);
            let note = why.map_or(String::new(), |w| format!("  (unreachable: {w})"));
            println!("  {count:>9}  {variant}{note}");
            match (count, why) {
                (0, None) => failures.push(format!("{}: `{variant}` never built", engine.name())),
                (1.., Some(_)) => failures.push(format!(
                    "{}: `{variant}` is listed as unreachable but was built {count} times",
                    engine.name()
                )),
                _ => {}
            }
        }
    }
    assert!(covered >= 7, "only {covered} engines declare variants");
    for (listed, variant, _) in UNREACHABLE {
        for engine in engines().iter().filter(|e| listed.contains(&e.name())) {
            let declared = engine.variants().iter().any(|v| v == variant);
            assert!(
                declared,
                "{}: `{variant}` is listed but not a variant",
                engine.name()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} variants missed or wrongly listed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
