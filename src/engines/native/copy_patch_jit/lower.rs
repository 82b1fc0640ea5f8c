//! The one pass: walks each body in evaluation order and copies, for each
//! node, the stencil for its operation and where its operands live.

use super::patch::{Fill, Label, Patcher, Stencil, Symbol, stencil};
use crate::front::ast::Expr;
use crate::front::program::{MAX_CALLS, MAX_PARAMS, Program};
use std::sync::LazyLock;

/// Slots `0..REGS` (locals by scope depth, then temporaries) live in the
/// stencils' register arguments `r0..r3`; the rest in the frame.
pub const REGS: usize = 4;
/// Frame words before the memory slots: calls left, argument pointer.
pub const HEADER: usize = 2;

/// Where an operand lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Opnd {
    Acc,
    Reg(usize),
    /// A memory slot, by its byte offset in the frame.
    Mem(i64),
    Imm(i64),
    /// A run argument, by its byte offset from the argument pointer.
    Arg(i64),
}

/// Destinations: `acc r0 r1 r2 r3 m`; sources add `i w a`.
const DSTS: [&str; 6] = ["acc", "r0", "r1", "r2", "r3", "m"];
const SRCS: [&str; 9] = ["acc", "r0", "r1", "r2", "r3", "m", "i", "w", "a"];

type Row = [&'static Stencil; SRCS.len()];

/// The stencil families, looked up by name once per process.
pub struct Stencils {
    mov: [Row; DSTS.len()],
    add: [Row; DSTS.len()],
    sub: Row,
    lt: Row,
    rsub: Row,
    rlt: Row,
    loop_: [&'static Stencil; DSTS.len()],
    skip: [&'static Stencil; DSTS.len()],
    /// Branches on `x < y`, by `x`'s place (as a destination's) and `y`'s.
    loop_lt: [Row; DSTS.len()],
    skip_lt: [Row; DSTS.len()],
    jump: &'static Stencil,
    ret: &'static Stencil,
    fail: &'static Stencil,
    /// By arity: `call_N`, and `call_N_a`, which also passes the argument
    /// pointer (when some function reads `arg(i)`).
    call: [&'static Stencil; MAX_PARAMS + 1],
    call_a: [&'static Stencil; MAX_PARAMS + 1],
}

fn named(name: String) -> &'static Stencil {
    stencil(&name).unwrap_or_else(|| panic!("no stencil `{name}` was built"))
}

fn row(op: &str, dst: &str) -> Row {
    SRCS.map(|src| named(format!("{op}_{dst}_{src}")))
}

/// Every stencil the pass copies (panics if the build made none of one).
pub static STENCILS: LazyLock<Stencils> = LazyLock::new(|| Stencils {
    mov: DSTS.map(|d| row("mov", d)),
    add: DSTS.map(|d| row("add", d)),
    sub: row("sub", "acc"),
    lt: row("lt", "acc"),
    rsub: row("rsub", "acc"),
    rlt: row("rlt", "acc"),
    loop_: DSTS.map(|c| named(format!("loop_{c}"))),
    skip: DSTS.map(|c| named(format!("skip_{c}"))),
    loop_lt: DSTS.map(|x| row("loop_lt", x)),
    skip_lt: DSTS.map(|x| row("skip_lt", x)),
    jump: named("jump".into()),
    ret: named("ret".into()),
    fail: named("fail".into()),
    call: std::array::from_fn(|n| named(format!("call_{n}"))),
    call_a: std::array::from_fn(|n| named(format!("call_{n}_a"))),
});

/// What the pass produces besides the code (which is in the patcher).
pub struct Lowered {
    /// Main's frame in words, and every function's (the largest one's).
    pub main_words: usize,
    pub function_words: usize,
    /// What the frame stack's start must be a multiple of (0: no calls).
    pub align: usize,
}

/// Why a program cannot be compiled: an offset beyond a 32-bit field.
pub struct TooFar(pub &'static str);

/// Copies every function, then main, then the failure stub, into `p`
/// (reset for this program). The code only reads arguments below
/// `program.arg_count()` (through the argument pointer in the frame) and
/// frame words below each body's frame size.
pub fn lower(p: &mut Patcher, program: &Program) -> Result<Lowered, TooFar> {
    let t: &Stencils = &STENCILS;
    let functions = program.functions();
    p.reset(functions.len(), program.node_count());
    let mut function_words = 0;
    let facts = program.function_facts();
    // A function's frame needs the argument pointer only if some function
    // reads an argument (one walk over the functions, not main).
    let calls = if functions.iter().any(|f| reads_arguments(&f.body)) {
        &t.call_a
    } else {
        &t.call
    };
    for (f, function) in functions.iter().enumerate() {
        let (params, locals) = (function.arity(), facts[f].max_locals);
        let words = body(p, t, calls, f, &function.body, params, locals)?;
        function_words = function_words.max(words);
    }
    let main = functions.len();
    let main_words = body(p, t, calls, main, program.expr(), 0, program.max_locals())?;
    p.fail = p.code.len();
    p.copy(t.fail, &Fill::default());
    // Every function's frame takes the largest one's size, so the frame of
    // the `k`-th active call starts at `main + (k - 1) * function` in the
    // frame stack, whose start is a multiple of `align`: `call_N` checks
    // the depth with the callee's offset alone.
    let mut align = 0;
    if main > 0 {
        let function_bytes = function_words * 8;
        p.frames[..main].fill(function_bytes as i64);
        let stack = main_words * 8 + MAX_CALLS * function_bytes;
        // Past the last frame's end too: the call that fails has its
        // offset there, which `& MASK` must keep.
        align = (stack + 1).next_power_of_two();
        let too_far = TooFar("a frame stack beyond 2 GiB");
        p.mask = i32::try_from(align - 1).map_err(|_| too_far)?.into();
        p.limit = (stack - function_bytes) as i64;
    }
    p.finish();
    Ok(Lowered {
        main_words,
        function_words,
        align,
    })
}

/// Copies one body (function `f`, or main when `f` is the last index),
/// whose first `params` locals are in scope from the start; returns its
/// frame size in words.
fn body(
    p: &mut Patcher,
    t: &'static Stencils,
    calls: &'static [&'static Stencil; MAX_PARAMS + 1],
    f: usize,
    e: &Expr,
    params: usize,
    locals: usize,
) -> Result<usize, TooFar> {
    let main = p.entries.len() - 1;
    p.entries[f] = p.code.len();
    p.function = f;
    let mut l = Lower {
        p,
        t,
        calls,
        scope: params,
        locals,
        temps: 0,
        held: 0,
        slots: locals,
        too_far: false,
        registers: registers(e, params, locals, f == main),
    };
    let v = l.value(e);
    l.mov(Opnd::Acc, v);
    l.copy(l.t.ret, &Fill::default());
    if l.too_far {
        return Err(TooFar("an argument index beyond a 32-bit offset"));
    }
    let words = HEADER + l.slots.saturating_sub(REGS);
    l.p.frames[f] = (words * 8) as i64;
    Ok(words)
}

struct Lower<'p> {
    p: &'p mut Patcher,
    t: &'static Stencils,
    /// The call stencils this program uses (`call_N` or `call_N_a`).
    calls: &'static [&'static Stencil; MAX_PARAMS + 1],
    /// Locals in scope: the next `Let` binds slot `scope`.
    scope: usize,
    /// The body's most locals: temporaries start at this slot.
    locals: usize,
    temps: usize,
    /// Which temporaries (by slot, the first 64) hold a value now: a call
    /// saves those that live in registers.
    held: u64,
    /// One past the highest slot used.
    slots: usize,
    /// An argument index beyond a 32-bit offset was met.
    too_far: bool,
    /// The slots in `r0..r3`.
    registers: Registers,
}

/// Which four slots live in `r0..r3`, in increasing order (the register
/// of the `k`-th is `rk`); every other slot is a memory slot, in slot
/// order. [`BY_DEPTH`] everywhere but in a main with more locals than
/// registers (see [`registers`]).
type Registers = [usize; REGS];
const BY_DEPTH: Registers = [0, 1, 2, 3];

/// Where slot `s` lives when `registers` hold the register slots.
fn place(registers: &Registers, s: usize) -> Opnd {
    let mut below = 0;
    for (k, &r) in registers.iter().enumerate() {
        if r == s {
            return Opnd::Reg(k);
        }
        below += usize::from(r < s);
    }
    Opnd::Mem(((HEADER + s - below) * 8) as i64)
}

/// How often a local is used, and how many loops enclosed its binding.
#[derive(Clone, Copy, Default)]
struct Weight {
    uses: u64,
    bound: u32,
}

/// The register slots of a body with `locals` locals. By scope depth in a
/// function, whose first parameters arrive in the registers; in main,
/// when it has more locals than registers, the four slots used most
/// often, each use weighted by 16 per enclosing loop and by 4 when the
/// local outlives the loop. One walk over the tree into a table on the
/// native stack (on the heap only past `INLINE` locals), and a top-four
/// pick: no sort, no allocation.
fn registers(e: &Expr, params: usize, locals: usize, main: bool) -> Registers {
    const INLINE: usize = 64;
    if !main || locals <= REGS {
        return BY_DEPTH;
    }
    let mut inline = [Weight::default(); INLINE];
    let mut heap = Vec::new();
    let weights = if locals <= INLINE {
        &mut inline[..locals]
    } else {
        heap.resize(locals, Weight::default());
        &mut heap[..]
    };
    weigh(e, params, 0, weights);
    // Heaviest first; the lower slot first among equals.
    let mut best: [Option<(u64, usize)>; REGS] = [None; REGS];
    for (s, w) in weights.iter().enumerate() {
        let mut at = REGS;
        while at > 0 && best[at - 1].is_none_or(|(uses, _)| w.uses > uses) {
            at -= 1;
        }
        if at < REGS {
            best.copy_within(at..REGS - 1, at + 1);
            best[at] = Some((w.uses, s));
        }
    }
    // `locals > REGS`: every place was filled.
    let mut chosen = best.map(|b| b.map_or(0, |(_, s)| s));
    chosen.sort_unstable();
    chosen
}

/// Adds `e`'s uses of locals to `weights`; `scope` locals are in scope,
/// inside `loops` loops. It loops down the last child (the chains of
/// `Let` and `Then` a body is made of) and recurses into the others, so
/// its depth is at most the tree's.
fn weigh(mut e: &Expr, mut scope: usize, mut loops: u32, weights: &mut [Weight]) {
    loop {
        match e {
            Expr::Litr(_) | Expr::Arg(_) => return,
            Expr::Get(d) => return count(weights, scope - 1 - d, loops),
            Expr::Set(d, v) => {
                count(weights, scope - 1 - d, loops);
                e = v;
            }
            Expr::Let(init, body) => {
                weigh(init, scope, loops, weights);
                weights[scope].bound = loops;
                scope += 1;
                e = body;
            }
            Expr::While(c, body) => {
                loops += 1;
                weigh(c, scope, loops, weights);
                e = body;
            }
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) | Expr::Then(a, b) => {
                weigh(a, scope, loops, weights);
                e = b;
            }
            Expr::If(c, then, else_) => {
                weigh(c, scope, loops, weights);
                weigh(then, scope, loops, weights);
                e = else_;
            }
            Expr::Call(_, args) => {
                for a in args.iter() {
                    weigh(a, scope, loops, weights);
                }
                return;
            }
        }
    }
}

/// One use of `slot` inside `loops` loops. A use inside a loop that its
/// local outlives carries the value from one iteration to the next: in
/// memory, that is a store and a load on the loop's critical path. It
/// counts four times.
fn count(weights: &mut [Weight], slot: usize, loops: u32) {
    let w = &mut weights[slot];
    let carried = if loops > w.bound { 4 } else { 1 };
    w.uses += carried << (4 * loops.min(12));
}

fn dst_index(o: Opnd) -> usize {
    match o {
        Opnd::Acc => 0,
        Opnd::Reg(k) => 1 + k,
        Opnd::Mem(_) => 5,
        Opnd::Imm(_) | Opnd::Arg(_) => unreachable!("not a destination"),
    }
}

impl Lower<'_> {
    /// Where slot `s` lives (a local's, or a temporary's: temporaries come
    /// after every local, past the registers when main chose them).
    fn slot(&self, s: usize) -> Opnd {
        place(&self.registers, s)
    }

    fn copy(&mut self, s: &'static Stencil, fill: &Fill) {
        self.p.copy(s, fill);
    }

    /// Local `Get(d)`: validation guarantees `d < scope`.
    fn local(&self, d: usize) -> Opnd {
        self.slot(self.scope - 1 - d)
    }

    /// A leaf's operand: reading it has no effect, so it can be read late.
    fn leaf(&mut self, e: &Expr) -> Option<Opnd> {
        match *e {
            Expr::Litr(n) => Some(Opnd::Imm(n)),
            Expr::Arg(i) => {
                let offset = i.checked_mul(8).and_then(|o| i32::try_from(o).ok());
                // No slice of 2^28 arguments runs: refuse to compile.
                self.too_far |= offset.is_none();
                Some(Opnd::Arg(offset.unwrap_or(0) as i64))
            }
            Expr::Get(d) => Some(self.local(d)),
            _ => None,
        }
    }

    /// `dst = dst OP src` from `rows` (`dst` the accumulator, a register
    /// or a memory slot), choosing the literal form that holds `src`.
    fn op(&mut self, rows: &[Row], dst: Opnd, src: Opnd) {
        self.op_filled(rows, dst, src, Fill::default());
    }

    /// `op` with the other holes (a branch's target) from `fill`.
    fn op_filled(&mut self, rows: &[Row], dst: Opnd, src: Opnd, mut fill: Fill) {
        let row = &rows[dst_index(dst)];
        if let Opnd::Mem(o) = dst {
            fill.dst = o;
        }
        let s = match src {
            Opnd::Acc => row[0],
            Opnd::Reg(k) => row[1 + k],
            Opnd::Mem(o) => {
                fill.src = o;
                row[5]
            }
            Opnd::Imm(n) => {
                fill.imm = n;
                if row[6].holds(Symbol::Imm, n) {
                    row[6]
                } else {
                    row[7]
                }
            }
            Opnd::Arg(o) => {
                fill.arg = o;
                row[8]
            }
        };
        self.copy(s, &fill);
    }

    fn mov(&mut self, dst: Opnd, src: Opnd) {
        if dst != src {
            let t = self.t;
            self.op(&t.mov, dst, src);
        }
    }

    fn add(&mut self, dst: Opnd, src: Opnd) {
        let t = self.t;
        self.op(&t.add, dst, src);
    }

    /// The accumulator `OP= src` (one row of `op`'s table).
    fn acc_op(&mut self, row: &'static Row, src: Opnd) {
        self.op(std::slice::from_ref(row), Opnd::Acc, src);
    }

    /// Gives back the last temporary taken.
    fn release(&mut self) {
        self.temps -= 1;
        let slot = self.locals + self.temps;
        if slot < 64 {
            self.held &= !(1 << slot);
        }
    }

    /// A fresh temporary slot (the caller gives it back).
    fn temp(&mut self) -> Opnd {
        let t = self.slot(self.locals + self.temps);
        self.temps += 1;
        self.slots = self.slots.max(self.locals + self.temps);
        t
    }

    /// Copies `e` and returns where its value is: a leaf's own operand
    /// (read it before anything else is copied), `Imm(0)` for `Set` and
    /// `While`, otherwise the accumulator. Recursion depth is the tree's.
    fn value(&mut self, e: &Expr) -> Opnd {
        if let Some(o) = self.leaf(e) {
            return o;
        }
        match e {
            Expr::Add(a, b) => {
                if let Some(b) = self.leaf(b) {
                    let a = self.value(a);
                    self.mov(Opnd::Acc, a);
                    self.add(Opnd::Acc, b);
                } else if let Expr::Litr(_) | Expr::Arg(_) = **a {
                    // Constant while `b` runs, and `+` commutes.
                    let a = self.leaf(a).expect("a leaf");
                    let b = self.value(b);
                    self.mov(Opnd::Acc, b);
                    self.add(Opnd::Acc, a);
                } else {
                    let t = self.binary_in_temp(a, b);
                    self.add(Opnd::Acc, t);
                    self.release();
                }
                Opnd::Acc
            }
            Expr::Sub(a, b) => {
                if let Expr::Litr(n) = **b {
                    // `a - n` is `a + -n` (both wrap): the add stencils take it.
                    let a = self.value(a);
                    self.mov(Opnd::Acc, a);
                    self.add(Opnd::Acc, Opnd::Imm(n.wrapping_neg()));
                } else {
                    let t = self.t;
                    self.ordered(a, b, &t.sub, &t.rsub);
                }
                Opnd::Acc
            }
            Expr::Lt(a, b) => {
                let t = self.t;
                self.ordered(a, b, &t.lt, &t.rlt);
                Opnd::Acc
            }
            Expr::Let(init, body) => {
                self.bind(init);
                let v = self.value(body);
                self.scope -= 1;
                v
            }
            Expr::Set(d, v) => {
                self.store(*d, v);
                Opnd::Imm(0)
            }
            Expr::While(c, body) => {
                self.while_(c, body);
                Opnd::Imm(0)
            }
            Expr::Then(a, b) => {
                self.effect(a);
                self.value(b)
            }
            Expr::If(c, then, else_) => {
                self.if_(
                    c,
                    |l| {
                        let v = l.value(then);
                        l.mov(Opnd::Acc, v);
                    },
                    |l| {
                        let v = l.value(else_);
                        l.mov(Opnd::Acc, v);
                    },
                );
                Opnd::Acc
            }
            Expr::Call(f, args) => {
                self.call(*f, args, None);
                Opnd::Acc
            }
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => unreachable!("leaves return above"),
        }
    }

    /// `a` into a fresh temporary, then `b` into the accumulator; returns
    /// the temporary (the caller gives it back). The temporary keeps `a`'s
    /// value while `b` runs, which may store to a local `a` read.
    fn binary_in_temp(&mut self, a: &Expr, b: &Expr) -> Opnd {
        let slot = self.locals + self.temps;
        let t = self.temp();
        let a = self.value(a);
        self.mov(t, a);
        if slot < 64 {
            self.held |= 1 << slot;
        }
        let b = self.value(b);
        self.mov(Opnd::Acc, b);
        t
    }

    /// `a OP b` for an operation that does not commute: `op` when `b` is
    /// a leaf (`acc = a; acc OP= b`), otherwise `reversed` (`acc = b;
    /// acc = a OP acc`, `a` waiting where it lives or in a temporary).
    fn ordered(&mut self, a: &Expr, b: &Expr, op: &'static Row, reversed: &'static Row) {
        if let Some(b) = self.leaf(b) {
            let a = self.value(a);
            self.mov(Opnd::Acc, a);
            self.acc_op(op, b);
        } else if let Expr::Litr(_) | Expr::Arg(_) = *a {
            let a = self.leaf(a).expect("a leaf");
            let b = self.value(b);
            self.mov(Opnd::Acc, b);
            self.acc_op(reversed, a);
        } else {
            let t = self.binary_in_temp(a, b);
            self.acc_op(reversed, t);
            self.release();
        }
    }

    /// Copies `e` for its effects only.
    fn effect(&mut self, e: &Expr) {
        match e {
            Expr::Let(init, body) => {
                self.bind(init);
                self.effect(body);
                self.scope -= 1;
            }
            Expr::Set(d, v) => self.store(*d, v),
            Expr::While(c, body) => self.while_(c, body),
            Expr::If(c, then, else_) => {
                self.if_(c, |l| l.effect(then), |l| l.effect(else_));
            }
            Expr::Call(f, args) => self.call(*f, args, None),
            // Leaves and operators: only their operands' effects remain.
            _ => {
                for c in e.children() {
                    self.effect(c);
                }
            }
        }
    }

    /// `Let`'s first half: the initialiser into the next local's slot,
    /// which then comes into scope (the caller ends the scope).
    fn bind(&mut self, init: &Expr) {
        let v = self.value(init);
        let at = self.slot(self.scope);
        self.mov(at, v);
        self.scope += 1;
    }

    /// `Set(d, v)`. When `v` adds a leaf to local `d` itself, or subtracts
    /// a literal from it, the result is made in place (`add_r1_i`); both
    /// reads happen at that one stencil, as they would in order. When `v`
    /// is a call, the local is not saved around it.
    fn store(&mut self, d: usize, v: &Expr) {
        let dst = self.local(d);
        if let Expr::Add(a, b) = v
            && let (Some(a), Some(b)) = (self.leaf(a), self.leaf(b))
            && (a == dst || b == dst)
        {
            self.add(dst, if a == dst { b } else { a });
            return;
        }
        if let Expr::Sub(a, b) = v
            && let Expr::Litr(n) = **b
            && self.leaf(a) == Some(dst)
        {
            self.add(dst, Opnd::Imm(n.wrapping_neg()));
            return;
        }
        if let Expr::Call(f, args) = v {
            // The local's old value dies with the call: not saved around it.
            self.call(*f, args, Some(dst));
            self.mov(dst, Opnd::Acc);
            return;
        }
        let v = self.value(v);
        self.mov(dst, v);
    }

    /// `jump test; top: body; test: loop_c top`.
    fn while_(&mut self, c: &Expr, body: &Expr) {
        let top = self.p.label();
        let test = self.p.label();
        self.jump(test);
        self.p.bind(top);
        self.effect(body);
        self.p.bind(test);
        let t = self.t;
        self.branch(c, &t.loop_, &t.loop_lt, top);
    }

    /// `skip_c else; then; jump end; else: else_; end:`.
    fn if_(&mut self, c: &Expr, then: impl FnOnce(&mut Self), else_: impl FnOnce(&mut Self)) {
        let otherwise = self.p.label();
        let end = self.p.label();
        let t = self.t;
        self.branch(c, &t.skip, &t.skip_lt, otherwise);
        then(self);
        self.jump(end);
        self.p.bind(otherwise);
        else_(self);
        self.p.bind(end);
    }

    fn jump(&mut self, to: Label) {
        let fill = Fill {
            target: to,
            ..Fill::default()
        };
        self.copy(self.t.jump, &fill);
    }

    /// Copies condition `c` and a conditional branch on it to `to`. A `<`
    /// whose right operand is a leaf branches on the comparison itself
    /// (`compared`, by both operands' places); any other condition is a
    /// value, and `family` branches on it by its place.
    fn branch(
        &mut self,
        c: &Expr,
        family: &[&'static Stencil; DSTS.len()],
        compared: &'static [Row; DSTS.len()],
        to: Label,
    ) {
        let fill = Fill {
            target: to,
            ..Fill::default()
        };
        if let Expr::Lt(a, b) = c
            && let Some(b) = self.leaf(b)
        {
            let a = match self.value(a) {
                a @ (Opnd::Imm(_) | Opnd::Arg(_)) => {
                    self.mov(Opnd::Acc, a);
                    Opnd::Acc
                }
                a => a,
            };
            self.op_filled(compared, a, b, fill);
            return;
        }
        let c = self.value(c);
        let c = match c {
            Opnd::Imm(_) | Opnd::Arg(_) => {
                self.mov(Opnd::Acc, c);
                Opnd::Acc
            }
            c => c,
        };
        let mut fill = fill;
        if let Opnd::Mem(o) = c {
            fill.src = o;
        }
        self.copy(family[dst_index(c)], &fill);
    }

    /// The arguments, left to right, into consecutive memory slots past
    /// everything in use (the last into the accumulator), except those of
    /// the first four that sit in their parameter's register already (a
    /// local read as it is, with nothing after it that could store to a
    /// local). Then the register slots that hold a value (the locals in
    /// scope, the temporaries holding an operand) go to the memory slots after the
    /// arguments, the first four arguments to the registers, `call_N`
    /// passes them and makes the call, and those registers come back.
    /// The call itself keeps nothing but the frame. `dies` is a local
    /// the call's value will overwrite: its register is not saved.
    fn call(&mut self, f: usize, args: &[Expr], dies: Option<Opnd>) {
        let saved = self.temps;
        let first = (self.locals + self.temps).max(REGS);
        let n = args.len();
        self.temps = first + n - self.locals;
        self.slots = self.slots.max(self.locals + self.temps);
        let mut in_place = [false; REGS];
        for (k, arg) in args.iter().enumerate().take(REGS) {
            in_place[k] = matches!(*arg, Expr::Get(d) if self.local(d) == Opnd::Reg(k))
                && args[k + 1..].iter().all(reads_only);
        }
        // Where argument `k` waits for the call.
        let waits = |l: &Self, k: usize| {
            if k + 1 == n {
                Opnd::Acc
            } else {
                l.slot(first + k)
            }
        };
        for (k, arg) in args.iter().enumerate() {
            if k < REGS && in_place[k] {
                continue;
            }
            let v = self.value(arg);
            let at = waits(self, k);
            self.mov(at, v);
        }
        let (scope, held, registers) = (self.scope, self.held, self.registers);
        let live = |k: usize| {
            let s = registers[k];
            (s < scope || (s < 64 && held >> s & 1 == 1)) && dies != Some(Opnd::Reg(k))
        };
        let mut spills = 0;
        for k in 0..REGS {
            if live(k) {
                let at = self.slot(first + n + spills);
                self.mov(at, Opnd::Reg(k));
                spills += 1;
            }
        }
        self.slots = self.slots.max(first + n + spills);
        for (k, &in_place) in in_place.iter().enumerate().take(n) {
            if !in_place {
                let from = waits(self, k);
                self.mov(Opnd::Reg(k), from);
            }
        }
        let Opnd::Mem(at) = self.slot(first) else {
            unreachable!("`first` is past the registers")
        };
        let fill = Fill {
            args: at,
            callee: f,
            ..Fill::default()
        };
        self.copy(self.calls[n], &fill);
        let mut spills = 0;
        for k in 0..REGS {
            if live(k) {
                let at = self.slot(first + n + spills);
                self.mov(Opnd::Reg(k), at);
                spills += 1;
            }
        }
        self.temps = saved;
    }
}

/// Whether `e` reads a run argument. It loops down the last child and
/// recurses into the others, so its depth is at most the tree's.
fn reads_arguments(mut e: &Expr) -> bool {
    loop {
        match e {
            Expr::Arg(_) => return true,
            Expr::Litr(_) | Expr::Get(_) => return false,
            Expr::Set(_, v) => e = v,
            Expr::Add(a, b)
            | Expr::Sub(a, b)
            | Expr::Lt(a, b)
            | Expr::Let(a, b)
            | Expr::While(a, b)
            | Expr::Then(a, b) => {
                if reads_arguments(a) {
                    return true;
                }
                e = b;
            }
            Expr::If(c, then, else_) => {
                if reads_arguments(c) || reads_arguments(then) {
                    return true;
                }
                e = else_;
            }
            Expr::Call(_, args) => return args.iter().any(reads_arguments),
        }
    }
}

/// Whether copying `e` writes no register slot and no local: a leaf, or
/// an operator on two leaves (a bounded look, so a call's arguments are
/// checked in constant time each).
fn reads_only(e: &Expr) -> bool {
    let leaf = |e: &Expr| matches!(e, Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_));
    match e {
        Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => leaf(a) && leaf(b),
        e => leaf(e),
    }
}
