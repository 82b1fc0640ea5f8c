//! `register_preserve_none` — `register_continuations` with eight locals in
//! registers instead of three: the same instruction set, compiler,
//! register allocation, verifier and handler source, on a calling
//! convention that passes state in every register it can (nightly Rust's
//! `extern "rust-preserve-none"` with `become`; cargo feature `nightly`).
//!
//! **Why three was the limit.** A handler's state travels in its argument
//! registers from one handler to the next. Rust's convention on x86-64
//! (System V) has six integer argument registers; the other general
//! registers are callee-saved, so a handler that used them would have to
//! save and restore them, which a tail call cannot do. `register_continuations`
//! spends its six on `ip`, `fp`, `acc` and three locals; every other local
//! is a frame slot, a load and a store per use.
//!
//! **What `preserve_none` changes.** Under LLVM's `preserve_none` no
//! register is callee-saved, so the callee-saved ones become argument
//! registers too: on x86-64, `r12 r13 r14 r15 rdi rsi rdx rcx r8 r9 r11
//! rax`, twelve. The state here is `(ip, fp, acc, r0…r7)`, eleven
//! arguments: eight locals live in registers, chosen by the same
//! loop-weighted allocator. The twelfth register, `rax`, stays free on
//! purpose: a dispatch loads the next handler's address into a register
//! that is not an argument, and with all twelve taken LLVM (nightly 1.97)
//! loads it into `rax` and jumps with the twelfth argument clobbered — a
//! miscompile, so eleven is the most a handler can take. The scratch
//! registers left for a handler's own work are `rbx`, `rbp` and `r10`,
//! enough for every op here.
//!
//! **The same handler source.** `register_family!` writes the location
//! kinds, the instruction set (every op with every location combination of
//! the family's registers), the convention and the handlers once, from a
//! list of registers and an ABI; `register_continuations` invokes it with
//! three registers and Rust's ABI, this module with eight and
//! `rust-preserve-none`. The instruction and kind enums are shared, so the
//! compiler is the same code, generic over the family's register count.
//! What grows is the handler table: `add` alone has 10 destinations × 11 ×
//! 11 sources, about 1,700 handlers in all (the three-register family has
//! about 400).
//!
//! **Calls** work as in `register_continuations`: frames in the engine's
//! own memory, a call saves the registers its caller holds (up to eight),
//! a return restores all eight. Continuations are `become` in every
//! profile, so nothing here rests on LLVM's sibling-call optimisation.
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.
//!
//! Trade-off: loops with more than three hot locals keep them all in
//! registers, for a handler table four times the size (longer builds, more
//! instruction cache for programs that touch many variants) and a return
//! that reloads eight registers; nightly only, and x86-64 is where the
//! convention is most useful (AArch64 already passes eight arguments in
//! registers).

use super::register_continuations::{
    Code, Instr, Kind, LocOperand, Lowering, Saves, compile, load, register_family,
    return_to_caller, slot, store,
};
use crate::engines::threaded::{
    ArgIndex, Backward, Become, Bounds, Callee, Forward, FrameBase, frame, target, threaded_engine,
    word,
};
use crate::front::program::MAX_CALLS;

register_family! {
    regs: [
        (r0, R0 = 1), (r1, R1 = 2), (r2, R2 = 3), (r3, R3 = 4),
        (r4, R4 = 5), (r5, R5 = 6), (r6, R6 = 7), (r7, R7 = 8),
    ],
    abi: "rust-preserve-none",
    isa: {
        /// `register_continuations`' instruction set over eight registers.
        pub isa WideIsa {
            word: Word, handler: Handler, instr: use Instr, kind: use Kind, min_len: 1,
        }
    }
}

/// The plain tier on this family: no hook.
#[derive(Default)]
pub(crate) struct Plain;

impl Lowering for Plain {
    type Isa = WideIsa;
}

threaded_engine! {
    RegisterPreserveNone = "register_preserve_none", Beyond, Code<WideIsa, Become>, compile(|_| Plain);
    "register_continuations with eight hot locals in handler arguments (`rust-preserve-none`, `become`)";
    conformance: guaranteed_tail_calls
}
