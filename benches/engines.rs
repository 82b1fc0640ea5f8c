//! `cargo bench`: criterion benchmarks generated from the engine registry.
//!
//! One group per workload; in it `<engine>_compile` and `<engine>_execute`
//! for every registered engine (engines that refuse the program or
//! whose exact range it exceeds are skipped), plus the native
//! candles `rust_execute` and `rust_opt_execute`. Every timed execution's
//! value is checked against the workload's expected value.
//!
//! Kept short on purpose (small warm-up and measurement windows); the
//! careful, interleaved comparison is `cargo run --release`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vm_perf::harness::Case;
use vm_perf::workloads::WORKLOADS;

fn benches(c: &mut Criterion) {
    for w in WORKLOADS {
        let case = Case::builtin(w);
        let (program, args, expected) = (&case.program, &case.args, case.expected);
        let mut group = c.benchmark_group(w.name);
        for engine in vm_perf::engines() {
            // The form the harness would run (LuaJIT's wide one beyond 2^53).
            let Ok(engine) = case.form(*engine) else {
                continue;
            };
            group.bench_function(format!("{}_compile", engine.name()), |b| {
                b.iter(|| engine.compile(black_box(program)).expect("compiles"))
            });
            let code = engine.compile(program).expect("compiles");
            group.bench_function(format!("{}_execute", engine.name()), |b| {
                b.iter(|| assert_eq!(code.execute(black_box(args)), Ok(expected)))
            });
        }
        group.bench_function("rust_execute", |b| {
            b.iter(|| assert_eq!((w.rust)(black_box(args)), expected))
        });
        group.bench_function("rust_opt_execute", |b| {
            b.iter(|| assert_eq!((w.rust_opt)(black_box(args)), expected))
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! { name = engines; config = config(); targets = benches }
criterion_main!(engines);
