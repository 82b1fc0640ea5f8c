//! Large programs: a generated program of about 1,000,000 nodes, balanced
//! (depth ≈ 40, far below `MAX_DEPTH`), goes through print → parse →
//! validate → compile on every engine → run, and the same at 100,000 nodes,
//! so the two sizes can be compared. Time and peak heap (counted by a
//! wrapping global allocator) are printed per stage, and the process's
//! `VmHWM` at the end; run with `--nocapture` to see them. No timing is asserted (project rule);
//! memory is only checked to grow at most linearly-ish (≤ 30× for 10× the
//! nodes), which a quadratic stage would break.
//!
//! Release only (CI runs `cargo test --release --test large`): in the dev
//! profile it takes minutes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use vm_perf::front::{parser, printer};
use vm_perf::random::balanced::mixed;
use vm_perf::reference::{eval_traced, held_to_walker};
use vm_perf::{Program, engines};

/// Counts heap bytes: live now and the peak since the last reset, so each
/// stage's own peak is exact (RSS would hide reuse of freed pages).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` unchanged; the counters are
// plain atomics and never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(now, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak resident memory of the whole process in KiB (Linux), if known.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One stage's cost: time and the peak heap above what was live before it.
struct Cost {
    stage: String,
    time: Duration,
    extra_kib: u64,
}

fn measure<R>(costs: &mut Vec<Cost>, stage: &str, f: impl FnOnce() -> R) -> R {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let start = Instant::now();
    let r = f();
    let time = start.elapsed();
    let extra_kib = (PEAK.load(Relaxed).saturating_sub(before) / 1024) as u64;
    costs.push(Cost {
        stage: stage.to_string(),
        time,
        extra_kib,
    });
    r
}

fn pipeline(nodes: usize) -> Vec<Cost> {
    let mut costs = Vec::new();
    let mut rng = 42;
    let expr = measure(&mut costs, "generate", || mixed(nodes, 0, &mut rng));
    let text = measure(&mut costs, "print", || printer::print(&expr));
    let parsed = measure(&mut costs, "parse", || {
        parser::parse(&text).expect("printed program parses").main
    });
    assert!(parsed == expr, "print/parse round trip");
    drop((text, parsed));
    let program = measure(&mut costs, "validate", || {
        Program::validate(expr).expect("valid")
    });
    assert!(program.depth() <= 64, "depth {}", program.depth());
    let args = [3, -4];
    let (want, magnitude) = eval_traced(&program, &args, u64::MAX).unwrap();
    for engine in engines() {
        if let Err(why) = held_to_walker(*engine, &program, magnitude) {
            eprintln!("{}: skipped: {why}", engine.name());
            continue;
        }
        let name = engine.name();
        let code = measure(&mut costs, &format!("compile {name}"), || {
            engine.compile(&program)
        });
        let code = code.unwrap_or_else(|e| panic!("{name} cannot compile: {e}"));
        let got = measure(&mut costs, &format!("run {name}"), || {
            code.execute(&args).unwrap()
        });
        assert_eq!(got, want, "{name}");
        measure(&mut costs, &format!("drop {name}"), || drop(code));
    }
    costs
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "minutes in the dev profile: run with --release"
)]
fn a_million_node_program_goes_through_every_stage() {
    // Run on a thread with a known stack: the tree is shallow, so 8 MiB is
    // only a margin for the engines' own compile recursion.
    let run = |n| {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || pipeline(n))
            .unwrap()
            .join()
            .unwrap()
    };
    let small = run(100_000);
    let large = run(1_000_000);
    eprintln!(
        "{:<40} {:>10} {:>10} {:>7} {:>11} {:>11} {:>7}",
        "stage", "1e5 ms", "1e6 ms", "ratio", "1e5 KiB", "1e6 KiB", "ratio"
    );
    let mut worst_memory: (f64, String) = (0.0, String::new());
    for (s, l) in small.iter().zip(&large) {
        assert_eq!(s.stage, l.stage);
        let t = l.time.as_secs_f64() / s.time.as_secs_f64().max(1e-6);
        let m = l.extra_kib as f64 / (s.extra_kib.max(1)) as f64;
        eprintln!(
            "{:<40} {:>10.1} {:>10.1} {:>7.1} {:>11} {:>11} {:>7.1}",
            s.stage,
            s.time.as_secs_f64() * 1e3,
            l.time.as_secs_f64() * 1e3,
            t,
            s.extra_kib,
            l.extra_kib,
            m
        );
        // Only stages that allocate enough to measure.
        if l.extra_kib > 1024 && m > worst_memory.0 {
            worst_memory = (m, s.stage.clone());
        }
    }
    eprintln!("process peak RSS (VmHWM): {:?} KiB", vm_hwm_kib());
    assert!(
        worst_memory.0 <= 30.0,
        "memory of `{}` grew {:.1}× for 10× the nodes",
        worst_memory.1,
        worst_memory.0
    );
}
