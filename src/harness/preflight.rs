//! Before a user's program is measured: the reference run that gives its
//! expected value, and, under `--timeout`, one execution on every engine.
//!
//! The built-in workloads are known to finish; a user's program may not,
//! and no engine checks a clock (see [`crate::guard`]). So with a time limit
//! walker's reference run and then one compile and execution per engine run
//! under the watchdog first: a program that runs away on some engine stops
//! here, with exit status 124, instead of hanging the benchmark.

use super::case::Case;
use crate::engine::{Engine, engines};
use crate::front::program::Program;
use crate::guard::with_timeout;
use crate::reference::stack::on_native_stack;
use std::time::Duration;

/// The case for the program read from `file` (its text `source`), run
/// once by walker for the expected value and, with a `timeout`, once by
/// every engine of `measured` that is held to that value, each run under
/// the watchdog. Errors are the command line's messages.
pub fn user_case(
    file: &str,
    source: &str,
    program: Program,
    args: Vec<i64>,
    measured: &[&dyn Engine],
    timeout: Option<Duration>,
) -> Result<Case, String> {
    let name = std::path::Path::new(file)
        .file_stem()
        .map_or("program".into(), |s| s.to_string_lossy().into_owned());
    let reference = engines()[0].name();
    let what = |engine: &str| format!("`{file}` on engine `{engine}`");
    let case = with_timeout(timeout, &what(reference), || {
        Case::user(&name, source, program, args)
    })?;
    if timeout.is_some() {
        let others = measured.iter().filter(|e| e.name() != reference);
        for engine in others.filter_map(|e| case.form(*e).ok()) {
            with_timeout(timeout, &what(engine.name()), || {
                on_native_stack(engine.native_stack(&case.program), || {
                    engine
                        .compile(&case.program)
                        .map(|code| code.execute(&case.args))
                })
            })
            .map_err(|e| format!("{file}: {e}"))?
            .map_err(|e| format!("{file}: {e}"))?;
        }
    }
    Ok(case)
}
