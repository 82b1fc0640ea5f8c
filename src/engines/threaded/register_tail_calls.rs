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
use crate::engines::threaded::{Become, threaded_engine};

threaded_engine! {
    RegisterTailCalls = "register_tail_calls", Beyond, Code<RegIsa, Become>, compile(|_| Plain);
    "register_continuations with guaranteed tail calls (`become`) in every profile";
    conformance: guaranteed_tail_calls
}
