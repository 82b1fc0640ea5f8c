//! The differential reaches every instruction: for every engine whose
//! compiler builds variants of its own (each instruction with each location
//! its operands may have, each superinstruction, each kind of closure), the
//! programs the differential runs (`vm_perf::random::seeded`) build every
//! one, counted in the compiled code (`Executable::census`), never while it
//! runs. A variant no generated program can make is listed below with the
//! reason; a listed variant that the programs do make fails the test too,
//! so the list stays honest. `cargo test --test coverage -- --nocapture`
//! prints every engine's variants with their counts.

use std::collections::BTreeMap;
use vm_perf::random::seeded;
use vm_perf::{Program, engines};

/// As many programs as the differential runs per test run.
const PROGRAMS: u64 = 10_000;

/// `(engine, variant, why no program builds it)`.
const UNREACHABLE: &[(&str, &str, &str)] = &[
    (
        "register_bytecode",
        "AddArg",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
    (
        "register_bytecode",
        "AddImmJumpIfPos",
        "a superinstruction: only register_bytecode_fused emits it",
    ),
];

fn unreachable(engine: &str, variant: &str) -> Option<&'static str> {
    UNREACHABLE
        .iter()
        .find(|(e, v, _)| *e == engine && *v == variant)
        .map(|(_, _, why)| *why)
}

#[test]
fn random_programs_build_every_variant_of_every_engine() {
    let programs: Vec<Program> = (0..PROGRAMS)
        .map(|seed| Program::validate(seeded(seed).0).expect("the generator makes valid programs"))
        .collect();
    let mut failures = Vec::new();
    let mut covered = 0;
    for engine in engines() {
        let variants = engine.variants();
        if variants.is_empty() {
            continue;
        }
        covered += 1;
        let mut counts: BTreeMap<String, u64> = variants.iter().map(|v| (v.clone(), 0)).collect();
        for program in &programs {
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
            println!(
                "  {count:>9}  {variant}{}",
                why.map_or(String::new(), |w| format!("  (unreachable: {w})"))
            );
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
    for (engine, variant, _) in UNREACHABLE {
        let declared = engines()
            .iter()
            .any(|e| e.name() == *engine && e.variants().iter().any(|v| v == variant));
        assert!(
            declared,
            "{engine}: `{variant}` is listed but not a variant"
        );
    }
    assert!(
        failures.is_empty(),
        "{} variants missed or wrongly listed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
