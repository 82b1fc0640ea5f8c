//! Instruction counts of the execute stage, with valgrind's callgrind.
//!
//! Times on a shared machine move by percents from run to run; the number
//! of instructions an execution retires does not. `vm-perf bench
//! --instructions` re-runs this binary (the hidden `instructions-child`
//! subcommand) under
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no
//!          --toggle-collect=*::measured_execute --dump-after=*::measured_execute
//! ```
//!
//! so callgrind counts only inside [`measured_execute`], which runs one
//! execution and nothing else, and writes one numbered dump per call. The
//! child compiles and warms each cell outside that function, prints one line
//! per cell in order, and the parent pairs the lines with the dumps.
//! No client requests (and so no `unsafe`) are needed.
//!
//! When valgrind is not installed the command says so and succeeds, so CI
//! can call it unconditionally.

use super::case::{Candle, Case, Subject};
use super::counts::{Count, InstructionCounts};
use super::machine::{Build, Machine};
use super::report::{json, write_all};
use super::results::Results;
use super::runner::{subject_info, workload_info};
use super::settings::Settings;
use super::table::{count_grids, markdown, terminal};
use crate::clock::Clock;
use crate::engine::{Engine, Executable, RunError};
use crate::reference::stack::{declared_stack, on_native_stack};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one measured call runs.
pub enum Code<'a> {
    Engine(&'a dyn Executable),
    Native(Candle),
}

/// The one function callgrind counts: exactly one execution.
#[inline(never)]
pub fn measured_execute(code: &Code, args: &[i64]) -> Result<i64, RunError> {
    match code {
        Code::Engine(exe) => exe.execute(std::hint::black_box(args)),
        Code::Native(f) => Ok(f(std::hint::black_box(args))),
    }
}

/// Whether `valgrind` can be started.
pub fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An engine's compiled program, or why it refused.
type Compiled = Result<Box<dyn Executable>, String>;

/// The child: every selected cell, in order; one `cell` line each.
/// Format: `cell SUBJECT WORKLOAD ITERATIONS measured` or `... n/a REASON`.
pub fn child(out: &mut impl Write, engines: &[&dyn Engine], cases: &[Case]) -> Result<(), String> {
    for case in cases {
        // Each case on the native stack its engines declare; its lines are
        // written in order once the case is done (callgrind's dumps keep
        // that order too).
        let stack = declared_stack(engines.iter().copied(), &case.program);
        let (lines, done) = on_native_stack(stack, || {
            let mut lines = Vec::new();
            let done = child_case(&mut lines, engines, case);
            (lines, done)
        });
        out.write_all(&lines).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        done?;
    }
    Ok(())
}

/// One case of [`child`]: its `cell` lines into `out`.
fn child_case(out: &mut Vec<u8>, engines: &[&dyn Engine], case: &Case) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut subjects: Vec<(&str, Compiled)> = Vec::new();
    for e in engines {
        let code = case
            .form(*e)
            .and_then(|form| form.compile(&case.program).map_err(|x| x.to_string()))
            // An engine that times its own calls runs in a helper process
            // (LuaJIT), where this process's callgrind cannot count.
            .and_then(
                |exe| match exe.execute_timed(&case.args, 1, case.expected, Clock::Thread) {
                    Ok(Some(_)) => {
                        Err("runs in a helper process that callgrind does not see".into())
                    }
                    _ => Ok(exe),
                },
            );
        subjects.push((e.name(), code));
    }
    let candles: Vec<(&str, Candle)> = match case.candles {
        Some((rust, opt)) => vec![("rust", rust), ("rust_opt", opt)],
        None => vec![],
    };
    let run = |out: &mut dyn Write, name: &str, code: Code| -> Result<(), String> {
        // Warm-up outside the counted function: first-touch work is not
        // the technique's cost.
        let warm = match &code {
            Code::Engine(exe) => exe.execute(&case.args),
            Code::Native(f) => Ok(f(&case.args)),
        };
        let value = measured_execute(&code, &case.args);
        if value != Ok(case.expected) || warm != value {
            return Err(format!(
                "{name} on {}: returned {value:?}, expected {}",
                case.name, case.expected
            ));
        }
        writeln!(
            out,
            "cell {name} {} {} measured",
            case.name, case.iterations
        )
        .map_err(io)?;
        out.flush().map_err(io)
    };
    for (name, code) in &subjects {
        match code {
            Ok(exe) => run(out, name, Code::Engine(exe.as_ref()))?,
            Err(why) => writeln!(
                out,
                "cell {name} {} {} n/a {}",
                case.name,
                case.iterations,
                why.replace('\n', " ")
            )
            .map_err(io)?,
        }
    }
    for (name, f) in candles {
        run(out, name, Code::Native(f))?;
    }
    Ok(())
}

/// Pairs the child's `cell` lines with callgrind's numbered dumps.
pub fn pair(
    lines: &str,
    dump: &dyn Fn(usize) -> Result<u64, String>,
) -> Result<Vec<Count>, String> {
    let mut counts = Vec::new();
    let mut n = 0;
    for line in lines.lines() {
        let mut parts = line.splitn(6, ' ');
        if parts.next() != Some("cell") {
            continue;
        }
        let (Some(subject), Some(workload), Some(iters), Some(status)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("malformed child line `{line}`"));
        };
        let (instructions, refused) = if status == "measured" {
            n += 1;
            (Some(dump(n)?), None)
        } else {
            (None, Some(parts.next().unwrap_or("refused").to_string()))
        };
        counts.push(Count {
            subject: subject.into(),
            workload: workload.into(),
            iterations: iters
                .parse()
                .map_err(|_| format!("bad iteration count in `{line}`"))?,
            instructions,
            refused,
        });
    }
    Ok(counts)
}

/// Reads the `summary:` (or `totals:`) line of a callgrind dump.
pub fn read_dump(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{}: no summary line", path.display()))
}

/// The parent: runs the child under callgrind, prints the tables, and
/// writes the counts into the reports of `out_dir` ([`keep`]), which it
/// returns. `child_args` are the arguments that make this executable run
/// [`child`] on the same `engines` and `cases` (the command line's hidden
/// `instructions-child` subcommand). `None`: valgrind is not installed.
pub fn run(
    out: &mut impl Write,
    child_args: &[String],
    engines: &[&dyn Engine],
    cases: &[Case],
    out_dir: &Path,
) -> Result<Option<Results>, String> {
    let io = |e: std::io::Error| e.to_string();
    if !valgrind_available() {
        writeln!(
            out,
            "valgrind not found: instruction counts skipped (install valgrind to count them)"
        )
        .map_err(io)?;
        return Ok(None);
    }
    let started = std::time::SystemTime::now();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("vm-perf-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let exe = std::env::current_exe().map_err(io)?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*::measured_execute")
        .arg("--dump-after=*::measured_execute")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("cg.out").display()
        ))
        .arg(format!("--log-file={}", dir.join("valgrind.log").display()))
        .arg(&exe)
        .args(child_args);
    let total = cases.len() * (engines.len() + 2);
    eprintln!("vm-perf: counting instructions under callgrind ({total} cells; this takes a while)");
    let bar = indicatif::ProgressBar::new(total as u64);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start valgrind: {e}"))?;
    let mut lines = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.map_err(io)?;
        bar.inc(1);
        lines.push_str(&line);
        lines.push('\n');
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let status = child.wait().map_err(io)?;
    bar.finish_and_clear();
    if !status.success() {
        let log = std::fs::read_to_string(dir.join("valgrind.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "the callgrind run failed ({status}): {}{}",
            stderr.trim(),
            log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        ));
    }
    let counts = pair(&lines, &|n| read_dump(&dir.join(format!("cg.out.{n}"))));
    let _ = std::fs::remove_dir_all(&dir);
    let counts = counts?;
    let mut md = String::from("# Instruction counts\n\n");
    for g in count_grids(&counts) {
        writeln!(out, "{}", terminal(&g)).map_err(io)?;
        md.push_str(&markdown(&g));
        md.push('\n');
    }
    std::fs::create_dir_all(out_dir).map_err(io)?;
    let path = out_dir.join("instructions.md");
    std::fs::write(&path, md).map_err(io)?;
    let counts = InstructionCounts {
        machine: Machine::detect(),
        build: Build::current(),
        started_unix: started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        counts,
    };
    let results = keep(out_dir, counts, engines, cases)?;
    writeln!(
        out,
        "Written to {} and, beside the times, to {}/{{results.json, results.md, index.html}}",
        path.display(),
        out_dir.display()
    )
    .map_err(io)?;
    Ok(Some(results))
}

impl InstructionCounts {
    /// The instruction counts kept in `dir/results.json`, if it has any.
    pub fn kept_in(dir: &Path) -> Option<InstructionCounts> {
        kept_results(dir)?.instructions
    }
}

/// The results a run left in `dir/results.json`, if it left any.
fn kept_results(dir: &Path) -> Option<Results> {
    let text = std::fs::read_to_string(dir.join("results.json")).ok()?;
    json::parse(&text).ok()
}

/// Puts `counts` into the results of `out_dir` and rewrites its reports:
/// into the `results.json` a timed `bench` left there (its times kept), or
/// into results of their own when there is none.
pub fn keep(
    out_dir: &Path,
    counts: InstructionCounts,
    engines: &[&dyn Engine],
    cases: &[Case],
) -> Result<Results, String> {
    let mut results = kept_results(out_dir).unwrap_or_else(|| {
        let mut subjects: Vec<Subject> = engines.iter().map(|e| Subject::Engine(*e)).collect();
        if cases.iter().any(|c| c.candles.is_some()) {
            subjects.extend([Subject::Rust, Subject::RustOpt]);
        }
        Results {
            machine: counts.machine.clone(),
            build: counts.build.clone(),
            settings: Settings::full(),
            started_unix: counts.started_unix,
            wall_seconds: 0.0,
            workloads: cases.iter().map(workload_info).collect(),
            subjects: subjects.iter().map(subject_info).collect(),
            cells: Vec::new(),
            instructions: None,
            geomeans: Vec::new(),
        }
    });
    results.instructions = Some(counts);
    write_all(&results, out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_lines_with_dumps_in_order() {
        let lines = "cell walker sum 10 measured\ncell lua sum 10 n/a too deep\nnoise\ncell rust sum 10 measured\n";
        let counts = pair(lines, &|n| Ok(100 * n as u64)).unwrap();
        assert_eq!(counts.len(), 3);
        assert_eq!(counts[0].instructions, Some(100));
        assert_eq!(counts[1].instructions, None);
        assert_eq!(counts[1].refused.as_deref(), Some("too deep"));
        assert_eq!(counts[2].instructions, Some(200));
        let g = count_grids(&counts);
        assert_eq!(g[0].rows[0][0], "walker");
        assert_eq!(g[0].rows[0][2], "10.0");
        assert_eq!(
            (g[0].rows[1][2].as_str(), g[0].rows[2][2].as_str()),
            ("20.0", "n/a")
        );
    }

    #[test]
    fn child_verifies_and_lists_every_cell() {
        let cases = vec![Case::builtin(crate::workloads::workload("sum").unwrap())];
        let mut out = Vec::new();
        child(&mut out, crate::engine::engines(), &cases).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), crate::engine::engines().len() + 2);
    }
}
