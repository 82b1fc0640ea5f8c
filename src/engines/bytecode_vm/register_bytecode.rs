//! `register_bytecode` — a register VM in the style of Lua and wasmi.
//!
//! **Compile** produces a flat `Vec<Instr>` of three-address instructions
//! over a register file whose size is computed here, once: registers
//! `r0..rL` hold the locals (a `Let` at scope depth `k` owns `rk`, so `Get(d)`
//! is just a register number fixed at compile time), registers above them
//! are temporaries handed out like a stack. Every expression is compiled
//! with a *destination*: `x = x + y` is the single `r0 = r0 + r1`, a `Get`
//! operand is read straight from its local's register (no load), and a
//! literal operand is the instruction's constant (`r0 = r0 + -1`, Lua's
//! constant-operand form). A local is read in place only when the operands
//! evaluated after it contain no `Set`, so left-to-right order is kept.
//!
//! **Values** live only in the register file (one `Vec<i64>` per run, sized
//! by the compiler); there is no operand stack, pushes or pops.
//! **Control**: a `match` over the instruction in a Rust `loop` (one native
//! frame for the whole run). `While` is laid out body first, condition at
//! the bottom: one `goto` into the condition on entry, then each iteration
//! ends in a single compare-and-branch `if r > 0 goto body`.
//!
//! **Calls** use a register window, as Lua and wasmi do. There is one
//! register file (a `Vec<i64>` of the engine's, grown by doubling when a
//! call needs more), and each body's code addresses its own window of it:
//! main's at 0, a callee's starting where its caller put the arguments. A
//! call's arguments are evaluated left to right straight into consecutive
//! registers at the top of the caller's window, which are the callee's
//! parameters `r0..rn`: nothing is copied when the call happens. `Call` is
//! one instruction: the exact depth check, a frame record (caller's window
//! base, return pc, destination register) pushed on the engine's own
//! `Vec`, the window moved, a jump to the callee's code. `Ret` is one too:
//! pop the record, move the window back, write the value into the
//! destination, jump back. The native stack never grows per guest call
//! (one Rust frame runs the whole program), so the engine declares no
//! native stack. A frame thus costs 16 bytes of record plus the callee's
//! registers, and a call two dispatches (with its argument moves).
//! **Branches**: `If` and a `while` condition that is a `<` compile to
//! compare-and-branch on the two operands (`if r0 >= 2 goto 5`): no 0/1 is
//! made when only the branch needs it; a body's `If` in tail position ends
//! each branch in its own `Ret`. Operand-location variants (not fusion):
//! `a - n` with a literal is the constant add `a + (-n)`, and `<` with a
//! literal on either side compares a register with the instruction's
//! constant (`LtImm`, `ImmLt` and their branching forms, Lua's `LTI`/`GTI`).
//! The loop exists twice (a const generic): a Level-1 program runs the copy
//! without the Level-2 handlers. That copy's `match` has ten arms, and LLVM
//! gives each handler its own copy of the dispatch (load, table, indirect
//! jump); a `match` of more than 16 arms, like the Level-2 copy's 25, gets
//! one shared dispatch block instead: one more jump per instruction and
//! one indirect branch for the predictor to learn every transition on.
//! One loop for both levels cost Level 1 5–7% more instructions; the
//! Level-2 copy pays it on the branchy workloads, where threaded code
//! (every handler its own dispatch by construction) does better.
//!
//! Trade-off: compiling needs a little analysis (destinations, which
//! subtrees store) and instructions are wider than stack bytecode, but a
//! loop iteration dispatches far fewer instructions: `sum` runs four per
//! iteration where a stack machine runs about a dozen.
//!
//! The compiler is shared: `register_bytecode_fused` asks it for its
//! superinstructions ([`Options::fuse`]).
//!
//! **Unsafe** code rests on trusting its own compiler: the `match` loop
//! indexes registers, arguments and jump targets unchecked because
//! [`compile`] only makes code that stays in bounds, and no other code can
//! reach [`run`] (the fields of [`Code`] are private); no verifier checks it
//! again.

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::collections::HashSet;
use std::fmt;

technique! {
    RegisterBytecode = "register_bytecode", Beyond, Code;
    "register VM: three-address instructions, locals in registers, compare-and-branch loops";
    compile: |program| compile(program, Options::default()),
    try_execute: run,
    show: Code::listing;
    const LEVEL: Level = Level::Two;
    fn variants() -> Vec<String> {
        Code::variants()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        code.census()
    }
}

/// A register number, relative to the current call's window.
pub type Reg = u32;

/// One three-address instruction. `pc` targets index the instruction list.
/// Its kind without operands is an [`InstrKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(InstrKind), derive(strum::VariantArray, strum::IntoStaticStr))]
pub enum Instr {
    /// `dst = imm`
    LoadImm { dst: Reg, imm: i64 },
    /// `dst = args[arg]`
    LoadArg { dst: Reg, arg: usize },
    /// `dst = src`
    Move { dst: Reg, src: Reg },
    /// `dst = a + b` (wrapping)
    Add { dst: Reg, a: Reg, b: Reg },
    /// `dst = a + imm` (wrapping); also `a - n`, as `a + (-n)`
    AddImm { dst: Reg, a: Reg, imm: i64 },
    /// `goto target`
    Jump { target: u32 },
    /// `if cond > 0 goto target` (the bottom of every `while`)
    JumpIfPos { cond: Reg, target: u32 },
    /// `return src`: the end of main, the run's value
    Return { src: Reg },
    /// `dst = a - b` (wrapping)
    Sub { dst: Reg, a: Reg, b: Reg },
    /// `dst = (a < b) as i64`: a comparison whose value is used
    Lt { dst: Reg, a: Reg, b: Reg },
    /// `dst = (a < imm) as i64`
    LtImm { dst: Reg, a: Reg, imm: i64 },
    /// `dst = (imm < b) as i64`
    ImmLt { dst: Reg, imm: i64, b: Reg },
    /// `if cond <= 0 goto target` (an `if` on a value)
    JumpIfNotPos { cond: Reg, target: u32 },
    /// `if a < b goto target`
    JumpIfLt { a: Reg, b: Reg, target: u32 },
    /// `if !(a < b) goto target`
    JumpIfNotLt { a: Reg, b: Reg, target: u32 },
    /// `if a < imm goto target`
    JumpIfLtImm { a: Reg, imm: i64, target: u32 },
    /// `if !(a < imm) goto target`
    JumpIfNotLtImm { a: Reg, imm: i64, target: u32 },
    /// `if imm < b goto target`
    JumpIfImmLt { imm: i64, b: Reg, target: u32 },
    /// `if !(imm < b) goto target`
    JumpIfNotImmLt { imm: i64, b: Reg, target: u32 },
    /// Call the function at `entry`: its window starts at this window's
    /// `base` (where the arguments were put) and needs `frame` registers;
    /// its result lands in `dst`.
    Call {
        dst: Reg,
        base: Reg,
        entry: u32,
        frame: u32,
    },
    /// `return src` from a call: back to the caller's window and pc, the
    /// value into the destination its frame record names
    Ret { src: Reg },
    // Superinstructions: emitted only with `Options::fuse` (the `_fused`
    // engines); each is listed in `register_bytecode_fused`'s module doc.
    /// `dst = a + args[arg]` (wrapping): shape `Add(x, Arg(i))`.
    AddArg { dst: Reg, a: Reg, arg: usize },
    /// `dst = a + imm; if dst > 0 goto target`: shape
    /// `While(Get(d), Then(…, Set(d, Add(Get(d), Litr(n)))))`'s last store
    /// followed by the condition that reads the local just stored.
    AddImmJumpIfPos {
        dst: Reg,
        a: Reg,
        imm: i64,
        target: u32,
    },
    /// `r[base + n - 1] = a + imm; r[base] = call func(r[base..base + n])`
    /// for `func` of `n` parameters: shape `Call(f, [.., Sub/Add(x, Litr)])`,
    /// a call whose last argument adds a constant, result in the window's
    /// first register.
    AddImmCall {
        base: Reg,
        a: Reg,
        imm: i64,
        func: u32,
    },
    /// `ret a + b`: shape a body (or a branch of its tail `If`) ending in
    /// `Add` of two registers.
    AddRet { a: Reg, b: Reg },
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Instr::LoadImm { dst, imm } => write!(f, "r{dst} = {imm}"),
            Instr::LoadArg { dst, arg } => write!(f, "r{dst} = arg({arg})"),
            Instr::Move { dst, src } => write!(f, "r{dst} = r{src}"),
            Instr::Add { dst, a, b } => write!(f, "r{dst} = r{a} + r{b}"),
            Instr::AddImm { dst, a, imm } => write!(f, "r{dst} = r{a} + {imm}"),
            Instr::Jump { target } => write!(f, "goto {target}"),
            Instr::JumpIfPos { cond, target } => write!(f, "if r{cond} > 0 goto {target}"),
            Instr::Return { src } => write!(f, "return r{src}"),
            Instr::Sub { dst, a, b } => write!(f, "r{dst} = r{a} - r{b}"),
            Instr::Lt { dst, a, b } => write!(f, "r{dst} = r{a} < r{b}"),
            Instr::LtImm { dst, a, imm } => write!(f, "r{dst} = r{a} < {imm}"),
            Instr::ImmLt { dst, imm, b } => write!(f, "r{dst} = {imm} < r{b}"),
            Instr::JumpIfNotPos { cond, target } => write!(f, "if r{cond} <= 0 goto {target}"),
            Instr::JumpIfLt { a, b, target } => write!(f, "if r{a} < r{b} goto {target}"),
            Instr::JumpIfNotLt { a, b, target } => write!(f, "if r{a} >= r{b} goto {target}"),
            Instr::JumpIfLtImm { a, imm, target } => write!(f, "if r{a} < {imm} goto {target}"),
            Instr::JumpIfNotLtImm { a, imm, target } => {
                write!(f, "if r{a} >= {imm} goto {target}")
            }
            Instr::JumpIfImmLt { imm, b, target } => write!(f, "if {imm} < r{b} goto {target}"),
            Instr::JumpIfNotImmLt { imm, b, target } => {
                write!(f, "if {imm} >= r{b} goto {target}")
            }
            Instr::Call {
                dst,
                base,
                entry,
                frame,
            } => write!(
                f,
                "r{dst} = call {entry} (window at r{base}, {frame} registers)"
            ),
            Instr::Ret { src } => write!(f, "ret r{src}"),
            Instr::AddArg { dst, a, arg } => write!(f, "r{dst} = r{a} + arg({arg})"),
            Instr::AddImmJumpIfPos {
                dst,
                a,
                imm,
                target,
            } => {
                write!(f, "r{dst} = r{a} + {imm}; if r{dst} > 0 goto {target}")
            }
            Instr::AddImmCall { base, a, imm, func } => write!(
                f,
                "last argument = r{a} + {imm}; r{base} = call function {func} (window at r{base})"
            ),
            Instr::AddRet { a, b } => write!(f, "ret r{a} + r{b}"),
        }
    }
}

impl Instr {
    /// Points a jump at `target` (the compiler emits jumps before it knows
    /// where they go).
    fn set_target(&mut self, to: u32) {
        match self {
            Instr::Jump { target }
            | Instr::JumpIfPos { target, .. }
            | Instr::JumpIfNotPos { target, .. }
            | Instr::JumpIfLt { target, .. }
            | Instr::JumpIfNotLt { target, .. }
            | Instr::JumpIfLtImm { target, .. }
            | Instr::JumpIfNotLtImm { target, .. }
            | Instr::JumpIfImmLt { target, .. }
            | Instr::JumpIfNotImmLt { target, .. }
            | Instr::AddImmJumpIfPos { target, .. } => *target = to,
            other => unreachable!("not a jump: {other}"),
        }
    }
}

/// What the compiler may emit beyond the plain instruction set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Emit the superinstructions (`AddArg`, `AddImmJumpIfPos`,
    /// `AddImmCall`, `AddRet`).
    pub fuse: bool,
}

/// The compiled program: main's instructions, then each function's, and
/// the size of main's window and of each function's.
///
/// The fields are private, so a `Code` only ever comes from [`compile`],
/// whose guarantees (listed there) are what [`run`] relies on: the code is
/// trusted because this module's compiler made it, not checked again.
#[derive(Clone, Debug)]
pub struct Code {
    instrs: Vec<Instr>,
    /// Main's registers `0..locals` are locals, `locals..registers` temporaries.
    locals: usize,
    registers: usize,
    /// Each function's code, in the program's order.
    functions: Vec<FunctionCode>,
    /// What a call needs of each function, in the program's order.
    callees: Vec<Callee>,
    /// The program's level: a Level-1 program's code holds no Level-2
    /// instruction.
    level: Level,
}

/// What a call needs to know of its callee when the instruction does not
/// say it (`AddImmCall`).
#[derive(Clone, Copy, Debug)]
struct Callee {
    entry: u32,
    frame: u32,
    arity: u32,
}

/// Where a function's code starts and how its window is laid out.
#[derive(Clone, Debug)]
struct FunctionCode {
    name: String,
    params: Vec<String>,
    entry: u32,
    locals: usize,
    registers: usize,
}

impl Code {
    /// Every instruction kind, fused ones included ([`Technique::variants`](crate::engine::Technique::variants)).
    pub(crate) fn variants() -> Vec<String> {
        crate::engine::variants_of::<InstrKind>()
    }

    /// How many instructions of each kind the code holds.
    pub(crate) fn census(&self) -> Vec<(String, usize)> {
        crate::engine::census_of(self.instrs.iter().map(InstrKind::from))
    }

    /// The listing `vm-perf show` prints: main, then every function.
    pub fn listing(&self) -> String {
        let mut out = format!(
            "; {} registers: r0..r{} locals, the rest temporaries\n",
            self.registers,
            self.locals.max(1) - 1
        );
        let width = self.instrs.len().to_string().len();
        let mut functions = self.functions.iter().peekable();
        for (pc, i) in self.instrs.iter().enumerate() {
            if let Some(f) = functions.next_if(|f| f.entry as usize == pc) {
                out.push_str(&format!(
                    "; fn {}({}): {} registers: r0..r{} parameters and locals, the rest temporaries\n",
                    f.name,
                    f.params.join(", "),
                    f.registers,
                    f.locals.max(1) - 1
                ));
            }
            out.push_str(&format!("{pc:>width$}  {i}"));
            let callee = match *i {
                Instr::Call { entry, .. } => self.functions.iter().find(|f| f.entry == entry),
                Instr::AddImmCall { func, .. } => self.functions.get(func as usize),
                _ => None,
            };
            if let Some(callee) = callee {
                out.push_str(&format!("  ; {}", callee.name));
            }
            out.push('\n');
        }
        out
    }
}

/// Compiles `program` into register code.
///
/// Guarantees [`run`] relies on: in main's code and in each function's,
/// every register operand is below that body's window size (`registers`),
/// except a `Call`'s `base`, which [`run`] checks with the callee's window
/// (`frame`, the callee's `registers`) against the register file; every
/// jump target lies in the same body; `Call` targets a function's entry;
/// main's code ends in `Return` and contains no `Ret`, each function's
/// code ends in `Ret` and contains no `Return`; every `LoadArg`/`AddArg`
/// index is `< program.arg_count()`.
pub fn compile(program: &Program, options: Options) -> Result<Code, CompileError> {
    let too_big = || CompileError("program needs more than 2^32 registers or instructions".into());
    let locals = Reg::try_from(program.max_locals()).map_err(|_| too_big())?;
    let mut stores = HashSet::new();
    mark_stores(program.expr(), &mut stores);
    for f in program.functions() {
        mark_stores(&f.body, &mut stores);
    }
    let mut c = Compiler {
        instrs: Vec::with_capacity(program.node_count() + 1 + program.functions().len()),
        scope: 0,
        locals,
        temps: 0,
        max_temps: 0,
        stores,
        calls: Vec::new(),
        label: 0,
        options,
    };
    c.tail(program.expr(), |src| Instr::Return { src })?;
    let registers = (locals as usize) + (c.max_temps as usize);
    let mut functions = Vec::with_capacity(program.functions().len());
    for (f, facts) in program.functions().iter().zip(program.function_facts()) {
        let entry = c.pc();
        let locals = Reg::try_from(facts.max_locals).map_err(|_| too_big())?;
        c.scope = Reg::try_from(f.arity()).map_err(|_| too_big())?;
        c.locals = locals;
        c.temps = 0;
        c.max_temps = 0;
        c.tail(&f.body, |src| Instr::Ret { src })?;
        let registers = (locals as usize) + (c.max_temps as usize);
        u32::try_from(registers).map_err(|_| too_big())?;
        functions.push(FunctionCode {
            name: f.name.clone(),
            params: f.params.clone(),
            entry,
            locals: locals as usize,
            // Never empty: a body's value is in a register (see below).
            registers: registers.max(1),
        });
    }
    u32::try_from(c.instrs.len()).map_err(|_| too_big())?;
    for (at, f) in std::mem::take(&mut c.calls) {
        let callee = &functions[f];
        if let Instr::Call { entry, frame, .. } = &mut c.instrs[at] {
            *entry = callee.entry;
            *frame = callee.registers as u32;
        }
    }
    // An empty register file would make `Return` read out of bounds; it
    // cannot happen (an operand needs a local or a temporary), but keep the
    // invariant local to this function.
    let callees = program
        .functions()
        .iter()
        .zip(&functions)
        .map(|(f, code)| Callee {
            entry: code.entry,
            frame: code.registers as u32,
            // At most `MAX_PARAMS`.
            arity: f.arity() as u32,
        })
        .collect();
    Ok(Code {
        instrs: c.instrs,
        locals: locals as usize,
        registers: registers.max(1),
        functions,
        callees,
        level: program.level(),
    })
}

/// Records every node whose subtree contains a `Set` (so reading a local in
/// place before evaluating it would be wrong). A call stores only through
/// its arguments: the callee's window lies above every register of the
/// caller's that is live. Recursion depth is the tree's depth, at most
/// `MAX_DEPTH`.
pub(crate) fn mark_stores(e: &Expr, out: &mut HashSet<*const Expr>) -> bool {
    let stores = match e {
        Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => false,
        Expr::Set(_, v) => {
            mark_stores(v, out);
            true
        }
        Expr::Add(a, b)
        | Expr::Let(a, b)
        | Expr::While(a, b)
        | Expr::Then(a, b)
        | Expr::Sub(a, b)
        | Expr::Lt(a, b) => {
            let a = mark_stores(a, out);
            mark_stores(b, out) || a
        }
        Expr::If(c, t, f) => {
            let c = mark_stores(c, out);
            let t = mark_stores(t, out);
            mark_stores(f, out) || c || t
        }
        Expr::Call(_, args) => {
            // Every argument marked, not only up to the first that stores.
            let mut any = false;
            for arg in args {
                any |= mark_stores(arg, out);
            }
            any
        }
    };
    if stores {
        out.insert(e as *const Expr);
    }
    stores
}

struct Compiler {
    instrs: Vec<Instr>,
    /// Locals in scope at the node being compiled.
    scope: Reg,
    /// The body's most locals (`Program::max_locals` or the function's):
    /// the first temporary's register.
    locals: Reg,
    temps: Reg,
    max_temps: Reg,
    stores: HashSet<*const Expr>,
    /// Each `Call`'s pc and callee, for its entry and window size once
    /// every function is compiled.
    calls: Vec<(usize, usize)>,
    /// The highest pc a jump lands on so far: a peephole may merge an
    /// instruction into the one before only if nothing lands between.
    label: u32,
    options: Options,
}

type Res<T> = Result<T, CompileError>;

impl Compiler {
    fn emit(&mut self, i: Instr) {
        self.instrs.push(i);
    }

    fn pc(&self) -> u32 {
        // `compile` checks the final length fits; intermediate values are smaller.
        self.instrs.len() as u32
    }

    /// Points the jump at `at` to the next instruction to be emitted.
    fn land(&mut self, at: usize) {
        let here = self.pc();
        self.aim(at, here);
    }

    /// Points the jump at `at` to `target`.
    fn aim(&mut self, at: usize, target: u32) {
        self.instrs[at].set_target(target);
        self.label = self.label.max(target);
    }

    /// Whether a jump lands on the next instruction to be emitted.
    fn is_label(&self) -> bool {
        self.label == self.pc()
    }

    /// The register of local `Get(d)`/`Set(d, _)`; validation guarantees `d < scope`.
    fn local(&self, d: usize) -> Reg {
        self.scope - 1 - d as Reg
    }

    fn temp(&mut self) -> Res<Reg> {
        let t = self
            .locals
            .checked_add(self.temps)
            .ok_or_else(|| CompileError("program needs more than 2^32 registers".into()))?;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        Ok(t)
    }

    fn stores(&self, e: &Expr) -> bool {
        self.stores.contains(&(e as *const Expr))
    }

    /// A register holding `e`'s value right now: a local's own register for
    /// `Get` (valid until the next store), otherwise a fresh temporary. The
    /// caller releases temporaries by restoring `self.temps`.
    fn operand(&mut self, e: &Expr) -> Res<Reg> {
        if let Expr::Get(d) = e {
            return Ok(self.local(*d));
        }
        let t = self.temp()?;
        self.into(e, t, true)?;
        Ok(t)
    }

    /// Emits `e` as the end of a body, with `exit` (main's `Return`, a
    /// function's `Ret`) taking the value from its own register: `Then`/
    /// `Let` chains end in their last value's register, so `…; total`
    /// returns `total`'s register without a copy, and each branch of an
    /// `If` ends in its own exit.
    fn tail(&mut self, e: &Expr, exit: fn(Reg) -> Instr) -> Res<()> {
        match e {
            Expr::Then(a, b) => {
                self.effect(a)?;
                self.tail(b, exit)
            }
            Expr::Let(init, body) => {
                let slot = self.scope;
                self.into(init, slot, false)?;
                self.scope += 1;
                self.tail(body, exit)?;
                self.scope -= 1;
                Ok(())
            }
            Expr::If(c, t, f) => {
                let otherwise = self.branch(c, false)?;
                self.tail(t, exit)?;
                self.land(otherwise);
                self.tail(f, exit)
            }
            _ => {
                let mark = self.temps;
                let r = self.operand(e)?;
                // Fused: a function's value computed by an add of two
                // registers is returned by the add.
                match (exit(r), self.instrs.last()) {
                    (Instr::Ret { .. }, Some(&Instr::Add { dst, a, b }))
                        if self.options.fuse && dst == r && !self.is_label() =>
                    {
                        *self.instrs.last_mut().expect("matched above") = Instr::AddRet { a, b };
                    }
                    (exit, _) => self.emit(exit),
                }
                self.temps = mark;
                Ok(())
            }
        }
    }

    /// Like [`operand`](Self::operand), but a non-`Get` value goes into
    /// `dst` itself when `dst` is scratch (nobody else reads it meanwhile).
    fn operand_in(&mut self, e: &Expr, dst: Reg, scratch: bool) -> Res<Reg> {
        match e {
            Expr::Get(d) => Ok(self.local(*d)),
            _ if scratch => {
                self.into(e, dst, true)?;
                Ok(dst)
            }
            _ => self.operand(e),
        }
    }

    /// Emits code leaving `e`'s value in `dst`. When `scratch` is false,
    /// `dst` is a local the code of `e` may read, so only the final
    /// instruction may write it; when true, `dst` is private to `e`.
    fn into(&mut self, e: &Expr, dst: Reg, scratch: bool) -> Res<()> {
        match e {
            Expr::Litr(n) => self.emit(Instr::LoadImm { dst, imm: *n }),
            Expr::Arg(i) => self.emit(Instr::LoadArg { dst, arg: *i }),
            Expr::Get(d) => {
                let src = self.local(*d);
                if src != dst {
                    self.emit(Instr::Move { dst, src });
                }
            }
            Expr::Add(a, b) => self.add(a, b, dst, scratch)?,
            Expr::Let(init, body) => {
                // Not scratch: a `Let` nested in `init` binds this same register.
                let slot = self.scope;
                self.into(init, slot, false)?;
                self.scope += 1;
                self.into(body, dst, scratch)?;
                self.scope -= 1;
            }
            Expr::Set(d, v) => {
                self.set(*d, v)?;
                self.emit(Instr::LoadImm { dst, imm: 0 });
            }
            Expr::While(c, body) => {
                self.while_(c, body)?;
                self.emit(Instr::LoadImm { dst, imm: 0 });
            }
            Expr::Then(a, b) => {
                self.effect(a)?;
                self.into(b, dst, scratch)?;
            }
            // `a - n` is `a + (-n)` (wrapping negation keeps it exact for
            // every `n`): the constant-operand add, as Lua does.
            Expr::Sub(a, b) => match **b {
                Expr::Litr(n) => {
                    let mark = self.temps;
                    let a = self.operand_in(a, dst, scratch)?;
                    self.emit(Instr::AddImm {
                        dst,
                        a,
                        imm: n.wrapping_neg(),
                    });
                    self.temps = mark;
                }
                _ => self.binary(a, b, dst, scratch, |dst, a, b| Instr::Sub { dst, a, b })?,
            },
            Expr::Lt(a, b) => {
                let mark = self.temps;
                if let Expr::Litr(imm) = **b {
                    let a = self.operand_in(a, dst, scratch)?;
                    self.emit(Instr::LtImm { dst, a, imm });
                } else if let Expr::Litr(imm) = **a {
                    let b = self.operand_in(b, dst, scratch)?;
                    self.emit(Instr::ImmLt { dst, imm, b });
                } else {
                    self.binary(a, b, dst, scratch, |dst, a, b| Instr::Lt { dst, a, b })?;
                }
                self.temps = mark;
            }
            Expr::If(c, t, f) => {
                let otherwise = self.branch(c, false)?;
                self.into(t, dst, scratch)?;
                let end = self.instrs.len();
                self.emit(Instr::Jump { target: 0 });
                self.land(otherwise);
                self.into(f, dst, scratch)?;
                self.land(end);
            }
            Expr::Call(f, args) => self.call(*f, args, dst, scratch)?,
        }
        Ok(())
    }

    fn add(&mut self, a: &Expr, b: &Expr, dst: Reg, scratch: bool) -> Res<()> {
        let mark = self.temps;
        // Wrapping `+` commutes and a literal has no effect, so a literal on
        // either side becomes the constant operand.
        if let Expr::Litr(imm) = *b {
            let a = self.operand_in(a, dst, scratch)?;
            self.emit(Instr::AddImm { dst, a, imm });
        } else if let Expr::Litr(imm) = *a {
            let b = self.operand_in(b, dst, scratch)?;
            self.emit(Instr::AddImm { dst, a: b, imm });
        } else {
            match *b {
                Expr::Arg(arg) if self.options.fuse => {
                    let ra = self.left(a, b, dst, scratch)?;
                    self.emit(Instr::AddArg { dst, a: ra, arg });
                }
                _ => self.binary(a, b, dst, scratch, |dst, a, b| Instr::Add { dst, a, b })?,
            }
        }
        self.temps = mark;
        Ok(())
    }

    /// The register of a two-register operation's left operand `a`, whose
    /// right operand `b` comes next: a local is read in place unless `b`
    /// stores; otherwise `dst` when scratch, else a temporary (kept until
    /// the caller restores `self.temps`).
    fn left(&mut self, a: &Expr, b: &Expr, dst: Reg, scratch: bool) -> Res<Reg> {
        Ok(match a {
            Expr::Get(d) if !self.stores(b) => self.local(*d),
            _ if scratch => {
                self.into(a, dst, true)?;
                dst
            }
            _ => {
                let t = self.temp()?;
                self.into(a, t, true)?;
                t
            }
        })
    }

    /// `dst = a op b` on two registers.
    fn binary(
        &mut self,
        a: &Expr,
        b: &Expr,
        dst: Reg,
        scratch: bool,
        op: fn(Reg, Reg, Reg) -> Instr,
    ) -> Res<()> {
        let mark = self.temps;
        let ra = self.left(a, b, dst, scratch)?;
        // `dst` can take `b`'s value only if `a`'s is elsewhere.
        let rb = self.operand_in(b, dst, scratch && ra != dst)?;
        self.emit(op(dst, ra, rb));
        self.temps = mark;
        Ok(())
    }

    /// A call: the arguments go, left to right, into consecutive registers
    /// at the top of this window, where the callee's window will start (its
    /// parameters are its first registers); the result lands in `dst`. When
    /// `dst` is the topmost temporary and private, the window starts there.
    fn call(&mut self, f: usize, args: &[Expr], dst: Reg, scratch: bool) -> Res<()> {
        let mark = self.temps;
        let top = self.locals + self.temps;
        let base = if scratch && dst >= self.locals && dst + 1 == top {
            dst
        } else {
            top
        };
        let mut last_arg = self.instrs.len();
        for (i, arg) in args.iter().enumerate() {
            let reg = base + i as Reg;
            while self.locals + self.temps <= reg {
                self.temp()?;
            }
            last_arg = self.instrs.len();
            self.into(arg, reg, true)?;
        }
        // Fused: the last argument's own last instruction adds a constant
        // into its register, and the result goes to the window's start.
        if self.options.fuse
            && dst == base
            && !args.is_empty()
            && self.instrs.len() > last_arg
            && !self.is_label()
            && let Some(&Instr::AddImm { dst: into, a, imm }) = self.instrs.last()
            && into + 1 == base + args.len() as Reg
        {
            let func = u32::try_from(f).expect("fewer functions than instructions");
            *self.instrs.last_mut().expect("matched above") =
                Instr::AddImmCall { base, a, imm, func };
            self.temps = mark;
            return Ok(());
        }
        self.calls.push((self.instrs.len(), f));
        self.emit(Instr::Call {
            dst,
            base,
            entry: 0,
            frame: 0,
        });
        self.temps = mark;
        Ok(())
    }

    fn set(&mut self, d: usize, v: &Expr) -> Res<()> {
        let slot = self.local(d);
        self.into(v, slot, false)
    }

    /// Emits code for `e` whose value nobody uses.
    fn effect(&mut self, e: &Expr) -> Res<()> {
        match e {
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            // The value is unused; only the operands' effects remain, in order.
            Expr::Add(a, b) | Expr::Then(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                self.effect(a)?;
                self.effect(b)?;
            }
            Expr::Let(init, body) => {
                let slot = self.scope;
                self.into(init, slot, false)?;
                self.scope += 1;
                self.effect(body)?;
                self.scope -= 1;
            }
            Expr::Set(d, v) => self.set(*d, v)?,
            Expr::While(c, body) => self.while_(c, body)?,
            Expr::If(c, t, f) => {
                let otherwise = self.branch(c, false)?;
                self.effect(t)?;
                let end = self.instrs.len();
                self.emit(Instr::Jump { target: 0 });
                let else_pc = self.pc();
                self.effect(f)?;
                if self.pc() == else_pc {
                    // No code for the other branch: no jump over it either.
                    self.instrs.pop();
                    self.land(otherwise);
                } else {
                    self.aim(otherwise, else_pc);
                    self.land(end);
                }
            }
            Expr::Call(..) => {
                let mark = self.temps;
                let t = self.temp()?;
                self.into(e, t, true)?;
                self.temps = mark;
            }
        }
        Ok(())
    }

    /// Emits a jump taken when `c`'s truth (`> 0`) is `when`, and returns
    /// its pc for [`land`](Self::land). A comparison branches on its
    /// operands directly (no 0/1 in a register); any other condition is
    /// tested in its register.
    fn branch(&mut self, c: &Expr, when: bool) -> Res<usize> {
        let mark = self.temps;
        let target = 0;
        let jump = match c {
            Expr::Lt(a, b) => {
                if let Expr::Litr(imm) = **b {
                    let a = self.operand(a)?;
                    match when {
                        true => Instr::JumpIfLtImm { a, imm, target },
                        false => Instr::JumpIfNotLtImm { a, imm, target },
                    }
                } else if let Expr::Litr(imm) = **a {
                    let b = self.operand(b)?;
                    match when {
                        true => Instr::JumpIfImmLt { imm, b, target },
                        false => Instr::JumpIfNotImmLt { imm, b, target },
                    }
                } else {
                    let a = match &**a {
                        Expr::Get(d) if !self.stores(b) => self.local(*d),
                        _ => self.operand_fresh(a)?,
                    };
                    let b = self.operand(b)?;
                    match when {
                        true => Instr::JumpIfLt { a, b, target },
                        false => Instr::JumpIfNotLt { a, b, target },
                    }
                }
            }
            _ => {
                let cond = self.operand(c)?;
                match when {
                    true => Instr::JumpIfPos { cond, target },
                    false => Instr::JumpIfNotPos { cond, target },
                }
            }
        };
        self.emit(jump);
        self.temps = mark;
        Ok(self.instrs.len() - 1)
    }

    /// `e`'s value in a fresh temporary (a local is copied).
    fn operand_fresh(&mut self, e: &Expr) -> Res<Reg> {
        let t = self.temp()?;
        self.into(e, t, true)?;
        Ok(t)
    }

    /// `goto cond; body: …; cond: …; if c goto body`.
    fn while_(&mut self, c: &Expr, body: &Expr) -> Res<()> {
        let entry = self.instrs.len();
        self.emit(Instr::Jump { target: 0 });
        let top = self.pc();
        self.effect(body)?;
        self.land(entry);
        // Fused: the body ends by adding a constant into the local that
        // the condition reads; add and branch become one instruction. The
        // plain test stays after it for the entry `goto` (on exit it runs
        // once more, finds the same value and falls through).
        if self.options.fuse
            && let Expr::Get(d) = *c
            && self.instrs.len() > top as usize
            && let Some(&Instr::AddImm { dst, a, imm }) = self.instrs.last()
            && dst == self.local(d)
        {
            *self.instrs.last_mut().expect("checked above") = Instr::AddImmJumpIfPos {
                dst,
                a,
                imm,
                target: top,
            };
            self.land(entry);
            self.emit(Instr::JumpIfPos {
                cond: dst,
                target: top,
            });
            return Ok(());
        }
        let bottom = self.branch(c, true)?;
        self.aim(bottom, top);
        Ok(())
    }
}

/// A call's record, in the engine's own `Vec`: where the caller's window
/// starts, where it resumes, and which of its registers takes the result.
#[derive(Clone, Copy)]
struct Frame {
    base: usize,
    return_pc: u32,
    dst: Reg,
}

/// Makes the register file at least `needed` long (doubling, so deep
/// recursion grows it a logarithmic number of times).
#[cold]
#[inline(never)]
fn grow(regs: &mut Vec<i64>, needed: usize) {
    let len = needed.max(regs.len().saturating_mul(2));
    regs.resize(len, 0);
}

/// Runs compiled register code.
///
/// # Safety
///
/// `args.len()` must be at least the compiled program's `arg_count`. (That
/// `code` came from [`compile`] holds for every `Code`: see [`Code`].)
pub unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // SAFETY: our caller's promise, passed on; `LEVEL_TWO` is false only
    // for a Level-1 program, whose code holds no Level-2 instruction.
    unsafe {
        match code.level {
            Level::One => execute::<false>(code, args),
            Level::Two => execute::<true>(code, args),
        }
    }
}

/// The `match` loop. For a Level-1 program (`LEVEL_TWO` false) every
/// handler of a Level-2 instruction is left out, so the window never moves
/// and the loop is the one without calls and branches: LLVM then still
/// gives every handler its own copy of the dispatch (it stops doing so
/// for a `match` of more than 16 arms), and Level 2 costs Level 1 nothing.
///
/// # Safety
///
/// As for [`run`], and `LEVEL_TWO` must be true if `code` holds a Level-2
/// instruction (a comparison, a branch of an `if`, a call, a return).
unsafe fn execute<const LEVEL_TWO: bool>(
    code: &Code,
    args: &[i64],
) -> Result<i64, CallDepthExceeded> {
    let mut regs = vec![0i64; code.registers];
    // Every active call's record; main has none.
    let mut frames: Vec<Frame> = Vec::new();
    // The current window: registers `base..` of `regs`, `r` its first.
    let mut base = 0usize;
    let mut r = regs.as_mut_ptr();
    let instrs = code.instrs.as_ptr();
    let callees = code.callees.as_ptr();
    let args = args.as_ptr();
    let mut pc = 0usize;
    macro_rules! reg {
        ($i:expr) => {
            *r.add($i as usize)
        };
    }
    // The start of a Level-2 instruction's handler.
    macro_rules! level_two {
        () => {
            if !LEVEL_TWO {
                // `compile` emits it only for a Level-2 node or in a
                // function (our caller's promise).
                std::hint::unreachable_unchecked();
            }
        };
    }
    // Enter a callee whose window starts at this window's `window` and
    // needs `frame` registers; its result goes to `dst`.
    macro_rules! call {
        ($dst:expr, $window:expr, $entry:expr, $frame:expr) => {{
            // The depth check, before the call becomes active.
            if frames.len() == MAX_CALLS {
                return Err(CallDepthExceeded);
            }
            frames.push(Frame {
                base,
                return_pc: pc as u32,
                dst: $dst,
            });
            base += $window as usize;
            let needed = base + $frame as usize;
            if needed > regs.len() {
                grow(&mut regs, needed);
            }
            r = regs.as_mut_ptr().add(base);
            pc = $entry as usize;
        }};
    }
    // Leave a function with `value`: `Ret` ends a function's code, which
    // only a call enters, after pushing the record popped here.
    macro_rules! ret {
        ($value:expr) => {{
            let value = $value;
            // (Not `pop`: its empty case would stay in the handler.)
            let top = frames.len() - 1;
            let caller = *frames.as_ptr().add(top);
            frames.set_len(top);
            base = caller.base;
            r = regs.as_mut_ptr().add(base);
            reg!(caller.dst) = value;
            pc = caller.return_pc as usize;
        }};
    }
    loop {
        // SAFETY: `compile` guarantees each register operand is below its
        // body's window size, and a window is only entered (below) after
        // the register file was grown to hold it, so `r + operand` stays in
        // `regs`; each jump target is a valid index in the same body, main
        // ends in `Return` and each function in `Ret`, so `pc` never leaves
        // `instrs`; argument indices are below `arg_count`, which our caller
        // guarantees `args` covers.
        unsafe {
            let instr = *instrs.add(pc);
            pc += 1;
            match instr {
                Instr::LoadImm { dst, imm } => reg!(dst) = imm,
                Instr::LoadArg { dst, arg } => reg!(dst) = *args.add(arg),
                Instr::Move { dst, src } => reg!(dst) = reg!(src),
                Instr::Add { dst, a, b } => reg!(dst) = reg!(a).wrapping_add(reg!(b)),
                Instr::AddImm { dst, a, imm } => reg!(dst) = reg!(a).wrapping_add(imm),
                Instr::Jump { target } => pc = target as usize,
                Instr::JumpIfPos { cond, target } => {
                    if reg!(cond) > 0 {
                        pc = target as usize;
                    }
                }
                Instr::Return { src } => return Ok(reg!(src)),
                Instr::Sub { dst, a, b } => {
                    level_two!();
                    reg!(dst) = reg!(a).wrapping_sub(reg!(b))
                }
                Instr::Lt { dst, a, b } => {
                    level_two!();
                    reg!(dst) = i64::from(reg!(a) < reg!(b))
                }
                Instr::LtImm { dst, a, imm } => {
                    level_two!();
                    reg!(dst) = i64::from(reg!(a) < imm)
                }
                Instr::ImmLt { dst, imm, b } => {
                    level_two!();
                    reg!(dst) = i64::from(imm < reg!(b))
                }
                Instr::JumpIfNotPos { cond, target } => {
                    level_two!();
                    if reg!(cond) <= 0 {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfLt { a, b, target } => {
                    level_two!();
                    if reg!(a) < reg!(b) {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfNotLt { a, b, target } => {
                    level_two!();
                    if reg!(a) >= reg!(b) {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfLtImm { a, imm, target } => {
                    level_two!();
                    if reg!(a) < imm {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfNotLtImm { a, imm, target } => {
                    level_two!();
                    if reg!(a) >= imm {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfImmLt { imm, b, target } => {
                    level_two!();
                    if imm < reg!(b) {
                        pc = target as usize;
                    }
                }
                Instr::JumpIfNotImmLt { imm, b, target } => {
                    level_two!();
                    if imm >= reg!(b) {
                        pc = target as usize;
                    }
                }
                Instr::Call {
                    dst,
                    base: window,
                    entry,
                    frame,
                } => {
                    level_two!();
                    call!(dst, window, entry, frame)
                }
                Instr::Ret { src } => {
                    level_two!();
                    ret!(reg!(src))
                }
                Instr::AddArg { dst, a, arg } => reg!(dst) = reg!(a).wrapping_add(*args.add(arg)),
                Instr::AddImmJumpIfPos {
                    dst,
                    a,
                    imm,
                    target,
                } => {
                    let v = reg!(a).wrapping_add(imm);
                    reg!(dst) = v;
                    if v > 0 {
                        pc = target as usize;
                    }
                }
                Instr::AddImmCall {
                    base: window,
                    a,
                    imm,
                    func,
                } => {
                    level_two!();
                    // `func` is a function's index (`compile`), and its
                    // arity at least 1: the call has a last argument.
                    let callee = *callees.add(func as usize);
                    reg!(window + callee.arity - 1) = reg!(a).wrapping_add(imm);
                    call!(window, window, callee.entry, callee.frame)
                }
                Instr::AddRet { a, b } => {
                    level_two!();
                    ret!(reg!(a).wrapping_add(reg!(b)))
                }
            }
        }
    }
}

/// Loops whose condition is a `<`: the compare-and-branch forms that
/// jump when it holds (the random programs write no such loop).
#[cfg(test)]
pub(crate) const WHILE_LT: &[(&str, &[i64])] = &[
    (
        "let i = 0; let s = 0; while i < arg(0) { s = s + i; i = i + 1 }; s",
        &[10],
    ),
    ("let i = arg(0); while i < 10 { i = i + 3 }; i", &[-5]),
    ("let i = arg(0); while 0 < i { i = i - 2 }; i", &[9]),
    (
        "let i = 0; let n = 5; while i < { n = n - 1; n } { i = i + 1 }; i + n",
        &[],
    ),
    (
        "let i = 0; let n = 5; while { i = i + 1; i } < n { n = n + 0 }; i",
        &[],
    ),
    (
        "fn f(n) { let t = 0; while 0 < n { t = t + n; n = n - 1 }; t } f(arg(0)) + f(3)",
        &[100],
    ),
    (
        "fn g(a, b) { while a < b { a = a + 2 }; a } g(arg(0), 7)",
        &[-4],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(RegisterBytecode, extra: [REGISTER_TRICKY]);

    #[test]
    fn loops_on_less_than_agree_with_walker_and_branch_when_it_holds() {
        for fuse in [false, true] {
            let mut kinds = Vec::new();
            for (src, _) in WHILE_LT {
                let program = crate::front::compile_source("while_lt", src).unwrap();
                let code = compile(&program, Options { fuse }).unwrap();
                kinds.extend(code.instrs.iter().map(InstrKind::from));
            }
            for kind in [
                InstrKind::JumpIfLt,
                InstrKind::JumpIfLtImm,
                InstrKind::JumpIfImmLt,
            ] {
                assert!(kinds.contains(&kind), "{kind:?} not built (fuse: {fuse})");
            }
        }
        crate::reference::conformance::agrees_with_walker::<RegisterBytecode>(&[WHILE_LT]);
    }

    #[test]
    fn show_lists_every_function() {
        let w = crate::workloads::workload("tak").unwrap();
        let code = compile(&w.program().unwrap(), Options::default()).unwrap();
        let listing = code.listing();
        assert!(listing.contains("; fn tak(x, y, z):"), "{listing}");
        assert!(listing.contains("ret r"), "{listing}");
    }

    #[test]
    fn a_recursive_fib_call_is_a_few_dispatches() {
        // Plain: the test and either `ret n` or two argument adds, two
        // calls, the sum and `ret`; fused: the adds ride on the calls and
        // the sum on the return.
        for (fuse, per_body) in [(false, 8), (true, 5)] {
            let w = crate::workloads::workload("fib_recursive").unwrap();
            let code = compile(&w.program().unwrap(), Options { fuse }).unwrap();
            let entry = code.functions[0].entry as usize;
            assert_eq!(code.instrs.len() - entry, per_body, "{}", code.listing());
            assert!(
                code.instrs[entry..].iter().all(|i| !matches!(
                    i,
                    Instr::Move { .. } | Instr::Lt { .. } | Instr::LtImm { .. }
                )),
                "{}",
                code.listing()
            );
        }
    }

    #[test]
    fn sum_is_four_instructions_per_iteration() {
        let w = crate::workloads::workload("sum").unwrap();
        let code = compile(&w.program().unwrap(), Options::default()).unwrap();
        let listing = code.listing();
        // The loop is the one backward branch and what it jumps back over:
        // straight-line code, so each iteration runs every instruction of it.
        let back_edges: Vec<(usize, u32)> = code
            .instrs
            .iter()
            .enumerate()
            .filter_map(|(pc, i)| match *i {
                Instr::JumpIfPos { target, .. } if target as usize <= pc => Some((pc, target)),
                _ => None,
            })
            .collect();
        let [(bottom, head)] = back_edges[..] else {
            panic!("one loop expected:\n{listing}");
        };
        let body = &code.instrs[head as usize..=bottom];
        assert!(
            body.iter()
                .all(|i| !matches!(i, Instr::Jump { .. } | Instr::Move { .. })),
            "{listing}"
        );
        assert_eq!(body.len(), 4, "{listing}");
    }
}
