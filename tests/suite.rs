//! `vm-perf bench PATH...`: a user's suite of program files and folders,
//! each file with its `// args:` header, measured together in one run with
//! per-program and geometric-mean results like the built-in workloads; and
//! the errors that name the file at fault.

mod common;

use std::path::{Path, PathBuf};
use vm_perf::harness::report::json;

/// A temporary folder, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("vm-perf-suite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(args: &[&Path]) -> (Option<i32>, String, String) {
    let out = common::vm_perf([Path::new("bench")].iter().chain(args), b"");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const COUNT: &str = "// Counts down from arg(0), adding arg(1) each time.
// args: 200 3
// expect: 600
// iterations: arg0
let total = 0;
{ let n = arg(0); while n { total = total + arg(1); n = n + -1 } };
total
";

#[test]
fn a_folder_of_three_programs_is_one_run() {
    let d = Dir::new("three");
    let progs = d.0.join("progs");
    d.file("progs/count.vm", COUNT);
    d.file("progs/constant.vm", "// No arguments at all.\n40 + 2\n");
    d.file(
        "progs/square.vm",
        "// arg(0) squared by repeated addition.\n// args: 30\n// iterations: arg0\n\
         let s = 0; { let i = arg(0); while i { s = s + arg(0); i = i + -1 } }; s\n",
    );
    d.file("progs/notes.txt", "not a program");
    let out = d.0.join("report");
    let (code, stdout, stderr) = bench(&[
        Path::new("--quick"),
        &progs,
        Path::new("-e"),
        Path::new("walker"),
        Path::new("-e"),
        Path::new("bytecode"),
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("2 engines × 3 workloads"), "{stderr}");
    let r = json::parse(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let names: Vec<_> = r.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["constant", "count", "square"]);
    let count = &r.workloads[1];
    assert_eq!(
        (count.args.as_slice(), count.expected, count.iterations),
        (&[200, 3][..], 600, 200)
    );
    assert_eq!(r.workloads[2].expected, 900);
    for w in &names {
        for e in ["walker", "bytecode"] {
            let cell = r.cell(e, w).unwrap_or_else(|| panic!("{e} on {w}"));
            assert!(
                cell.execute.is_some() && cell.compile.is_some(),
                "{e} on {w}"
            );
        }
    }
    // No candles for user programs: ratios and the geomean are to walker.
    assert!(!r.has("rust"));
    assert!(r.geomean_ratio("bytecode", "walker").is_some());
    assert!(stdout.contains("geomean vs walker"), "{stdout}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for id in [
        "chart-constant",
        "chart-count",
        "chart-square",
        "breakeven-count",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("overtakes the best interpreter"), "{md}");
}

#[test]
fn a_program_that_needs_arguments_it_is_not_given_is_named() {
    let d = Dir::new("noargs");
    let progs = d.0.join("progs");
    d.file("progs/fine.vm", COUNT);
    let needy = d.file(
        "progs/needy.vm",
        "// Reads two arguments.\narg(0) + arg(1)\n",
    );
    let (code, _, stderr) = bench(&[Path::new("--quick"), &progs]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim_end(),
        format!(
            "vm-perf: error: {}: the program needs 2 arguments, 0 given (none after it, and no `// args:` header)",
            needy.display()
        )
    );
    // Standard input is a program like any other.
    let out = common::vm_perf(["bench", "--quick", "-"], b"arg(0)");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "vm-perf: error: -: the program needs 1 argument, 0 given (none after it, and no `// args:` header)"
    );
    // A header with too few is named too.
    let short = d.file("short.vm", "// args: 1\narg(0) + arg(1)\n");
    let (code, _, stderr) = bench(&[&short]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.ends_with(
            "short.vm: the program needs 2 arguments, 1 given by its `// args:` header\n"
        ),
        "{stderr}"
    );
}

#[test]
fn headers_and_names_are_checked_before_measuring() {
    let d = Dir::new("checks");
    let wrong = d.file("wrong.vm", "// args: 2\n// expect: 5\narg(0) + 2\n");
    let (code, _, stderr) = bench(&[&wrong]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.ends_with("wrong.vm: walker computes 4, but its `// expect:` header says 5\n"),
        "{stderr}"
    );
    let bad = d.file("bad.vm", "// args: 2 x\narg(0)\n");
    let (_, _, stderr) = bench(&[&bad]);
    assert!(
        stderr.ends_with("bad.vm: its `// args:` header: program argument 2 `x` is not a decimal 64-bit integer\n"),
        "{stderr}"
    );
    let a = d.file("a/same.vm", "1\n");
    let b = d.file("b/same.vm", "2\n");
    let (code, _, stderr) = bench(&[&a, &b]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("are both named `same`"), "{stderr}");
    let (code, _, stderr) = bench(&[Path::new("7"), &a]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("argument `7` comes before any program file"),
        "{stderr}"
    );
}
