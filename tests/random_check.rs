//! `vm-perf check --random N`: the in-process differential at scale. The
//! command ends with its one closing line and succeeds when every engine
//! agrees; the check behind it reports a deliberately wrong engine, with a
//! program that pasted into `tests/regressions/` reproduces the finding.

mod common;

use vm_perf::engine::{CompileError, Engine, Registered, Technique, Tier};
use vm_perf::front::compile_source;
use vm_perf::reference::eval_budgeted;
use vm_perf::reference::random_check::{Disagreement, check_random};
use vm_perf::{CallDepthExceeded, Program, engine};

#[test]
fn check_random_ends_with_its_closing_line_and_succeeds() {
    let out = common::vm_perf(["check", "--random", "200", "--seed", "1"], b"");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // Nothing but the closing line: no program disagreed.
    let line = stdout.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "{stdout}");
    let results: u64 = line
        .strip_prefix("200 programs, ")
        .and_then(|rest| rest.strip_suffix(" engine results, 0 disagreements"))
        .unwrap_or_else(|| panic!("not the closing line: {line}"))
        .parse()
        .unwrap();
    // Every engine of the build compared on most programs.
    let engines = vm_perf::engines().len() as u64;
    assert!(results > 200 * engines / 2, "{line}");
    assert!(stderr.contains("from seed 1"), "{stderr}");
}

#[test]
fn seed_and_engine_need_random() {
    let out = common::vm_perf(["check", "--seed", "1"], b"");
    assert_eq!(out.status.code(), Some(2));
}

/// Walker's value, off by one whenever it is negative: a classic slip.
struct OffByOne;

impl Technique for OffByOne {
    const NAME: &'static str = "off_by_one";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "deliberately wrong";
    type Code = Program;
    fn compile(p: &Program) -> Result<Program, CompileError> {
        Ok(p.clone())
    }
    unsafe fn execute(p: &Program, args: &[i64]) -> Result<i64, CallDepthExceeded> {
        let v = eval_budgeted(p, args, u64::MAX).unwrap();
        Ok(if v < 0 { v + 1 } else { v })
    }
    fn show(_: &Program) -> String {
        String::new()
    }
}

#[test]
fn a_wrong_engine_is_reported_with_a_regression_file_that_reproduces_it() {
    let wrong: &dyn Engine = &Registered::<OffByOne>::NEW;
    let walker = engine("walker").unwrap();
    let mut reported: Vec<Disagreement> = Vec::new();
    let summary = check_random(&[walker, wrong], 300, 1, &mut |d| reported.push(d.clone()));
    assert_eq!(summary.programs, 300);
    assert!(summary.disagreements > 0, "{summary}");
    // Walker agrees with the reference: every disagreement is the wrong engine's.
    assert_eq!(summary.disagreements, summary.wrong_programs, "{summary}");
    assert!(!reported.is_empty());
    for d in &reported {
        let file = d.regression_file();
        assert!(file.contains("off_by_one: "), "{file}");
        assert!(file.contains("<- differs"), "{file}");
        // The file as tests/regressions.rs reads it: headers, then the program.
        let header = |key: &str| {
            file.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no `{key}` in\n{file}"))
                .trim()
                .to_owned()
        };
        let args: Vec<i64> = header("// args:")
            .split_whitespace()
            .map(|a| a.parse().unwrap())
            .collect();
        let expect: i64 = header("// expect:").parse().unwrap();
        let program = compile_source("regression", &file).unwrap();
        let run = |e: &dyn Engine| e.compile(&program).unwrap().execute(&args).unwrap();
        assert_eq!(run(walker), expect, "{file}");
        assert_ne!(run(wrong), expect, "{file}");
    }
}
