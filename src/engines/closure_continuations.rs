//! `closure_continuations` — closures that are handed the next step: each
//! step does its work and passes its value on by calling its continuation.
//!
//! **Compile** first flattens the tree into a [`Chain`] of steps in
//! evaluation order (what `show` prints; nested chains are stored inline,
//! so it is one flat vector of 16-byte steps), then folds each chain from its
//! end into closures: every closure captures (a pointer to) the closure of
//! the step after it, and the last one is a closure that returns the value.
//! A bump arena owns all closures, laid out side by side: compile makes no
//! heap allocation per step, and dropping a long chain does not recurse.
//! **Values** travel as an argument: a step receives the previous step's
//! value and calls its continuation with its own. The left operand of an
//! `Add` is simply the value flowing in; the right operand runs as a *nested*
//! chain (an ordinary call that returns), so the left value waits on the
//! native stack meanwhile. **Locals** live in a slice sized by `max_locals`;
//! a local's slot is its scope level, fixed at compile time, so `Let` only
//! writes a slot and nothing is pushed or popped at run time.
//!
//! **Control**: a step ends by calling its continuation in tail position;
//! LLVM makes these sibling calls jumps (opt-level 1 and up). Where that
//! fails, the straight-line chain could at most be as deep as the program
//! is long, never as deep as it runs: `While` is a native Rust loop that
//! calls its condition and body as nested chains which *return*, and only
//! after the loop does it tail-call its continuation.
//!
//! Trade-off: no dispatch loop and no operand stack, and a step never
//! returns through its predecessors; but each step is an indirect call
//! through a `dyn Fn` pointer, and every `Add` or loop iteration pays a real
//! call and return for its nested chains.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// One step of a chain; it receives the previous step's value.
///
/// Nested chains are stored inline, right after the step that runs them and
/// closed by [`Step::End`], so a whole program is one flat `Vec` of 16-byte
/// steps: lowering allocates no `Vec` per `Add` or `While`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Value `n` (ignores its input).
    Lit(i64),
    /// Value `args[i]`.
    Arg(usize),
    /// Value of the local in slot `s`.
    Get(usize),
    /// Stores its input into slot `s`, a new local; passes its input on.
    Bind(usize),
    /// Stores its input into slot `s`; value `0`.
    Set(usize),
    /// Value = input + the value of the nested chain that follows.
    AddRight,
    /// Runs the nested chain that follows (the condition), and the one
    /// after it (the body) while the condition is `> 0`; value `0`.
    While,
    /// Ends a nested chain: its value goes back to the step that ran it.
    End,
}

/// The program's steps in evaluation order, nested chains inline.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chain(Vec<Step>);

impl Chain {
    fn of(program: &Program) -> Chain {
        // Most nodes lower to one step (`Then` to none, `End`s are one per
        // nested chain), so this is close and rarely regrows.
        let mut c = Chain(Vec::with_capacity(program.node_count()));
        c.lower(program.expr(), 0);
        c
    }

    /// Appends the steps of `e`, evaluated with `scope` locals in scope.
    fn lower(&mut self, e: &Expr, scope: usize) {
        match e {
            Expr::Litr(n) => self.0.push(Step::Lit(*n)),
            Expr::Arg(i) => self.0.push(Step::Arg(*i)),
            Expr::Get(d) => self.0.push(Step::Get(scope - 1 - d)),
            Expr::Add(a, b) => {
                self.lower(a, scope);
                self.0.push(Step::AddRight);
                self.lower(b, scope);
                self.0.push(Step::End);
            }
            Expr::Let(init, body) => {
                self.lower(init, scope);
                self.0.push(Step::Bind(scope));
                self.lower(body, scope + 1);
            }
            Expr::Set(d, v) => {
                self.lower(v, scope);
                self.0.push(Step::Set(scope - 1 - d));
            }
            Expr::While(c, body) => {
                self.0.push(Step::While);
                self.lower(c, scope);
                self.0.push(Step::End);
                self.lower(body, scope);
                self.0.push(Step::End);
            }
            // The first step of any chain ignores its input, so `a`'s value
            // is dropped by `b`'s first step.
            Expr::Then(a, b) => {
                self.lower(a, scope);
                self.lower(b, scope);
            }
        }
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        /// What an `End` closes.
        enum Open {
            Add,
            Cond,
            Body,
        }
        let mut open = Vec::new();
        let pad = |depth: usize| "  ".repeat(depth);
        for step in &self.0 {
            let p = pad(open.len());
            // Writing to a `String` cannot fail.
            let _ = match step {
                Step::Lit(n) => writeln!(out, "{p}lit {n}"),
                Step::Arg(i) => writeln!(out, "{p}arg {i}"),
                Step::Get(s) => writeln!(out, "{p}get L{s}"),
                Step::Bind(s) => writeln!(out, "{p}bind L{s}"),
                Step::Set(s) => writeln!(out, "{p}set L{s}"),
                Step::AddRight => {
                    open.push(Open::Add);
                    writeln!(out, "{p}add (call):")
                }
                Step::While => {
                    open.push(Open::Cond);
                    writeln!(out, "{p}while (native loop) cond:")
                }
                Step::End => {
                    let _ = writeln!(out, "{p}return");
                    match open.pop() {
                        Some(Open::Cond) => {
                            open.push(Open::Body);
                            writeln!(out, "{}do:", pad(open.len() - 1))
                        }
                        _ => Ok(()),
                    }
                }
            };
        }
        out.push_str("return\n");
    }
}

/// A step's closure: `(locals, args, value of the previous step)`.
type Fun = dyn Fn(&mut [i64], &[i64], i64) -> i64;

/// A continuation: a step's closure, owned by the code's [`Arena`].
///
/// Closures refer to their successors by these plain pointers instead of
/// owning them, so nothing is freed recursively: the arena releases all
/// closures at once.
#[derive(Clone, Copy)]
struct Cont(*const Fun);

impl Cont {
    #[inline(always)]
    fn call(self, locals: &mut [i64], args: &[i64], v: i64) -> i64 {
        // SAFETY: a `Cont` is only made by `Arena::alloc` and only held by
        // closures in the same arena or by the `Code` owning it; the arena
        // frees its closures only when that `Code` is dropped, and closures
        // only run while `execute` borrows the `Code`.
        unsafe { (*self.0)(locals, args, v) }
    }
}

/// Owns every closure of a compiled program, side by side in a few large
/// blocks (a bump allocator) rather than one heap allocation per step.
struct Arena(bumpalo::Bump);

impl Arena {
    fn alloc<F: Fn(&mut [i64], &[i64], i64) -> i64 + 'static>(&mut self, f: F) -> Cont {
        // The bump allocator never runs destructors; closures capture only
        // `Cont`s and plain values, which have none.
        const { assert!(!std::mem::needs_drop::<F>()) };
        let f: &mut F = self.0.alloc(f);
        Cont(f as &Fun as *const Fun)
    }

    /// The end of every chain: hand the value back to whoever called it.
    fn ret(&mut self) -> Cont {
        self.alloc(|_, _, v| v)
    }

    /// Folds `chain` into closures, from the last step to the first: each
    /// nested chain is complete (back to its first step) by the time the
    /// `AddRight` or `While` that runs it is reached.
    fn build(&mut self, chain: &Chain) -> Cont {
        // Continuations waiting while a nested chain is folded: for each
        // open `End`, what follows the step that runs it (and for a loop,
        // also its finished body).
        let mut waiting = Vec::new();
        let mut next = self.ret();
        for step in chain.0.iter().rev() {
            next = match *step {
                Step::End => {
                    waiting.push(next);
                    self.ret()
                }
                Step::Lit(n) => self.alloc(move |l, a, _| next.call(l, a, n)),
                Step::Arg(i) => self.alloc(move |l, a, _| {
                    // SAFETY: `Arg(i)` is in the program, so `i < arg_count`,
                    // and `execute`'s caller guarantees `args` is that long.
                    let v = unsafe { *a.get_unchecked(i) };
                    next.call(l, a, v)
                }),
                Step::Get(s) => self.alloc(move |l, a, _| {
                    // SAFETY: validation put the local in scope, so its
                    // level `s` is below `max_locals`, the slice's length.
                    let v = unsafe { *l.get_unchecked(s) };
                    next.call(l, a, v)
                }),
                Step::Bind(s) => self.alloc(move |l, a, v| {
                    // SAFETY: a `Let` at level `s` means `s < max_locals`.
                    unsafe { *l.get_unchecked_mut(s) = v };
                    next.call(l, a, v)
                }),
                Step::Set(s) => self.alloc(move |l, a, v| {
                    // SAFETY: as for `Get`: the local is in scope.
                    unsafe { *l.get_unchecked_mut(s) = v };
                    next.call(l, a, 0)
                }),
                Step::AddRight => {
                    let right = next;
                    let next = waiting.pop().expect("lowering closes every nested chain");
                    self.alloc(move |l, a, v| {
                        let r = right.call(l, a, 0);
                        next.call(l, a, v.wrapping_add(r))
                    })
                }
                Step::While => {
                    let cond = next;
                    let body = waiting.pop().expect("lowering closes every nested chain");
                    let next = waiting.pop().expect("lowering closes every nested chain");
                    self.alloc(move |l, a, _| {
                        while cond.call(l, a, 0) > 0 {
                            body.call(l, a, 0);
                        }
                        next.call(l, a, 0)
                    })
                }
            };
        }
        next
    }
}

/// The compiled program: the chain for `show` and its first closure.
pub struct Code {
    chain: Chain,
    entry: Cont,
    max_locals: usize,
    /// Owns `entry` and every closure it reaches; declared last so that it is
    /// dropped last.
    _arena: Arena,
}

pub struct ClosureContinuations;

impl Technique for ClosureContinuations {
    const NAME: &'static str = "closure_continuations";
    const TIER: Tier = Tier::Original;
    const TAIL_CALLS: bool = true;
    const SUMMARY: &'static str =
        "closures that tail-call the next step as a continuation; loops are native";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let chain = Chain::of(program);
        // Closures take 0 to 48 bytes; most capture a continuation and one
        // word. Sizing the first block from the step count saves regrowth.
        let mut arena = Arena(bumpalo::Bump::with_capacity(24 * chain.0.len()));
        let entry = arena.build(&chain);
        Ok(Code {
            chain,
            entry,
            max_locals: program.max_locals(),
            _arena: arena,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let mut locals = vec![0i64; code.max_locals];
        code.entry.call(&mut locals, args, 0)
    }

    fn show(code: &Code) -> String {
        let mut out = format!(
            "; {} local slots; each step tail-calls the next\n",
            code.max_locals
        );
        code.chain.write(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(
        super::ClosureContinuations,
        extra: [CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments],
    );
}
