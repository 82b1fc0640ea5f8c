//! `cargo bench`: criterion benchmarks generated from the engine registry.
//!
//! One group per workload; in it `<engine>_compile` and `<engine>_execute`
//! for every registered engine (`n/a` engines are skipped), plus the native
//! candles `rust_execute` and `rust_opt_execute`. Every timed execution's
//! value is checked against the workload's expected value.
//!
//! Kept short on purpose (small warm-up and measurement windows); the
//! careful, interleaved comparison is `cargo run --release`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vm_perf::workloads::WORKLOADS;

fn benches(c: &mut Criterion) {
    for w in WORKLOADS {
        let program = w.program().expect("built-in workloads are valid");
        let args = w.args();
        let expected = w.expected();
        let mut group = c.benchmark_group(w.name);
        for engine in vm_perf::engines() {
            if engine.supports(&program).is_err() {
                continue;
            }
            group.bench_function(format!("{}_compile", engine.name()), |b| {
                b.iter(|| engine.compile(black_box(&program)).expect("compiles"))
            });
            let code = engine.compile(&program).expect("compiles");
            group.bench_function(format!("{}_execute", engine.name()), |b| {
                b.iter(|| assert_eq!(code.execute(black_box(&args)), Ok(expected)))
            });
        }
        group.bench_function("rust_execute", |b| {
            b.iter(|| assert_eq!((w.rust)(black_box(&args)), expected))
        });
        group.bench_function("rust_opt_execute", |b| {
            b.iter(|| assert_eq!((w.rust_opt)(black_box(&args)), expected))
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
