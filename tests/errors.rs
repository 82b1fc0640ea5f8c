//! Bad programs and bad command lines: each gives a non-zero exit, a first
//! line on stderr that names the cause (with `line:column` where there is
//! one), and never a panic.

mod common;

use std::process::Stdio;

/// Runs `vm-perf run [extra] - [args]` with `src` on stdin.
fn run_stdin(src: &str, args: &[&str]) -> (i32, String) {
    let out = common::output_with_stdin(
        common::vm_perf().arg("run").arg("-").args(args),
        src.as_bytes(),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_cmd(args: &[&str]) -> (i32, String) {
    let out = common::vm_perf()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_error(what: &str, (code, stderr): (i32, String), first_line_has: &[&str]) {
    assert!(
        code != 0 && code != 101,
        "{what}: exit code {code}, stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: panicked:\n{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    for needle in first_line_has {
        assert!(
            first.contains(needle),
            "{what}: first line {first:?} lacks {needle:?}"
        );
    }
}

#[test]
fn malformed_programs_report_line_and_column() {
    let deep_parens = "(".repeat(1001) + "1" + &")".repeat(1001);
    let deep_sum = vec!["1"; 1001].join(" + ");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        // (what, source, "LINE:COL", word in the cause)
        ("unknown name", "x + 1".into(), "-:1:1:", "unknown name"),
        (
            "unknown name in assignment",
            "let a = 1;\ny = 2; a".into(),
            "-:2:1:",
            "unknown name",
        ),
        (
            "name used in its own initialiser",
            "let a = a; a".into(),
            "-:1:9:",
            "unknown name",
        ),
        (
            "name out of its block",
            "{ let a = 1; a }; a".into(),
            "-:1:19:",
            "unknown name",
        ),
        ("let without body", "let a = 1".into(), "-:1:1:", "no body"),
        (
            "let without body, trailing ;",
            "let a = 1;".into(),
            "-:1:1:",
            "no body",
        ),
        (
            "let without body in a block",
            "{ let a = 1; }".into(),
            "-:1:3:",
            "no body",
        ),
        ("let without name", "let = 1; 2".into(), "-:1:5:", "name"),
        ("let without =", "let a 1; a".into(), "-:1:7:", "`=`"),
        (
            "keyword as name",
            "let while = 1; 2".into(),
            "-:1:5:",
            "name",
        ),
        ("unclosed brace", "{ 1 + 2".into(), "-:1:1:", "unclosed"),
        ("unmatched brace", "1 }".into(), "-:1:3:", "unmatched"),
        ("unclosed paren", "(1 + 2".into(), "-:1:7:", "`)`"),
        ("stray paren", "1 )".into(), "-:1:3:", "`)`"),
        (
            "literal too large",
            "9223372036854775808".into(),
            "-:1:1:",
            "64 bits",
        ),
        (
            "literal too small",
            "1 + -9223372036854775809".into(),
            "-:1:5:",
            "64 bits",
        ),
        (
            "negative argument index",
            "arg(-1)".into(),
            "-:1:5:",
            "argument index",
        ),
        (
            "argument index not a number",
            "arg(x)".into(),
            "-:1:5:",
            "argument index",
        ),
        ("arg without parens", "arg 1".into(), "-:1:5:", "`(`"),
        ("negation", "let x = 1; -x".into(), "-:1:12:", "no negation"),
        ("lone minus", "-".into(), "-:1:1:", "negative"),
        (
            "double plus",
            "1 + + 2".into(),
            "-:1:5:",
            "expected an expression",
        ),
        ("trailing plus", "1 +".into(), "-:1:4:", "end of input"),
        ("missing separator", "1 2".into(), "-:1:3:", "`;`"),
        ("while without body", "while 1 2".into(), "-:1:9:", "`{`"),
        (
            "while without body after a block condition",
            "while { }".into(),
            "-:1:10:",
            "end of input",
        ),
        (
            "bad character",
            "1 # 2".into(),
            "-:1:3:",
            "unexpected character",
        ),
        (
            "unicode character",
            "1 +\n  λ".into(),
            "-:2:3:",
            "unexpected character",
        ),
        (
            "lone semicolon",
            ";".into(),
            "-:1:1:",
            "expected an expression",
        ),
        (
            "double semicolon",
            "1;; 2".into(),
            "-:1:3:",
            "expected an expression",
        ),
        (
            "let as operand",
            "1 + let a = 1; a".into(),
            "-:1:5:",
            "`let`",
        ),
        ("assignment to a literal", "1 = 2".into(), "-:1:3:", "`;`"),
        (
            "identifier glued to number",
            "12ab".into(),
            "-:1:1:",
            "integer",
        ),
        (
            "nesting past the limit (parentheses)",
            deep_parens,
            "-:1:1001:",
            "limit",
        ),
        ("nesting past the limit (sum)", deep_sum, "-:1:", "limit"),
    ];
    assert!(cases.len() >= 30);
    for (what, src, at, cause) in cases {
        assert_error(what, run_stdin(&src, &[]), &[at, cause]);
    }
}

#[test]
fn bad_command_lines_name_the_cause() {
    let dir = std::env::temp_dir().join(format!("vm-perf-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sum = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/sum.vm");
    let bad_utf8 = dir.join("bad.vm");
    std::fs::write(&bad_utf8, b"let a = 1;\n a + \xff\xfe").unwrap();
    let bad_utf8 = bad_utf8.to_str().unwrap();

    assert_error(
        "missing arguments",
        run_cmd(&["run", sum]),
        &["needs 2 arguments, 0 given"],
    );
    assert_error(
        "one argument short",
        run_cmd(&["run", sum, "5"]),
        &["needs 2 arguments, 1 given"],
    );
    assert_error(
        "non-integer argument",
        run_cmd(&["run", sum, "10", "x"]),
        &["`x`", "not a decimal"],
    );
    assert_error(
        "argument out of range",
        run_cmd(&["run", sum, "10", "9223372036854775808"]),
        &["not a decimal"],
    );
    assert_error(
        "fractional argument",
        run_cmd(&["run", sum, "1.5", "2"]),
        &["`1.5`"],
    );
    assert_error(
        "unknown engine",
        run_cmd(&["run", "--engine", "nope", sum, "1", "2"]),
        &["unknown engine `nope`"],
    );
    assert_error(
        "unknown engine for show",
        run_cmd(&["show", "--engine", "nope", sum]),
        &["unknown engine"],
    );
    assert_error(
        "missing file",
        run_cmd(&["run", "/no/such/file.vm"]),
        &["/no/such/file.vm", "cannot read"],
    );
    assert_error(
        "directory as file",
        run_cmd(&["run", dir.to_str().unwrap()]),
        &["cannot read"],
    );
    assert_error(
        "invalid UTF-8",
        run_cmd(&["run", bad_utf8]),
        &[":2:6:", "UTF-8"],
    );
    assert_error("no file", run_cmd(&["run"]), &["error"]);
    assert_error("unknown subcommand", run_cmd(&["frobnicate"]), &["error"]);
    assert_error("unknown flag", run_cmd(&["run", "--fast", sum]), &["error"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn errors_show_the_source_excerpt() {
    let (_, stderr) = run_stdin("let a = 1;\nb", &[]);
    let mut lines = stderr.lines();
    assert_eq!(lines.next(), Some("-:2:1: unknown name `b`"));
    assert!(stderr.contains("here"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour only on a terminal: {stderr:?}"
    );
}
