//! `tail_calls` — `tape_continuations`' tape with *guaranteed* tail calls
//! (nightly Rust's `become`; cargo feature `nightly`).
//!
//! **Compile** is exactly `tape_continuations`': the same lowering to the
//! typed listing ([`Instr`], shared), the same [`verify`], then each
//! instruction becomes an [`Op`] — a handler `fn` pointer and one operand
//! word — from this module's own handler set.
//!
//! **Values and locals** as in `tape_continuations`: `acc` carries the value
//! just computed, the two innermost locals ride in the handler arguments
//! `r0`/`r1`, everything else (outer locals, `Add`'s saved left operands)
//! lives in one frame sized at compile time.
//!
//! **Control**: every handler ends in `become next(…)`. `become` is a
//! promise the compiler must keep in every profile, opt-level 0 included:
//! the caller's frame is gone before the callee runs. So unlike
//! `tape_continuations`, whose stable-Rust loops must *return* to a driver
//! on every back-edge (saving and reloading the registers), here a loop's
//! back-edge is just another tail call to the loop head: the whole run is
//! one chain of jumps on one native frame, and only `halt` returns.
//!
//! Trade-off: the cheapest possible back-edge and no reliance on LLVM's
//! sibling-call optimisation, for a nightly-only language feature. Comparing
//! this engine with `tape_continuations` measures exactly what the
//! trampoline costs.

use super::tape_continuations::{Compiler, Instr, REGS, verify};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::program::Program;

pub struct TailCalls;

/// A handler: does one op's work, then `become`s the next op's handler.
///
/// # Safety
///
/// The handler contract: `ip` points at an op of a [`Tape`]'s `ops` (so its
/// listing passed [`verify`]) whose handler is this function; `fp` points at
/// a frame of that tape's `frame_len` slots; `args` points at least the
/// tape's `arg_count` readable values.
type Handler =
    unsafe fn(ip: *const Op, fp: *mut i64, args: *const i64, acc: i64, r0: i64, r1: i64) -> i64;

/// One tape cell: the handler and its operand (slot, index, literal or
/// relative jump distance).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Op {
    handler: Handler,
    operand: i64,
}

// The handler tables below are written out for exactly two registers.
const _: () = assert!(REGS == 2);

fn op(instr: Instr, at: usize) -> Op {
    let rel = |t: usize| t as i64 - at as i64;
    let (handler, operand): (Handler, i64) = match instr {
        Instr::Lit(n) => (lit, n),
        Instr::Arg(i) => (arg, i as i64),
        Instr::GetReg(k) => ([get_reg::<0>, get_reg::<1>][k], 0),
        Instr::GetSlot(s) => (get_slot, s as i64),
        Instr::SetReg(k) | Instr::Bind(k) => ([set_reg::<0>, set_reg::<1>][k], 0),
        Instr::SetSlot(s) | Instr::Push(s) => (set_slot, s as i64),
        Instr::AddPop(s) => (add_pop, s as i64),
        Instr::BindSpill(k, s) => ([bind_spill::<0>, bind_spill::<1>][k], s as i64),
        Instr::Unbind(k, s) => ([unbind::<0>, unbind::<1>][k], s as i64),
        Instr::JumpIfNotPos(t) => (jump_if_not_pos, rel(t)),
        Instr::Loop(t) => (loop_back, rel(t)),
        Instr::LoopIfPos(t) => (loop_if_pos, rel(t)),
        Instr::Halt => (halt, 0),
        Instr::Fused(_) => unreachable!("`Compiler::program` emits no superinstructions"),
    };
    Op { handler, operand }
}

/// `become`s the op `$rel` cells away (1: the next one).
macro_rules! jump {
    ($ip:expr, $rel:expr, $fp:expr, $args:expr, $acc:expr, $r0:expr, $r1:expr) => {{
        let (ip, fp, args, acc, r0, r1): (*const Op, *mut i64, *const i64, i64, i64, i64) =
            ($ip, $fp, $args, $acc, $r0, $r1);
        // SAFETY: `verify` proved the tape ends with `halt`, only `halt` and
        // `loop` do not fall through, and every jump target is inside the
        // tape; so `ip + rel` is an op of the same tape, and the handler
        // contract passes on unchanged.
        unsafe {
            let ip = ip.offset($rel);
            let handler = (*ip).handler;
            become handler(ip, fp, args, acc, r0, r1)
        }
    }};
}

macro_rules! operand {
    ($ip:expr) => {
        // SAFETY: by the handler contract `ip` points at an op of the tape.
        unsafe { (*$ip).operand }
    };
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn lit(ip: *const Op, fp: *mut i64, args: *const i64, _: i64, r0: i64, r1: i64) -> i64 {
    let n = operand!(ip);
    jump!(ip, 1, fp, args, n, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn arg(ip: *const Op, fp: *mut i64, args: *const i64, _: i64, r0: i64, r1: i64) -> i64 {
    let i = operand!(ip) as usize;
    // SAFETY: `verify` checked the index is below `arg_count`, and by the
    // handler contract `args` holds that many values.
    let acc = unsafe { *args.add(i) };
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn get_reg<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    _: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let acc = if K == 0 { r0 } else { r1 };
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn get_slot(ip: *const Op, fp: *mut i64, args: *const i64, _: i64, r0: i64, r1: i64) -> i64 {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let acc = unsafe { *fp.add(slot) };
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn set_reg<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> i64 {
    if K == 0 {
        r0 = acc
    } else {
        r1 = acc
    }
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn set_slot(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    unsafe { *fp.add(slot) = acc };
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn add_pop(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let left = unsafe { *fp.add(slot) };
    jump!(ip, 1, fp, args, left.wrapping_add(acc), r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn bind_spill<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> i64 {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let home = unsafe { &mut *fp.add(slot) };
    if K == 0 {
        *home = r0;
        r0 = acc;
    } else {
        *home = r1;
        r1 = acc;
    }
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn unbind<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> i64 {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let home = unsafe { *fp.add(slot) };
    if K == 0 {
        r0 = home
    } else {
        r1 = home
    }
    jump!(ip, 1, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn jump_if_not_pos(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let rel = if acc > 0 { 1 } else { operand!(ip) as isize };
    jump!(ip, rel, fp, args, acc, r0, r1)
}

/// The back-edge: with `become` it is one more jump, no trip to a driver.
///
/// # Safety
/// The handler contract of [`Handler`].
unsafe fn loop_back(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let rel = operand!(ip) as isize;
    jump!(ip, rel, fp, args, acc, r0, r1)
}

/// The rotated loop's bottom test: jump back while `acc > 0`.
///
/// # Safety
/// The handler contract of [`Handler`].
unsafe fn loop_if_pos(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let rel = if acc > 0 { operand!(ip) as isize } else { 1 };
    jump!(ip, rel, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn halt(_: *const Op, _: *mut i64, _: *const i64, acc: i64, _: i64, _: i64) -> i64 {
    acc
}

/// The compiled program: the verified listing and its threaded tape.
pub struct Tape {
    code: Vec<Instr>,
    ops: Box<[Op]>,
    frame_len: usize,
}

impl Technique for TailCalls {
    const NAME: &'static str = "tail_calls";
    const TIER: Tier = Tier::Beyond;
    const SUMMARY: &'static str =
        "tape_continuations' tape with guaranteed tail calls (`become`): back-edges are jumps too";
    type Code = Tape;

    fn compile(program: &Program) -> Result<Tape, CompileError> {
        let (code, frame_len) = Compiler::program(program);
        verify(&code, frame_len, program.arg_count()).map_err(CompileError)?;
        let ops = code.iter().enumerate().map(|(at, i)| op(*i, at)).collect();
        Ok(Tape {
            code,
            ops,
            frame_len,
        })
    }

    unsafe fn execute(code: &Tape, args: &[i64]) -> i64 {
        let mut frame = vec![0i64; code.frame_len];
        let ip = code.ops.as_ptr();
        // SAFETY: `ip` is the first op of a tape whose listing passed
        // `verify` (every `Tape` did), the frame has `frame_len` slots, and
        // our caller guarantees `args` holds `arg_count` values: the handler
        // contract.
        unsafe { ((*ip).handler)(ip, frame.as_mut_ptr(), args.as_ptr(), 0, 0, 0) }
    }

    fn show(code: &Tape) -> String {
        let mut out = format!(
            "; frame: {} slots (locals beyond r0/r1, then temporaries); every op ends in `become`\n",
            code.frame_len
        );
        for (at, instr) in code.code.iter().enumerate() {
            out.push_str(&format!("{at:>4}  {instr}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(super::TailCalls, extra: [REGISTER_TRICKY]);
}
