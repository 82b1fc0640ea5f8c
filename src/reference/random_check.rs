//! The differential at scale (`vm-perf check --random N`): random programs
//! from [`crate::random`], the generator the differential test uses, each
//! run on every engine of the build in this process (the peers through
//! their normal path, LuaJIT through its helper process) and compared with
//! walker under [`held_to_walker`].
//!
//! Program `i` of a run with seed `S` is made from seed `S + i` alone, so a
//! disagreement names a program that can be made again; one seed in
//! [`LEVEL_TWO_EVERY`] draws a Level-2 program (functions, recursion on a
//! decreasing parameter, some past the call limit on purpose). Walker runs
//! first, budgeted and traced ([`trace`]): its answer (a value, or *call
//! depth exceeded*) is the reference, its largest magnitude decides who is
//! held to it. Every run is on the native stack its engine declares. An
//! engine that fails to compile a program it supports, or to run it,
//! disagrees.

use super::budgeted::trace;
use super::check::Answer;
use super::form_for;
use super::stack::on_native_stack;
use crate::engine::{Engine, RunError};
use crate::front::{ast::Source, printer::print_source, program::Program};
use crate::random::{calls, program, shape_for_seed};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Instant;

/// Walker steps a program may take to be compared. The generated programs
/// end by construction; this only bounds an unlucky one's time.
pub const STEP_BUDGET: u64 = 1_000_000;

/// One seed in this many draws a Level-2 program
/// ([`crate::random::calls`]); the others draw Level 1's.
pub const LEVEL_TWO_EVERY: u64 = 4;

/// One program on which some engine differs from walker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// The program's seed ([`shape_for_seed`] and [`crate::random::program`]).
    pub seed: u64,
    /// The program as text ([`print`]).
    pub text: String,
    pub args: Vec<i64>,
    /// Walker's answer: its value, or *call depth exceeded*.
    pub expected: Answer,
    /// Every engine compared on it, with its answer or why it gave none.
    pub values: Vec<(&'static str, Result<Answer, String>)>,
}

impl Disagreement {
    /// The program as a regression file (`tests/regressions/*.vm`): its
    /// `// args:` and `// expect:` headers, each engine's value as a
    /// comment (those that differ marked), then the program.
    pub fn regression_file(&self) -> String {
        let args: Vec<String> = self.args.iter().map(i64::to_string).collect();
        let mut out = format!(
            "// args: {}\n// expect: {}\n// Random program of seed {}; each engine's value:\n",
            args.join(" "),
            expect(&self.expected),
            self.seed
        );
        for (name, value) in &self.values {
            let (shown, wrong) = match value {
                Ok(answer) => (expect(answer), *answer != self.expected),
                Err(e) => (format!("fails: {e}"), true),
            };
            let mark = if wrong { "   <- differs" } else { "" };
            out.push_str(&format!("//   {name}: {shown}{mark}\n"));
        }
        out.push_str(&self.text);
        out
    }
}

/// An answer as a regression file's `// expect:` header gives it.
fn expect(answer: &Answer) -> String {
    match answer {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    }
}

/// The program of `seed` and its arguments.
fn draw(seed: u64) -> (Source, Vec<i64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    if seed % LEVEL_TWO_EVERY == LEVEL_TWO_EVERY - 1 {
        return calls::program(&mut rng, &shape_for_seed(seed));
    }
    let (mut expr, mut args) = program(&mut rng, &shape_for_seed(seed));
    // A lone leaf (a third of the shallow trees) tests nothing the other
    // programs do not: draw again from the same generator.
    while expr.node_count() == 1 {
        (expr, args) = program(&mut rng, &shape_for_seed(seed));
    }
    (expr.into(), args)
}

/// What checking one program found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Engine results compared with walker's.
    pub results: u64,
    /// How many of them differ.
    pub disagreements: u64,
    /// The program, when any differs.
    pub report: Option<Disagreement>,
}

/// Runs the program of `seed` on `engines` and compares each held to
/// walker's value with it.
pub fn check_seed(engines: &[&dyn Engine], seed: u64) -> Checked {
    let (source, args) = draw(seed);
    let program = Program::validate(source).expect("the generator makes valid programs");
    let Ok(traced) = trace(&program, &args, STEP_BUDGET) else {
        return Checked::default(); // out of steps: nobody is compared
    };
    let expected = traced.answer();
    let mut values = Vec::new();
    let mut disagreements = 0;
    for engine in engines {
        // The form held to walker here (LuaJIT's 64-bit integers beyond
        // 2⁵³), if any.
        let Ok(engine) = form_for(*engine, &program, traced.reach()) else {
            continue;
        };
        let answer = on_native_stack(engine.native_stack(&program), || {
            let code = engine
                .compile(&program)
                .map_err(|e| format!("cannot compile: {e}"))?;
            match code.execute(&args) {
                Err(RunError::Args(e)) => Err(e.to_string()),
                answer => Ok(answer),
            }
        });
        disagreements += u64::from(answer.as_ref() != Ok(&expected));
        values.push((engine.name(), answer));
    }
    let results = values.len() as u64;
    let report = (disagreements > 0).then(|| Disagreement {
        seed,
        text: print_source(program.source()),
        args,
        expected,
        values,
    });
    Checked {
        results,
        disagreements,
        report,
    }
}

/// At most this many programs with a disagreement are handed on: a wrong
/// engine may differ on most programs, and the first few say enough.
pub const REPORTED: u64 = 10;

/// What a whole run found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub programs: u64,
    /// Engine results compared with walker's.
    pub results: u64,
    /// How many of them differ.
    pub disagreements: u64,
    /// Programs on which some engine differs.
    pub wrong_programs: u64,
    /// How long the run took, in seconds.
    pub seconds: f64,
}

/// The closing line: `N programs, M engine results, D disagreements`.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} programs, {} engine results, {} disagreements",
            self.programs, self.results, self.disagreements
        )
    }
}

/// Checks `count` programs (seeds `seed`, `seed + 1`, …) on `engines`,
/// with a progress bar on stderr when it is a terminal, handing the first
/// [`REPORTED`] programs with a disagreement to `report` as they come.
pub fn check_random(
    engines: &[&dyn Engine],
    count: u64,
    seed: u64,
    report: &mut dyn FnMut(&Disagreement),
) -> Summary {
    let bar = ProgressBar::new(count).with_style(
        ProgressStyle::with_template(
            "{elapsed:>4} [{bar:40}] {pos}/{len} programs, {per_sec}{msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut summary = Summary::default();
    for i in 0..count {
        let checked = check_seed(engines, seed.wrapping_add(i));
        summary.programs += 1;
        summary.results += checked.results;
        summary.disagreements += checked.disagreements;
        if let Some(d) = checked.report {
            summary.wrong_programs += 1;
            bar.set_message(format!(", {} with disagreements", summary.wrong_programs));
            if summary.wrong_programs <= REPORTED {
                bar.suspend(|| report(&d));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disagreement_reads_as_a_regression_file() {
        let d = Disagreement {
            seed: 7,
            text: "arg(0) + -1\n".into(),
            args: vec![3, -2],
            expected: Ok(2),
            values: vec![
                ("walker", Ok(Ok(2))),
                ("fast", Ok(Ok(3))),
                ("picky", Err("boom".into())),
            ],
        };
        assert_eq!(
            d.regression_file(),
            "// args: 3 -2\n// expect: 2\n// Random program of seed 7; each engine's value:\n\
             //   walker: 2\n//   fast: 3   <- differs\n//   picky: fails: boom   <- differs\n\
             arg(0) + -1\n"
        );
    }

    #[test]
    fn a_seed_makes_the_same_program_and_findings() {
        let engines = crate::engine::engines();
        let a = check_seed(engines, 42);
        assert_eq!(a, check_seed(engines, 42));
        assert!(a.results > 0);
        assert_eq!(a.disagreements, 0, "{:?}", a.report);
    }
}
