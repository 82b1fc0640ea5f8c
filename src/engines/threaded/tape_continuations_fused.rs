//! `tape_continuations_fused` — `tape_continuations` plus superinstructions
//! for common node shapes.
//!
//! Everything is `tape_continuations` (see that module): the same compiler,
//! calling convention (`ip`, `fp`, `args`, `acc`, `r0`, `r1`), tape, verifier
//! and driver. Its compiler takes this module's lowering hook (`Shapes`),
//! which sees every node first; a node that matches one of the shapes below
//! becomes one superinstruction (an op of [`FusedIsa`], one handler per
//! register and leaf kind), any other node is compiled as usual (its
//! children still get offered).
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
//!    test `jump_if_not_pos rK @exit`, so the back-edge's trip through the
//!    driver is paid once per four iterations. Only loop-free bodies are
//!    copied, so the tape grows at most fourfold.
//! 7. Shape 5 or 6 whose body's last statement (the right-most node of its
//!    `Then` spine) is `Set(d, Add(Get(d), leaf))` on the loop's own local
//!    `d` (a counted loop's step) → that step and the test after it are one
//!    dispatch: `add_jump_if_not_pos rK, leaf` (forward tests) and
//!    `add_loop_if_pos rK, leaf` (the back-edge) do `rK = rK + leaf` and
//!    test `rK`; the way the loop goes on skips the plain test after them,
//!    the other way runs it, and that plain op carries the jump target.
//!    Shapes 1 and 7 also take `Set(d, Sub(Get(d), n))` with `n` a literal
//!    as the step `+ -n` (wrapping negation: the same value for every `n`).
//!
//! Level 2 adds, by the same rules:
//!
//! 8. `Sub(x, leaf)` whose value is used → `x; sub leaf`: `acc = acc - leaf`.
//! 9. `Lt(x, leaf)` whose value is used → `x; lt leaf`; `Lt(leaf, x)` under
//!    shape 4's rule → `x; gt leaf` (`acc = leaf < acc`).
//! 10. A condition (`if`, `while`) `Lt(x, leaf)` → `x; jump_if_not_lt leaf
//!     @else`; `Lt(leaf, x)` under shape 4's rule → `x; jump_if_not_gt leaf
//!     @else`: compare-and-branch on `acc` and a leaf.
//! 11. A condition `Lt(Get(d), leaf)` or `Lt(leaf, Get(d))`, `d` in a
//!     register → `jump_if_not_lt rK, leaf @else` or `jump_if_not_gt rK,
//!     leaf @else`: the whole test one dispatch (`n < 2` in `fib`).
//! 12. A call's argument that is a leaf → `push leaf [slot]`, straight into
//!     the callee's parameter slot (no `acc` round trip).
//!
//! Calls, returns and frames are `tape_continuations`' (see its module
//! doc): a `call` and a `ret` are one dispatch each, frames live on the
//! engine's own stack. On `fib` a call is `get r0; sub 1; push [slot];
//! call`, its test one `jump_if_not_lt r0, 2` and its return one `ret`.
//!
//! On `sum` an iteration is two dispatches (`add_assign r0, arg 1`,
//! `add_jump_if_not_pos r1, -1`) and, once per four iterations, a driver
//! round trip.
//! Trade-off: 49 more handlers (50 more for Level 2), a shape matcher and
//! a longer tape; the back-edge still returns to the driver (stable Rust
//! cannot promise a backward tail call), unrolling only amortises it.
//!
//! **Unsafe** code rests on the verifier, as in `tape_continuations`; the
//! superinstructions are one more list on the threaded-code core
//! ([`FusedIsa`], extending [`TapeIsa`]) and one lowering hook (`Shapes`).

use super::tape_continuations::{
    Code, Compiler, Handler, Instr as Plain, Lowering, Place, REGS, TapeIsa, Test, Word, argument,
    compile, get, place, reg_mut, slot, tape_handlers,
};
use crate::engines::threaded::{
    Backward, Bounds, Forward, Layout, Operand, Reg, Slot, Stable, isa, target, threaded_engine,
    word,
};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// How many copies of a loop-free body shape 6 lays out per back-edge.
const UNROLL: usize = 4;

/// An operand read in place by a superinstruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
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

/// A leaf on the tape: its kind selects the handler, its literal, argument
/// index or slot is the op's word (a register leaf has none).
pub struct LeafOperand;

impl Operand for LeafOperand {
    type Value = Leaf;
    const WORDS: u64 = 1 << LIT | 1 << ARG | 1 << SLOT;
    fn encode(l: Leaf, _: &Layout) -> (u8, Option<i64>) {
        match l {
            Leaf::Lit(n) => (LIT, Some(n)),
            Leaf::Arg(i) => (ARG, Some(i as i64)),
            // A register out of range gets no column, so no handler.
            Leaf::Reg(k) if k < REGS => (REG0 + k as u8, None),
            Leaf::Reg(_) => (u8::MAX, None),
            Leaf::Slot(s) => (SLOT, Some(s as i64)),
        }
    }
    fn decode(col: u8, x: i64, _: &Layout) -> Leaf {
        match col {
            LIT => Leaf::Lit(x),
            ARG => Leaf::Arg(x as usize),
            REG0 | REG1 => Leaf::Reg((col - REG0) as usize),
            SLOT => Leaf::Slot(x as usize),
            // Only a register out of range has no column.
            _ => Leaf::Reg(usize::MAX),
        }
    }
    fn check(col: u8, x: i64, b: &Bounds) -> bool {
        match col {
            ARG => b.arg(x),
            SLOT => b.slot(x),
            _ => true,
        }
    }
    fn location(col: u8) -> String {
        match col {
            LIT => "const".into(),
            ARG => "arg".into(),
            REG0 | REG1 => format!("r{}", col - REG0),
            _ => "slot".into(),
        }
    }
}

isa! {
    /// `tape_continuations`' instruction set plus the superinstructions
    /// (shapes 1–12 of the module doc).
    pub isa FusedIsa {
        word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 2, extends: TapeIsa,
    }
    /// `r[k] = r[k] + leaf` (shape 1)
    AddAssign(k: usize as Reg, l: Leaf as LeafOperand) "add_assign r{k}, {l}"
        => add_assign<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// `r[k] = leaf` (shape 2)
    SetLeaf(k: usize as Reg, l: Leaf as LeafOperand) "set r{k}, {l}"
        => set_leaf<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// `acc = acc + leaf` (shapes 3 and 4)
    AddLeaf(l: Leaf as LeafOperand) "add {l}" => add_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// if `r[k] <= 0` continue at the target (forward; shape 5)
    JumpIfRegNotPos(k: usize as Reg, t: usize as Forward) "jump_if_not_pos r{k} @{t}"
        => jump_if_reg_not_pos<k in [0, 1]>;
    /// back-edge if `r[k] > 0`, else continue (shape 5)
    LoopIfRegPos(k: usize as Reg, t: usize as Backward) "loop_if_pos r{k} @{t}"
        => loop_if_reg_pos<k in [0, 1]>;
    /// `r[k] = r[k] + leaf`; if `r[k] <= 0` run the next op (the plain
    /// `jump_if_not_pos r[k]` to the exit), else skip it (shape 7)
    AddJumpIfNotPos(k: usize as Reg, l: Leaf as LeafOperand) "add_jump_if_not_pos r{k}, {l}"
        => add_jump_if_not_pos<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>
        if |b: &Bounds| b.ops_after(2);
    /// `r[k] = r[k] + leaf`; if `r[k] > 0` run the next op (the plain
    /// `loop_if_pos r[k]` back-edge), else skip it (shape 7)
    AddLoopIfPos(k: usize as Reg, l: Leaf as LeafOperand) "add_loop_if_pos r{k}, {l}"
        => add_loop_if_pos<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>
        if |b: &Bounds| b.ops_after(2);
    /// `acc = acc - leaf` (shape 8)
    SubLeaf(l: Leaf as LeafOperand) "sub {l}" => sub_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// `acc = 1` if `acc < leaf`, else `0` (shape 9)
    LtLeaf(l: Leaf as LeafOperand) "lt {l}" => lt_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// `acc = 1` if `leaf < acc`, else `0` (shape 9)
    GtLeaf(l: Leaf as LeafOperand) "gt {l}" => gt_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// unless `acc < leaf` continue at the target (shape 10)
    JumpIfNotLtLeaf(t: usize as Forward, l: Leaf as LeafOperand) "jump_if_not_lt {l} @{t}"
        => jump_if_not_lt_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// unless `leaf < acc` continue at the target (shape 10)
    JumpIfNotGtLeaf(t: usize as Forward, l: Leaf as LeafOperand) "jump_if_not_gt {l} @{t}"
        => jump_if_not_gt_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// unless `r[k] < leaf` continue at the target (shape 11)
    JumpIfRegNotLt(k: usize as Reg, t: usize as Forward, l: Leaf as LeafOperand)
        "jump_if_not_lt r{k}, {l} @{t}"
        => jump_if_reg_not_lt<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// unless `leaf < r[k]` continue at the target (shape 11)
    JumpIfRegNotGt(k: usize as Reg, t: usize as Forward, l: Leaf as LeafOperand)
        "jump_if_not_gt r{k}, {l} @{t}"
        => jump_if_reg_not_gt<k in [0, 1], l in [LIT, ARG, REG0, REG1, SLOT]>;
    /// `frame[slot] = leaf`: a call's argument (shape 12)
    PushLeaf(s: usize as Slot, l: Leaf as LeafOperand) "push {l} [{s}]"
        => push_leaf<l in [LIT, ARG, REG0, REG1, SLOT]>;
}

/// The value of this op's leaf of kind `L`, whose word (if any) is operand
/// word `at` (0 unless said).
macro_rules! leaf {
    ($L:ident, $ip:ident, $fp:ident, $args:ident, $r0:ident, $r1:ident) => {
        leaf!($L, $ip, 0, $fp, $args, $r0, $r1)
    };
    // A register leaf has no word: none is read.
    ($L:ident, $ip:ident, $at:expr, $fp:ident, $args:ident, $r0:ident, $r1:ident) => {{
        match $L {
            LIT => word!($ip, $at),
            ARG => argument!($args, word!($ip, $at)),
            REG0 => $r0,
            REG1 => $r1,
            _ => *slot!($fp, word!($ip, $at)),
        }
    }};
}

/// One tape op is two words: a jump of `n` ops is `n * OP` bytes.
const OP: isize = 16;

tape_handlers! {
    state(fp, args, acc, r0, r1);
    fn add_assign<const K: u8, const L: u8>(ip) {
        let x = leaf!(L, ip, fp, args, r0, r1);
        let r = reg_mut::<K>(&mut r0, &mut r1);
        *r = r.wrapping_add(x);
        Flow::Next
    }
    fn set_leaf<const K: u8, const L: u8>(ip) {
        *reg_mut::<K>(&mut r0, &mut r1) = leaf!(L, ip, fp, args, r0, r1);
        Flow::Next
    }
    fn add_leaf<const L: u8>(ip) {
        acc = acc.wrapping_add(leaf!(L, ip, fp, args, r0, r1));
        Flow::Next
    }
    fn jump_if_reg_not_pos<const K: u8>(ip) {
        if get::<K>(r0, r1) > 0 { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn loop_if_reg_pos<const K: u8>(ip) {
        if get::<K>(r0, r1) > 0 { Flow::Back(target!(ip, 0)) } else { Flow::Next }
    }
    // Shape 7. Both ways go a fixed distance, so inlined LLVM would merge
    // them into one jump to `ip + (test ? 2 : 1) ops`: `ip` would then wait
    // for the add and every later op's loads with it. The way taken once
    // per loop goes out of line (`JumpCold`), so the test stays a predicted
    // branch.
    fn add_jump_if_not_pos<const K: u8, const L: u8>(ip) {
        let x = leaf!(L, ip, fp, args, r0, r1);
        let r = reg_mut::<K>(&mut r0, &mut r1);
        *r = r.wrapping_add(x);
        // Not positive: the plain `jump_if_not_pos rK @exit` after this op
        // takes the exit.
        if *r <= 0 { Flow::JumpCold(OP) } else { Flow::Jump(2 * OP) }
    }
    fn add_loop_if_pos<const K: u8, const L: u8>(ip) {
        let x = leaf!(L, ip, fp, args, r0, r1);
        let r = reg_mut::<K>(&mut r0, &mut r1);
        *r = r.wrapping_add(x);
        // Positive: the plain `loop_if_pos rK @head` after this op takes the
        // back-edge.
        if *r > 0 { Flow::Next } else { Flow::JumpCold(2 * OP) }
    }
    fn sub_leaf<const L: u8>(ip) {
        acc = acc.wrapping_sub(leaf!(L, ip, fp, args, r0, r1));
        Flow::Next
    }
    fn lt_leaf<const L: u8>(ip) {
        acc = i64::from(acc < leaf!(L, ip, fp, args, r0, r1));
        Flow::Next
    }
    fn gt_leaf<const L: u8>(ip) {
        acc = i64::from(leaf!(L, ip, fp, args, r0, r1) < acc);
        Flow::Next
    }
    // The target is operand word 0, the leaf's word (if any) word 1.
    fn jump_if_not_lt_leaf<const L: u8>(ip) {
        if acc < leaf!(L, ip, 1, fp, args, r0, r1) { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn jump_if_not_gt_leaf<const L: u8>(ip) {
        if leaf!(L, ip, 1, fp, args, r0, r1) < acc { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn jump_if_reg_not_lt<const K: u8, const L: u8>(ip) {
        let x = leaf!(L, ip, 1, fp, args, r0, r1);
        if get::<K>(r0, r1) < x { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn jump_if_reg_not_gt<const K: u8, const L: u8>(ip) {
        let x = leaf!(L, ip, 1, fp, args, r0, r1);
        if x < get::<K>(r0, r1) { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn push_leaf<const L: u8>(ip) {
        *slot!(fp, word!(ip, 0)) = leaf!(L, ip, 1, fp, args, r0, r1);
        Flow::Next
    }
}

/// The shape matcher, built once per program: the fused tier's lowering
/// hook.
pub(crate) struct Shapes {
    /// Nodes whose subtree contains a `Set` (for shape 4).
    stores: Nodes,
    /// Nodes whose subtree contains a `While` (for shape 6), found in one
    /// pass so compile time stays linear however deeply loops nest.
    loops: Nodes,
}

/// A set of nodes, by address. Addresses are already unique and spread, so
/// one multiply mixes them enough: no need for SipHash's resistance to
/// chosen keys, which the node addresses of one program cannot be.
type Nodes = HashSet<*const Expr, BuildHasherDefault<AddressHasher>>;

/// The hasher of [`Nodes`].
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing; the high bits carry the mix, so fold them down.
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

/// Records in `out` every node whose subtree contains a node for which
/// `is` holds. Recursion depth is the tree's depth, at most `MAX_DEPTH`.
fn mark(e: &Expr, is: fn(&Expr) -> bool, out: &mut Nodes) -> bool {
    let mut found = is(e);
    for child in e.children() {
        found |= mark(child, is, out);
    }
    if found {
        out.insert(e as *const Expr);
    }
    found
}

impl Shapes {
    pub(crate) fn new(program: &Program) -> Shapes {
        let (mut stores, mut loops) = (Nodes::default(), Nodes::default());
        let bodies =
            std::iter::once(program.expr()).chain(program.functions().iter().map(|f| &f.body));
        for body in bodies {
            mark(body, |e| matches!(e, Expr::Set(..)), &mut stores);
            mark(body, |e| matches!(e, Expr::While(..)), &mut loops);
        }
        Shapes { stores, loops }
    }

    /// `v` as the step of `Set(d, v)` on local `d`: `Get(d) + leaf` adds
    /// the leaf, `Get(d) - n` (a literal) adds `-n` (wrapping: the same
    /// value for every `n`).
    fn step(v: &Expr, d: usize, scope: usize) -> Option<Leaf> {
        match v {
            Expr::Add(a, l) if **a == Expr::Get(d) => Self::leaf(l, scope),
            Expr::Sub(a, l) if **a == Expr::Get(d) => match **l {
                Expr::Litr(n) => Some(Leaf::Lit(n.wrapping_neg())),
                _ => None,
            },
            _ => None,
        }
    }

    /// `a` as a leaf that may be read after `x` is evaluated instead of
    /// before (shape 4's rule): a literal, an argument, or a local that
    /// `x` does not assign (a call in `x` cannot: it has its own locals).
    fn leaf_after(&self, a: &Expr, x: &Expr, scope: usize) -> Option<Leaf> {
        let l = Self::leaf(a, scope)?;
        (!matches!(a, Expr::Get(_)) || !self.stores.contains(&(x as *const Expr))).then_some(l)
    }

    fn leaf(e: &Expr, scope: usize) -> Option<Leaf> {
        match *e {
            Expr::Litr(n) => Some(Leaf::Lit(n)),
            Expr::Arg(i) => Some(Leaf::Arg(i)),
            Expr::Get(d) => Some(match place(scope, d) {
                Place::Reg(k) => Leaf::Reg(k),
                Place::Slot(s) => Leaf::Slot(s),
            }),
            _ => None,
        }
    }
}

impl Lowering for Shapes {
    type Isa = FusedIsa;

    fn lower(
        &self,
        c: &mut Compiler<FusedIsa>,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) -> bool {
        match e {
            Expr::Set(d, v) => {
                let Place::Reg(k) = place(scope, *d) else {
                    return false;
                };
                if let Some(l) = Self::step(v, *d, scope) {
                    c.emit(Instr::AddAssign(k, l));
                } else if let Some(l) = Self::leaf(v, scope) {
                    c.emit(Instr::SetLeaf(k, l));
                } else {
                    return false;
                }
                if want {
                    c.emit(Plain::Lit(0));
                }
                true
            }
            Expr::Add(a, b) if want => {
                if let Some(l) = Self::leaf(b, scope) {
                    c.expr(self, a, scope, height, true);
                    c.emit(Instr::AddLeaf(l));
                    true
                } else if let Some(l) = Self::leaf(a, scope)
                    && (!matches!(**a, Expr::Get(_))
                        || !self.stores.contains(&(&**b as *const Expr)))
                {
                    c.expr(self, b, scope, height, true);
                    c.emit(Instr::AddLeaf(l));
                    true
                } else {
                    false
                }
            }
            Expr::While(cond, body) => {
                let Expr::Get(d) = **cond else { return false };
                let Place::Reg(k) = place(scope, d) else {
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
                let step = match last {
                    Expr::Set(s, v) if *s == d => Self::step(v, d, scope),
                    _ => None,
                };
                let mut exits = vec![c.len()];
                c.emit(Instr::JumpIfRegNotPos(k, usize::MAX));
                let head = c.len();
                for copy in 0..copies {
                    if copy > 0 {
                        exits.push(c.len());
                        c.emit(Instr::JumpIfRegNotPos(k, usize::MAX));
                    }
                    let Some(l) = step else {
                        c.expr(self, body, scope, height, false);
                        continue;
                    };
                    for s in &prefix {
                        c.expr(self, s, scope, height, false);
                    }
                    // The step tests `rK` and skips the plain test after it
                    // unless that test's branch is taken.
                    c.emit(if copy + 1 < copies {
                        Instr::AddJumpIfNotPos(k, l)
                    } else {
                        Instr::AddLoopIfPos(k, l)
                    });
                }
                c.emit(Instr::LoopIfRegPos(k, head));
                let end = c.len();
                for exit in exits {
                    c.patch(exit, Instr::JumpIfRegNotPos(k, end));
                }
                if want {
                    c.emit(Plain::Lit(0));
                }
                true
            }
            Expr::Sub(a, b) if want => {
                let Some(l) = Self::leaf(b, scope) else {
                    return false;
                };
                c.expr(self, a, scope, height, true);
                c.emit(Instr::SubLeaf(l));
                true
            }
            Expr::Lt(a, b) if want => {
                if let Some(l) = Self::leaf(b, scope) {
                    c.expr(self, a, scope, height, true);
                    c.emit(Instr::LtLeaf(l));
                } else if let Some(l) = self.leaf_after(a, b, scope) {
                    c.expr(self, b, scope, height, true);
                    c.emit(Instr::GtLeaf(l));
                } else {
                    return false;
                }
                true
            }
            _ => false,
        }
    }

    fn store(&self, c: &mut Compiler<FusedIsa>, e: &Expr, scope: usize, slot: usize) -> bool {
        let Some(l) = Self::leaf(e, scope) else {
            return false;
        };
        c.emit(Instr::PushLeaf(slot, l));
        true
    }

    fn test(
        &self,
        c: &mut Compiler<FusedIsa>,
        cond: &Expr,
        scope: usize,
        height: usize,
    ) -> Option<Test<FusedIsa>> {
        let Expr::Lt(a, b) = cond else { return None };
        let reg = |e: &Expr| match *e {
            Expr::Get(d) => match place(scope, d) {
                Place::Reg(k) => Some(k),
                Place::Slot(_) => None,
            },
            _ => None,
        };
        let unless: Box<dyn Fn(usize) -> Instr> =
            if let (Some(k), Some(l)) = (reg(a), Self::leaf(b, scope)) {
                Box::new(move |t| Instr::JumpIfRegNotLt(k, t, l))
            } else if let (Some(l), Some(k)) = (Self::leaf(a, scope), reg(b)) {
                Box::new(move |t| Instr::JumpIfRegNotGt(k, t, l))
            } else if let Some(l) = Self::leaf(b, scope) {
                c.expr(self, a, scope, height, true);
                Box::new(move |t| Instr::JumpIfNotLtLeaf(t, l))
            } else {
                let l = self.leaf_after(a, b, scope)?;
                c.expr(self, b, scope, height, true);
                Box::new(move |t| Instr::JumpIfNotGtLeaf(t, l))
            };
        Some(Test {
            unless,
            back_if: None,
        })
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

threaded_engine! {
    TapeContinuationsFused = "tape_continuations_fused", Fused, Code<FusedIsa, Stable>, compile(Shapes::new);
    "tape_continuations plus add-assign, set, add-leaf and register-test superinstructions";
    conformance: extra: [REGISTER_TRICKY, CONTINUATION_TRICKY], also: [deep_programs, far_assignments]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Technique;
    use crate::engines::conformance::workload_listing;

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
        let listing = workload_listing::<TapeContinuationsFused>("sum");
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
        use super::super::tape_continuations::verify;
        let (lit, halt) = (Instr::from(Plain::Lit(0)), Instr::from(Plain::Halt()));
        for f in [
            Instr::AddJumpIfNotPos(1, Leaf::Lit(-1)),
            Instr::AddLoopIfPos(0, Leaf::Arg(0)),
        ] {
            assert!(verify::<FusedIsa>(&[f, lit, halt], 10, 1).is_ok(), "{f}");
            assert!(verify::<FusedIsa>(&[f, halt], 10, 1).is_err(), "{f}");
        }
        for f in [
            Instr::AddJumpIfNotPos(2, Leaf::Lit(-1)),
            Instr::AddLoopIfPos(0, Leaf::Arg(1)),
            Instr::AddJumpIfNotPos(0, Leaf::Slot(10)),
            Instr::AddLoopIfPos(1, Leaf::Reg(2)),
            Instr::AddAssign(0, Leaf::Reg(2)),
            Instr::SetLeaf(2, Leaf::Lit(1)),
            Instr::AddLeaf(Leaf::Slot(10)),
            Instr::AddLeaf(Leaf::Arg(1)),
            Instr::JumpIfRegNotPos(0, 4),
            Instr::LoopIfRegPos(1, 3),
        ] {
            assert!(
                verify::<FusedIsa>(&[lit, f, lit, halt], 10, 1).is_err(),
                "{f}"
            );
        }
    }

    #[test]
    fn fused_ops_read_back_as_their_instructions() {
        let all = [
            Instr::AddAssign(1, Leaf::Lit(-3)),
            Instr::SetLeaf(0, Leaf::Reg(1)),
            Instr::AddLeaf(Leaf::Slot(6)),
            Instr::AddLeaf(Leaf::Arg(2)),
            Instr::JumpIfRegNotPos(1, 7),
            Instr::LoopIfRegPos(0, 1),
            Instr::AddJumpIfNotPos(1, Leaf::Lit(i64::MIN)),
            Instr::AddJumpIfNotPos(0, Leaf::Reg(1)),
            Instr::AddLoopIfPos(0, Leaf::Arg(3)),
            Instr::AddLoopIfPos(1, Leaf::Slot(7)),
            Plain::Lit(4).into(),
        ];
        crate::engines::threaded::tests::reads_back::<FusedIsa>(&all);
    }
}
