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

use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::collections::HashSet;
use std::fmt;

technique! {
    RegisterBytecode = "register_bytecode", Beyond, Code;
    "register VM: three-address instructions, locals in registers, compare-and-branch loops";
    compile: |program| compile(program, Options::default()),
    execute: run,
    show: Code::listing;
}

/// A register number.
pub type Reg = u32;

/// One three-address instruction. `pc` targets index the instruction list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instr {
    /// `dst = imm`
    LoadImm { dst: Reg, imm: i64 },
    /// `dst = args[arg]`
    LoadArg { dst: Reg, arg: usize },
    /// `dst = src`
    Move { dst: Reg, src: Reg },
    /// `dst = a + b` (wrapping)
    Add { dst: Reg, a: Reg, b: Reg },
    /// `dst = a + imm` (wrapping)
    AddImm { dst: Reg, a: Reg, imm: i64 },
    /// `goto target`
    Jump { target: u32 },
    /// `if cond > 0 goto target` (the bottom of every `while`)
    JumpIfPos { cond: Reg, target: u32 },
    /// `return src`
    Return { src: Reg },
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
            Instr::AddArg { dst, a, arg } => write!(f, "r{dst} = r{a} + arg({arg})"),
            Instr::AddImmJumpIfPos {
                dst,
                a,
                imm,
                target,
            } => {
                write!(f, "r{dst} = r{a} + {imm}; if r{dst} > 0 goto {target}")
            }
        }
    }
}

/// What the compiler may emit beyond the plain instruction set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Emit the superinstructions (`AddArg`, `AddImmJumpIfPos`).
    pub fuse: bool,
}

/// The compiled program: instructions and the register file's exact size.
///
/// The fields are private, so a `Code` only ever comes from [`compile`],
/// whose guarantees (listed there) are what [`run`] relies on: the code is
/// trusted because this module's compiler made it, not checked again.
#[derive(Clone, Debug)]
pub struct Code {
    instrs: Vec<Instr>,
    /// Registers `0..locals` are locals, `locals..registers` temporaries.
    locals: usize,
    registers: usize,
}

impl Code {
    /// The listing `vm-perf show` prints.
    pub fn listing(&self) -> String {
        let mut out = format!(
            "; {} registers: r0..r{} locals, the rest temporaries\n",
            self.registers,
            self.locals.max(1) - 1
        );
        let width = self.instrs.len().to_string().len();
        for (pc, i) in self.instrs.iter().enumerate() {
            out.push_str(&format!("{pc:>width$}  {i}\n"));
        }
        out
    }
}

/// Compiles `program` into register code.
///
/// Guarantees [`run`] relies on: every register operand is `< registers`,
/// every jump target is `< instrs.len()`, the last instruction is `Return`,
/// every `LoadArg`/`AddArg` index is `< program.arg_count()`.
pub fn compile(program: &Program, options: Options) -> Result<Code, CompileError> {
    let too_big = || CompileError("program needs more than 2^32 registers or instructions".into());
    let locals = Reg::try_from(program.max_locals()).map_err(|_| too_big())?;
    let mut stores = HashSet::new();
    mark_stores(program.expr(), &mut stores);
    let mut c = Compiler {
        instrs: Vec::with_capacity(program.node_count() + 1),
        scope: 0,
        locals,
        temps: 0,
        max_temps: 0,
        stores,
        options,
    };
    let r = c.result(program.expr())?;
    c.instrs.push(Instr::Return { src: r });
    u32::try_from(c.instrs.len()).map_err(|_| too_big())?;
    let registers = (locals as usize) + (c.max_temps as usize);
    // An empty register file would make `Return` read out of bounds; it
    // cannot happen (an operand needs a local or a temporary), but keep the
    // invariant local to this function.
    Ok(Code {
        instrs: c.instrs,
        locals: locals as usize,
        registers: registers.max(1),
    })
}

/// Records every node whose subtree contains a `Set` (so reading a local in
/// place before evaluating it would be wrong). Recursion depth is the tree's
/// depth, at most `MAX_DEPTH`.
pub(crate) fn mark_stores(e: &Expr, out: &mut HashSet<*const Expr>) -> bool {
    let stores = match e {
        Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
            unreachable!("Level 2 is refused before compile")
        }
        Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => false,
        Expr::Set(_, v) => {
            mark_stores(v, out);
            true
        }
        Expr::Add(a, b) | Expr::Let(a, b) | Expr::While(a, b) | Expr::Then(a, b) => {
            let a = mark_stores(a, out);
            mark_stores(b, out) || a
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
    /// `Program::max_locals`: the first temporary's register.
    locals: Reg,
    temps: Reg,
    max_temps: Reg,
    stores: HashSet<*const Expr>,
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

    /// The register holding the whole program's value, just before `Return`:
    /// `Then`/`Let` chains end in their last value's own register, so
    /// `…; total` returns `total`'s register without a copy.
    fn result(&mut self, e: &Expr) -> Res<Reg> {
        match e {
            Expr::Then(a, b) => {
                self.effect(a)?;
                self.result(b)
            }
            Expr::Let(init, body) => {
                let slot = self.scope;
                self.into(init, slot, false)?;
                self.scope += 1;
                let r = self.result(body)?;
                self.scope -= 1;
                Ok(r)
            }
            _ => self.operand(e),
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
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
            let ra = match a {
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
            };
            match *b {
                Expr::Arg(arg) if self.options.fuse => {
                    self.emit(Instr::AddArg { dst, a: ra, arg });
                }
                _ => {
                    // `dst` can take `b`'s value only if `a`'s is elsewhere.
                    let rb = self.operand_in(b, dst, scratch && ra != dst)?;
                    self.emit(Instr::Add { dst, a: ra, b: rb });
                }
            }
        }
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            // The sum is unused; only the operands' effects remain, in order.
            Expr::Add(a, b) | Expr::Then(a, b) => {
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
        }
        Ok(())
    }

    /// `goto cond; body: …; cond: …; if c > 0 goto body`.
    fn while_(&mut self, c: &Expr, body: &Expr) -> Res<()> {
        let entry = self.instrs.len();
        self.emit(Instr::Jump { target: 0 });
        let top = self.pc();
        self.effect(body)?;
        let cond_pc = self.pc();
        self.instrs[entry] = Instr::Jump { target: cond_pc };
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
            let test = self.pc();
            self.instrs[entry] = Instr::Jump { target: test };
            self.emit(Instr::JumpIfPos {
                cond: dst,
                target: top,
            });
            return Ok(());
        }
        let mark = self.temps;
        let cond = self.operand(c)?;
        self.emit(Instr::JumpIfPos { cond, target: top });
        self.temps = mark;
        Ok(())
    }
}

/// Runs compiled register code.
///
/// # Safety
///
/// `args.len()` must be at least the compiled program's `arg_count`. (That
/// `code` came from [`compile`] holds for every `Code`: see [`Code`].)
pub unsafe fn run(code: &Code, args: &[i64]) -> i64 {
    let mut regs = vec![0i64; code.registers];
    let r = regs.as_mut_ptr();
    let instrs = code.instrs.as_ptr();
    let args = args.as_ptr();
    let mut pc = 0usize;
    macro_rules! reg {
        ($i:expr) => {
            *r.add($i as usize)
        };
    }
    loop {
        // SAFETY: `compile` guarantees each register operand is below
        // `registers` (the length of `regs`), each jump target is a valid
        // index and the code ends in `Return`, so `pc` never leaves `instrs`;
        // argument indices are below `arg_count`, which our caller
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
                Instr::Return { src } => return reg!(src),
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
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(RegisterBytecode, extra: [REGISTER_TRICKY]);

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
