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
    // AddressSanitizer's stack instrumentation (the fuzz builds) needs a
    // realigned stack, which LLVM cannot give a `preserve_none` function:
    // the handlers, which keep nothing on the stack, are left out of it.
    attrs: [sanitize(address = "off")],
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

#[cfg(test)]
mod tests {
    use crate::engine::RunError;

    fn compile(name: &str, src: &str) -> Box<dyn crate::engine::Executable> {
        let p = crate::front::compile_source("t", src).unwrap();
        crate::engine::engine(name).unwrap().compile(&p).unwrap()
    }

    #[test]
    fn eight_hot_locals_live_in_registers() {
        // Eight locals, all read in the loop: every one is a register, so
        // the loop body names no frame slot; the six-argument family keeps
        // five of them in slots.
        let src = "let a = 1; let b = 2; let c = 3; let d = 4; let e = 5; let f = 6; \
                   let g = 7; let n = arg(0); \
                   while n { a = a + b; b = b + c; c = c + d; d = d + e; e = e + f; \
                   f = f + g; g = g + a; n = n + -1 }; a + b + c + d + e + f + g";
        let loop_body = |listing: &str| -> Vec<String> {
            let lines: Vec<&str> = listing.lines().collect();
            let head = lines.iter().position(|l| l.contains("goto @")).unwrap();
            lines[head + 1..]
                .iter()
                .take_while(|l| !l.contains("> 0 goto"))
                .map(|l| l.to_string())
                .collect()
        };
        for name in ["register_preserve_none", "register_preserve_none_fused"] {
            let code = compile(name, src);
            let body = loop_body(&code.show());
            // Seven adds and the step (fused with the test in the fused tier).
            assert!(body.len() >= 7, "{name}:\n{}", code.show());
            assert!(
                body.iter().all(|l| !l.contains('[')),
                "{name}:\n{}",
                code.show()
            );
            assert!(code.show().contains("r7"), "{name}:\n{}", code.show());
            assert_eq!(code.execute(&[5]), compile("walker", src).execute(&[5]));
        }
        let narrow = compile("register_tail_calls", src).show();
        assert!(
            loop_body(&narrow)
                .iter()
                .filter(|l| l.contains('['))
                .count()
                >= 4,
            "{narrow}"
        );
    }

    #[test]
    fn calls_never_grow_the_native_stack() {
        // 10,000 active calls on a 128 KiB stack in every profile (`become`
        // holds at opt-level 0 too): a call that grew the native stack by
        // even 16 bytes would need 160 KiB; the rest is room for the
        // compile before the run, whose frames are large at opt-level 0.
        // The caller's eight registers come back.
        let src = "fn d(n) { if 1 < n { d(n - 1) + 1 } else { 1 } }\n\
                   let a = 1; let b = 2; let c = 3; let e = 4; let f = 5; let g = 6; let h = 7; \
                   let n = 1; let t = 0; \
                   while n { t = d(arg(0)) + a + b + c + e + f + g + h; \
                   a = a + 1; b = b + 1; c = c + 1; e = e + 1; f = f + 1; g = g + 1; h = h + 1; \
                   n = n + -1 }; t";
        for name in ["register_preserve_none", "register_preserve_none_fused"] {
            crate::reference::stack::on_stack(format!("{name}: 128 KiB"), 128 << 10, || {
                let code = compile(name, src);
                assert!(code.show().contains("saving 8"), "{name}:\n{}", code.show());
                assert_eq!(code.execute(&[10_000]), Ok(10_000 + 28), "{name}");
                assert_eq!(code.execute(&[10_001]), Err(RunError::CallDepthExceeded));
            });
        }
    }
}
