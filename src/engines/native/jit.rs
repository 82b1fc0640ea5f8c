//! `jit` — native code through Cranelift: the upper bound, and its price.
//!
//! **Compile** translates the tree straight into Cranelift IR with
//! `cranelift-frontend`, then lets Cranelift optimise it (`opt_level=speed`),
//! allocate registers and emit x86-64/AArch64 machine code into memory owned
//! by a [`JITModule`] of this compiled program alone. Each local is an SSA
//! [`Variable`] (one per scope depth, `Program::max_locals` of them), so
//! `Get` is whatever value the variable holds at that point and Cranelift's
//! SSA construction inserts the block parameters loops need; strict
//! left-to-right order comes for free because an operand's value is fixed
//! the moment it is computed. `+` is a wrapping `iadd`; `Arg(i)` is a load
//! from the argument pointer the function receives (read-only, so Cranelift
//! may hoist it out of loops).
//!
//! **Values** live in machine registers (or Cranelift's spill slots).
//! **Control**: `While` becomes a header block (condition, `brif c > 0`), a
//! body block that jumps back, and an exit block; the whole program is one
//! native function called through an `extern "C" fn(*const i64) -> i64`.
//! Dropping the compiled program frees its machine code.
//!
//! **Size tier**: a program of more than [`OPTIMIZE_UP_TO_NODES`] nodes
//! is compiled with `opt_level=none` and Cranelift's single-pass register
//! allocator, as production JITs cap what their optimising tier accepts.
//! Both of Cranelift's expensive passes cost more per instruction the
//! larger the one function they work on (measured with callgrind on
//! generated straight-line programs): the e-graph optimiser went from ~56k
//! instructions per AST node at 10^4 nodes to ~259k at 10^5, and then the
//! backtracking register allocator from ~7.6k at 10^5 to ~42k at 10^6.
//! With both off, instructions per node stay flat and compile time per
//! node grows only by cache effects (0.46 → 0.58 µs per node from 10^5 to
//! 10^6 nodes, compiled alone; `vm-perf scale`, in a process holding every
//! size's program, shows 0.8 → 2.4 µs). Every built-in workload is far below the limit, so its code is
//! fully optimised and runs as before.
//!
//! Trade-off: execution is as fast as native code gets here, but compiling
//! costs tens to hundreds of microseconds (a code generator, a register
//! allocator and a fresh executable mapping per program), orders of
//! magnitude more than any interpreter's compile stage.
//!
//! **Unsafe code** rests on trusting its own compiler: the machine code it
//! calls is what it generated from a validated program, reading only
//! arguments below `arg_count`.

use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, UserFuncName, Value, types,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::sync::OnceLock;

/// The compiled program's entry point: `args` points at `arg_count` values.
type Entry = unsafe extern "C" fn(args: *const i64) -> i64;

/// A compiled program: its machine code (owned by `module`) and, for
/// `show`, the optimised IR and a copy of the machine code.
pub struct JitCode {
    /// `Some` until dropped; owns the executable memory `entry` points into.
    module: Option<JITModule>,
    entry: Entry,
    ir: Function,
    machine_code: Vec<u8>,
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `&mut self` means no call through `entry` is running,
            // and `entry` is dropped with `self`, so it is never called again.
            unsafe { module.free_memory() };
        }
    }
}

/// Programs above this many AST nodes skip Cranelift's optimiser and use
/// its single-pass register allocator (see "Size tier" in the module doc).
/// Over 90% of the superlinear cost was in `egraph::insert_pure_enode` /
/// `simplify`, then in `regalloc2::ion` (its move resolution); the limit is
/// where the optimiser's per-node cost had already grown by half (~2.7 µs
/// per node at 10^3, ~4 µs at 10^4).
pub const OPTIMIZE_UP_TO_NODES: usize = 10_000;

/// The host ISA with the given Cranelift `opt_level`, detected once per
/// process and level (detection is not part of compiling one program).
fn isa(optimize: bool) -> Result<OwnedTargetIsa, CompileError> {
    static SPEED: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    static NONE: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    let (cell, level) = if optimize {
        (&SPEED, "speed")
    } else {
        (&NONE, "none")
    };
    cell.get_or_init(|| {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k, v| f.set(k, v).map_err(|e| e.to_string());
        set(&mut flags, "opt_level", level)?;
        if !optimize {
            set(&mut flags, "regalloc_algorithm", "single_pass")?;
        }
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        let builder = cranelift_native::builder().map_err(str::to_string)?;
        builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| CompileError(format!("cranelift: host not supported: {e}")))
}

technique! {
    Jit = "jit", Beyond, JitCode;
    "Cranelift JIT: locals as SSA variables, loops as blocks, native code";
    compile: compile, execute: run, show: show;
}

fn compile(program: &Program) -> Result<JitCode, CompileError> {
    let err = |e: &dyn std::fmt::Display| CompileError(format!("cranelift: {e}"));
    let mut module = JITModule::new(JITBuilder::with_isa(
        isa(program.node_count() <= OPTIMIZE_UP_TO_NODES)?,
        default_libcall_names(),
    ));
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    ctx.func.signature.params.push(AbiParam::new(ptr));
    ctx.func.signature.returns.push(AbiParam::new(types::I64));
    let id = module
        .declare_function("program", Linkage::Local, &ctx.func.signature)
        .map_err(|e| err(&e))?;
    ctx.func.name = UserFuncName::user(0, id.as_u32());

    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let args = b.block_params(entry)[0];
        let vars = (0..program.max_locals())
            .map(|_| b.declare_var(types::I64))
            .collect();
        // Arguments never change during a run: trusted, read-only loads.
        let arg_flags = MemFlagsData::trusted().with_readonly();
        let mut g = Gen {
            b,
            args,
            arg_flags,
            vars,
            scope: 0,
        };
        let v = g.expr(program.expr());
        g.b.ins().return_(&[v]);
        g.b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).map_err(|e| err(&e))?;
    let machine_code = ctx
        .compiled_code()
        .map_or_else(Vec::new, |c| c.code_buffer().to_vec());
    let ir = std::mem::replace(&mut ctx.func, Function::new());
    module.clear_context(&mut ctx);
    module.finalize_definitions().map_err(|e| err(&e))?;
    let raw = module.get_finalized_function(id);
    // SAFETY: `raw` is the finalized code of the function just defined
    // with the signature `fn(ptr) -> i64` in the host's default (C)
    // calling convention, which is exactly `Entry`.
    let entry = unsafe { std::mem::transmute::<*const u8, Entry>(raw) };
    Ok(JitCode {
        module: Some(module),
        entry,
        ir,
        machine_code,
    })
}

/// Calls the compiled function.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &JitCode, args: &[i64]) -> i64 {
    // SAFETY: the code only loads `args[i]` for `i < arg_count`, which our
    // caller guarantees `args` holds; its memory lives as long as `code`.
    unsafe { (code.entry)(args.as_ptr()) }
}

/// The optimised IR, then the machine code Cranelift made of it.
fn show(code: &JitCode) -> String {
    let listing = super::disassembly::disassemble(&code.machine_code, &[])
        .unwrap_or_else(|| "; (disassembly is for x86-64 hosts only)\n".into());
    format!(
        "; {} bytes of machine code\n{}\n; machine code\n{listing}",
        code.machine_code.len(),
        code.ir.display()
    )
}

/// IR generation state: the builder, the argument pointer and one variable
/// per scope depth.
struct Gen<'a> {
    b: FunctionBuilder<'a>,
    args: Value,
    arg_flags: MemFlagsData,
    vars: Vec<Variable>,
    scope: usize,
}

impl Gen<'_> {
    /// Emits `e` into the current block and returns its value. Recursion
    /// depth is the tree's depth, at most `MAX_DEPTH`.
    fn expr(&mut self, e: &Expr) -> Value {
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(n) => self.b.ins().iconst(types::I64, *n),
            Expr::Arg(i) => {
                // Offsets beyond `i32` go through an address add; such a
                // program can never get enough arguments to run anyway.
                let flags = self.arg_flags;
                let offset = (*i as i64).wrapping_mul(8);
                match i32::try_from(offset) {
                    Ok(off) => self.b.ins().load(types::I64, flags, self.args, off),
                    Err(_) => {
                        let addr = self.b.ins().iadd_imm_s(self.args, offset);
                        self.b.ins().load(types::I64, flags, addr, 0)
                    }
                }
            }
            Expr::Get(d) => self.b.use_var(self.vars[self.scope - 1 - d]),
            Expr::Add(a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.b.ins().iadd(a, b)
            }
            Expr::Let(init, body) => {
                let v = self.expr(init);
                self.b.def_var(self.vars[self.scope], v);
                self.scope += 1;
                let r = self.expr(body);
                self.scope -= 1;
                r
            }
            Expr::Set(d, v) => {
                let v = self.expr(v);
                self.b.def_var(self.vars[self.scope - 1 - d], v);
                self.b.ins().iconst(types::I64, 0)
            }
            Expr::While(c, body) => {
                let header = self.b.create_block();
                let body_block = self.b.create_block();
                let exit = self.b.create_block();
                self.b.ins().jump(header, &[]);
                self.b.switch_to_block(header);
                let c = self.expr(c);
                let positive = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, c, 0);
                self.b.ins().brif(positive, body_block, &[], exit, &[]);
                // Seal each block as soon as all its predecessors exist (the
                // usual cranelift-frontend discipline), so variable reads in
                // it resolve on the spot instead of through placeholder
                // block parameters resolved at the end.
                self.b.seal_block(body_block);
                self.b.seal_block(exit);
                self.b.switch_to_block(body_block);
                self.expr(body);
                self.b.ins().jump(header, &[]);
                self.b.seal_block(header);
                self.b.switch_to_block(exit);
                self.b.ins().iconst(types::I64, 0)
            }
            Expr::Then(a, b) => {
                self.expr(a);
                self.expr(b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Technique;

    crate::engines::conformance::conformance_tests!(Jit, extra: [REGISTER_TRICKY]);

    #[test]
    fn show_prints_ir_size_and_machine_code() {
        let shown = crate::engines::conformance::workload_listing::<Jit>("sum");
        assert!(
            shown.contains("bytes of machine code") && shown.contains("iadd"),
            "{shown}"
        );
        if cfg!(target_arch = "x86_64") {
            let (_, machine) = shown.split_once("; machine code\n").unwrap();
            assert!(machine.lines().any(|l| l.ends_with(" ret")), "{shown}");
        }
    }

    #[test]
    fn large_programs_take_the_cheap_tier_and_still_agree() {
        for n in [OPTIMIZE_UP_TO_NODES / 2, OPTIMIZE_UP_TO_NODES * 3] {
            let p = crate::random::balanced::scaling(n);
            let want = crate::engines::walker::Walker::compile(&p).unwrap();
            let got = Jit::compile(&p).unwrap();
            for a in [0, 5, -3] {
                // SAFETY: generated programs take one argument.
                let (w, g) = unsafe {
                    (
                        crate::engines::walker::Walker::execute(&want, &[a]),
                        Jit::execute(&got, &[a]),
                    )
                };
                assert_eq!(w, g, "{n} nodes, arg {a}");
            }
        }
    }

    /// Bytes of anonymous executable memory mapped in this process: where
    /// Cranelift's `JITModule` puts machine code (a fresh mapping per
    /// compiled program, unmapped by `free_memory`).
    #[cfg(target_os = "linux")]
    fn executable_anonymous_bytes() -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // range perms offset dev inode [path]: no path = anonymous
                let anonymous = fields.len() == 5 && fields[4] == "0";
                if !anonymous || !fields[1].starts_with("r-x") {
                    return None;
                }
                let (from, to) = fields[0].split_once('-')?;
                let size = |hex| u64::from_str_radix(hex, 16).ok();
                Some(size(to)? - size(from)?)
            })
            .sum()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn compiling_many_programs_frees_their_code() {
        let p = crate::workloads::workload("fib")
            .unwrap()
            .program()
            .unwrap();
        const N: u64 = 200;
        // Other tests may compile JIT code meanwhile, but only a few
        // programs at a time; a leak here would add a page per program.
        let page = 4096;
        let before = executable_anonymous_bytes();
        // While kept, the programs' code is seen (the measure works)...
        let kept: Vec<JitCode> = (0..N).map(|_| Jit::compile(&p).unwrap()).collect();
        for code in &kept {
            // SAFETY: fib needs two arguments.
            assert_eq!(unsafe { Jit::execute(code, &[10, 1]) }, Ok(55));
        }
        let held = executable_anonymous_bytes();
        assert!(held >= before + N * page, "{before} -> {held} bytes");
        drop(kept);
        // ... and once dropped, it is unmapped.
        let after = executable_anonymous_bytes();
        assert!(
            after < before + N * page / 4,
            "{before} -> {after} bytes after dropping"
        );
        for _ in 0..N {
            let code = Jit::compile(&p).unwrap();
            // SAFETY: fib needs two arguments.
            assert_eq!(unsafe { Jit::execute(&code, &[10, 1]) }, Ok(55));
        }
        let last = executable_anonymous_bytes();
        assert!(
            last < before + N * page / 4,
            "{before} -> {last} bytes after {N} more"
        );
    }
}
