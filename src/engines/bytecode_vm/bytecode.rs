//! `bytecode` — a naive stack machine: a flat list of instructions, a value
//! stack, and one `match` in a loop.
//!
//! **Compile** walks the tree once and emits a `Vec<`[`Op`]`>`: operands push
//! onto the value stack, `Add` pops two and pushes one, `Store` pops into a
//! local. Every node is compiled either *for its value* (net one push) or
//! *for effect* (net zero): the discarded side of `Then` and a loop body emit
//! no value at all, so `x = 1; …` costs no `push 0` / `pop` pair. `While` is
//! rotated: jump to the condition, which sits after the body and jumps back
//! while it is `> 0` — one conditional jump per iteration.
//! **Locals** are resolved at compile time to absolute slots (`Get(d)` at
//! scope depth `s` is slot `s - 1 - d`), because the number of locals in scope
//! is fixed at every point of the program: a `Let` is a `store` into the next
//! slot and leaving its scope costs nothing. **At run time** one buffer holds
//! the locals (exactly [`Program::max_locals`] slots) followed by the value
//! stack (exactly the maximum height the compiler computed).
//!
//! **Unchecked execution.** Before a [`Chunk`] is handed out, a small
//! verifier (in the spirit of rhai's / the JVM's) abstractly runs the code
//! once: it proves every path reaches `return`, every jump lands inside the
//! code, stack heights agree where paths meet, never underflow and never
//! exceed the computed maximum, and every local and argument index is in
//! range. The dispatch loop then indexes code, stack and locals unchecked.
//!
//! **What an instruction costs**: the dispatch — load the opcode and its
//! operand, an indirect jump through the `match`'s table, a jump back to the
//! loop head (Rust has no computed goto, so every handler shares one
//! indirect jump) — plus the handler's own stack traffic. The instruction
//! pointer stays an index: as an address it needs fewer instructions (no
//! scaling), but measured slower. There is no operand-location variant (the
//! original's design had none): a literal operand is a `push`, then `add`.
//!
//! Trade-off: the code is compact and compile is one cheap pass, but every
//! node costs a dispatch through the `match` plus stack memory traffic.
//!
//! Unsafe code rests on the verifier above, not on trusting the compiler.

use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt;

/// One instruction. Stack effects are given as `before -- after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl Op {
    /// (values popped, values pushed)
    fn stack_effect(self) -> (usize, usize) {
        match self {
            Op::Push(_) | Op::Arg(_) | Op::Get(_) => (0, 1),
            Op::Store(_) | Op::JumpIfPositive(_) | Op::Return => (1, 0),
            Op::Add => (2, 1),
            Op::Jump(_) => (0, 0),
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
        }
    }
}

/// Verified code plus the buffer sizes it was verified against.
pub struct Chunk {
    ops: Vec<Op>,
    locals: usize,
    max_stack: usize,
}

impl Chunk {
    /// The instructions; the verifier accepted them for [`Chunk::locals`]
    /// local slots, a stack of [`Chunk::max_stack`] values and the
    /// program's argument count.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Local slots the code uses: exactly [`Program::max_locals`].
    pub fn locals(&self) -> usize {
        self.locals
    }

    /// The highest the value stack ever gets, exactly.
    pub fn max_stack(&self) -> usize {
        self.max_stack
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
            writeln!(f, "{at:>width$}  {op}")?;
        }
        Ok(())
    }
}

/// Compiles and verifies: the entry point `bytecode_closures` shares.
pub fn compile_chunk(program: &Program) -> Result<Chunk, CompileError> {
    let mut c = Compiler {
        ops: Vec::with_capacity(program.node_count() + 1),
        height: 0,
        max_stack: 0,
    };
    c.value(program.expr(), 0);
    c.emit(Op::Return);
    let chunk = Chunk {
        ops: c.ops,
        locals: program.max_locals(),
        max_stack: c.max_stack,
    };
    let verified = verify(
        &chunk.ops,
        chunk.locals,
        program.arg_count(),
        chunk.max_stack,
    )
    .map_err(|e| CompileError(format!("bytecode verifier: {e}")))?;
    if verified != chunk.max_stack {
        return Err(CompileError(format!(
            "bytecode verifier: stack reaches {verified}, compiler computed {}",
            chunk.max_stack
        )));
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(n) => _ = self.emit(Op::Push(*n)),
            Expr::Arg(i) => _ = self.emit(Op::Arg(*i)),
            Expr::Get(d) => _ = self.emit(Op::Get(scope - 1 - d)),
            Expr::Add(a, b) => {
                self.value(a, scope);
                self.value(b, scope);
                self.emit(Op::Add);
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
        }
    }

    /// Code for `e`'s effects only: the stack is as high after as before.
    fn effect(&mut self, e: &Expr, scope: usize) {
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            // Reading has no effect; `+` cannot trap.
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            Expr::Add(a, b) | Expr::Then(a, b) => {
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
                self.value(cond, scope);
                self.emit(Op::JumpIfPositive(top));
                self.ops[enter] = Op::Jump(test);
            }
        }
    }
}

/// Abstractly runs `ops` from address 0 and returns the highest stack height
/// any path reaches, or why the code is not safe to run unchecked with
/// `locals` local slots, `args` arguments and a stack of `max_stack` values.
pub fn verify(ops: &[Op], locals: usize, args: usize, max_stack: usize) -> Result<usize, String> {
    let mut seen: Vec<Option<usize>> = vec![None; ops.len()];
    let mut todo = vec![(0usize, 0usize)];
    let mut highest = 0;
    while let Some((at, height)) = todo.pop() {
        let Some(&op) = ops.get(at) else {
            return Err(format!("control reaches @{at}, past the end"));
        };
        match seen[at] {
            Some(h) if h == height => continue,
            Some(h) => {
                return Err(format!(
                    "@{at} is reached with stack heights {h} and {height}"
                ));
            }
            None => seen[at] = Some(height),
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
            Op::Jump(t) => todo.push((t, after)),
            Op::JumpIfPositive(t) => todo.extend([(t, after), (at + 1, after)]),
            Op::Return => {}
            _ => todo.push((at + 1, after)),
        }
    }
    Ok(highest)
}

technique! {
    Bytecode = "bytecode", Original, Chunk;
    "stack bytecode: a Vec of instructions run by a match loop";
    compile: compile_chunk, execute: run, show: Chunk::to_string;
}

/// Runs a verified chunk.
///
/// # Safety
///
/// `args` holds at least the argument count `chunk` was verified for (its
/// program's `arg_count`).
unsafe fn run(chunk: &Chunk, args: &[i64]) -> i64 {
    // Locals first, then the value stack, in one allocation.
    let mut frame = vec![0i64; chunk.locals + chunk.max_stack];
    let locals = frame.as_mut_ptr();
    let args = args.as_ptr();
    let ops = chunk.ops.as_ptr();
    // SAFETY: `verify` accepted `chunk.ops` for `chunk.locals` local
    // slots, `chunk.max_stack` stack values and the program's argument
    // count, and our caller guarantees `args` holds that many.
    // So: `ip` only takes values the verifier followed (address 0, `ip+1`
    // after non-terminal instructions, jump targets), all inside `ops`;
    // `Get`/`Store` slots are below `chunk.locals`; `Arg` indices are
    // below the argument count; the stack pointer stays within
    // `[locals + chunk.locals, locals + chunk.locals + max_stack]`
    // because the verifier tracked the exact height at every address
    // (no underflow, never above `max_stack`), and `return` sees ≥ 1
    // value. `frame` is neither moved nor resized while the raw pointers
    // are in use.
    unsafe {
        let mut sp = locals.add(chunk.locals);
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
                    *sp = *locals.add(s);
                    sp = sp.add(1);
                }
                Op::Store(s) => {
                    sp = sp.sub(1);
                    *locals.add(s) = *sp;
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
                Op::Return => return *sp.sub(1),
            }
        }
    }
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
    }
}
