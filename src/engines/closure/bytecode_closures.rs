//! `bytecode_closures` — a mix of `bytecode` and `closures`: a flat array of
//! instruction-like closures, run by a loop with an instruction pointer.
//!
//! **Compile** first produces and verifies exactly the instruction list of
//! [`bytecode`] (the same stack discipline, rotated loops and resolved local
//! slots), then turns each instruction into one closure
//! `Fn(&Env, Sp, Ip) -> (Ip, Sp)` that captures its operands (for a jump,
//! its distance to the target) and returns the address to run next: `ip + 1`
//! for straight-line work, `ip` plus the distance for a taken jump, null for
//! `return`. There is no opcode left to decode at run time. The array holds
//! each closure as two words (code pointer and closure address, `closures`'
//! `thin_closure!`; the closures live in one arena).
//! **Values** live on a value stack and **locals** in slots, one buffer per
//! execute sized exactly as for `bytecode` ([`Program::max_locals`] slots,
//! then the verified maximum stack height).
//! **Control**: `while !ip.is_null() { (ip, sp) = (*ip).call(&frame, sp, ip) }`:
//! the stack pointer and the instruction pointer travel in registers, not
//! through memory. The loop dereferences `ip` unchecked and the closures
//! access stack and locals unchecked, both sound because the loop runs them
//! exactly along paths the bytecode verifier followed, at the stack heights
//! it computed.
//!
//! **What an instruction costs**: its own work (as in `bytecode`: stack
//! traffic, one load through the frame for a local or argument), plus the
//! dispatch: two loads from the array (no vtable), the call, the return of
//! `(ip, sp)` in two registers and the halt test. The next address is
//! computed from `ip`, never loaded from the closure's captures: a captured
//! successor (`ip + 1` stored in each closure) would make each instruction
//! wait for two dependent loads before the next could start, and measured
//! far slower for about the same instruction count. There is no
//! operand-location variant: the instruction list is `bytecode`'s.
//!
//! **Calls, returns, branches** are `bytecode`'s, each one closure: the
//! branches (`jump>0`, `jump<`, `jump`) return `ip` plus a captured
//! distance; `call` captures its callee's entry (as a distance), arity and
//! frame size. Since the loop only ever runs "the next closure", a call
//! cannot return by the native stack: `call` pushes the address after
//! itself and the caller's frame base on a `Vec` of records in the frame
//! object, moves the frame's locals pointer to the first argument (the
//! arguments become the callee's first locals, in the one value-stack
//! buffer) and returns the callee's entry; `ret` moves the value down to
//! where the first argument was, pops the record and returns its address.
//! A **frame** is thus a base pointer into the value stack, kept in the
//! frame object beside the arguments (Level 1 reads it from the same place
//! it always read its locals pointer), and the native stack never grows
//! per guest call. The record count is the depth: the call that finds
//! `MAX_CALLS` flags the failure and returns null, which halts the loop. A
//! call or a return costs one closure call plus the record's traffic; the
//! buffer grows (doubling, rarely) when a callee's frame would not fit.
//!
//! Trade-off: one indirect call per instruction instead of a `match` on an
//! opcode; the call can't be inlined and every value still goes through
//! memory, so it competes with `bytecode` rather than with `closures`.
//!
//! Unsafe code rests on a verifier: `bytecode`'s, which checks every
//! instruction's operands, jump targets and stack heights before a closure
//! is made.

use super::closures::{Arena, thin_closure};
use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::engines::bytecode_vm::bytecode::{self, Chunk, Op};
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::{Cell, UnsafeCell};

/// The stack pointer: the next free slot of the value stack. It is passed
/// into each closure and handed back with the next `ip`, so it stays in a
/// register across the dispatch loop instead of round-tripping through
/// memory. Invariant: when the closure for address `ip` runs, `sp` sits at
/// the stack height the verifier computed for `ip`, within a stack of
/// `max_stack` slots.
type Sp = *mut i64;

thin_closure! {
    /// One instruction's closure, held as two words (no vtable). It gets its
    /// own address `ip` and returns the address of the instruction to run
    /// next (null for `return`).
    struct Instr = Fn(frame: &Frame, sp: Sp, ip: Ip) -> (Ip, Sp);
}

/// What every instruction may reach besides `sp` and `ip`: the run's
/// arguments, the active frame's locals and, for a program with functions,
/// the calls.
///
/// Invariant (with `Sp`'s): `args` points at the program's `arg_count`
/// readable values; `locals` at the active body's frame, whose local slots
/// and verified stack lie inside `calls.stack` (or, without functions, the
/// run's one buffer).
pub struct Frame {
    args: *const i64,
    locals: Cell<*mut i64>,
    calls: UnsafeCell<Calls>,
}

/// The frames of a program with functions, in the engine's own memory. Only
/// `call` and `ret` touch it, one at a time (the loop runs one closure at a
/// time and none keeps a reference).
#[derive(Default)]
struct Calls {
    /// Every active frame: main's, then each call's above its caller's.
    stack: Vec<i64>,
    /// Per active call: where the caller continues, and its frame (a slot
    /// of `stack`, so growing it moves nothing but the buffer).
    returns: Vec<(Ip, usize)>,
    /// Set by the call that would exceed the limit (it halts the run).
    failed: bool,
}

/// The instruction pointer: an address in [`Code::instrs`]. The next one
/// is computed from the current one (`ip + 1`, or a captured distance for a
/// jump), never loaded from the closure: a loaded successor would put two
/// dependent loads on the path from one instruction to the next.
type Ip = *const Instr;

/// The compiled program: one closure per verified instruction, plus the
/// instructions themselves for sizes and `show`.
pub struct Code {
    instrs: Vec<Instr>,
    chunk: Chunk,
    /// Owns the closures `instrs` point to.
    _arena: Arena,
}

// SAFETY (for every `unsafe` block in the closures below): the verifier
// accepted the instruction at `ip` with its operand — slots below the local
// count, argument indices below `arg_count`, a stack height that neither
// underflows nor exceeds `max_stack` — and the `Sp` invariant puts `sp` at
// exactly that height when the closure runs (the loop runs closures only
// along verified paths, starting at address 0 with an empty stack).
// Returned addresses are computed with wrapping arithmetic and only
// dereferenced by the loop in `execute`.
fn instr(arena: &Arena, chunk: &Chunk, at: usize, op: Op) -> Instr {
    // A jump's target as a distance from the jump itself.
    let to = |t: usize| t.wrapping_sub(at) as isize;
    match op {
        Op::Push(n) => Instr::new_in(arena, move |_, sp, ip| {
            // SAFETY: verified: the push stays within `max_stack`.
            unsafe {
                *sp = n;
                (ip.wrapping_add(1), sp.add(1))
            }
        }),
        Op::Arg(i) => Instr::new_in(arena, move |f, sp, ip| {
            // SAFETY: verified: `i < arg_count`, the push stays within `max_stack`.
            unsafe {
                *sp = *f.args.add(i);
                (ip.wrapping_add(1), sp.add(1))
            }
        }),
        Op::Get(s) => Instr::new_in(arena, move |f, sp, ip| {
            // SAFETY: verified: `s` < local slots, the push stays within `max_stack`.
            unsafe {
                *sp = *f.locals.get().add(s);
                (ip.wrapping_add(1), sp.add(1))
            }
        }),
        Op::Store(s) => Instr::new_in(arena, move |f, sp, ip| {
            // SAFETY: verified: `s` < local slots, one value to pop.
            unsafe {
                let sp = sp.sub(1);
                *f.locals.get().add(s) = *sp;
                (ip.wrapping_add(1), sp)
            }
        }),
        Op::Add => Instr::new_in(arena, move |_, sp, ip| {
            // SAFETY: verified: two values to pop, one pushed back.
            unsafe {
                let sp = sp.sub(1);
                let top = sp.sub(1);
                *top = (*top).wrapping_add(*sp);
                (ip.wrapping_add(1), sp)
            }
        }),
        Op::Jump(t) => {
            let d = to(t);
            Instr::new_in(arena, move |_, sp, ip| (ip.wrapping_offset(d), sp))
        }
        Op::JumpIfPositive(t) => {
            let d = to(t);
            Instr::new_in(arena, move |_, sp, ip| {
                // SAFETY: verified: one value to pop.
                unsafe {
                    let sp = sp.sub(1);
                    let step = if *sp > 0 { d } else { 1 };
                    (ip.wrapping_offset(step), sp)
                }
            })
        }
        // The value stays on the stack for `execute` to take.
        Op::Return => Instr::new_in(arena, |_, sp, _| (std::ptr::null(), sp)),
        Op::Sub => Instr::new_in(arena, move |_, sp, ip| {
            // SAFETY: verified: two values to pop, one pushed back.
            unsafe {
                let sp = sp.sub(1);
                let top = sp.sub(1);
                *top = (*top).wrapping_sub(*sp);
                (ip.wrapping_add(1), sp)
            }
        }),
        Op::Lt => Instr::new_in(arena, move |_, sp, ip| {
            // SAFETY: verified: two values to pop, one pushed back.
            unsafe {
                let sp = sp.sub(1);
                let top = sp.sub(1);
                *top = i64::from(*top < *sp);
                (ip.wrapping_add(1), sp)
            }
        }),
        Op::JumpIfLess(t) => {
            let d = to(t);
            Instr::new_in(arena, move |_, sp, ip| {
                // SAFETY: verified: two values to pop.
                unsafe {
                    let sp = sp.sub(2);
                    let step = if *sp < *sp.add(1) { d } else { 1 };
                    (ip.wrapping_offset(step), sp)
                }
            })
        }
        Op::Pop => Instr::new_in(arena, move |_, sp, ip| {
            // SAFETY: verified: one value to pop.
            (ip.wrapping_add(1), unsafe { sp.sub(1) })
        }),
        Op::Call { function, arity } => {
            let callee = chunk.callees()[function as usize];
            let (d, arity) = (to(callee.entry), arity as usize);
            Instr::new_in(arena, move |f, sp, ip| {
                // SAFETY: the chunk has functions, so `execute` set up
                // `calls` with main's frame in `calls.stack`, and no other
                // reference to it is live. Verified: the caller's stack
                // holds the `arity` arguments, which start the callee's
                // frame; the callee's body was verified for `callee.locals`
                // slots and `callee.frame` in all, which the stack is grown
                // to hold before the frame becomes active.
                unsafe {
                    let calls = &mut *f.calls.get();
                    if calls.returns.len() == MAX_CALLS {
                        calls.failed = true;
                        return (std::ptr::null(), sp);
                    }
                    let base = calls.stack.as_mut_ptr();
                    let fp = f.locals.get().offset_from(base) as usize;
                    let mut callee_fp = sp.sub(arity);
                    let room = base.add(calls.stack.len()).offset_from(callee_fp) as usize;
                    if room < callee.frame {
                        let at = callee_fp.offset_from(base) as usize;
                        bytecode::grow(&mut calls.stack, at + callee.frame);
                        callee_fp = calls.stack.as_mut_ptr().add(at);
                    }
                    calls.returns.push((ip.wrapping_add(1), fp));
                    f.locals.set(callee_fp);
                    (ip.wrapping_offset(d), callee_fp.add(callee.locals))
                }
            })
        }
        Op::Ret => Instr::new_in(arena, |f, sp, _| {
            // SAFETY: verified: `ret` runs only in a function's body, so a
            // call pushed the record it pops and `calls` is set up; the
            // value goes to the frame's first slot, which is the caller's
            // stack slot where the arguments began.
            unsafe {
                let calls = &mut *f.calls.get();
                let fp = f.locals.get();
                *fp = *sp.sub(1);
                let (back, caller) = calls.returns.pop().unwrap_unchecked();
                f.locals.set(calls.stack.as_mut_ptr().add(caller));
                (back, fp.add(1))
            }
        }),
    }
}

technique! {
    BytecodeClosures = "bytecode_closures", Original, Code;
    "one closure per bytecode instruction, run by an ip loop";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;
    // One closure per instruction, by the instruction's kind.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<bytecode::OpKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        crate::engine::census_of(code.chunk.ops().iter().map(bytecode::OpKind::from))
    }
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let chunk = bytecode::compile_chunk(program)?;
    // Closures take 0 to 16 bytes.
    let arena = Arena::with_capacity(16 * chunk.ops().len());
    let instrs = chunk
        .ops()
        .iter()
        .enumerate()
        .map(|(at, &op)| instr(&arena, &chunk, at, op))
        .collect();
    Ok(Code {
        instrs,
        chunk,
        _arena: arena,
    })
}

/// Runs the instruction closures from the first, on a fresh frame.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // Locals first, then the value stack, in one allocation.
    let main_frame = code.chunk.locals() + code.chunk.max_stack();
    if code.chunk.callees().is_empty() {
        let mut buffer = vec![0i64; main_frame];
        let frame = Frame {
            args: args.as_ptr(),
            locals: Cell::new(buffer.as_mut_ptr()),
            calls: UnsafeCell::default(),
        };
        // SAFETY: the `Frame` invariant: a buffer sized from the verified
        // chunk, `args` by our caller's contract. Only `return` halts, and
        // the verifier saw ≥ 1 value there.
        Ok(unsafe { *drive(code, &frame).sub(1) })
    } else {
        let mut calls = Calls {
            stack: vec![0i64; main_frame + bytecode::STACK_HEADROOM],
            ..Calls::default()
        };
        let frame = Frame {
            args: args.as_ptr(),
            locals: Cell::new(calls.stack.as_mut_ptr()),
            calls: UnsafeCell::new(calls),
        };
        // SAFETY: as above, with main's frame at the start of `calls.stack`.
        let sp = unsafe { drive(code, &frame) };
        match frame.calls.into_inner().failed {
            true => Err(CallDepthExceeded),
            // SAFETY: `return` halted, and the verifier saw ≥ 1 value there.
            false => Ok(unsafe { *sp.sub(1) }),
        }
    }
}

/// Runs the closures from address 0 until one returns null (`return`, or
/// a call that failed the run), and gives the stack pointer then.
///
/// # Safety
///
/// `frame` satisfies the `Frame` invariant for `code`, at the start of main.
#[inline(always)]
unsafe fn drive(code: &Code, frame: &Frame) -> Sp {
    // SAFETY: main's locals are within the frame.
    let mut sp = unsafe { frame.locals.get().add(code.chunk.locals()) };
    let mut ip: Ip = code.instrs.as_ptr();
    while !ip.is_null() {
        // SAFETY: `ip` is the first instruction or one a verified
        // instruction returned: the next after it, its jump target, a
        // callee's entry or the instruction after a call, all inside
        // `instrs` (the verifier proved every path stays inside the code);
        // `return` and a failing call alone return null.
        (ip, sp) = unsafe { *ip }.call(frame, sp, ip);
    }
    sp
}

fn show(code: &Code) -> String {
    format!(
        "; one closure per instruction, each returning the next ip (`return` halts)\n{}",
        code.chunk
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(BytecodeClosures);

    #[test]
    fn one_closure_per_instruction() {
        let p = crate::front::compile_source("t", "let n = 3; while n { n = n + -1 }").unwrap();
        let code = compile(&p).unwrap();
        assert_eq!(code.instrs.len(), code.chunk.ops().len());
        assert!(show(&code).contains("jump>0"));
    }
}
