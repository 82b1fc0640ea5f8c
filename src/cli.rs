//! The command line, and only glue: it parses the arguments, loads the
//! program, and hands over to the registry, the reference and the harness.
//! `run` and `list` follow `docs/LANGUAGE.md` to the letter; everything else
//! (`show`, the benchmark) builds on the same registry. Without a
//! subcommand, `vm-perf` runs `bench`: the main job.

use crate::engine::{Engine, Executable, RunError, engine, engines};
use crate::front::{SourceError, compile_source, decode, program::Program};
use crate::guard::with_timeout;
use crate::reference::{BudgetError, Exemption, Reach, eval_reach, form_for, reach};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vm-perf",
    version,
    about = "A fair, measured comparison of interpreter techniques"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a program and print its value.
    #[command(
        after_help = "Exit status: 0 the value was printed; 1 bad input or the program \
cannot run (on that engine: it refuses the program, or a value would leave its exact \
range); 2 bad command line; 124 the program did not finish within --timeout."
    )]
    Run {
        /// Engine to run with, or `all` to run every engine and compare.
        #[arg(long, short, default_value = "walker")]
        engine: String,
        /// Stop the program after SECS seconds (fractions allowed) with exit
        /// status 124 and a message on stderr. No engine is slowed down by it.
        #[arg(long, value_name = "SECS", value_parser = crate::guard::parse_seconds)]
        timeout: Option<std::time::Duration>,
        /// Program file, or `-` for standard input.
        file: String,
        /// Arguments: decimal 64-bit integers, negative ones too.
        #[arg(allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Print the name of every available engine, one per line.
    List {
        /// Also print each engine's tier and summary.
        #[arg(long)]
        long: bool,
    },
    /// Print what an engine compiled a program into.
    Show {
        #[arg(long, short, default_value = "walker")]
        engine: String,
        /// Program file, or `-` for standard input.
        file: String,
    },
    /// Run every workload on every engine and print the values.
    Check,
    /// Measure every engine on every workload (the default command).
    Bench(BenchArgs),
    /// Compile time against program size, execute time against iterations.
    Scale(ScaleArgs),
    /// Set one `bench` run's results.json against another's: the change
    /// per engine and workload with its interval, per engine and in rank.
    #[command(
        after_help = "Exit status: 0 compared; 1 a file cannot be read; 2 bad command line; \
3 --fail-above PCT found an engine significantly slower than in BASE on some workload by more than PCT percent."
    )]
    Compare(CompareArgs),
    /// Internal: the process `bench --instructions` runs under callgrind.
    #[command(hide = true)]
    InstructionsChild(Selection),
}

/// Which engines and programs to measure.
#[derive(clap::Args, Default, Clone)]
struct Selection {
    /// Only this engine (repeatable); `walker` is always kept as the reference.
    #[arg(long = "engine", short = 'e')]
    pub engines: Vec<String>,
    /// Only this built-in workload (repeatable).
    #[arg(long = "workload", short = 'w')]
    pub workloads: Vec<String>,
    /// Measure these program files and folders of `.vm` files together
    /// instead of the built-in workloads (`-`: standard input). The decimal
    /// integers after a file are its arguments; a file without any, and
    /// every file of a folder, takes those of its `// args:` header.
    #[arg(value_name = "PATH", allow_negative_numbers = true)]
    pub paths: Vec<String>,
}

#[derive(clap::Args, Default)]
struct BenchArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// A short run (about 15 s): fewer rounds, shorter samples.
    #[arg(long)]
    pub quick: bool,
    /// Folder for results.json, results.csv, results.md, index.html, charts/.
    #[arg(long, default_value = "report")]
    pub out: std::path::PathBuf,
    /// Count instructions of the execute stage with callgrind instead of timing.
    #[arg(long)]
    pub instructions: bool,
    /// Also replace the results section of this README (between
    /// `<!-- results:start -->` and `<!-- results:end -->`).
    #[arg(long)]
    pub readme: Option<std::path::PathBuf>,
    /// Where `--readme` puts the chart SVGs, relative to the README.
    #[arg(long, default_value = "docs/results")]
    pub readme_charts: String,
    /// Seed for the shuffled round order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Clock for the samples (`thread`: CPU time of the measuring thread,
    /// robust on a busy machine; `wall`: elapsed time).
    #[arg(long, value_enum)]
    pub clock: Option<crate::harness::Clock>,
    /// For a program file: stop with exit status 124 if one execution of it
    /// on any engine takes longer than SECS seconds (checked once per engine
    /// before measuring; the built-in workloads are known to finish).
    #[arg(long, value_name = "SECS", value_parser = crate::guard::parse_seconds)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(clap::Args, Default)]
struct ScaleArgs {
    /// Only this engine (repeatable).
    #[arg(long = "engine", short = 'e')]
    pub engines: Vec<String>,
    /// Smaller sizes and fewer repetitions.
    #[arg(long)]
    pub quick: bool,
    /// Largest generated program, in AST nodes.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_nodes: usize,
    /// Folder for scale.md.
    #[arg(long, default_value = "report")]
    pub out: std::path::PathBuf,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// results.json of the run to compare against.
    pub base: std::path::PathBuf,
    /// results.json of the run with the change.
    pub new: std::path::PathBuf,
    /// Exit with status 3 when an engine is significantly slower on some
    /// workload by more than PCT percent (for CI).
    #[arg(long, value_name = "PCT")]
    pub fail_above: Option<f64>,
    /// Print Markdown, for a pull request, instead of terminal tables.
    #[arg(long)]
    pub markdown: bool,
    /// Compare each engine's ratio to ENGINE on the same workload in its
    /// own run, so that drift of the machine between runs cancels.
    #[arg(long, value_name = "ENGINE")]
    pub relative_to: Option<String>,
}

/// A failure the CLI reports: the first line names the cause.
enum Failure {
    Source(SourceError),
    Plain(String),
    /// `compare --fail-above`: a slowdown (exit status 3).
    Slower(String),
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Source(e)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Plain(message.into()))
}

/// Entry point of the `vm-perf` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Some(Command::Run {
            engine,
            timeout,
            file,
            args,
        }) => run(&mut out, &engine, &file, &args, timeout),
        Some(Command::List { long }) => list(&mut out, long),
        Some(Command::Show { engine, file }) => show(&mut out, &engine, &file),
        Some(Command::Check) => check(&mut out),
        Some(Command::Bench(args)) => bench(&mut out, &args),
        None => bench(
            &mut out,
            &BenchArgs {
                out: "report".into(),
                readme_charts: "docs/results".into(),
                ..BenchArgs::default()
            },
        ),
        Some(Command::Scale(args)) => scale(&mut out, &args),
        Some(Command::Compare(args)) => compare(&mut out, &args),
        Some(Command::InstructionsChild(sel)) => instructions_child(&mut out, &sel),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Source(e)) => {
            eprint!("{}", e.render(std::io::stderr().is_terminal()));
            ExitCode::FAILURE
        }
        Err(Failure::Plain(message)) => {
            eprintln!("vm-perf: error: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Slower(message)) => {
            eprintln!("vm-perf: {message}");
            ExitCode::from(3)
        }
    }
}

/// A program file as the command line names it (`-`: standard input), read
/// once and validated.
struct Source {
    text: String,
    program: Program,
}

/// Reads and validates a program file.
fn read(file: &str) -> Result<Source, Failure> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            return fail(format!("-: cannot read standard input: {e}"));
        }
        buf
    } else {
        match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => return fail(format!("{file}: cannot read file: {e}")),
        }
    };
    let text = decode(file, bytes)?;
    let program = compile_source(file, &text)?;
    Ok(Source { text, program })
}

/// The one way to load a program to run: [`read`] it, parse its arguments
/// (`None`: those of its `// args:` header, as a suite's programs give
/// them) and check there are as many as it reads.
fn load(file: &str, args: Option<&[String]>) -> Result<(Source, Vec<i64>), Failure> {
    let source = read(file)?;
    let header = crate::harness::suite::header_args(&source.text);
    let (args, whence) = match (args, &header) {
        (Some(args), _) => (parse_args(args)?, ""),
        (None, Some(header)) => (
            parse_args(header).or_else(|e| match e {
                Failure::Plain(m) => fail(format!("{file}: its `// args:` header: {m}")),
                source => Err(source),
            })?,
            " by its `// args:` header",
        ),
        (None, None) => (Vec::new(), " (none after it, and no `// args:` header)"),
    };
    if source.program.arg_count() > args.len() {
        let e = crate::engine::ArgError {
            needed: source.program.arg_count(),
            given: args.len(),
        };
        return fail(format!("{file}: {e}{whence}"));
    }
    Ok((source, args))
}

/// Parses command-line program arguments as decimal `i64`s.
fn parse_args(args: &[String]) -> Result<Vec<i64>, Failure> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<i64>().or_else(|_| {
                fail(format!(
                    "program argument {} `{a}` is not a decimal 64-bit integer",
                    i + 1
                ))
            })
        })
        .collect()
}

fn find_engine(name: &str) -> Result<&'static dyn Engine, Failure> {
    engine(name).ok_or_else(|| {
        let names: Vec<_> = engines().iter().map(|e| e.name()).collect();
        Failure::Plain(format!(
            "unknown engine `{name}` (available: {})",
            names.join(", ")
        ))
    })
}

fn io(e: std::io::Error) -> Failure {
    Failure::Plain(format!("cannot write output: {e}"))
}

/// Compiles `program` on `engine`, reporting a refusal as the CLI does.
fn compile_on(engine: &dyn Engine, program: &Program) -> Result<Box<dyn Executable>, Failure> {
    engine.compile(program).or_else(|e| {
        fail(format!(
            "engine `{}` cannot compile this program: {e}",
            engine.name()
        ))
    })
}

/// Compiles and runs `program` on `engine`: the run's value or its own
/// error (the call depth), or why it could not run at all.
fn outcome_on(
    engine: &dyn Engine,
    program: &Program,
    args: &[i64],
) -> Result<Result<i64, RunError>, Failure> {
    Ok(compile_on(engine, program)?.execute(args))
}

/// Compiles and runs `program` on `engine`, reporting errors as the CLI does.
fn run_on(engine: &dyn Engine, program: &Program, args: &[i64]) -> Result<i64, Failure> {
    outcome_on(engine, program, args)?.or_else(|e| fail(e.to_string()))
}

/// A run's outcome as `run` prints it: the value, or the error.
fn shown(outcome: &Result<i64, RunError>) -> String {
    match outcome {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    }
}

fn run(
    out: &mut impl Write,
    engine: &str,
    file: &str,
    args: &[String],
    timeout: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let chosen = if engine == "all" {
        None
    } else {
        Some(find_engine(engine)?)
    };
    let (Source { program, .. }, args) = load(file, Some(args))?;
    // The guard is a watchdog thread around each run: no engine checks a
    // clock or a flag (see `guard`).
    let what = |engine: &dyn Engine| format!("`{file}` on engine `{}`", engine.name());
    let guarded = |engine: &dyn Engine| {
        with_timeout(timeout, &what(engine), || {
            outcome_on(engine, &program, &args)
        })
    };
    // A run without a value fails the command, naming the run's error.
    let failed = |e: RunError| fail::<()>(format!("{file}: {e}"));
    if let Some(engine) = chosen {
        let engine = exact_on(engine, &program, &args, timeout, file)?;
        let value = match guarded(engine)? {
            Ok(value) => value,
            Err(e) => return failed(e),
        };
        return writeln!(out, "{value}").map_err(io);
    }
    // The reference run: walker's value (or its error) and the largest
    // magnitude on the way, which decides who is held to it.
    let (reference, magnitude) = match with_timeout(timeout, &what(engines()[0]), || {
        eval_reach(&program, &args, u64::MAX)
    }) {
        Ok((value, reach)) => (Ok(value), reach),
        // No value to be exact about: every engine is held to the error,
        // but one whose stack holds fewer calls than the limit cannot reach it.
        Err(BudgetError::CallDepthExceeded) => (
            Err(RunError::CallDepthExceeded),
            Reach {
                magnitude: 0,
                calls: Some(crate::MAX_CALLS + 1),
            },
        ),
        Err(e) => return fail(e.to_string()),
    };
    let mut disagree = Vec::new();
    for engine in engines() {
        // The form that runs it (LuaJIT's 64-bit integers beyond 2^53).
        let engine = match form_for(*engine, &program, magnitude) {
            Ok(form) => form,
            Err(Exemption::Unsupported(why)) => {
                writeln!(out, "{} skipped: {why}", engine.name()).map_err(io)?;
                continue;
            }
            Err(Exemption::Inexact { limit, .. }) => {
                writeln!(
                    out,
                    "{} skipped: a value exceeds its exact range {limit}",
                    engine.name()
                )
                .map_err(io)?;
                continue;
            }
            Err(why @ Exemption::TooDeep { .. }) => {
                writeln!(out, "{} skipped: {why}", engine.name()).map_err(io)?;
                continue;
            }
        };
        let got = guarded(engine)?;
        writeln!(out, "{} {}", engine.name(), shown(&got)).map_err(io)?;
        if got != reference {
            disagree.push(format!("{} gave {}", engine.name(), shown(&got)));
        }
    }
    if !disagree.is_empty() {
        return fail(format!(
            "engines disagree with walker's {}: {}",
            shown(&reference),
            disagree.join(", ")
        ));
    }
    // Engines that all fail the same way agree; the run still has no value.
    reference.map(drop).or_else(failed)
}

/// `run` prints the program's value or nothing: before an engine with an
/// exact range (LuaJIT's doubles) runs, walker traces the run, and if a
/// value on the way leaves that range ([`crate::reference::held_to_walker`]) the engine's
/// answer would not be the program's value (doubles past 2⁵³ may not even
/// end a loop), so `run` fails (exit status 1) saying why, instead of
/// printing a number scripts would take for the value. Under `--timeout`
/// the trace has the same limit, and its message says what it was for.
///
/// An engine with a wide form runs in it where its usual one is not exact
/// ([`form_for`]: LuaJIT's 64-bit integers): the form is returned.
fn exact_on<'e>(
    engine: &'e dyn Engine,
    program: &Program,
    args: &[i64],
    timeout: Option<std::time::Duration>,
    file: &str,
) -> Result<&'e dyn Engine, Failure> {
    if engine.exact_magnitude().is_none() && engine.calls_held(program).is_none() {
        return Ok(engine);
    }
    let what = format!(
        "`{file}` on engine `walker` (checking that `{}`'s values stay exact)",
        engine.name()
    );
    let (_, magnitude) = with_timeout(timeout, &what, || eval_reach(program, args, u64::MAX))
        .or_else(|e| fail(e.to_string()))?;
    match form_for(engine, program, magnitude) {
        Err(why @ (Exemption::Inexact { .. } | Exemption::TooDeep { .. })) => fail(format!(
            "engine `{}` cannot give this program's exact value: {why}; run it on another engine",
            engine.name()
        )),
        Ok(form) => Ok(form),
        // The engine accepted the program: only its range can exempt it.
        Err(Exemption::Unsupported(_)) => Ok(engine),
    }
}

fn list(out: &mut impl Write, long: bool) -> Result<(), Failure> {
    for e in engines() {
        if long {
            writeln!(out, "{:<30} {:<9} {}", e.name(), e.tier(), e.summary())
        } else {
            writeln!(out, "{}", e.name())
        }
        .map_err(io)?;
    }
    Ok(())
}

fn show(out: &mut impl Write, engine: &str, file: &str) -> Result<(), Failure> {
    let engine = find_engine(engine)?;
    let program = read(file)?.program;
    write!(out, "{}", compile_on(engine, &program)?.show()).map_err(io)
}

fn check(out: &mut impl Write) -> Result<(), Failure> {
    use crate::workloads::WORKLOADS;
    let width = engines().iter().map(|e| e.name().len()).max().unwrap_or(6);
    write!(out, "{:width$}", "engine").map_err(io)?;
    for w in WORKLOADS {
        write!(out, " {:>14}", w.name).map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    let mut runs = Vec::new();
    for w in WORKLOADS {
        let program = w.program()?;
        let magnitude = reach(&program, &w.args());
        runs.push((w, program, magnitude));
    }
    let mut wrong = 0;
    for engine in engines() {
        write!(out, "{:width$}", engine.name()).map_err(io)?;
        for (w, program, magnitude) in &runs {
            let form = match form_for(*engine, program, *magnitude) {
                Ok(form) => form,
                Err(why) => {
                    let why = match why {
                        Exemption::Unsupported(_) => "unsupported",
                        Exemption::Inexact { .. } => "inexact",
                        Exemption::TooDeep { .. } => "too deep",
                    };
                    write!(out, " {why:>14}").map_err(io)?;
                    continue;
                }
            };
            let cell = match run_on(form, program, &w.args()) {
                Ok(v) if v == w.expected() => v.to_string(),
                Ok(v) => {
                    wrong += 1;
                    format!("WRONG {v}")
                }
                Err(Failure::Plain(m) | Failure::Slower(m)) => m,
                Err(Failure::Source(e)) => e.to_string(),
            };
            write!(out, " {cell:>14}").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
    }
    if wrong > 0 {
        return fail(format!("{wrong} results differ from the expected values"));
    }
    Ok(())
}

/// The engines a selection names, in registry order; `walker` always.
fn selected_engines(names: &[String]) -> Result<Vec<&'static dyn Engine>, Failure> {
    for n in names {
        find_engine(n)?;
    }
    Ok(engines()
        .iter()
        .copied()
        .filter(|e| names.is_empty() || e.name() == "walker" || names.iter().any(|n| n == e.name()))
        .collect())
}

/// The cases a selection names: a user's suite of files and folders, or
/// built-in workloads. Each user file goes through the harness's
/// pre-flight for `engines`, under `timeout` when one is given.
fn selected_cases(
    sel: &Selection,
    engines: &[&dyn Engine],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<crate::harness::Case>, Failure> {
    use crate::harness::{Case, preflight, suite};
    use crate::workloads::{WORKLOADS, workload};
    if !sel.paths.is_empty() {
        if !sel.workloads.is_empty() {
            return fail(
                "`--workload` selects built-in workloads: give either it or program files",
            );
        }
        let entries = suite::entries(&sel.paths).map_err(Failure::Plain)?;
        let mut cases = Vec::new();
        for entry in &entries {
            let (Source { text, program }, args) = load(&entry.file, entry.args.as_deref())?;
            let case = preflight::user_case(&entry.file, &text, program, args, engines, timeout)
                .map_err(Failure::Plain)?;
            suite::check_expected(entry, &text, case.expected).map_err(Failure::Plain)?;
            cases.push(case);
        }
        suite::check_names(&entries, &cases).map_err(Failure::Plain)?;
        return Ok(cases);
    }
    let mut cases = Vec::new();
    for w in WORKLOADS {
        if sel.workloads.is_empty() || sel.workloads.iter().any(|n| n == w.name) {
            cases.push(Case::builtin(w));
        }
    }
    for n in &sel.workloads {
        if workload(n).is_none() {
            let names: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
            return fail(format!(
                "unknown workload `{n}` (available: {})",
                names.join(", ")
            ));
        }
    }
    Ok(cases)
}

fn bench(out: &mut impl Write, a: &BenchArgs) -> Result<(), Failure> {
    use crate::harness::{Settings, report, runner, table};
    let engines = selected_engines(&a.selection.engines)?;
    let cases = selected_cases(&a.selection, &engines, a.timeout)?;
    if a.instructions {
        let child = instructions_child_args(&a.selection, &engines, &cases);
        let counted = crate::harness::instructions::run(out, &child, &engines, &cases, &a.out)
            .map_err(Failure::Plain)?;
        if let (Some(results), Some(readme)) = (counted, &a.readme) {
            report::update_readme(&results, readme, &a.readme_charts).map_err(Failure::Plain)?;
            writeln!(out, "Updated the results section of {}", readme.display()).map_err(io)?;
        }
        return Ok(());
    }
    warn_if_debug();
    let mut settings = if a.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    if let Some(seed) = a.seed {
        settings.seed = seed;
    }
    if let Some(clock) = a.clock {
        settings.clock = clock;
    }
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
        .map_err(|e| Failure::Plain(format!("wrong result: {e}")))?;
    // Instruction counts an earlier `--instructions` left in this folder stay.
    results.instructions = crate::harness::counts::InstructionCounts::kept_in(&a.out);
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
    report::write_all(&results, &a.out)
        .map_err(|e| Failure::Plain(format!("{}: {e}", a.out.display())))?;
    writeln!(
        out,
        "Measured for {:.1} s; every execution verified. Reports: {}/{{results.json, results.csv, results.md, index.html}}",
        results.wall_seconds,
        a.out.display()
    )
    .map_err(io)?;
    if let Some(readme) = &a.readme {
        report::update_readme(&results, readme, &a.readme_charts).map_err(Failure::Plain)?;
        writeln!(out, "Updated the results section of {}", readme.display()).map_err(io)?;
    }
    Ok(())
}

/// The arguments of the hidden `instructions-child` subcommand that select
/// the same engines and cases (the harness runs it under callgrind).
fn instructions_child_args(
    sel: &Selection,
    engines: &[&dyn Engine],
    cases: &[crate::harness::Case],
) -> Vec<String> {
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

fn instructions_child(out: &mut impl Write, sel: &Selection) -> Result<(), Failure> {
    let engines = selected_engines(&sel.engines)?;
    let cases = selected_cases(sel, &engines, None)?;
    crate::harness::instructions::child(out, &engines, &cases).map_err(Failure::Plain)
}

fn warn_if_debug() {
    if cfg!(debug_assertions) {
        eprintln!(
            "vm-perf: warning: this is a debug build; times mean little. Use `cargo run --release`."
        );
    }
}

fn scale(out: &mut impl Write, a: &ScaleArgs) -> Result<(), Failure> {
    let engines = selected_engines(&a.engines)?;
    warn_if_debug();
    crate::harness::scale::run(out, &engines, a.quick, a.max_nodes, &a.out).map_err(Failure::Plain)
}

fn compare(out: &mut impl Write, a: &CompareArgs) -> Result<(), Failure> {
    use crate::harness::compare::{compare, load};
    let base = load(&a.base).map_err(Failure::Plain)?;
    let new = load(&a.new).map_err(Failure::Plain)?;
    let c = compare(&base, &new, a.relative_to.as_deref()).map_err(Failure::Plain)?;
    let (b, n) = (a.base.display().to_string(), a.new.display().to_string());
    let text = if a.markdown {
        c.markdown(&b, &n)
    } else {
        c.terminal(&b, &n)
    };
    write!(out, "{text}").map_err(io)?;
    let Some(pct) = a.fail_above else {
        return Ok(());
    };
    match c.describe_slowdowns(pct).as_slice() {
        [] => Ok(()),
        slow => Err(Failure::Slower(format!(
            "{} significant slowdown{} above {pct}%: {}",
            slow.len(),
            if slow.len() == 1 { "" } else { "s" },
            slow.join(", ")
        ))),
    }
}
