//! The differential oracle the fuzzers and their regression tests share.
//!
//! A program is first run by the budgeted walker ([`trace`]); if it
//! finishes within the step budget, every registered engine that
//! [`held_to_walker`] holds to the answer must compile the program and
//! give the same answer: the same value, or *call depth exceeded*. A disagreement is a panic, which is what a fuzzer
//! reports as a finding.
//!
//! Programs the budget cuts off are simply not compared: no engine has a step
//! counter, and the oracle must not make one hang.

use super::budgeted::{BudgetError, trace};
use super::form_for;
use super::stack::on_native_stack;
use crate::engine::{RunError, engines};
use crate::front::decode;
use crate::front::program::{Level, Program};

/// Walker steps (nodes evaluated) a program may take to be compared.
pub const STEP_BUDGET: u64 = 50_000;

/// The same for a Level-2 program: enough for 10,000 calls of a small body,
/// so runs that reach the call limit, and just pass it, are compared.
pub const LEVEL_TWO_STEP_BUDGET: u64 = 200_000;

/// Programs reading more arguments than this are not run (the argument
/// vector would have to be built for them).
pub const MAX_ARGS: usize = 64;

/// The arguments the text oracle runs a program with: small, negative and
/// extreme values, so loops run a few times and `+` wraps.
pub fn default_args(count: usize) -> Vec<i64> {
    const POOL: [i64; 8] = [3, -2, 7, 0, 1, i64::MAX, 5, i64::MIN];
    (0..count).map(|i| POOL[i % POOL.len()]).collect()
}

/// What the oracle did with one input (for statistics, never an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not UTF-8, not parseable, or not valid: nothing to run.
    Rejected,
    /// Needs more than [`MAX_ARGS`] arguments.
    TooManyArgs,
    /// The walker ran out of steps: engines were not run.
    OutOfSteps,
    /// Walker finished; this many engines agreed with it.
    Agreed(usize),
}

/// The arguments a source file asks for in a `// args: A B ...` header line
/// (as workloads and fuzz regressions carry), if there is one.
pub fn header_args(text: &str) -> Option<Vec<i64>> {
    let line = text
        .lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix("// args:"))?;
    line.split_whitespace().map(|a| a.parse().ok()).collect()
}

/// Raw bytes as a source file: decode → parse → validate → [`check_program`]
/// with the `// args:` header's arguments if there are enough of them, else
/// [`default_args`]. Panics when an engine disagrees.
pub fn check_source(bytes: &[u8]) -> Outcome {
    let Ok(text) = decode("fuzz", bytes.to_vec()) else {
        return Outcome::Rejected;
    };
    let Ok(expr) = crate::front::parser::parse(&text) else {
        return Outcome::Rejected;
    };
    let Ok(program) = Program::validate(expr) else {
        return Outcome::Rejected;
    };
    if program.arg_count() > MAX_ARGS {
        return Outcome::TooManyArgs;
    }
    let args = match header_args(&text) {
        Some(args) if args.len() >= program.arg_count() => args,
        _ => default_args(program.arg_count()),
    };
    check_program(&program, &args)
}

/// Runs `program` on the budgeted walker and, if it finishes (with a value
/// or *call depth exceeded*), on every engine held to its answer, each on
/// the native stack it declares. Panics when an engine gives another answer
/// or fails to compile a program it claims to support.
pub fn check_program(program: &Program, args: &[i64]) -> Outcome {
    let budget = match program.level() {
        Level::One => STEP_BUDGET,
        Level::Two => LEVEL_TWO_STEP_BUDGET,
    };
    let traced = match trace(program, args, budget) {
        Ok(t) => t,
        Err(BudgetError::OutOfSteps) => return Outcome::OutOfSteps,
        Err(e) => panic!("oracle called with too few arguments: {e}"),
    };
    let want = traced.answer();
    let mut agreed = 0;
    for engine in engines() {
        // The form held to walker here (LuaJIT's 64-bit integers beyond
        // 2⁵³), if any.
        let Ok(engine) = form_for(*engine, program, traced.reach()) else {
            continue;
        };
        let got = on_native_stack(engine.native_stack(program), || {
            let code = engine.compile(program).unwrap_or_else(|e| {
                panic!(
                    "engine `{}` supports but cannot compile: {e}",
                    engine.name()
                )
            });
            code.execute(args)
        });
        assert!(
            !matches!(got, Err(RunError::Args(_))),
            "arguments were checked"
        );
        assert_eq!(
            got,
            want,
            "engine `{}` disagrees with walker on\n{}\nargs {args:?}",
            engine.name(),
            crate::front::printer::print_source(program.source())
        );
        agreed += 1;
    }
    Outcome::Agreed(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_pass_the_oracle() {
        for w in crate::workloads::WORKLOADS {
            let outcome = check_source(w.source.as_bytes());
            assert!(
                matches!(outcome, Outcome::Agreed(_) | Outcome::OutOfSteps),
                "{}: {outcome:?}",
                w.name
            );
        }
    }

    #[test]
    fn garbage_and_endless_loops_are_not_compared() {
        assert_eq!(check_source(b"\xff"), Outcome::Rejected);
        assert_eq!(check_source(b"1 +"), Outcome::Rejected);
        assert_eq!(check_source(b"while 1 {}"), Outcome::OutOfSteps);
        assert_eq!(check_source(b"arg(1000)"), Outcome::TooManyArgs);
        assert!(matches!(check_source(b"arg(2) + 1"), Outcome::Agreed(n) if n >= 1));
    }

    #[test]
    fn level_two_runs_are_compared_up_to_the_limit_and_past_it() {
        let down = "fn down(n) { if 0 < n { down(n - 1) + 1 } else { 0 } }";
        for fuel in [9_999, 10_000] {
            let src = format!("// args: {fuel}\n{down} down(arg(0))");
            let outcome = check_source(src.as_bytes());
            assert!(
                matches!(outcome, Outcome::Agreed(n) if n >= 1),
                "{fuel}: {outcome:?}"
            );
        }
        let endless = check_source(b"fn f() { f() } f()");
        assert!(
            matches!(endless, Outcome::Agreed(n) if n >= 1),
            "{endless:?}"
        );
    }
}
