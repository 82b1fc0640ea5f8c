//! `tape_continuations` — direct-threaded code: every op on the tape calls
//! the next op itself, with an accumulator and two local registers carried
//! in handler arguments.
//!
//! **Compile** lowers the tree to typed instructions (`Instr`) and writes
//! each straight onto the tape as an `Op` — a plain `fn` pointer (the
//! handler) plus one operand word — and a 3-byte `Kind` beside it, from
//! which `show` reads the listing back. No listing is built first and
//! threaded after: at 10⁶ nodes that table tripled the memory compile
//! writes, and its page faults made compile time grow faster than the
//! program. Then each op gets its handler only from the check of its kind
//! and operand (`Kind::checked_handler`, the verifier). All emission goes
//! through `Compiler::emit` and all handler selection through
//! `Kind::checked_handler`, so a fused variant can add instructions and
//! handlers in exactly two places.
//!
//! **Calling convention** (every `Handler` has the same six scalar
//! arguments, which the x86-64 and AArch64 ABIs keep in registers):
//!
//! | arg | meaning |
//! |---|---|
//! | `ip` | this op on the tape; the operand is read from `(*ip).operand` |
//! | `fp` | the frame: `[save r0, save r1, locals…, temporaries…]`, sized at compile time |
//! | `args` | the program's arguments |
//! | `acc` | the accumulator: the value of the expression just evaluated |
//! | `r0`, `r1` | the two innermost locals (`REGS`) |
//!
//! **Values**: every expression leaves its value in `acc`. `Add` saves its
//! left value in a temporary frame slot (`push [slot]`) whose index follows
//! from the static operand-stack height, so no stack pointer exists at run
//! time. A value nobody uses (the left of `;`, a loop body) is not computed
//! at all if it is a leaf, and `Set`/`While` produce their 0 only if used.
//! **Locals**: a `Let` at scope level `k` lives in register `k % REGS` while it
//! is one of the `REGS` innermost locals; a deeper `Let` spills the register's
//! previous owner to that owner's home slot (`bind … spill`) and reloads it when
//! the inner scope ends (`unbind`). So registers never shift, and any number of
//! locals works: locals further out than `REGS` are read from their home slot.
//!
//! **Control**: every handler ends by calling the next op (`ip + 1`) in tail
//! position, which LLVM compiles to a jump from opt-level 1 on; forward jumps
//! (`jump_if_not_pos` to the loop exit) are tail calls too. The backward
//! edges, `loop` and `loop_if_pos` (loops are rotated so the condition is
//! tested at the bottom), instead store `r0`/`r1` in the frame and *return*
//! the loop head to the driver in `Tape::run`, which reloads them and calls
//! again. So a chain of calls only ever moves forward: its depth is bounded
//! by the tape length even where tail calls are not optimised (opt-level 0),
//! and never by the number of iterations.
//!
//! Trade-off: the cheapest dispatch of the original techniques (one indirect
//! jump per node, operands next to the handler, the hot locals never touch
//! memory) for a compiler with an allocator and unsafe handlers, whose
//! soundness rests on the verified tape. Without superinstructions, `a + b`
//! still costs two dispatches of its own (`push`, `add`) beside its operands'.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt;

/// How many innermost locals live in handler arguments. Two, because the
/// calling convention has six register arguments and `ip`, `fp`, `args` and
/// `acc` take the other four; a seventh argument would go to the stack and
/// stop the tail calls from being plain jumps.
pub(crate) const REGS: usize = 2;

/// Frame slots `0..REGS` hold `r0`, `r1` while the driver is between calls.
pub(crate) const SAVE_BASE: usize = 0;
/// Home slots of locals start here, indexed by scope level.
const LOCALS_BASE: usize = SAVE_BASE + REGS;

/// One instruction of the typed listing `compile` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Instr {
    /// `acc = n`
    Lit(i64),
    /// `acc = args[i]`
    Arg(usize),
    /// `acc = r[k]`
    GetReg(usize),
    /// `acc = frame[slot]` (a spilled local)
    GetSlot(usize),
    /// `r[k] = acc`
    SetReg(usize),
    /// `frame[slot] = acc` (a spilled local)
    SetSlot(usize),
    /// `frame[slot] = acc` (save an `Add`'s left operand)
    Push(usize),
    /// `acc = frame[slot] + acc` (wrapping)
    AddPop(usize),
    /// `r[k] = acc`: a new local whose register had no owner
    Bind(usize),
    /// `frame[slot] = r[k]; r[k] = acc`: a new local evicts an outer one
    BindSpill(usize, usize),
    /// `r[k] = frame[slot]`: the scope ended, the evicted local comes back
    Unbind(usize, usize),
    /// if `acc <= 0` continue at the target (forward)
    JumpIfNotPos(usize),
    /// back-edge: save the registers and return the target to the driver
    Loop(usize),
    /// back-edge if `acc > 0` (as `Loop`), else continue with the next op
    LoopIfPos(usize),
    /// return `acc` to the driver
    Halt,
    /// A superinstruction of `tape_continuations_fused`; this engine's own
    /// compiler never emits one (see [`Compiler::fused`]).
    Fused(super::tape_continuations_fused::Fused),
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Instr::Lit(n) => write!(f, "lit {n}"),
            Instr::Arg(i) => write!(f, "arg {i}"),
            Instr::GetReg(k) => write!(f, "get r{k}"),
            Instr::GetSlot(s) => write!(f, "get [{s}]"),
            Instr::SetReg(k) => write!(f, "set r{k}"),
            Instr::SetSlot(s) => write!(f, "set [{s}]"),
            Instr::Push(s) => write!(f, "push [{s}]"),
            Instr::AddPop(s) => write!(f, "add [{s}]"),
            Instr::Bind(k) => write!(f, "bind r{k}"),
            Instr::BindSpill(k, s) => write!(f, "bind r{k} spill [{s}]"),
            Instr::Unbind(k, s) => write!(f, "unbind r{k} reload [{s}]"),
            Instr::JumpIfNotPos(t) => write!(f, "jump_if_not_pos @{t}"),
            Instr::Loop(t) => write!(f, "loop @{t}"),
            Instr::LoopIfPos(t) => write!(f, "loop_if_pos @{t}"),
            Instr::Halt => write!(f, "halt"),
            Instr::Fused(x) => write!(f, "{x}"),
        }
    }
}

/// What every handler returns to the driver: the op to continue at (null
/// when the program is done) and the program's value.
pub(crate) type Exit = (*const Op, i64);

/// A handler: does one op's work, then tail-calls the next op's handler.
///
/// # Safety
///
/// The handler contract, relied on by every handler: `ip` points at an op of
/// a tape built by [`Tape::new`] (so it passed the verifier,
/// [`Kind::checked_handler`]) whose `handler` is
/// this function; `fp` points at a frame of that tape's `frame_len` slots;
/// `args` points at least the tape's `arg_count` readable values.
pub(crate) type Handler =
    unsafe fn(ip: *const Op, fp: *mut i64, args: *const i64, acc: i64, r0: i64, r1: i64) -> Exit;

/// One tape cell: the handler and its operand (slot, index, literal or
/// relative jump distance in bytes).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Op {
    pub(crate) handler: Handler,
    pub(crate) operand: i64,
}

/// What a tape cell does, without its operand word: the handler is chosen
/// by the kind alone, and kind plus operand give back the [`Instr`]
/// ([`Instr::decode`]). So the tape keeps its listing in 3 bytes per op
/// instead of a second, 32-byte-per-op table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Lit,
    Arg,
    GetReg(u8),
    GetSlot,
    SetReg(u8),
    SetSlot,
    Push,
    AddPop,
    Bind(u8),
    BindSpill(u8),
    Unbind(u8),
    JumpIfNotPos,
    Loop,
    LoopIfPos,
    Halt,
    Fused(super::tape_continuations_fused::FusedKind),
}

/// A register number as stored in a [`Kind`]; one out of range stays out of
/// range, so `verify` still rejects it.
pub(crate) fn reg(k: usize) -> u8 {
    u8::try_from(k).unwrap_or(u8::MAX)
}

/// The handler for register `k` from a per-register table, if `k` is a
/// register.
pub(crate) fn by_reg(table: [Handler; REGS], k: u8) -> Option<Handler> {
    table.get(k as usize).copied()
}

/// A jump target as a byte distance from tape position `at`, which saves
/// the handler a scale; [`target`] inverts it.
pub(crate) fn rel(t: usize, at: usize) -> i64 {
    (t as i64)
        .wrapping_sub(at as i64)
        .wrapping_mul(size_of::<Op>() as i64)
}

/// The tape position `rel` bytes from `at`.
pub(crate) fn target(rel: i64, at: usize) -> usize {
    (at as i64).wrapping_add(rel / size_of::<Op>() as i64) as usize
}

/// The bounds a cell's operand is checked against.
#[derive(Clone, Copy)]
pub(crate) struct Bounds {
    /// The cell's own position.
    pub(crate) at: usize,
    /// Ops on the tape.
    pub(crate) len: usize,
    pub(crate) frame_len: usize,
    pub(crate) arg_count: usize,
}

impl Bounds {
    pub(crate) fn slot(&self, operand: i64) -> bool {
        (operand as usize) < self.frame_len
    }
    pub(crate) fn arg(&self, operand: i64) -> bool {
        (operand as usize) < self.arg_count
    }
    /// A jump forward to a later op of the tape.
    pub(crate) fn forward(&self, rel: i64) -> bool {
        let t = target(rel, self.at);
        self.at < t && t < self.len
    }
    /// A jump back to this op or an earlier one.
    pub(crate) fn backward(&self, rel: i64) -> bool {
        target(rel, self.at) <= self.at
    }
}

impl Kind {
    /// The verifier, one cell at a time: the handler for a cell of this
    /// kind with `operand`, if everything that handler relies on holds
    /// (operand in range, jump inside the tape: forward for
    /// `jump_if_not_pos`, backward for `loop`); `None` if not.
    pub(crate) fn checked_handler(self, operand: i64, b: &Bounds) -> Option<Handler> {
        let when = |ok: bool, h: Handler| ok.then_some(h);
        match self {
            Kind::Lit => Some(lit),
            Kind::Arg => when(b.arg(operand), arg),
            Kind::GetReg(k) => by_reg([get_reg::<0>, get_reg::<1>], k),
            Kind::GetSlot => when(b.slot(operand), get_slot),
            Kind::SetReg(k) | Kind::Bind(k) => by_reg([set_reg::<0>, set_reg::<1>], k),
            Kind::SetSlot | Kind::Push => when(b.slot(operand), set_slot),
            Kind::AddPop => when(b.slot(operand), add_pop),
            Kind::BindSpill(k) => {
                by_reg([bind_spill::<0>, bind_spill::<1>], k).filter(|_| b.slot(operand))
            }
            Kind::Unbind(k) => by_reg([unbind::<0>, unbind::<1>], k).filter(|_| b.slot(operand)),
            Kind::JumpIfNotPos => when(b.forward(operand), jump_if_not_pos),
            Kind::Loop => when(b.backward(operand), loop_back),
            Kind::LoopIfPos => when(b.backward(operand), loop_if_pos),
            Kind::Halt => Some(halt),
            Kind::Fused(x) => x.checked_handler(operand, b),
        }
    }
}

impl Instr {
    /// The cell for this instruction at tape position `at`, as its kind and
    /// operand word (slot, index, literal or relative jump distance).
    // Forced inline only in optimised builds: see `Compiler::emit`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(crate) fn encode(self, at: usize) -> (Kind, i64) {
        match self {
            Instr::Lit(n) => (Kind::Lit, n),
            Instr::Arg(i) => (Kind::Arg, i as i64),
            Instr::GetReg(k) => (Kind::GetReg(reg(k)), 0),
            Instr::GetSlot(s) => (Kind::GetSlot, s as i64),
            Instr::SetReg(k) => (Kind::SetReg(reg(k)), 0),
            Instr::SetSlot(s) => (Kind::SetSlot, s as i64),
            Instr::Push(s) => (Kind::Push, s as i64),
            Instr::AddPop(s) => (Kind::AddPop, s as i64),
            Instr::Bind(k) => (Kind::Bind(reg(k)), 0),
            Instr::BindSpill(k, s) => (Kind::BindSpill(reg(k)), s as i64),
            Instr::Unbind(k, s) => (Kind::Unbind(reg(k)), s as i64),
            Instr::JumpIfNotPos(t) => (Kind::JumpIfNotPos, rel(t, at)),
            Instr::Loop(t) => (Kind::Loop, rel(t, at)),
            Instr::LoopIfPos(t) => (Kind::LoopIfPos, rel(t, at)),
            Instr::Halt => (Kind::Halt, 0),
            Instr::Fused(x) => {
                let (kind, operand) = x.encode(at);
                (Kind::Fused(kind), operand)
            }
        }
    }

    /// The instruction a cell of `kind` with `operand` at `at` stands for:
    /// the inverse of [`Instr::encode`].
    pub(crate) fn decode(kind: Kind, operand: i64, at: usize) -> Instr {
        let (x, k) = (operand as usize, |k: u8| k as usize);
        match kind {
            Kind::Lit => Instr::Lit(operand),
            Kind::Arg => Instr::Arg(x),
            Kind::GetReg(r) => Instr::GetReg(k(r)),
            Kind::GetSlot => Instr::GetSlot(x),
            Kind::SetReg(r) => Instr::SetReg(k(r)),
            Kind::SetSlot => Instr::SetSlot(x),
            Kind::Push => Instr::Push(x),
            Kind::AddPop => Instr::AddPop(x),
            Kind::Bind(r) => Instr::Bind(k(r)),
            Kind::BindSpill(r) => Instr::BindSpill(k(r), x),
            Kind::Unbind(r) => Instr::Unbind(k(r), x),
            Kind::JumpIfNotPos => Instr::JumpIfNotPos(target(operand, at)),
            Kind::Loop => Instr::Loop(target(operand, at)),
            Kind::LoopIfPos => Instr::LoopIfPos(target(operand, at)),
            Kind::Halt => Instr::Halt,
            Kind::Fused(f) => Instr::Fused(super::tape_continuations_fused::Fused::decode(
                f, operand, at,
            )),
        }
    }
}

// The handler tables above are written out for exactly two registers.
const _: () = assert!(REGS == 2);

/// Continues at `ip + 1` in tail position.
macro_rules! next {
    ($ip:expr, $fp:expr, $args:expr, $acc:expr, $r0:expr, $r1:expr) => {{
        let (ip, fp, args, acc, r0, r1): (*const Op, _, _, i64, i64, i64) =
            ($ip, $fp, $args, $acc, $r0, $r1);
        // SAFETY: `verify` proved the last op is `halt`, which never
        // continues; so an op that continues is not the last, `ip + 1` is in
        // the tape and, by the handler contract passed on, may be called.
        unsafe {
            let ip = ip.add(1);
            ((*ip).handler)(ip, fp, args, acc, r0, r1)
        }
    }};
}

/// This op's operand word.
macro_rules! operand {
    ($ip:expr) => {
        // SAFETY: by the handler contract `ip` points at an op of the tape.
        unsafe { (*$ip).operand }
    };
}

// `tape_continuations_fused`'s handlers continue the same way.
pub(crate) use {next, operand};

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn lit(ip: *const Op, fp: *mut i64, args: *const i64, _: i64, r0: i64, r1: i64) -> Exit {
    let n = operand!(ip);
    next!(ip, fp, args, n, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn arg(ip: *const Op, fp: *mut i64, args: *const i64, _: i64, r0: i64, r1: i64) -> Exit {
    let i = operand!(ip) as usize;
    // SAFETY: `verify` checked the index is below `arg_count`, and by the
    // handler contract `args` holds that many values.
    let acc = unsafe { *args.add(i) };
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    let acc = if K == 0 { r0 } else { r1 };
    next!(ip, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn get_slot(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    _: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`, the frame's
    // length by the handler contract.
    let acc = unsafe { *fp.add(slot) };
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    if K == 0 {
        r0 = acc
    } else {
        r1 = acc
    }
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    unsafe { *fp.add(slot) = acc };
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let left = unsafe { *fp.add(slot) };
    next!(ip, fp, args, left.wrapping_add(acc), r0, r1)
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
) -> Exit {
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
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    let slot = operand!(ip) as usize;
    // SAFETY: `verify` checked the slot is below `frame_len`.
    let home = unsafe { *fp.add(slot) };
    if K == 0 {
        r0 = home
    } else {
        r1 = home
    }
    next!(ip, fp, args, acc, r0, r1)
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
) -> Exit {
    if acc > 0 {
        return next!(ip, fp, args, acc, r0, r1);
    }
    let rel = operand!(ip) as isize;
    // SAFETY: `verify` checked the target is a later op of the same tape;
    // the handler contract carries over to it.
    unsafe {
        let ip = ip.byte_offset(rel);
        ((*ip).handler)(ip, fp, args, acc, r0, r1)
    }
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn loop_back(ip: *const Op, fp: *mut i64, _: *const i64, _: i64, r0: i64, r1: i64) -> Exit {
    let rel = operand!(ip) as isize;
    // SAFETY: `verify` checked the frame has the save slots and the target
    // is an op of the same tape (at or before this one).
    unsafe {
        *fp.add(SAVE_BASE) = r0;
        *fp.add(SAVE_BASE + 1) = r1;
        (ip.byte_offset(rel), 0)
    }
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn loop_if_pos(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    if acc <= 0 {
        return next!(ip, fp, args, acc, r0, r1);
    }
    let rel = operand!(ip) as isize;
    // SAFETY: as for `loop_back`: the save slots are in the frame and the
    // target is an op of the same tape (`verify`).
    unsafe {
        *fp.add(SAVE_BASE) = r0;
        *fp.add(SAVE_BASE + 1) = r1;
        (ip.byte_offset(rel), 0)
    }
}

/// # Safety
/// The handler contract of [`Handler`].
unsafe fn halt(_: *const Op, _: *mut i64, _: *const i64, acc: i64, _: i64, _: i64) -> Exit {
    (std::ptr::null(), acc)
}

/// Checks everything the handlers rely on, once, at compile time: every
/// cell passes [`Kind::checked_handler`], and the tape ends with `halt`, so
/// every op that falls through has a successor.
#[cfg_attr(not(feature = "nightly"), allow(dead_code))] // used by `tail_calls`
pub(crate) fn verify(code: &[Instr], frame_len: usize, arg_count: usize) -> Result<(), String> {
    check_ends(code.last().map(|i| i.encode(code.len() - 1).0), frame_len)?;
    for (at, &instr) in code.iter().enumerate() {
        let (kind, operand) = instr.encode(at);
        let b = Bounds {
            at,
            len: code.len(),
            frame_len,
            arg_count,
        };
        if kind.checked_handler(operand, &b).is_none() {
            return Err(out_of_range(kind, operand, at));
        }
    }
    Ok(())
}

/// The checks of [`verify`] on the whole tape: its frame and its end.
fn check_ends(last: Option<Kind>, frame_len: usize) -> Result<(), String> {
    if last != Some(Kind::Halt) {
        return Err("the tape does not end with halt".into());
    }
    if frame_len < LOCALS_BASE {
        return Err("the frame has no room for the saved registers".into());
    }
    Ok(())
}

fn out_of_range(kind: Kind, operand: i64, at: usize) -> String {
    format!(
        "@{at}: `{}` is out of range",
        Instr::decode(kind, operand, at)
    )
}

/// Where a local lives at some program point.
pub(crate) enum Place {
    Reg(usize),
    Slot(usize),
}

/// Whether `e` contains a `While` (searched without recursion).
pub(crate) fn has_loop(e: &Expr) -> bool {
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        if let Expr::While(..) = e {
            return true;
        }
        todo.extend(e.children());
    }
    false
}

/// Lowers the tree to [`Instr`]s.
///
/// Instructions go straight into the tape, each as its [`Kind`] and its
/// [`Op`]'s operand, with no listing built first and copied after; the op's
/// handler is filled in by [`Tape::new`] once the instruction is verified.
pub(crate) struct Compiler {
    ops: Vec<Op>,
    kinds: Vec<Kind>,
    /// First frame slot of the operand temporaries.
    temp_base: usize,
    /// Operand-stack height reached so far.
    max_temps: usize,
    /// `Some` only for `tape_continuations_fused`: its shape matcher.
    fused: Option<std::rc::Rc<super::tape_continuations_fused::Shapes>>,
}

impl Compiler {
    pub(crate) fn new(program: &Program) -> Compiler {
        let temp_base = LOCALS_BASE + program.max_locals();
        Compiler {
            // Most nodes emit one op, `Then` none, `Add`, `Let` and `Set`
            // up to two: this rarely regrows. Capacity left unused is never
            // written, so it costs address space, not memory.
            ops: Vec::with_capacity(2 * program.node_count() + 1),
            kinds: Vec::with_capacity(2 * program.node_count() + 1),
            temp_base,
            max_temps: 0,
            fused: None,
        }
    }

    /// The one place instructions enter the tape.
    // Inlined into `expr`, emitting costs no call (compile time at 10^5
    // nodes doubled without it). Only in optimised builds: at opt-level 0
    // the inlined copies' locals are not merged, `expr`'s recursive frame
    // balloons, and a depth-1000 program overflowed the 2 MiB test stack.
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(crate) fn emit(&mut self, instr: Instr) {
        let (kind, operand) = instr.encode(self.ops.len());
        self.ops.push(Op {
            handler: UNVERIFIED,
            operand,
        });
        self.kinds.push(kind);
    }

    /// The local `d` scopes out from a point with `scope` locals in scope.
    pub(crate) fn place(scope: usize, d: usize) -> Place {
        let level = scope - 1 - d;
        if d < REGS {
            Place::Reg(level % REGS)
        } else {
            Place::Slot(LOCALS_BASE + level)
        }
    }

    pub(crate) fn temp(&mut self, height: usize) -> usize {
        self.max_temps = self.max_temps.max(height + 1);
        self.temp_base + height
    }

    /// Emits `e`, evaluated with `scope` locals in scope and `height`
    /// temporaries live. Only if `want` is the value left in `acc`.
    pub(crate) fn expr(&mut self, e: &Expr, scope: usize, height: usize, want: bool) {
        // The fused engine's shapes get the first look at every node.
        if let Some(fused) = self.fused.clone()
            && fused.lower(self, e, scope, height, want)
        {
            return;
        }
        match e {
            Expr::Litr(n) => {
                if want {
                    self.emit(Instr::Lit(*n))
                }
            }
            Expr::Arg(i) => {
                if want {
                    self.emit(Instr::Arg(*i))
                }
            }
            Expr::Get(d) => {
                if want {
                    self.emit(match Self::place(scope, *d) {
                        Place::Reg(k) => Instr::GetReg(k),
                        Place::Slot(s) => Instr::GetSlot(s),
                    })
                }
            }
            Expr::Add(a, b) => {
                if want {
                    self.expr(a, scope, height, true);
                    let t = self.temp(height);
                    self.emit(Instr::Push(t));
                    self.expr(b, scope, height + 1, true);
                    self.emit(Instr::AddPop(t));
                } else {
                    self.expr(a, scope, height, false);
                    self.expr(b, scope, height, false);
                }
            }
            Expr::Let(init, body) => {
                self.expr(init, scope, height, true);
                let k = scope % REGS;
                // The local evicted from register `k`, if any, is the one
                // at level `scope - REGS`: spill it to its home slot.
                let evicted = scope.checked_sub(REGS).map(|level| LOCALS_BASE + level);
                self.emit(match evicted {
                    Some(home) => Instr::BindSpill(k, home),
                    None => Instr::Bind(k),
                });
                self.expr(body, scope + 1, height, want);
                if let Some(home) = evicted {
                    self.emit(Instr::Unbind(k, home));
                }
            }
            Expr::Set(d, v) => {
                self.expr(v, scope, height, true);
                self.emit(match Self::place(scope, *d) {
                    Place::Reg(k) => Instr::SetReg(k),
                    Place::Slot(s) => Instr::SetSlot(s),
                });
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            // Rotated: `c; jump_if_not_pos exit; head: body; c; loop_if_pos
            // head; exit:` runs one dispatch fewer per iteration than
            // `head: c; jump_if_not_pos exit; body; loop head`, but emits the
            // condition twice. A condition that itself contains a loop keeps
            // the plain form, so nested conditions cannot double repeatedly.
            Expr::While(c, body) if !has_loop(c) => {
                self.expr(c, scope, height, true);
                let exit = self.len();
                self.emit(Instr::JumpIfNotPos(usize::MAX));
                let head = self.len();
                self.expr(body, scope, height, false);
                self.expr(c, scope, height, true);
                self.emit(Instr::LoopIfPos(head));
                self.patch(exit, Instr::JumpIfNotPos(self.len()));
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            Expr::While(c, body) => {
                let head = self.len();
                self.expr(c, scope, height, true);
                let exit = self.len();
                self.emit(Instr::JumpIfNotPos(usize::MAX));
                self.expr(body, scope, height, false);
                self.emit(Instr::Loop(head));
                self.patch(exit, Instr::JumpIfNotPos(self.len()));
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            Expr::Then(a, b) => {
                self.expr(a, scope, height, false);
                self.expr(b, scope, height, want);
            }
        }
    }

    /// The current end of the tape (the next instruction's position).
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Replaces the placeholder at `at` once its jump target is known.
    pub(crate) fn patch(&mut self, at: usize, instr: Instr) {
        let (kind, operand) = instr.encode(at);
        self.ops[at].operand = operand;
        self.kinds[at] = kind;
    }

    /// The whole program, ending in `halt`, as a listing (for engines that
    /// thread it with handlers of their own).
    #[cfg_attr(not(feature = "nightly"), allow(dead_code))] // used by `tail_calls`
    pub(crate) fn program(program: &Program) -> (Vec<Instr>, usize) {
        let (c, frame_len) = Self::finish(Compiler::new(program), program);
        let code = (c.kinds.iter().zip(c.ops.iter()).enumerate())
            .map(|(at, (&kind, op))| Instr::decode(kind, op.operand, at))
            .collect();
        (code, frame_len)
    }

    /// The whole program, threaded and verified.
    pub(crate) fn tape(program: &Program) -> Result<Tape, CompileError> {
        let (c, frame_len) = Self::finish(Compiler::new(program), program);
        Tape::new(c, frame_len, program.arg_count())
    }

    /// The whole program with `tape_continuations_fused`'s superinstructions,
    /// threaded and verified.
    pub(crate) fn fused(program: &Program) -> Result<Tape, CompileError> {
        let mut c = Compiler::new(program);
        c.fused = Some(std::rc::Rc::new(
            super::tape_continuations_fused::Shapes::new(program),
        ));
        let (c, frame_len) = Self::finish(c, program);
        Tape::new(c, frame_len, program.arg_count())
    }

    fn finish(mut c: Compiler, program: &Program) -> (Compiler, usize) {
        c.expr(program.expr(), 0, 0, true);
        c.emit(Instr::Halt);
        let frame_len = c.temp_base + c.max_temps;
        (c, frame_len)
    }
}

/// The compiled program: the verified, threaded tape and each op's kind
/// (from which `show` rebuilds the listing).
pub struct Tape {
    ops: Vec<Op>,
    kinds: Vec<Kind>,
    frame_len: usize,
    arg_count: usize,
}

/// The handler of an op not verified yet. It is never run: [`Tape::new`]
/// replaces every one or returns no tape.
const UNVERIFIED: Handler = halt;

impl Tape {
    /// Verifies what `c` emitted and threads it. Every tape that exists was
    /// verified: an op gets its handler only from the check of its own kind
    /// and operand ([`Kind::checked_handler`]).
    fn new(c: Compiler, frame_len: usize, arg_count: usize) -> Result<Tape, CompileError> {
        let Compiler { mut ops, kinds, .. } = c;
        check_ends(kinds.last().copied(), frame_len).map_err(CompileError)?;
        let mut b = Bounds {
            at: 0,
            len: ops.len(),
            frame_len,
            arg_count,
        };
        for (op, &kind) in ops.iter_mut().zip(&kinds) {
            op.handler = kind
                .checked_handler(op.operand, &b)
                .ok_or_else(|| CompileError(out_of_range(kind, op.operand, b.at)))?;
            b.at += 1;
        }
        Ok(Tape {
            ops,
            kinds,
            frame_len,
            arg_count,
        })
    }

    /// The listing, read back from the tape.
    fn instrs(&self) -> impl Iterator<Item = Instr> + '_ {
        (self.kinds.iter().zip(self.ops.iter()).enumerate())
            .map(|(at, (&kind, op))| Instr::decode(kind, op.operand, at))
    }

    /// Runs the tape: the driver that loop back-edges return to.
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the `arg_count` the tape was built for.
    pub(crate) unsafe fn run(&self, args: &[i64]) -> i64 {
        debug_assert!(args.len() >= self.arg_count);
        let mut frame = vec![0i64; self.frame_len];
        let fp = frame.as_mut_ptr();
        let mut ip = self.ops.as_ptr();
        let (mut r0, mut r1) = (0, 0);
        loop {
            // SAFETY: `ip` is the tape's first op or a `loop` target inside
            // it; the tape passed `verify`; `fp` has `frame_len` slots; and
            // the caller guarantees `args` holds `arg_count` values. This is
            // the handler contract.
            let (next, value) = unsafe { ((*ip).handler)(ip, fp, args.as_ptr(), 0, r0, r1) };
            if next.is_null() {
                return value;
            }
            ip = next;
            // SAFETY: the save slots are inside the frame (`verify`).
            unsafe {
                r0 = *fp.add(SAVE_BASE);
                r1 = *fp.add(SAVE_BASE + 1);
            }
        }
    }

    /// The listing, one instruction per line, with the frame layout.
    pub(crate) fn listing(&self) -> String {
        let mut out = format!(
            "; frame: {} slots ([0..{LOCALS_BASE}] saved r0/r1, then locals, then temporaries)\n",
            self.frame_len
        );
        for (at, instr) in self.instrs().enumerate() {
            out.push_str(&format!("{at:>4}  {instr}\n"));
        }
        out
    }
}

pub struct TapeContinuations;

impl Technique for TapeContinuations {
    const NAME: &'static str = "tape_continuations";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str =
        "direct threading: each op's handler tail-calls the next, acc + 2 local registers";
    type Code = Tape;

    fn compile(program: &Program) -> Result<Tape, CompileError> {
        Compiler::tape(program)
    }

    unsafe fn execute(code: &Tape, args: &[i64]) -> i64 {
        // SAFETY: `execute`'s own contract: `args` holds `arg_count` values.
        unsafe { code.run(args) }
    }

    fn show(code: &Tape) -> String {
        code.listing()
    }
}

#[cfg(test)]
mod tests {
    const NAME: &str = "tape_continuations";

    crate::engines::conformance::conformance_tests!(
        super::TapeContinuations,
        extra: [CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments],
    );

    #[test]
    fn cells_read_back_as_their_instructions() {
        use super::Instr::{self, *};
        use crate::engines::tape_continuations_fused::{Fused, Leaf};
        let all = [
            Lit(-7),
            Lit(i64::MIN),
            Arg(3),
            GetReg(1),
            GetSlot(9),
            SetReg(0),
            SetSlot(4),
            Push(5),
            AddPop(5),
            Bind(1),
            BindSpill(0, 2),
            Unbind(1, 3),
            JumpIfNotPos(40),
            Loop(2),
            LoopIfPos(0),
            Halt,
            Fused(Fused::AddAssign(1, Leaf::Lit(-3))),
            Fused(Fused::SetLeaf(0, Leaf::Reg(1))),
            Fused(Fused::AddLeaf(Leaf::Slot(6))),
            Fused(Fused::AddLeaf(Leaf::Arg(2))),
            Fused(Fused::JumpIfRegNotPos(1, 30)),
            Fused(Fused::LoopIfRegPos(0, 1)),
        ];
        for at in [0, 7, 25] {
            for i in all {
                let (kind, operand) = i.encode(at);
                assert_eq!(Instr::decode(kind, operand, at), i, "at {at}");
            }
        }
    }

    #[test]
    fn verify_rejects_every_operand_out_of_range() {
        use super::Instr::*;
        use super::verify;
        use crate::engines::tape_continuations_fused::{Fused, Leaf};
        assert!(
            verify(
                &[GetReg(1), GetSlot(9), Arg(0), JumpIfNotPos(4), Halt],
                10,
                1
            )
            .is_ok()
        );
        let bad = [
            GetReg(2),
            SetReg(300),
            BindSpill(2, 3),
            Unbind(0, 10),
            GetSlot(10),
            Push(usize::MAX),
            Arg(1),
            JumpIfNotPos(usize::MAX),
            JumpIfNotPos(0),
            Loop(5),
            Fused(Fused::AddAssign(0, Leaf::Reg(2))),
            Fused(Fused::SetLeaf(2, Leaf::Lit(1))),
            Fused(Fused::AddLeaf(Leaf::Slot(10))),
            Fused(Fused::AddLeaf(Leaf::Arg(1))),
            Fused(Fused::JumpIfRegNotPos(0, 3)),
            Fused(Fused::LoopIfRegPos(1, 3)),
        ];
        for instr in bad {
            assert!(verify(&[Lit(0), instr, Halt], 10, 1).is_err(), "{instr}");
        }
        assert!(verify(&[Lit(0)], 10, 1).is_err(), "no halt");
        assert!(verify(&[Halt], 1, 1).is_err(), "no save slots");
    }

    #[test]
    fn show_lists_the_tape() {
        let p =
            crate::front::compile_source("s", "let n = arg(0); while n { n = n + -1 }; n").unwrap();
        let code = crate::engine::engine(NAME).unwrap().compile(&p).unwrap();
        let text = code.show();
        assert!(
            text.contains("loop_if_pos @") && text.contains("jump_if_not_pos"),
            "{text}"
        );
    }
}
