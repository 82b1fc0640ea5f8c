//! `luajit_interp` — peer: `luajit` with the JIT off, i.e. LuaJIT's
//! hand-written assembly interpreter alone.
//!
//! Everything is as in [`super::luajit`] (same Lua source, same helper
//! process, same doubles exact to 2⁵³), except that runs beyond 2⁵³ take a
//! *wide form* ([`Technique::WIDE`], chosen per run by
//! [`crate::reference::form_for`]): the same source computing in LuaJIT's
//! 64-bit integers (`int64_t` cdata, `LL` literals, wrapping like ours),
//! exact on every value but slower, since the interpreter boxes each cdata
//! result; reports say which form each cell used. And the program is loaded in
//! the helper's second Lua state, where `jit.off()` was called and
//! `jit.status()` checked to be off before anything is loaded. Every
//! iteration then runs through LuaJIT's interpreter: register bytecode
//! dispatched by a hand-scheduled assembly loop, a peer for our interpreters
//! rather than for a compiler.
//!
//! Trade-off: no warm-up and no trace compilation, so it shows how far careful
//! dispatch in assembly gets without a JIT.
//!
//! **Unsafe code**: none (its items are [`super::luajit`]'s, expanded by
//! `in_helper!`); LuaJIT runs in the helper process.

use super::luajit::{DOUBLE, INT64, in_helper};
use crate::engine::{Engine, Registered, Technique, Tier};
use crate::front::program::Level;

pub struct LuaJitInterp;

impl Technique for LuaJitInterp {
    const NAME: &'static str = "luajit_interp";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "Lua source on LuaJIT's interpreter, JIT off (helper process)";
    const EXACT_MAGNITUDE: Option<u64> = Some(1 << 53);
    const LEVEL: Level = Level::Two;
    const FORM: Option<&'static str> = Some(DOUBLE);
    const WIDE: Option<&'static dyn Engine> = Some(&Registered::<LuaJitInterpInt64>::NEW);
    in_helper!(jit: false, wide: false);
}

/// `luajit_interp`'s wide form: not in the registry, reached through
/// [`Technique::WIDE`] for the runs beyond 2⁵³.
pub struct LuaJitInterpInt64;

impl Technique for LuaJitInterpInt64 {
    const NAME: &'static str = LuaJitInterp::NAME;
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = LuaJitInterp::SUMMARY;
    const LEVEL: Level = Level::Two;
    const FORM: Option<&'static str> = Some(INT64);
    in_helper!(jit: false, wide: true);
}
