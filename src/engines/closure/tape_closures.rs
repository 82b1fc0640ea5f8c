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
//! | `Add` / `Then` | `add`/`then`, offset of the 2nd child (the 1st follows) |
//! | `Let` | `let`, slot, offset of the body (the init follows) |
//! | `While` | `while`, offset of the body (the condition follows) |
//!
//! Offsets are relative to the node, so a handler finds a child by pointer
//! arithmetic from its own address. Nothing is boxed; the handlers are the
//! same ten functions for every program — what differs is the tape.
//! **Values** are the handlers' return values, as in `closures`. **Locals**
//! are slots resolved at compile time (`Get(d)` at scope `s` is slot
//! `s - 1 - d`) in a buffer of exactly [`Program::max_locals`] slots.
//! **Control**: a node runs by calling the handler in its first word with
//! its own address; `While` is a native `loop` in its handler, so native
//! stack depth is the tree's depth, never the iteration count.
//!
//! **What a node costs**: as in `closures`, a call per child — here one
//! load (the handler word at the child's address, found from an offset in
//! the node) and the call — plus saving `env` and the node's address across
//! it; a leaf is one or two loads and a return. An operand is read from the
//! tape rather than from a captured environment, which costs the same load.
//! There is no operand-location variant (the original's design had none): a
//! literal operand is its own node, called like any other.
//!
//! Trade-off: compile is one allocation and no closure objects, the tape is
//! dense and cache-friendly, and every call is to one of a few known
//! functions; in exchange each handler loads its operands from memory.
//!
//! Unsafe code rests on trusting this module's own compiler (the tape
//! layout it writes, slots and argument indices from validation); there is
//! no verifier.

use super::closures::Env;
use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt::Write;

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
}

/// The handlers, by name.
#[derive(Clone, Copy)]
enum Op {
    Litr,
    Arg,
    Get,
    Set,
    Add,
    Then,
    Let,
    While,
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
        }
    }
}

/// The compiled program.
pub struct Tape {
    words: Vec<Word>,
    roles: Vec<Role>,
    locals: usize,
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

struct Compiler {
    words: Vec<Word>,
    roles: Vec<Role>,
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
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
            Expr::Add(ref a, ref b) | Expr::Then(ref a, ref b) => {
                let at = match e {
                    Expr::Add(..) => self.op(Op::Add),
                    _ => self.op(Op::Then),
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
                let at = self.op(Op::While);
                let hole = self.hole();
                self.node(cond, scope);
                self.patch(at, hole);
                self.node(body, scope);
            }
        }
    }
}

technique! {
    TapeClosures = "tape_closures", Original, Tape;
    "environment-free fn handlers reading operands from a tape";
    compile: compile, execute: execute, show: show;
}

fn compile(program: &Program) -> Result<Tape, CompileError> {
    // At most three words per node (`Let`).
    let mut c = Compiler {
        words: Vec::with_capacity(3 * program.node_count()),
        roles: Vec::with_capacity(3 * program.node_count()),
    };
    c.node(program.expr(), 0);
    Ok(Tape {
        words: c.words,
        roles: c.roles,
        locals: program.max_locals(),
    })
}

/// Runs the tape from its root node, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn execute(tape: &Tape, args: &[i64]) -> i64 {
    let mut locals = vec![0i64; tape.locals];
    // The `Env` invariant: locals sized from the program; the caller
    // covers `arg_count`.
    let mut env = Env {
        args: args.as_ptr(),
        locals: locals.as_mut_ptr(),
    };
    // SAFETY: word 0 is the root node's first word (every program has a
    // root); the tape lives until we return.
    unsafe { run(tape.words.as_ptr(), &mut env) }
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
                _ => write!(out, " →@{}", node + x),
            };
            continue;
        };
        node = at;
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
