//! `vm-perf bench` behind one call: [`run`] takes what the user asked for
//! ([`Request`]) and does the rest in order: the engines and cases it names
//! (a user's suite is loaded and pre-flighted, its `// expect:` headers
//! checked), the settings, the interleaved run with its progress bar, the
//! tables, the report files and the README section. With `instructions` it
//! counts instructions under callgrind instead, re-running this binary on
//! the same selection ([`child_args`], [`instructions_child`]).
//!
//! Every message is the command line's: the CLI prints the error it gets.

use super::case::Case;
use super::results::Results;
use super::settings::Settings;
use super::suite::{self, Error, Source};
use super::{counts, instructions, preflight, report, runner, table};
use crate::clock::Clock;
use crate::engine::{Engine, engines, find};
use crate::workloads::{WORKLOADS, workload};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Which engines and programs a run measures.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Engine names (empty: every engine); `walker` is always kept.
    pub engines: Vec<String>,
    /// Built-in workload names (empty: every workload).
    pub workloads: Vec<String>,
    /// Program files and folders, each file followed by its arguments;
    /// when given, they are measured instead of the built-in workloads.
    pub paths: Vec<String>,
}

/// Everything `vm-perf bench` is asked.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub selection: Selection,
    /// The short run ([`Settings::quick`]).
    pub quick: bool,
    /// Folder of the report files.
    pub out: PathBuf,
    /// Count instructions with callgrind instead of timing.
    pub instructions: bool,
    /// A README whose results section is replaced, and where its charts go
    /// (relative to it).
    pub readme: Option<PathBuf>,
    pub readme_charts: String,
    pub seed: Option<u64>,
    pub clock: Option<Clock>,
    /// The pre-flight's limit for one execution of a user's program.
    pub timeout: Option<Duration>,
}

/// The engines `names` select, in registry order; `walker` always.
pub fn selected_engines(names: &[String]) -> Result<Vec<&'static dyn Engine>, String> {
    for n in names {
        find(n)?;
    }
    Ok(engines()
        .iter()
        .copied()
        .filter(|e| names.is_empty() || e.name() == "walker" || names.iter().any(|n| n == e.name()))
        .collect())
}

/// The cases a selection names: a user's suite of files and folders, or
/// built-in workloads. Each user file goes through the pre-flight for
/// `engines`, under `timeout` when one is given.
fn selected_cases(
    sel: &Selection,
    engines: &[&dyn Engine],
    timeout: Option<Duration>,
) -> Result<Vec<Case>, Error> {
    if !sel.paths.is_empty() {
        if !sel.workloads.is_empty() {
            return Err(
                "`--workload` selects built-in workloads: give either it or program files"
                    .to_string()
                    .into(),
            );
        }
        let entries = suite::entries(&sel.paths)?;
        let mut cases = Vec::new();
        for entry in &entries {
            let (Source { text, program }, args) = suite::load(&entry.file, entry.args.as_deref())?;
            let case = preflight::user_case(&entry.file, &text, program, args, engines, timeout)?;
            suite::check_expected(entry, &text, case.expected)?;
            cases.push(case);
        }
        suite::check_names(&entries, &cases)?;
        return Ok(cases);
    }
    if let Some(n) = sel.workloads.iter().find(|n| workload(n).is_none()) {
        let names: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
        return Err(format!("unknown workload `{n}` (available: {})", names.join(", ")).into());
    }
    Ok(WORKLOADS
        .iter()
        .filter(|w| sel.workloads.is_empty() || sel.workloads.iter().any(|n| n == w.name))
        .map(Case::builtin)
        .collect())
}

/// Measures what `request` names and writes the reports.
pub fn run(out: &mut impl Write, request: &Request) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Message(format!("cannot write output: {e}"));
    let engines = selected_engines(&request.selection.engines)?;
    let cases = selected_cases(&request.selection, &engines, request.timeout)?;
    if request.instructions {
        let child = child_args(&request.selection, &engines, &cases);
        let counted = instructions::run(out, &child, &engines, &cases, &request.out)?;
        if let Some(results) = counted {
            update_readme(out, &results, request)?;
        }
        return Ok(());
    }
    warn_if_debug();
    let mut settings = if request.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    settings.seed = request.seed.unwrap_or(settings.seed);
    settings.clock = request.clock.unwrap_or(settings.clock);
    // A user's programs have no native candles.
    let candles = cases.iter().filter(|c| c.candles.is_some()).count();
    let cells = cases.len() * engines.len() + 2 * candles;
    let (rounds, _) = settings.plan(cells);
    eprintln!(
        "vm-perf bench: {} engines × {} workloads{}, {rounds} interleaved rounds, about {:.0} s of sampling ({})",
        engines.len(),
        cases.len(),
        if candles > 0 { " (+ candles)" } else { "" },
        settings.budget_seconds,
        settings.clock
    );
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed:>4} [{bar:40}] {pos}/{len} samples, {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut results = runner::run(&cases, &engines, true, &settings, &bar)
        .map_err(|e| format!("wrong result: {e}"))?;
    // Instruction counts an earlier `--instructions` left in this folder stay.
    results.instructions = counts::InstructionCounts::kept_in(&request.out);
    for g in table::grids(&results) {
        writeln!(out, "{}", table::terminal(&g)).map_err(io)?;
    }
    writeln!(
        out,
        "Machine: {}\nBuild: {}",
        results.machine.line(),
        results.build.line()
    )
    .map_err(io)?;
    let refused = results.cells.iter().filter(|c| c.refused.is_some()).count();
    if refused > 0 {
        writeln!(
            out,
            "{refused} cells n/a (engine refused the program; reasons in results.md)"
        )
        .map_err(io)?;
    }
    report::write_all(&results, &request.out)
        .map_err(|e| format!("{}: {e}", request.out.display()))?;
    writeln!(
        out,
        "Measured for {:.1} s; every execution verified. Reports: {}/{{results.json, results.csv, results.md, index.html}}",
        results.wall_seconds,
        request.out.display()
    )
    .map_err(io)?;
    update_readme(out, &results, request)
}

/// Replaces the results section of the README the request names, if any.
fn update_readme(out: &mut impl Write, results: &Results, request: &Request) -> Result<(), Error> {
    let Some(readme) = &request.readme else {
        return Ok(());
    };
    report::update_readme(results, readme, &request.readme_charts)?;
    writeln!(out, "Updated the results section of {}", readme.display())
        .map_err(|e| format!("cannot write output: {e}"))?;
    Ok(())
}

/// The arguments of the hidden `instructions-child` subcommand that select
/// the same engines and cases (the harness runs it under callgrind).
fn child_args(sel: &Selection, engines: &[&dyn Engine], cases: &[Case]) -> Vec<String> {
    let mut args = vec!["instructions-child".to_string()];
    for e in engines {
        args.extend(["--engine".into(), e.name().into()]);
    }
    if sel.paths.is_empty() {
        for c in cases {
            args.extend(["--workload".into(), c.name.clone()]);
        }
    } else {
        args.push("--".into());
        args.extend(sel.paths.iter().cloned());
    }
    args
}

/// The process [`child_args`] starts: every selected cell, counted.
pub fn instructions_child(out: &mut impl Write, sel: &Selection) -> Result<(), Error> {
    let engines = selected_engines(&sel.engines)?;
    let cases = selected_cases(sel, &engines, None)?;
    Ok(instructions::child(out, &engines, &cases)?)
}

/// Times from a debug build mean little: say so on stderr.
pub fn warn_if_debug() {
    if cfg!(debug_assertions) {
        eprintln!(
            "vm-perf: warning: this is a debug build; times mean little. Use `cargo run --release`."
        );
    }
}
