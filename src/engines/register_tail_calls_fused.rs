//! `register_tail_calls_fused` — `register_continuations_fused` on the
//! `become` backend: the same superinstructions (listed in that module),
//! compiler, verifier and handler source, with every continuation a
//! *guaranteed* tail call (nightly Rust's `become`; cargo feature
//! `nightly`).
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.

use super::register_continuations::{Code, compile};
use super::register_continuations_fused::{FusedIsa, Shapes};
use crate::engine::{CompileError, Technique, Tier};
use crate::engines::threaded::Become;
use crate::front::program::Program;

pub struct RegisterTailCallsFused;

impl Technique for RegisterTailCallsFused {
    const NAME: &'static str = "register_tail_calls_fused";
    const TIER: Tier = Tier::Fused;
    const TAIL_CALLS: bool = true;
    const SUMMARY: &'static str =
        "register_continuations_fused with guaranteed tail calls (`become`) in every profile";
    type Code = Code<FusedIsa, Become>;

    fn compile(program: &Program) -> Result<Self::Code, CompileError> {
        compile::<_, Become>(program, &Shapes)
    }

    unsafe fn execute(code: &Self::Code, args: &[i64]) -> i64 {
        // SAFETY: `execute`'s own contract: `args` holds `arg_count` values.
        unsafe { code.run(args) }
    }

    fn show(code: &Self::Code) -> String {
        code.listing()
    }
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(
        super::RegisterTailCallsFused,
        extra: [REGISTER_TRICKY, CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments, hundred_million_iterations],
    );
}
