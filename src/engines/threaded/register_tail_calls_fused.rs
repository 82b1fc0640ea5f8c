//! `register_tail_calls_fused` — `register_continuations_fused` on the
//! `become` backend: the same superinstructions (listed in that module),
//! compiler, verifier and handler source, with every continuation a
//! *guaranteed* tail call (nightly Rust's `become`; cargo feature
//! `nightly`).
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.

use super::register_continuations::{Code, compile};
use super::register_continuations_fused::{FusedIsa, Shapes};
use crate::engines::threaded::{Become, threaded_engine};

threaded_engine! {
    RegisterTailCallsFused = "register_tail_calls_fused", Fused, Code<FusedIsa, Become>, compile(|_| Shapes::<FusedIsa>::default());
    "register_continuations_fused with guaranteed tail calls (`become`) in every profile";
    conformance: guaranteed_tail_calls
}
