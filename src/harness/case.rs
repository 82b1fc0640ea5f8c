//! What the harness measures: a program, its arguments and its one right answer.

use crate::engine::{Engine, engines};
use crate::front::program::Program;
use crate::reference::stack::on_native_stack;
use crate::reference::{Reach, form_for, reach};
use crate::workloads::Workload;

/// A native function computing the same value as a workload.
pub type Candle = fn(&[i64]) -> i64;

/// One benchmark program.
pub struct Case {
    pub name: String,
    pub description: String,
    pub program: Program,
    pub args: Vec<i64>,
    /// Every execution must return exactly this.
    pub expected: i64,
    /// Hot-loop iterations with `args` (1 when unknown).
    pub iterations: u64,
    /// The `rust` and `rust_opt` candles, for built-in workloads.
    pub candles: Option<(Candle, Candle)>,
    /// How far the run reaches: the largest magnitude of any value and the
    /// most calls active at once (engines with a smaller exact range use
    /// their wide form or sit the case out; those whose stack holds fewer
    /// calls sit it out).
    pub reach: Reach,
}

impl Case {
    /// A built-in workload with its default arguments.
    pub fn builtin(w: &Workload) -> Case {
        let args = w.args();
        Case {
            name: w.name.to_string(),
            description: w.description().to_string(),
            program: w
                .program()
                .unwrap_or_else(|e| panic!("built-in workload {} is invalid: {e}", w.name)),
            iterations: w.iterations(&args),
            expected: w.expected(),
            reach: Reach::from(0),
            args,
            candles: Some((w.rust, w.rust_opt)),
        }
        .traced()
    }

    /// The language level the program needs (1 or 2), for reports.
    pub fn level(&self) -> u8 {
        match self.program.level() {
            crate::front::program::Level::One => 1,
            crate::front::program::Level::Two => 2,
        }
    }

    fn traced(mut self) -> Case {
        self.reach = reach(&self.program, &self.args);
        self
    }

    /// Why `engine` sits this case out, if it does (`n/a` in reports): no
    /// form of it is [held to walker's answer](crate::reference::held_to_walker) on it.
    pub fn refusal(&self, engine: &dyn Engine) -> Option<String> {
        self.form(engine).err()
    }

    /// The form of `engine` that runs this case ([`form_for`]: the engine
    /// itself, or its wide form where its values leave its exact range),
    /// or why it sits the case out.
    pub fn form<'e>(&self, engine: &'e dyn Engine) -> Result<&'e dyn Engine, String> {
        form_for(engine, &self.program, self.reach).map_err(|why| why.to_string())
    }

    /// A user's program. The expected value is what `walker` (the
    /// reference) computes; the iteration count comes from an
    /// `// iterations: arg0*arg1` header if the source has one.
    pub fn user(
        name: &str,
        source: &str,
        program: Program,
        args: Vec<i64>,
    ) -> Result<Case, String> {
        let walker = engines()[0];
        let expected = on_native_stack(walker.native_stack(&program), || {
            walker
                .compile(&program)
                .map_err(|e| format!("walker cannot compile {name}: {e}"))?
                .execute(&args)
                .map_err(|e| format!("{name}: {e}"))
        })?;
        Ok(Case {
            name: name.to_string(),
            description: source
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("//"))
                .unwrap_or("")
                .trim()
                .to_string(),
            iterations: iterations_from_header(source, &args),
            expected,
            program,
            args,
            candles: None,
            reach: Reach::from(0),
        }
        .traced())
    }
}

/// Evaluates an `// iterations: arg0*arg1*10` header (1 if absent).
pub fn iterations_from_header(source: &str, args: &[i64]) -> u64 {
    let formula = source
        .lines()
        .take_while(|l| l.trim_start().starts_with("//"))
        .find_map(|l| {
            l.trim_start()
                .trim_start_matches('/')
                .trim()
                .strip_prefix("iterations:")
                .map(str::trim)
        });
    let Some(formula) = formula else { return 1 };
    formula
        .split('*')
        .map(|f| {
            let f = f.trim();
            let n = match f.strip_prefix("arg") {
                Some(i) => i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| args.get(i).copied())
                    .unwrap_or(1),
                None => f.parse().unwrap_or(1),
            };
            n.max(0) as u64
        })
        .product::<u64>()
        .max(1)
}

/// What a row of the results is: an engine or a native candle.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    Engine(&'a dyn Engine),
    /// The black-boxed Rust version of the workload.
    Rust,
    /// Plain optimised Rust.
    RustOpt,
}

impl Subject<'_> {
    pub fn name(&self) -> &str {
        match self {
            Subject::Engine(e) => e.name(),
            Subject::Rust => "rust",
            Subject::RustOpt => "rust_opt",
        }
    }

    /// The engine's tier, or `native` for candles.
    pub fn tier(&self) -> String {
        match self {
            Subject::Engine(e) => e.tier().to_string(),
            _ => "native".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_iterations() {
        assert_eq!(
            iterations_from_header("// x\n// iterations: arg0*arg1\nfoo", &[3, 4]),
            12
        );
        assert_eq!(iterations_from_header("// iterations: arg0*10\n", &[3]), 30);
        assert_eq!(iterations_from_header("1 + 2", &[]), 1);
    }

    #[test]
    fn builtin_cases_match_the_workloads() {
        for w in crate::workloads::WORKLOADS {
            let c = Case::builtin(w);
            assert_eq!(c.iterations, w.iterations(&w.args()));
            assert_eq!(iterations_from_header(w.source, &c.args), c.iterations);
        }
    }
}
