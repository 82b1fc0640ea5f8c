//! `bytecode` — a naive stack machine: a flat list of instructions, a value
//! stack, and one `match` in a loop.
//!
//! **Compile** walks the tree once and emits a `Vec<`[`Op`]`>`: operands push
//! onto the value stack, `Add` pops two and pushes one, `Store` pops into a
//! local. Every node is compiled either *for its value* (net one push) or
//! *for effect* (net zero): the discarded side of `Then` and a loop body emit
//! no value at all, so `x = 1; …` costs no `push 0` / `pop` pair. `While` is
//! rotated: jump to the condition, which sits after the body and jumps back
//! while it is `> 0` (or, for a `<` condition, while `jump<` holds) — one
//! conditional jump per iteration.
//! **Locals** are resolved at compile time to absolute slots (`Get(d)` at
//! scope depth `s` is slot `s - 1 - d`), because the number of locals in scope
//! is fixed at every point of the program: a `Let` is a `store` into the next
//! slot and leaving its scope costs nothing. **At run time** one buffer holds
//! the locals (exactly [`Program::max_locals`] slots) followed by the value
//! stack (exactly the maximum height the compiler computed).
//!
//! **Unchecked execution.** Before a [`Chunk`] is handed out, a small
//! verifier (in the spirit of rhai's / the JVM's) abstractly runs the code
//! once per body: it proves every path reaches `return` (main) or `ret` (a
//! function), every jump lands inside the same body, stack heights agree
//! where paths meet, never underflow and never exceed the computed maximum,
//! every local and argument index is in range and every `call` names a
//! function of its arity. The dispatch loop then indexes code, stack and locals unchecked.
//!
//! **What an instruction costs**: the dispatch — load the opcode and its
//! operand, an indirect jump through the `match`'s table, a jump back to the
//! loop head (Rust has no computed goto, so every handler shares one
//! indirect jump) — plus the handler's own stack traffic. The instruction
//! pointer stays an index: as an address it needs fewer instructions (no
//! scaling), but measured slower. There is no operand-location variant: a
//! literal operand is a `push`, then `add` (or `sub`, `lt`).
//!
//! **Calls, returns, branches.** One code vector holds main (ending in
//! `return`, which ends the run) and then every function's body (ending in
//! `ret`), each verified on its own; a `call` names its function, whose
//! entry and frame size sit in a small table beside the code. A call's
//! arguments are pushed in order and *become* the callee's first locals
//! where they lie: the callee's frame starts at the first argument, its
//! other locals and its value stack follow, all in the same buffer above
//! the caller's stack, so a **frame** is a base pointer into that buffer and
//! `get`/`store` index from it. The call pushes a record — the address to
//! continue at and the caller's frame base — on a `Vec` of its own, whose
//! length is the depth: the call that finds `MAX_CALLS` records fails the
//! run. `ret` writes the value where the first argument was, pops the record
//! and continues: one instruction. The native stack never grows with guest
//! calls; the buffer grows (doubling, rarely) when a callee's frame would not
//! fit, so records hold frame bases as slot indices. A call costs a dispatch
//! plus the depth check, a table load, the room check and the record push;
//! a return a dispatch, the value's move and the record pop. `if` compiles to the condition,
//! a conditional jump over the `else` arm to the `then` arm, and one jump
//! from the end of `else`; a `<` whose value only a branch needs (in `if`
//! or a loop's condition) becomes `jump<`, which compares the two operands
//! and jumps — an instruction choice, not a fused pair: the `<` never makes
//! a value. A program without functions runs a copy of the loop without the
//! frame state, so Level 1 compiles and runs exactly as before.
//!
//! Trade-off: the code is compact and compile is one cheap pass, but every
//! node costs a dispatch through the `match` plus stack memory traffic.
//!
//! Unsafe code rests on the verifier above, not on trusting the compiler.

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::fmt;
use std::ops::Range;

/// One instruction. Stack effects are given as `before -- after`. Its kind
/// without operands is an [`OpKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(OpKind), derive(strum::VariantArray, strum::IntoStaticStr))]
pub enum Op {
    /// `-- n`
    Push(i64),
    /// `-- args[i]`
    Arg(usize),
    /// `-- locals[slot]`
    Get(usize),
    /// `v --`, stores `v` into `locals[slot]` (both `Let` and `Set`).
    Store(usize),
    /// `a b -- a+b` (wrapping)
    Add,
    /// Continue at the target.
    Jump(usize),
    /// `c --`, continue at the target if `c > 0`.
    JumpIfPositive(usize),
    /// `v --`, the program's value.
    Return,
    /// `a b -- a-b` (wrapping)
    Sub,
    /// `a b -- (a<b)` as 1 or 0
    Lt,
    /// `a b --`, continue at the target if `a < b`: a `<` whose value only
    /// a branch needs.
    JumpIfLess(usize),
    /// `v --`, a value nobody needs (a call's, for effect).
    Pop,
    /// `a1 … an -- r`: calls `function` with the `arity` values on top of
    /// the stack as its first locals; `r` is what it returns.
    Call { function: u32, arity: u32 },
    /// `v --`, ends the active call with `v` as the call's value.
    Ret,
}

impl Op {
    /// (values popped, values pushed)
    fn stack_effect(self) -> (usize, usize) {
        match self {
            Op::Push(_) | Op::Arg(_) | Op::Get(_) => (0, 1),
            Op::Store(_) | Op::JumpIfPositive(_) | Op::Return | Op::Pop | Op::Ret => (1, 0),
            Op::Add | Op::Sub | Op::Lt => (2, 1),
            Op::JumpIfLess(_) => (2, 0),
            Op::Jump(_) => (0, 0),
            Op::Call { arity, .. } => (arity as usize, 1),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Push(n) => write!(f, "push     {n}"),
            Op::Arg(i) => write!(f, "arg      {i}"),
            Op::Get(s) => write!(f, "get      L{s}"),
            Op::Store(s) => write!(f, "store    L{s}"),
            Op::Add => write!(f, "add"),
            Op::Jump(t) => write!(f, "jump     @{t}"),
            Op::JumpIfPositive(t) => write!(f, "jump>0   @{t}"),
            Op::Return => write!(f, "return"),
            Op::Sub => write!(f, "sub"),
            Op::Lt => write!(f, "lt"),
            Op::JumpIfLess(t) => write!(f, "jump<    @{t}"),
            Op::Pop => write!(f, "pop"),
            Op::Call { function, arity } => write!(f, "call     f{function}/{arity}"),
            Op::Ret => write!(f, "ret"),
        }
    }
}

/// Verified code plus the buffer sizes it was verified against.
pub struct Chunk {
    ops: Vec<Op>,
    locals: usize,
    max_stack: usize,
    /// Each function's entry and frame, in the program's order: what a
    /// `call` reads.
    callees: Vec<Callee>,
    /// The functions' names and parameters, for the listing.
    signatures: Vec<String>,
}

/// What a call needs to know of its callee, verified with the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callee {
    /// Address of the body's first instruction.
    pub entry: usize,
    /// Local slots of the body, its parameters first (never fewer than the
    /// parameters).
    pub locals: usize,
    /// Slots a frame of this function takes: its locals, then its highest
    /// value stack.
    pub frame: usize,
}

impl Chunk {
    /// The instructions; the verifier accepted them for [`Chunk::locals`]
    /// local slots, a stack of [`Chunk::max_stack`] values and the
    /// program's argument count (main), and each function's body for its
    /// [`Callee`] frame.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Local slots main uses: exactly [`Program::max_locals`].
    pub fn locals(&self) -> usize {
        self.locals
    }

    /// The highest main's value stack ever gets, exactly.
    pub fn max_stack(&self) -> usize {
        self.max_stack
    }

    /// The functions a `call` may name, by index.
    pub fn callees(&self) -> &[Callee] {
        &self.callees
    }
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "; {} instructions, {} local slots, value stack {} deep",
            self.ops.len(),
            self.locals,
            self.max_stack
        )?;
        let width = self.ops.len().saturating_sub(1).to_string().len().max(2);
        for (at, op) in self.ops.iter().enumerate() {
            if let Some(i) = self.callees.iter().position(|c| c.entry == at) {
                let c = self.callees[i];
                writeln!(
                    f,
                    "; fn {}: {} local slots, frame {} slots",
                    self.signatures[i], c.locals, c.frame
                )?;
            }
            match *op {
                Op::Call { function, arity } => {
                    let callee = self.callees[function as usize];
                    let name = self.signatures[function as usize]
                        .split('(')
                        .next()
                        .unwrap_or_default();
                    writeln!(f, "{at:>width$}  call     {name}/{arity} @{}", callee.entry)?
                }
                op => writeln!(f, "{at:>width$}  {op}")?,
            }
        }
        Ok(())
    }
}

/// Compiles and verifies: the entry point `bytecode_closures` shares.
///
/// One code vector: main first (ending in `return`), then each function's
/// body (ending in `ret`) at the entry its [`Callee`] records.
pub fn compile_chunk(program: &Program) -> Result<Chunk, CompileError> {
    let mut c = Compiler {
        ops: Vec::with_capacity(program.node_count() + 1 + program.functions().len()),
        height: 0,
        max_stack: 0,
    };
    c.value(program.expr(), 0);
    c.emit(Op::Return);
    let main_stack = c.max_stack;
    let mut callees = Vec::with_capacity(program.functions().len());
    for (function, facts) in program.functions().iter().zip(program.function_facts()) {
        let entry = c.ops.len();
        (c.height, c.max_stack) = (0, 0);
        c.value(&function.body, function.arity());
        c.emit(Op::Ret);
        callees.push(Callee {
            entry,
            locals: facts.max_locals,
            frame: facts.max_locals + c.max_stack,
        });
    }
    let chunk = Chunk {
        ops: c.ops,
        locals: program.max_locals(),
        max_stack: main_stack,
        signatures: program
            .functions()
            .iter()
            .map(|f| format!("{}({})", f.name, f.params.join(", ")))
            .collect(),
        callees,
    };
    let failed = |e: String| CompileError(format!("bytecode verifier: {e}"));
    let arities: Vec<usize> = program.functions().iter().map(|f| f.arity()).collect();
    let ends = chunk
        .callees
        .iter()
        .map(|c| c.entry)
        .chain([chunk.ops.len()]);
    let bodies = std::iter::once((0, chunk.locals, chunk.max_stack, None))
        .chain(
            chunk
                .callees
                .iter()
                .zip(&arities)
                .map(|(c, &arity)| (c.entry, c.locals, c.frame - c.locals, Some(arity))),
        )
        .zip(ends);
    for ((start, locals, max_stack, arity), end) in bodies {
        let body = Body {
            code: start..end,
            locals,
            max_stack,
            arity,
        };
        let verified =
            verify_body(&chunk.ops, &body, program.arg_count(), &arities).map_err(failed)?;
        if verified != max_stack {
            return Err(failed(format!(
                "stack reaches {verified} in the body at @{start}, compiler computed {max_stack}"
            )));
        }
    }
    Ok(chunk)
}

struct Compiler {
    ops: Vec<Op>,
    /// Value-stack height at the current point of straight-line code.
    height: usize,
    max_stack: usize,
}

impl Compiler {
    fn emit(&mut self, op: Op) -> usize {
        let (pops, pushes) = op.stack_effect();
        self.height = self.height - pops + pushes;
        self.max_stack = self.max_stack.max(self.height);
        self.ops.push(op);
        self.ops.len() - 1
    }

    /// Code leaving `e`'s value on the stack; `scope` locals are in scope.
    fn value(&mut self, e: &Expr, scope: usize) {
        match e {
            Expr::Litr(n) => _ = self.emit(Op::Push(*n)),
            Expr::Arg(i) => _ = self.emit(Op::Arg(*i)),
            Expr::Get(d) => _ = self.emit(Op::Get(scope - 1 - d)),
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                self.value(a, scope);
                self.value(b, scope);
                self.emit(match e {
                    Expr::Add(..) => Op::Add,
                    Expr::Sub(..) => Op::Sub,
                    _ => Op::Lt,
                });
            }
            Expr::Let(init, body) => {
                self.value(init, scope);
                self.emit(Op::Store(scope));
                self.value(body, scope + 1);
            }
            Expr::Then(a, b) => {
                self.effect(a, scope);
                self.value(b, scope);
            }
            Expr::Set(..) | Expr::While(..) => {
                self.effect(e, scope);
                self.emit(Op::Push(0));
            }
            Expr::If(cond, then, otherwise) => self.if_(cond, then, otherwise, scope, Self::value),
            Expr::Call(function, args) => self.call(*function, args, scope),
        }
    }

    /// Code for `e`'s effects only: the stack is as high after as before.
    fn effect(&mut self, e: &Expr, scope: usize) {
        match e {
            // Reading has no effect; `+`, `-` and `<` cannot trap.
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            Expr::Add(a, b) | Expr::Then(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                self.effect(a, scope);
                self.effect(b, scope);
            }
            Expr::Let(init, body) => {
                self.value(init, scope);
                self.emit(Op::Store(scope));
                self.effect(body, scope + 1);
            }
            Expr::Set(d, v) => {
                self.value(v, scope);
                self.emit(Op::Store(scope - 1 - d));
            }
            Expr::While(cond, body) => {
                let enter = self.emit(Op::Jump(usize::MAX));
                let top = self.ops.len();
                self.effect(body, scope);
                let test = self.ops.len();
                self.jump_if(cond, scope, top);
                self.ops[enter] = Op::Jump(test);
            }
            Expr::If(cond, then, otherwise) => self.if_(cond, then, otherwise, scope, Self::effect),
            Expr::Call(function, args) => {
                self.call(*function, args, scope);
                self.emit(Op::Pop);
            }
        }
    }

    /// Arguments left to right, then the call: they become the callee's
    /// first locals where they lie.
    fn call(&mut self, function: usize, args: &[Expr], scope: usize) {
        for arg in args {
            self.value(arg, scope);
        }
        let narrow = |n: usize| u32::try_from(n).expect("a program has fewer than 2^32 functions");
        self.emit(Op::Call {
            function: narrow(function),
            arity: narrow(args.len()),
        });
    }

    /// Code that continues at `target` when `cond` holds (`> 0`), and falls
    /// through otherwise, leaving the stack as it was. A `<` whose value
    /// only this branch needs is a `jump<`.
    fn jump_if(&mut self, cond: &Expr, scope: usize, target: usize) -> usize {
        match cond {
            Expr::Lt(a, b) => {
                self.value(a, scope);
                self.value(b, scope);
                self.emit(Op::JumpIfLess(target))
            }
            _ => {
                self.value(cond, scope);
                self.emit(Op::JumpIfPositive(target))
            }
        }
    }

    /// `if`: the condition jumps over the `else` arm to the `then` arm, so
    /// each arm costs one branch (and `else` one jump to the end). `arm`
    /// compiles each arm for its value or for effect.
    fn if_(
        &mut self,
        cond: &Expr,
        then: &Expr,
        otherwise: &Expr,
        scope: usize,
        arm: fn(&mut Compiler, &Expr, usize),
    ) {
        let to_then = self.jump_if(cond, scope, usize::MAX);
        let height = self.height;
        arm(self, otherwise, scope);
        let to_end = self.emit(Op::Jump(usize::MAX));
        self.retarget(to_then, self.ops.len());
        self.height = height;
        arm(self, then, scope);
        self.retarget(to_end, self.ops.len());
    }

    fn retarget(&mut self, at: usize, target: usize) {
        match &mut self.ops[at] {
            Op::Jump(t) | Op::JumpIfPositive(t) | Op::JumpIfLess(t) => *t = target,
            op => unreachable!("{op} is not a jump"),
        }
    }
}

/// One body for the verifier: main (no arity; it ends in `return`) or a
/// function's (its arity; it ends in `ret`), with the frame it gets.
pub struct Body {
    /// Its instructions: control must stay inside.
    pub code: Range<usize>,
    pub locals: usize,
    pub max_stack: usize,
    pub arity: Option<usize>,
}

/// [`verify_body`] for code that is main alone (no functions).
pub fn verify(ops: &[Op], locals: usize, args: usize, max_stack: usize) -> Result<usize, String> {
    let main = Body {
        code: 0..ops.len(),
        locals,
        max_stack,
        arity: None,
    };
    verify_body(ops, &main, args, &[])
}

/// Abstractly runs `body` from its first address and returns the highest
/// stack height any path reaches, or why the code is not safe to run
/// unchecked with its frame, `args` arguments and functions of these
/// `arities` to call.
pub fn verify_body(
    ops: &[Op],
    body: &Body,
    args: usize,
    arities: &[usize],
) -> Result<usize, String> {
    let Body {
        code,
        locals,
        max_stack,
        arity,
    } = body;
    let (locals, max_stack) = (*locals, *max_stack);
    if arity.is_some_and(|a| a > locals) {
        return Err(format!(
            "@{}: fewer local slots than parameters",
            code.start
        ));
    }
    if code.end > ops.len() {
        return Err(format!("a body ends at @{}, past the end", code.end));
    }
    let mut seen: Vec<Option<usize>> = vec![None; code.len()];
    let mut todo = vec![(code.start, 0usize)];
    let mut highest = 0;
    while let Some((at, height)) = todo.pop() {
        if !code.contains(&at) {
            return Err(format!("control reaches @{at}, past the end of its body"));
        }
        let op = ops[at];
        match seen[at - code.start] {
            Some(h) if h == height => continue,
            Some(h) => {
                return Err(format!(
                    "@{at} is reached with stack heights {h} and {height}"
                ));
            }
            None => seen[at - code.start] = Some(height),
        }
        let (pops, pushes) = op.stack_effect();
        let Some(after) = (height.checked_sub(pops)).map(|h| h + pushes) else {
            return Err(format!("@{at} {op}: stack underflow"));
        };
        if after > max_stack {
            return Err(format!("@{at} {op}: stack exceeds {max_stack}"));
        }
        highest = highest.max(after);
        match op {
            Op::Arg(i) if i >= args => return Err(format!("@{at} {op}: only {args} arguments")),
            Op::Get(s) | Op::Store(s) if s >= locals => {
                return Err(format!("@{at} {op}: only {locals} local slots"));
            }
            Op::Call { function, arity } => {
                if arities.get(function as usize) != Some(&(arity as usize)) {
                    return Err(format!("@{at} {op}: no function of that arity"));
                }
                todo.push((at + 1, after));
            }
            Op::Jump(t) => todo.push((t, after)),
            Op::JumpIfPositive(t) | Op::JumpIfLess(t) => todo.extend([(t, after), (at + 1, after)]),
            Op::Return if arity.is_some() => return Err(format!("@{at} return in a function")),
            Op::Ret if arity.is_none() => return Err(format!("@{at} ret in main")),
            Op::Return | Op::Ret => {}
            _ => todo.push((at + 1, after)),
        }
    }
    Ok(highest)
}

technique! {
    Bytecode = "bytecode", Original, Chunk;
    "stack bytecode: a Vec of instructions run by a match loop";
    compile: compile_chunk, try_execute: run, show: Chunk::to_string;
    const LEVEL: Level = Level::Two;
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<OpKind>()
    }
    fn census(chunk: &Chunk) -> Vec<(String, usize)> {
        crate::engine::census_of(chunk.ops().iter().map(OpKind::from))
    }
}

/// An active call's record, below its callee's frame: where the caller
/// continues and where its frame starts (a slot index, so that growing the
/// stack moves nothing but the buffer).
#[derive(Clone, Copy)]
struct Return {
    ip: usize,
    fp: usize,
}

/// Value-stack slots a program with functions starts with, beyond main's
/// frame; a call that needs more grows the buffer.
pub(crate) const STACK_HEADROOM: usize = 4096;

/// Runs a verified chunk.
///
/// # Safety
///
/// `args` holds at least the argument count `chunk` was verified for (its
/// program's `arg_count`).
unsafe fn run(chunk: &Chunk, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // Locals first, then the value stack, in one allocation; with
    // functions, the frames of the calls above.
    let main_frame = chunk.locals + chunk.max_stack;
    if chunk.callees.is_empty() {
        let mut stack = vec![0i64; main_frame];
        // SAFETY: our caller's contract; the chunk has no functions.
        unsafe { execute::<false>(chunk, args, &mut stack) }
    } else {
        let mut stack = vec![0i64; main_frame + STACK_HEADROOM];
        // SAFETY: our caller's contract.
        unsafe { execute::<true>(chunk, args, &mut stack) }
    }
}

/// The dispatch loop; `CALLS` is false for a chunk without functions,
/// whose loop then has no frame state to keep.
///
/// # Safety
///
/// As for [`run`], and `stack` holds at least main's frame; `CALLS` is
/// true if `chunk` has functions.
#[inline(always)]
unsafe fn execute<const CALLS: bool>(
    chunk: &Chunk,
    args: &[i64],
    stack: &mut Vec<i64>,
) -> Result<i64, CallDepthExceeded> {
    let mut base = stack.as_mut_ptr();
    let mut calls: Vec<Return> = Vec::new();
    let args = args.as_ptr();
    let ops = chunk.ops.as_ptr();
    let callees = chunk.callees.as_ptr();
    // SAFETY: `verify_body` accepted main for `chunk.locals` local slots,
    // `chunk.max_stack` stack values and the program's argument count, and
    // each function's body for its `Callee` frame and the same arguments;
    // our caller guarantees `args` holds that many and `stack` main's frame.
    // So: `ip` only takes values the verifier followed (address 0, `ip+1`
    // after non-terminal instructions, jump targets inside the same body,
    // a callee's entry, the address after a call on `ret`), all inside
    // `ops`; `Get`/`Store` slots are below the active body's local slots,
    // counted from `fp`; `Arg` indices are below the argument count; the
    // stack pointer stays within `[fp + locals, fp + locals + max_stack]`
    // of the active body because the verifier tracked the exact height at
    // every address (no underflow, never above `max_stack`), and `return`
    // and `ret` see ≥ 1 value. A call's frame starts at its arguments
    // (inside the caller's stack: the caller's height covers the arity)
    // and fits in `stack` because the call grows it first; a `ret` pops
    // the record its call pushed (main never runs `ret`). Raw pointers into
    // `stack` are rebuilt from slot indices after it grows, and `stack`
    // is neither moved nor resized otherwise while they are in use.
    unsafe {
        let mut end = base.add(stack.len());
        let mut fp = base;
        let mut sp = fp.add(chunk.locals);
        let mut ip = 0usize;
        loop {
            let op = *ops.add(ip);
            ip += 1;
            match op {
                Op::Push(n) => {
                    *sp = n;
                    sp = sp.add(1);
                }
                Op::Arg(i) => {
                    *sp = *args.add(i);
                    sp = sp.add(1);
                }
                Op::Get(s) => {
                    *sp = *fp.add(s);
                    sp = sp.add(1);
                }
                Op::Store(s) => {
                    sp = sp.sub(1);
                    *fp.add(s) = *sp;
                }
                Op::Add => {
                    sp = sp.sub(1);
                    let top = sp.sub(1);
                    *top = (*top).wrapping_add(*sp);
                }
                Op::Jump(t) => ip = t,
                Op::JumpIfPositive(t) => {
                    sp = sp.sub(1);
                    if *sp > 0 {
                        ip = t;
                    }
                }
                Op::Return => return Ok(*sp.sub(1)),
                Op::Sub => {
                    sp = sp.sub(1);
                    let top = sp.sub(1);
                    *top = (*top).wrapping_sub(*sp);
                }
                Op::Lt => {
                    sp = sp.sub(1);
                    let top = sp.sub(1);
                    *top = i64::from(*top < *sp);
                }
                Op::JumpIfLess(t) => {
                    sp = sp.sub(2);
                    if *sp < *sp.add(1) {
                        ip = t;
                    }
                }
                Op::Pop => sp = sp.sub(1),
                Op::Call { function, arity } => {
                    if !CALLS {
                        // SAFETY: the verifier accepts a call only of one
                        // of the chunk's functions, and it has none.
                        std::hint::unreachable_unchecked()
                    }
                    if calls.len() == MAX_CALLS {
                        return Err(CallDepthExceeded);
                    }
                    let callee = *callees.add(function as usize);
                    let mut callee_fp = sp.sub(arity as usize);
                    if (end.offset_from(callee_fp) as usize) < callee.frame {
                        let (fp_at, callee_at) =
                            (fp.offset_from(base), callee_fp.offset_from(base));
                        grow(stack, callee_at as usize + callee.frame);
                        base = stack.as_mut_ptr();
                        end = base.add(stack.len());
                        fp = base.offset(fp_at);
                        callee_fp = base.offset(callee_at);
                    }
                    calls.push(Return {
                        ip,
                        fp: fp.offset_from(base) as usize,
                    });
                    fp = callee_fp;
                    sp = fp.add(callee.locals);
                    ip = callee.entry;
                }
                Op::Ret => {
                    if !CALLS {
                        // SAFETY: the verifier accepts `ret` only in a
                        // function's body, and the chunk has none.
                        std::hint::unreachable_unchecked()
                    }
                    *fp = *sp.sub(1);
                    sp = fp.add(1);
                    let back = calls.pop().unwrap_unchecked();
                    ip = back.ip;
                    fp = base.add(back.fp);
                }
            }
        }
    }
}

/// Makes room for `slots` stack slots (at least doubling, so a deep
/// recursion grows the buffer a logarithmic number of times).
#[cold]
#[inline(never)]
pub(crate) fn grow(stack: &mut Vec<i64>, slots: usize) {
    let len = slots.max(2 * stack.len());
    stack.resize(len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::compile_source;

    crate::engines::conformance::conformance_tests!(Bytecode);

    #[test]
    fn while_is_rotated_and_effects_push_nothing() {
        let p = compile_source("t", "let n = arg(0); while n { n = n + -1 }; n").unwrap();
        let chunk = compile_chunk(&p).unwrap();
        use Op::*;
        assert_eq!(
            chunk.ops(),
            &[
                Arg(0),
                Store(0),
                Jump(7),
                Get(0),
                Push(-1),
                Add,
                Store(0),
                Get(0),
                JumpIfPositive(3),
                Get(0),
                Return
            ]
        );
        assert_eq!((chunk.locals(), chunk.max_stack()), (1, 2));
        let listing = chunk.to_string();
        assert!(listing.contains(" 8  jump>0   @3"), "{listing}");
    }

    #[test]
    fn a_call_passes_arguments_as_locals_and_a_branch_compares() {
        let src = "fn f(n) { if n < 2 { n } else { f(n - 1) - 1 } }\nf(arg(0))";
        let p = compile_source("t", src).unwrap();
        let chunk = compile_chunk(&p).unwrap();
        use Op::*;
        let f = Call {
            function: 0,
            arity: 1,
        };
        assert_eq!(
            chunk.ops(),
            &[
                Arg(0),
                f,
                Return,
                // f: the `<` only branches; `else` first, `then` after it.
                Get(0),
                Push(2),
                JumpIfLess(13),
                Get(0),
                Push(1),
                Sub,
                f,
                Push(1),
                Sub,
                Jump(14),
                Get(0),
                Ret
            ]
        );
        assert_eq!(
            (chunk.callees()[0].entry, chunk.callees()[0].locals),
            (3, 1)
        );
        let listing = chunk.to_string();
        assert!(listing.contains("; fn f(n): 1 local slots"), "{listing}");
        assert!(listing.contains(" 9  call     f/1 @3"), "{listing}");
        let code = crate::engine::Registered::<Bytecode>::NEW;
        use crate::engine::Engine;
        assert_eq!(code.compile(&p).unwrap().execute(&[5]), Ok(-3));
    }

    #[test]
    fn max_stack_is_exact() {
        let p = compile_source("t", "1 + (2 + (3 + (4 + 5)))").unwrap();
        assert_eq!(compile_chunk(&p).unwrap().max_stack(), 5);
        let p = compile_source("t", "1 + 2 + 3 + 4 + 5").unwrap();
        assert_eq!(compile_chunk(&p).unwrap().max_stack(), 2);
    }

    #[test]
    fn verifier_rejects_unsound_code() {
        use Op::*;
        assert!(verify(&[Push(1), Return], 0, 0, 1).is_ok());
        assert!(
            verify(&[Add, Return], 0, 0, 4)
                .unwrap_err()
                .contains("underflow")
        );
        assert!(verify(&[Push(1), Push(1), Add, Return], 0, 0, 1).is_err());
        assert!(
            verify(&[Push(1)], 0, 0, 4)
                .unwrap_err()
                .contains("past the end")
        );
        assert!(verify(&[Jump(5)], 0, 0, 4).is_err());
        assert!(verify(&[Get(0), Return], 0, 0, 4).is_err());
        assert!(verify(&[Push(1), Store(1), Push(1), Return], 1, 0, 4).is_err());
        assert!(verify(&[Arg(1), Return], 0, 1, 4).is_err());
        // Heights disagree where the paths meet.
        let merge = [Push(1), JumpIfPositive(3), Push(2), Push(3), Return];
        assert!(verify(&merge, 0, 0, 4).unwrap_err().contains("heights"));
        // `ret` belongs to functions, `return` to main; a call must name a
        // function of its arity.
        assert!(verify(&[Push(1), Ret], 0, 0, 4).is_err());
        let call = Call {
            function: 0,
            arity: 1,
        };
        assert!(verify(&[Push(1), call, Return], 0, 0, 4).is_err());
        let main = |code| Body {
            code,
            locals: 0,
            max_stack: 4,
            arity: None,
        };
        let ops = [Push(1), call, Return, Get(0), Ret];
        assert!(verify_body(&ops, &main(0..3), 0, &[1]).is_ok());
        assert!(verify_body(&ops, &main(0..3), 0, &[2]).is_err());
        let function = |code, arity| Body {
            code,
            locals: 1,
            max_stack: 4,
            arity: Some(arity),
        };
        assert!(verify_body(&ops, &function(3..5, 1), 0, &[1]).is_ok());
        // More parameters than local slots; control leaving the body.
        assert!(verify_body(&ops, &function(3..5, 2), 0, &[1]).is_err());
        let leaves = [Get(0), Jump(0), Ret];
        assert!(verify_body(&leaves, &function(1..3, 1), 0, &[1]).is_err());
        assert!(verify_body(&[Push(1), Return], &function(0..2, 0), 0, &[]).is_err());
    }
}
