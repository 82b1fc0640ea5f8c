//! Level 2 on the command line: the language's example, the call depth
//! error, refusals by engines still at Level 1, and every new mistake as a
//! located error with an excerpt (the whole of stderr pinned as an `insta`
//! snapshot in `tests/snapshots/`).
//!
//! To review changed messages: `INSTA_UPDATE=always cargo test --test level2`
//! then read `git diff tests/snapshots`.

mod common;

use std::path::PathBuf;
use std::process::Output;
use vm_perf::MAX_CALLS;

/// `down(n)` is `n + 1` calls deep at its deepest, then gives 7.
const DOWN: &str = "fn down(n) { if 0 < n { down(n - 1) } else { 7 } }\ndown(arg(0))\n";

const FIB: &str =
    "fn fib(n) {\n    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}\nfib(arg(0))\n";

/// Runs `vm-perf ARGS` with `source` as the file `input.vm`, in a directory
/// of the test's own.
fn run(test: &str, source: &str, args: &[&str]) -> Output {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("level2")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.vm"), source).unwrap();
    let out = common::vm_perf_in(&dir, args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{test}: panic: {stderr}");
    assert!(out.status.code().is_some(), "{test}: killed: {stderr}");
    out
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// An engine still at Level 1 (the registry refuses it Level-2 programs),
/// if any is left.
fn level_one_engine() -> Option<&'static str> {
    let fib = vm_perf::front::compile_source("fib", FIB).unwrap();
    vm_perf::engines()
        .iter()
        .find(|e| {
            e.supports(&fib)
                .is_err_and(|why| why.contains("runs Level 1 only"))
        })
        .map(|e| e.name())
}

fn first_stderr_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().next().unwrap_or("").to_string()
}

#[test]
fn the_language_example_prints_6765_with_walker() {
    let out = run("fib", FIB, &["run", "--engine", "walker", "input.vm", "20"]);
    assert_eq!(stdout(&out), "6765\n");
    // The default engine is walker too, and the program may come on stdin.
    let piped = common::vm_perf(["run", "-", "20"], FIB.as_bytes());
    assert_eq!(stdout(&piped), "6765\n");
}

#[test]
fn ten_thousand_active_calls_succeed_and_one_more_fails() {
    let limit = MAX_CALLS as i64;
    let ok = run(
        "depth",
        DOWN,
        &["run", "input.vm", &(limit - 1).to_string()],
    );
    assert_eq!(stdout(&ok), "7\n");
    let failed = run("depth", DOWN, &["run", "input.vm", &limit.to_string()]);
    let code = failed.status.code().unwrap();
    assert!(code != 0 && code != 124, "exit {code}");
    assert!(
        first_stderr_line(&failed).contains("call depth exceeded"),
        "{}",
        first_stderr_line(&failed)
    );
    assert!(failed.stdout.is_empty(), "a failed run prints no value");
}

#[test]
fn run_all_counts_engines_failing_alike_as_agreeing() {
    let limit = MAX_CALLS.to_string();
    let out = run("all", DOWN, &["run", "--engine", "all", "input.vm", &limit]);
    let code = out.status.code().unwrap();
    assert!(code != 0 && code != 124, "exit {code}");
    let first = first_stderr_line(&out);
    assert!(first.contains("call depth exceeded"), "{first}");
    assert!(!first.contains("disagree"), "{first}");
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains("walker call depth exceeded\n"), "{listed}");
    // Engines still at Level 1 are skipped with the reason, not failed.
    if let Some(name) = level_one_engine() {
        let skipped = format!("{name} skipped: `{name}` runs Level 1 only");
        assert!(listed.contains(&skipped), "{listed}");
    }
    // A value: every engine that runs it agrees.
    let out = run("all", FIB, &["run", "--engine", "all", "input.vm", "15"]);
    assert!(stdout(&out).contains("walker 610\n"));
}

#[test]
fn an_engine_at_level_one_refuses_level_two_with_the_reason() {
    let Some(name) = level_one_engine() else {
        // None is left: every engine runs the program.
        let out = run(
            "refused",
            FIB,
            &["run", "--engine", "all", "input.vm", "15"],
        );
        assert!(!stdout(&out).contains("runs Level 1 only"));
        return;
    };
    let out = run("refused", FIB, &["run", "--engine", name, "input.vm", "20"]);
    assert!(!out.status.success());
    let first = first_stderr_line(&out);
    assert!(first.contains("runs Level 1 only"), "{first}");
    assert!(out.stdout.is_empty());
}

/// A program that must be refused with a located error and an excerpt.
macro_rules! refused {
    ($($name:ident: $source:expr;)*) => {$(
        #[test]
        fn $name() {
            let out = run(stringify!($name), &$source, &["run", "input.vm"]);
            let code = out.status.code().unwrap();
            assert!(code != 0 && code != 124, "exit {code}");
            let stderr = String::from_utf8(out.stderr).unwrap();
            let first = stderr.lines().next().unwrap_or("");
            let mut at = first.strip_prefix("input.vm:").unwrap_or("").splitn(3, ':');
            assert!(
                at.next().is_some_and(|l| l.parse::<usize>().is_ok())
                    && at.next().is_some_and(|c| c.parse::<usize>().is_ok()),
                "not located: {first}"
            );
            assert!(stderr.lines().count() > 1, "no excerpt: {stderr}");
            insta::assert_snapshot!(stderr);
        }
    )*};
}

refused! {
    undefined_function: "fn f() { 1 }\nf() + g(2)\n";
    wrong_arity: "fn add(a, b) { a + b }\nadd(1)\n";
    duplicate_function: "fn f() { 1 }\nfn f() { 2 }\nf()\n";
    duplicate_parameter: "fn f(a, b, a) { a }\nf(1, 2, 3)\n";
    seventeen_parameters: format!(
        "fn f({}) {{ 0 }}\n0\n",
        (0..17).map(|i| format!("p{i}")).collect::<Vec<_>>().join(", ")
    );
    chained_comparison: "let a = 1;\na < 2 < 3\n";
    function_after_the_main_sequence: "let x = 1;\nfn f() { x }\nf()\n";
    function_in_a_block: "{\n    fn f() { 1 }\n}\n";
    negated_name: "let x = 1;\n-x\n";
    function_right_after_an_item: "let x = 1;\nx\nfn f() { x }\n";
    body_reads_a_local_of_main: "fn f() { x }\nlet x = 1;\nf()\n";
    parameter_outside_its_function: "fn f(a) { a }\nfn g() { a }\ng()\n";
    else_without_a_block: "if 1 { 2 } else 3\n";
    if_as_an_operand: "1 + if 1 { 2 } else { 3 }\n";
    negative_literal_out_of_range: "0 - -9223372036854775809\n";
}
