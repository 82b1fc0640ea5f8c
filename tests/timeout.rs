//! `vm-perf run --timeout` stops a program that never ends, on every
//! registered engine, with exit status 124 and a one-line message; a program
//! that ends in time is not disturbed. (The guard is a watchdog thread, so
//! no engine's loop carries a check: see `src/guard.rs`.)

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};
use vm_perf::guard::TIMEOUT_EXIT_CODE;

fn run(engine: &str, timeout: &str, source: &str) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let out = common::vm_perf(
        ["run", "--engine", engine, "--timeout", timeout, "-"],
        source.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stdout, stderr, started.elapsed())
}

#[test]
fn an_endless_loop_is_stopped_on_every_engine() {
    for engine in vm_perf::engines() {
        let name = engine.name();
        let (code, stdout, stderr, took) = run(name, "0.2", "while 1 {}");
        assert_eq!(code, Some(i32::from(TIMEOUT_EXIT_CODE)), "{name}: {stderr}");
        assert_eq!(stdout, "", "{name}");
        // An engine with an exact range waits for walker's check of it.
        let what = match engine.exact_magnitude() {
            None => format!("engine `{name}`"),
            Some(_) => format!("engine `walker` (checking that `{name}`'s values stay exact)"),
        };
        assert_eq!(
            stderr.lines().next().unwrap_or(""),
            format!(
                "vm-perf: error: `-` on {what} did not finish within 0.200 s (stopped by --timeout)"
            ),
        );
        // Generous: only catches a guard that does not fire at all.
        assert!(took < Duration::from_secs(30), "{name} took {took:?}");
    }
}

#[test]
fn a_program_that_ends_in_time_is_not_disturbed() {
    for engine in vm_perf::engines() {
        let (code, stdout, stderr, _) = run(
            engine.name(),
            "60",
            "let i = 1000; while i { i = i + -1 }; 7",
        );
        assert_eq!(
            (code, stdout.as_str()),
            (Some(0), "7\n"),
            "{}: {stderr}",
            engine.name()
        );
    }
}

#[test]
fn help_documents_the_exit_status() {
    let out = common::vm_perf(["run", "--help"], b"");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--timeout <SECS>"), "{help}");
    assert!(help.contains("124"), "{help}");
}

#[test]
fn bench_stops_a_runaway_program_file() {
    let out_dir = std::env::temp_dir().join(format!("vm-perf-timeout-{}", std::process::id()));
    let mut args: Vec<&OsStr> = ["bench", "--quick", "--timeout", "0.2", "--out"]
        .map(OsStr::new)
        .to_vec();
    args.extend([out_dir.as_os_str(), OsStr::new("-")]);
    let out = common::vm_perf(args, b"let i = 1; while i { i = i + 1 }");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(TIMEOUT_EXIT_CODE)),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().last().unwrap_or(""),
        "vm-perf: error: `-` on engine `walker` did not finish within 0.200 s (stopped by --timeout)"
    );
}
