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
//! body block that jumps back, and an exit block; a Level-1 program is one
//! native function called through an `extern "C" fn(*const i64) -> i64`.
//! Dropping the compiled program frees its machine code.
//!
//! **Calls and branches** (Level 2): each guest function is a Cranelift
//! function of its own in the program's module,
//! `f([args,] depth, params…) -> (value, depth)`, and a guest call is a
//! direct native `call` to it. Nothing is inlined: Cranelift inlines only
//! when its embedder asks (`Context::inline`), and this one never does. A
//! frame is Cranelift's native frame: parameters arrive in registers (on
//! the stack past six), locals are SSA values, and what is live across a
//! call sits in callee-saved registers or spill slots. Only a function
//! that can reach an `arg(i)` (itself or through its calls) takes the
//! args pointer. The depth (calls active) travels as a parameter and
//! comes back as the second result, so no register keeps it across a
//! call: a function whose depth exceeds `MAX_CALLS` returns `(0, 0)` at
//! once, and every call site tests the depth it got back (`test rdx, rdx;
//! je`) and fails upwards in turn, so nothing after the failing call
//! runs; main returns `(value, failed)`. That is one compare at each
//! function's entry and one test after each call. `if`, and `while` on a
//! `<`, are one `icmp` and one `brif`, which Cranelift emits as `cmp` and
//! `jcc`; only a `<` used as a value becomes 0/1 (`setl`, `movzx`).
//! Native recursion: `native_stack` declares main's frame plus
//! `MAX_CALLS` times the largest function's, read exactly from Cranelift's
//! frame layout of the compiled code (so it compiles the program), and
//! room for the rest of the run. Cranelift's x64 epilogue ends `mov rsp,
//! rbp; pop rbp`, which made each return's stack pointer wait for the
//! frame pointer its callee had just loaded back (a chain of dependent
//! loads through a whole recursion); at Level 2 the compiled bytes lose
//! that move, which is redundant there (`drop_frame_pointer_moves`).
//! What remains per call beyond the `rust` candle's: the frame pointer's
//! push and set-up, callee-saved registers stored and reloaded even on a
//! path that makes no call (Cranelift does not shrink-wrap), the entry's
//! depth compare and the test after each call. A Level-1 program
//! compiles exactly as before (one function returning one value).
//!
//! **Size tier**: a program of more than [`OPTIMIZE_UP_TO_NODES`] nodes
//! is compiled with `opt_level=none` and Cranelift's single-pass register
//! allocator, as production JITs cap what their optimising tier accepts:
//! the e-graph optimiser and the backtracking register allocator both cost
//! more per node the larger the one function they work on, so compile time
//! would grow faster than the program. With both off it grows linearly.
//! Every built-in workload is far below the limit and fully optimised.
//!
//! Trade-off: execution is as fast as native code gets here, but compiling
//! costs tens to hundreds of microseconds (a code generator, a register
//! allocator and a fresh executable mapping per program), orders of
//! magnitude more than any interpreter's compile stage.
//!
//! **Unsafe code** rests on trusting its own compiler: the machine code it
//! calls is what it generated from a validated program, reading only
//! arguments below `arg_count`, with the one edit above, which keeps the
//! code's meaning because Cranelift never moves `rsp` inside these bodies.

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, FuncRef, Function, InstBuilder, MemFlagsData, Signature,
    UserFuncName, Value, types,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, ModuleReloc, default_libcall_names};
use std::sync::OnceLock;

/// A Level-1 program's entry point: `args` points at `arg_count` values.
type Entry = unsafe extern "C" fn(args: *const i64) -> i64;

/// What a Level-2 main returns: its value, and whether the call depth was
/// exceeded under it (then `value` means nothing). Two integer registers
/// in the C convention (`rax`, `rdx` on x86-64), as Cranelift returns two
/// `i64` results.
#[repr(C)]
struct Returned {
    value: i64,
    failed: i64,
}

/// A Level-2 program's entry point (main).
type EntryTwo = unsafe extern "C" fn(args: *const i64) -> Returned;

/// Which entry a program has: Level-1 code is compiled exactly as it was
/// before functions existed.
#[derive(Clone, Copy)]
enum Start {
    One(Entry),
    Two(EntryTwo),
}

/// One compiled body (main or a function), for `show` and the stack.
struct Body {
    name: String,
    ir: Function,
    machine_code: Vec<u8>,
    /// Native stack one activation takes: Cranelift's frame (callee-saved
    /// registers, spill slots, outgoing arguments) and the return address
    /// and frame pointer.
    frame_bytes: usize,
}

/// A compiled program: its machine code (owned by `module`) and, for
/// `show`, each body's optimised IR and a copy of its machine code.
pub struct JitCode {
    /// `Some` until dropped; owns the executable memory `start` points into.
    module: Option<JITModule>,
    start: Start,
    /// Main first, then the functions in program order.
    bodies: Vec<Body>,
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `&mut self` means no call through `start` is running,
            // and `start` is dropped with `self`, so it is never called again.
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
    compile: |program| compile(program).map(|(code, _)| code),
    try_execute: run,
    show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        native_stack(program)
    }
}

/// Native stack a run takes besides its guest frames: the thread's start,
/// the compile on the same thread (Cranelift's passes, unoptimised in the
/// test profile) and the entry from Rust.
const RUN_OVERHEAD: usize = 2 << 20;

/// A run's native stack: every guest call is a native call, so with the
/// deepest chain active the stack holds main's frame and `MAX_CALLS`
/// frames of the largest function. The frames are Cranelift's own
/// (measured from the compiled code, exact), so this compiles the program.
fn native_stack(program: &Program) -> usize {
    if program.functions().is_empty() {
        return 0;
    }
    match compile(program) {
        Ok((_, frames)) => frames
            .largest_function
            .saturating_mul(MAX_CALLS)
            .saturating_add(frames.main)
            .saturating_add(RUN_OVERHEAD),
        // A program that does not compile never runs.
        Err(_) => 0,
    }
}

/// The native frames a compiled program's bodies take, in bytes.
struct Frames {
    main: usize,
    largest_function: usize,
}

/// Compiles `program`: main, then each function as a native function of
/// its own in the same module.
fn compile(program: &Program) -> Result<(JitCode, Frames), CompileError> {
    let err = |e: &dyn std::fmt::Display| CompileError(format!("cranelift: {e}"));
    let mut module = JITModule::new(JITBuilder::with_isa(
        isa(program.node_count() <= OPTIMIZE_UP_TO_NODES)?,
        default_libcall_names(),
    ));
    let ptr = module.target_config().pointer_type();
    let level_two = program.level() == Level::Two;
    // Level 1: `fn(args) -> i64`, as always. Level 2: main returns
    // `(value, failed)`; a function takes the args pointer (if it can
    // reach an `arg(i)`), its depth (the calls active with it) and its
    // parameters, and returns `(value, its depth)`, or `(0, 0)` when a
    // call under it failed.
    let reads_args = functions_reading_args(program);
    let blank = module.make_signature();
    let signature = |function: Option<(usize, bool)>| {
        let mut sig = blank.clone();
        sig.returns.push(AbiParam::new(types::I64));
        if level_two {
            sig.returns.push(AbiParam::new(types::I64));
        }
        match function {
            None => sig.params.push(AbiParam::new(ptr)),
            Some((arity, args)) => {
                if args {
                    sig.params.push(AbiParam::new(ptr));
                }
                sig.params.push(AbiParam::new(types::I64));
                sig.params
                    .extend(std::iter::repeat_n(AbiParam::new(types::I64), arity));
            }
        }
        sig
    };
    let main_sig = signature(None);
    let main_id = module
        .declare_function("main", Linkage::Local, &main_sig)
        .map_err(|e| err(&e))?;
    let mut ids = Vec::new();
    for (i, f) in program.functions().iter().enumerate() {
        let sig = signature(Some((f.arity(), reads_args[i])));
        let name = format!("f{i}_{}", f.name);
        ids.push((
            module
                .declare_function(&name, Linkage::Local, &sig)
                .map_err(|e| err(&e))?,
            sig,
        ));
    }

    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut bodies = Vec::new();
    let facts = program.function_facts();
    let mut units: Vec<(String, FuncId, Signature, &Expr, usize, Shape)> = vec![(
        "main".into(),
        main_id,
        main_sig,
        program.expr(),
        program.max_locals(),
        Shape::Main,
    )];
    for (i, f) in program.functions().iter().enumerate() {
        let (id, sig) = ids[i].clone();
        let shape = Shape::Function {
            arity: f.arity(),
            args: reads_args[i],
        };
        units.push((f.name.clone(), id, sig, &f.body, facts[i].max_locals, shape));
    }
    for (name, id, sig, body, locals, shape) in units {
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let funcs: Vec<(FuncRef, bool)> = if level_two {
            ids.iter()
                .zip(&reads_args)
                .map(|((f, _), &args)| (module.declare_func_in_func(*f, &mut ctx.func), args))
                .collect()
        } else {
            Vec::new()
        };
        {
            let b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            Gen::body(
                b,
                body,
                locals,
                shape,
                level_two.then_some(funcs),
                module.target_config(),
            );
        }
        let machine_code = if level_two {
            // Compiled here, so the epilogues can lose their `mov rsp, rbp`
            // before the module places the code.
            let isa = module.isa();
            let align = ctx
                .compile(isa, &mut Default::default())
                .map_err(|e| err(&format!("{:?}", e.inner)))?
                .buffer
                .alignment as u64;
            let align = align
                .max(isa.function_alignment().minimum as u64)
                .max(isa.symbol_alignment());
            let compiled = ctx.compiled_code().expect("just compiled");
            let mut code = compiled.code_buffer().to_vec();
            drop_frame_pointer_moves(&mut code);
            let relocs: Vec<ModuleReloc> = compiled
                .buffer
                .relocs()
                .iter()
                .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
                .collect();
            module
                .define_function_bytes(id, align, &code, &relocs)
                .map_err(|e| err(&e))?;
            code
        } else {
            module.define_function(id, &mut ctx).map_err(|e| err(&e))?;
            ctx.compiled_code()
                .expect("just compiled")
                .code_buffer()
                .to_vec()
        };
        let compiled = ctx.compiled_code().expect("just compiled");
        let frame = compiled
            .buffer
            .frame_layout()
            .map_or(0, |l| l.frame_to_fp_offset as usize);
        let ir = std::mem::replace(&mut ctx.func, Function::new());
        module.clear_context(&mut ctx);
        bodies.push(Body {
            name,
            ir,
            machine_code,
            // The return address and the saved frame pointer.
            frame_bytes: frame + 16,
        });
    }
    module.finalize_definitions().map_err(|e| err(&e))?;
    let raw = module.get_finalized_function(main_id);
    let start = if level_two {
        // SAFETY: `raw` is the finalized code of main, defined with the
        // signature `fn(ptr) -> (i64, i64)` in the host's default (C)
        // calling convention, which returns the pair as `Returned`.
        Start::Two(unsafe { std::mem::transmute::<*const u8, EntryTwo>(raw) })
    } else {
        // SAFETY: `raw` is the finalized code of main, defined with the
        // signature `fn(ptr) -> i64` in the host's default (C) calling
        // convention, which is exactly `Entry`.
        Start::One(unsafe { std::mem::transmute::<*const u8, Entry>(raw) })
    };
    let frames = Frames {
        main: bodies[0].frame_bytes,
        largest_function: bodies[1..].iter().map(|b| b.frame_bytes).max().unwrap_or(0),
    };
    let code = JitCode {
        module: Some(module),
        start,
        bodies,
    };
    Ok((code, frames))
}

/// Turns each epilogue's `mov rsp, rbp` (followed by `pop rbp`) into a
/// `nop` of the same length. Cranelift's x64 epilogue first adds the whole
/// frame back to `rsp` (`rsp` never moves between prologue and epilogue:
/// these bodies have no dynamic stack allocation), so `rsp` already equals
/// `rbp` there; the move only made every return wait for the frame pointer
/// its callee's `pop rbp` had just loaded, a chain of dependent loads
/// through a whole recursion. Leaves the code as it is unless every byte
/// decodes (Cranelift puts no data among this code's instructions: no
/// constant pool, no jump table).
fn drop_frame_pointer_moves(code: &mut [u8]) {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Register};
    let mut decoder = Decoder::new(64, code, DecoderOptions::NONE);
    let mut all: Vec<Instruction> = Vec::new();
    while decoder.can_decode() {
        let i = decoder.decode();
        if i.is_invalid() {
            return;
        }
        all.push(i);
    }
    let moves: Vec<(usize, usize)> = all
        .windows(2)
        .filter(|w| {
            matches!(w[0].code(), Code::Mov_rm64_r64 | Code::Mov_r64_rm64)
                && w[0].op0_register() == Register::RSP
                && w[0].op1_register() == Register::RBP
                && w[1].code() == Code::Pop_r64
                && w[1].op0_register() == Register::RBP
        })
        .map(|w| (w[0].ip() as usize, w[0].len()))
        .collect();
    for (at, len) in moves {
        if len == 3 {
            // `nop dword [rax]`: three bytes, no effect.
            code[at..at + 3].copy_from_slice(&[0x0f, 0x1f, 0x00]);
        }
    }
}

/// Calls the compiled main.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s
/// contract); a Level-2 program runs on a thread with the stack
/// [`native_stack`] declares (the registry's callers give it).
unsafe fn run(code: &JitCode, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    match code.start {
        // SAFETY: the code only loads `args[i]` for `i < arg_count`, which
        // our caller guarantees `args` holds; its memory lives as long as
        // `code`.
        Start::One(entry) => Ok(unsafe { entry(args.as_ptr()) }),
        // SAFETY: as for Level 1; the native recursion is bounded by the
        // depth count (at most `MAX_CALLS` guest frames), which the stack
        // `native_stack` declares holds (the registry's callers give it).
        Start::Two(entry) => match unsafe { entry(args.as_ptr()) } {
            Returned { failed: 0, value } => Ok(value),
            _ => Err(CallDepthExceeded),
        },
    }
}

/// Each body's optimised IR, then the machine code Cranelift made of it.
fn show(code: &JitCode) -> String {
    let mut out = String::new();
    for body in &code.bodies {
        let listing = super::disassembly::disassemble(&body.machine_code, &[])
            .unwrap_or_else(|| "; (disassembly is for x86-64 hosts only)\n".into());
        out.push_str(&format!(
            "; {}: {} bytes of machine code, a {}-byte native frame\n{}\n; machine code\n{listing}\n",
            body.name,
            body.machine_code.len(),
            body.frame_bytes,
            body.ir.display()
        ));
    }
    out
}

/// What a Level-2 body needs to make calls: its own depth (a variable:
/// each call gives it back, so it need not be kept across the call), the
/// functions it may call (and whether each takes the args pointer) and
/// the block that reports a failed call upwards.
struct Calls {
    depth: Variable,
    funcs: Vec<(FuncRef, bool)>,
    failed: Block,
}

/// Which kind of body is compiled.
#[derive(Clone, Copy)]
enum Shape {
    Main,
    /// A function: its parameters, and whether it takes the args pointer.
    Function {
        arity: usize,
        args: bool,
    },
}

/// For each function: whether a call of it can read a run argument (its
/// body reads `arg(i)` or calls a function that can). Only those get the
/// args pointer, so the others need not keep it across their calls.
fn functions_reading_args(program: &Program) -> Vec<bool> {
    fn walk(e: &Expr, reads: &mut bool, calls: &mut Vec<usize>) {
        match e {
            Expr::Arg(_) => *reads = true,
            Expr::Call(f, _) => calls.push(*f),
            _ => {}
        }
        for c in e.children() {
            walk(c, reads, calls);
        }
    }
    let (mut reads, mut callees) = (Vec::new(), Vec::new());
    for f in program.functions() {
        let (mut r, mut c) = (false, Vec::new());
        walk(&f.body, &mut r, &mut c);
        reads.push(r);
        callees.push(c);
    }
    // Up the call graph until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for f in 0..reads.len() {
            if !reads[f] && callees[f].iter().any(|&g| reads[g]) {
                reads[f] = true;
                changed = true;
            }
        }
    }
    reads
}

/// IR generation state: the builder, the argument pointer and one variable
/// per scope depth.
struct Gen<'a> {
    b: FunctionBuilder<'a>,
    /// The args pointer (a function that cannot read `arg(i)` has none).
    args: Option<Value>,
    arg_flags: MemFlagsData,
    vars: Vec<Variable>,
    scope: usize,
    calls: Option<Calls>,
}

impl<'a> Gen<'a> {
    /// Builds one body: main (`arity` is `None`) or a function. `funcs`
    /// is `Some` for a Level-2 program.
    fn body(
        mut b: FunctionBuilder<'a>,
        body: &Expr,
        locals: usize,
        shape: Shape,
        funcs: Option<Vec<(FuncRef, bool)>>,
        config: TargetFrontendConfig,
    ) {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let vars: Vec<Variable> = (0..locals).map(|_| b.declare_var(types::I64)).collect();
        // Arguments never change during a run: trusted, read-only loads.
        let arg_flags = MemFlagsData::trusted().with_readonly();
        let calls = funcs.map(|funcs| {
            let failed = b.create_block();
            b.set_cold_block(failed);
            let depth = b.declare_var(types::I64);
            Calls {
                depth,
                funcs,
                failed,
            }
        });
        let (args, rest) = match shape {
            Shape::Main | Shape::Function { args: true, .. } => (Some(params[0]), &params[1..]),
            Shape::Function { args: false, .. } => (None, &params[..]),
        };
        let mut g = Gen {
            b,
            args,
            arg_flags,
            vars,
            scope: 0,
            calls,
        };
        if let Some(calls) = &g.calls {
            let depth = match shape {
                Shape::Main => g.b.ins().iconst(types::I64, 0),
                Shape::Function { .. } => rest[0],
            };
            g.b.def_var(calls.depth, depth);
        }
        if let Shape::Function { arity, .. } = shape {
            // The depth check: this call is the `depth`-th active one.
            let calls = g.calls.as_ref().expect("functions are Level 2");
            let failed = calls.failed;
            let run = g.b.create_block();
            let over =
                g.b.ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThan, rest[0], MAX_CALLS as i64);
            g.b.ins().brif(over, failed, &[], run, &[]);
            g.b.seal_block(run);
            g.b.switch_to_block(run);
            for (i, &p) in rest[1..1 + arity].iter().enumerate() {
                g.b.def_var(g.vars[i], p);
            }
            g.scope = arity;
        }
        let v = g.expr(body);
        match g.calls.take() {
            None => {
                g.b.ins().return_(&[v]);
            }
            Some(calls) => {
                // Main: `(value, failed)`; a function: `(value, depth)`.
                let (second, failure) = match shape {
                    Shape::Main => (g.b.ins().iconst(types::I64, 0), 1),
                    Shape::Function { .. } => (g.b.use_var(calls.depth), 0),
                };
                g.b.ins().return_(&[v, second]);
                // Failure goes up through every frame, as no depth at all.
                g.b.seal_block(calls.failed);
                g.b.switch_to_block(calls.failed);
                let zero = g.b.ins().iconst(types::I64, 0);
                let failure = g.b.ins().iconst(types::I64, failure);
                g.b.ins().return_(&[zero, failure]);
            }
        }
        g.b.finalize(config);
    }

    /// Emits `e` into the current block and returns its value. Recursion
    /// depth is the tree's depth, at most `MAX_DEPTH`.
    fn expr(&mut self, e: &Expr) -> Value {
        match e {
            Expr::Litr(n) => self.b.ins().iconst(types::I64, *n),
            Expr::Arg(i) => {
                // Offsets beyond `i32` go through an address add; such a
                // program can never get enough arguments to run anyway.
                let flags = self.arg_flags;
                let args = self.args.expect("bodies that read arguments get them");
                let offset = (*i as i64).wrapping_mul(8);
                match i32::try_from(offset) {
                    Ok(off) => self.b.ins().load(types::I64, flags, args, off),
                    Err(_) => {
                        let addr = self.b.ins().iadd_imm_s(args, offset);
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
                self.branch(c, body_block, exit);
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
            Expr::Sub(a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.b.ins().isub(a, b)
            }
            Expr::Lt(a, b) => {
                // A 0/1 value only where one is used as a value.
                let a = self.expr(a);
                let b = self.expr(b);
                let lt = self.b.ins().icmp(IntCC::SignedLessThan, a, b);
                self.b.ins().uextend(types::I64, lt)
            }
            Expr::If(c, t, f) => {
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let join = self.b.create_block();
                let value = self.b.append_block_param(join, types::I64);
                self.branch(c, then_block, else_block);
                self.b.seal_block(then_block);
                self.b.seal_block(else_block);
                for (block, arm) in [(then_block, t), (else_block, f)] {
                    self.b.switch_to_block(block);
                    let v = self.expr(arm);
                    self.b.ins().jump(join, &[BlockArg::Value(v)]);
                }
                self.b.seal_block(join);
                self.b.switch_to_block(join);
                value
            }
            Expr::Call(f, args) => {
                let calls = self.calls.as_ref().expect("calls are Level 2");
                let (depth, (func, wants_args), failed) =
                    (calls.depth, calls.funcs[*f], calls.failed);
                let mut values = Vec::with_capacity(args.len() + 2);
                if wants_args {
                    values.push(
                        self.args
                            .expect("a caller of such a function reads arguments"),
                    );
                }
                let at = values.len();
                for arg in args {
                    let v = self.expr(arg);
                    values.push(v);
                }
                // The callee checks its depth against the limit.
                let own = self.b.use_var(depth);
                let callee = self.b.ins().iadd_imm_s(own, 1);
                values.insert(at, callee);
                let call = self.b.ins().call(func, &values);
                let (value, callee_depth) = match self.b.inst_results(call) {
                    &[v, d] => (v, d),
                    _ => unreachable!("Level-2 bodies return two values"),
                };
                // The callee's depth comes back (0: it failed); this body's
                // is one less, so it need not be kept across the call.
                let returned = self.b.create_block();
                self.b.ins().brif(callee_depth, returned, &[], failed, &[]);
                self.b.seal_block(returned);
                self.b.switch_to_block(returned);
                let own = self.b.ins().iadd_imm_s(callee_depth, -1);
                self.b.def_var(depth, own);
                value
            }
        }
    }

    /// Branches to `yes` when `c` is positive, else to `no`. A `<` there
    /// is one compare and a conditional jump: no 0/1 value is made.
    fn branch(&mut self, c: &Expr, yes: Block, no: Block) {
        let taken = if let Expr::Lt(a, b) = c {
            let a = self.expr(a);
            let b = self.expr(b);
            self.b.ins().icmp(IntCC::SignedLessThan, a, b)
        } else {
            let c = self.expr(c);
            self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, c, 0)
        };
        self.b.ins().brif(taken, yes, &[], no, &[]);
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
        // (Less the few pages other tests may have freed meanwhile.)
        assert!(
            held + N * page / 4 >= before + N * page,
            "{before} -> {held} bytes"
        );
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
