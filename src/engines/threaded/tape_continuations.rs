//! `tape_continuations` — direct-threaded code: every op on the tape calls
//! the next op itself, with an accumulator and two local registers carried
//! in handler arguments.
//!
//! **Compile** lowers the tree straight onto a tape of the threaded-code
//! core ([`crate::engines::threaded`]): each op is its handler's address and
//! one operand word (16 bytes), with its kind kept beside it for the
//! listing. The instruction set is the one list [`TapeIsa`]; the verifier
//! then hands every op its handler from the check of its own kind and
//! operand. The compiler takes a lowering hook (`Lowering`) that sees
//! every node first, which is how `tape_continuations_fused` adds its
//! superinstructions without this module knowing them.
//!
//! **Calling convention** (six scalar arguments, kept in registers by the
//! x86-64 and AArch64 ABIs):
//!
//! | arg | meaning |
//! |---|---|
//! | `ip` | this op on the tape; its operand is the word after the handler |
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
//! **Control**: every handler ends by calling the next op in tail position,
//! which LLVM compiles to a jump from opt-level 1 on; forward jumps
//! (`jump_if_not_pos` to the loop exit) are tail calls too. The backward
//! edges, `loop` and `loop_if_pos` (loops are rotated so the condition is
//! tested at the bottom), instead store `r0`/`r1` in the frame and *return*
//! the loop head to the driver (`Code::run`), which reloads them and calls
//! again. So a chain of calls only ever moves forward: its depth is bounded
//! by the tape length even where tail calls are not optimised (opt-level 0),
//! and never by the number of iterations. The same handlers built for the
//! `become` backend are the `tail_calls` engine, whose back-edges are jumps.
//!
//! **Unsafe** code rests on the verifier: handlers read frame slots,
//! arguments and the next op unchecked because the verifier checked them.
//!
//! Trade-off: the cheapest dispatch of the original techniques (one indirect
//! jump per node, operands next to the handler, the hot locals never touch
//! memory) for a compiler with an allocator and unsafe handlers. Without
//! superinstructions, `a + b` still costs two dispatches of its own (`push`,
//! `add`) beside its operands'.

use crate::engine::CompileError;
use crate::engines::threaded::{
    ArgIndex, Backend, Backward, Emitter, Forward, Isa, Lit, Reg, Slot, Stable, Tape, convention,
    isa, target, threaded_engine, word, writes_through_emitter,
};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// How many innermost locals live in handler arguments. Two, because the
/// calling convention has six register arguments and `ip`, `fp`, `args` and
/// `acc` take the other four; a seventh argument would go to the stack and
/// stop the tail calls from being plain jumps.
pub(crate) const REGS: usize = 2;

/// Frame slots `0..REGS` hold `r0`, `r1` while the driver is between calls.
pub(crate) const SAVE_BASE: usize = 0;
/// Home slots of locals start here, indexed by scope level.
const LOCALS_BASE: usize = SAVE_BASE + REGS;

convention!(Word, Handler, (fp: *mut i64, args: *const i64, acc: i64, r0: i64, r1: i64));

isa! {
    /// The tape's instruction set: every op is a handler and one word.
    pub isa TapeIsa { word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 2 }
    /// `acc = n`
    Lit(n: i64 as Lit) "lit {n}" => lit;
    /// `acc = args[i]`
    Arg(i: usize as ArgIndex) "arg {i}" => arg;
    /// `acc = r[k]`
    GetReg(k: usize as Reg) "get r{k}" => get_reg<k in [0, 1]>;
    /// `acc = frame[slot]` (a spilled local)
    GetSlot(s: usize as Slot) "get [{s}]" => get_slot;
    /// `r[k] = acc`
    SetReg(k: usize as Reg) "set r{k}" => set_reg<k in [0, 1]>;
    /// `frame[slot] = acc` (a spilled local)
    SetSlot(s: usize as Slot) "set [{s}]" => set_slot;
    /// `frame[slot] = acc` (save an `Add`'s left operand)
    Push(s: usize as Slot) "push [{s}]" => set_slot;
    /// `acc = frame[slot] + acc` (wrapping)
    AddPop(s: usize as Slot) "add [{s}]" => add_pop;
    /// `r[k] = acc`: a new local whose register had no owner
    Bind(k: usize as Reg) "bind r{k}" => set_reg<k in [0, 1]>;
    /// `frame[slot] = r[k]; r[k] = acc`: a new local evicts an outer one
    BindSpill(k: usize as Reg, s: usize as Slot) "bind r{k} spill [{s}]" => bind_spill<k in [0, 1]>;
    /// `r[k] = frame[slot]`: the scope ended, the evicted local comes back
    Unbind(k: usize as Reg, s: usize as Slot) "unbind r{k} reload [{s}]" => unbind<k in [0, 1]>;
    /// if `acc <= 0` continue at the target (forward)
    JumpIfNotPos(t: usize as Forward) "jump_if_not_pos @{t}" => jump_if_not_pos;
    /// back-edge (to the driver on the stable backend)
    Loop(t: usize as Backward) "loop @{t}" => loop_back;
    /// back-edge if `acc > 0`, else continue with the next op
    LoopIfPos(t: usize as Backward) "loop_if_pos @{t}" => loop_if_pos;
    /// the program's value is `acc`
    Halt() "halt" => halt;
}

/// Register `K`'s value.
#[inline(always)]
pub(crate) fn get<const K: u8>(r0: i64, r1: i64) -> i64 {
    if K == 0 { r0 } else { r1 }
}

/// Register `K`, to write.
#[inline(always)]
pub(crate) fn reg_mut<'a, const K: u8>(r0: &'a mut i64, r1: &'a mut i64) -> &'a mut i64 {
    if K == 0 { r0 } else { r1 }
}

/// Frame slot `s`, which the verifier checked for the op being run.
macro_rules! slot {
    ($fp:expr, $s:expr) => {{
        let s = $s as usize;
        // SAFETY: the verifier checked this op's slot operand is below the
        // frame's `frame_len` slots, and by the handler contract `fp` is
        // such a frame.
        unsafe { &mut *$fp.add(s) }
    }};
}
pub(crate) use slot;

/// Argument `i`, which the verifier checked for the op being run.
macro_rules! argument {
    ($args:expr, $i:expr) => {{
        let i = $i as usize;
        // SAFETY: the verifier checked this op's argument index is below the
        // tape's `arg_count`, and by the handler contract `args` holds that
        // many values.
        unsafe { *$args.add(i) }
    }};
}
pub(crate) use argument;

/// Writes handlers with this family's calling convention (this module's
/// and `tape_continuations_fused`'s). The invocation names the state, so
/// that the handler bodies it also writes can use those names.
macro_rules! tape_handlers {
    (state($fp:ident, $args:ident, $acc:ident, $r0:ident, $r1:ident); $($body:tt)*) => {
        $crate::engines::threaded::handlers! {
            word: $crate::engines::threaded::tape_continuations::Word,
            state: ($fp: *mut i64, $args: *const i64, $acc: i64, $r0: i64, $r1: i64),
            // The stable back-edge saves the registers and returns to `run`.
            park: {
                // SAFETY: `Code::new` checked the frame has the save slots.
                unsafe {
                    *$fp.add($crate::engines::threaded::tape_continuations::SAVE_BASE) = $r0;
                    *$fp.add($crate::engines::threaded::tape_continuations::SAVE_BASE + 1) = $r1;
                }
            };
            $($body)*
        }
    };
}
pub(crate) use tape_handlers;

tape_handlers! {
    state(fp, args, acc, r0, r1);
    fn lit(ip, len = 2) {
        acc = word!(ip, 0);
        Flow::Next
    }
    fn arg(ip, len = 2) {
        acc = argument!(args, word!(ip, 0));
        Flow::Next
    }
    fn get_reg<const K: u8>(ip, len = 2) {
        acc = get::<K>(r0, r1);
        Flow::Next
    }
    fn get_slot(ip, len = 2) {
        acc = *slot!(fp, word!(ip, 0));
        Flow::Next
    }
    fn set_reg<const K: u8>(ip, len = 2) {
        *reg_mut::<K>(&mut r0, &mut r1) = acc;
        Flow::Next
    }
    fn set_slot(ip, len = 2) {
        *slot!(fp, word!(ip, 0)) = acc;
        Flow::Next
    }
    fn add_pop(ip, len = 2) {
        acc = slot!(fp, word!(ip, 0)).wrapping_add(acc);
        Flow::Next
    }
    fn bind_spill<const K: u8>(ip, len = 2) {
        let r = reg_mut::<K>(&mut r0, &mut r1);
        *slot!(fp, word!(ip, 0)) = *r;
        *r = acc;
        Flow::Next
    }
    fn unbind<const K: u8>(ip, len = 2) {
        *reg_mut::<K>(&mut r0, &mut r1) = *slot!(fp, word!(ip, 0));
        Flow::Next
    }
    fn jump_if_not_pos(ip, len = 2) {
        if acc > 0 { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn loop_back(ip, len = 2) {
        Flow::Back(target!(ip, 0))
    }
    fn loop_if_pos(ip, len = 2) {
        if acc > 0 { Flow::Back(target!(ip, 0)) } else { Flow::Next }
    }
    fn halt(ip, len = 2) {
        Flow::Halt(acc)
    }
}

/// The compiled program: a verified tape of instruction set `I` (the plain
/// set or a fused one over the same convention) on backend `B`.
pub struct Code<I: Isa<Word = Word>, B: Backend>(Tape<I, B>);

impl<I: Isa<Word = Word, Kind: From<Kind>>, B: Backend> Code<I, B> {
    /// Verifies and threads what a compiler emitted.
    pub(crate) fn new(c: Compiler<I>, arg_count: usize) -> Result<Self, CompileError> {
        let frame_len = c.temp_base + c.max_temps;
        if frame_len < LOCALS_BASE {
            return Err(CompileError(
                "the frame has no room for the saved registers".into(),
            ));
        }
        let tape = Tape::new(c.code, frame_len, arg_count, |k| {
            k == I::Kind::from(Kind::Halt())
        })
        .map_err(CompileError)?;
        Ok(Code(tape))
    }

    /// Runs the tape: the driver that stable back-edges return to.
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the `arg_count` the tape was built for.
    pub(crate) unsafe fn run(&self, args: &[i64]) -> i64 {
        debug_assert!(args.len() >= self.0.arg_count());
        let mut frame = vec![0i64; self.0.frame_len()];
        let fp = frame.as_mut_ptr();
        let mut ip = self.0.entry();
        let (mut r0, mut r1) = (0, 0);
        loop {
            // SAFETY: `ip` is the tape's first op or a back-edge target
            // inside it; the tape passed the verifier; `fp` has `frame_len`
            // slots; and the caller guarantees `args` holds `arg_count`
            // values. This is the handler contract.
            let (next, value) = unsafe { ((*ip).handler.0)(ip, fp, args.as_ptr(), 0, r0, r1) };
            if next.is_null() {
                return value;
            }
            ip = next;
            // SAFETY: the save slots are inside the frame (checked in `new`).
            unsafe {
                r0 = *fp.add(SAVE_BASE);
                r1 = *fp.add(SAVE_BASE + 1);
            }
        }
    }

    /// The listing, one instruction per line, with the frame layout.
    pub(crate) fn listing(&self) -> String {
        self.0.listing(&format!(
            "frame: {} slots ([0..{LOCALS_BASE}] saved r0/r1, then locals, then temporaries)",
            self.0.frame_len()
        ))
    }
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

/// Where a local lives at some program point.
pub(crate) enum Place {
    Reg(usize),
    Slot(usize),
}

/// Where local `d` lives, seen from a point with `scope` locals in scope.
pub(crate) fn place(scope: usize, d: usize) -> Place {
    let level = scope - 1 - d;
    if d < REGS {
        Place::Reg(level % REGS)
    } else {
        Place::Slot(LOCALS_BASE + level)
    }
}

/// A hook that sees every node before the plain compiler does: how a fused
/// tier adds superinstructions to this compiler without it naming them.
pub(crate) trait Lowering {
    /// The instruction set the compiler writes: the plain one or one that
    /// extends it.
    type Isa: Isa<Word = Word, Instr: From<Instr>, Kind: From<Kind>>;
    /// Emits `e` its own way if it has one of the hook's shapes (arguments
    /// as for [`Compiler::expr`]); `false` leaves it to the plain compiler.
    fn lower(
        &self,
        c: &mut Compiler<Self::Isa>,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) -> bool;
}

/// The plain compiler's hook: no shapes of its own.
pub(crate) struct Plain;

impl Lowering for Plain {
    type Isa = TapeIsa;
    fn lower(&self, _: &mut Compiler<TapeIsa>, _: &Expr, _: usize, _: usize, _: bool) -> bool {
        false
    }
}

/// Lowers the tree onto a tape of instruction set `I`.
pub(crate) struct Compiler<I: Isa> {
    code: Emitter<I>,
    /// First frame slot of the operand temporaries.
    temp_base: usize,
    /// Operand-stack height reached so far.
    max_temps: usize,
}

writes_through_emitter!(Compiler);

impl<I: Isa<Word = Word, Instr: From<Instr>>> Compiler<I> {
    /// Compiles the whole program, ending in `halt`, with hook `l`.
    pub(crate) fn compile<L: Lowering<Isa = I>>(program: &Program, l: &L) -> Compiler<I> {
        let mut c = Compiler {
            // Most nodes emit one op, `Then` none, `Add`, `Let` and `Set`
            // up to two: this rarely regrows.
            code: Emitter::with_capacity(2 * program.node_count() + 1, 2),
            temp_base: LOCALS_BASE + program.max_locals(),
            max_temps: 0,
        };
        c.expr(l, program.expr(), 0, 0, true);
        c.emit(Instr::Halt());
        c
    }

    fn temp(&mut self, height: usize) -> usize {
        self.max_temps = self.max_temps.max(height + 1);
        self.temp_base + height
    }

    /// Emits `e`, evaluated with `scope` locals in scope and `height`
    /// temporaries live. Only if `want` is the value left in `acc`.
    pub(crate) fn expr<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) {
        if l.lower(self, e, scope, height, want) {
            return;
        }
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(n) => {
                if want {
                    self.emit(Instr::Lit(*n));
                }
            }
            Expr::Arg(i) => {
                if want {
                    self.emit(Instr::Arg(*i));
                }
            }
            Expr::Get(d) => {
                if want {
                    self.emit(match place(scope, *d) {
                        Place::Reg(k) => Instr::GetReg(k),
                        Place::Slot(s) => Instr::GetSlot(s),
                    });
                }
            }
            Expr::Add(a, b) => {
                if want {
                    self.expr(l, a, scope, height, true);
                    let t = self.temp(height);
                    self.emit(Instr::Push(t));
                    self.expr(l, b, scope, height + 1, true);
                    self.emit(Instr::AddPop(t));
                } else {
                    self.expr(l, a, scope, height, false);
                    self.expr(l, b, scope, height, false);
                }
            }
            Expr::Let(init, body) => {
                self.expr(l, init, scope, height, true);
                let k = scope % REGS;
                // The local evicted from register `k`, if any, is the one
                // at level `scope - REGS`: spill it to its home slot.
                let evicted = scope.checked_sub(REGS).map(|level| LOCALS_BASE + level);
                self.emit(match evicted {
                    Some(home) => Instr::BindSpill(k, home),
                    None => Instr::Bind(k),
                });
                self.expr(l, body, scope + 1, height, want);
                if let Some(home) = evicted {
                    self.emit(Instr::Unbind(k, home));
                }
            }
            Expr::Set(d, v) => {
                self.expr(l, v, scope, height, true);
                self.emit(match place(scope, *d) {
                    Place::Reg(k) => Instr::SetReg(k),
                    Place::Slot(s) => Instr::SetSlot(s),
                });
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            // Rotated: `c; jump_if_not_pos exit; head: body; c; loop_if_pos
            // head; exit:` runs one dispatch fewer per iteration than
            // `top: c; jump_if_not_pos exit; body; loop top`, but emits the
            // condition twice. A condition that itself contains a loop keeps
            // the plain form, so nested conditions cannot double repeatedly.
            Expr::While(c, body) => {
                let rotated = !has_loop(c);
                let top = self.len();
                self.expr(l, c, scope, height, true);
                let exit = self.emit(Instr::JumpIfNotPos(usize::MAX));
                let head = self.len();
                self.expr(l, body, scope, height, false);
                if rotated {
                    self.expr(l, c, scope, height, true);
                    self.emit(Instr::LoopIfPos(head));
                } else {
                    self.emit(Instr::Loop(top));
                }
                let end = self.len();
                self.patch(exit, Instr::JumpIfNotPos(end));
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            Expr::Then(a, b) => {
                self.expr(l, a, scope, height, false);
                self.expr(l, b, scope, height, want);
            }
        }
    }
}

/// Compiles `program` with hook `l` and verifies it for backend `B`.
pub(crate) fn compile<L: Lowering, B: Backend>(
    program: &Program,
    l: &L,
) -> Result<Code<L::Isa, B>, CompileError>
where
    <L::Isa as Isa>::Instr: From<Instr>,
{
    Code::new(Compiler::compile(program, l), program.arg_count())
}

threaded_engine! {
    TapeContinuations = "tape_continuations", Original, Code<TapeIsa, Stable>, compile(|_| Plain);
    "direct threading: each op's handler tail-calls the next, acc + 2 local registers";
    conformance: extra: [CONTINUATION_TRICKY], also: [deep_programs, long_straight_line, far_assignments]
}

/// Verifies `code` as if a compiler had emitted it (tests of the verifier).
#[cfg(test)]
pub(crate) fn verify<I: Isa<Word = Word, Instr: From<Instr>, Kind: From<Kind>>>(
    code: &[I::Instr],
    frame_len: usize,
    arg_count: usize,
) -> Result<(), String> {
    let mut c = Compiler::<I> {
        code: Emitter::with_capacity(code.len(), 2),
        temp_base: frame_len,
        max_temps: 0,
    };
    for &i in code {
        c.code.emit(i);
    }
    // Forward targets are known once everything is emitted, as in a compiler.
    for (at, &i) in code.iter().enumerate() {
        c.code.patch(at, i);
    }
    Code::<I, Stable>::new(c, arg_count)
        .map(|_| ())
        .map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Technique;

    #[test]
    fn ops_read_back_as_their_instructions() {
        use Instr::*;
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
            JumpIfNotPos(16),
            Loop(2),
            LoopIfPos(0),
            Halt(),
            Lit(1),
        ];
        crate::engines::threaded::tests::reads_back::<TapeIsa>(&all);
    }

    #[test]
    fn verify_rejects_every_operand_out_of_range() {
        use Instr::*;
        let ok = [GetReg(1), GetSlot(9), Arg(0), JumpIfNotPos(4), Halt()];
        assert!(verify::<TapeIsa>(&ok, 10, 1).is_ok());
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
            JumpIfNotPos(1),
            Loop(5),
        ];
        for instr in bad {
            assert!(
                verify::<TapeIsa>(&[Lit(0), instr, Halt()], 10, 1).is_err(),
                "{instr}"
            );
        }
        assert!(verify::<TapeIsa>(&[Lit(0)], 10, 1).is_err(), "no halt");
        assert!(verify::<TapeIsa>(&[Halt()], 1, 1).is_err(), "no save slots");
    }

    #[test]
    fn verify_rejects_a_jump_into_the_middle_of_an_op() {
        use Instr::*;
        // A hand-made tape whose jump lands on an operand word.
        let mut e = Emitter::<TapeIsa>::with_capacity(3, 2);
        e.emit(JumpIfNotPos(2));
        e.emit(Lit(5));
        e.emit(Halt());
        e.set_word(1, 24); // 1.5 ops forward
        let c = Compiler {
            code: e,
            temp_base: 10,
            max_temps: 0,
        };
        assert!(Code::<TapeIsa, Stable>::new(c, 0).is_err());
    }

    #[test]
    fn show_lists_the_tape() {
        let p =
            crate::front::compile_source("s", "let n = arg(0); while n { n = n + -1 }; n").unwrap();
        let code = crate::engine::engine(TapeContinuations::NAME)
            .unwrap()
            .compile(&p)
            .unwrap();
        let text = code.show();
        assert!(
            text.contains("loop_if_pos @") && text.contains("jump_if_not_pos"),
            "{text}"
        );
    }
}
