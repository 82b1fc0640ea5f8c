//! `register_tail_calls` — `register_continuations` on the `become` backend:
//! the same instruction set, compiler, register allocation, verifier and
//! handler source, with every continuation a *guaranteed* tail call
//! (nightly Rust's `become`; cargo feature `nightly`).
//!
//! `register_continuations` already tail-calls on every edge, back-edges
//! included, but on stable Rust that rests on LLVM's sibling-call
//! optimisation, which only optimised builds perform. Here the language
//! promises the jump in every profile, opt-level 0 included, so comparing
//! the two measures what the guarantee costs (nothing, when LLVM keeps its
//! side of the bargain).
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.

use super::register_continuations::{Code, Plain, RegIsa, compile};
use crate::engine::{CompileError, Technique, Tier};
use crate::engines::threaded::Become;
use crate::front::program::Program;

pub struct RegisterTailCalls;

impl Technique for RegisterTailCalls {
    const NAME: &'static str = "register_tail_calls";
    const TIER: Tier = Tier::Beyond;
    const TAIL_CALLS: bool = true;
    const SUMMARY: &'static str =
        "register_continuations with guaranteed tail calls (`become`) in every profile";
    type Code = Code<RegIsa, Become>;

    fn compile(program: &Program) -> Result<Self::Code, CompileError> {
        compile::<_, Become>(program, &Plain)
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
        super::RegisterTailCalls,
        extra: [REGISTER_TRICKY, CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments, hundred_million_iterations],
    );
}
