//! Hostile input against the real binary: every case must end with a clean
//! exit (never a panic, an abort or a signal), and the first line of stderr
//! plus the exit code are pinned as `insta` snapshots (`tests/snapshots/`).
//! Source errors must carry `FILE:LINE:COL:`.
//!
//! To review changed messages: `INSTA_UPDATE=always cargo test --test hostile`
//! then read `git diff tests/snapshots`.

mod common;

use std::io::Write;
use std::path::PathBuf;

/// What one run of the binary showed.
struct Outcome {
    code: i32,
    stdout: String,
    first_line: String,
}

impl Outcome {
    /// The snapshot: exit code, then the one line a user sees first.
    fn summary(&self) -> String {
        if self.code == 0 {
            format!("exit 0\nstdout: {}", self.stdout.trim_end())
        } else {
            format!("exit {}\n{}", self.code, self.first_line)
        }
    }
}

/// A directory of its own for each test (they run in parallel).
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("hostile")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `vm-perf ARGS` in the test's scratch directory, `stdin` piped in.
fn vm_perf(test: &str, args: &[&str], stdin: &[u8]) -> Outcome {
    let out = common::output_with_stdin(
        common::vm_perf().args(args).current_dir(scratch(test)),
        stdin,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!(
        "vm-perf {args:?}: status {:?}\nstderr: {stderr}",
        out.status
    );
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {what}"));
    assert!(!stderr.contains("panicked"), "panic: {what}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "panic: {what}");
    assert!(code == 0 || !stderr.is_empty(), "silent failure: {what}");
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        first_line: stderr.lines().next().unwrap_or("").to_string(),
    }
}

/// Runs `source` as the file `input.vm` with `args`.
fn run_file(test: &str, source: &[u8], args: &[&str]) -> Outcome {
    std::fs::write(scratch(test).join("input.vm"), source).unwrap();
    let mut all = vec!["run", "input.vm"];
    all.extend_from_slice(args);
    vm_perf(test, &all, b"")
}

/// A source error must say where: `input.vm:LINE:COL: ` with numbers.
fn assert_located(o: &Outcome) {
    let rest = o
        .first_line
        .strip_prefix("input.vm:")
        .unwrap_or_else(|| panic!("not located: {}", o.first_line));
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().unwrap();
    let col = parts.next().unwrap_or("");
    assert!(
        line.parse::<usize>().is_ok() && col.parse::<usize>().is_ok(),
        "no line:column in {}",
        o.first_line
    );
}

/// A source that must be refused with a located error.
macro_rules! refused {
    ($($name:ident: $source:expr;)*) => {$(
        #[test]
        fn $name() {
            let o = run_file(stringify!($name), AsRef::<[u8]>::as_ref(&$source), &[]);
            assert_ne!(o.code, 0, "accepted: {}", o.stdout);
            assert_located(&o);
            insta::assert_snapshot!(o.summary());
        }
    )*};
}

/// A run (any outcome) whose result is pinned: `source`, then arguments.
macro_rules! pinned {
    ($($name:ident: $source:expr, [$($arg:expr),*];)*) => {$(
        #[test]
        fn $name() {
            let o = run_file(stringify!($name), AsRef::<[u8]>::as_ref(&$source), &[$($arg),*]);
            insta::assert_snapshot!(o.summary());
        }
    )*};
}

fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

refused! {
    binary_garbage: garbage(4096, 1);
    binary_garbage_printable_start: [b"1 + ".as_slice(), &garbage(64, 2)].concat();
    nul_byte: b"\0";
    nul_after_code: b"let x = 1;\nx\0";
    delete_char: b"1 \x7f";
    invalid_utf8: b"1 + \xff";
    invalid_utf8_in_comment: b"// caf\xc3\x28\n1";
    invalid_utf8_on_line_3: b"1;\n2;\n  3 + \xc0\xaf";
    truncated_utf8_at_end: b"1 \xe2\x82";
    utf16_le_bom: b"\xff\xfe1\x00";
    utf8_bom: "\u{feff}1";
    greek_name: "let λ = 1; λ";
    emoji: "1 + 🙂";
    line_separator: "1 +\u{2028}2";
    fullwidth_digit: "１";
    unclosed_brace: "{ 1";
    unmatched_brace: "1 }";
    unmatched_paren: "1)";
    unclosed_paren: "(1";
    lone_minus: "-";
    double_minus: "--1";
    juxtaposed_literals: "1 2";
    let_alone: "let";
    let_without_init: "let x";
    let_without_value: "let x =";
    let_without_body: "let x = 1";
    let_with_number_name: "let 1 = 2; 3";
    let_as_operand: "1 + let x = 2";
    unknown_name: "x";
    assign_unknown: "y = 1";
    name_used_in_own_init: "let x = x; x";
    name_out_of_block: "{ let y = 1; y }; y";
    while_alone: "while";
    while_without_body: "while 1";
    while_body_not_block: "while 1 2";
    arg_without_parens: "arg 1";
    arg_empty: "arg()";
    arg_negative: "arg(-1)";
    arg_name: "let x = 0; arg(x)";
    arg_unclosed: "arg(1";
    literal_too_big: "9223372036854775808";
    literal_too_small: "-9223372036854775809";
    literal_of_ten_thousand_digits: "7".repeat(10_000);
    literal_with_suffix: "12abc";
    hex_literal: "0x10";
    crlf_error_position: "let x = 1;\r\n\r\n  x + zz\r\n";
    tab_error_position: "\t\t1 +";
    long_unknown_name: "n".repeat(1 << 20);
    sum_one_past_the_depth_limit: vec!["1"; 1001].join(" + ");
    lets_one_past_the_depth_limit: "let a = 1;\n".repeat(1000) + "a";
    parens_one_past_the_nesting_limit: "(".repeat(1001) + "1" + &")".repeat(1001);
    braces_one_past_the_nesting_limit: "{".repeat(1001) + &"}".repeat(1001);
    million_lets: "let a = 1;\n".repeat(1_000_000) + "a";
    million_lets_without_body: "let a = 1;\n".repeat(1_000_000);
    million_items: "1;\n".repeat(1_000_000);
    million_open_parens: "(".repeat(1_000_000);
    million_pluses: "+".repeat(1_000_000);
}

pinned! {
    empty_file: b"", [];
    minus_space_digit: "- 1", [];
    subtraction: "1 - 2", [];
    only_whitespace: b" \n\t\r\n", [];
    only_a_comment_without_newline: b"// nothing", [];
    sum_at_the_depth_limit: vec!["1"; 1000].join(" + "), [];
    lets_at_the_depth_limit: "let a = 1;\n".repeat(999) + "a", [];
    arg_index_beyond_any_args: "arg(9223372036854775807)", [];
    too_few_arguments: "arg(0) + arg(2)", ["1"];
    argument_too_big: "arg(0)", ["9223372036854775808"];
    argument_too_small: "arg(0)", ["-9223372036854775809"];
    argument_with_exponent: "arg(0)", ["1e3"];
    argument_hex: "arg(0)", ["0x10"];
    argument_empty: "arg(0)", [""];
    argument_with_space: "arg(0)", [" 1"];
    argument_arabic_digit: "arg(0)", ["٣"];
    argument_extremes_wrap: "arg(0) + arg(1)", ["9223372036854775807", "1"];
    argument_negative_extreme: "arg(0)", ["-9223372036854775808"];
}

#[test]
fn hundred_megabytes_of_plus_fail_fast_at_1_1() {
    let path = scratch("plus").join("plus.vm");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'+'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
    }
    let o = vm_perf("plus", &["run", "plus.vm"], b"");
    std::fs::remove_file(&path).unwrap();
    assert!(
        o.first_line.starts_with("plus.vm:1:1: "),
        "{}",
        o.first_line
    );
    insta::assert_snapshot!(o.summary());
}

#[test]
fn garbage_on_standard_input() {
    let o = vm_perf("stdin", &["run", "-"], &garbage(1000, 3));
    assert!(o.first_line.starts_with("-:"), "{}", o.first_line);
    insta::assert_snapshot!(o.summary());
}

#[test]
fn missing_file() {
    insta::assert_snapshot!(vm_perf("missing", &["run", "no-such-file.vm"], b"").summary());
}

#[test]
fn directory_as_file() {
    insta::assert_snapshot!(vm_perf("dir", &["run", "."], b"").summary());
}

#[test]
fn unknown_engine() {
    let o = vm_perf("engine", &["run", "--engine", "no_such_engine", "-"], b"1");
    assert_ne!(o.code, 0);
    assert!(
        o.first_line
            .starts_with("vm-perf: error: unknown engine `no_such_engine`"),
        "{}",
        o.first_line
    );
}

#[test]
fn bad_timeout_value() {
    let o = vm_perf("timeout", &["run", "--timeout", "soon", "-"], b"1");
    insta::assert_snapshot!(o.summary());
}

/// Every token in every place a program can be cut: the prefix, then the
/// token, then the end of input. Pinned as one table, one line per input.
#[test]
fn every_token_in_every_place() {
    let prefixes = [
        "",
        "let ",
        "let x ",
        "let x = ",
        "let x = 1; x ",
        "1 + ",
        "while ",
        "while 1 ",
        "arg ",
        "arg(",
        "arg(1 ",
        "( ",
        "let x = 1; x = ",
        "1 ",
        "{ ",
        "{ 1; ",
    ];
    let tokens = [
        "7", "x", "let", "while", "arg", "=", ";", "+", "(", ")", "{", "}", "-", "#", "",
    ];
    let mut table = String::new();
    for prefix in prefixes {
        for token in tokens {
            let source = format!("{prefix}{token}");
            let o = run_file("tokens", source.as_bytes(), &["5", "6"]);
            if o.code != 0 {
                assert_located(&o);
            }
            let result = if o.code == 0 {
                format!("ok {}", o.stdout.trim_end())
            } else {
                o.first_line
            };
            table.push_str(&format!("{source:<22} | {result}\n"));
        }
    }
    insta::assert_snapshot!(table);
}
