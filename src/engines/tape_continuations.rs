//! `tape_continuations` — direct-threaded code: every op on the tape calls
//! the next op itself, with an accumulator and two local registers carried
//! in handler arguments.
//!
//! **Compile** lowers the tree to a typed listing (`Instr`), checks it with
//! `verify`, then turns each instruction into an `Op`: a plain `fn`
//! pointer (the handler) plus one operand word. All emission goes through
//! `Compiler::emit` and all handler selection through `Instr::op`, so a
//! fused variant can add instructions and handlers in exactly two places.
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
/// a tape built by [`Tape::new`] (so it passed [`verify`]) whose `handler` is
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

impl Instr {
    /// The tape cell for this instruction at tape position `at`.
    fn op(self, at: usize) -> Op {
        // Jump distances are stored in bytes, saving the handler a scale.
        let rel = |t: usize| (t as i64 - at as i64) * size_of::<Op>() as i64;
        let (handler, operand): (Handler, i64) = match self {
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
            Instr::Fused(x) => return x.op(at),
        };
        Op { handler, operand }
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
/// operand in range, jumps inside the tape (forward for `jump_if_not_pos`,
/// backward for `loop`), and the tape ends with `halt`, so every op that
/// falls through has a successor.
pub(crate) fn verify(code: &[Instr], frame_len: usize, arg_count: usize) -> Result<(), String> {
    if code.last() != Some(&Instr::Halt) {
        return Err("the tape does not end with halt".into());
    }
    if frame_len < LOCALS_BASE {
        return Err("the frame has no room for the saved registers".into());
    }
    for (at, instr) in code.iter().enumerate() {
        let ok = match *instr {
            Instr::Lit(_) | Instr::Halt => true,
            Instr::Arg(i) => i < arg_count,
            Instr::GetReg(k) | Instr::SetReg(k) | Instr::Bind(k) => k < REGS,
            Instr::GetSlot(s) | Instr::SetSlot(s) | Instr::Push(s) | Instr::AddPop(s) => {
                s < frame_len
            }
            Instr::BindSpill(k, s) | Instr::Unbind(k, s) => k < REGS && s < frame_len,
            Instr::JumpIfNotPos(t) => at < t && t < code.len(),
            Instr::Loop(t) | Instr::LoopIfPos(t) => t <= at,
            Instr::Fused(x) => x.in_range(at, code.len(), frame_len, arg_count),
        };
        if !ok {
            return Err(format!("@{at}: `{instr}` is out of range"));
        }
    }
    Ok(())
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
pub(crate) struct Compiler {
    code: Vec<Instr>,
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
            code: Vec::with_capacity(program.node_count() + 1),
            temp_base,
            max_temps: 0,
            fused: None,
        }
    }

    /// The one place instructions enter the tape.
    pub(crate) fn emit(&mut self, instr: Instr) {
        self.code.push(instr);
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
                let exit = self.code.len();
                self.emit(Instr::JumpIfNotPos(usize::MAX));
                let head = self.code.len();
                self.expr(body, scope, height, false);
                self.expr(c, scope, height, true);
                self.emit(Instr::LoopIfPos(head));
                self.code[exit] = Instr::JumpIfNotPos(self.code.len());
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            Expr::While(c, body) => {
                let head = self.code.len();
                self.expr(c, scope, height, true);
                let exit = self.code.len();
                self.emit(Instr::JumpIfNotPos(usize::MAX));
                self.expr(body, scope, height, false);
                self.emit(Instr::Loop(head));
                self.code[exit] = Instr::JumpIfNotPos(self.code.len());
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
        self.code.len()
    }

    /// Replaces the placeholder at `at` once its jump target is known.
    pub(crate) fn patch(&mut self, at: usize, instr: Instr) {
        self.code[at] = instr;
    }

    /// The whole program, ending in `halt`.
    pub(crate) fn program(program: &Program) -> (Vec<Instr>, usize) {
        Self::finish(Compiler::new(program), program)
    }

    /// The whole program with `tape_continuations_fused`'s superinstructions.
    pub(crate) fn fused(program: &Program) -> (Vec<Instr>, usize) {
        let mut c = Compiler::new(program);
        c.fused = Some(std::rc::Rc::new(
            super::tape_continuations_fused::Shapes::new(program),
        ));
        Self::finish(c, program)
    }

    fn finish(mut c: Compiler, program: &Program) -> (Vec<Instr>, usize) {
        c.expr(program.expr(), 0, 0, true);
        c.emit(Instr::Halt);
        let frame_len = c.temp_base + c.max_temps;
        (c.code, frame_len)
    }
}

/// The compiled program: the verified listing and its threaded tape.
pub struct Tape {
    code: Vec<Instr>,
    ops: Box<[Op]>,
    frame_len: usize,
    arg_count: usize,
}

impl Tape {
    /// Verifies `code` and threads it. Every tape that exists was verified.
    pub(crate) fn new(
        code: Vec<Instr>,
        frame_len: usize,
        arg_count: usize,
    ) -> Result<Tape, CompileError> {
        verify(&code, frame_len, arg_count).map_err(CompileError)?;
        let ops = code.iter().enumerate().map(|(at, i)| i.op(at)).collect();
        Ok(Tape {
            code,
            ops,
            frame_len,
            arg_count,
        })
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
        for (at, instr) in self.code.iter().enumerate() {
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
        let (code, frame_len) = Compiler::program(program);
        Tape::new(code, frame_len, program.arg_count())
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
