//! `tape_closures` — closures with no captured environment: plain `fn`
//! handlers that read their operands from a tape of static data at run time.
//!
//! **Compile** lays the tree out in pre-order on one flat tape of 8-byte
//! [`Word`]s. A node is its handler's `fn` pointer followed by its operands:
//!
//! | node | words |
//! |---|---|
//! | `Litr` | `litr`, value |
//! | `Arg` | `arg`, index |
//! | `Get` / `Set` | `get`/`set`, slot (`Set`'s value follows) |
//! | `Add` / `Then` / `Sub` / `Lt` | `add`/`then`/`sub`/`lt`, offset of the 2nd child (the 1st follows) |
//! | `Let` | `let`, slot, offset of the body (the init follows) |
//! | `While` | `while`, offset of the body (the condition follows) |
//! | `If` | `if`, offsets of `then` and `else` (the condition follows) |
//! | `Call` | `call`, the callee's body, locals in scope, callee's locals, arity, offset of each argument |
//!
//! Offsets are relative to the node, so a handler finds a child by pointer
//! arithmetic from its own address. Nothing is boxed; the handlers are the
//! same few functions for every program — what differs is the tape.
//! **Values** are the handlers' return values, as in `closures`. **Locals**
//! are slots resolved at compile time (`Get(d)` at scope `s` is slot
//! `s - 1 - d`) in a buffer of exactly [`Program::max_locals`] slots (with
//! functions, main's frame at its start).
//! **Control**: a node runs by calling the handler in its first word with
//! its own address; `While` is a native `loop` in its handler, so native
//! stack depth is the tree's depth, never the iteration count.
//!
//! **What a node costs**: as in `closures`, a call per child — here one
//! load (the handler word at the child's address, found from an offset in
//! the node) and the call — plus saving `env` and the node's address across
//! it; a leaf is one or two loads and a return. An operand is read from the
//! tape rather than from a captured environment, which costs the same load.
//! There is no operand-location variant: a literal operand is its own node,
//! called like any other.
//!
//! **Calls, returns, branches.** Main is laid out first, then each
//! function's body; a `call` node holds its callee's body as an offset, so
//! no table is consulted. Its handler evaluates the arguments left to right
//! into a native buffer, checks the depth (a counter of active calls),
//! copies them into
//! the callee's first slots and runs the body's root node with the locals
//! pointer moved up; the body's value is the handler's return value, which
//! *is* the return. The call that would make `MAX_CALLS + 1` active fails
//! the run: it sets the counter far above the limit, from then on every
//! call returns at once and every loop stops at its next test, and
//! `execute` reports the failure instead of the value. Only that loop test
//! costs anything, and only in a program with functions, whose loops are
//! `while'` nodes (`while` plus the test); no other handler checks. A **frame** is a window of one locals buffer, starting
//! just above the locals in scope at the call site (recorded in the node),
//! so its locals live in the engine's memory, but like `closures` the
//! evaluation that is waiting for the call's value lives on the native
//! stack: every handler between a body's root and a call in it is a native
//! frame, so the native stack grows with the calls active, and the engine
//! declares the stack `MAX_CALLS` of them need (measured frame size,
//! doubled). Keeping those pending evaluations off the native stack would
//! take continuations, which is another technique. A call costs the
//! handler, a buffer copy of the arguments and restoring the caller's
//! locals pointer (the buffer may have grown, doubling, so it is found
//! again by index); `if` is one handler that runs its condition and then
//! one arm. There are no compare-and-branch nodes: `<` is a node like `+`.
//!
//! Trade-off: compile is one allocation and no closure objects, the tape is
//! dense and cache-friendly, and every call is to one of a few known
//! functions; in exchange each handler loads its operands from memory.
//!
//! Unsafe code rests on trusting this module's own compiler (the tape
//! layout it writes, slots and argument indices from validation); there is
//! no verifier.

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, MAX_PARAMS, Program};
use std::fmt::Write;
use std::mem::MaybeUninit;

/// What every handler reaches besides its node: the run's arguments, the
/// active frame's locals and, with functions, the calls.
///
/// Invariant: `args` points at the program's `arg_count` readable values;
/// `locals` at the active body's frame inside `stack`, with at least the
/// body's local slots after it.
pub struct Env {
    args: *const i64,
    locals: *mut i64,
    /// Every active frame's locals: main's, then each call's above the
    /// locals in scope at its call site.
    stack: Vec<i64>,
    /// Calls active now; [`FAILED`] and above once a call exceeded the
    /// limit.
    calls: usize,
}

/// What `Env::calls` becomes when a call would exceed the limit: far above
/// it, so that it stays above while the pending calls return.
const FAILED: usize = usize::MAX / 2;

/// A node's handler.
///
/// Every handler has the same contract (its `# Safety`): `at` points at the
/// first word of a node on a live tape built by [`TapeClosures::compile`],
/// and `env` satisfies the [`Env`] invariant for that tape's program.
type Handler = unsafe fn(at: *const Word, env: &mut Env) -> i64;

/// One tape cell. Which field is live is fixed by the cell's position in the
/// layout `compile` wrote (see the module docs), and only the handler of
/// the node owning the cell reads it.
#[derive(Clone, Copy)]
pub union Word {
    op: Handler,
    int: i64,
    index: usize,
}

/// What a tape cell holds, recorded beside the tape for `show` only. One
/// byte per word: the operand itself is read back from the word, so the
/// side table adds an eighth to the tape rather than tripling it (at 10^6
/// nodes a fat table pushed compile past the allocator's reuse threshold,
/// into fresh zeroed pages on every compile, which cost more than the tape
/// itself).
#[derive(Clone, Copy)]
enum Role {
    /// A node's handler.
    Op(Op),
    /// A literal (`Word::int`).
    Litr,
    /// An argument index (`Word::index`).
    Arg,
    /// A local slot (`Word::index`).
    Slot,
    /// A child's position relative to its node's first word (`Word::index`).
    Child,
    /// A function body's position relative to the calling node (`Word::int`).
    Body,
    /// A count of locals (`Word::index`).
    Count,
}

/// The handlers, by name.
#[derive(Clone, Copy, PartialEq, strum::VariantArray, strum::IntoStaticStr)]
enum Op {
    Litr,
    Arg,
    Get,
    Set,
    Add,
    Then,
    Let,
    While,
    Sub,
    Lt,
    If,
    Call,
    /// `while` in a program with functions: it also stops once a call has
    /// failed the run.
    WhileCalls,
}

impl Op {
    fn handler(self) -> Handler {
        match self {
            Op::Litr => litr,
            Op::Arg => arg,
            Op::Get => get,
            Op::Set => set,
            Op::Add => add,
            Op::Then => then,
            Op::Let => let_,
            Op::While => while_,
            Op::Sub => sub,
            Op::Lt => lt,
            Op::If => if_,
            Op::Call => call,
            Op::WhileCalls => while_calls,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Litr => "litr",
            Op::Arg => "arg",
            Op::Get => "get",
            Op::Set => "set",
            Op::Add => "add",
            Op::Then => "then",
            Op::Let => "let",
            Op::While => "while",
            Op::Sub => "sub",
            Op::Lt => "lt",
            Op::If => "if",
            Op::Call => "call",
            Op::WhileCalls => "while'",
        }
    }
}

/// The compiled program.
pub struct Tape {
    words: Vec<Word>,
    roles: Vec<Role>,
    locals: usize,
    /// Where each function's body starts, and its signature (for `show`).
    bodies: Vec<(usize, String)>,
}

/// Runs the node at `at`.
///
/// # Safety
///
/// The [`Handler`] contract.
#[inline(always)]
unsafe fn run(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `at` is a node's first word, which holds its handler; the
    // handler's contract is the caller's.
    unsafe { ((*at).op)(at, env) }
}

// The handlers. Each one's `# Safety` is the `Handler` contract; each reads
// only the words `compile` wrote for its node kind (see the layout table),
// and child offsets point inside the tape because the child was written
// there. Slots and argument indices are in range by validation.

/// `[litr, value]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn litr(at: *const Word, _: &mut Env) -> i64 {
    // SAFETY: word 1 of a `litr` node is its value.
    unsafe { (*at.add(1)).int }
}

/// `[arg, index]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn arg(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: word 1 is an index below `arg_count` (validation), and
    // `env.args` holds that many values.
    unsafe { *env.args.add((*at.add(1)).index) }
}

/// `[get, slot]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn get(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: word 1 is a slot `scope - 1 - d < max_locals` (validation).
    unsafe { *env.locals.add((*at.add(1)).index) }
}

/// `[set, slot, value…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn set(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: the value node starts at word 2; word 1 is a slot in range.
    unsafe {
        let v = run(at.add(2), env);
        *env.locals.add((*at.add(1)).index) = v;
    }
    0
}

/// `[add, offset of b, a…, b…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn add(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `a` starts at word 2, `b` at the offset in word 1.
    unsafe {
        let a = run(at.add(2), env);
        a.wrapping_add(run(at.add((*at.add(1)).index), env))
    }
}

/// `[then, offset of b, a…, b…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn then(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `a` starts at word 2, `b` at the offset in word 1.
    unsafe {
        run(at.add(2), env);
        run(at.add((*at.add(1)).index), env)
    }
}

/// `[let, slot, offset of body, init…, body…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn let_(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `init` starts at word 3, the body at the offset in word 2;
    // word 1 is the slot `scope`, below `max_locals` because the body has
    // `scope + 1` locals in scope.
    unsafe {
        let v = run(at.add(3), env);
        *env.locals.add((*at.add(1)).index) = v;
        run(at.add((*at.add(2)).index), env)
    }
}

/// `[while, offset of body, cond…, body…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn while_(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: the condition starts at word 2, the body at the offset in word 1.
    unsafe {
        let body = at.add((*at.add(1)).index);
        while run(at.add(2), env) > 0 {
            run(body, env);
        }
    }
    0
}

/// `[sub, offset of b, a…, b…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn sub(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `a` starts at word 2, `b` at the offset in word 1.
    unsafe {
        let a = run(at.add(2), env);
        a.wrapping_sub(run(at.add((*at.add(1)).index), env))
    }
}

/// `[lt, offset of b, a…, b…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn lt(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: `a` starts at word 2, `b` at the offset in word 1.
    unsafe {
        let a = run(at.add(2), env);
        i64::from(a < run(at.add((*at.add(1)).index), env))
    }
}

/// `[if, offset of then, offset of else, cond…, then…, else…]`
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn if_(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: the condition starts at word 3, the arms at the offsets in
    // words 1 and 2.
    unsafe {
        let arm = if run(at.add(3), env) > 0 { 1 } else { 2 };
        run(at.add((*at.add(arm)).index), env)
    }
}

/// `[call, body, scope, locals, arity, offset of each argument…, arguments…]`:
/// the callee's body relative to this node, the locals in scope here (the
/// callee's frame starts above them), the callee's local slots, then the
/// arguments.
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn call(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: words 1 to 4 are the operands above, then `arity` offsets of
    // argument nodes; `compile` wrote them so. Each body was compiled for
    // its own frame: slots below its `locals`, which the frame holds once
    // the stack has grown to cover it. The caller's frame is found again
    // by its index, since growing moves the stack.
    unsafe {
        let arity = (*at.add(4)).index;
        // Not zeroed: only the first `arity` are written, and read.
        let mut values = [MaybeUninit::<i64>::uninit(); MAX_PARAMS];
        for (i, value) in values.iter_mut().enumerate().take(arity) {
            value.write(run(at.add((*at.add(5 + i)).index), env));
        }
        // Also true once the run has failed: every call returns at once.
        if env.calls >= MAX_CALLS {
            env.calls = FAILED;
            return 0;
        }
        let caller = env.locals.offset_from(env.stack.as_ptr()) as usize;
        let callee = caller + (*at.add(2)).index;
        let frame_end = callee + (*at.add(3)).index;
        if frame_end > env.stack.len() {
            grow(&mut env.stack, frame_end);
        }
        let frame = env.stack.as_mut_ptr().add(callee);
        std::ptr::copy_nonoverlapping(values.as_ptr().cast::<i64>(), frame, arity);
        env.locals = frame;
        env.calls += 1;
        let value = run(at.offset((*at.add(1)).int as isize), env);
        env.calls -= 1;
        env.locals = env.stack.as_mut_ptr().add(caller);
        value
    }
}

/// Makes room for frames up to slot `slots` (at least doubling).
#[cold]
#[inline(never)]
fn grow(stack: &mut Vec<i64>, slots: usize) {
    let len = slots.max(2 * stack.len());
    stack.resize(len, 0);
}

/// `[while', offset of body, cond…, body…]`: `while` in a program with
/// functions, which also stops once a call has failed the run.
///
/// # Safety
///
/// The [`Handler`] contract.
unsafe fn while_calls(at: *const Word, env: &mut Env) -> i64 {
    // SAFETY: the condition starts at word 2, the body at the offset in word 1.
    unsafe {
        let body = at.add((*at.add(1)).index);
        while env.calls <= MAX_CALLS && run(at.add(2), env) > 0 {
            run(body, env);
        }
    }
    0
}

struct Compiler {
    words: Vec<Word>,
    roles: Vec<Role>,
    /// Per call node: where its callee's offset goes, and the callee.
    calls: Vec<(usize, usize)>,
    /// The loop handler: `while'` when the program has functions.
    while_op: Op,
}

impl Compiler {
    fn put(&mut self, word: Word, role: Role) -> usize {
        self.words.push(word);
        self.roles.push(role);
        self.words.len() - 1
    }

    fn op(&mut self, op: Op) -> usize {
        self.put(Word { op: op.handler() }, Role::Op(op))
    }

    fn index(&mut self, index: usize, role: Role) {
        self.put(Word { index }, role);
    }

    /// Reserves the word that will hold a child's offset from `node`.
    fn hole(&mut self) -> usize {
        self.put(Word { index: 0 }, Role::Child)
    }

    /// The next node written is the child `hole` points to.
    fn patch(&mut self, node: usize, hole: usize) {
        let offset = self.words.len() - node;
        self.words[hole] = Word { index: offset };
    }

    fn node(&mut self, e: &Expr, scope: usize) {
        match *e {
            Expr::Litr(n) => {
                self.op(Op::Litr);
                self.put(Word { int: n }, Role::Litr);
            }
            Expr::Arg(i) => {
                self.op(Op::Arg);
                self.index(i, Role::Arg);
            }
            Expr::Get(d) => {
                self.op(Op::Get);
                self.index(scope - 1 - d, Role::Slot);
            }
            Expr::Set(d, ref value) => {
                self.op(Op::Set);
                self.index(scope - 1 - d, Role::Slot);
                self.node(value, scope);
            }
            Expr::Add(ref a, ref b)
            | Expr::Then(ref a, ref b)
            | Expr::Sub(ref a, ref b)
            | Expr::Lt(ref a, ref b) => {
                let at = match e {
                    Expr::Add(..) => self.op(Op::Add),
                    Expr::Then(..) => self.op(Op::Then),
                    Expr::Sub(..) => self.op(Op::Sub),
                    _ => self.op(Op::Lt),
                };
                let hole = self.hole();
                self.node(a, scope);
                self.patch(at, hole);
                self.node(b, scope);
            }
            Expr::Let(ref init, ref body) => {
                let at = self.op(Op::Let);
                self.index(scope, Role::Slot);
                let hole = self.hole();
                self.node(init, scope);
                self.patch(at, hole);
                self.node(body, scope + 1);
            }
            Expr::While(ref cond, ref body) => {
                let at = self.op(self.while_op);
                let hole = self.hole();
                self.node(cond, scope);
                self.patch(at, hole);
                self.node(body, scope);
            }
            Expr::If(ref cond, ref then, ref otherwise) => {
                let at = self.op(Op::If);
                let (to_then, to_else) = (self.hole(), self.hole());
                self.node(cond, scope);
                self.patch(at, to_then);
                self.node(then, scope);
                self.patch(at, to_else);
                self.node(otherwise, scope);
            }
            Expr::Call(function, ref args) => {
                let at = self.op(Op::Call);
                let body = self.put(Word { int: 0 }, Role::Body);
                self.calls.push((body, function));
                self.index(scope, Role::Count);
                // The callee's local slots: patched with its body.
                self.index(0, Role::Count);
                self.index(args.len(), Role::Count);
                let holes: Vec<usize> = args.iter().map(|_| self.hole()).collect();
                for (arg, hole) in args.iter().zip(holes) {
                    self.patch(at, hole);
                    self.node(arg, scope);
                }
            }
        }
    }
}

technique! {
    TapeClosures = "tape_closures", Original, Tape;
    "environment-free fn handlers reading operands from a tape";
    compile: compile, try_execute: execute, show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        crate::engine::recursive_native_stack(program, FRAME_BYTES)
    }
    // One node per handler on the tape, by its handler.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<Op>()
    }
    fn census(tape: &Tape) -> Vec<(String, usize)> {
        crate::engine::census_of(tape.roles.iter().filter_map(|r| match *r {
            Role::Op(op) => Some(op),
            _ => None,
        }))
    }
}

/// Native stack per frame that [`crate::engine::recursion_frames`]
/// counts: at most 96 bytes measured, in the test profile and in release
/// alike (a call straight
/// at the root of its body; 64 with the call under an `if`, 32 to 40 per
/// level of nesting around a call site); with a margin.
const FRAME_BYTES: usize = 256;

fn compile(program: &Program) -> Result<Tape, CompileError> {
    // At most three words per node (`Let`), but a call takes five and one
    // per argument.
    let words = 3 * program.node_count() + 5 * program.functions().len();
    let mut c = Compiler {
        words: Vec::with_capacity(words),
        roles: Vec::with_capacity(words),
        calls: Vec::new(),
        while_op: match program.functions() {
            [] => Op::While,
            _ => Op::WhileCalls,
        },
    };
    c.node(program.expr(), 0);
    // Main first, then each body, its parameters its first locals.
    let mut bodies = Vec::with_capacity(program.functions().len());
    for function in program.functions() {
        bodies.push(c.words.len());
        c.node(&function.body, function.arity());
    }
    for &(word, function) in &c.calls {
        // The call node's first word is just before its body word.
        let node = word - 1;
        c.words[word] = Word {
            int: bodies[function] as i64 - node as i64,
        };
        c.words[node + 3] = Word {
            index: program.function_facts()[function].max_locals,
        };
    }
    Ok(Tape {
        words: c.words,
        roles: c.roles,
        locals: program.max_locals(),
        bodies: program
            .functions()
            .iter()
            .zip(bodies)
            .map(|(f, at)| (at, format!("{}({})", f.name, f.params.join(", "))))
            .collect(),
    })
}

/// Runs the tape from its root node, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn execute(tape: &Tape, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    let mut env = Env {
        args: args.as_ptr(),
        locals: std::ptr::null_mut(),
        stack: vec![0i64; tape.locals],
        calls: 0,
    };
    // The `Env` invariant: main's locals sized from the program; the
    // caller covers `arg_count`.
    env.locals = env.stack.as_mut_ptr();
    // SAFETY: word 0 is the root node's first word (every program has a
    // root); the tape lives until we return.
    let value = unsafe { run(tape.words.as_ptr(), &mut env) };
    // A failed run's value is whatever the abandoned handlers returned.
    match env.calls {
        0 => Ok(value),
        _ => Err(CallDepthExceeded),
    }
}

fn show(tape: &Tape) -> String {
    let mut out = format!(
        "; {} words, {} local slots; @address: handler operands (children @absolute)\n",
        tape.words.len(),
        tape.locals
    );
    let mut node = 0;
    for (at, (role, word)) in tape.roles.iter().zip(&tape.words).enumerate() {
        let Role::Op(op) = *role else {
            // SAFETY: `compile` wrote every non-`Op` cell as `int` or
            // `index`, both plain 8-byte integers: either reads it.
            let x = unsafe { word.index };
            _ = match role {
                Role::Litr => write!(out, " {}", x as i64),
                Role::Arg => write!(out, " arg{x}"),
                Role::Slot => write!(out, " L{x}"),
                Role::Count => write!(out, " {x}"),
                Role::Body => write!(out, " fn@{}", node as i64 + x as i64),
                _ => write!(out, " →@{}", node + x),
            };
            continue;
        };
        node = at;
        if let Some((_, signature)) = tape.bodies.iter().find(|(body, _)| *body == at) {
            _ = write!(out, "\n; fn {signature}");
        }
        let sep = if at == 0 { "" } else { "\n" };
        _ = write!(out, "{sep}@{at:<5} {:<5}", op.name());
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::listing;

    crate::engines::conformance::conformance_tests!(TapeClosures);

    #[test]
    fn nothing_runs_after_the_call_that_fails() {
        use crate::engine::{Engine, Registered, RunError};
        let down = "fn down(n) { if 0 < n { down(n - 1) } else { 7 } }\n";
        let limit = crate::MAX_CALLS as i64;
        // The endless loop after the failing call never starts; the one
        // around it stops.
        for main in ["down(arg(0)); while 1 { }", "while 1 { down(arg(0)) }"] {
            let p = crate::front::compile_source("t", &format!("{down}{main}")).unwrap();
            let engine = &Registered::<TapeClosures>::NEW;
            let got = crate::reference::stack::on_native_stack(engine.native_stack(&p), || {
                engine.compile(&p).unwrap().execute(&[limit])
            });
            assert_eq!(got, Err(RunError::CallDepthExceeded), "{main}");
        }
    }

    #[test]
    fn show_lists_each_function_after_main() {
        assert_eq!(
            listing::<TapeClosures>("fn f(a, b) { if a < b { a } else { b - 1 } }\nf(arg(0), 2)"),
            [
                // body, locals in scope, callee's locals, arity, arguments
                "@0     call  fn@11 0 2 2 →@7 →@9",
                "@7     arg   arg0",
                "@9     litr  2",
                "; fn f(a, b)",
                "@11    if    →@20 →@22",
                "@14    lt    →@18",
                "@16    get   L0",
                "@18    get   L1",
                "@20    get   L0",
                "@22    sub   →@26",
                "@24    get   L1",
                "@26    litr  1"
            ]
        );
    }

    #[test]
    fn show_lists_the_tape_with_operands() {
        assert_eq!(
            listing::<TapeClosures>("let x = arg(0); x = x + 1"),
            [
                "@0     let   L0 →@5",
                "@3     arg   arg0",
                "@5     set   L0",
                "@7     add   →@11",
                "@9     get   L0",
                "@11    litr  1"
            ]
        );
    }
}
