//! The command line, and only glue: it parses the arguments, loads the
//! program, and hands over to the registry, the reference and the harness.
//! `run` and `list` follow `docs/LANGUAGE.md` to the letter; everything else
//! (`show`, the benchmark) builds on the same registry. Without a
//! subcommand, `vm-perf` runs `bench`: the main job.

use crate::engine::{engines, find};
use crate::harness::bench;
use crate::harness::suite::{self, Source, load, read};
use crate::reference::agreement::{self, compile_on};
use crate::reference::random_check::{REPORTED, check_random};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
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
    Run(RunArgs),
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
    /// Run every workload on every engine and print the values; with
    /// `--random N`, check every engine against walker on N random programs.
    #[command(
        after_help = "Exit status: 0 every engine gave walker's value; 1 some engine did not."
    )]
    Check(CheckArgs),
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

#[derive(clap::Args)]
struct RunArgs {
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
}

/// Which engines and programs to measure.
#[derive(clap::Args)]
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

#[derive(clap::Args)]
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

#[derive(clap::Args)]
struct CheckArgs {
    /// Check every engine against walker on N random programs instead,
    /// printing each program some engine gets wrong as a regression test.
    #[arg(long, value_name = "N")]
    random: Option<u64>,
    /// Seed of the first random program (default: a fresh one, printed).
    #[arg(long, requires = "random")]
    seed: Option<u64>,
    /// Only this engine in the random check (repeatable; `walker` is always kept).
    #[arg(long = "engine", short = 'e', requires = "random")]
    engines: Vec<String>,
}

#[derive(clap::Args)]
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

/// A failure the CLI reports on stderr (exit status 1): a located error in
/// a program's text, rendered with its line, or a message.
type Failure = suite::Error;

fn io(e: std::io::Error) -> String {
    format!("cannot write output: {e}")
}

impl From<Selection> for bench::Selection {
    fn from(s: Selection) -> Self {
        let (engines, workloads, paths) = (s.engines, s.workloads, s.paths);
        bench::Selection {
            engines,
            workloads,
            paths,
        }
    }
}

/// Entry point of the `vm-perf` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // Without a subcommand: `bench` as `vm-perf bench` gives it.
    let command = cli.command.unwrap_or_else(|| {
        let bench = Cli::parse_from(["vm-perf", "bench"]);
        bench.command.expect("`bench` is a subcommand")
    });
    let mut out = std::io::stdout().lock();
    let result = match command {
        Command::Run(args) => run(&mut out, &args),
        Command::List { long } => list(&mut out, long),
        Command::Show { engine, file } => show(&mut out, &engine, &file),
        Command::Check(args) => check(&mut out, &args),
        Command::Bench(args) => bench(&mut out, args),
        Command::Scale(args) => scale(&mut out, &args),
        Command::Compare(args) => match compare(&mut out, &args) {
            Ok(Some(slower)) => {
                eprintln!("vm-perf: {slower}");
                return ExitCode::from(3);
            }
            other => other.map(drop),
        },
        Command::InstructionsChild(sel) => bench::instructions_child(&mut out, &sel.into()),
    };
    match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Source(e)) => eprint!("{}", e.render(std::io::stderr().is_terminal())),
        Err(Failure::Message(message)) => eprintln!("vm-perf: error: {message}"),
    }
    ExitCode::FAILURE
}

fn run(out: &mut impl Write, a: &RunArgs) -> Result<(), Failure> {
    let chosen = match a.engine.as_str() {
        "all" => None,
        name => Some(find(name)?),
    };
    let (Source { program, .. }, args) = load(&a.file, Some(&a.args))?;
    // The guard is a watchdog thread around each run: no engine checks a
    // clock or a flag (see `guard`).
    if let Some(engine) = chosen {
        let value = agreement::one_engine(engine, &program, &args, a.timeout, &a.file)?;
        return Ok(writeln!(out, "{value}").map_err(io)?);
    }
    Ok(agreement::every_engine(
        out, &program, &args, a.timeout, &a.file,
    )?)
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
    let engine = find(engine)?;
    let program = read(file)?.program;
    Ok(write!(out, "{}", compile_on(engine, &program)?.show()).map_err(io)?)
}

fn check(out: &mut impl Write, a: &CheckArgs) -> Result<(), Failure> {
    let Some(count) = a.random else {
        return Ok(agreement::on_workloads(out)?);
    };
    let engines = bench::selected_engines(&a.engines)?;
    let seed = a.seed.unwrap_or_else(rand::random);
    let on = engines.len();
    eprintln!("vm-perf check: {count} random programs from seed {seed} on {on} engines");
    let mut written = Ok(());
    let summary = check_random(&engines, count, seed, &mut |wrong| {
        if written.is_ok() {
            written = writeln!(out, "{}", wrong.regression_file());
        }
    });
    written.map_err(io)?;
    let rate = summary.programs as f64 / summary.seconds.max(1e-9);
    eprintln!(
        "vm-perf check: {:.1} s, {rate:.0} programs/s",
        summary.seconds
    );
    if summary.wrong_programs > REPORTED {
        eprintln!(
            "vm-perf check: the first {REPORTED} of {} programs with disagreements shown",
            summary.wrong_programs
        );
    }
    writeln!(out, "{summary}").map_err(io)?;
    match summary.disagreements {
        0 => Ok(()),
        d => Err(format!("{d} engine results disagree with walker").into()),
    }
}

fn bench(out: &mut impl Write, a: BenchArgs) -> Result<(), Failure> {
    let request = bench::Request {
        selection: a.selection.into(),
        quick: a.quick,
        out: a.out,
        instructions: a.instructions,
        readme: a.readme,
        readme_charts: a.readme_charts,
        seed: a.seed,
        clock: a.clock,
        timeout: a.timeout,
    };
    bench::run(out, &request)
}

fn scale(out: &mut impl Write, a: &ScaleArgs) -> Result<(), Failure> {
    let engines = bench::selected_engines(&a.engines)?;
    bench::warn_if_debug();
    crate::harness::scale::run(out, &engines, a.quick, a.max_nodes, &a.out)
        .map_err(Failure::Message)
}

/// `Some`: the slowdowns `--fail-above` found (exit status 3).
fn compare(out: &mut impl Write, a: &CompareArgs) -> Result<Option<String>, Failure> {
    let (text, slower) = crate::harness::compare::run(
        &a.base,
        &a.new,
        a.relative_to.as_deref(),
        a.markdown,
        a.fail_above,
    )?;
    write!(out, "{text}").map_err(io)?;
    Ok(slower)
}
