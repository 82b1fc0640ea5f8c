//! `closure_continuations` — closures that are handed the next step: each
//! step does its work and passes its value on by calling its continuation.
//!
//! **Compile** first flattens the tree into a [`Chain`] of steps in
//! evaluation order (what `show` prints), then folds each chain from its end
//! into boxed closures: every closure captures (a pointer to) the closure of
//! the step after it, and the last one is a closure that returns the value.
//! An arena owns all closures, so dropping a long chain does not recurse.
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
//! through a boxed closure, and every `Add` or loop iteration pays a real
//! call and return for its nested chains.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// One step of a chain; it receives the previous step's value.
#[derive(Debug, PartialEq, Eq)]
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
    /// Value = input + the nested chain's value.
    AddRight(Chain),
    /// Runs `cond`, and `body` while `cond > 0`; value `0`.
    While(Chain, Chain),
}

/// Steps run one after another, each continuing into the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chain(Vec<Step>);

impl Chain {
    fn of(e: &Expr, scope: usize) -> Chain {
        let mut c = Chain::default();
        c.lower(e, scope);
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
                self.0.push(Step::AddRight(Chain::of(b, scope)));
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
            Expr::While(c, body) => self
                .0
                .push(Step::While(Chain::of(c, scope), Chain::of(body, scope))),
            // The first step of any chain ignores its input, so `a`'s value
            // is dropped by `b`'s first step.
            Expr::Then(a, b) => {
                self.lower(a, scope);
                self.lower(b, scope);
            }
        }
    }

    fn write(&self, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        for step in &self.0 {
            match step {
                Step::Lit(n) => out.push_str(&format!("{pad}lit {n}\n")),
                Step::Arg(i) => out.push_str(&format!("{pad}arg {i}\n")),
                Step::Get(s) => out.push_str(&format!("{pad}get L{s}\n")),
                Step::Bind(s) => out.push_str(&format!("{pad}bind L{s}\n")),
                Step::Set(s) => out.push_str(&format!("{pad}set L{s}\n")),
                Step::AddRight(c) => {
                    out.push_str(&format!("{pad}add (call):\n"));
                    c.write(indent + 1, out);
                }
                Step::While(c, b) => {
                    out.push_str(&format!("{pad}while (native loop) cond:\n"));
                    c.write(indent + 1, out);
                    out.push_str(&format!("{pad}do:\n"));
                    b.write(indent + 1, out);
                }
            }
        }
        out.push_str(&format!("{pad}return\n"));
    }
}

/// A step's closure: `(locals, args, value of the previous step)`.
type Fun = dyn Fn(&mut [i64], &[i64], i64) -> i64;

/// A continuation: a step's closure, owned by the code's [`Arena`].
///
/// Closures refer to their successors by these plain pointers instead of
/// owning them, so dropping a chain of any length frees its closures one by
/// one from a `Vec`, instead of recursing once per step.
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

/// Owns every closure of a compiled program.
#[derive(Default)]
struct Arena(Vec<*mut Fun>);

impl Arena {
    fn alloc(&mut self, f: impl Fn(&mut [i64], &[i64], i64) -> i64 + 'static) -> Cont {
        let f: Box<Fun> = Box::new(f);
        let p = Box::into_raw(f);
        self.0.push(p);
        Cont(p)
    }

    /// The end of every chain: hand the value back to whoever called it.
    fn ret(&mut self) -> Cont {
        self.alloc(|_, _, v| v)
    }

    /// Folds `chain` into closures, from the last step to the first.
    fn build(&mut self, chain: &Chain) -> Cont {
        let mut next = self.ret();
        for step in chain.0.iter().rev() {
            next = match *step {
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
                Step::AddRight(ref right) => {
                    let right = self.build(right);
                    self.alloc(move |l, a, v| {
                        let r = right.call(l, a, 0);
                        next.call(l, a, v.wrapping_add(r))
                    })
                }
                Step::While(ref cond, ref body) => {
                    let (cond, body) = (self.build(cond), self.build(body));
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

impl Drop for Arena {
    fn drop(&mut self) {
        for &p in &self.0 {
            // SAFETY: every pointer came from `Box::into_raw` in `alloc` and
            // is freed exactly once, here. Closures capture only `Cont`s and
            // plain values, so freeing one never touches another.
            drop(unsafe { Box::from_raw(p) });
        }
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
    const SUMMARY: &'static str =
        "closures that tail-call the next step as a continuation; loops are native";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let chain = Chain::of(program.expr(), 0);
        let mut arena = Arena::default();
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
        code.chain.write(0, &mut out);
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
