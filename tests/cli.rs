//! The command-line contract of `docs/LANGUAGE.md`, driven through the real binary.

mod common;

use std::process::Output;
use vm_perf::reference::{held_to_walker, magnitude};
use vm_perf::workloads::WORKLOADS;

fn workload_path(name: &str) -> String {
    format!("{}/workloads/{name}.vm", env!("CARGO_MANIFEST_DIR"))
}

fn vm_perf(args: &[&str]) -> Output {
    common::vm_perf(args, b"")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn run_prints_the_value() {
    let sum = workload_path("sum");
    assert_eq!(
        stdout(&vm_perf(&[
            "run", "--engine", "walker", &sum, "10000", "13"
        ])),
        "130000\n"
    );
    assert_eq!(stdout(&vm_perf(&["run", &sum, "10000", "13"])), "130000\n");
    // Negative arguments are arguments, not flags.
    assert_eq!(stdout(&vm_perf(&["run", &sum, "3", "-5"])), "-15\n");
    assert_eq!(stdout(&vm_perf(&["run", &sum, "-3", "-5"])), "0\n");
}

#[test]
fn every_engine_runs_every_workload_from_the_command_line() {
    for w in WORKLOADS {
        let path = workload_path(w.name);
        let args: Vec<String> = w.args().iter().map(i64::to_string).collect();
        let program = w.program().unwrap();
        let magnitude = magnitude(&program, &w.args());
        for engine in vm_perf::engines() {
            // A peer computing in doubles is held only to its exact range.
            if held_to_walker(*engine, &program, magnitude).is_err() {
                continue;
            }
            let mut argv = vec!["run", "--engine", engine.name(), &path];
            argv.extend(args.iter().map(String::as_str));
            assert_eq!(
                stdout(&vm_perf(&argv)),
                format!("{}\n", w.expected()),
                "{} {}",
                engine.name(),
                w.name
            );
        }
    }
}

#[test]
fn run_reads_standard_input() {
    let out = common::vm_perf(["run", "-", "4"], b"arg(0) + 1 // comment");
    assert_eq!(stdout(&out), "5\n");
}

#[test]
fn list_names_every_engine_once_per_line() {
    let out = stdout(&vm_perf(&["list"]));
    let names: Vec<&str> = out.lines().collect();
    let registry: Vec<&str> = vm_perf::engines().iter().map(|e| e.name()).collect();
    assert_eq!(names, registry);
    assert_eq!(names[0], "walker");
}

#[test]
fn run_all_compares_every_engine() {
    let out = stdout(&vm_perf(&[
        "run",
        "--engine",
        "all",
        &workload_path("sum"),
        "100",
        "3",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), vm_perf::engines().len());
    for (line, engine) in lines.iter().zip(vm_perf::engines()) {
        assert!(
            *line == format!("{} 300", engine.name())
                || line.starts_with(&format!("{} skipped", engine.name())),
            "{line}"
        );
    }
}

#[test]
fn show_prints_every_engines_compiled_form() {
    let sum = workload_path("sum");
    for engine in vm_perf::engines() {
        let out = stdout(&vm_perf(&["show", "--engine", engine.name(), &sum]));
        assert!(out.lines().count() >= 3, "{}: {out}", engine.name());
    }
}
