//! `tail_calls` — `tape_continuations` on the `become` backend: the same
//! instruction set, compiler, verifier and handler source, with every
//! continuation a *guaranteed* tail call (nightly Rust's `become`; cargo
//! feature `nightly`).
//!
//! **Compile**, **values and locals** are exactly `tape_continuations`'
//! (see that module): an accumulator and the two innermost locals in
//! handler arguments, everything else in one frame sized at compile time.
//!
//! **Control**: the threaded-code core instantiates each handler for the
//! [`Become`] backend, so every continuation is `become next(…)`, which the
//! language keeps in every profile, opt-level 0 included. So unlike
//! `tape_continuations`, whose stable-Rust loops *return* to a driver on
//! every back-edge (saving and reloading the registers), here a back-edge
//! is just another jump to the loop head: the whole run is one chain of
//! jumps on one native frame, and only `halt` returns.
//!
//! **Calls** are `tape_continuations`' (one dispatch each, frames on the
//! engine's own stack), and here back-edges, calls and returns alike are
//! guaranteed jumps, at opt-level 0 too.
//!
//! **Unsafe** code rests on the verifier, as in `tape_continuations`.
//!
//! Trade-off: the cheapest possible back-edge and no reliance on LLVM's
//! sibling-call optimisation, for a nightly-only language feature. Comparing
//! this engine with `tape_continuations` measures exactly what the
//! trampoline costs.

use super::tape_continuations::{Code, Plain, TapeIsa, compile};
use crate::engines::threaded::{Become, threaded_engine};

threaded_engine! {
    TailCalls = "tail_calls", Beyond, Code<TapeIsa, Become>, compile(|_| Plain);
    "tape_continuations' tape with guaranteed tail calls (`become`): back-edges are jumps too";
    conformance: guaranteed_tail_calls
}
