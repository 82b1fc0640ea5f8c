//! `register_closures` — nested closures (like `closures`) whose innermost
//! locals travel through the closures as arguments instead of sitting in
//! memory.
//!
//! **Compile** turns every node into a closure that captures its children
//! (indirect threading), each held as two words (code pointer and closure
//! address, `closures`' `thin_closure!`) in one arena, plus a flat pre-order
//! list of node descriptions that `show` prints. Each closure takes the
//! register file (`r0`, `r1`) by value, in two machine registers. What it
//! takes and returns depends on what the subtree can do, known at compile
//! time: a subtree that neither reads nor assigns a register-resident local
//! is not given the registers; one that assigns none returns just its value;
//! one whose value is always 0 (`Set`, `While`, or a `Then`/`Let` ending in
//! one) returns just the registers; only the rest return both (three words,
//! through memory). A `Let` spills the local it pushes out only if its body
//! uses that local.
//!
//! **Locals**: register `r0` holds the innermost local, `r1` the next one,
//! up to [`REGS`]; anything further out lives in a spill buffer, in a slot
//! fixed by its scope level. So `Get(d)`/`Set(d, _)` with `d < REGS` touch a
//! register and the others a spill slot; the rule depends only on `d`, for
//! any number of locals. **`Let` shifts the registers**: the new local enters
//! as `r0`, the others move up by one, and the one pushed out of the last
//! register (if that register held a local) is spilled to its home slot.
//! When the body returns, the registers shift back down and the spilled local
//! is reloaded into the last register; a `Set` to it meanwhile went to the
//! spill slot, so the reload sees it.
//!
//! **Values** are return values; **control** is Rust's own (a `While` is a
//! Rust loop), so native stack depth follows the tree, not the run.
//!
//! `REGS = 2`: the closure environment, the memory pointer and two
//! registers fill four argument registers, and two registers
//! (or one value) fit the two return registers. A third register would push
//! every register-returning closure's result through memory, and make each
//! `Let` shift one more word.
//!
//! Trade-off: the hottest locals are read without touching memory and nothing
//! is pushed or popped per `Let`, at the cost of moving the register file in
//! and out of every closure call and a compiler that tracks, per subtree,
//! which registers it reads and changes. A node that calls two children must
//! keep the registers alive across the first call, so this engine gains
//! where the hot locals are few and loses where expressions are large.
//!
//! **What a node costs**: as in `closures` (a call per child, two loads to
//! reach it, no vtable), plus keeping `r0`/`r1` in callee-saved registers
//! across a call when a later child or the node itself still needs them. A
//! register `Get` is a move; a `Set` to a register writes the returned
//! register file. The one operand-location variant: **`add n`**, an `Add`
//! whose right operand is a literal, adds the captured constant and spends
//! no call on it (for any literal); **`sub n`** and **`lt n`** do the same
//! for `-` and `<`. No arm keys on a value or an index: the registers hold
//! whichever locals are innermost, in every program.
//!
//! **Calls, returns, branches.** The callee's locals are not the caller's,
//! so a call gives it a fresh register file. The call closure evaluates
//! each argument with the caller's registers (an argument may assign a
//! caller's local), writes it to the slot where the callee's **frame** will
//! start (above the caller's spill slots and the arguments already
//! written) and shifts it into the new register file as a nested `Let`
//! would: the last two arguments arrive in `r0`/`r1`, the others are
//! already in their home slots. It checks the depth counter, gives the
//! callee a [`Mem`] whose spill area starts at that slot (one more call
//! active), and calls the body's closure (through a table of compiled
//! bodies filled in once all are compiled, so a call may come before its
//! callee). **Saving the caller's registers** is the native call's own
//! work: they are live Rust values of the call closure, kept in
//! callee-saved registers or its native frame across the call, and it
//! returns them with the value (**return**) like any other node. So a frame
//! is a body's spill slots plus its calls' argument slots, in one buffer
//! with room for `MAX_CALLS` frames of the largest function's above main's;
//! the registers of every active call live on the native stack, which
//! grows with the calls active (the engine declares what `MAX_CALLS`
//! need). The call that would exceed the limit unwinds the native stack
//! back to `run`, so only calls pay for the check. A **branch** is a native
//! `if` in the `If` closure, whose kind (what it takes and returns) follows
//! its children's like every other node's.
//!
//! Unsafe code rests on trusting this module's own compiler (spill slots
//! and argument indices from validation); there is no verifier.

use super::closures::{Arena, catch_call_depth, exceed_call_depth, thin_closure};
use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::Cell;
use std::fmt::Write;

/// How many innermost locals are passed through the closures.
pub const REGS: usize = 2;

/// The register file: `r0` is the innermost local. Two fields rather than an
/// array because Rust passes a two-scalar struct in two machine registers
/// (and returns it in two), but an array of two through memory.
#[derive(Clone, Copy)]
struct Regs(i64, i64);

impl Regs {
    #[inline(always)]
    fn get<const K: usize>(self) -> i64 {
        if K == 0 { self.0 } else { self.1 }
    }

    #[inline(always)]
    fn set<const K: usize>(&mut self, v: i64) {
        if K == 0 { self.0 = v } else { self.1 = v }
    }

    /// The local pushed out of the registers by a new one.
    #[inline(always)]
    fn last(self) -> i64 {
        self.1
    }
}

/// What every closure can reach besides its registers.
struct Mem<'a> {
    /// The active call's frame: home slots of its locals that are not in
    /// registers, by scope level, then its calls' arguments; and room for
    /// `MAX_CALLS - calls` more frames above it.
    spill: &'a mut [i64],
    args: &'a [i64],
    /// Calls active.
    calls: usize,
}

thin_closure! {
    /// A closure that neither reads nor assigns a register-resident local is
    /// not even given the registers.
    struct FreeFn = Fn(m: &mut Mem<'_>) -> i64;
}
thin_closure! {
    /// A closure that cannot change the registers returns only its value.
    struct PureFn = Fn(m: &mut Mem<'_>, r: Regs) -> i64;
}
thin_closure! {
    /// A closure whose value is always 0 (`Set`, `While`, or a `Then`/`Let`
    /// ending in one) returns only the registers.
    struct ZeroFn = Fn(m: &mut Mem<'_>, r: Regs) -> Regs;
}
thin_closure! {
    /// Any other closure that may assign a register-resident local returns
    /// its value and the registers.
    struct MutFn = Fn(m: &mut Mem<'_>, r: Regs) -> (i64, Regs);
}

/// A compiled node. Its kind is decided at compile time from the locals the
/// subtree reads and assigns (see [`Locals`]) and whether its value is always
/// 0, so that most calls return at most two words, in registers; only a node
/// that both has a value and assigns a register local returns three words
/// (through memory). A parent need not keep the registers alive across a
/// call if the rest of its children are free of them.
#[derive(Clone, Copy)]
enum Node {
    Free(FreeFn),
    Pure(PureFn),
    Zero(ZeroFn),
    Mut(MutFn),
}

/// Calling a child, whatever its kind; inlined into each parent closure, so
/// the kind costs nothing at run time.
trait Eval: 'static {
    fn eval(&self, m: &mut Mem<'_>, r: Regs) -> (i64, Regs);
}

struct F(FreeFn);
struct P(PureFn);
struct Z(ZeroFn);
struct M(MutFn);

impl Eval for F {
    #[inline(always)]
    fn eval(&self, m: &mut Mem<'_>, r: Regs) -> (i64, Regs) {
        (self.0.call(m), r)
    }
}

impl Eval for P {
    #[inline(always)]
    fn eval(&self, m: &mut Mem<'_>, r: Regs) -> (i64, Regs) {
        (self.0.call(m, r), r)
    }
}

impl Eval for Z {
    #[inline(always)]
    fn eval(&self, m: &mut Mem<'_>, r: Regs) -> (i64, Regs) {
        (0, self.0.call(m, r))
    }
}

impl Eval for M {
    #[inline(always)]
    fn eval(&self, m: &mut Mem<'_>, r: Regs) -> (i64, Regs) {
        self.0.call(m, r)
    }
}

/// What compile knows about a node: its kind.
#[derive(Clone, Copy)]
struct Kind {
    /// Neither reads nor assigns a register-resident local.
    free: bool,
    /// Assigns no register-resident local.
    pure: bool,
    /// Its value is always 0.
    zero: bool,
}

/// Wraps a closure written in the general `(value, registers)` form as the
/// kind says; whatever that kind does not return is dead code.
fn node(ar: &Arena, k: Kind, f: impl Fn(&mut Mem<'_>, Regs) -> (i64, Regs) + 'static) -> Node {
    if k.free {
        // Nothing below reads or assigns these registers: any value will do.
        Node::Free(FreeFn::new_in(ar, move |m| f(m, Regs(0, 0)).0))
    } else if k.pure {
        Node::Pure(PureFn::new_in(ar, move |m, r| f(m, r).0))
    } else if k.zero {
        Node::Zero(ZeroFn::new_in(ar, move |m, r| f(m, r).1))
    } else {
        Node::Mut(MutFn::new_in(ar, f))
    }
}

/// Binds `$x` to the child `$n` as its concrete kind: [`F`], [`P`], [`Z`] or
/// [`M`].
macro_rules! typed {
    ($n:expr, |$x:ident| $body:expr) => {
        match $n {
            Node::Free(f) => {
                let $x = F(f);
                $body
            }
            Node::Pure(f) => {
                let $x = P(f);
                $body
            }
            Node::Zero(f) => {
                let $x = Z(f);
                $body
            }
            Node::Mut(f) => {
                let $x = M(f);
                $body
            }
        }
    };
}

/// Which locals a subtree reads (or assigns), as distances from its own
/// scope: bit `d` means "the local `d` scopes out". Distances of 63 and
/// beyond share the top bit, which sticks, so the answer is only ever too
/// cautious.
#[derive(Clone, Copy)]
struct Locals(u64);

impl Locals {
    const FAR: u64 = 1 << 63;

    fn local(d: usize) -> Locals {
        Locals(1 << d.min(63))
    }

    /// The same writes seen from one scope further out (leaving a `Let`,
    /// whose own local is distance 0 inside and vanishes).
    fn outer(self) -> Locals {
        Locals((self.0 >> 1) | (self.0 & Self::FAR))
    }

    fn or(self, other: Locals) -> Locals {
        Locals(self.0 | other.0)
    }

    /// Whether no register-resident local is among them.
    fn no_regs(self) -> bool {
        self.0 & ((1 << REGS) - 1) == 0
    }
}

/// What a node is, for `show`. Operands are kept as numbers and only
/// formatted by `show`, so compile allocates nothing per node besides the
/// closure itself.
#[derive(Clone, Copy, strum::EnumDiscriminants)]
#[strum_discriminants(name(LabelKind), derive(strum::VariantArray, strum::IntoStaticStr))]
enum Label {
    Litr(i64),
    Arg(usize),
    GetReg(usize),
    GetSlot(usize),
    SetReg(usize),
    SetSlot(usize),
    Add,
    AddLit(i64),
    Then,
    While,
    Let,
    /// A `Let` that spills the last register to this slot.
    LetSpill(usize),
    Sub,
    SubLit(i64),
    Lt,
    LtLit(i64),
    If,
    /// Calls function `.0`, whose frame starts at slot `.1` of the caller's.
    Call(usize, usize),
}

/// One line of the closure tree's description: the node at `depth`, in
/// pre-order. A flat list (one growing `Vec` for the whole program) rather
/// than a tree of labelled boxes: at 10^6 nodes the boxed tree's three small
/// allocations per node, on top of the closures', made compile slower per
/// node the larger the program (a heap far past the caches and the
/// allocator's trim threshold).
#[derive(Clone, Copy)]
struct Line {
    depth: u32,
    label: Label,
    /// `None` for leaves, which are never marked.
    info: Option<Info>,
}

impl Line {
    fn write(&self, out: &mut String, functions: &[(String, String, usize)]) {
        for _ in 0..self.depth {
            out.push_str("  ");
        }
        let text = match self.label {
            Label::Litr(n) => format!("lit {n}"),
            Label::Arg(i) => format!("arg {i}"),
            Label::GetReg(d) => format!("get r{d}"),
            Label::GetSlot(s) => format!("get [{s}]"),
            Label::SetReg(d) => format!("set r{d}"),
            Label::SetSlot(s) => format!("set [{s}]"),
            Label::Add => "add".into(),
            Label::AddLit(n) => format!("add {n}"),
            Label::Then => "then".into(),
            Label::While => "while".into(),
            Label::Let => "let r0 (shift)".into(),
            Label::LetSpill(s) => format!("let r0 (shift, r{} spills to [{s}])", REGS - 1),
            Label::Sub => "sub".into(),
            Label::SubLit(n) => format!("sub {n}"),
            Label::Lt => "lt".into(),
            Label::LtLit(n) => format!("lt {n}"),
            Label::If => "if".into(),
            Label::Call(f, top) => format!(
                "call {}: arguments to [{top}].., its frame there, the last {REGS} in its registers",
                functions[f].0
            ),
        };
        match self.info {
            Some(info) => out.push_str(&info.label(&text)),
            None => out.push_str(&text),
        }
        _ = writeln!(out);
    }
}

// `Regs`, `get_reg::<K>` etc. are written out for exactly two registers.
const _: () = assert!(REGS == 2);

fn get_reg<const K: usize>(ar: &Arena) -> Node {
    Node::Pure(PureFn::new_in(ar, |_, r| r.get::<K>()))
}

fn set_reg<const K: usize, V: Eval>(ar: &Arena, value: V) -> Node {
    node(
        ar,
        Kind {
            free: false,
            pure: false,
            zero: true,
        },
        move |m, r| {
            let (v, mut r) = value.eval(m, r);
            r.set::<K>(v);
            (0, r)
        },
    )
}

fn set_slot<V: Eval>(ar: &Arena, value: V, slot: usize, k: Kind) -> Node {
    node(ar, k, move |m, r| {
        let (v, r) = value.eval(m, r);
        // SAFETY: see `spill_len`: a local `REGS` or more scopes out has its
        // level below `max_locals - REGS`.
        unsafe { *m.spill.get_unchecked_mut(slot) = v };
        (0, r)
    })
}

/// `a op b` (`+`, `-` or `<`): `op` is a function item, so each operator
/// is its own closure type with the operation inlined.
fn binary<A: Eval, B: Eval, Op: Fn(i64, i64) -> i64 + 'static>(
    ar: &Arena,
    a: A,
    b: B,
    op: Op,
    k: Kind,
) -> Node {
    node(ar, k, move |m, r| {
        let (x, r) = a.eval(m, r);
        let (y, r) = b.eval(m, r);
        (op(x, y), r)
    })
}

/// `a op n` for a literal right operand `n`: no call for it.
fn binary_lit<A: Eval, Op: Fn(i64, i64) -> i64 + 'static>(
    ar: &Arena,
    a: A,
    n: i64,
    op: Op,
    k: Kind,
) -> Node {
    node(ar, k, move |m, r| {
        let (x, r) = a.eval(m, r);
        (op(x, n), r)
    })
}

/// `<` as a number, 1 or 0.
fn less(x: i64, y: i64) -> i64 {
    i64::from(x < y)
}

fn if_<C: Eval, Y: Eval, N: Eval>(ar: &Arena, cond: C, yes: Y, no: N, k: Kind) -> Node {
    node(ar, k, move |m, r| {
        let (c, r) = cond.eval(m, r);
        if c > 0 { yes.eval(m, r) } else { no.eval(m, r) }
    })
}

/// Runs a node of any kind (a call's argument or body, whose kinds vary).
#[inline(always)]
fn eval_any(n: Node, m: &mut Mem<'_>, r: Regs) -> (i64, Regs) {
    typed!(n, |n| n.eval(m, r))
}

/// A call: each argument is evaluated in the caller's registers and
/// written to slot `top + i` of the caller's frame, where the callee's
/// frame begins; the last `REGS` arguments also enter the callee's
/// registers as nested `Let`s would. The caller's registers stay in this
/// closure's native frame across the call: saving them is the native
/// call's own work.
fn call(ar: &Arena, args: &[Node], top: usize, body: *const Cell<Node>, k: Kind) -> Node {
    let args = ar.alloc_slice(args);
    let (args, count) = (args.as_ptr(), args.len());
    node(ar, k, move |m, mut r| {
        let mut callee_regs = Regs(0, 0);
        for i in 0..count {
            // SAFETY: `args` holds `count` nodes in the arena, which lives
            // as long as this closure.
            let (v, r1) = eval_any(unsafe { *args.add(i) }, m, r);
            r = r1;
            // SAFETY: `top + count` is within this body's frame (see `frame`).
            unsafe { *m.spill.get_unchecked_mut(top + i) = v };
            callee_regs = shift_in(v, callee_regs);
        }
        if m.calls == MAX_CALLS {
            exceed_call_depth();
        }
        let rest = m.spill.len() - top;
        // SAFETY: the callee's frame is this frame's slots from `top` on,
        // which hold `MAX_CALLS - calls` more frames (the `Mem` invariant).
        let spill = unsafe { std::slice::from_raw_parts_mut(m.spill.as_mut_ptr().add(top), rest) };
        let mut callee = Mem {
            spill,
            args: m.args,
            calls: m.calls + 1,
        };
        // SAFETY: the table is in the arena, filled before any run.
        let body = unsafe { (*body).get() };
        (eval_any(body, &mut callee, callee_regs).0, r)
    })
}

fn then<A: Eval, B: Eval>(ar: &Arena, a: A, b: B, k: Kind) -> Node {
    node(ar, k, move |m, r| {
        let (_, r) = a.eval(m, r);
        b.eval(m, r)
    })
}

fn while_<C: Eval, B: Eval>(ar: &Arena, cond: C, body: B, k: Kind) -> Node {
    node(ar, k, move |m, mut r| {
        loop {
            let (c, r1) = cond.eval(m, r);
            r = r1;
            if c <= 0 {
                return (0, r);
            }
            r = body.eval(m, r).1;
        }
    })
}

/// A `Let` whose body does not use the local pushed out of the last
/// register (if there is one): that local's value comes back unchanged.
fn let_<I: Eval, B: Eval>(ar: &Arena, init: I, body: B, k: Kind) -> Node {
    node(ar, k, move |m, r| {
        let (v, r) = init.eval(m, r);
        let (x, inner) = body.eval(m, shift_in(v, r));
        (x, shift_out(inner, r.last()))
    })
}

/// A `Let` that spills the local pushed out of the last register to its
/// home `slot` for the body, and reloads it after.
fn let_spill<I: Eval, B: Eval>(ar: &Arena, init: I, body: B, slot: usize, k: Kind) -> Node {
    node(ar, k, move |m, r| {
        let (v, r) = init.eval(m, r);
        // SAFETY: a `Let` at level `scope` nests inside `scope` others, so
        // `scope < max_locals` and `slot = scope - REGS < spill_len`.
        unsafe { *m.spill.get_unchecked_mut(slot) = r.last() };
        let (x, inner) = body.eval(m, shift_in(v, r));
        // SAFETY: as above.
        let back = unsafe { *m.spill.get_unchecked(slot) };
        (x, shift_out(inner, back))
    })
}

/// What compile learns about a subtree besides its closure.
#[derive(Clone, Copy)]
struct Info {
    /// Outer locals it reads.
    reads: Locals,
    /// Outer locals it assigns.
    writes: Locals,
    /// Its value is always 0.
    zero: bool,
}

impl Info {
    const LEAF: Info = Info {
        reads: Locals(0),
        writes: Locals(0),
        zero: false,
    };

    /// Both subtrees, run one after the other; the value is the second's.
    fn then(self, b: Info) -> Info {
        Info {
            reads: self.reads.or(b.reads),
            writes: self.writes.or(b.writes),
            zero: b.zero,
        }
    }

    fn kind(self) -> Kind {
        let pure = self.writes.no_regs();
        Kind {
            free: pure && self.reads.no_regs(),
            pure,
            zero: self.zero,
        }
    }

    /// `label`, marked with what the node is given and returns.
    fn label(self, label: &str) -> String {
        let k = self.kind();
        match (k.free, k.pure, k.zero) {
            (true, ..) => format!("{label} (no regs)"),
            (_, true, _) => label.to_string(),
            (_, false, true) => format!("{label} -> regs only (value 0)"),
            (_, false, false) => format!("{label} -> value, regs"),
        }
    }
}

/// What compiling a body needs besides the tree: the arena, the table of
/// every function's compiled body (by number, filled in once all are
/// compiled, so a call may precede its callee's compilation), and the
/// frame size the body needs so far.
struct Cx<'a> {
    ar: &'a Arena,
    bodies: &'a [Cell<Node>],
    /// Slots of the body's frame: its spill slots, then the arguments its
    /// calls write above them.
    frame: Cell<usize>,
}

/// Compiles `e`, evaluated with `scope` locals in scope and the frame's
/// slots from `top` on free for a call's arguments, appending its
/// description (at `depth`) to `lines`.
fn compile(
    cx: &Cx<'_>,
    e: &Expr,
    scope: usize,
    top: usize,
    depth: u32,
    lines: &mut Vec<Line>,
) -> (Node, Info) {
    let ar = cx.ar;
    let mut leaf = |n: Node, label: Label, info: Info| {
        lines.push(Line {
            depth,
            label,
            info: None,
        });
        (n, info)
    };
    match e {
        Expr::Litr(n) => {
            let n = *n;
            leaf(
                Node::Free(FreeFn::new_in(ar, move |_| n)),
                Label::Litr(n),
                Info::LEAF,
            )
        }
        Expr::Arg(i) => {
            let i = *i;
            let f = move |m: &mut Mem<'_>| {
                // SAFETY: `Arg(i)` is in the program, so `i < arg_count`,
                // which `execute`'s caller guarantees `args` holds.
                unsafe { *m.args.get_unchecked(i) }
            };
            leaf(Node::Free(FreeFn::new_in(ar, f)), Label::Arg(i), Info::LEAF)
        }
        Expr::Get(d) if *d < REGS => {
            let info = Info {
                reads: Locals::local(*d),
                ..Info::LEAF
            };
            leaf(
                [get_reg::<0>, get_reg::<1>][*d](ar),
                Label::GetReg(*d),
                info,
            )
        }
        Expr::Get(d) => {
            let slot = scope - 1 - d;
            let f = move |m: &mut Mem<'_>| {
                // SAFETY: see `spill_len`: a local `REGS` or more scopes out
                // has its level below `max_locals - REGS`.
                unsafe { *m.spill.get_unchecked(slot) }
            };
            // Not a register here, but it may be one further out.
            let info = Info {
                reads: Locals::local(*d),
                ..Info::LEAF
            };
            leaf(
                Node::Free(FreeFn::new_in(ar, f)),
                Label::GetSlot(slot),
                info,
            )
        }
        _ => {
            // Parent before children: reserve the line, fill it in once the
            // children have told us the node's kind.
            let at = lines.len();
            lines.push(Line {
                depth,
                label: Label::Then,
                info: None,
            });
            let (node, label, info) = compile_inner(cx, e, scope, top, depth + 1, lines);
            lines[at] = Line {
                depth,
                label,
                info: Some(info),
            };
            (node, info)
        }
    }
}

/// [`compile`] for a node with children, which go at `depth`.
fn compile_inner(
    cx: &Cx<'_>,
    e: &Expr,
    scope: usize,
    top: usize,
    depth: u32,
    lines: &mut Vec<Line>,
) -> (Node, Label, Info) {
    let ar = cx.ar;
    if let Expr::Call(f, args) = e {
        cx.frame.set(cx.frame.get().max(top + args.len()));
        let mut info = Info::LEAF;
        // Argument `i` goes to slot `top + i`: a call inside it puts its
        // own arguments and frame above that.
        let args: Vec<Node> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (node, ai) = compile(cx, a, scope, top + i, depth, lines);
                info = info.then(ai);
                node
            })
            .collect();
        info.zero = false;
        let node = call(ar, &args, top, &cx.bodies[*f], info.kind());
        return (node, Label::Call(*f, top), info);
    }
    let mut go = |e: &Expr, scope: usize| compile(cx, e, scope, top, depth, lines);
    match e {
        Expr::Call(..) => unreachable!("compiled above"),
        Expr::Sub(a, b) if matches!(**b, Expr::Litr(_)) => {
            let Expr::Litr(n) = **b else { unreachable!() };
            let (a, ai) = go(a, scope);
            let info = Info { zero: false, ..ai };
            let node = typed!(a, |a| binary_lit(ar, a, n, i64::wrapping_sub, info.kind()));
            (node, Label::SubLit(n), info)
        }
        Expr::Sub(a, b) => {
            let ((a, ai), (b, bi)) = (go(a, scope), go(b, scope));
            let info = Info {
                zero: false,
                ..ai.then(bi)
            };
            let node = typed!(a, |a| typed!(b, |b| binary(
                ar,
                a,
                b,
                i64::wrapping_sub,
                info.kind()
            )));
            (node, Label::Sub, info)
        }
        Expr::Lt(a, b) if matches!(**b, Expr::Litr(_)) => {
            let Expr::Litr(n) = **b else { unreachable!() };
            let (a, ai) = go(a, scope);
            let info = Info { zero: false, ..ai };
            let node = typed!(a, |a| binary_lit(ar, a, n, less, info.kind()));
            (node, Label::LtLit(n), info)
        }
        Expr::Lt(a, b) => {
            let ((a, ai), (b, bi)) = (go(a, scope), go(b, scope));
            let info = Info {
                zero: false,
                ..ai.then(bi)
            };
            let node = typed!(a, |a| typed!(b, |b| binary(ar, a, b, less, info.kind())));
            (node, Label::Lt, info)
        }
        Expr::If(c, yes, no) => {
            let (c, ci) = go(c, scope);
            let (yes, yi) = go(yes, scope);
            let (no, ni) = go(no, scope);
            let info = Info {
                zero: yi.zero && ni.zero,
                ..ci.then(yi).then(ni)
            };
            let k = info.kind();
            let node = typed!(c, |c| typed!(yes, |y| typed!(no, |n| if_(ar, c, y, n, k))));
            (node, Label::If, info)
        }
        Expr::Set(d, v) => {
            let (value, vi) = go(v, scope);
            let info = Info {
                writes: vi.writes.or(Locals::local(*d)),
                zero: true,
                ..vi
            };
            if *d < REGS {
                let n = typed!(value, |v| [set_reg::<0, _>, set_reg::<1, _>][*d](ar, v));
                (n, Label::SetReg(*d), info)
            } else {
                let slot = scope - 1 - d;
                let n = typed!(value, |v| set_slot(ar, v, slot, info.kind()));
                (n, Label::SetSlot(slot), info)
            }
        }
        Expr::Add(a, b) if matches!(**b, Expr::Litr(_)) => {
            let Expr::Litr(n) = **b else { unreachable!() };
            let (a, ai) = go(a, scope);
            let info = Info { zero: false, ..ai };
            let node = typed!(a, |a| binary_lit(ar, a, n, i64::wrapping_add, info.kind()));
            (node, Label::AddLit(n), info)
        }
        Expr::Add(a, b) => {
            let ((a, ai), (b, bi)) = (go(a, scope), go(b, scope));
            let info = Info {
                zero: false,
                ..ai.then(bi)
            };
            let node = typed!(a, |a| typed!(b, |b| binary(
                ar,
                a,
                b,
                i64::wrapping_add,
                info.kind()
            )));
            (node, Label::Add, info)
        }
        Expr::Then(a, b) => {
            let ((a, ai), (b, bi)) = (go(a, scope), go(b, scope));
            let info = ai.then(bi);
            let node = typed!(a, |a| typed!(b, |b| then(ar, a, b, info.kind())));
            (node, Label::Then, info)
        }
        Expr::While(c, body) => {
            let ((c, ci), (b, bi)) = (go(c, scope), go(body, scope));
            let info = Info {
                zero: true,
                ..ci.then(bi)
            };
            let node = typed!(c, |c| typed!(b, |b| while_(ar, c, b, info.kind())));
            (node, Label::While, info)
        }
        Expr::Let(init, body) => {
            let (init, ii) = go(init, scope);
            let (body, bi) = go(body, scope + 1);
            // The local at level `scope - REGS`, if any, is in the last
            // register and is pushed out by the new one. It needs a spill
            // (and the `Let` reads that register) only if the body uses it,
            // at distance `REGS` inside; otherwise it rides along unchanged.
            let spill = scope
                .checked_sub(REGS)
                .filter(|_| bi.reads.or(bi.writes).0 & (1 << REGS) != 0);
            // Seen from outside, the body's distances shrink by one and its
            // own local (distance 0) disappears.
            let outer = Info {
                reads: bi.reads.outer(),
                writes: bi.writes.outer(),
                zero: bi.zero,
            };
            let mut info = ii.then(outer);
            if spill.is_some() {
                info.reads = info.reads.or(Locals::local(REGS - 1));
            }
            let k = info.kind();
            match spill {
                None => {
                    let n = typed!(init, |i| typed!(body, |b| let_(ar, i, b, k)));
                    (n, Label::Let, info)
                }
                Some(slot) => {
                    let n = typed!(init, |i| typed!(body, |b| let_spill(ar, i, b, slot, k)));
                    (n, Label::LetSpill(slot), info)
                }
            }
        }
        Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {
            unreachable!("leaves are compiled by `compile`")
        }
    }
}

/// Registers inside a new scope: `v` first, the rest moved up one.
#[inline(always)]
fn shift_in(v: i64, outer: Regs) -> Regs {
    Regs(v, outer.0)
}

/// Registers after the scope: moved back down, `last` refilling the end.
#[inline(always)]
fn shift_out(inner: Regs, last: i64) -> Regs {
    Regs(inner.1, last)
}

/// Spill slots a body with `max_locals` locals needs: a local is only
/// ever in memory if `REGS` newer locals exist, so only levels below
/// `max_locals - REGS` need a home.
fn spill_len(max_locals: usize) -> usize {
    max_locals.saturating_sub(REGS)
}

technique! {
    RegisterClosures = "register_closures", Original, Code;
    "nested closures; the 2 innermost locals passed as arguments, the rest spilled";
    compile: compile_program, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        crate::engine::recursive_native_stack(program, FRAME_BYTES)
    }
    // One line per closure built, by its label.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<LabelKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        crate::engine::census_of(code.lines.iter().map(|l| LabelKind::from(l.label)))
    }
}

/// Native stack per closure nesting level that
/// [`crate::engine::recursion_frames`] counts. The largest closure frame is
/// a call's (224 bytes measured in the test profile, 192 in release); a
/// chain of calls in arguments can make every counted level one, so this
/// bounds the frame of every kind, with a margin.
const FRAME_BYTES: usize = 384;

/// The compiled program: the closure tree and its description.
pub struct Code {
    root: Node,
    /// Main's lines, then each function's.
    lines: Vec<Line>,
    /// Each function's name and parameters, with its first line in `lines`.
    functions: Vec<(String, String, usize)>,
    spill_len: usize,
    /// Slots of a run's buffer: main's frame, then room for `MAX_CALLS`
    /// frames of the largest function's (just main's spill slots at Level 1).
    slots: usize,
    /// Owns `root` and every closure it reaches, and the table of bodies.
    _arena: Arena,
}

fn compile_program(program: &Program) -> Result<Code, CompileError> {
    let mut lines = Vec::with_capacity(program.node_count());
    let arena = Arena::per_node(program);
    let unset = Node::Free(FreeFn::new_in(&arena, |_| {
        unreachable!("every body is set before a run")
    }));
    let bodies = arena.alloc_table(program.functions().len(), |_| Cell::new(unset));
    let spill = spill_len(program.max_locals());
    let cx = Cx {
        ar: &arena,
        bodies,
        frame: Cell::new(spill),
    };
    let (root, _) = compile(&cx, program.expr(), 0, spill, 0, &mut lines);
    let mut slots = cx.frame.get();
    let mut largest = 0;
    let mut functions = Vec::with_capacity(bodies.len());
    for (f, (function, facts)) in program
        .functions()
        .iter()
        .zip(program.function_facts())
        .enumerate()
    {
        functions.push((
            function.name.clone(),
            function.params.join(", "),
            lines.len(),
        ));
        let spill = spill_len(facts.max_locals);
        cx.frame.set(spill);
        let (body, _) = compile(&cx, &function.body, function.arity(), spill, 1, &mut lines);
        bodies[f].set(body);
        largest = largest.max(cx.frame.get());
    }
    if !functions.is_empty() {
        slots += MAX_CALLS * largest;
    }
    Ok(Code {
        root,
        lines,
        functions,
        spill_len: spill,
        slots,
        _arena: arena,
    })
}

/// Runs the tree from its root closure, on a fresh spill area.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    let mut spill = vec![0i64; code.slots];
    // The `Mem` invariant: main's frame, and `MAX_CALLS` of the largest
    // function's above it.
    let mut mem = Mem {
        spill: &mut spill,
        args,
        calls: 0,
    };
    catch_call_depth(|| match code.root {
        Node::Free(f) => f.call(&mut mem),
        Node::Pure(f) => f.call(&mut mem, Regs(0, 0)),
        Node::Zero(f) => {
            f.call(&mut mem, Regs(0, 0));
            0
        }
        Node::Mut(f) => f.call(&mut mem, Regs(0, 0)).0,
    })
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; registers r0..r{} (r0 = innermost local), {} spill slots\n",
        REGS - 1,
        code.spill_len
    );
    let mut heads = code.functions.iter().peekable();
    for (at, line) in code.lines.iter().enumerate() {
        if let Some((name, params, _)) = heads.next_if(|(.., first)| *first == at) {
            _ = writeln!(out, "fn {name}({params}):");
        }
        line.write(&mut out, &code.functions);
    }
    out
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(super::RegisterClosures, closure_chains);

    #[test]
    fn show_prints_the_closure_tree_with_kinds() {
        use crate::engines::conformance::listing;
        assert_eq!(
            listing::<super::RegisterClosures>("let x = arg(0); x = x + 1; x"),
            [
                "let r0 (shift) (no regs)",
                "  arg 0",
                "  then -> value, regs",
                "    set r0 -> regs only (value 0)",
                "      add 1",
                "        get r0",
                "    get r0",
            ]
        );
    }

    #[test]
    fn show_lists_every_function() {
        use crate::engines::conformance::listing;
        assert_eq!(
            listing::<super::RegisterClosures>("fn f(a, b) { a - b }\nf(1, 2)"),
            [
                "call f: arguments to [0].., its frame there, the last 2 in its registers (no regs)",
                "  lit 1",
                "  lit 2",
                "fn f(a, b):",
                "  sub",
                "    get r1",
                "    get r0",
            ]
        );
    }
}
