//! `luajit_interp` — peer: `luajit` with the JIT off, i.e. LuaJIT's
//! hand-written assembly interpreter alone.
//!
//! Everything is as in [`super::luajit`] (same Lua source, same helper
//! process, same doubles exact to 2⁵³), except that the program is loaded in
//! the helper's second Lua state, where `jit.off()` was called and
//! `jit.status()` checked to be off before anything is loaded. Every
//! iteration then runs through LuaJIT's interpreter: register bytecode
//! dispatched by a hand-scheduled assembly loop, a peer for our interpreters
//! rather than for a compiler.
//!
//! Trade-off: no warm-up and no trace compilation, so it shows how far careful
//! dispatch in assembly gets without a JIT.
//!
//! **Unsafe code**: only calls into [`super::luajit`]'s `execute`, which has
//! none of its own (LuaJIT runs in the helper process).

use super::luajit::{self, Code};
use crate::clock::Clock;
use crate::engine::{CompileError, Technique, Tier, TimedRuns};
use crate::front::program::Program;
use std::time::Duration;

pub struct LuaJitInterp;

impl Technique for LuaJitInterp {
    const NAME: &'static str = "luajit_interp";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "Lua source on LuaJIT's interpreter, JIT off (helper process)";
    const EXACT_MAGNITUDE: Option<u64> = Some(1 << 53);
    type Code = Code;

    fn supports(program: &Program) -> Result<(), String> {
        luajit::supports(program)
    }
    fn compile(program: &Program) -> Result<Code, CompileError> {
        luajit::compile(program, false, Clock::Wall).map(|(code, _)| code)
    }
    fn compile_timed(
        program: &Program,
        clock: Clock,
    ) -> Option<Result<(Code, Duration), CompileError>> {
        Some(luajit::compile(program, false, clock))
    }
    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        // SAFETY: the caller's promise about `args` is passed on unchanged.
        unsafe { luajit::LuaJit::execute(code, args) }
    }
    unsafe fn execute_timed(
        code: &Code,
        args: &[i64],
        reps: u64,
        expected: i64,
        clock: Clock,
    ) -> Option<TimedRuns> {
        Some(code.timed_runs(args, reps, expected, clock))
    }
    fn show(code: &Code) -> String {
        luajit::LuaJit::show(code)
    }
}
