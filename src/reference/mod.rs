//! The reference: what every engine is held to, and the tools that hold it.
//!
//! The `walker` engine (`engines/walker.rs`) defines every program's value.
//! Everything that checks the other engines against it lives here:
//!
//! - [`budgeted`]: the walker with a step budget and a trace of the largest
//!   magnitude, run first so a program that never ends is skipped;
//! - [`held_to_walker`]: the one rule for when an engine must give walker's
//!   answer (its value, or its *call depth exceeded*), asked by the harness,
//!   the command line, the tests and the fuzzers alike;
//! - [`check`]: one engine against walker on one run (the differential and
//!   peer tests);
//! - [`agreement`]: a user's program on one engine or on every engine
//!   (`vm-perf run`, `run --engine all`);
//! - [`oracle`]: every engine against walker on one input (the fuzz targets
//!   and the replay of their findings);
//! - [`random_check`]: every engine against walker on many random programs
//!   in one process (`vm-perf check --random N`);
//! - [`stack`]: rule 4 — the native stack an engine declares for guest
//!   calls, given in one place, and the checks for the engines that rely on
//!   tail calls, on explicitly small stacks (`tests/stack.rs`, and the
//!   engines' unit tests);
//! - `conformance` (test builds only): the checks every engine's unit tests
//!   run on themselves, expanded by `conformance_tests!`.

pub mod agreement;
pub mod budgeted;
pub mod check;
#[cfg(test)]
pub(crate) mod conformance;
pub mod oracle;
pub mod random_check;
pub mod stack;

pub use budgeted::{BudgetError, Reach, Traced, eval_budgeted, eval_reach, eval_traced, trace};

use crate::engine::Engine;
use crate::front::program::Program;
use std::fmt;

/// Why an engine is not held to walker's answer on one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exemption {
    /// The engine refuses the program (its [`Engine::supports`] reason).
    Unsupported(String),
    /// A value on the way exceeds the engine's exact range.
    Inexact { magnitude: u64, limit: u64 },
    /// The run holds more calls active at once than the engine can on this
    /// program ([`Engine::calls_held`]: a peer's own stack); `calls: None`
    /// when the run's depth was not traced.
    TooDeep { calls: Option<usize>, limit: usize },
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exemption::Unsupported(why) => f.write_str(why),
            Exemption::Inexact { magnitude, limit } => write!(
                f,
                "values up to {magnitude} exceed the engine's exact range {limit}"
            ),
            Exemption::TooDeep {
                calls: Some(calls),
                limit,
            } => write!(
                f,
                "the run holds {calls} calls active at once; the engine's own stack holds {limit} of this program's"
            ),
            Exemption::TooDeep { calls: None, limit } => write!(
                f,
                "the run's call depth is unknown; the engine's own stack holds {limit} of this program's calls"
            ),
        }
    }
}

/// The rule: `engine` must give walker's answer on a run of `program` whose
/// values reach `magnitude` (a whole [`Reach`] from [`trace`], or a
/// bare magnitude) — the same value, or the same run error (*call depth
/// exceeded*) — unless it refuses the program
/// ([`Engine::supports`]: a peer's parser limits), the run holds more calls
/// active than the engine's own stack can on this program
/// ([`Engine::calls_held`]: LuaJIT's stack slots), or a value on the way is
/// beyond its exact range ([`Engine::exact_magnitude`]: LuaJIT's doubles).
/// Every comparison with walker asks this, and nothing else decides it.
pub fn held_to_walker(
    engine: &dyn Engine,
    program: &Program,
    reach: impl Into<Reach>,
) -> Result<(), Exemption> {
    let Reach { magnitude, calls } = reach.into();
    engine.supports(program).map_err(Exemption::Unsupported)?;
    if let Some(limit) = engine.calls_held(program)
        && calls.is_none_or(|calls| calls > limit)
    {
        return Err(Exemption::TooDeep { calls, limit });
    }
    match engine.exact_magnitude() {
        Some(limit) if magnitude > limit => Err(Exemption::Inexact { magnitude, limit }),
        _ => Ok(()),
    }
}

/// The form of `engine` that runs a run that reaches `reach`: the
/// engine itself when it is [held to walker](held_to_walker) there, else,
/// when only its exact range stands in the way, its wide form
/// ([`Engine::wide`], LuaJIT's 64-bit integers) if it has one and that is
/// held; otherwise why neither is. The harness asks this per run, so an
/// engine keeps its fast form wherever that is exact.
pub fn form_for<'e>(
    engine: &'e dyn Engine,
    program: &Program,
    reach: impl Into<Reach>,
) -> Result<&'e dyn Engine, Exemption> {
    let reach = reach.into();
    match (held_to_walker(engine, program, reach), engine.wide()) {
        (Err(Exemption::Inexact { .. }), Some(wide)) => {
            held_to_walker(wide, program, reach).map(|()| wide)
        }
        (held, _) => held.map(|()| engine),
    }
}

/// How far a run of `program` on `args` reaches ([`Reach`]), walked without
/// a step budget (for runs known to end; up to the failure for one that
/// exceeds the call depth); a reach of unknown depth and magnitude
/// `u64::MAX`, which exempts every engine with a limit, when `args` are too
/// few.
pub fn reach(program: &Program, args: &[i64]) -> Reach {
    trace(program, args, u64::MAX).map_or(u64::MAX.into(), |t| t.reach())
}

/// The largest magnitude of any value `program` computes on `args`, walked
/// without a step budget (for runs known to end: workloads, programs walker
/// already ran), up to the failure for a run that exceeds the call depth;
/// `u64::MAX`, which exempts every engine with an exact range, when `args`
/// are too few.
pub fn magnitude(program: &Program, args: &[i64]) -> u64 {
    reach(program, args).magnitude
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CompileError, Executable, Tier};

    /// An engine that declares a range and may refuse: only what the rule reads.
    struct Declared {
        exact: Option<u64>,
        refuses: bool,
    }

    impl Engine for Declared {
        fn name(&self) -> &'static str {
            "declared"
        }
        fn tier(&self) -> Tier {
            Tier::Peer
        }
        fn summary(&self) -> &'static str {
            "declares an exact range"
        }
        fn exact_magnitude(&self) -> Option<u64> {
            self.exact
        }
        fn supports(&self, _: &Program) -> Result<(), String> {
            if self.refuses {
                Err("too deep".into())
            } else {
                Ok(())
            }
        }
        fn compile(&self, _: &Program) -> Result<Box<dyn Executable>, CompileError> {
            Err(CompileError("never compiled by the rule".into()))
        }
    }

    #[test]
    fn refusals_and_exact_ranges_exempt_nothing_else_does() {
        let p =
            Program::validate(crate::Expr::add(crate::Expr::Arg(0), crate::Expr::Litr(1))).unwrap();
        let m = magnitude(&p, &[1 << 53]);
        assert_eq!(m, (1 << 53) + 1);
        let any = Declared {
            exact: None,
            refuses: false,
        };
        assert_eq!(held_to_walker(&any, &p, u64::MAX), Ok(()));
        let doubles = Declared {
            exact: Some(1 << 53),
            refuses: false,
        };
        assert_eq!(held_to_walker(&doubles, &p, 1 << 53), Ok(()));
        assert_eq!(
            held_to_walker(&doubles, &p, m),
            Err(Exemption::Inexact {
                magnitude: m,
                limit: 1 << 53
            })
        );
        let picky = Declared {
            exact: None,
            refuses: true,
        };
        assert_eq!(
            held_to_walker(&picky, &p, 0),
            Err(Exemption::Unsupported("too deep".into()))
        );
        assert_eq!(magnitude(&p, &[]), u64::MAX);
    }
}
