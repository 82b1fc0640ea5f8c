//! The x86-64 templates: one recursive pass over the validated tree that
//! appends each node's machine code with dynasm-rs (System V calling
//! convention: `rdi` = arguments, `rsi` = frame, result in `rax`).

use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
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

/// A flag test after a `cmp` or `test`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    Less,
    GreaterOrEqual,
    Greater,
    LessOrEqual,
}

impl Cond {
    fn negated(self) -> Cond {
        match self {
            Cond::Less => Cond::GreaterOrEqual,
            Cond::GreaterOrEqual => Cond::Less,
            Cond::Greater => Cond::LessOrEqual,
            Cond::LessOrEqual => Cond::Greater,
        }
    }
}

/// A parallel move's source: an operand, or the value a cycle pushed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Here(Opnd),
    Pushed,
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
    /// How many of [`SLOT_REGS`] hold slots: all of them at Level 1; at
    /// Level 2 the last one (`r15`) counts the calls still allowed.
    pub regs: usize,
    /// Where each body starts (main, then the functions), for `show`.
    pub bodies: Vec<(usize, String)>,
    /// Native stack a call takes at the call site that pushes most:
    /// main's, and the largest of any function's (bytes, the return
    /// address included); `0` without calls.
    pub call_frames: (usize, usize),
}

/// Slot registers at Level 2: `r15`, the last of [`SLOT_REGS`], holds the
/// number of calls that may still become active.
const LEVEL_TWO_REGS: usize = SLOT_REGS.len() - 1;

/// Native stack the Level-2 entry takes: the six callee-saved registers
/// it saves and its return address.
pub const ENTRY_FRAME: usize = 7 * 8;

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
    /// How many of [`SLOT_REGS`] hold slots.
    regs: usize,
    /// Temporaries holding a value now (a call saves them), in order.
    live_temps: Vec<Opnd>,
    /// Level 2: each function's entry, and where a failed depth check goes.
    functions: Vec<DynamicLabel>,
    fail: Option<DynamicLabel>,
    /// Whether a function body is being lowered (else main).
    in_function: bool,
    /// The most bytes a call site pushes, in main and in the functions.
    call_frames: (usize, usize),
}

/// Lowers `program` in one pass. Guarantees the code relies on: it only
/// reads `args[i]` for `i < program.arg_count()`, only addresses frame
/// slots below `frame_slots` (and, at Level 2, the header word below the
/// frame), and returns with every callee-saved register and `rsp` as it
/// found them.
pub fn lower(program: &Program) -> Result<Emitted, dynasmrt::DynasmError> {
    match program.level() {
        Level::One => lower_one(program),
        Level::Two => lower_two(program),
    }
}

impl Lower {
    fn new(program: &Program, regs: usize) -> Lower {
        Lower {
            ops: VecAssembler::new_with_capacity(0, 16 + program.node_count() * 8, 0, 0, 0, 0, 0),
            scope: 0,
            locals: program.max_locals(),
            temps: 0,
            slots: program.max_locals(),
            regs,
            live_temps: Vec::new(),
            functions: Vec::new(),
            fail: None,
            in_function: false,
            call_frames: (0, 0),
        }
    }

    fn emitted(
        self,
        entry: usize,
        bodies: Vec<(usize, String)>,
    ) -> Result<Emitted, dynasmrt::DynasmError> {
        let (slots, regs, call_frames) = (self.slots, self.regs, self.call_frames);
        Ok(Emitted {
            code: self.ops.finalize()?,
            entry,
            frame_slots: slots.saturating_sub(regs),
            slots,
            regs,
            bodies,
            call_frames,
        })
    }
}

/// A Level-1 program: one function, exactly as before functions existed.
fn lower_one(program: &Program) -> Result<Emitted, dynasmrt::DynasmError> {
    let mut l = Lower::new(program, SLOT_REGS.len());
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
    l.emitted(entry, vec![(0, "main".into())])
}

/// A Level-2 program: main, then each function as a native function of
/// its own, then the entry. Inside, the convention is the engine's own:
/// `rdi` = arguments and `rsi` = frame as at Level 1, `r15` = calls that
/// may still become active, a callee's parameters in its first slots, its
/// value in `rax`; every other register belongs to the caller's slots,
/// which the caller pushes around the call. `[rsi - 8]` holds the stack
/// pointer of the entry, where a failed depth check unwinds to.
fn lower_two(program: &Program) -> Result<Emitted, dynasmrt::DynasmError> {
    let mut l = Lower::new(program, LEVEL_TWO_REGS);
    let main = l.ops.new_dynamic_label();
    let exit = l.ops.new_dynamic_label();
    let fail = l.ops.new_dynamic_label();
    l.fail = Some(fail);
    l.functions = program
        .functions()
        .iter()
        .map(|_| l.ops.new_dynamic_label())
        .collect();
    let mut bodies = vec![(l.ops.offset().0, "main".to_string())];
    dynasm!(l.ops ; .arch x64 ; =>main);
    let v = l.value(program.expr());
    l.mov(Opnd::Reg(RAX), v);
    // `(rax, rdx)` is `(value, failed)`.
    dynasm!(l.ops
        ; .arch x64
        ; xor edx, edx
        ; =>exit
        ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbp ; pop rbx
        ; ret
        // The call that would exceed the limit: every guest frame is
        // dropped at once by going back to the entry's stack pointer.
        ; =>fail
        ; mov rsp, [rsi - 8]
        ; mov edx, 1
        ; jmp =>exit
    );
    l.in_function = true;
    for (i, (f, facts)) in program
        .functions()
        .iter()
        .zip(program.function_facts())
        .enumerate()
    {
        bodies.push((l.ops.offset().0, format!("fn {}", f.name)));
        let label = l.functions[i];
        // The depth check: `r15` is 0 when `MAX_CALLS` calls are active.
        dynasm!(l.ops ; .arch x64 ; =>label ; sub r15, 1 ; jb =>fail);
        l.locals = facts.max_locals;
        l.slots = l.slots.max(l.locals);
        l.scope = f.arity();
        let v = l.value(&f.body);
        l.mov(Opnd::Reg(RAX), v);
        dynasm!(l.ops ; .arch x64 ; add r15, 1 ; ret);
        l.scope = 0;
    }
    let entry = l.ops.offset().0;
    bodies.push((entry, "entry".to_string()));
    dynasm!(l.ops
        ; .arch x64
        ; push rbx ; push rbp ; push r12 ; push r13 ; push r14 ; push r15
        ; mov [rsi - 8], rsp
        ; mov r15, MAX_CALLS as i32
        ; jmp =>main
    );
    l.emitted(entry, bodies)
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
    /// Where slot `s` lives.
    fn slot(&self, s: usize) -> Opnd {
        if s < self.regs {
            Opnd::Reg(SLOT_REGS[s])
        } else {
            // A slot index is below `max_locals + depth` ≤ 2 × `MAX_DEPTH`.
            Opnd::Frame(((s - self.regs) * 8) as i32)
        }
    }

    /// Local `Get(d)`: validation guarantees `d < scope`.
    fn local(&self, d: usize) -> Opnd {
        self.slot(self.scope - 1 - d)
    }

    /// Emits `e` and returns where its value is: a leaf's own operand
    /// (read it before anything else is emitted), `Imm(0)` for `Set` and
    /// `While`, otherwise `rax`. Recursion depth is the tree's depth.
    fn value(&mut self, e: &Expr) -> Opnd {
        if let Some(o) = leaf(e, self) {
            return o;
        }
        match e {
            Expr::Sub(a, b) => {
                self.sub_value(a, b);
                Opnd::Reg(RAX)
            }
            Expr::Lt(a, b) => {
                // The one place a comparison becomes a 0/1 value.
                match self.compare(a, b) {
                    Cond::Less => dynasm!(self.ops ; .arch x64 ; setl al),
                    _ => dynasm!(self.ops ; .arch x64 ; setg al),
                }
                dynasm!(self.ops ; .arch x64 ; movzx eax, al);
                Opnd::Reg(RAX)
            }
            Expr::If(c, t, f) => {
                self.if_(c, t, f, true);
                Opnd::Reg(RAX)
            }
            Expr::Call(f, args) => {
                self.call(*f, args);
                Opnd::Reg(RAX)
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
                    let t = self.hold(a);
                    let b = self.value(b);
                    self.mov(Opnd::Reg(RAX), b);
                    self.add(Opnd::Reg(RAX), t);
                    self.release(1);
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
            Expr::If(c, t, f) => self.if_(c, t, f, false),
            Expr::Call(f, args) => self.call(*f, args),
            // Leaves, `+`, `-`, `<` and `Then`: only their operands' effects remain.
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
        self.mov(self.slot(self.scope), v);
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
        // `x = x - leaf`: in place too (only the left operand can be `x`).
        if let Expr::Sub(a, b) = v
            && let (Some(a), Some(b)) = (leaf(a, self), leaf(b, self))
            && a == dst
        {
            self.sub(dst, b);
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
        let holds = self.condition(c);
        self.jump(holds, top);
    }

    /// Sets the flags from condition `c` ("greater than zero") and returns
    /// the flag test that holds when it does. A `<` is one `cmp`: no 0/1
    /// value is made for a branch.
    fn condition(&mut self, c: &Expr) -> Cond {
        if let Expr::Lt(a, b) = c {
            return self.compare(a, b);
        }
        match self.value(c) {
            Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; test Rq(r), Rq(r)),
            Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; cmp QWORD [rsi + o], 0),
            c @ (Opnd::Imm(_) | Opnd::Arg(_)) => {
                self.mov(Opnd::Reg(RAX), c);
                dynasm!(self.ops ; .arch x64 ; test rax, rax);
            }
        }
        Cond::Greater
    }

    fn jump(&mut self, cond: Cond, target: DynamicLabel) {
        match cond {
            Cond::Less => dynasm!(self.ops ; .arch x64 ; jl =>target),
            Cond::GreaterOrEqual => dynasm!(self.ops ; .arch x64 ; jge =>target),
            Cond::Greater => dynasm!(self.ops ; .arch x64 ; jg =>target),
            Cond::LessOrEqual => dynasm!(self.ops ; .arch x64 ; jle =>target),
        }
    }

    /// Reserves the next temporary, runs `e` into it and keeps it live
    /// (a call saves it) until [`Lower::release`].
    fn hold(&mut self, e: &Expr) -> Opnd {
        let t = self.slot(self.locals + self.temps);
        self.temps += 1;
        self.slots = self.slots.max(self.locals + self.temps);
        let v = self.value(e);
        self.mov(t, v);
        self.live_temps.push(t);
        t
    }

    /// Frees the last `n` temporaries [`Lower::hold`] reserved.
    fn release(&mut self, n: usize) {
        self.temps -= n;
        self.live_temps.truncate(self.live_temps.len() - n);
    }

    /// `a - b` into `rax`; as for `+`, a leaf operand is read in place.
    fn sub_value(&mut self, a: &Expr, b: &Expr) {
        if let Some(b) = leaf(b, self) {
            let a = self.value(a);
            self.mov(Opnd::Reg(RAX), a);
            self.sub(Opnd::Reg(RAX), b);
        } else if let Expr::Litr(_) | Expr::Arg(_) = *a {
            // `a - b` = `-b + a`, `a` constant while `b` runs.
            let a = leaf(a, self).expect("a leaf");
            let b = self.value(b);
            self.mov(Opnd::Reg(RAX), b);
            dynasm!(self.ops ; .arch x64 ; neg rax);
            self.add(Opnd::Reg(RAX), a);
        } else {
            let t = self.hold(a);
            let b = self.value(b);
            self.mov(Opnd::Reg(RAX), b);
            dynasm!(self.ops ; .arch x64 ; neg rax);
            self.add(Opnd::Reg(RAX), t);
            self.release(1);
        }
    }

    /// Runs `a`, then `b`, and compares them with one `cmp`; returns the
    /// flag test that holds when `a < b`.
    fn compare(&mut self, a: &Expr, b: &Expr) -> Cond {
        if let Some(b) = leaf(b, self) {
            let a = match self.value(a) {
                a @ (Opnd::Reg(_) | Opnd::Frame(_)) => a,
                a => {
                    self.mov(Opnd::Reg(RAX), a);
                    Opnd::Reg(RAX)
                }
            };
            self.cmp(a, b);
            Cond::Less
        } else if let Expr::Litr(_) | Expr::Arg(_) = *a {
            let a = leaf(a, self).expect("a leaf");
            let b = match self.value(b) {
                b @ (Opnd::Reg(_) | Opnd::Frame(_)) => b,
                b => {
                    self.mov(Opnd::Reg(RAX), b);
                    Opnd::Reg(RAX)
                }
            };
            // `a < b` is `b > a`.
            self.cmp(b, a);
            Cond::Greater
        } else {
            let t = self.hold(a);
            let b = self.value(b);
            self.cmp(t, b);
            self.release(1);
            Cond::Less
        }
    }

    /// `if c { t } else { f }`: a compare and a conditional jump to the
    /// other arm; the arms leave their value in `rax` when `value`.
    fn if_(&mut self, c: &Expr, t: &Expr, f: &Expr, value: bool) {
        let otherwise = self.ops.new_dynamic_label();
        let end = self.ops.new_dynamic_label();
        let holds = self.condition(c);
        self.jump(holds.negated(), otherwise);
        for (arm, last) in [(t, false), (f, true)] {
            if value {
                let v = self.value(arm);
                self.mov(Opnd::Reg(RAX), v);
            } else {
                self.effect(arm);
            }
            if last {
                dynasm!(self.ops ; .arch x64 ; =>end);
            } else {
                dynasm!(self.ops ; .arch x64 ; jmp =>end ; =>otherwise);
            }
        }
    }

    /// `Call(f, args)`: the arguments run in order (a value a later
    /// argument could change is held in a temporary; a leaf after the
    /// last argument with effects is read in place, and that argument's
    /// value stays in `rax`); then the caller pushes its live slots, moves
    /// the arguments into the callee's first slots (a parallel move),
    /// calls, and pops its slots back. The value is in `rax`.
    fn call(&mut self, f: usize, args: &[Expr]) {
        let saved: Vec<Opnd> = (0..self.scope)
            .map(|s| self.slot(s))
            .chain(self.live_temps.iter().copied())
            .collect();
        let last_effect = args.iter().rposition(|a| leaf(a, self).is_none());
        let mut sources = Vec::with_capacity(args.len());
        let mut held = 0;
        for (i, arg) in args.iter().enumerate() {
            let source = match (leaf(arg, self), last_effect) {
                (Some(constant @ (Opnd::Imm(_) | Opnd::Arg(_))), _) => constant,
                (Some(local), Some(k)) if i < k => {
                    let t = self.slot(self.locals + self.temps);
                    self.mov(t, local);
                    self.temps += 1;
                    self.slots = self.slots.max(self.locals + self.temps);
                    self.live_temps.push(t);
                    held += 1;
                    t
                }
                (Some(local), _) => local,
                (None, Some(k)) if i < k => {
                    held += 1;
                    self.hold(arg)
                }
                (None, _) => {
                    let v = self.value(arg);
                    self.mov(Opnd::Reg(RAX), v);
                    Opnd::Reg(RAX)
                }
            };
            sources.push(source);
        }
        for &s in &saved {
            match s {
                Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; push Rq(r)),
                Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; push QWORD [rsi + o]),
                _ => unreachable!("slots are registers or frame slots"),
            }
        }
        let moves = sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| (self.slot(i), Source::Here(s)))
            .collect();
        self.parallel_move(moves);
        let label = self.functions[f];
        dynasm!(self.ops ; .arch x64 ; call =>label);
        for &s in saved.iter().rev() {
            match s {
                Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; pop Rq(r)),
                Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; pop QWORD [rsi + o]),
                _ => unreachable!("slots are registers or frame slots"),
            }
        }
        self.release(held);
        let frame = 8 * (saved.len() + 1);
        let most = if self.in_function {
            &mut self.call_frames.1
        } else {
            &mut self.call_frames.0
        };
        *most = (*most).max(frame);
    }

    /// Moves every source into its destination as if all at once: a move
    /// goes once its destination is no other move's source; a cycle is
    /// broken by pushing one destination's value and popping it last.
    fn parallel_move(&mut self, mut moves: Vec<(Opnd, Source)>) {
        moves.retain(|(d, s)| *s != Source::Here(*d));
        while !moves.is_empty() {
            let ready = (0..moves.len())
                .find(|&i| !moves.iter().any(|(_, s)| *s == Source::Here(moves[i].0)));
            let i = match ready {
                Some(i) => i,
                None => {
                    // A cycle: save the first destination's value.
                    let d = moves[0].0;
                    match d {
                        Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; push Rq(r)),
                        Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; push QWORD [rsi + o]),
                        _ => unreachable!("destinations are slots"),
                    }
                    for (_, s) in &mut moves {
                        if *s == Source::Here(d) {
                            *s = Source::Pushed;
                        }
                    }
                    0
                }
            };
            let (d, s) = moves.remove(i);
            match s {
                Source::Here(s) => self.mov(d, s),
                Source::Pushed => match d {
                    Opnd::Reg(r) => dynasm!(self.ops ; .arch x64 ; pop Rq(r)),
                    Opnd::Frame(o) => dynasm!(self.ops ; .arch x64 ; pop QWORD [rsi + o]),
                    _ => unreachable!("destinations are slots"),
                },
            }
        }
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
    two_operand!(sub, sub, "`dst -= src`, wrapping");
    two_operand!(cmp, cmp, "flags from `dst - src`");
}

/// `args[i]`'s displacement from `rdi`, when it fits an instruction's 32 bits.
fn arg_disp(i: usize) -> Option<i32> {
    i.checked_mul(8).and_then(|o| i32::try_from(o).ok())
}
