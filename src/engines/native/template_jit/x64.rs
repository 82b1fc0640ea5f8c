//! The x86-64 templates: one recursive pass over the validated tree that
//! appends each node's machine code with dynasm-rs (System V calling
//! convention: `rdi` = arguments, `rsi` = frame, result in `rax`).

use crate::front::ast::Expr;
use crate::front::program::Program;
use dynasmrt::x64::{Rq, X64Relocation};
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm};

/// The fixed assignment: slot `s` (locals by scope depth, then
/// temporaries) lives in `SLOT_REGS[s]`, slots past it in the frame.
/// Caller-saved registers first, so small programs save nothing.
pub const SLOT_REGS: [Rq; 11] = [
    Rq::RDX,
    Rq::RCX,
    Rq::R8,
    Rq::R9,
    Rq::R10,
    Rq::RBX,
    Rq::RBP,
    Rq::R12,
    Rq::R13,
    Rq::R14,
    Rq::R15,
];
/// `SLOT_REGS[CALLEE_SAVED..]` are those System V makes the callee preserve.
const CALLEE_SAVED: usize = 5;
/// The accumulator: every non-leaf value ends here.
const RAX: Rq = Rq::RAX;
/// Scratch for operands an instruction cannot take directly.
const R11: Rq = Rq::R11;

/// The assembly syntax names of the registers, for `show`.
pub const REG_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Where an operand lives when a template reads it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opnd {
    Imm(i64),
    Reg(Rq),
    /// `[rsi + offset]`: a slot in the frame.
    Frame(i32),
    /// `args[i]`, i.e. `[rdi + 8i]`.
    Arg(usize),
}

/// What the pass produces.
pub struct Emitted {
    pub code: Vec<u8>,
    /// Offset of the entry point (the prologue is emitted last).
    pub entry: usize,
    /// Frame slots the code addresses through `rsi`.
    pub frame_slots: usize,
    /// Slots in use (locals and temporaries), for `show`.
    pub slots: usize,
}

type Asm = VecAssembler<X64Relocation>;

struct Lower {
    ops: Asm,
    /// Locals in scope: the next `Let` binds slot `scope`.
    scope: usize,
    /// `Program::max_locals`: temporaries start at this slot.
    locals: usize,
    temps: usize,
    /// One past the highest slot used.
    slots: usize,
}

/// Lowers `program` in one pass. Guarantees the code relies on: it only
/// reads `args[i]` for `i < program.arg_count()`, only addresses frame
/// slots below `frame_slots`, and returns with every callee-saved register
/// and `rsp` as it found them.
pub fn lower(program: &Program) -> Result<Emitted, dynasmrt::DynasmError> {
    let mut l = Lower {
        ops: VecAssembler::new_with_capacity(0, 16 + program.node_count() * 8, 0, 0, 0, 0, 0),
        scope: 0,
        locals: program.max_locals(),
        temps: 0,
        slots: program.max_locals(),
    };
    let body = l.ops.new_dynamic_label();
    dynasm!(l.ops ; .arch x64 ; =>body);
    let v = l.value(program.expr());
    l.mov(Opnd::Reg(RAX), v);
    // Callee-saved registers the code touched: saved by the prologue
    // (emitted last, once that is known), restored here.
    let used = l.slots.min(SLOT_REGS.len());
    let saved = &SLOT_REGS[CALLEE_SAVED.min(used)..used];
    for &r in saved.iter().rev() {
        dynasm!(l.ops ; .arch x64 ; pop Rq(r));
    }
    dynasm!(l.ops ; .arch x64 ; ret);
    let entry = l.ops.offset().0;
    for &r in saved {
        dynasm!(l.ops ; .arch x64 ; push Rq(r));
    }
    dynasm!(l.ops ; .arch x64 ; jmp =>body);
    let slots = l.slots;
    Ok(Emitted {
        code: l.ops.finalize()?,
        entry,
        frame_slots: slots.saturating_sub(SLOT_REGS.len()),
        slots,
    })
}

/// Where slot `s` lives.
fn slot(s: usize) -> Opnd {
    match SLOT_REGS.get(s) {
        Some(&r) => Opnd::Reg(r),
        // A slot index is below `max_locals + depth` ≤ 2 × `MAX_DEPTH`.
        None => Opnd::Frame(((s - SLOT_REGS.len()) * 8) as i32),
    }
}

/// A leaf's operand: reading it has no effect, so it can be read late.
fn leaf(e: &Expr, l: &Lower) -> Option<Opnd> {
    match *e {
        Expr::Litr(n) => Some(Opnd::Imm(n)),
        Expr::Arg(i) => Some(Opnd::Arg(i)),
        Expr::Get(d) => Some(l.local(d)),
        _ => None,
    }
}

/// An instruction `OP dst, src` for every operand pair the templates
/// produce: `dst` a register or a frame slot, `src` anything.
macro_rules! two_operand {
    ($name:ident, $op:ident, $doc:literal) => {
        #[doc = concat!($doc, " (`dst` is a register or a frame slot).")]
        fn $name(&mut self, dst: Opnd, src: Opnd) {
            let src = self.simple(src, matches!(dst, Opnd::Frame(_)));
            match (dst, src) {
                (Opnd::Reg(d), Opnd::Imm(n)) => {
                    dynasm!(self.ops ; .arch x64 ; $op Rq(d), DWORD n as i32)
                }
                (Opnd::Reg(d), Opnd::Reg(s)) => dynasm!(self.ops ; .arch x64 ; $op Rq(d), Rq(s)),
                (Opnd::Reg(d), Opnd::Frame(o)) => {
                    dynasm!(self.ops ; .arch x64 ; $op Rq(d), [rsi + o])
                }
                (Opnd::Reg(d), Opnd::Arg(i)) => {
                    let o = arg_disp(i).expect("simple() checked");
                    dynasm!(self.ops ; .arch x64 ; $op Rq(d), [rdi + o])
                }
                (Opnd::Frame(o), Opnd::Imm(n)) => {
                    dynasm!(self.ops ; .arch x64 ; $op QWORD [rsi + o], DWORD n as i32)
                }
                (Opnd::Frame(o), Opnd::Reg(s)) => {
                    dynasm!(self.ops ; .arch x64 ; $op [rsi + o], Rq(s))
                }
                _ => unreachable!("destinations are registers or frame slots"),
            }
        }
    };
}

impl Lower {
    /// Local `Get(d)`: validation guarantees `d < scope`.
    fn local(&self, d: usize) -> Opnd {
        slot(self.scope - 1 - d)
    }

    /// Emits `e` and returns where its value is: a leaf's own operand
    /// (read it before anything else is emitted), `Imm(0)` for `Set` and
    /// `While`, otherwise `rax`. Recursion depth is the tree's depth.
    fn value(&mut self, e: &Expr) -> Opnd {
        if let Some(o) = leaf(e, self) {
            return o;
        }
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Add(a, b) => {
                if let Some(b) = leaf(b, self) {
                    let a = self.value(a);
                    self.mov(Opnd::Reg(RAX), a);
                    self.add(Opnd::Reg(RAX), b);
                } else if let Expr::Litr(_) | Expr::Arg(_) = **a {
                    // Constant while `b` runs, and `+` commutes.
                    let a = leaf(a, self).expect("a leaf");
                    let b = self.value(b);
                    self.mov(Opnd::Reg(RAX), b);
                    self.add(Opnd::Reg(RAX), a);
                } else {
                    // `a`'s value is kept in a temporary while `b` runs
                    // (which may store to a local `a` reads).
                    let t = slot(self.locals + self.temps);
                    self.temps += 1;
                    self.slots = self.slots.max(self.locals + self.temps);
                    let a = self.value(a);
                    self.mov(t, a);
                    let b = self.value(b);
                    self.mov(Opnd::Reg(RAX), b);
                    self.add(Opnd::Reg(RAX), t);
                    self.temps -= 1;
                }
                Opnd::Reg(RAX)
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
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => unreachable!("leaves return above"),
        }
    }

    /// Emits `e` for its effects only.
    fn effect(&mut self, e: &Expr) {
        match e {
            Expr::Let(init, body) => {
                self.bind(init);
                self.effect(body);
                self.scope -= 1;
            }
            Expr::Set(d, v) => self.store(*d, v),
            Expr::While(c, body) => self.while_(c, body),
            // Leaves, `+` and `Then`: only their operands' effects remain.
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
        self.mov(slot(self.scope), v);
        self.scope += 1;
    }

    /// `Set(d, v)`. When `v` adds a leaf to local `d` itself, the sum is
    /// made in place (`add dst, leaf`); both reads happen at that one
    /// instruction, as they would in order.
    fn store(&mut self, d: usize, v: &Expr) {
        let dst = self.local(d);
        if let Expr::Add(a, b) = v
            && let (Some(a), Some(b)) = (leaf(a, self), leaf(b, self))
            && (a == dst || b == dst)
        {
            self.add(dst, if a == dst { b } else { a });
            return;
        }
        let v = self.value(v);
        self.mov(dst, v);
    }

    /// `jmp test; top: body; test: if c > 0 goto top`.
    fn while_(&mut self, c: &Expr, body: &Expr) {
        let top = self.ops.new_dynamic_label();
        let test = self.ops.new_dynamic_label();
        dynasm!(self.ops ; .arch x64 ; jmp =>test ; =>top);
        self.effect(body);
        dynasm!(self.ops ; .arch x64 ; =>test);
        let c = self.value(c);
        self.jump_if_positive(c, top);
    }

    fn jump_if_positive(&mut self, c: Opnd, target: DynamicLabel) {
        match c {
            Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; test Rq(r), Rq(r)),
            Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; cmp QWORD [rsi + o], 0),
            Opnd::Imm(_) | Opnd::Arg(_) => {
                self.mov(Opnd::Reg(RAX), c);
                dynasm!(self.ops ; .arch x64 ; test rax, rax);
            }
        }
        dynasm!(self.ops ; .arch x64 ; jg =>target);
    }

    /// Puts `src` in `r11` when an instruction cannot take it directly (a
    /// 64-bit constant, an argument beyond a 32-bit displacement, memory
    /// when the destination is memory) and returns what to use instead.
    fn simple(&mut self, src: Opnd, dst_is_memory: bool) -> Opnd {
        let direct = match src {
            Opnd::Imm(n) => i32::try_from(n).is_ok(),
            Opnd::Reg(_) => true,
            Opnd::Frame(_) => !dst_is_memory,
            Opnd::Arg(i) => !dst_is_memory && arg_disp(i).is_some(),
        };
        if direct {
            return src;
        }
        match src {
            Opnd::Imm(n) => dynasm!(self.ops ; .arch x64 ; mov r11, QWORD n),
            Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; mov r11, [rsi + o]),
            Opnd::Arg(i) => match arg_disp(i) {
                Some(o) => dynasm!(self.ops ; .arch x64 ; mov r11, [rdi + o]),
                None => {
                    // Never runs: no slice holds 2^28 arguments and more.
                    let o = (i as i64).wrapping_mul(8);
                    dynasm!(self.ops ; .arch x64 ; mov r11, QWORD o ; mov r11, [rdi + r11]);
                }
            },
            Opnd::Reg(_) => unreachable!("registers are direct"),
        }
        Opnd::Reg(R11)
    }

    /// `dst = src` (`dst` is a register or a frame slot).
    fn mov(&mut self, dst: Opnd, src: Opnd) {
        if dst != src {
            self.mov_always(dst, src);
        }
    }

    two_operand!(mov_always, mov, "`dst = src`");
    two_operand!(add, add, "`dst += src`, wrapping");
}

/// `args[i]`'s displacement from `rdi`, when it fits an instruction's 32 bits.
fn arg_disp(i: usize) -> Option<i32> {
    i.checked_mul(8).and_then(|o| i32::try_from(o).ok())
}
