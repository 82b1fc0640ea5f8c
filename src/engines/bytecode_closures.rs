//! `bytecode_closures` — a mix of `bytecode` and `closures`: a flat array of
//! instruction-like closures, run by a loop with an instruction pointer.
//!
//! **Compile** first produces and verifies exactly the instruction list of
//! [`bytecode`] (the same stack discipline, rotated loops and resolved local
//! slots), then turns each instruction into one closure
//! `Fn(&Frame, Sp) -> (usize, Sp)` that captures its operands — and its own
//! successor's address — and returns the address to run next: `ip + 1`
//! for straight-line work, the target for a taken jump, and an address past
//! the end for `return`. There is no opcode left to decode at run time.
//! The array holds each closure as two words (code pointer and closure
//! address, `closures`' `thin_closure!`; the closures live in one arena).
//! **Values** live on a value stack and **locals** in slots, one buffer per
//! execute sized exactly as for `bytecode` ([`Program::max_locals`] slots,
//! then the verified maximum stack height).
//! **Control**: `while let Some(f) = code.get(ip) { (ip, sp) = f(&frame, sp) }`:
//! the stack pointer travels with `ip` in registers, not through memory. The
//! bounds check doubles as the halt test, so dispatch needs no `unsafe`; the
//! closures' unchecked stack and local accesses are sound because the loop
//! runs them exactly along paths the bytecode verifier followed, at the
//! stack heights it computed.
//!
//! **What an instruction costs**: its own work (as in `bytecode`: stack
//! traffic, one load through the frame for a local or argument), plus the
//! dispatch: the bounds check that doubles as the halt test, two loads from
//! the array (no vtable), the call and the return of `(ip, sp)` in two
//! registers. There is no operand-location variant (the original's design
//! had none; the instruction list is `bytecode`'s).
//!
//! Trade-off: one indirect call per instruction instead of a `match` on an
//! opcode; the call can't be inlined and every value still goes through
//! memory, so it competes with `bytecode` rather than with `closures`.
//!
//! Unsafe code rests on a verifier: `bytecode`'s, which checks every
//! instruction's operands and stack heights before a closure is made.

use super::bytecode::{self, Chunk, Op};
use super::closures::{Arena, thin_closure};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::program::Program;

pub struct BytecodeClosures;

/// What the instruction closures read: where the arguments and locals are.
///
/// Invariant (upheld by [`BytecodeClosures::execute`], the only place a
/// `Frame` is made): `args` points at the program's `arg_count` values and
/// `locals` at the chunk's local slots.
pub struct Frame {
    args: *const i64,
    locals: *mut i64,
}

/// The stack pointer: the next free slot of the value stack. It is passed
/// into each closure and handed back with the next `ip`, so it stays in a
/// register across the dispatch loop instead of round-tripping through
/// memory. Invariant: when the closure for address `ip` runs, `sp` sits at
/// the stack height the verifier computed for `ip`, within a stack of
/// `max_stack` slots.
type Sp = *mut i64;

thin_closure! {
    /// One instruction's closure, held as two words (no vtable).
    struct Instr = Fn(frame: &Frame, sp: Sp) -> (usize, Sp);
}

/// The compiled program: one closure per verified instruction, plus the
/// instructions themselves for sizes and `show`.
pub struct Code {
    instrs: Vec<Instr>,
    chunk: Chunk,
    /// Owns the closures `instrs` point to.
    _arena: Arena,
}

/// Returned by `return`: no instruction lives there, so the loop stops.
const HALT: usize = usize::MAX;

// SAFETY (for every `unsafe` block in the closures below): the verifier
// accepted the instruction at `ip` with its operand — slots below the local
// count, argument indices below `arg_count`, a stack height that neither
// underflows nor exceeds `max_stack` — and the `Sp` invariant puts `sp` at
// exactly that height when the closure runs (the loop runs closures only
// along verified paths, starting at address 0 with an empty stack).
fn instr(arena: &Arena, ip: usize, op: Op) -> Instr {
    let next = ip + 1;
    match op {
        Op::Push(n) => Instr::new_in(arena, move |_, sp| {
            // SAFETY: verified: the push stays within `max_stack`.
            unsafe {
                *sp = n;
                (next, sp.add(1))
            }
        }),
        Op::Arg(i) => Instr::new_in(arena, move |f, sp| {
            // SAFETY: verified: `i < arg_count`, the push stays within `max_stack`.
            unsafe {
                *sp = *f.args.add(i);
                (next, sp.add(1))
            }
        }),
        Op::Get(s) => Instr::new_in(arena, move |f, sp| {
            // SAFETY: verified: `s` < local slots, the push stays within `max_stack`.
            unsafe {
                *sp = *f.locals.add(s);
                (next, sp.add(1))
            }
        }),
        Op::Store(s) => Instr::new_in(arena, move |f, sp| {
            // SAFETY: verified: `s` < local slots, one value to pop.
            unsafe {
                let sp = sp.sub(1);
                *f.locals.add(s) = *sp;
                (next, sp)
            }
        }),
        Op::Add => Instr::new_in(arena, move |_, sp| {
            // SAFETY: verified: two values to pop, one pushed back.
            unsafe {
                let sp = sp.sub(1);
                let top = sp.sub(1);
                *top = (*top).wrapping_add(*sp);
                (next, sp)
            }
        }),
        Op::Jump(t) => Instr::new_in(arena, move |_, sp| (t, sp)),
        Op::JumpIfPositive(t) => Instr::new_in(arena, move |_, sp| {
            // SAFETY: verified: one value to pop; `t` and `next` are in range.
            unsafe {
                let sp = sp.sub(1);
                (if *sp > 0 { t } else { next }, sp)
            }
        }),
        // The value stays on the stack for `execute` to take.
        Op::Return => Instr::new_in(arena, |_, sp| (HALT, sp)),
    }
}

impl Technique for BytecodeClosures {
    const NAME: &'static str = "bytecode_closures";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str = "one closure per bytecode instruction, run by an ip loop";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let chunk = bytecode::compile_chunk(program)?;
        // Closures take 0 to 16 bytes.
        let arena = Arena::with_capacity(16 * chunk.ops().len());
        let instrs = chunk
            .ops()
            .iter()
            .enumerate()
            .map(|(ip, &op)| instr(&arena, ip, op))
            .collect();
        Ok(Code {
            instrs,
            chunk,
            _arena: arena,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let (locals_len, max_stack) = (code.chunk.locals(), code.chunk.max_stack());
        // Locals first, then the value stack, in one allocation.
        let mut buffer = vec![0i64; locals_len + max_stack];
        let locals = buffer.as_mut_ptr();
        // SAFETY: `locals_len` is within `buffer`.
        let sp = unsafe { locals.add(locals_len) };
        // The `Frame` and `Sp` invariants at ip 0: empty stack, buffers
        // sized from the verified chunk, the caller covers `arg_count`.
        let frame = Frame {
            args: args.as_ptr(),
            locals,
        };
        let (mut ip, mut sp) = (0, sp);
        // Each closure returns a verified successor (in range) or HALT.
        // The slice in locals: its pointer and length stay in registers.
        let instrs = code.instrs.as_slice();
        while let Some(f) = instrs.get(ip) {
            (ip, sp) = f.call(&frame, sp);
        }
        // SAFETY: only `return` halts, and the verifier saw ≥ 1 value there.
        unsafe { *sp.sub(1) }
    }

    fn show(code: &Code) -> String {
        format!(
            "; one closure per instruction, each returning the next ip (`return` halts)\n{}",
            code.chunk
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(BytecodeClosures);

    #[test]
    fn one_closure_per_instruction() {
        let p = crate::front::compile_source("t", "let n = 3; while n { n = n + -1 }").unwrap();
        let code = BytecodeClosures::compile(&p).unwrap();
        assert_eq!(code.instrs.len(), code.chunk.ops().len());
        assert!(BytecodeClosures::show(&code).contains("jump>0"));
    }
}
