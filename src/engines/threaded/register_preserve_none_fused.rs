//! `register_preserve_none_fused` — `register_continuations_fused`'s
//! superinstructions on `register_preserve_none`'s eight registers: the
//! same fused shapes (listed in `register_continuations_fused`), hook,
//! compiler and handler source, on the `rust-preserve-none` convention
//! with `become` (cargo feature `nightly`).
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.
//!
//! Trade-off: as `register_preserve_none`, with the fused tier's handlers
//! multiplied by the wider register set (about 2,400 more).

use super::register_continuations::{
    Code, LocOperand, compile, load, return_to_caller, slot, store,
};
use super::register_continuations_fused::{Instr, Kind, Memory, Shapes, register_fused_family};
use super::register_preserve_none::{
    ACC, CONST, Handler, R0, R1, R2, R3, R4, R5, R6, R7, REGS, SLOT, WideIsa, Word, words,
};
use crate::engines::threaded::{Backward, Become, Bounds, frame, target, threaded_engine, word};

register_fused_family! {
    regs: [(r0, R0), (r1, R1), (r2, R2), (r3, R3), (r4, R4), (r5, R5), (r6, R6), (r7, R7)],
    abi: "rust-preserve-none",
    // Not instrumented by AddressSanitizer: see `register_preserve_none`.
    attrs: [sanitize(address = "off")],
    isa: {
        /// `register_preserve_none`'s instruction set plus the fused tier's
        /// superinstructions.
        pub isa FusedWideIsa {
            word: Word, handler: Handler, instr: use Instr, kind: use Kind, min_len: 1,
            extends: WideIsa,
        }
    }
}

threaded_engine! {
    RegisterPreserveNoneFused = "register_preserve_none_fused", Fused, Code<FusedWideIsa, Become>,
        compile(|_| Shapes::<FusedWideIsa>::default());
    "register_continuations_fused with eight hot locals in handler arguments (`rust-preserve-none`, `become`)";
    conformance: guaranteed_tail_calls
}
