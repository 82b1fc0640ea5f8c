//! `tape_continuations_fused` — `tape_continuations` plus superinstructions
//! for common node shapes.
//!
//! Everything is `tape_continuations` (see that module): the same compiler,
//! calling convention (`ip`, `fp`, `args`, `acc`, `r0`, `r1`), tape, verifier
//! and driver. Its compiler, when built by [`Compiler::fused`], first offers
//! every node to [`Shapes::lower`] here; a node that matches one of the
//! shapes below becomes one superinstruction ([`Fused`], one handler each),
//! any other node is compiled as usual (its children still get offered).
//!
//! A *leaf* is `Litr(n)`, `Arg(i)` or `Get(d)` (wherever local `d` lives: a
//! register `r0`/`r1` or its frame slot). Shapes are chosen by node kind and
//! by where a local lives, never by a literal's value or an index. **Every
//! fused shape:**
//!
//! 1. `Set(d, Add(Get(d), leaf))`, `d` in a register → `add_assign rK, leaf`:
//!    `rK = rK + leaf` (the counter and accumulator updates of every loop).
//! 2. `Set(d, leaf)`, `d` in a register → `set rK, leaf`: `rK = leaf`.
//! 3. `Add(x, leaf)` whose value is used → `x; add leaf`: `acc = acc + leaf`,
//!    no `push`/`add [slot]` round trip through the frame.
//! 4. `Add(leaf, x)` whose value is used, when `leaf` is a literal or an
//!    argument, or a local and `x` contains no `Set` (so reading the local
//!    after `x` sees the same value) → `x; add leaf` (`+` commutes).
//! 5. `While(Get(d), body)`, `d` in a register → the rotated loop with the
//!    test on the register itself: `jump_if_not_pos rK @exit; head: body;
//!    loop_if_pos rK @head; exit:` (no `get` before either test).
//! 6. Shape 5 whose `body` contains no `While` → the body is laid out four
//!    times (`UNROLL`), each copy after the first preceded by the forward
//!    test `jump_if_not_pos rK @exit`: `head: body; test; body; test; body;
//!    test; body; loop_if_pos rK @head`. Forward tests are ordinary tail
//!    calls, so the back-edge's trip through the driver (save `r0`/`r1`,
//!    return, reload, call: about 18 machine instructions, more than the
//!    rest of `sum`'s iteration) is paid once per four iterations. Only
//!    loop-free bodies are copied, so the tape grows at most fourfold.
//! 7. Shape 5 or 6 whose body's last statement (the right-most node of its
//!    `Then` spine, however the `Then`s nest) is `Set(d, Add(Get(d), leaf))`
//!    on the loop's own local `d` (a counted loop's step) → that update and
//!    the test after it become one dispatch: each forward test becomes
//!    `add_jump_if_not_pos rK, leaf` followed by its plain `jump_if_not_pos
//!    rK @exit`, the back-edge `add_loop_if_pos rK, leaf` followed by its
//!    plain `loop_if_pos rK @head`. The superinstruction does `rK = rK +
//!    leaf` and tests `rK`; the way the loop goes on (next copy, or out of
//!    the loop) skips the plain op after it (`ip + 2`), the other way (the
//!    exit, the back-edge) runs that plain op, which carries the target and
//!    tests the same register again. So the cell needs one operand word
//!    like every cell, and each cell is verified on its own: the fused one
//!    only needs the cell after next to exist. The way taken once per loop
//!    runs out of line (`next_cold`, `skip_cold`), so the test stays a
//!    predicted branch instead of making `ip` wait for the add. The rest of
//!    the body (the `Then` spine's other statements, in order) compiles as
//!    usual.
//!
//! On `sum` the loop goes from twelve dispatches and a driver round trip per
//! iteration to two dispatches (`add_assign r0, arg 1`, `add_jump_if_not_pos
//! r1, -1`), plus, once per four iterations, the plain `loop_if_pos` the
//! back-edge passes through and one driver round trip.
//! Trade-off: 49 more handlers, a shape matcher and a longer tape; the
//! back-edge still returns to the driver (stable Rust cannot promise a
//! backward tail call), unrolling only amortises it.

use super::register_bytecode::mark_stores;
use super::tape_continuations::{
    Bounds, Compiler, Exit, Handler, Instr, Op, Place, REGS, SAVE_BASE, Tape, by_reg, next,
    operand, reg, rel, target,
};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::collections::HashSet;

/// How many copies of a loop-free body shape 6 lays out per back-edge.
const UNROLL: usize = 4;
use std::fmt;

pub struct TapeContinuationsFused;

/// An operand read in place by a superinstruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    Lit(i64),
    Arg(usize),
    Reg(usize),
    Slot(usize),
}

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Leaf::Lit(n) => write!(f, "{n}"),
            Leaf::Arg(i) => write!(f, "arg {i}"),
            Leaf::Reg(k) => write!(f, "r{k}"),
            Leaf::Slot(s) => write!(f, "[{s}]"),
        }
    }
}

/// Leaf kinds, as the handlers' const parameter.
const LIT: u8 = 0;
const ARG: u8 = 1;
const REG0: u8 = 2;
const REG1: u8 = 3;
const SLOT: u8 = 4;

impl Leaf {
    /// The handler-table column and the operand word.
    fn encode(self) -> (usize, i64) {
        match self {
            Leaf::Lit(n) => (LIT as usize, n),
            Leaf::Arg(i) => (ARG as usize, i as i64),
            // A register out of range gets no column, so no handler.
            Leaf::Reg(k) if k < REGS => (REG0 as usize + k, 0),
            Leaf::Reg(_) => (usize::MAX, 0),
            Leaf::Slot(s) => (SLOT as usize, s as i64),
        }
    }

    /// The leaf of handler-table column `col` with operand word `x`: the
    /// inverse of [`Leaf::encode`].
    fn decode(col: u8, x: i64) -> Leaf {
        match col {
            LIT => Leaf::Lit(x),
            ARG => Leaf::Arg(x as usize),
            REG0 | REG1 => Leaf::Reg((col - REG0) as usize),
            SLOT => Leaf::Slot(x as usize),
            // Only a register out of range has no column.
            _ => Leaf::Reg(usize::MAX),
        }
    }
}

/// The superinstructions (shapes 1–7 of the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fused {
    /// `r[k] = r[k] + leaf` (shape 1)
    AddAssign(usize, Leaf),
    /// `r[k] = leaf` (shape 2)
    SetLeaf(usize, Leaf),
    /// `acc = acc + leaf` (shapes 3 and 4)
    AddLeaf(Leaf),
    /// if `r[k] <= 0` continue at the target (forward; shape 5)
    JumpIfRegNotPos(usize, usize),
    /// back-edge if `r[k] > 0`, else continue (shape 5)
    LoopIfRegPos(usize, usize),
    /// `r[k] = r[k] + leaf`; if `r[k] <= 0` run the next op (the plain
    /// `jump_if_not_pos r[k]` to the exit), else skip it (shape 7)
    AddJumpIfNotPos(usize, Leaf),
    /// `r[k] = r[k] + leaf`; if `r[k] > 0` run the next op (the plain
    /// `loop_if_pos r[k]` back-edge), else skip it (shape 7)
    AddLoopIfPos(usize, Leaf),
}

impl fmt::Display for Fused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fused::AddAssign(k, l) => write!(f, "add_assign r{k}, {l}"),
            Fused::SetLeaf(k, l) => write!(f, "set r{k}, {l}"),
            Fused::AddLeaf(l) => write!(f, "add {l}"),
            Fused::JumpIfRegNotPos(k, t) => write!(f, "jump_if_not_pos r{k} @{t}"),
            Fused::LoopIfRegPos(k, t) => write!(f, "loop_if_pos r{k} @{t}"),
            Fused::AddJumpIfNotPos(k, l) => write!(f, "add_jump_if_not_pos r{k}, {l}"),
            Fused::AddLoopIfPos(k, l) => write!(f, "add_loop_if_pos r{k}, {l}"),
        }
    }
}

/// A superinstruction's [`tape_continuations::Kind`](super::tape_continuations::Kind):
/// its register and leaf column; the operand word holds the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FusedKind {
    AddAssign(u8, u8),
    SetLeaf(u8, u8),
    AddLeaf(u8),
    JumpIfRegNotPos(u8),
    LoopIfRegPos(u8),
    AddJumpIfNotPos(u8, u8),
    AddLoopIfPos(u8, u8),
}

impl FusedKind {
    /// `tape_continuations::Kind::checked_handler` for a superinstruction.
    pub(crate) fn checked_handler(self, x: i64, b: &Bounds) -> Option<Handler> {
        // The leaf operand of column `col` is in range.
        let leaf = |col: u8| match col {
            ARG => b.arg(x),
            SLOT => b.slot(x),
            _ => true,
        };
        let by_col = |row: [Handler; 5], col: u8| row.get(col as usize).copied();
        let by_both = |table: [[Handler; 5]; REGS], k: u8, col: u8| {
            let row = *table.get(k as usize)?;
            by_col(row, col).filter(|_| leaf(col))
        };
        match self {
            FusedKind::AddAssign(k, col) => by_both(ADD_ASSIGN, k, col),
            FusedKind::SetLeaf(k, col) => by_both(SET_LEAF, k, col),
            FusedKind::AddLeaf(col) => by_col(ADD_LEAF, col).filter(|_| leaf(col)),
            FusedKind::JumpIfRegNotPos(k) => {
                by_reg(JUMP_IF_REG_NOT_POS, k).filter(|_| b.forward(x))
            }
            FusedKind::LoopIfRegPos(k) => by_reg(LOOP_IF_REG_POS, k).filter(|_| b.backward(x)),
            // Shape 7 continues at the next op or the one after it: both
            // must be on the tape.
            FusedKind::AddJumpIfNotPos(k, col) => {
                by_both(ADD_JUMP_IF_NOT_POS, k, col).filter(|_| skip_ok(b))
            }
            FusedKind::AddLoopIfPos(k, col) => {
                by_both(ADD_LOOP_IF_POS, k, col).filter(|_| skip_ok(b))
            }
        }
    }
}

/// Whether the op two after this one is on the tape (shape 7 skips to it).
fn skip_ok(b: &Bounds) -> bool {
    b.at.checked_add(2).is_some_and(|t| t < b.len)
}

impl Fused {
    /// The cell at tape position `at`, as kind and operand word (jump
    /// distances in bytes, as in `tape_continuations`).
    pub(crate) fn encode(self, at: usize) -> (FusedKind, i64) {
        let col = |l: Leaf| {
            let (col, x) = l.encode();
            (reg(col), x)
        };
        match self {
            Fused::AddAssign(k, l) => {
                let (c, x) = col(l);
                (FusedKind::AddAssign(reg(k), c), x)
            }
            Fused::SetLeaf(k, l) => {
                let (c, x) = col(l);
                (FusedKind::SetLeaf(reg(k), c), x)
            }
            Fused::AddLeaf(l) => {
                let (c, x) = col(l);
                (FusedKind::AddLeaf(c), x)
            }
            Fused::JumpIfRegNotPos(k, t) => (FusedKind::JumpIfRegNotPos(reg(k)), rel(t, at)),
            Fused::LoopIfRegPos(k, t) => (FusedKind::LoopIfRegPos(reg(k)), rel(t, at)),
            Fused::AddJumpIfNotPos(k, l) => {
                let (c, x) = col(l);
                (FusedKind::AddJumpIfNotPos(reg(k), c), x)
            }
            Fused::AddLoopIfPos(k, l) => {
                let (c, x) = col(l);
                (FusedKind::AddLoopIfPos(reg(k), c), x)
            }
        }
    }

    /// The inverse of [`Fused::encode`].
    pub(crate) fn decode(kind: FusedKind, x: i64, at: usize) -> Fused {
        match kind {
            FusedKind::AddAssign(k, c) => Fused::AddAssign(k as usize, Leaf::decode(c, x)),
            FusedKind::SetLeaf(k, c) => Fused::SetLeaf(k as usize, Leaf::decode(c, x)),
            FusedKind::AddLeaf(c) => Fused::AddLeaf(Leaf::decode(c, x)),
            FusedKind::JumpIfRegNotPos(k) => Fused::JumpIfRegNotPos(k as usize, target(x, at)),
            FusedKind::LoopIfRegPos(k) => Fused::LoopIfRegPos(k as usize, target(x, at)),
            FusedKind::AddJumpIfNotPos(k, c) => {
                Fused::AddJumpIfNotPos(k as usize, Leaf::decode(c, x))
            }
            FusedKind::AddLoopIfPos(k, c) => Fused::AddLoopIfPos(k as usize, Leaf::decode(c, x)),
        }
    }
}

/// The shape matcher, built once per program.
pub(crate) struct Shapes {
    /// Nodes whose subtree contains a `Set` (for shape 4).
    stores: HashSet<*const Expr>,
    /// Nodes whose subtree contains a `While` (for shape 6), found in one
    /// pass so compile time stays linear however deeply loops nest.
    loops: HashSet<*const Expr>,
}

/// Records every node whose subtree contains a `While`. Recursion depth is
/// the tree's depth, at most `MAX_DEPTH`.
fn mark_loops(e: &Expr, out: &mut HashSet<*const Expr>) -> bool {
    let mut found = matches!(e, Expr::While(..));
    for child in e.children() {
        found |= mark_loops(child, out);
    }
    if found {
        out.insert(e as *const Expr);
    }
    found
}

impl Shapes {
    pub(crate) fn new(program: &Program) -> Shapes {
        let mut stores = HashSet::new();
        mark_stores(program.expr(), &mut stores);
        let mut loops = HashSet::new();
        mark_loops(program.expr(), &mut loops);
        Shapes { stores, loops }
    }

    fn leaf(e: &Expr, scope: usize) -> Option<Leaf> {
        match *e {
            Expr::Litr(n) => Some(Leaf::Lit(n)),
            Expr::Arg(i) => Some(Leaf::Arg(i)),
            Expr::Get(d) => Some(match Compiler::place(scope, d) {
                Place::Reg(k) => Leaf::Reg(k),
                Place::Slot(s) => Leaf::Slot(s),
            }),
            _ => None,
        }
    }

    /// Emits `e` as a superinstruction if it has one of the fused shapes
    /// (arguments as for `Compiler::expr`); `false` leaves it to the plain
    /// compiler.
    pub(crate) fn lower(
        &self,
        c: &mut Compiler,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) -> bool {
        let fused = |f| Instr::Fused(f);
        match e {
            Expr::Set(d, v) => {
                let Place::Reg(k) = Compiler::place(scope, *d) else {
                    return false;
                };
                if let Expr::Add(a, b) = &**v
                    && **a == Expr::Get(*d)
                    && let Some(l) = Self::leaf(b, scope)
                {
                    c.emit(fused(Fused::AddAssign(k, l)));
                } else if let Some(l) = Self::leaf(v, scope) {
                    c.emit(fused(Fused::SetLeaf(k, l)));
                } else {
                    return false;
                }
                if want {
                    c.emit(Instr::Lit(0));
                }
                true
            }
            Expr::Add(a, b) if want => {
                if let Some(l) = Self::leaf(b, scope) {
                    c.expr(a, scope, height, true);
                    c.emit(fused(Fused::AddLeaf(l)));
                    true
                } else if let Some(l) = Self::leaf(a, scope)
                    && (!matches!(**a, Expr::Get(_))
                        || !self.stores.contains(&(&**b as *const Expr)))
                {
                    c.expr(b, scope, height, true);
                    c.emit(fused(Fused::AddLeaf(l)));
                    true
                } else {
                    false
                }
            }
            Expr::While(cond, body) => {
                let Expr::Get(d) = **cond else { return false };
                let Place::Reg(k) = Compiler::place(scope, d) else {
                    return false;
                };
                // Shape 6: a loop-free body is laid out `UNROLL` times.
                let copies = if self.loops.contains(&(&**body as *const Expr)) {
                    1
                } else {
                    UNROLL
                };
                // Shape 7: the body ends with the step of `d`.
                let (prefix, last) = spine(body);
                let step = if let Expr::Set(s, v) = last
                    && *s == d
                    && let Expr::Add(a, l) = &**v
                    && **a == Expr::Get(d)
                {
                    Self::leaf(l, scope)
                } else {
                    None
                };
                let mut exits = vec![c.len()];
                c.emit(fused(Fused::JumpIfRegNotPos(k, usize::MAX)));
                let head = c.len();
                for copy in 0..copies {
                    if copy > 0 {
                        exits.push(c.len());
                        c.emit(fused(Fused::JumpIfRegNotPos(k, usize::MAX)));
                    }
                    let Some(l) = step else {
                        c.expr(body, scope, height, false);
                        continue;
                    };
                    for s in &prefix {
                        c.expr(s, scope, height, false);
                    }
                    // The step tests `rK` and skips the plain test after it
                    // unless that test's branch is taken.
                    c.emit(fused(if copy + 1 < copies {
                        Fused::AddJumpIfNotPos(k, l)
                    } else {
                        Fused::AddLoopIfPos(k, l)
                    }));
                }
                c.emit(fused(Fused::LoopIfRegPos(k, head)));
                for exit in exits {
                    c.patch(exit, fused(Fused::JumpIfRegNotPos(k, c.len())));
                }
                if want {
                    c.emit(Instr::Lit(0));
                }
                true
            }
            _ => false,
        }
    }
}

/// A statement sequence's right-most statement (the last one run) and the
/// statements before it in order, however its `Then`s nest: `Then(a,
/// Then(b, c))` as the parser builds it, or `Then(Then(a, b), c)`. Walks
/// only the right spine, without recursion; the left parts stay whole.
fn spine(e: &Expr) -> (Vec<&Expr>, &Expr) {
    let mut prefix = Vec::new();
    let mut last = e;
    while let Expr::Then(a, b) = last {
        prefix.push(&**a);
        last = b;
    }
    (prefix, last)
}

/// Reads a leaf operand of kind `L`.
///
/// # Safety
/// The handler contract of `tape_continuations::Handler`, for an op whose
/// leaf has kind `L`.
#[inline(always)]
unsafe fn leaf<const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    r0: i64,
    r1: i64,
) -> i64 {
    let x = operand!(ip);
    match L {
        LIT => x,
        // SAFETY: `verify` checked the index is below `arg_count`, which
        // `args` holds by the handler contract.
        ARG => unsafe { *args.add(x as usize) },
        REG0 => r0,
        REG1 => r1,
        // SAFETY: `verify` checked the slot is below `frame_len`.
        _ => unsafe { *fp.add(x as usize) },
    }
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn add_assign<const K: usize, const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> Exit {
    // SAFETY: this handler's contract, with a leaf of kind `L` (`Fused::op`).
    let x = unsafe { leaf::<L>(ip, fp, args, r0, r1) };
    add_to_reg::<K>(&mut r0, &mut r1, x);
    next!(ip, fp, args, acc, r0, r1)
}

/// `rK = rK + x` (wrapping) on the handler's register arguments; the new
/// value of `rK`. Shared by `add_assign` and shape 7.
#[inline(always)]
fn add_to_reg<const K: usize>(r0: &mut i64, r1: &mut i64, x: i64) -> i64 {
    let r = if K == 0 { r0 } else { r1 };
    *r = r.wrapping_add(x);
    *r
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn set_leaf<const K: usize, const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> Exit {
    // SAFETY: this handler's contract, with a leaf of kind `L` (`Fused::op`).
    let x = unsafe { leaf::<L>(ip, fp, args, r0, r1) };
    if K == 0 {
        r0 = x
    } else {
        r1 = x
    }
    next!(ip, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn add_leaf<const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    // SAFETY: this handler's contract, with a leaf of kind `L` (`Fused::op`).
    let x = unsafe { leaf::<L>(ip, fp, args, r0, r1) };
    next!(ip, fp, args, acc.wrapping_add(x), r0, r1)
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn jump_if_reg_not_pos<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    if (if K == 0 { r0 } else { r1 }) > 0 {
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
/// The handler contract of `tape_continuations::Handler`.
unsafe fn loop_if_reg_pos<const K: usize>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    if (if K == 0 { r0 } else { r1 }) <= 0 {
        return next!(ip, fp, args, acc, r0, r1);
    }
    let rel = operand!(ip) as isize;
    // SAFETY: as `tape_continuations`' back-edges: the save slots are in the
    // frame and the target is an op of the same tape (`verify`); the driver
    // reloads the registers and continues there.
    unsafe {
        *fp.add(SAVE_BASE) = r0;
        *fp.add(SAVE_BASE + 1) = r1;
        (ip.byte_offset(rel), 0)
    }
}

/// Continues at the op after next, skipping the plain test that follows a
/// shape-7 op.
macro_rules! skip {
    ($ip:expr, $fp:expr, $args:expr, $acc:expr, $r0:expr, $r1:expr) => {{
        let (ip, fp, args, acc, r0, r1): (*const Op, _, _, i64, i64, i64) =
            ($ip, $fp, $args, $acc, $r0, $r1);
        // SAFETY: `verify` (`skip_ok` in `FusedKind::checked_handler`)
        // checked that the op two after this one is on the tape; by the
        // handler contract passed on, it may be called.
        unsafe {
            let ip = ip.add(2);
            ((*ip).handler)(ip, fp, args, acc, r0, r1)
        }
    }};
}

/// `next!`, out of line: the way of a shape-7 op taken once per loop. Both
/// ways of a shape-7 op go to a fixed distance, so inlined LLVM merges them
/// into one jump to `ip + 1 + (test)`: that makes `ip` depend on the
/// counter's value, and every later op's loads wait for the add (twice the
/// time per iteration on `sum`). A call to a cold function keeps the test a
/// predicted branch.
///
/// # Safety
/// The handler contract of `tape_continuations::Handler`.
#[cold]
#[inline(never)]
unsafe fn next_cold(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    next!(ip, fp, args, acc, r0, r1)
}

/// `skip!`, out of line, for the same reason as [`next_cold`].
///
/// # Safety
/// The handler contract of `tape_continuations::Handler`, for a shape-7 op.
#[cold]
#[inline(never)]
unsafe fn skip_cold(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    r0: i64,
    r1: i64,
) -> Exit {
    skip!(ip, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn add_jump_if_not_pos<const K: usize, const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> Exit {
    // SAFETY: this handler's contract; `verify` checked the leaf's operand
    // for kind `L` (`FusedKind::checked_handler`).
    let x = unsafe { leaf::<L>(ip, fp, args, r0, r1) };
    let r = add_to_reg::<K>(&mut r0, &mut r1, x);
    if r <= 0 {
        // The plain `jump_if_not_pos rK @exit` after this op takes the exit.
        // SAFETY: this handler's contract.
        return unsafe { next_cold(ip, fp, args, acc, r0, r1) };
    }
    skip!(ip, fp, args, acc, r0, r1)
}

/// # Safety
/// The handler contract of `tape_continuations::Handler`.
unsafe fn add_loop_if_pos<const K: usize, const L: u8>(
    ip: *const Op,
    fp: *mut i64,
    args: *const i64,
    acc: i64,
    mut r0: i64,
    mut r1: i64,
) -> Exit {
    // SAFETY: this handler's contract; `verify` checked the leaf's operand
    // for kind `L` (`FusedKind::checked_handler`).
    let x = unsafe { leaf::<L>(ip, fp, args, r0, r1) };
    let r = add_to_reg::<K>(&mut r0, &mut r1, x);
    if r > 0 {
        // The plain `loop_if_pos rK @head` after this op takes the back-edge.
        return next!(ip, fp, args, acc, r0, r1);
    }
    // SAFETY: this handler's contract, for a shape-7 op.
    unsafe { skip_cold(ip, fp, args, acc, r0, r1) }
}

// Handler tables: [register K][leaf kind L].
const _: () = assert!(REGS == 2);
macro_rules! by_leaf {
    ($f:ident $(, $k:literal)?) => {
        [$f::<$($k,)? LIT>, $f::<$($k,)? ARG>, $f::<$($k,)? REG0>, $f::<$($k,)? REG1>, $f::<$($k,)? SLOT>]
    };
}
const ADD_ASSIGN: [[Handler; 5]; REGS] = [by_leaf!(add_assign, 0), by_leaf!(add_assign, 1)];
const SET_LEAF: [[Handler; 5]; REGS] = [by_leaf!(set_leaf, 0), by_leaf!(set_leaf, 1)];
const ADD_LEAF: [Handler; 5] = by_leaf!(add_leaf);
const JUMP_IF_REG_NOT_POS: [Handler; REGS] = [jump_if_reg_not_pos::<0>, jump_if_reg_not_pos::<1>];
const LOOP_IF_REG_POS: [Handler; REGS] = [loop_if_reg_pos::<0>, loop_if_reg_pos::<1>];
const ADD_JUMP_IF_NOT_POS: [[Handler; 5]; REGS] = [
    by_leaf!(add_jump_if_not_pos, 0),
    by_leaf!(add_jump_if_not_pos, 1),
];
const ADD_LOOP_IF_POS: [[Handler; 5]; REGS] =
    [by_leaf!(add_loop_if_pos, 0), by_leaf!(add_loop_if_pos, 1)];

impl Technique for TapeContinuationsFused {
    const NAME: &'static str = "tape_continuations_fused";
    const TIER: Tier = Tier::Fused;
    const SUMMARY: &'static str =
        "tape_continuations plus add-assign, set, add-leaf and register-test superinstructions";
    type Code = Tape;

    fn compile(program: &Program) -> Result<Tape, CompileError> {
        Compiler::fused(program)
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
    use super::*;

    crate::engines::conformance::conformance_tests!(
        TapeContinuationsFused,
        extra: [REGISTER_TRICKY, CONTINUATION_TRICKY],
        also: [deep_programs, far_assignments],
    );

    fn listing(src: &str) -> String {
        let p = crate::front::compile_source("t", src).unwrap();
        TapeContinuationsFused::show(&TapeContinuationsFused::compile(&p).unwrap())
    }

    /// Runs `src` on every argument list on this engine and the walker.
    fn agrees(src: &str, arg_lists: &[&[i64]]) {
        let p = crate::front::compile_source("t", src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let run = |name: &str, args: &[i64]| {
            let code = crate::engine::engine(name).unwrap().compile(&p).unwrap();
            code.execute(args).unwrap()
        };
        for args in arg_lists {
            assert_eq!(
                run(TapeContinuationsFused::NAME, args),
                run("walker", args),
                "{src} {args:?}\n{}",
                listing(src)
            );
        }
    }

    #[test]
    fn sum_fuses_to_two_ops_per_iteration_unrolled_four_times() {
        let p = crate::workloads::workload("sum")
            .unwrap()
            .program()
            .unwrap();
        let listing = TapeContinuationsFused::show(&TapeContinuationsFused::compile(&p).unwrap());
        for op in [
            "add_assign r0, arg 1",
            "add_jump_if_not_pos r1, -1\n",
            "add_loop_if_pos r1, -1\n",
            "loop_if_pos r1 @5",
        ] {
            assert!(listing.contains(op), "{listing}");
        }
        assert_eq!(listing.matches("add_jump_if_not_pos r1, -1").count(), 3);
        assert!(!listing.contains("add_assign r1"), "{listing}");
    }

    /// Shape 7 with each leaf kind as the step, entered zero or more times.
    #[test]
    fn counted_loops_with_every_leaf_kind_agree_with_walker() {
        let cases: &[(&str, &str, &[&[i64]])] = &[
            // literal
            (
                "let t = 0; let n = arg(0); while n { t = t + n; n = n + -1 }; t + n",
                "add_jump_if_not_pos r1, -1",
                &[&[0], &[-4], &[1], &[5], &[50]],
            ),
            // argument
            (
                "let t = 0; let n = arg(0); while n { t = t + 1; n = n + arg(1) }; t + t + n",
                "add_jump_if_not_pos r1, arg 1",
                &[&[10, -3], &[9, -3], &[0, -1], &[7, -7], &[100, -9]],
            ),
            // the other register
            (
                "let step = arg(1); let n = arg(0); while n { n = n + step }; n",
                "add_loop_if_pos r1, r0",
                &[&[10, -2], &[11, -2], &[3, -5], &[-3, -5]],
            ),
            // its own register: doubles until it wraps past i64::MAX
            (
                "let c = 0; let n = arg(0); while n { c = c + 1; n = n + n }; c + c + n",
                "add_jump_if_not_pos r1, r1",
                &[&[1], &[3], &[0], &[-1], &[i64::MAX]],
            ),
            // a spilled local's frame slot
            (
                "let step = arg(1); let a = 0; let b = 0; let n = arg(0); \
                 while n { a = a + 1; n = n + step }; a + b + n",
                "add_jump_if_not_pos r1, [",
                &[&[10, -1], &[10, -4], &[1, -1], &[0, -1]],
            ),
        ];
        for (src, op, args) in cases {
            assert!(listing(src).contains(op), "{op}\n{}", listing(src));
            agrees(src, args);
        }
    }

    #[test]
    fn steps_that_overshoot_or_wrap_agree_with_walker() {
        let cases: [(&str, &[i64]); 6] = [
            // overshoots zero: 10, 7, 4, 1, -2
            ("let n = arg(0); while n { n = n + -3 }; n", &[10]),
            ("let n = arg(0); while n { n = n + arg(1) }; n", &[10, -4]),
            // 1 + i64::MAX wraps to i64::MIN
            (
                "let n = arg(0); while n { n = n + 9223372036854775807 }; n",
                &[1],
            ),
            // i64::MAX + i64::MIN = -1
            (
                "let n = arg(0); while n { n = n + -9223372036854775808 }; n",
                &[i64::MAX],
            ),
            // positive steps run until the counter wraps negative
            (
                "let c = 0; let n = arg(0); while n { c = c + 1; n = n + 4611686018427387904 }; c + n",
                &[1],
            ),
            (
                "let n = arg(0); while n { n = n + arg(1) }; n",
                &[i64::MAX, 1],
            ),
        ];
        for (src, args) in cases {
            assert!(listing(src).contains("add_loop_if_pos"), "{src}");
            agrees(src, &[args]);
        }
    }

    #[test]
    fn values_and_nesting_of_the_body_agree_with_walker() {
        for src in [
            // the loop's value is used
            "let n = arg(0); (while n { n = n + -1 }) + n + 7",
            "let n = arg(0); let m = (while n { n = n + -1 }); m + n",
            // `{ { a; b }; step }` nests `Then` on the left
            "let t = 0; let n = arg(0); while n { { t = t + n; t = t + 1 }; n = n + -1 }; t",
            // `{ a; { b; step } }` nests it on the right
            "let t = 0; let n = arg(0); while n { t = t + 1; { t = t + n; n = n + -1 } }; t",
            // a body that reads the counter before the step
            "let t = 0; let n = arg(0); while n { t = t + n + n; n = n + -2 }; t + n",
        ] {
            assert!(listing(src).contains("add_jump_if_not_pos"), "{src}");
            agrees(src, &[&[0], &[1], &[6], &[7]]);
        }
    }

    #[test]
    fn a_last_update_of_another_local_does_not_fuse() {
        for src in [
            "let t = 0; let n = arg(0); while n { n = n + -1; t = t + 2 }; t",
            "let t = 0; let n = arg(0); while n { t = t + (n = n + -1) + n }; t",
            // same shape, but the local is not the loop's
            "let n = arg(0); let t = 5; while n { n = n + -1; t = t + -1 }; t + n",
            // the step's read is of another local
            "let t = -1; let n = arg(0); while n { n = t + n }; n",
            // the loop's local but not its step
            "let n = arg(0); while n { n = -1 }; n",
        ] {
            let text = listing(src);
            assert!(
                !text.contains("add_jump_if_not_pos") && !text.contains("add_loop_if_pos"),
                "{src}\n{text}"
            );
            agrees(src, &[&[0], &[3], &[8]]);
        }
    }

    #[test]
    fn nested_counted_loops_agree_with_walker() {
        let src = "let s = 0; let j = 0; let i = arg(0); \
                   while i { j = arg(1); while j { s = s + i; j = j + -1 }; i = i + -1 }; \
                   s + i + j";
        let text = listing(src);
        // The inner loop is unrolled, the outer one (it holds a loop) not.
        assert_eq!(
            text.matches("add_jump_if_not_pos r1, -1").count(),
            3,
            "{text}"
        );
        assert_eq!(text.matches("add_loop_if_pos r1, -1").count(), 1, "{text}");
        assert_eq!(text.matches("add_loop_if_pos r0, -1").count(), 1, "{text}");
        assert!(!text.contains("add_jump_if_not_pos r0"), "{text}");
        agrees(src, &[&[0, 5], &[3, 0], &[3, 4], &[7, 9]]);
    }

    #[test]
    fn verify_rejects_a_fused_step_without_two_ops_after_it() {
        use super::super::tape_continuations::{Instr, verify};
        for f in [
            Fused::AddJumpIfNotPos(1, Leaf::Lit(-1)),
            Fused::AddLoopIfPos(0, Leaf::Arg(0)),
        ] {
            let ok = [Instr::Fused(f), Instr::Lit(0), Instr::Halt];
            assert!(verify(&ok, 10, 1).is_ok(), "{f}");
            assert!(
                verify(&[Instr::Fused(f), Instr::Halt], 10, 1).is_err(),
                "{f}"
            );
        }
        for f in [
            Fused::AddJumpIfNotPos(2, Leaf::Lit(-1)),
            Fused::AddLoopIfPos(0, Leaf::Arg(1)),
            Fused::AddJumpIfNotPos(0, Leaf::Slot(10)),
            Fused::AddLoopIfPos(1, Leaf::Reg(2)),
        ] {
            let bad = [Instr::Fused(f), Instr::Lit(0), Instr::Halt];
            assert!(verify(&bad, 10, 1).is_err(), "{f}");
        }
    }

    #[test]
    fn fused_steps_read_back_as_their_instructions() {
        use super::super::tape_continuations::Instr;
        for f in [
            Fused::AddJumpIfNotPos(1, Leaf::Lit(i64::MIN)),
            Fused::AddJumpIfNotPos(0, Leaf::Reg(1)),
            Fused::AddLoopIfPos(0, Leaf::Arg(3)),
            Fused::AddLoopIfPos(1, Leaf::Slot(7)),
        ] {
            let (kind, operand) = Instr::Fused(f).encode(9);
            assert_eq!(Instr::decode(kind, operand, 9), Instr::Fused(f));
        }
    }
}
