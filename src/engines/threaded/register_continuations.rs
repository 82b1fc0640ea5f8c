//! `register_continuations` — a register machine whose handlers tail-call
//! each other: `register_bytecode`'s three-address code, laid out on a
//! threaded tape (the design of wasmi 2.0, wasm3 and Stitch).
//!
//! **Compile** lowers the tree to three-address ops over *locations* and
//! writes them onto a tape of the threaded-code core
//! ([`crate::engines::threaded`]): each op is its handler's address followed
//! by one word per operand that lives in memory or is a constant. Every
//! expression is compiled with a destination, so `x = x + arg(1)` is the
//! single op `r0 = r0 + [1]`: one dispatch per AST operation, leaves
//! (literals, arguments, locals) read in place as operands, `Set`, `Let` and
//! `Then` costing nothing of their own. A local is read in place only if the
//! operands evaluated after it store to no local, so left-to-right order is
//! kept.
//!
//! **Locations** (the operand kinds a handler is specialised by; there is no
//! handler per value or per index):
//!
//! | location | where | listing |
//! |---|---|---|
//! | `acc` | a handler argument: the expression temporary being built | `acc` |
//! | `r0`–`r2` | handler arguments: three locals chosen by loop-weighted use | `r0` |
//! | slot | the frame (an operand word holds the slot): other locals, arguments, spilled temporaries | `[5]` |
//! | constant | the operand word itself (sources only) | `-1` |
//!
//! Each op family has one handler per combination of its operands'
//! location kinds: `add` 5 destinations × 6 × 6 sources, `copy` 5 × 6,
//! `if > 0 goto` and `return` 6 each.
//!
//! **Calling convention**: `(ip, fp, acc, r0, r1, r2)`, six integer
//! arguments, all in registers. Arguments are copied into the frame when a
//! run starts, so an argument is a slot and needs no pointer of its own:
//! that is what frees the sixth register for a third local.
//!
//! **Register allocation**: every `Let` gets a home for its whole scope. A
//! use counts 8^(loops around it); the `Let`s are taken heaviest first and
//! each gets the first of `r0`–`r2` that no `Let` whose scope overlaps its
//! own (an enclosing or an enclosed one) holds; the rest live in frame
//! slots. An argument read inside a loop competes too, as a local that is
//! never written and lives for the whole program (copied into its register
//! by the first ops). Homes never move, so nothing is spilled or reloaded at scope
//! boundaries. Expression temporaries live in `acc`; when both operands of
//! an `Add` need computing, the left one goes to a frame slot.
//!
//! **Control**: `while c { b }` is `goto test; head: b; test: c; if c > 0
//! goto head`, so an iteration ends in one compare-and-branch. Every
//! handler, the back-edge included, ends in a call of the next op's handler
//! in tail position: on stable Rust LLVM makes each one a jump from
//! opt-level 1 on (the profiles the tests run in, where the stack tests
//! prove a 10⁸-iteration loop stays on a 256 KiB stack); the
//! `register_tail_calls` engine builds the same handlers with `become`.
//! Only `return` returns. The exit way of a loop test runs out of line, so
//! each way of the branch keeps its own dispatch jump.
//!
//! **Unsafe** code rests on the verifier: handlers read slots and operand
//! words unchecked because the verifier (`Tape::new`) checked every op.
//!
//! Trade-off: the fewest dispatches of any plain engine here and a
//! dispatch that is one indirect jump, for an allocator pass before
//! compiling, 200-odd monomorphised handlers, and reliance on LLVM's
//! sibling-call optimisation on stable Rust.

use crate::engine::CompileError;
use crate::engines::threaded::{
    Backend, Backward, Bounds, Emitter, Forward, Isa, Layout, Operand, Stable, Tape, convention,
    isa, target, threaded_engine, word, writes_through_emitter,
};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::collections::BTreeMap;
use std::fmt;

/// How many locals live in handler arguments.
pub(crate) const REGS: usize = 3;

convention!(Word, Handler, (fp: *mut i64, acc: i64, r0: i64, r1: i64, r2: i64));

/// Where an operand lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Acc,
    Reg(usize),
    Slot(usize),
    Const(i64),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Loc::Acc => write!(f, "acc"),
            Loc::Reg(k) => write!(f, "r{k}"),
            Loc::Slot(s) => write!(f, "[{s}]"),
            Loc::Const(n) => write!(f, "{n}"),
        }
    }
}

/// Location kinds: the handlers' const parameters.
pub(crate) const ACC: u8 = 0;
pub(crate) const R0: u8 = 1;
pub(crate) const R1: u8 = 2;
pub(crate) const R2: u8 = 3;
pub(crate) const SLOT: u8 = 4;
pub(crate) const CONST: u8 = 5;

/// Whether an operand of location kind `l` has a word on the tape.
pub(crate) const fn words(l: u8) -> usize {
    (l == SLOT || l == CONST) as usize
}

/// A location on the tape: its kind selects the handler, a slot or a
/// constant is an operand word. Handler tables for destinations have no
/// constant column, so a constant destination has no handler.
pub struct LocOperand;

impl Operand for LocOperand {
    type Value = Loc;
    fn encode(l: Loc, _: &Layout) -> (u8, Option<i64>) {
        match l {
            Loc::Acc => (ACC, None),
            // A register out of range gets no column, so no handler.
            Loc::Reg(k) if k < REGS => (R0 + k as u8, None),
            Loc::Reg(_) => (u8::MAX, None),
            Loc::Slot(s) => (SLOT, Some(s as i64)),
            Loc::Const(n) => (CONST, Some(n)),
        }
    }
    fn has_word(l: u8) -> bool {
        words(l) == 1
    }
    fn decode(l: u8, x: i64, _: &Layout) -> Loc {
        match l {
            ACC => Loc::Acc,
            R0..=R2 => Loc::Reg((l - R0) as usize),
            SLOT => Loc::Slot(x as usize),
            CONST => Loc::Const(x),
            _ => Loc::Reg(usize::MAX),
        }
    }
    fn check(l: u8, x: i64, b: &Bounds) -> bool {
        l != SLOT || b.slot(x)
    }
}

isa! {
    /// The register machine's instruction set.
    pub isa RegIsa { word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 1 }
    /// `dst = a + b` (wrapping)
    Add(dst: Loc as LocOperand, a: Loc as LocOperand, b: Loc as LocOperand) "{dst} = {a} + {b}"
        => add<dst in [ACC, R0, R1, R2, SLOT], a in [ACC, R0, R1, R2, SLOT, CONST],
               b in [ACC, R0, R1, R2, SLOT, CONST]>;
    /// `dst = src`
    Copy(dst: Loc as LocOperand, src: Loc as LocOperand) "{dst} = {src}"
        => copy<dst in [ACC, R0, R1, R2, SLOT], src in [ACC, R0, R1, R2, SLOT, CONST]>;
    /// `goto target` (forward: a loop's entry into its test)
    Jump(t: usize as Forward) "goto @{t}" => jump;
    /// `if c > 0 goto target` (backward: a loop's test)
    JumpIfPos(c: Loc as LocOperand, t: usize as Backward) "if {c} > 0 goto @{t}"
        => jump_if_pos<c in [ACC, R0, R1, R2, SLOT, CONST]>;
    /// the program's value is `v`
    Return(v: Loc as LocOperand) "return {v}" => ret<v in [ACC, R0, R1, R2, SLOT, CONST]>;
}

/// Frame slot `s`, which the verifier checked for the op being run.
macro_rules! slot {
    ($fp:ident, $s:expr) => {{
        let s = $s as usize;
        // SAFETY: the verifier checked this op's slot operand is below the
        // frame's `frame_len` slots, and by the handler contract `fp` is
        // such a frame.
        unsafe { &mut *$fp.add(s) }
    }};
}
pub(crate) use slot;

/// The value at location kind `L`, whose word (if it has one) is operand
/// word `i`. The state is named at the call: `load!(L, i; ip, fp, acc, r0,
/// r1, r2)`.
macro_rules! load {
    ($L:expr, $i:expr; $ip:ident, $fp:ident, $acc:ident, $r0:ident, $r1:ident, $r2:ident) => {
        match $L {
            ACC => $acc,
            R0 => $r0,
            R1 => $r1,
            R2 => $r2,
            SLOT => *slot!($fp, word!($ip, $i)),
            _ => word!($ip, $i),
        }
    };
}
pub(crate) use load;

/// Stores `v` at destination kind `L`, whose word (if it has one) is
/// operand word `i`.
macro_rules! store {
    ($L:expr, $i:expr, $v:expr; $ip:ident, $fp:ident, $acc:ident, $r0:ident, $r1:ident, $r2:ident) => {{
        let v = $v;
        match $L {
            ACC => $acc = v,
            R0 => $r0 = v,
            R1 => $r1 = v,
            R2 => $r2 = v,
            // A slot keeps its value cached in `acc` too (see the module doc).
            _ => {
                *slot!($fp, word!($ip, $i)) = v;
                $acc = v;
            }
        }
    }};
}
pub(crate) use store;

/// Writes handlers with this family's calling convention (this module's
/// and the fused tier's); the invocation names the state its bodies use.
macro_rules! register_handlers {
    (state($fp:ident, $acc:ident, $r0:ident, $r1:ident, $r2:ident); $($body:tt)*) => {
        $crate::engines::threaded::handlers! {
            word: $crate::engines::threaded::register_continuations::Word,
            state: ($fp: *mut i64, $acc: i64, $r0: i64, $r1: i64, $r2: i64),
            park: tail;
            $($body)*
        }
    };
}
pub(crate) use register_handlers;

register_handlers! {
    state(fp, acc, r0, r1, r2);
    fn add<const D: u8, const X: u8, const Y: u8>(ip, len = 1 + words(D) + words(X) + words(Y)) {
        let x = load!(X, words(D); ip, fp, acc, r0, r1, r2);
        let y = load!(Y, words(D) + words(X); ip, fp, acc, r0, r1, r2);
        store!(D, 0, x.wrapping_add(y); ip, fp, acc, r0, r1, r2);
        Flow::Next
    }
    fn copy<const D: u8, const X: u8>(ip, len = 1 + words(D) + words(X)) {
        let x = load!(X, words(D); ip, fp, acc, r0, r1, r2);
        store!(D, 0, x; ip, fp, acc, r0, r1, r2);
        Flow::Next
    }
    fn jump(ip, len = 2) {
        Flow::Goto(target!(ip, 0))
    }
    // The exit is taken once per loop: out of line, so the back-edge and
    // the exit each keep a dispatch jump of their own.
    fn jump_if_pos<const C: u8>(ip, len = 2 + words(C)) {
        if load!(C, 0; ip, fp, acc, r0, r1, r2) > 0 {
            Flow::Back(target!(ip, words(C)))
        } else {
            Flow::JumpCold(((2 + words(C)) * 8) as isize)
        }
    }
    fn ret<const X: u8>(ip, len = 1 + words(X)) {
        Flow::Halt(load!(X, 0; ip, fp, acc, r0, r1, r2))
    }
}

/// What the compiler knows of a node, by pre-order index, from one pass,
/// packed in a word: the nodes in its subtree (to find a right child's
/// index), whether that subtree stores to a local, and, for a `Let`, the
/// register its local lives in (0: none).
#[derive(Clone, Copy, Default)]
struct Node(u32);

impl Node {
    const STORES: u32 = 1 << 31;
    const HOME: u32 = 3 << 29;
    const SIZE: u32 = (1 << 29) - 1;
    /// More nodes than a packed size holds.
    const TOO_MANY: usize = 1 << 29;

    fn size(self) -> usize {
        (self.0 & Self::SIZE) as usize
    }
    fn stores(self) -> bool {
        self.0 & Self::STORES != 0
    }
    fn home(self) -> Option<usize> {
        match (self.0 & Self::HOME) >> 29 {
            0 => None,
            k => Some(k as usize - 1),
        }
    }
}

/// The pre-pass: per-node facts and register allocation.
struct Analysis {
    nodes: Vec<Node>,
    /// Which argument, if any, each register holds for the whole run.
    arg_homes: [Option<usize>; REGS],
}

/// A value competing for a register: a `Let`'s local or an argument.
struct Candidate {
    /// Its scope's pre-order interval (a whole `Let`, init included; the
    /// whole program for an argument).
    start: u32,
    end: u32,
    weight: u64,
    what: Value,
}

#[derive(Clone, Copy)]
enum Value {
    /// The `Let` at this node.
    Let(u32),
    Arg(usize),
}

impl Analysis {
    fn new(program: &Program) -> Analysis {
        let n = program.node_count();
        let mut scan = Scan {
            nodes: vec![Node::default(); n],
            next: 0,
            candidates: Vec::with_capacity(program.max_locals() + 4),
            scope: Vec::with_capacity(program.max_locals()),
        };
        scan.scan(program.expr(), 0);
        let Scan {
            mut nodes,
            mut candidates,
            ..
        } = scan;
        // An argument read inside a loop competes for a register like a
        // local that is never written, over the whole program: the reads of
        // each argument (one candidate each so far) become one candidate.
        candidates.sort_by_key(|c| match c.what {
            Value::Let(_) => (0, 0),
            Value::Arg(i) => (1, i),
        });
        let lets = candidates.partition_point(|c| matches!(c.what, Value::Let(_)));
        let mut kept = lets;
        for r in lets..candidates.len() {
            let same = kept > lets
                && matches!((candidates[kept - 1].what, candidates[r].what),
                    (Value::Arg(a), Value::Arg(b)) if a == b);
            if same {
                let w = candidates[r].weight;
                candidates[kept - 1].weight = candidates[kept - 1].weight.saturating_add(w);
            } else {
                candidates.swap(kept, r);
                kept += 1;
            }
        }
        candidates.truncate(kept);
        candidates.retain(|c| matches!(c.what, Value::Let(_)) || c.weight >= weight(1));
        let mut arg_homes = [None; REGS];
        for (c, k) in allocate(&mut candidates) {
            match c {
                Value::Let(i) => nodes[i as usize].0 |= (k as u32 + 1) << 29,
                Value::Arg(i) => arg_homes[k] = Some(i),
            }
        }
        Analysis { nodes, arg_homes }
    }
}

struct Scan {
    nodes: Vec<Node>,
    /// The next node's pre-order index.
    next: usize,
    /// The `Let`s, in pre-order, and one candidate per argument read.
    candidates: Vec<Candidate>,
    /// The candidates (`Let`s) in scope, innermost last.
    scope: Vec<u32>,
}

/// A use's weight: 8 per enclosing loop (capped, so it cannot overflow).
fn weight(loops: u32) -> u64 {
    1 << (3 * loops.min(20))
}

impl Scan {
    /// Records `e`'s subtree; returns whether it stores. Recursion depth is
    /// the tree's depth, at most `MAX_DEPTH`.
    fn scan(&mut self, e: &Expr, loops: u32) -> bool {
        let i = self.next;
        self.next += 1;
        let uses = |s: &mut Scan, d: usize| {
            let c = s.scope[s.scope.len() - 1 - d] as usize;
            s.candidates[c].weight = s.candidates[c].weight.saturating_add(weight(loops));
        };
        let stores = match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(_) => false,
            Expr::Arg(a) => {
                self.candidates.push(Candidate {
                    start: 0,
                    end: u32::MAX,
                    weight: weight(loops),
                    what: Value::Arg(*a),
                });
                false
            }
            Expr::Get(d) => {
                uses(self, *d);
                false
            }
            Expr::Set(d, v) => {
                uses(self, *d);
                self.scan(v, loops);
                true
            }
            Expr::Add(a, b) | Expr::Then(a, b) => {
                let a = self.scan(a, loops);
                self.scan(b, loops) || a
            }
            Expr::While(c, b) => {
                let c = self.scan(c, loops + 1);
                self.scan(b, loops + 1) || c
            }
            Expr::Let(init, body) => {
                let init = self.scan(init, loops);
                let c = self.candidates.len();
                self.candidates.push(Candidate {
                    start: i as u32,
                    end: 0,
                    weight: weight(loops),
                    what: Value::Let(i as u32),
                });
                self.scope.push(c as u32);
                let body = self.scan(body, loops);
                self.scope.pop();
                self.candidates[c].end = self.next as u32;
                init || body
            }
        };
        let size = (self.next - i) as u32;
        self.nodes[i] = Node(size | if stores { Node::STORES } else { 0 });
        stores
    }
}

/// Gives the heaviest candidates registers: each takes the first register
/// that no candidate with an overlapping scope took before it. Scopes nest,
/// so two overlap exactly when one contains the other's start.
fn allocate(candidates: &mut [Candidate]) -> Vec<(Value, usize)> {
    // Up to one per register, every candidate gets one of its own.
    if candidates.len() <= REGS {
        return candidates
            .iter()
            .enumerate()
            .map(|(k, c)| (c.what, k))
            .collect();
    }
    candidates.sort_by_key(|c| (std::cmp::Reverse(c.weight), c.start));
    // Per register, the scopes it holds: start -> end.
    let mut held: [BTreeMap<u32, u32>; REGS] = Default::default();
    let mut homes = Vec::new();
    for c in candidates.iter() {
        let (start, end) = (c.start, c.end);
        let free = |h: &BTreeMap<u32, u32>| {
            let before = h
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e > start);
            let inside = h.range(start..end).next().is_some();
            !before && !inside
        };
        if let Some(k) = held.iter().position(free) {
            held[k].insert(start, end);
            homes.push((c.what, k));
        }
    }
    homes
}

/// A hook that may emit superinstructions in place of the plain code: how
/// the fused tier extends this compiler without it naming the fused tier.
pub(crate) trait Lowering: Sized {
    type Isa: Isa<Word = Word, Instr: From<Instr>, Kind: From<Kind>>;
    /// Emits `e` (an `Add`, node `i`) into `dst` its own way if it has one
    /// of the hook's shapes (arguments as for `Compiler::into`).
    fn add(
        &self,
        _c: &mut Compiler<Self::Isa>,
        _e: &Expr,
        _i: usize,
        _dst: Loc,
        _height: usize,
    ) -> bool {
        false
    }
    /// Emits a loop's test `if cond > 0 goto head` its own way, if it can;
    /// `true` if that op also serves the loop's entry (no plain test needed).
    fn test(&self, _c: &mut Compiler<Self::Isa>, _cond: Loc, _head: usize, _test: usize) -> Test {
        Test::Plain
    }
}

/// What a hook did with a loop's test.
pub(crate) enum Test {
    /// Nothing: the plain `if cond > 0 goto head`.
    Plain,
    /// Its own op, which the loop's entry also reaches.
    Fused,
    /// Its own op at the end of the body, which the loop's entry does not
    /// reach: the plain test must follow it.
    FusedInBody,
}

/// The plain tier: no hook.
#[derive(Default)]
pub(crate) struct Plain;

impl Lowering for Plain {
    type Isa = RegIsa;
}

/// Lowers the tree onto a tape of instruction set `I`.
pub(crate) struct Compiler<I: Isa> {
    code: Emitter<I>,
    facts: Analysis,
    /// Homes of the locals in scope, innermost last.
    scope: Vec<Loc>,
    /// First frame slot of the locals (after the arguments) and of the
    /// temporaries (after the locals).
    locals_base: usize,
    temps_base: usize,
    max_temps: usize,
    /// The slot whose value `acc` also holds right now, if any: a slot
    /// store leaves its value in `acc`, so the next read of that slot can
    /// read `acc` instead of waiting for the store to reach memory.
    cached: Option<usize>,
    /// The last plain `add` emitted: its index and operands.
    last_add: Option<(usize, Loc, Loc, Loc)>,
}

/// Node `i`'s children's pre-order indices (meaningless for a leaf).
fn children(f: &Analysis, i: usize) -> (usize, usize) {
    let a = i + 1;
    (a, a + f.nodes.get(a).map_or(0, |n| n.size()))
}

writes_through_emitter!(Compiler);

impl<I: Isa<Word = Word, Instr: From<Instr>>> Compiler<I> {
    pub(crate) fn new(program: &Program) -> Self {
        let locals_base = program.arg_count();
        Compiler {
            // About one op of two or three words per node.
            code: Emitter::with_capacity(program.node_count() + 1, 3),
            facts: Analysis::new(program),
            scope: Vec::with_capacity(program.max_locals()),
            locals_base,
            temps_base: locals_base + program.max_locals(),
            max_temps: 0,
            cached: None,
            last_add: None,
        }
    }

    fn temp(&mut self, height: usize) -> Loc {
        self.max_temps = self.max_temps.max(height + 1);
        Loc::Slot(self.temps_base + height)
    }

    /// Where `l` can be read by the op emitted next: `acc` if `acc` caches
    /// the slot.
    pub(crate) fn src(&self, l: Loc) -> Loc {
        match l {
            Loc::Slot(s) if self.cached == Some(s) => Loc::Acc,
            l => l,
        }
    }

    /// Where leaf `e`'s value can be read by the op emitted next.
    pub(crate) fn leaf(&self, e: &Expr) -> Loc {
        self.src(match *e {
            Expr::Litr(n) => Loc::Const(n),
            Expr::Arg(i) => match self.facts.arg_homes.iter().position(|&a| a == Some(i)) {
                Some(k) => Loc::Reg(k),
                None => Loc::Slot(i),
            },
            Expr::Get(d) => self.local(d),
            _ => unreachable!("not a leaf"),
        })
    }

    /// Records that the op emitted next writes `dst` (a slot store also
    /// writes `acc`); returns `dst`.
    pub(crate) fn write(&mut self, dst: Loc) -> Loc {
        match dst {
            Loc::Acc => self.cached = None,
            Loc::Slot(s) => self.cached = Some(s),
            Loc::Reg(_) | Loc::Const(_) => {}
        }
        dst
    }

    /// A jump target: other paths arrive here, so `acc` caches nothing.
    pub(crate) fn label(&mut self) -> usize {
        self.cached = None;
        self.len()
    }

    /// Node `i`'s children's pre-order indices.
    pub(crate) fn children(&self, i: usize) -> (usize, usize) {
        children(&self.facts, i)
    }

    /// Whether node `i`'s subtree stores to a local.
    pub(crate) fn stores(&self, i: usize) -> bool {
        self.facts.nodes[i].stores()
    }

    /// Removes the last op if it is a plain `add` whose destination
    /// `replaceable` accepts, and returns its operands, for a hook that
    /// replaces it. A taken add is forgotten: the op that replaces it, at
    /// the same index, is not an `add` a later hook may take.
    pub(crate) fn take_last_add(
        &mut self,
        replaceable: impl FnOnce(Loc) -> bool,
    ) -> Option<(Loc, Loc, Loc)> {
        let (at, dst, a, b) = self.last_add?;
        if at + 1 != self.len() || !replaceable(dst) {
            return None;
        }
        self.last_add = None;
        self.pop();
        Some((dst, a, b))
    }

    /// Emits `dst = src` unless they are the same place.
    fn copy(&mut self, dst: Loc, src: Loc) {
        if src != dst {
            let dst = self.write(dst);
            self.emit(Instr::Copy(dst, src));
        }
    }

    /// The home of the `Let` at node `i` (a register, or the slot of its
    /// scope level).
    fn home(&self, i: usize) -> Loc {
        match self.facts.nodes[i].home() {
            Some(k) => Loc::Reg(k),
            None => Loc::Slot(self.locals_base + self.scope.len()),
        }
    }

    /// The home of local `d`.
    fn local(&self, d: usize) -> Loc {
        self.scope[self.scope.len() - 1 - d]
    }

    /// Emits code leaving `e` (node `i`) in `dst`; only its last op writes
    /// `dst`, and no value waits in `acc` while another op runs. `height`
    /// temporaries are live.
    pub(crate) fn into<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        e: &Expr,
        i: usize,
        dst: Loc,
        height: usize,
    ) {
        if is_leaf(e) {
            let src = self.leaf(e);
            self.copy(dst, src);
            return;
        }
        let (ia, ib) = children(&self.facts, i);
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Add(..) if l.add(self, e, i, dst, height) => {}
            Expr::Add(a, b) => {
                // An operand's location is read just before the add, after
                // the other operand's code ran.
                let (x, y) = match (is_leaf(a), is_leaf(b)) {
                    (true, true) => (self.leaf(a), self.leaf(b)),
                    (false, true) => {
                        self.into(l, a, ia, Loc::Acc, height);
                        (Loc::Acc, self.leaf(b))
                    }
                    // A local read after `b` must not be stored to by `b`.
                    (true, false) if !matches!(**a, Expr::Get(_)) || !self.stores(ib) => {
                        self.into(l, b, ib, Loc::Acc, height);
                        (self.leaf(a), Loc::Acc)
                    }
                    _ => {
                        let t = self.temp(height);
                        self.into(l, a, ia, t, height + 1);
                        self.into(l, b, ib, Loc::Acc, height + 1);
                        (self.src(t), Loc::Acc)
                    }
                };
                let dst = self.write(dst);
                let at = self.emit(Instr::Add(dst, x, y));
                self.last_add = Some((at, dst, x, y));
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, height);
                self.scope.push(home);
                self.into(l, body, ib, dst, height);
                self.scope.pop();
            }
            Expr::Set(d, v) => {
                self.into(l, v, ia, self.local(*d), height);
                self.copy(dst, Loc::Const(0));
            }
            Expr::While(c, body) => {
                self.while_(l, c, body, ia, ib, height);
                self.copy(dst, Loc::Const(0));
            }
            Expr::Then(a, b) => {
                self.effect(l, a, ia, height);
                self.into(l, b, ib, dst, height);
            }
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => unreachable!("leaves are handled above"),
        }
    }

    /// Emits code for `e`, whose value nobody uses.
    fn effect<L: Lowering<Isa = I>>(&mut self, l: &L, e: &Expr, i: usize, height: usize) {
        if is_leaf(e) {
            return;
        }
        let (ia, ib) = children(&self.facts, i);
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            // Only the operands' effects remain, in order.
            Expr::Add(a, b) | Expr::Then(a, b) => {
                self.effect(l, a, ia, height);
                self.effect(l, b, ib, height);
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, height);
                self.scope.push(home);
                self.effect(l, body, ib, height);
                self.scope.pop();
            }
            Expr::Set(d, v) => self.into(l, v, ia, self.local(*d), height),
            Expr::While(c, body) => self.while_(l, c, body, ia, ib, height),
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => unreachable!("leaves are handled above"),
        }
    }

    /// `goto test; head: body; test: c; if c > 0 goto head`.
    fn while_<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        c: &Expr,
        body: &Expr,
        ic: usize,
        ib: usize,
        height: usize,
    ) {
        let entry = self.emit(Instr::Jump(usize::MAX));
        let head = self.label();
        self.effect(l, body, ib, height);
        let test = self.label();
        let cond = if is_leaf(c) {
            self.leaf(c)
        } else {
            self.into(l, c, ic, Loc::Acc, height);
            Loc::Acc
        };
        match l.test(self, cond, head, test) {
            Test::Fused => {}
            // The hook may have rewritten the body's last op: op `test` is
            // the plain test after it.
            Test::Plain | Test::FusedInBody => {
                self.emit(Instr::JumpIfPos(cond, head));
            }
        }
        // Patched last: a hook may have changed where op `test` starts.
        self.patch(entry, Instr::Jump(test));
    }

    /// The program, ending in `return`: a `Then`/`Let` spine's last value
    /// is returned from where it lives, without a copy.
    fn program<L: Lowering<Isa = I>>(&mut self, l: &L, e: &Expr, i: usize) {
        let (ia, ib) = children(&self.facts, i);
        match e {
            Expr::Then(a, b) => {
                self.effect(l, a, ia, 0);
                self.program(l, b, ib);
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, 0);
                self.scope.push(home);
                self.program(l, body, ib);
                self.scope.pop();
            }
            _ if is_leaf(e) => {
                let v = self.leaf(e);
                self.emit(Instr::Return(v));
            }
            _ => {
                self.into(l, e, i, Loc::Acc, 0);
                self.emit(Instr::Return(Loc::Acc));
            }
        }
    }
}

/// Whether `e` is read in place as an operand.
pub(crate) fn is_leaf(e: &Expr) -> bool {
    matches!(e, Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_))
}

/// The compiled program: a verified tape of instruction set `I` on backend
/// `B`, and the frame it runs in.
pub struct Code<I: Isa<Word = Word>, B: Backend>(Tape<I, B>);

/// Compiles `program` with hook `l` and verifies it for backend `B`.
pub(crate) fn compile<L: Lowering, B: Backend>(
    program: &Program,
    l: &L,
) -> Result<Code<L::Isa, B>, CompileError> {
    if program.node_count() >= Node::TOO_MANY {
        return Err(CompileError(format!(
            "programs of {} nodes or more are not supported",
            Node::TOO_MANY
        )));
    }
    let mut c = Compiler::<L::Isa>::new(program);
    for (k, arg) in c.facts.arg_homes.into_iter().enumerate() {
        if let Some(i) = arg {
            c.emit(Instr::Copy(Loc::Reg(k), Loc::Slot(i)));
        }
    }
    c.program(l, program.expr(), 0);
    let frame_len = c.temps_base + c.max_temps;
    let tape = Tape::new(c.code, frame_len, program.arg_count(), is_return::<L::Isa>)
        .map_err(CompileError)?;
    Ok(Code(tape))
}

/// Whether `k` is a `return` (of any location): the only op that stops.
fn is_return<I: Isa<Kind: From<Kind>>>(k: I::Kind) -> bool {
    (0..=CONST).any(|v| k == I::Kind::from(Kind::Return(v)))
}

impl<I: Isa<Word = Word>, B: Backend> Code<I, B> {
    /// Runs the tape.
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the `arg_count` the tape was built for.
    pub(crate) unsafe fn run(&self, args: &[i64]) -> i64 {
        let arg_count = self.0.arg_count();
        debug_assert!(args.len() >= arg_count);
        let mut frame = vec![0i64; self.0.frame_len()];
        // Arguments are the frame's first slots.
        frame[..arg_count].copy_from_slice(&args[..arg_count]);
        let ip = self.0.entry();
        // SAFETY: `ip` is the first op of a verified tape and the frame has
        // its `frame_len` slots, the first `arg_count` holding the
        // arguments: the handler contract. Every back-edge is a tail call,
        // so the chain returns only from `return`, with its value.
        let (_, value) = unsafe { ((*ip).handler.0)(ip, frame.as_mut_ptr(), 0, 0, 0, 0) };
        value
    }

    pub(crate) fn listing(&self) -> String {
        let (args, temps) = (self.0.arg_count(), self.0.frame_len());
        self.0.listing(&format!(
            "frame: {temps} slots ([0..{args}) arguments, then locals not in r0-r2, then temporaries)"
        ))
    }
}

threaded_engine! {
    RegisterContinuations = "register_continuations", Beyond, Code<RegIsa, Stable>, compile(|_| Plain);
    "register machine with threaded handlers: three-address ops, hot locals in handler arguments";
    conformance: tail_calling
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engines::threaded::Stable;

    pub(crate) fn listing<L: Lowering + Default>(src: &str) -> String {
        let p = crate::front::compile_source("t", src).unwrap();
        compile::<L, Stable>(&p, &L::default()).unwrap().listing()
    }

    #[test]
    fn ops_read_back_as_their_instructions() {
        use Instr::*;
        let all = [
            Add(Loc::Acc, Loc::Reg(2), Loc::Const(i64::MIN)),
            Add(Loc::Slot(7), Loc::Slot(3), Loc::Slot(9)),
            Copy(Loc::Reg(0), Loc::Const(-1)),
            Copy(Loc::Slot(1), Loc::Acc),
            Jump(6),
            JumpIfPos(Loc::Slot(4), 0),
            JumpIfPos(Loc::Const(3), 2),
            Return(Loc::Reg(1)),
        ];
        crate::engines::threaded::tests::reads_back::<RegIsa>(&all);
    }

    /// Verifies `code` as if the compiler had emitted it.
    pub(crate) fn verify<I: Isa<Word = Word, Kind: From<Kind>>>(
        code: &[I::Instr],
        frame_len: usize,
    ) -> Result<(), String> {
        let mut e = Emitter::<I>::with_capacity(code.len(), 3);
        for &i in code {
            e.emit(i);
        }
        for (at, &i) in code.iter().enumerate() {
            e.patch(at, i);
        }
        Tape::<I, Stable>::new(e, frame_len, 0, is_return::<I>).map(|_| ())
    }

    #[test]
    fn verify_rejects_every_operand_out_of_range() {
        use Instr::*;
        let ret = Return(Loc::Acc);
        let ok = [Jump(2), Add(Loc::Slot(9), Loc::Reg(2), Loc::Const(1)), ret];
        assert!(verify::<RegIsa>(&ok, 10).is_ok());
        for bad in [
            Add(Loc::Slot(10), Loc::Acc, Loc::Acc),
            Add(Loc::Acc, Loc::Reg(3), Loc::Acc),
            Add(Loc::Const(1), Loc::Acc, Loc::Acc),
            Copy(Loc::Acc, Loc::Slot(usize::MAX)),
            Jump(0),
            Jump(1),
            Jump(4),
            JumpIfPos(Loc::Acc, 2),
            Return(Loc::Slot(10)),
        ] {
            assert!(
                verify::<RegIsa>(&[Copy(Loc::Acc, Loc::Acc), bad, ret], 10).is_err(),
                "{bad}"
            );
        }
        assert!(
            verify::<RegIsa>(&[Copy(Loc::Acc, Loc::Acc)], 10).is_err(),
            "no return"
        );
    }

    #[test]
    fn hot_locals_and_arguments_get_the_registers() {
        // Four locals; the loop uses `c`, `d` and `arg(1)`, not `a` or `b`.
        let text = listing::<Plain>(
            "let a = 1; let b = 2; let c = 0; let d = arg(0); \
             while d { c = c + arg(1); d = d + -1 }; a + b + c",
        );
        // `c`, `d` and `arg(1)` are in registers, so the loop body reads
        // and writes registers only.
        let body: Vec<_> = text
            .lines()
            .skip_while(|l| !l.contains("goto"))
            .skip(1)
            .collect();
        assert!(
            body[0].ends_with("r1 = r1 + r2") && body[1].ends_with("r0 = r0 + -1"),
            "{text}"
        );
        assert!(
            text.contains("r2 = [1]"),
            "the hot argument is copied in first:\n{text}"
        );
    }

    #[test]
    fn a_slot_store_is_read_back_from_acc() {
        // Five locals: two of them live in slots.
        let text = listing::<Plain>(
            "let a = arg(0); let b = 1; let c = 2; let d = 3; let e = 4; \
             while a { a = a + -1; b = b + e; c = c + b; d = d + c; e = e + d }; a + b + c + d + e",
        );
        assert!(text.contains("acc +") || text.contains("+ acc"), "{text}");
    }
}
