//! The command line. `run` and `list` follow `LANGUAGE.md` to the letter;
//! everything else (`show`, the benchmark) builds on the same registry.

use crate::engine::{Engine, engine, engines};
use crate::front::{SourceError, compile_source, decode, program::Program};
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
    Run {
        /// Engine to run with, or `all` to run every engine and compare.
        #[arg(long, short, default_value = "walker")]
        engine: String,
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
}

/// A failure the CLI reports: the first line names the cause.
pub enum Failure {
    Source(SourceError),
    Plain(String),
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
        Some(Command::Run { engine, file, args }) => run(&mut out, &engine, &file, &args),
        Some(Command::List { long }) => list(&mut out, long),
        Some(Command::Show { engine, file }) => show(&mut out, &engine, &file),
        Some(Command::Check) | None => check(&mut out),
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
    }
}

/// Reads and validates a program file (`-` is standard input).
pub fn load(file: &str) -> Result<Program, Failure> {
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
    let source = decode(file, bytes)?;
    Ok(compile_source(file, &source)?)
}

/// Parses command-line program arguments as decimal `i64`s.
pub fn parse_args(args: &[String]) -> Result<Vec<i64>, Failure> {
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

/// Compiles and runs `program` on `engine`, reporting errors as the CLI does.
pub fn run_on(engine: &dyn Engine, program: &Program, args: &[i64]) -> Result<i64, Failure> {
    if program.arg_count() > args.len() {
        let e = crate::engine::ArgError {
            needed: program.arg_count(),
            given: args.len(),
        };
        return fail(e.to_string());
    }
    let code = engine.compile(program).or_else(|e| {
        fail(format!(
            "engine `{}` cannot compile this program: {e}",
            engine.name()
        ))
    })?;
    code.execute(args).or_else(|e| fail(e.to_string()))
}

fn run(out: &mut impl Write, engine: &str, file: &str, args: &[String]) -> Result<(), Failure> {
    let chosen = if engine == "all" {
        None
    } else {
        Some(find_engine(engine)?)
    };
    let program = load(file)?;
    let args = parse_args(args)?;
    if program.arg_count() > args.len() {
        let e = crate::engine::ArgError {
            needed: program.arg_count(),
            given: args.len(),
        };
        return fail(format!("{file}: {e}"));
    }
    if let Some(engine) = chosen {
        let value = run_on(engine, &program, &args)?;
        return writeln!(out, "{value}").map_err(io);
    }
    let reference = run_on(engines()[0], &program, &args)?;
    let mut disagree = Vec::new();
    for engine in engines() {
        if let Err(why) = engine.supports(&program) {
            writeln!(out, "{} skipped: {why}", engine.name()).map_err(io)?;
            continue;
        }
        if out_of_range(*engine, &program, &args).is_some() {
            let limit = engine.exact_magnitude().unwrap_or(u64::MAX);
            writeln!(
                out,
                "{} skipped: a value exceeds its exact range {limit}",
                engine.name()
            )
            .map_err(io)?;
            continue;
        }
        let value = run_on(*engine, &program, &args)?;
        writeln!(out, "{} {value}", engine.name()).map_err(io)?;
        if value != reference {
            disagree.push(format!("{} gave {value}", engine.name()));
        }
    }
    if disagree.is_empty() {
        Ok(())
    } else {
        fail(format!(
            "engines disagree with walker's {reference}: {}",
            disagree.join(", ")
        ))
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
    let program = load(file)?;
    let code = engine.compile(&program).or_else(|e| {
        fail(format!(
            "engine `{}` cannot compile this program: {e}",
            engine.name()
        ))
    })?;
    write!(out, "{}", code.show()).map_err(io)
}

fn check(out: &mut impl Write) -> Result<(), Failure> {
    use crate::workloads::WORKLOADS;
    let width = engines().iter().map(|e| e.name().len()).max().unwrap_or(6);
    write!(out, "{:width$}", "engine").map_err(io)?;
    for w in WORKLOADS {
        write!(out, " {:>14}", w.name).map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    let mut wrong = 0;
    for engine in engines() {
        write!(out, "{:width$}", engine.name()).map_err(io)?;
        for w in WORKLOADS {
            let program = w.program()?;
            if let Some(why) = out_of_range(*engine, &program, &w.args()) {
                write!(out, " {why:>14}").map_err(io)?;
                continue;
            }
            let cell = match run_on(*engine, &program, &w.args()) {
                Ok(v) if v == w.expected() => v.to_string(),
                Ok(v) => {
                    wrong += 1;
                    format!("WRONG {v}")
                }
                Err(Failure::Plain(m)) => m,
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

/// Why `engine` is not expected to match walker on this run: it refuses the
/// program, or a value on the way is beyond its exact range (LuaJIT's
/// doubles). `None`: it must agree.
fn out_of_range(engine: &dyn Engine, program: &Program, args: &[i64]) -> Option<&'static str> {
    if engine.supports(program).is_err() {
        return Some("unsupported");
    }
    let limit = engine.exact_magnitude()?;
    match crate::engines::walker::eval_traced(program, args, u64::MAX) {
        Ok((_, magnitude)) if magnitude > limit => Some("inexact"),
        _ => None,
    }
}
